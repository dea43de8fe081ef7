//! `keepalive status`: what is in effect, read from an image tree made by
//! `install --global --root` and `sysctl persist --root`, with a later
//! sysctl.d file that overrides ours.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::util::{TIMEOUT, bare, preload, run, target_tempdir};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum Line {
    HostStatus(HostStatus),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostStatus {
    #[allow(dead_code, reason = "checked by the other commands' tests")]
    netns: serde::de::IgnoredAny,
    defaults: Defaults,
    persisted: Vec<Persisted>,
    overrides: Vec<Persisted>,
    global_preload: GlobalPreload,
    #[allow(dead_code, reason = "this host's, not the image's")]
    enforcements: serde::de::IgnoredAny,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Defaults {
    idle: u64,
    interval: u64,
    count: u64,
    detection_secs: u64,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Persisted {
    setting: String,
    key: String,
    value: String,
    path: PathBuf,
    line: usize,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct GlobalPreload {
    file: PathBuf,
    entry: Option<PathBuf>,
    library_present: bool,
    loads: Option<bool>,
}

fn keepalive() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_keepalive"));
    cmd.env("KEEPALIVE_LIBRARY", preload());
    cmd
}

fn status_json(root: &std::path::Path) -> HostStatus {
    let out = run(
        keepalive().args(["status", "--json", "--root"]).arg(root),
        TIMEOUT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let Line::HostStatus(s) =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}\n{out}"));
    s
}

#[test]
fn status_of_an_image_shows_the_preload_the_dropin_and_what_overrides_it() {
    let root = target_tempdir("status");
    let r = root.path();
    let empty = status_json(r);
    assert_eq!(empty.global_preload.entry, None, "{empty:?}");
    assert_eq!(empty.global_preload.loads, None);
    assert!(empty.persisted.is_empty() && empty.overrides.is_empty());
    // The defaults are this namespace's, as /proc says.
    let read = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (idle, interval, count) = (
        read("tcp_keepalive_time"),
        read("tcp_keepalive_intvl"),
        read("tcp_keepalive_probes"),
    );
    assert_eq!(
        empty.defaults,
        Defaults {
            idle,
            interval,
            count,
            detection_secs: idle + interval * count
        }
    );

    for args in [
        &["install", "--global", "--root"][..],
        &["sysctl", "persist", "--idle", "10m", "--root"],
    ] {
        run(keepalive().args(args).arg(r), TIMEOUT).assert_success();
    }
    let later = r.join("etc/sysctl.d/99-local.conf");
    std::fs::write(&later, "# local\n\nnet.ipv4.tcp_keepalive_time = 7200\n").unwrap();

    let s = status_json(r);
    let entry = PathBuf::from("/usr/local/lib/keepalive/libkeepalive.so");
    assert_eq!(
        s.global_preload,
        GlobalPreload {
            file: r.join("etc/ld.so.preload"),
            entry: Some(entry),
            library_present: true,
            loads: Some(true),
        }
    );
    let winner = Persisted {
        setting: "idle".into(),
        key: "net.ipv4.tcp_keepalive_time".into(),
        value: "7200".into(),
        path: later.clone(),
        line: 3,
    };
    assert_eq!(s.overrides, [winner]);
    assert!(
        s.persisted
            .iter()
            .any(|p| p.key == "net.ipv4.tcp_keepalive_time" && p.path == later),
        "{s:?}"
    );

    // The same, in words.
    let out = run(keepalive().args(["status", "--root"]).arg(r), TIMEOUT);
    out.assert_success();
    assert!(
        out.stdout
            .contains("global preload: on (/usr/local/lib/keepalive/libkeepalive.so, loads)"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "overridden at boot: {}:3 sets net.ipv4.tcp_keepalive_time = 7200",
            later.display()
        )),
        "{out}"
    );

    // A preload entry whose library is gone: present false, not loaded.
    std::fs::remove_file(r.join("usr/local/lib/keepalive/libkeepalive.so")).unwrap();
    let broken = status_json(r);
    assert!(!broken.global_preload.library_present);
    assert_eq!(broken.global_preload.loads, None);
}
