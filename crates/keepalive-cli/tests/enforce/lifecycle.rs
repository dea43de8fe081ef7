//! Attaching, listing, removing and cleaning up: judged by what the
//! kernel says is attached (BPF_PROG_QUERY) and what is pinned.

use super::*;

#[test]
fn remove_leaves_no_program_attached_and_no_pin() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("remove");
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let connect = ["connect", "127.0.0.1", &port];

    let enforced = enforce(&["--cgroup", cg.arg(), "--idle", "11", "--interval", "7"]);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [enforced.prog_id],
        "BPF_PROG_QUERY on the cgroup"
    );
    let (status, _) = enforce_status();
    let listed = status
        .iter()
        .find(|e| e.cgroup_id == enforced.cgroup_id)
        .expect("the cgroup in --status");
    assert_eq!(listed.cgroup.as_deref(), Some(cg.path()));
    assert!(listed.attached && listed.link_pinned);
    assert_eq!(listed.prog_id, Some(enforced.prog_id));
    assert_eq!(listed.link_id, Some(enforced.link_id));
    assert_eq!(listed.pin_dir, enforced.pin_dir);
    assert_eq!(listed.settings, Some(settings(11, Some(7), None)));
    assert_eq!(connected(&cg.client(&connect)).on, 1);

    let removed = remove(&["--cgroup", cg.arg()]);
    assert_eq!(removed.cgroup_id, Some(enforced.cgroup_id));
    assert_eq!(removed.cgroup.as_deref(), Some(cg.path()));
    assert_eq!(
        removed
            .detached
            .iter()
            .map(|a| a.prog_id)
            .collect::<Vec<_>>(),
        [enforced.prog_id]
    );
    assert_eq!(
        removed.unpinned.as_deref(),
        Some(enforced.pin_dir.as_path())
    );
    // Judged by the kernel, not by our own bookkeeping.
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [] as [u32; 0],
        "BPF_PROG_QUERY after --remove"
    );
    assert!(!enforced.pin_dir.exists());
    let (status, _) = enforce_status();
    assert!(status.iter().all(|e| e.cgroup_id != enforced.cgroup_id));
    assert_eq!(connected(&cg.client(&connect)), untouched());
}

