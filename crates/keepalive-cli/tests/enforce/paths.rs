//! `--cgroup` relative to the cgroup2 mount, and the root cgroup only with
//! `--all`.

use super::*;

#[test]
fn a_relative_cgroup_is_under_the_cgroup2_mount_and_said() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("relative");
    let relative = cg.path().file_name().unwrap().to_str().unwrap().to_owned();
    let out = run(
        keepalive().args(["enforce", "--json", "--idle", "41", "--cgroup", &relative]),
        TIMEOUT,
    );
    out.assert_success();
    assert!(
        out.stderr
            .contains(&format!("cgroup {relative} is {}", cg.path().display())),
        "the resolved path is said\n{out}"
    );
    let Message::Enforced(e) = only_message(&out) else {
        panic!("not an enforced line\n{out}");
    };
    assert_eq!(e.cgroup, cg.path(), "{out}");
    // The kernel agrees: a client in that cgroup gets the value.
    let server = listener("127.0.0.1").expect("a loopback listener");
    let port = server.local_addr().unwrap().port().to_string();
    let got = connected(&cg.client(&["connect", "127.0.0.1", &port]));
    assert_eq!(got.idle, 41, "{got:?}");
    let removed = remove(&["--cgroup", &relative]);
    assert_eq!(removed.detached.len(), 1, "{removed:?}");
}

#[test]
fn the_root_cgroup_needs_all() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let mount = Hierarchy::find().unwrap().mount_point().to_path_buf();
    for given in [mount.to_str().unwrap(), "."] {
        let out = run(
            keepalive().args(["enforce", "--idle", "60", "--cgroup", given]),
            TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(
            out.stderr
                .contains("is the root cgroup: every process on this host; give --all"),
            "{out}"
        );
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.starts_with("keepalive: "))
                .count(),
            1,
            "{out}"
        );
    }
    // Nothing was attached to the root cgroup.
    let (all, _) = enforce_status();
    assert!(
        all.iter()
            .all(|e| e.cgroup.as_deref() != Some(mount.as_path())),
        "{all:?}"
    );
    // --all with --cgroup is a usage error.
    let out = run(
        keepalive().args(["enforce", "--all", "--cgroup", "x", "--idle", "60"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
}
