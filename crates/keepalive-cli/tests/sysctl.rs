//! `keepalive sysctl`: show, set and persist, judged by what the kernel
//! shows inside network namespaces the tests make. The host's own values
//! are never written: every `set` names a test namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::json::{
    Message, Netns as NetnsJson, Override, Persisted, SysctlChange, SysctlValues, messages,
    only_message,
};
use crate::util::{Netns, Output, TIMEOUT, bare, run, skip, target_tempdir, tool};

fn keepalive() -> Command {
    bare(env!("CARGO_BIN_EXE_keepalive"))
}

fn sysctl(args: &[&str]) -> Output {
    run(keepalive().arg("sysctl").args(args), TIMEOUT)
}

/// A test namespace (`None`, after printing why, when none can be made).
fn netns() -> Option<Netns> {
    Netns::new("sysctl")
        .map_err(|why| eprintln!("skipped: {why}"))
        .ok()
}

/// A value as `cat` inside the namespace reads it: the kernel's word, not
/// ours.
fn read(ns: &Netns, key: &str) -> u64 {
    let path = format!("/proc/sys/net/ipv4/{key}");
    let out = run(
        Command::new("ip").args(["netns", "exec", ns.name(), "cat", &path]),
        TIMEOUT,
    );
    out.assert_success();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}\n{out}"))
}

/// The one `sysctl` line of `keepalive sysctl --json` output.
fn values(out: &Output) -> SysctlValues {
    match only_message(out) {
        Message::Sysctl(v) => v,
        other => panic!("not a sysctl line: {other:?}\n{out}"),
    }
}

fn host(key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A directory standing for `/`, removed on drop.
struct Root(tempfile::TempDir);

impl Root {
    fn new(name: &str) -> Root {
        Root(target_tempdir(&format!("sysctl-{name}")))
    }

    fn arg(&self) -> &str {
        self.0.path().to_str().unwrap()
    }

    fn dropin(&self) -> PathBuf {
        self.0.path().join("etc/sysctl.d/90-keepalive.conf")
    }
}

const HEADER: &str = "# TCP keepalive defaults (TCP Keepalive HOWTO 3.2), read at boot by\n\
                      # systemd-sysctl and `sysctl --system`. Written by `keepalive sysctl`;\n\
                      # change it with `keepalive sysctl persist`.\n";

#[test]
fn show_reads_the_current_namespace() {
    let out = sysctl(&["--json"]);
    out.assert_success();
    let data = values(&out);
    let (idle, interval, count) = (
        host("tcp_keepalive_time"),
        host("tcp_keepalive_intvl"),
        host("tcp_keepalive_probes"),
    );
    let inode = std::fs::metadata("/proc/self/ns/net").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    assert_eq!(
        data,
        SysctlValues {
            netns: NetnsJson {
                inode: inode.unwrap(),
                name: None,
                path: None,
                pid: None,
                current: true,
            },
            idle,
            interval,
            count,
            detection_secs: idle + interval * count,
        },
        "{out}"
    );
}

#[test]
fn set_in_a_namespace_leaves_the_host_alone() {
    let Some(ns) = netns() else { return };
    let host_before = host("tcp_keepalive_time");
    let out = sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "10m",
        "--interval",
        "60",
        "--count",
        "20",
    ]);
    out.assert_success();
    // A new namespace starts at the built-in 7200 / 75 / 9.
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_keepalive_time: 7200 -> 600\n"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_keepalive_probes: 9 -> 20\n"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("in network namespace netns {} (net:[", ns.name())),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("A dead idle peer is detected after 600 s + 20 x 60 s = 30m.\n"),
        "{out}"
    );
    assert_eq!(read(&ns, "tcp_keepalive_time"), 600);
    assert_eq!(read(&ns, "tcp_keepalive_intvl"), 60);
    assert_eq!(read(&ns, "tcp_keepalive_probes"), 20);
    assert_eq!(
        host("tcp_keepalive_time"),
        host_before,
        "the host's value must not change"
    );
}

