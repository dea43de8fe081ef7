//! The program against the running kernel: root only, skipped otherwise.

use std::path::{Path, PathBuf};

use keepalive::{ProbeCount, Seconds, UserTimeout};
use keepalive_bpf::{Change, Hierarchy, Policy};

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
    };
    let attached = keepalive_bpf::enforce(cg.path(), &first).unwrap();
    assert_eq!(attached.change, Change::Attached);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [attached.attachment.prog_id]
    );
    assert!(attached.pin_dir.join("link").exists());
    assert!(attached.pin_dir.join("settings").exists());

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
    assert!(ours.link_pinned);

    let removed = keepalive_bpf::remove(cg.path()).unwrap();
    assert_eq!(removed.detached, [attached.attachment]);
    assert_eq!(
        removed.unpinned.as_deref(),
        Some(attached.pin_dir.as_path())
    );
    assert_eq!(keepalive_bpf::attached_programs(cg.path()).unwrap(), []);
    assert!(!attached.pin_dir.exists());

    // Removing again finds nothing to do.
    let again = keepalive_bpf::remove(cg.path()).unwrap();
    assert_eq!((again.detached, again.unpinned), (vec![], None));
}
