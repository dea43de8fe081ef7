//! `keepalive sysctl set`, judged by `cat` inside the test namespace.

use super::*;

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
            .contains("net.ipv4.tcp_keepalive_time: 7200 (2h) -> 600 (10m)\n"),
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
            .contains("net.ipv4.tcp_keepalive_time: 7200 (2h) (unchanged)\n"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_keepalive_probes: 9 -> 5\n"),
        "{out}"
    );
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
