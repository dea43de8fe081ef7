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

mod persist;
mod set;

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
fn unknown_namespace_is_one_clear_line() {
    let out = sysctl(&["show", "--netns", "ka-no-such-namespace"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("no network namespace named \"ka-no-such-namespace\""),
        "{out}"
    );
}
