//! Issue 11: `keepalive enforce --unit NAME [--persist]`, its `--remove`,
//! and what `--status` records, with no systemd on this host: a stand-in
//! `systemctl` first on PATH answers `show` with what the test wrote (a
//! test cgroup as the unit's `ControlGroup`) and logs every call; the
//! systemd files go under `--root DIR`. What is attached is judged by the
//! kernel (BPF_PROG_QUERY) and bpffs, as in the other enforce tests. The
//! real-systemd proof boots a container (another test).

use std::fs;

use tempfile::TempDir;

use super::*;
use crate::util::json::Persisted;

/// A `systemctl` stand-in in a directory of its own, and a `--root`.
struct FakeSystemd {
    bin: TempDir,
    root: TempDir,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let bin = tempfile::tempdir().unwrap();
        let script = bin.path().join("systemctl");
        fs::write(
            &script,
            "#!/bin/sh\n\
             echo \"$*\" >> \"$0.log\"\n\
             case \"$1\" in\n\
             show) cat \"$0.state\" ;;\n\
             daemon-reload) ;;\n\
             *) echo \"unexpected: $*\" >&2; exit 1 ;;\n\
             esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        FakeSystemd {
            bin,
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// What `systemctl show` prints from now on.
    fn show(&self, load: &str, active: &str, control_group: &str) {
        fs::write(
            self.bin.path().join("systemctl.state"),
            format!("LoadState={load}\nActiveState={active}\nControlGroup={control_group}\n"),
        )
        .unwrap();
    }

    /// The calls made so far, one line each.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.bin.path().join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn root(&self) -> &str {
        self.root.path().to_str().unwrap()
    }

    /// `keepalive enforce ARGS` with the stand-in first on PATH.
    fn enforce(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        run(
            keepalive().env("PATH", path).arg("enforce").args(args),
            TIMEOUT,
        )
    }

    fn dropin(&self, unit: &str) -> PathBuf {
        self.root
            .path()
            .join("etc/systemd/system")
            .join(format!("{unit}.d/50-keepalive.conf"))
    }
}

/// The `show` call keepalive makes for `unit`.
fn show_call(unit: &str) -> String {
    format!("show -p LoadState -p ActiveState -p ControlGroup -- {unit}")
}

fn unit_name(name: &str) -> String {
    format!("keepalive-test-{}-{name}.service", std::process::id())
}

/// Root and cgroup v2, without which nothing here can be checked.
fn not_here() -> Option<String> {
    if let Err(e) = keepalive_bpf::check_privileges() {
        return Some(e.to_string());
    }
    Hierarchy::find().err().map(|e| e.to_string())
}

/// The `ControlGroup` systemd would show for a test cgroup.
fn control_group(cg: &TestCgroup) -> String {
    let h = Hierarchy::find().unwrap();
    let rel = cg.path().strip_prefix(h.mount_point()).unwrap();
    format!("/{}", rel.display())
}

#[test]
fn persist_writes_the_exact_dropin_and_remove_takes_it_away() {
    if let Some(why) = not_here() {
        skip!("{why}");
    }
    let systemd = FakeSystemd::new();
    let unit = unit_name("stopped");
    systemd.show("loaded", "inactive", "");
    let out = systemd.enforce(&[
        "--json",
        "--unit",
        &unit,
        "--persist",
        "--root",
        systemd.root(),
        "--idle",
        "60",
        "--count",
        "4",
        "--user-timeout",
        "auto",
    ]);
    out.assert_success();
    let dropin = systemd.dropin(&unit);
    // Not running: the drop-in only, nothing attached now.
    assert_eq!(
        messages(&out),
        [Message::Persisted(Persisted {
            path: dropin.clone(),
            changed: true
        })],
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(&dropin).unwrap(),
        format!(
            "# Written by `keepalive enforce --persist` for {unit};\n\
             # `keepalive enforce --unit {unit} --remove` removes it.\n\
             [Service]\n\
             ExecStartPre=-+{} enforce --unit {unit} --idle 60 --count 4 --user-timeout auto\n",
            env!("CARGO_BIN_EXE_keepalive")
        )
    );
    // Under --root, systemd is asked about the unit but not reloaded.
    assert_eq!(systemd.calls(), [show_call(&unit)]);

    // Listed as persisted though nothing is attached.
    let status = systemd.enforce(&["--json", "--status", "--root", systemd.root()]);
    status.assert_success();
    match messages(&status).pop() {
        Some(Message::EnforceSummary(s)) => {
            assert_eq!(s.persisted_units, std::slice::from_ref(&unit))
        }
        other => panic!("{other:?}\n{status}"),
    }

    let out = systemd.enforce(&[
        "--json",
        "--unit",
        &unit,
        "--remove",
        "--root",
        systemd.root(),
    ]);
    out.assert_success();
    let Message::Removed(removed) = only_message(&out) else {
        panic!("not a removed line\n{out}");
    };
    assert_eq!(
        removed,
        Removed {
            cgroup: None,
            cgroup_id: None,
            unit: Some(unit.clone()),
            detached: vec![],
            setsockopt_detached: vec![],
            unpinned: None,
            left_over: vec![],
            unpersisted: vec![dropin.clone()],
            reloaded: false,
        }
    );
    assert!(!dropin.exists() && !dropin.parent().unwrap().exists());
}