#[test]
fn set_writes_only_what_changes() {
    let Some(ns) = netns() else { return };
    let out = sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "7200",
        "--count",
        "5",
    ]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_keepalive_time: 7200 (unchanged)\n"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_keepalive_probes: 9 -> 5\n"),
        "{out}"
    );
}

#[test]
fn pid_and_path_name_the_same_namespace() {
    let Some(ns) = netns() else { return };
    let host_before = host("tcp_keepalive_intvl");
    sysctl(&["set", "--netns", ns.name(), "--interval", "33"]).assert_success();
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sleep", "30"])
        .spawn()
        .unwrap();
    // ip execs sleep in place: the pid is the sleeper's, once it entered the namespace.
    let pid = sleeper.id();
    let mut by_pid = None;
    for _ in 0..100 {
        let out = sysctl(&["show", "--pid", &pid.to_string(), "--json"]);
        if out.status.success() && values(&out).interval == 33 {
            by_pid = Some(values(&out));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let path = format!("/run/netns/{}", ns.name());
    let by_path = sysctl(&["show", "--netns", &path, "--json"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let by_pid = by_pid.expect("--pid never showed the namespace's value");
    assert_eq!(by_pid.netns.pid, Some(pid), "{by_pid:?}");
    assert!(!by_pid.netns.current, "{by_pid:?}");
    let by_path_values = values(&by_path);
    assert_eq!(by_path_values.interval, 33, "{by_path}");
    assert_eq!(
        by_path_values.netns.inode, by_pid.netns.inode,
        "the same namespace\n{by_path}"
    );
    assert_eq!(
        by_path_values.netns.path.as_deref(),
        Some(Path::new(&path)),
        "{by_path}"
    );
    assert_eq!(
        host("tcp_keepalive_intvl"),
        host_before,
        "the host's value must not change"
    );
}

#[test]
fn bad_values_are_refused_before_anything_is_written() {
    let root = Root::new("bad");
    for (args, expected) in [
        (["--idle", "abc"], "not a number"),
        (["--idle", "0"], "zero"),
        (["--idle", "-1"], "negative"),
        (["--idle", "40000"], "1..=32767"),
        (["--count", "200"], "1..=127"),
    ] {
        // No namespace needed: the values are refused before any is read.
        let out = run(
            keepalive()
                .args(["sysctl", "persist", "--root", root.arg()])
                .args(args),
            TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
        assert!(
            out.stderr.contains(expected),
            "{args:?}: want {expected:?}\n{out}"
        );
        assert!(!root.dropin().exists(), "nothing written for {args:?}");
    }
}

#[test]
fn set_without_values_is_a_usage_error() {
    let out = sysctl(&["set"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    // clap's usage error, naming the values it wants.
    assert!(
        out.stderr
            .contains("error: the following required arguments were not provided")
            && out.stderr.contains("--idle")
            && out.stderr.contains("--interval")
            && out.stderr.contains("--count")
            && out.stderr.contains("Usage: keepalive sysctl set"),
        "{out}"
    );
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn unprivileged_set_is_refused_and_changes_nothing() {
    let Some(ns) = netns() else { return };
    let Some(setpriv) = tool("setpriv") else {
        skip!("setpriv (util-linux) is not installed")
    };
    // Inside the test namespace, as nobody: the files are root's.
    let out = run(
        bare("ip")
            .args(["netns", "exec", ns.name()])
            .arg(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_keepalive"))
            .args(["sysctl", "set", "--idle", "600", "--count", "3"]),
        TIMEOUT,
    );
    if out.stderr.contains("Permission denied") && out.stderr.contains("setpriv") {
        skip!("nobody cannot run the test binary from here\n{out}");
    }
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(
        out.stderr
            .contains("needs root (or CAP_NET_ADMIN in its network namespace)"),
        "{out}"
    );
    assert!(out.stderr.contains("nothing was changed"), "{out}");
    assert_eq!(read(&ns, "tcp_keepalive_time"), 7200);
    assert_eq!(read(&ns, "tcp_keepalive_probes"), 9);
}

#[test]
fn persist_writes_the_exact_dropin_once() {
    let root = Root::new("persist");
    let out = sysctl(&[
        "persist",
        "--root",
        root.arg(),
        "--idle",
        "10m",
        "--count",
        "20",
    ]);
    out.assert_success();
    let text = std::fs::read_to_string(root.dropin()).unwrap();
    assert_eq!(
        text,
        format!("{HEADER}net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_probes = 20\n")
    );
    let mtime = std::fs::metadata(root.dropin())
        .unwrap()
        .modified()
        .unwrap();
    let again = sysctl(&[
        "persist",
        "--root",
        root.arg(),
        "--idle",
        "600",
        "--count",
        "20",
    ]);
    again.assert_success();
    assert!(
        again.stdout.contains("already holds these values"),
        "{again}"
    );
    assert_eq!(std::fs::read_to_string(root.dropin()).unwrap(), text);
    assert_eq!(
        std::fs::metadata(root.dropin())
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // A later call for another key keeps the earlier ones.
    sysctl(&["persist", "--root", root.arg(), "--interval", "1m"]).assert_success();
    assert_eq!(
        std::fs::read_to_string(root.dropin()).unwrap(),
        format!(
            "{HEADER}net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_intvl = 60\n\
             net.ipv4.tcp_keepalive_probes = 20\n"
        )
    );
}

#[test]
fn persist_reports_a_later_override_with_file_and_line() {
    let root = Root::new("override");
    std::fs::create_dir_all(root.0.path().join("etc")).unwrap();
    std::fs::write(
        root.0.path().join("etc/sysctl.conf"),
        "# site settings\nnet.ipv4.tcp_keepalive_time = 7200\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.0.path().join("usr/lib/sysctl.d")).unwrap();
    std::fs::write(
        root.0.path().join("usr/lib/sysctl.d/10-early.conf"),
        "net.ipv4.tcp_keepalive_time = 1\n",
    )
    .unwrap();
    let out = sysctl(&["persist", "--root", root.arg(), "--idle", "600"]);
    out.assert_success();
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        warnings.len(),
        1,
        "only the later file overrides ours\n{out}"
    );
    let want = format!(
        "{}/etc/sysctl.conf:2 sets net.ipv4.tcp_keepalive_time = 7200",
        root.arg()
    );
    assert!(warnings[0].contains(&want), "{out}");
    // Other files are never edited.
    assert_eq!(
        std::fs::read_to_string(root.0.path().join("etc/sysctl.conf")).unwrap(),
        "# site settings\nnet.ipv4.tcp_keepalive_time = 7200\n"
    );
}

#[test]
fn set_persist_writes_live_and_file() {
    let Some(ns) = netns() else { return };
    let root = Root::new("setpersist");
    let out = sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "300",
        "--persist",
        "--root",
        root.arg(),
    ]);
    out.assert_success();
    assert_eq!(read(&ns, "tcp_keepalive_time"), 300);
    let text = std::fs::read_to_string(root.dropin()).unwrap();
    assert_eq!(text, format!("{HEADER}net.ipv4.tcp_keepalive_time = 300\n"));
}

#[test]
fn persist_without_values_takes_the_live_ones() {
    let Some(ns) = netns() else { return };
    let root = Root::new("live");
    sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "900",
        "--interval",
        "30",
        "--count",
        "4",
    ])
    .assert_success();
    sysctl(&["persist", "--netns", ns.name(), "--root", root.arg()]).assert_success();
    assert_eq!(
        std::fs::read_to_string(root.dropin()).unwrap(),
        format!(
            "{HEADER}net.ipv4.tcp_keepalive_time = 900\nnet.ipv4.tcp_keepalive_intvl = 30\n\
             net.ipv4.tcp_keepalive_probes = 4\n"
        )
    );
}

#[test]
fn unknown_namespace_is_one_clear_line() {
    let out = sysctl(&["show", "--netns", "ka-no-such-namespace"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("no network namespace named \"ka-no-such-namespace\""),
        "{out}"
    );
}

#[test]
fn persist_from_another_namespace_needs_a_root() {
    let Some(ns) = netns() else { return };
    let host_dropin = Path::new("/etc/sysctl.d/90-keepalive.conf");
    let before = std::fs::read(host_dropin).ok();
    let set = sysctl(&["set", "--netns", ns.name(), "--idle", "300", "--persist"]);
    let persist = sysctl(&["persist", "--netns", ns.name()]);
    let after = std::fs::read(host_dropin).ok();
    if after != before {
        // Undo a regression's damage before failing.
        match &before {
            Some(bytes) => std::fs::write(host_dropin, bytes).unwrap(),
            None => std::fs::remove_file(host_dropin).unwrap(),
        }
        panic!("the host's drop-in was written\n{set}\n{persist}");
    }
    for out in [&set, &persist] {
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(
            out.stderr
                .contains("give --root with the container's root directory"),
            "{out}"
        );
        assert!(out.stderr.contains("nothing was changed"), "{out}");
    }
    assert_eq!(
        read(&ns, "tcp_keepalive_time"),
        7200,
        "refused before the live write"
    );
}

#[test]
fn set_output_comes_after_every_change() {
    let Some(ns) = netns() else { return };
    let root = Root::new("pipe");
    // stdout closed before the command writes a byte.
    let mut cmd = keepalive();
    cmd.args([
        "sysctl",
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "400",
        "--persist",
        "--root",
        root.arg(),
    ]);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(read(&ns, "tcp_keepalive_time"), 400);
    assert!(
        std::fs::read_to_string(root.dropin())
            .unwrap()
            .contains("net.ipv4.tcp_keepalive_time = 400\n")
    );
}

#[test]
fn set_json_reports_each_change_and_the_new_values() {
    let Some(ns) = netns() else { return };
    let out = sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "10m",
        "--count",
        "9",
        "--json",
    ]);
    out.assert_success();
    let lines = messages(&out);
    let change = |setting: &str, key: &str, old, new| {
        Message::Change(SysctlChange {
            setting: setting.to_owned(),
            key: format!("net.ipv4.{key}"),
            old,
            new,
        })
    };
    let [idle, count, Message::Sysctl(now)] = &lines[..] else {
        panic!("want two changes and the values\n{out}");
    };
    // A new namespace starts at the built-in 7200 / 75 / 9.
    assert_eq!(
        (idle, count),
        (
            &change("idle", "tcp_keepalive_time", 7200, 600),
            &change("count", "tcp_keepalive_probes", 9, 9)
        ),
        "{out}"
    );
    assert_eq!(now.netns.name.as_deref(), Some(ns.name()), "{out}");
    let path = format!("/run/netns/{}", ns.name());
    assert_eq!(now.netns.path.as_deref(), Some(Path::new(&path)), "{out}");
    assert!(!now.netns.current, "{out}");
    // What the kernel now says inside the namespace.
    let kernel = (
        read(&ns, "tcp_keepalive_time"),
        read(&ns, "tcp_keepalive_intvl"),
        read(&ns, "tcp_keepalive_probes"),
    );
    assert_eq!(kernel, (600, 75, 9));
    assert_eq!((now.idle, now.interval, now.count), kernel, "{out}");
    assert_eq!(now.detection_secs, 600 + 75 * 9, "{out}");
}

#[test]
fn persist_json_names_the_dropin_and_the_override() {
    let root = Root::new("json");
    std::fs::create_dir_all(root.0.path().join("etc")).unwrap();
    let conf = root.0.path().join("etc/sysctl.conf");
    std::fs::write(&conf, "# site\nnet.ipv4.tcp_keepalive_time = 7200\n").unwrap();
    let out = sysctl(&["persist", "--root", root.arg(), "--idle", "600", "--json"]);
    out.assert_success();
    let lines = messages(&out);
    assert_eq!(
        lines,
        [
            Message::Persisted(Persisted {
                path: root.dropin(),
                changed: true,
            }),
            Message::Override(Override {
                path: conf,
                line: 2,
                key: "net.ipv4.tcp_keepalive_time".to_owned(),
                value: "7200".to_owned(),
            }),
        ],
        "{out}"
    );
    assert!(root.dropin().is_file());
    let again = sysctl(&["persist", "--root", root.arg(), "--idle", "600", "--json"]);
    assert!(
        matches!(
            messages(&again).first(),
            Some(Message::Persisted(Persisted { changed: false, .. }))
        ),
        "{again}"
    );
}