#[test]
fn run_enforce_passes_the_exit_status_on_and_cleans_up() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let here = Hierarchy::find().unwrap().current().unwrap();
    // The command prints its cgroup's id and whether its settings are
    // pinned, then exits 3.
    let script = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        id=$(stat -c %i "$dir")
        test -e "/sys/fs/bpf/keepalive/cgroup-$id/settings" && pinned=1 || pinned=0
        echo "cgroup id=$id pinned=$pinned"
        exit 3
    "#;
    let mount = Hierarchy::find().unwrap().mount_point().to_path_buf();
    let out = run(
        keepalive()
            .args(["run", "--enforce", "--idle", "5", "--", "sh", "-c", script])
            .arg(&mount),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(3), "{out}");
    let line = out.only("cgroup");
    assert_eq!(line.get("pinned"), 1, "{out}");
    let pins = PathBuf::from(format!("/sys/fs/bpf/keepalive/cgroup-{}", line.get("id")));
    assert!(!pins.exists(), "{} left behind", pins.display());
    let cgroup = here.join(format!("keepalive-run-{}", out.pid));
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());

    // Killed by a signal: so is keepalive.
    let out = run(
        keepalive().args(["run", "--enforce", "--", "sh", "-c", "kill -TERM $$"]),
        TIMEOUT,
    );
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out}");
    assert!(!here.join(format!("keepalive-run-{}", out.pid)).exists());

    let out = run(
        keepalive().args(["run", "--enforce", "--", "no-such-command-here"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(127), "{out}");
}

#[test]
fn errors_name_the_problem() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let out = run(keepalive().args(["enforce", "--cgroup", "/tmp"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("/tmp is not a cgroup v2 directory (cgroup v2 is mounted at "),
        "{out}"
    );

    let out = run(
        keepalive().args(["enforce", "--status", "--idle", "5"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");

    let Some(setpriv) = tool("setpriv") else {
        eprintln!("note: setpriv is not installed, the non-root error is not tested");
        return;
    };
    for args in [
        &["enforce", "--cgroup", "/sys/fs/cgroup"][..],
        &["run", "--enforce", "--", "true"],
    ] {
        let mut cmd = bare(&setpriv);
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(args);
        let out = run(&mut cmd, TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(
            out.stderr.contains("needs root (CAP_BPF and CAP_NET_ADMIN"),
            "{out}"
        );
    }
}

/// The command's own cgroups below the run cgroup: empty ones are removed
/// with it; a process left in one keeps enforcement, and the cgroup stays.
#[test]
fn run_enforce_minds_the_commands_own_cgroups() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let here = Hierarchy::find().unwrap().current().unwrap();
    let mount = Hierarchy::find().unwrap().mount_point().to_path_buf();

    let empty_only = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        mkdir "$dir/empty" "$dir/empty/deeper"
    "#;
    let out = run(
        keepalive()
            .args(["run", "--enforce", "--", "sh", "-c", empty_only])
            .arg(&mount),
        TIMEOUT,
    );
    let left = here.join(format!("keepalive-run-{}", out.pid));
    let was_left = left.exists();
    if was_left {
        // Clean up before asserting.
        let _ = run(
            keepalive()
                .arg("enforce")
                .arg("--cgroup")
                .arg(&left)
                .arg("--remove"),
            TIMEOUT,
        );
        for dir in [left.join("empty/deeper"), left.join("empty"), left.clone()] {
            let _ = std::fs::remove_dir(dir);
        }
    }
    assert!(out.status.success(), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert!(!was_left, "{} left behind\n{out}", left.display());

    let leaves_a_process = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        mkdir "$dir/worker"
        sh -c 'echo $$ > "$1/worker/cgroup.procs"; exec sleep 30' sh "$dir" </dev/null >/dev/null 2>&1 &
        echo "sleeper pid=$!"
        sleep 0.3
    "#;
    let out = run(
        keepalive()
            .args([
                "run",
                "--enforce",
                "--idle",
                "9",
                "--",
                "sh",
                "-c",
                leaves_a_process,
            ])
            .arg(&mount),
        TIMEOUT,
    );
    let cgroup = here.join(format!("keepalive-run-{}", out.pid));
    let sleeper = out.only("sleeper").get("pid") as i32;
    let kept = cgroup.exists();
    let id = std::fs::metadata(&cgroup).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let link_pinned = id
        .as_ref()
        .is_ok_and(|id| PathBuf::from(format!("/sys/fs/bpf/keepalive/cgroup-{id}/link")).exists());
    // Clean up before asserting.
    // SAFETY: kill(2) on the sleeper this test started.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    let worker = cgroup.join("worker");
    for _ in 0..100 {
        if std::fs::read_to_string(worker.join("cgroup.procs"))
            .map_or(true, |p| p.trim().is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let removed = run(
        keepalive()
            .arg("enforce")
            .arg("--cgroup")
            .arg(&cgroup)
            .arg("--remove"),
        TIMEOUT,
    );
    let _ = std::fs::remove_dir(&worker);
    let _ = std::fs::remove_dir(&cgroup);
    assert!(out.status.success(), "{out}");
    assert!(
        out.stderr.contains("keepalive stays enforced there"),
        "{out}"
    );
    assert!(
        kept,
        "the cgroup was removed under a running process\n{out}"
    );
    assert!(
        link_pinned,
        "enforcement ended under a running process\n{out}"
    );
    assert!(removed.status.success(), "{removed}");
}

/// `enforce --status --json` always prints its summary, even when nothing
/// is enforced. Other tests enforce concurrently, so the summary is judged
/// by the lines before it (see [`enforce_status`]), not against zero; one
/// enforcement of our own shows in it while it lasts, and only then.
#[test]
fn status_ends_with_a_summary_that_counts_its_lines() {
    if let Err(e) = keepalive_bpf::check_privileges() {
        skip!("{e}");
    }
    if let Err(e) = Hierarchy::find() {
        skip!("{e}");
    }
    enforce_status();
    let cg = TestCgroup::new("status");
    let ours = enforce(&["--cgroup", cg.arg(), "--idle", "13"]);
    let (listed, summary) = enforce_status();
    let mine: Vec<&Enforcement> = listed
        .iter()
        .filter(|e| e.cgroup_id == ours.cgroup_id)
        .collect();
    assert_eq!(mine.len(), 1, "{listed:#?}");
    assert!(mine[0].attached, "{listed:#?}");
    assert_eq!(mine[0].settings, Some(settings(13, None, None)));
    assert!(
        summary.enforcements >= 1 && summary.attached >= 1,
        "{summary:?}"
    );
    remove(&["--cgroup", cg.arg()]);
    let (listed, _) = enforce_status();
    assert!(
        listed.iter().all(|e| e.cgroup_id != ours.cgroup_id),
        "{listed:#?}"
    );
}
