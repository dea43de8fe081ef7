//! The program against the running kernel: root only, skipped otherwise.

use std::path::{Path, PathBuf};

use keepalive::{ProbeCount, Seconds, UserTimeout};
use keepalive_bpf::{Change, Hierarchy, Origin, Policy};

/// True when this process may load BPF programs; prints why not otherwise.
fn privileged() -> bool {
    match keepalive_bpf::check_privileges() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

/// A cgroup for one test, removed (with whatever is attached) when dropped.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(name: &str) -> Option<TestCgroup> {
        let h = match Hierarchy::find() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("skipped: {e}");
                return None;
            }
        };
        let path = h
            .mount_point()
            .join(format!("keepalive-bpf-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).expect("create the test cgroup");
        Some(TestCgroup(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = keepalive_bpf::remove(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn verifier_accepts_the_program() {
    if !privileged() {
        return;
    }
    let id = keepalive_bpf::verify_program().unwrap_or_else(|e| panic!("{e}"));
    assert!(id > 0);
}

#[test]
fn attach_update_status_remove() {
    if !privileged() {
        return;
    }
    let Some(cg) = TestCgroup::new("cycle") else {
        return;
    };
    assert_eq!(keepalive_bpf::attached_programs(cg.path()).unwrap(), []);

    let first = Policy {
        idle: Some(Seconds::new(11).unwrap()),
        interval: Some(Seconds::new(7).unwrap()),
        count: Some(ProbeCount::new(3).unwrap()),
        user_timeout: Some(UserTimeout::Auto),
        force: false,
        max_idle: None,
    };
    let attached = keepalive_bpf::enforce(cg.path(), &first).unwrap();
    assert_eq!(attached.change, Change::Attached);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [attached.attachment.prog_id]
    );
    let setsockopt = attached.setsockopt.expect("the setsockopt companion");
    assert_eq!(
        keepalive_bpf::attached_setsockopt_programs(cg.path()).unwrap(),
        [setsockopt.prog_id]
    );
    assert!(attached.pin_dir.join("link").exists());
    assert!(attached.pin_dir.join("link-setsockopt").exists());
    assert!(attached.pin_dir.join("settings").exists());
    assert!(std::path::Path::new(keepalive_bpf::CLAIMS_PIN).exists());

    let second = Policy {
        idle: Some(Seconds::new(22).unwrap()),
        force: true,
        ..first
    };
    let updated = keepalive_bpf::enforce(cg.path(), &second).unwrap();
    assert_eq!(updated.change, Change::Updated);
    assert_eq!(updated.previous, Some(first));
    // The same program: the settings changed in its map, no reload.
    assert_eq!(updated.attachment, attached.attachment);

    let status = keepalive_bpf::status().unwrap();
    let ours = status
        .iter()
        .find(|e| e.cgroup_id == attached.cgroup_id)
        .expect("the cgroup in the status");
    assert_eq!(ours.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(ours.policy, Some(second));
    assert_eq!(ours.attachment, Some(attached.attachment));
    assert_eq!(ours.setsockopt, Some(setsockopt));
    assert!(ours.link_pinned);

    let removed = keepalive_bpf::remove(cg.path()).unwrap();
    assert_eq!(removed.detached, [attached.attachment]);
    assert_eq!(removed.detached_setsockopt, [setsockopt]);
    assert_eq!(
        removed.unpinned.as_deref(),
        Some(attached.pin_dir.as_path())
    );
    assert_eq!(keepalive_bpf::attached_programs(cg.path()).unwrap(), []);
    assert_eq!(
        keepalive_bpf::attached_setsockopt_programs(cg.path()).unwrap(),
        []
    );
    assert!(!attached.pin_dir.exists());

    // Removing again finds nothing to do.
    let again = keepalive_bpf::remove(cg.path()).unwrap();
    assert_eq!((again.detached, again.unpinned), (vec![], None));
}

fn policy(idle: u64) -> Policy {
    Policy {
        idle: Some(Seconds::new(idle).unwrap()),
        interval: None,
        count: None,
        user_timeout: None,
        force: false,
        max_idle: None,
    }
}

#[test]
fn the_origin_is_recorded_and_kept_by_a_path_update() {
    if !privileged() {
        return;
    }
    let Some(cg) = TestCgroup::new("origin") else {
        return;
    };
    let by_unit = Origin::unit("origin-test.service", cg.path(), true);
    let attached = keepalive_bpf::enforce_for(&by_unit, &policy(30)).unwrap();
    assert_eq!(attached.origin, by_unit);
    // The record is a symlink beside the pins, its target the text.
    let record = std::fs::read_link(attached.pin_dir.join("origin")).unwrap();
    assert_eq!(
        record.to_str().unwrap(),
        format!(
            "keepalive-enforcement 1\npath {}\nunit origin-test.service\npersisted yes\n",
            cg.path().canonicalize().unwrap().display()
        )
    );
    // Updated by path: still recorded as the unit's.
    let updated = keepalive_bpf::enforce(cg.path(), &policy(40)).unwrap();
    assert_eq!(updated.change, Change::Updated);
    assert_eq!(updated.origin, by_unit);
    let listed = keepalive_bpf::status().unwrap();
    let ours = listed
        .iter()
        .find(|e| e.cgroup_id == attached.cgroup_id)
        .expect("listed");
    assert_eq!(ours.origin.as_ref(), Some(&by_unit));
    // A new record replaces the old one whole, and leaves no temporary name.
    let by_other = Origin::unit("other.service", cg.path(), false);
    assert_eq!(
        keepalive_bpf::enforce_for(&by_other, &policy(40))
            .unwrap()
            .origin,
        by_other
    );
    let mut names: Vec<String> = std::fs::read_dir(&attached.pin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["link", "link-setsockopt", "origin", "settings"]);
}

#[test]
fn removing_a_removed_cgroup_removes_its_pins() {
    if !privileged() {
        return;
    }
    let Some(cg) = TestCgroup::new("gone") else {
        return;
    };
    let attached = keepalive_bpf::enforce(cg.path(), &policy(30)).unwrap();
    std::fs::remove_dir(cg.path()).expect("rmdir the enforced cgroup");
    let listed = keepalive_bpf::status().unwrap();
    let ours = listed
        .iter()
        .find(|e| e.cgroup_id == attached.cgroup_id)
        .expect("still listed");
    assert_eq!((&ours.cgroup, ours.attachment), (&None, None));
    // What it was made for outlives the cgroup.
    assert_eq!(ours.origin.as_ref(), Some(&attached.origin));
    assert!(
        attached
            .origin
            .path
            .ends_with(cg.path().file_name().unwrap())
    );

    let removed = keepalive_bpf::remove(cg.path()).unwrap();
    assert_eq!(removed.cgroup_id, None);
    assert_eq!(removed.left_over, std::slice::from_ref(&attached.pin_dir));
    assert!(!attached.pin_dir.exists(), "the pins are gone");
    assert!(
        keepalive_bpf::status()
            .unwrap()
            .iter()
            .all(|e| e.cgroup_id != attached.cgroup_id)
    );
    // Again: neither a cgroup nor enforced, an error naming the path.
    let err = keepalive_bpf::remove(cg.path()).unwrap_err();
    assert!(
        err.to_string().contains(cg.path().to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn removing_a_unit_removes_the_pins_of_its_earlier_cgroups() {
    if !privileged() {
        return;
    }
    // Two starts of a unit: two cgroups, the first one gone.
    let (Some(first), Some(second)) = (TestCgroup::new("start1"), TestCgroup::new("start2")) else {
        return;
    };
    let unit = format!("keepalive-test-{}.service", std::process::id());
    let old =
        keepalive_bpf::enforce_for(&Origin::unit(&unit, first.path(), true), &policy(30)).unwrap();
    std::fs::remove_dir(first.path()).unwrap();
    let new =
        keepalive_bpf::enforce_for(&Origin::unit(&unit, second.path(), true), &policy(30)).unwrap();
    // The second enforce pruned the first's pins already (not attached).
    assert!(!old.pin_dir.exists());

    let removed = keepalive_bpf::remove_for(Some(second.path()), Some(&unit)).unwrap();
    assert_eq!(removed.cgroup_id, Some(new.cgroup_id));
    assert_eq!(removed.detached, [new.attachment]);
    assert_eq!(removed.detached_setsockopt, [new.setsockopt.unwrap()]);
    assert_eq!(removed.unpinned.as_deref(), Some(new.pin_dir.as_path()));
    assert_eq!(keepalive_bpf::attached_programs(second.path()).unwrap(), []);

    // A unit whose cgroup is gone: found by the unit alone.
    let again =
        keepalive_bpf::enforce_for(&Origin::unit(&unit, second.path(), true), &policy(30)).unwrap();
    std::fs::remove_dir(second.path()).unwrap();
    let removed = keepalive_bpf::remove_for(None, Some(&unit)).unwrap();
    assert_eq!(removed.left_over, std::slice::from_ref(&again.pin_dir));
    assert_eq!(removed.cgroup.as_deref(), Some(again.origin.path.as_path()));
    assert!(!again.pin_dir.exists());
    assert!(
        keepalive_bpf::remove_for(None, Some(&unit))
            .unwrap()
            .is_empty()
    );
}
