//! The `keepalive` command: `run` and `check`, end to end.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use crate::util::json::{CheckedSocket, Message, messages, only_message};
use crate::util::{
    self, Output, TIMEOUT, bare, preload, preloaded, run, skip, target_tempdir, tool,
};

/// `keepalive` with the test's library and none of the preload's variables.
fn keepalive() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_keepalive"));
    cmd.env("KEEPALIVE_LIBRARY", preload());
    cmd
}

fn keepalive_run(args: &[&str]) -> Output {
    run(keepalive().arg("run").args(args), TIMEOUT)
}

const HOWTO: &str =
    "SO_KEEPALIVE is ON\nTCP_KEEPCNT   = 20\nTCP_KEEPIDLE  = 180\nTCP_KEEPINTVL = 60\n";

/// The one `socket` line of `keepalive check --json`.
fn check_json(out: &Output) -> CheckedSocket {
    match only_message(out) {
        Message::Socket(s) => s,
        other => panic!("not a socket line: {other:?}\n{out}"),
    }
}

#[test]
fn check_without_preload_reports_off() {
    let out = run(keepalive().arg("check"), TIMEOUT);
    assert_eq!(out.stdout, "SO_KEEPALIVE is OFF\n", "{out}");
    assert_eq!(out.status.code(), Some(1), "{out}");
}

