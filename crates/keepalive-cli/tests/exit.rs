//! Exit statuses (0 done, 1 only for a problem a check found, 2 for every
//! error and usage error, 126/127 from `run`) and the exact words of the
//! errors people meet first.

use std::net::TcpListener;
use std::process::Command;

use crate::util::{Output, TIMEOUT, bare, preload, preloaded, run, target_tempdir};

/// `keepalive` with the test's library and none of the preload's variables.
fn keepalive() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_keepalive"));
    cmd.env("KEEPALIVE_LIBRARY", preload());
    cmd
}

fn keepalive_out(args: &[&str]) -> Output {
    run(keepalive().args(args), TIMEOUT)
}

/// A loopback port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_exits_1_only_when_keepalive_is_off() {
    let off = keepalive_out(&["check"]);
    assert_eq!(off.stdout, "SO_KEEPALIVE is OFF\n", "{off}");
    assert_eq!(off.stderr, "", "a finding, not an error\n{off}");
    assert_eq!(off.status.code(), Some(1), "{off}");

    let on = run(
        preloaded(env!("CARGO_BIN_EXE_keepalive")).arg("check"),
        TIMEOUT,
    );
    assert!(on.stdout.starts_with("SO_KEEPALIVE is ON\n"), "{on}");
    assert_eq!(on.status.code(), Some(0), "{on}");
}