#[test]
fn a_unit_systemd_does_not_know_is_refused_in_one_line() {
    let systemd = FakeSystemd::new();
    systemd.show("not-found", "inactive", "");
    let out = systemd.enforce(&["--unit", "nosuch.service", "--idle", "60", "--persist"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(
        out.stderr_lines(),
        [
            "keepalive: nosuch.service is not loaded (LoadState=not-found): check its name with \
             `systemctl list-units --all nosuch.service`"
        ],
        "{out}"
    );
    assert!(!Path::new("/etc/systemd/system/nosuch.service.d").exists());

    systemd.show("loaded", "inactive", "");
    let out = systemd.enforce(&["--unit", "stopped.service", "--idle", "60"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(
        out.stderr_lines(),
        [
            "keepalive: stopped.service is not running (ActiveState=inactive), so it has no \
             cgroup: start it (`systemctl start stopped.service`), or add --persist to enforce \
             at its every start"
        ],
        "{out}"
    );
    let out = systemd.enforce(&["--unit", "app", "--idle", "60"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("`app.service`"), "{out}");
}

#[test]
fn a_running_unit_is_enforced_listed_with_its_unit_and_removed_whole() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let systemd = FakeSystemd::new();
    let unit = unit_name("running");
    let cg = TestCgroup::new("unit");
    systemd.show("loaded", "active", &control_group(&cg));
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();

    let out = systemd.enforce(&[
        "--json",
        "--unit",
        &unit,
        "--persist",
        "--root",
        systemd.root(),
        "--idle",
        "11",
    ]);
    out.assert_success();
    let dropin = systemd.dropin(&unit);
    let [Message::Persisted(persisted), Message::Enforced(enforced)] = &messages(&out)[..] else {
        panic!("want persisted then enforced\n{out}");
    };
    assert_eq!((&persisted.path, persisted.changed), (&dropin, true));
    assert_eq!(enforced.cgroup, cg.path());
    assert_eq!(enforced.unit.as_deref(), Some(unit.as_str()));
    assert!(enforced.persisted);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [enforced.prog_id],
        "BPF_PROG_QUERY on the unit's cgroup"
    );
    assert_eq!(
        connected(&cg.client(&["connect", "127.0.0.1", &port])).idle,
        11
    );

    let status = enforce_json(&["--status", "--root", systemd.root()]);
    let all = messages(&status);
    let listed = all
        .iter()
        .find_map(|m| match m {
            Message::Enforcement(e) if e.cgroup_id == enforced.cgroup_id => Some(e),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the unit's cgroup in --status\n{status}"));
    assert_eq!(listed.unit.as_deref(), Some(unit.as_str()));
    assert_eq!(listed.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(listed.path.as_deref(), Some(cg.path()));
    assert!(listed.persisted && listed.attached && listed.link_pinned);
    let Some(Message::EnforceSummary(summary)) = all.last() else {
        panic!("no summary\n{status}");
    };
    assert_eq!(summary.persisted_units, std::slice::from_ref(&unit));

    let out = systemd.enforce(&[
        "--json",
        "--unit",
        &unit,
        "--remove",
        "--root",
        systemd.root(),
    ]);
    out.assert_success();
    let Message::Removed(removed) = only_message(&out) else {
        panic!("not a removed line\n{out}");
    };
    assert_eq!(removed.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(removed.cgroup_id, Some(enforced.cgroup_id));
    assert_eq!(
        removed
            .detached
            .iter()
            .map(|d| d.prog_id)
            .collect::<Vec<_>>(),
        [enforced.prog_id]
    );
    assert_eq!(
        removed.unpinned.as_deref(),
        Some(enforced.pin_dir.as_path())
    );
    assert_eq!(removed.unpersisted, std::slice::from_ref(&dropin));
    assert!(!removed.reloaded);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [] as [u32; 0],
        "BPF_PROG_QUERY after --remove"
    );
    assert!(!enforced.pin_dir.exists() && !dropin.exists());
    assert_eq!(
        connected(&cg.client(&["connect", "127.0.0.1", &port])),
        untouched()
    );
    // No reload under --root: systemd was only asked where the unit is.
    assert!(
        systemd.calls().iter().all(|c| c == &show_call(&unit)),
        "{:?}",
        systemd.calls()
    );
}

#[test]
fn a_unit_restarted_in_a_new_cgroup_leaves_no_pins_behind() {
    if let Some(why) = not_here() {
        skip!("{why}");
    }
    let systemd = FakeSystemd::new();
    let unit = unit_name("restart");
    let cg = TestCgroup::new("unit-restart");
    systemd.show("loaded", "active", &control_group(&cg));
    let out = systemd.enforce(&["--json", "--unit", &unit, "--idle", "30"]);
    out.assert_success();
    let Message::Enforced(first) = only_message(&out) else {
        panic!("not an enforced line\n{out}");
    };
    assert!(!first.persisted);
    // The unit stops: systemd removes its cgroup.
    fs::remove_dir(cg.path()).unwrap();
    systemd.show("loaded", "inactive", "");
    let (status, _) = enforce_status();
    let gone = status
        .iter()
        .find(|e| e.cgroup_id == first.cgroup_id)
        .expect("still listed, as gone");
    assert_eq!(gone.cgroup, None, "shown as gone");
    assert!(!gone.attached);
    assert_eq!(gone.unit.as_deref(), Some(unit.as_str()));
    assert_eq!(gone.path.as_deref(), Some(cg.path()));

    let out = systemd.enforce(&["--json", "--unit", &unit, "--remove"]);
    out.assert_success();
    let Message::Removed(removed) = only_message(&out) else {
        panic!("not a removed line\n{out}");
    };
    assert_eq!(removed.cgroup_id, None);
    assert_eq!(removed.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(removed.left_over, std::slice::from_ref(&first.pin_dir));
    assert!(!first.pin_dir.exists(), "bpffs holds no pin for it");
    let (status, _) = enforce_status();
    assert!(status.iter().all(|e| e.cgroup_id != first.cgroup_id));
}

#[test]
fn removing_a_removed_cgroup_by_its_path_removes_its_pins() {
    if let Some(why) = not_here() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("rmdir");
    let enforced = enforce(&["--cgroup", cg.arg(), "--idle", "30"]);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [enforced.prog_id],
        "BPF_PROG_QUERY before rmdir"
    );
    fs::remove_dir(cg.path()).expect("rmdir the enforced cgroup");

    let (status, _) = enforce_status();
    let gone = status
        .iter()
        .find(|e| e.cgroup_id == enforced.cgroup_id)
        .expect("listed, as gone");
    assert_eq!((gone.cgroup.as_deref(), gone.attached), (None, false));
    assert_eq!(gone.path.as_deref(), Some(cg.path()));
    assert_eq!((gone.unit.as_deref(), gone.persisted), (None, false));

    let removed = remove(&["--cgroup", cg.arg()]);
    assert_eq!(removed.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(removed.cgroup_id, None);
    assert_eq!(removed.unpinned, None);
    assert_eq!(removed.left_over, std::slice::from_ref(&enforced.pin_dir));
    assert!(!enforced.pin_dir.exists(), "bpffs holds no pin for it");
    let (status, _) = enforce_status();
    assert!(status.iter().all(|e| e.cgroup_id != enforced.cgroup_id));

    // Again: neither a cgroup nor enforced any more, an error.
    let again = run(
        keepalive().args(["enforce", "--remove", "--cgroup", cg.arg()]),
        TIMEOUT,
    );
    assert_eq!(again.status.code(), Some(2), "{again}");
    assert!(again.stderr.contains(cg.arg()), "{again}");
}