#[test]
fn check_under_ld_preload_prints_the_howto_lines() {
    let out = run(
        preloaded(env!("CARGO_BIN_EXE_keepalive"))
            .arg("check")
            .envs(util::SETTINGS),
        TIMEOUT,
    );
    assert_eq!(out.stdout, HOWTO, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(out.status.code(), Some(0), "{out}");
}

#[test]
fn run_check_prints_the_howto_lines() {
    let out = keepalive_run(&[
        "--idle",
        "180",
        "--interval",
        "1m",
        "--count",
        "20",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
    ]);
    assert_eq!(out.stdout, HOWTO, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert!(out.status.success(), "{out}");
}

#[test]
fn run_user_timeout_auto_is_idle_plus_interval_times_count() {
    let out = keepalive_run(&[
        "--idle",
        "10",
        "--interval",
        "5s",
        "--count",
        "4",
        "--user-timeout",
        "auto",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
        "--json",
    ]);
    let data = check_json(&out);
    assert_eq!(
        data,
        CheckedSocket {
            keepalive: true,
            idle: 10,
            interval: 5,
            count: 4,
            user_timeout_ms: Some(30_000),
            // Not bound, not connected: the kernel's getsockname.
            local: Some("0.0.0.0:0".parse().unwrap()),
            peer: None,
        },
        "{out}"
    );
}

#[test]
fn run_user_timeout_with_unit() {
    let out = keepalive_run(&[
        "--user-timeout",
        "1500ms",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
    ]);
    assert!(
        out.stdout.ends_with("TCP_USER_TIMEOUT = 1s500ms\n"),
        "{out}"
    );
}

#[test]
fn run_flags_override_variables_and_keep_the_others() {
    let out = run(
        keepalive().env("KEEPIDLE", "99").env("KEEPCNT", "7").args([
            "run",
            "--idle",
            "180",
            "--",
            env!("CARGO_BIN_EXE_keepalive"),
            "check",
            "--json",
        ]),
        TIMEOUT,
    );
    let data = check_json(&out);
    assert_eq!(data.idle, 180, "the flag wins\n{out}");
    assert_eq!(data.count, 7, "the variable stays\n{out}");
    assert!(data.keepalive, "{out}");
}

#[test]
fn run_reports_a_bad_inherited_variable_once() {
    let check = env!("CARGO_BIN_EXE_keepalive");
    let out = run(
        keepalive()
            .env("KEEPIDLE", "abc")
            .env("KEEPCNT", "7")
            .args([
                "run",
                "--",
                "sh",
                "-c",
                &format!("{check} check --json; {check} check --json"),
            ]),
        TIMEOUT,
    );
    // sh and both checks load the preload: without run's own check that
    // would be three warnings.
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(
        out.stderr
            .starts_with("keepalive: ignoring KEEPIDLE=\"abc\" (not a number)"),
        "{out}"
    );
    let defaults = util::kernel_defaults();
    let lines = messages(&out);
    assert_eq!(lines.len(), 2, "{out}");
    for line in lines {
        let Message::Socket(data) = line else {
            panic!("not a socket line: {line:?}\n{out}")
        };
        assert_eq!(i64::from(data.idle), defaults.idle, "{out}");
        assert_eq!(data.count, 7, "the valid variable stays\n{out}");
    }
}

#[test]
fn run_off_switches_keepalive_off() {
    let out = keepalive_run(&["--off", "--", env!("CARGO_BIN_EXE_keepalive"), "check"]);
    assert_eq!(out.stdout, "SO_KEEPALIVE is OFF\n", "{out}");
}

#[test]
fn run_prepends_the_library_to_ld_preload_once() {
    let lib = preload().to_str().unwrap().to_owned();
    let existing = format!("/other/a.so {lib}");
    let out = run(
        keepalive().env("LD_PRELOAD", &existing).args([
            "run",
            "--",
            "sh",
            "-c",
            "printf %s \"$LD_PRELOAD\"",
        ]),
        TIMEOUT,
    );
    // sh complains that /other/a.so cannot be preloaded; that's the point.
    assert_eq!(out.stdout, format!("{lib}:/other/a.so"), "{out}");
}

#[test]
fn run_connected_socket_of_a_real_program() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = keepalive_run(&[
        "--idle",
        "42",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
        "--connect",
        &addr,
        "--json",
    ]);
    let data = check_json(&out);
    assert_eq!(data.peer, Some(addr.parse().unwrap()), "{out}");
    assert!(data.keepalive, "{out}");
    assert_eq!(data.idle, 42, "{out}");
}

#[test]
fn run_passes_the_exit_status_through() {
    let out = keepalive_run(&["--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out}");
    let out = keepalive_run(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out}");
}

#[test]
fn run_reports_a_missing_command() {
    let out = keepalive_run(&["--", "no-such-command-keepalive-test"]);
    assert_eq!(out.status.code(), Some(127), "{out}");
    assert!(
        out.stderr
            .contains("no-such-command-keepalive-test: command not found"),
        "{out}"
    );
}

#[test]
fn run_debug_logs_each_socket() {
    let out = keepalive_run(&[
        "--debug",
        "--idle",
        "33",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
    ]);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("keepalive["), "{out}");
    assert!(
        lines[0].contains("socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 6)"),
        "{out}"
    );
    assert!(
        lines[0].ends_with("SO_KEEPALIVE=1 TCP_KEEPIDLE=33"),
        "{out}"
    );
}

#[test]
fn run_refuses_bad_values_with_the_range() {
    for (args, expected) in [
        (&["--idle", "40000"][..], "1..=32767"),
        (&["--idle", "abc"][..], "not a number"),
        (&["--count", "200"][..], "1..=127"),
        (&["--interval", "0"][..], "zero"),
        (
            &["--user-timeout", "15"][..],
            "add a unit (15ms or 15s) or use auto",
        ),
    ] {
        let out = keepalive_run(&[args, &["--", "true"]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
        assert!(
            out.stderr.contains(expected),
            "{args:?}: want {expected:?}\n{out}"
        );
    }
}

#[test]
fn run_names_where_it_looked_for_the_library() {
    let out = run(
        keepalive()
            .env("KEEPALIVE_LIBRARY", "/nonexistent/libkeepalive.so")
            .args(["run", "true"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("KEEPALIVE_LIBRARY=/nonexistent/libkeepalive.so is not a file"),
        "{out}"
    );

    // A copy of the binary in a directory with no library next to it.
    let tmp = target_tempdir("cli-nolib");
    let dir = tmp.path();
    let exe = dir.join("keepalive");
    std::fs::copy(env!("CARGO_BIN_EXE_keepalive"), &exe).unwrap();
    let out = run(bare(&exe).args(["run", "true"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{out}");
    let looked = format!(
        "looked in: {}/libkeepalive.so",
        dir.canonicalize().unwrap().display()
    );
    assert!(
        out.stderr.contains("cannot find libkeepalive.so") && out.stderr.contains(&looked),
        "{out}"
    );
}

#[test]
fn run_refuses_a_library_path_ld_preload_cannot_carry() {
    let tmp = target_tempdir("cli-sp ace");
    let dir = tmp.path();
    let lib = dir.join("libkeepalive.so");
    std::fs::copy(preload(), &lib).unwrap();
    let out = run(
        keepalive()
            .env("KEEPALIVE_LIBRARY", &lib)
            .args(["run", "true"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("holds a space or colon, which LD_PRELOAD cannot carry"),
        "{out}"
    );
}

#[test]
fn run_finds_the_library_next_to_itself() {
    let tmp = target_tempdir("cli-nextto");
    let dir = tmp.path();
    let exe = dir.join("keepalive");
    std::fs::copy(env!("CARGO_BIN_EXE_keepalive"), &exe).unwrap();
    std::fs::copy(preload(), dir.join("libkeepalive.so")).unwrap();
    let out = run(
        bare(&exe)
            .args([
                "run",
                "--idle",
                "180",
                "--interval",
                "60",
                "--count",
                "20",
                "--",
            ])
            .arg(&exe)
            .arg("check"),
        TIMEOUT,
    );
    assert_eq!(out.stdout, HOWTO, "{out}");
}

#[test]
fn run_stays_quiet_for_a_dynamic_program() {
    let out = keepalive_run(&["--", "true"]);
    assert_eq!(out.stderr, "", "{out}");
    assert!(out.status.success(), "{out}");
}

#[test]
fn run_warns_about_a_static_binary() {
    let Some(gcc) = tool("gcc") else {
        skip!("gcc is not installed")
    };
    let tmp = target_tempdir("cli-static");
    let dir = tmp.path();
    std::fs::write(dir.join("s.c"), "int main(void) { return 0; }\n").unwrap();
    let built = run(
        Command::new(gcc)
            .arg("-static")
            .arg("-o")
            .arg(dir.join("s"))
            .arg(dir.join("s.c")),
        TIMEOUT,
    );
    if !built.status.success() {
        skip!("gcc -static failed (no libc.a?)\n{built}");
    }
    let out = run(keepalive().arg("run").arg("--").arg(dir.join("s")), TIMEOUT);
    assert!(out.status.success(), "the program still runs\n{out}");
    assert!(
        out.stderr
            .contains("is statically linked: a preload cannot reach its sockets"),
        "{out}"
    );
}

#[test]
fn run_warns_about_a_go_binary() {
    let Some(objcopy) = tool("objcopy") else {
        skip!("objcopy (binutils) is not installed")
    };
    let tmp = target_tempdir("cli-go");
    let dir = tmp.path();
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let go = dir.join("gobin");
    let made = run(
        Command::new(objcopy)
            .arg(format!("--add-section=.go.buildinfo={}", empty.display()))
            .arg("/bin/true")
            .arg(&go),
        TIMEOUT,
    );
    made.assert_success();
    let out = run(keepalive().arg("run").arg("--").arg(&go), TIMEOUT);
    assert!(out.stderr.contains("is a Go program"), "{out}");
}

#[test]
fn run_warns_about_a_setuid_binary_through_a_script() {
    if !util::is_root() {
        skip!("making a setuid binary owned by another user needs root");
    }
    let tmp = target_tempdir("cli-setuid");
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("suid");
    std::fs::copy("/bin/true", &exe).unwrap();
    std::os::unix::fs::chown(&exe, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{}\n", exe.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(keepalive().arg("run").arg("--").arg(&script), TIMEOUT);
    assert!(
        out.stderr.contains("suid is setuid/setgid to another user"),
        "{out}"
    );
}

#[test]
fn run_warns_about_a_binary_with_file_capabilities() {
    if !util::is_root() {
        skip!("setting file capabilities needs root");
    }
    let Some(setcap) = tool("setcap") else {
        skip!("setcap (libcap2-bin) is not installed")
    };
    let tmp = target_tempdir("cli-caps");
    let dir = tmp.path();
    let exe = dir.join("capped");
    std::fs::copy("/bin/true", &exe).unwrap();
    let set = run(
        Command::new(setcap).arg("cap_net_raw+ep").arg(&exe),
        TIMEOUT,
    );
    if !set.status.success() {
        skip!("this file system takes no file capabilities\n{set}");
    }
    let out = run(keepalive().arg("run").arg("--").arg(&exe), TIMEOUT);
    assert!(out.stderr.contains("capped has file capabilities"), "{out}");
}

#[test]
fn help_has_examples() {
    for sub in ["run", "check"] {
        let out = run(keepalive().args([sub, "--help"]), TIMEOUT);
        assert!(out.status.success(), "{out}");
        assert!(
            out.stdout.contains("Examples:\n  keepalive"),
            "{sub}\n{out}"
        );
    }
}

#[test]
fn check_connect_failure_is_one_clear_line() {
    // Bind then drop: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(
        keepalive().args(["check", "--connect", &format!("127.0.0.1:{port}")]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "an error, not a finding\n{out}");
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(
        out.stderr
            .starts_with(&format!("keepalive: cannot connect to 127.0.0.1:{port}: ")),
        "{out}"
    );
}