#[test]
fn errors_exit_2_with_one_line() {
    let port = closed_port();
    let connect = format!("127.0.0.1:{port}");
    // Above the largest pid_max the kernel allows (4194304).
    for args in [
        &["ls", "--pid", "5000000"][..],
        &["attach", "--pid", "5000000", "--idle", "60"],
        &["check", "--connect", &connect],
        &["sysctl", "show", "--netns", "ka-no-such-namespace"],
    ] {
        let out = keepalive_out(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
        assert_eq!(out.stderr_lines().len(), 1, "{args:?}\n{out}");
        assert!(out.stderr.starts_with("keepalive: "), "{args:?}\n{out}");
        assert_eq!(out.stdout, "", "{args:?}\n{out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["ls", "--no-such-flag"][..],
        &["no-such-command"],
        &["sysctl", "set"],
        &["ls", "--port", "1", "--sport", "2"],
        &["run", "--idle", "abc", "--", "true"],
    ] {
        let out = keepalive_out(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
        assert_eq!(out.stdout, "", "{args:?}\n{out}");
        assert!(!out.stderr.is_empty(), "{args:?}\n{out}");
    }
}

#[test]
fn ls_pid_that_is_not_a_number_names_the_flag() {
    let out = keepalive_out(&["ls", "--pid", "abc"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("invalid value 'abc' for '--pid <PID>'"),
        "{out}"
    );
}

#[test]
fn run_a_missing_command_is_127_with_one_exact_line() {
    let out = keepalive_out(&["run", "--", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{out}");
    assert_eq!(
        out.stderr, "keepalive: nosuchcmd: command not found\n",
        "{out}"
    );
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn run_a_directory_is_126_with_one_exact_line() {
    let out = keepalive_out(&["run", "--", "/tmp"]);
    assert_eq!(out.status.code(), Some(126), "{out}");
    assert_eq!(out.stderr, "keepalive: /tmp: is a directory\n", "{out}");
}

/// `run --enforce` says the same words, once, before it makes a cgroup
/// (so it needs no privilege to say them).
#[test]
fn run_enforce_says_why_a_command_cannot_run_once() {
    for (command, code, line) in [
        ("/tmp", 126, "keepalive: /tmp: is a directory\n"),
        (
            "nosuchcmd",
            127,
            "keepalive: nosuchcmd: command not found\n",
        ),
        (
            "./no/such/file",
            127,
            "keepalive: ./no/such/file: command not found\n",
        ),
    ] {
        let out = keepalive_out(&["run", "--enforce", "--", command]);
        assert_eq!(out.status.code(), Some(code), "{out}");
        assert_eq!(out.stderr, line, "{out}");
        assert!(!out.stderr.contains("os error"), "{out}");
    }
}

/// A `KEEPALIVE_LIBRARY` that is no shared object is refused before the
/// command runs: the command would have made a marker file.
#[test]
fn run_refuses_a_library_that_is_not_a_shared_object_before_the_command_runs() {
    let tmp = target_tempdir("exit-badlib");
    let lib = tmp.path().join("libkeepalive.so");
    std::fs::write(&lib, "not a library\n").unwrap();
    let marker = tmp.path().join("marker");
    let out = run(
        keepalive()
            .env("KEEPALIVE_LIBRARY", &lib)
            .args(["run", "--", "sh", "-c", "echo ran > \"$0\""])
            .arg(&marker),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(!marker.exists(), "the command ran\n{out}");
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(
        out.stderr
            .contains(&format!("KEEPALIVE_LIBRARY={}", lib.display()))
            && out.stderr.contains("not an ELF file"),
        "{out}"
    );

    // The control: the same command with the real library runs.
    let out = run(
        keepalive()
            .args(["run", "--", "sh", "-c", "echo ran > \"$0\""])
            .arg(&marker),
        TIMEOUT,
    );
    out.assert_success();
    assert!(marker.exists(), "{out}");
}

#[test]
fn sysctl_persist_refuses_a_root_that_does_not_exist() {
    let tmp = target_tempdir("exit-persist");
    let missing = tmp.path().join("nowhere");
    let out = run(
        keepalive()
            .args(["sysctl", "persist", "--idle", "60", "--root"])
            .arg(&missing),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains(&missing.display().to_string())
            && out.stderr.contains("nothing was written"),
        "{out}"
    );
    assert!(!missing.exists(), "{out}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing created\n{out}"
    );
}

#[test]
fn ls_netns_refuses_what_is_not_a_network_namespace() {
    let tmp = target_tempdir("exit-netns");
    let file = tmp.path().join("plain");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap().to_owned();
    for path in [file.as_str(), "/proc/self/ns/uts"] {
        for json in [false, true] {
            let mut args = vec!["ls", "--netns", path];
            if json {
                args.push("--json");
            }
            let out = keepalive_out(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
            assert_eq!(
                out.stderr,
                format!("keepalive: {path} is not a network namespace\n"),
                "{args:?}\n{out}"
            );
            assert_eq!(out.stdout, "", "{args:?}\n{out}");
            assert!(!out.stderr.contains("net:["), "{args:?}\n{out}");
        }
    }
}

#[test]
fn install_global_into_an_image_speaks_of_that_system() {
    let tmp = target_tempdir("exit-image");
    let out = run(
        keepalive()
            .args(["install", "--global", "--root"])
            .arg(tmp.path()),
        TIMEOUT,
    );
    out.assert_success();
    assert!(!out.stdout.contains("started from now on"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "Every dynamically linked program of the system in {} gets TCP keepalive",
            tmp.path().display()
        )) && out.stdout.contains("this host's programs are not affected"),
        "{out}"
    );
}

#[test]
fn help_says_what_a_value_left_out_means() {
    let help = |sub: &str| {
        let out = keepalive_out(&[sub, "--help"]);
        out.assert_success();
        out.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let attach = help("attach");
    assert!(
        attach.contains("A value left out keeps each socket's current value"),
        "{attach}"
    );
    assert!(
        !attach.contains("A value left out is the kernel default"),
        "{attach}"
    );
    let run = help("run");
    assert!(
        run.contains("A value left out keeps the variable already set, else the kernel default"),
        "{run}"
    );
    let enforce = help("enforce");
    assert!(
        enforce.contains("A value left out is the kernel default"),
        "{enforce}"
    );
}

#[test]
fn check_shows_the_user_timeout_with_a_unit() {
    let out = keepalive_out(&[
        "run",
        "--user-timeout",
        "855s",
        "--",
        env!("CARGO_BIN_EXE_keepalive"),
        "check",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert!(
        out.stdout.ends_with("\nTCP_USER_TIMEOUT = 14m15s\n"),
        "855 s is 14m15s\n{out}"
    );
}
