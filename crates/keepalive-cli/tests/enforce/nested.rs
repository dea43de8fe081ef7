//! Issue 10 item 3: enforcements on a cgroup and on one below it. The
//! kernel runs the child's programs before the parent's (and the last
//! setsockopt wins); the programs agree through the socket storage claim
//! that the most specific cgroup decides. Judged by the static C client.

use super::max_idle::steps_in;
use super::*;

/// A cgroup below a [`TestCgroup`], removed (with its enforcement) first.
struct Child(PathBuf);

impl Child {
    fn new(parent: &TestCgroup, name: &str) -> Child {
        let path = parent.path().join(name);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("create the cgroup {}: {e}", path.display()));
        Child(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("UTF-8")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = keepalive_bpf::remove(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn the_childs_values_win_whatever_the_order_of_attaching() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    for parent_first in [true, false] {
        let parent = TestCgroup::new(&format!("nested-{parent_first}"));
        let child = Child::new(&parent, "app");
        let other = Child::new(&parent, "other");
        let enforce_parent = || enforce(&["--cgroup", parent.arg(), "--idle", "100"]);
        let enforce_child = || enforce(&["--cgroup", child.arg(), "--idle", "20"]);
        if parent_first {
            enforce_parent();
            enforce_child();
        } else {
            enforce_child();
            enforce_parent();
        }
        let order = if parent_first {
            "parent first"
        } else {
            "child first"
        };
        let got = steps_in(&child.0, &["connect"]);
        assert_eq!((got.on, got.idle), (1, 20), "{order}: the child's");
        // A sibling without its own enforcement gets the parent's, and so
        // does the parent's own process.
        assert_eq!(steps_in(&other.0, &["connect"]).idle, 100, "{order}");
        assert_eq!(steps_in(parent.path(), &["connect"]).idle, 100, "{order}");
    }
}

#[test]
fn a_child_in_default_mode_is_not_capped_by_a_parents_max_idle() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let parent = TestCgroup::new("nested-max-idle");
    let child = Child::new(&parent, "app");
    enforce(&["--cgroup", parent.arg(), "--max-idle", "10"]);
    // Under the parent alone: capped.
    let capped = steps_in(&child.0, &["connect", "off", "idle=3600"]);
    assert_eq!(capped.on, 1);
    assert!(capped.idle <= 10, "{capped:?}");

    // The child's own enforcement (default mode) decides for its sockets:
    // its values at establishment, the program's later calls its own.
    enforce(&["--cgroup", child.arg(), "--idle", "30"]);
    assert_eq!(steps_in(&child.0, &["connect"]).idle, 30);
    let own = steps_in(&child.0, &["connect", "idle=3600", "off"]);
    assert_eq!(
        (own.on, own.idle),
        (0, 3600),
        "the child's mode, not the parent's"
    );
    // The parent's other processes stay capped.
    let parents = steps_in(parent.path(), &["connect", "off", "idle=3600"]);
    assert_eq!(parents.on, 1);
    assert!(parents.idle <= 10, "{parents:?}");

    // A child under --max-idle below a parent under --force: the child's cap.
    enforce(&["--cgroup", parent.arg(), "--force", "--idle", "100"]);
    enforce(&["--cgroup", child.arg(), "--max-idle", "15"]);
    let child_capped = steps_in(&child.0, &["connect", "idle=3600"]);
    assert_eq!(child_capped.on, 1);
    assert!(child_capped.idle <= 15, "{child_capped:?}");
    assert_eq!(steps_in(parent.path(), &["connect", "idle=3600"]).idle, 100);

    // The child's enforcement removed: its new sockets follow the parent.
    remove(&["--cgroup", child.arg()]);
    assert_eq!(steps_in(&child.0, &["connect", "idle=3600"]).idle, 100);
    assert_eq!(
        keepalive_bpf::attached_setsockopt_programs(&child.0).unwrap(),
        Vec::<u32>::new()
    );
}
