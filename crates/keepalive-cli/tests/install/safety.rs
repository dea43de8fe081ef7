//! Symbolic links, a closed stdout and a concurrent writer.

use super::*;

/// Every file under `dir` with its content (a link as its target), sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let to = std::fs::read_link(&path).unwrap();
                out.push((path, to.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                out.push((path.clone(), Vec::new()));
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_and_uninstall_refuse_to_write_through_symlinks() {
    let outside = Root::new("outside");
    std::fs::write(outside.path().join("ld.so.preload"), OTHERS).unwrap();
    std::fs::create_dir_all(outside.path().join("lib")).unwrap();
    std::fs::copy(preload(), outside.path().join("lib/libkeepalive.so")).unwrap();
    let before = tree(outside.path());
    let cases: [(&str, &str, &Path, &[&str]); 7] = [
        ("link-etc", "etc", outside.path(), &["install", "--global"]),
        (
            "link-preload",
            "etc/ld.so.preload",
            &outside.path().join("ld.so.preload"),
            &["install", "--global"],
        ),
        (
            "link-uninstall",
            "etc/ld.so.preload",
            &outside.path().join("ld.so.preload"),
            &["uninstall", "--global"],
        ),
        ("link-usr", "usr", outside.path(), &["install"]),
        ("link-local", "usr/local", outside.path(), &["install"]),
        (
            "link-libdir",
            "usr/local/lib/keepalive",
            &outside.path().join("lib"),
            &["install", "--global"],
        ),
        (
            "link-lib",
            ENTRY.trim_start_matches('/'),
            &outside.path().join("lib/libkeepalive.so"),
            &["install"],
        ),
    ];
    for (name, link, to, args) in cases {
        let root = Root::new(name);
        let link = root.path().join(link);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, &link).unwrap();
        let inside = tree(root.path());
        let out = root.keepalive(args);
        assert_eq!(out.status.code(), Some(2), "{name}\n{out}");
        assert!(out.stderr.contains("symbolic link"), "{name}\n{out}");
        assert!(
            out.stderr.contains(&link.display().to_string()),
            "{name}: the message names the link\n{out}"
        );
        assert_eq!(tree(root.path()), inside, "{name}: nothing written\n{out}");
        assert_eq!(
            tree(outside.path()),
            before,
            "{name}: nothing outside\n{out}"
        );
    }
}

#[test]
fn a_closed_stdout_does_not_stop_the_work() {
    let root = Root::new("pipe");
    root.write_preload_file(OTHERS);
    // `keepalive ... | true`: the reading end is closed before it prints.
    let closed = |args: &[&str]| -> Output {
        let mut child = spawn(keepalive().args(args).arg("--root").arg(root.path()));
        drop(child.stdout.take());
        wait(child, TIMEOUT)
    };
    let out = closed(&["install", "--global"]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(
        text(&root.preload_file()),
        format!("{OTHERS}{ENTRY}\n"),
        "{out}"
    );
    assert!(root.library().is_file(), "{out}");
    let out = closed(&["uninstall", "--global"]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(text(&root.preload_file()), OTHERS, "{out}");
}

/// An exclusive flock(2) on `file`, released when the file is closed.
fn flock_exclusive(file: &std::fs::File) {
    // SAFETY: flock(2) on a descriptor `file` keeps open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
}

/// Runs `keepalive <args>` while this test holds the lock on `<root>/etc`,
/// waits until /proc/locks shows it waiting for the lock, lets `edit`
/// change ld.so.preload meanwhile (as another writer would), releases the
/// lock and returns what the command did.
fn run_behind_the_lock(root: &Root, args: &[&str], edit: impl FnOnce()) -> Output {
    let etc = std::fs::File::open(root.path().join("etc")).unwrap();
    flock_exclusive(&etc);
    let before = snapshot(&root.preload_file());
    let child = spawn(keepalive().args(args).arg("--root").arg(root.path()));
    let pid = child.id().to_string();
    let deadline = Instant::now() + TIMEOUT;
    let mut child = Some(child);
    loop {
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        let waiting = locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"->") && fields.contains(&"FLOCK") && fields.contains(&&*pid)
        });
        if waiting {
            break;
        }
        let c = child.as_mut().unwrap();
        if c.try_wait().unwrap().is_some() || Instant::now() >= deadline {
            let out = wait(child.take().unwrap(), TIMEOUT);
            panic!("keepalive {args:?} did not wait for the lock on <root>/etc\n{out}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(snapshot(&root.preload_file()), before);
    edit();
    drop(etc);
    wait(child.unwrap(), TIMEOUT)
}

#[test]
fn install_and_uninstall_edit_ld_so_preload_under_a_lock() {
    if !Path::new("/proc/locks").exists() {
        skip!("no /proc/locks to see a process wait for a lock");
    }
    let root = Root::new("lock");
    root.write_preload_file(OTHERS);
    let out = run_behind_the_lock(&root, &["install", "--global"], || {
        std::fs::write(root.preload_file(), format!("{OTHERS}/opt/other.so\n")).unwrap();
    });
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(
        text(&root.preload_file()),
        format!("{OTHERS}/opt/other.so\n{ENTRY}\n"),
        "the edit made while it waited is kept\n{out}"
    );

    let out = run_behind_the_lock(&root, &["uninstall", "--global"], || {
        std::fs::write(
            root.preload_file(),
            format!("{OTHERS}/opt/other.so\n{ENTRY}\n/opt/third.so\n"),
        )
        .unwrap();
    });
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(
        text(&root.preload_file()),
        format!("{OTHERS}/opt/other.so\n/opt/third.so\n"),
        "{out}"
    );
}
