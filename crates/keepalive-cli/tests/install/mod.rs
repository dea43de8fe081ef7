//! `keepalive install` and `keepalive uninstall`, always under `--root` in
//! a directory of the test's own: the host's /etc/ld.so.preload is never
//! touched.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::util::{
    Output, TIMEOUT, bare, is_root, nodelay_lib, preload, run, skip, spawn, target_tempdir, tool,
    wait,
};

/// The entry `install --global` writes.
const ENTRY: &str = "/usr/local/lib/keepalive/libkeepalive.so";

/// A file with other entries, comments, a blank line and odd spacing.
const OTHERS: &str = "# site-wide preloads\n\
                      /usr/lib/libfoo.so  /opt/bar.so:/opt/baz.so # tail comment\n\
                      \n\
                      \t/usr/lib/libqux.so\n\
                      # end\n";

/// A directory standing for `/`, under the cargo target (not /tmp, which
/// may be mounted noexec and then nothing loads from it); removed when
/// dropped.
struct Root(tempfile::TempDir);

impl Root {
    fn new(name: &str) -> Root {
        Root(target_tempdir(&format!("install-{name}")))
    }

    /// The directory.
    fn path(&self) -> &Path {
        self.0.path()
    }

    /// `<root>/etc/ld.so.preload`.
    fn preload_file(&self) -> PathBuf {
        self.path().join("etc/ld.so.preload")
    }

    /// `<root>/usr/local/lib/keepalive/libkeepalive.so`.
    fn library(&self) -> PathBuf {
        self.path().join(ENTRY.trim_start_matches('/'))
    }

    fn write_preload_file(&self, text: &str) {
        std::fs::create_dir_all(self.path().join("etc")).unwrap();
        std::fs::write(self.preload_file(), text).unwrap();
    }

    /// `keepalive <args> --root <root>`.
    fn keepalive(&self, args: &[&str]) -> Output {
        run(
            keepalive().args(args).arg("--root").arg(self.path()),
            TIMEOUT,
        )
    }

    /// Like [`keepalive`](Self::keepalive), and asserts exit status 0.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.keepalive(args);
        assert_eq!(out.status.code(), Some(0), "keepalive {args:?}\n{out}");
        out
    }
}

/// `keepalive` with the test's library and none of the preload's variables.
fn keepalive() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_keepalive"));
    cmd.env("KEEPALIVE_LIBRARY", preload());
    cmd
}

/// A file's content, inode and modification time: equal snapshots mean the
/// file was neither rewritten nor replaced. `None` when it does not exist.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    ino: u64,
    mtime: SystemTime,
}

fn snapshot(path: &Path) -> Option<Snapshot> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Snapshot {
        bytes: std::fs::read(path).unwrap(),
        ino: meta.ino(),
        mtime: meta.modified().unwrap(),
    })
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_copies_the_library_and_leaves_ld_so_preload_alone() {
    let root = Root::new("local");
    let out = root.ok(&["install"]);
    assert_eq!(
        std::fs::read(root.library()).unwrap(),
        std::fs::read(preload()).unwrap(),
        "{out}"
    );
    assert_eq!(mode(&root.library()), 0o644);
    assert!(out.stdout.starts_with("copied "), "{out}");
    assert!(!root.preload_file().exists(), "{out}");
    assert!(!root.path().join("etc").exists(), "{out}");

    let before = snapshot(&root.library());
    let again = root.ok(&["install"]);
    assert_eq!(snapshot(&root.library()), before, "{again}");
    assert!(again.stdout.contains("is up to date"), "{again}");
}

#[test]
fn install_global_creates_ld_so_preload() {
    let root = Root::new("create");
    let out = root.ok(&["install", "--global"]);
    assert_eq!(text(&root.preload_file()), format!("{ENTRY}\n"), "{out}");
    assert_eq!(mode(&root.preload_file()), 0o644);
    assert_eq!(
        std::fs::read(root.library()).unwrap(),
        std::fs::read(preload()).unwrap()
    );
    // The note: where unset values come from, how to opt out and undo.
    assert!(out.stdout.contains("keepalive sysctl"), "{out}");
    assert!(out.stdout.contains("KEEPALIVE=off"), "{out}");
    assert!(out.stdout.contains("keepalive uninstall --global"), "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn install_global_keeps_other_entries_and_comments() {
    let root = Root::new("others");
    root.write_preload_file(OTHERS);
    std::fs::set_permissions(root.preload_file(), PermissionsExt::from_mode(0o600)).unwrap();
    let out = root.ok(&["install", "--global"]);
    assert_eq!(
        text(&root.preload_file()),
        format!("{OTHERS}{ENTRY}\n"),
        "{out}"
    );
    assert_eq!(mode(&root.preload_file()), 0o600, "the file's mode is kept");
}

#[test]
fn install_global_without_trailing_newline() {
    let root = Root::new("newline");
    root.write_preload_file("/usr/lib/libfoo.so");
    root.ok(&["install", "--global"]);
    assert_eq!(
        text(&root.preload_file()),
        format!("/usr/lib/libfoo.so\n{ENTRY}\n")
    );
}

#[test]
fn install_global_twice_changes_nothing() {
    let root = Root::new("twice");
    root.write_preload_file(OTHERS);
    root.ok(&["install", "--global"]);
    let file = snapshot(&root.preload_file());
    let library = snapshot(&root.library());
    let out = root.ok(&["install", "--global"]);
    assert_eq!(snapshot(&root.preload_file()), file, "{out}");
    assert_eq!(snapshot(&root.library()), library, "{out}");
    assert!(out.stdout.contains("already installed"), "{out}");
    assert!(out.stdout.contains("is up to date"), "{out}");
}

#[test]
fn install_global_when_our_entry_is_already_among_others() {
    let root = Root::new("present");
    let original = format!("/usr/lib/libfoo.so {ENTRY}:/opt/bar.so\n");
    root.write_preload_file(&original);
    let out = root.ok(&["install", "--global"]);
    assert_eq!(text(&root.preload_file()), original, "{out}");
    assert!(out.stdout.contains("already installed"), "{out}");
}

#[test]
fn uninstall_restores_the_original_bytes() {
    let root = Root::new("restore");
    root.write_preload_file(OTHERS);
    root.ok(&["install", "--global"]);
    let out = root.ok(&["uninstall", "--global"]);
    assert_eq!(text(&root.preload_file()), OTHERS, "{out}");
    assert!(out.stdout.starts_with("removed "), "{out}");
    // The library stays, for `keepalive run`.
    assert!(root.library().is_file(), "{out}");

    let before = snapshot(&root.preload_file());
    let again = root.ok(&["uninstall", "--global"]);
    assert_eq!(snapshot(&root.preload_file()), before, "{again}");
    assert!(again.stdout.starts_with("not installed"), "{again}");
}

#[test]
fn uninstall_removes_the_file_install_created() {
    let root = Root::new("created");
    root.ok(&["install", "--global"]);
    let out = root.ok(&["uninstall", "--global"]);
    assert!(!root.preload_file().exists(), "{out}");
    assert!(root.library().is_file(), "{out}");
    let again = root.ok(&["uninstall", "--global"]);
    assert!(again.stdout.starts_with("not installed"), "{again}");
    assert!(!root.preload_file().exists(), "{again}");
}

#[test]
fn uninstall_keeps_the_other_entries_of_our_line() {
    let root = Root::new("line");
    root.write_preload_file(&format!("/usr/lib/libfoo.so {ENTRY}:/opt/bar.so # ours\n"));
    root.ok(&["uninstall", "--global"]);
    assert_eq!(
        text(&root.preload_file()),
        "/usr/lib/libfoo.so /opt/bar.so # ours\n"
    );
}

/// Runs `install --global --library <lib>` where `lib` must be refused, and
/// checks that nothing changed: ld.so.preload and the installed library
/// (or their absence) are exactly as before, inode and mtime included.
fn assert_refused(root: &Root, lib: &Path, expected: &str) -> Output {
    assert_refused_by(root, &["install", "--global"], lib, expected)
}

/// [`assert_refused`] for `<args> --library <lib>`.
fn assert_refused_by(root: &Root, args: &[&str], lib: &Path, expected: &str) -> Output {
    let file = snapshot(&root.preload_file());
    let library = snapshot(&root.library());
    let mut args = args.to_vec();
    args.extend(["--library", lib.to_str().unwrap()]);
    let out = root.keepalive(&args);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains(expected), "{out}");
    assert!(
        out.stderr.contains(&lib.display().to_string()),
        "the message names the library\n{out}"
    );
    assert_eq!(snapshot(&root.preload_file()), file, "{out}");
    assert_eq!(snapshot(&root.library()), library, "{out}");
    out
}

#[test]
fn install_refuses_a_library_that_does_not_load() {
    let root = Root::new("garbage");
    root.write_preload_file(OTHERS);
    let garbage = root.path().join("libkeepalive.so");
    std::fs::write(&garbage, b"\x7fELF? no, garbage bytes\n").unwrap();
    let out = assert_refused(&root, &garbage, "does not load");
    // What the loader said.
    assert!(out.stderr.contains("cannot be preloaded"), "{out}");
    assert!(!root.library().exists(), "no copy left behind\n{out}");
    assert_eq!(text(&root.preload_file()), OTHERS);
}

#[test]
fn install_refusal_keeps_the_library_already_installed() {
    let root = Root::new("keep");
    root.ok(&["install", "--global"]);
    let garbage = root.path().join("libkeepalive.so");
    std::fs::write(&garbage, b"garbage").unwrap();
    assert_refused(&root, &garbage, "does not load");
    assert_eq!(
        std::fs::read(root.library()).unwrap(),
        std::fs::read(preload()).unwrap()
    );
}

#[test]
fn install_refuses_a_library_without_keepalive() {
    if tool("gcc").is_none() {
        skip!("gcc is not installed, and the test's other library is built from C");
    }
    // Loads fine, but its socket() sets TCP_NODELAY, not keepalive.
    let root = Root::new("nodelay");
    assert_refused(&root, nodelay_lib(), "does not give a new socket keepalive");
    assert!(!root.library().exists());
    assert!(!root.preload_file().exists());
}

#[test]
fn root_must_be_a_directory() {
    let root = Root::new("missing");
    let missing = root.path().join("nowhere");
    let out = run(
        keepalive()
            .args(["install", "--global", "--root"])
            .arg(&missing),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("is not a directory"), "{out}");
    assert!(!missing.exists(), "{out}");
}

#[test]
fn without_root_dir_a_normal_user_is_refused_before_anything_is_written() {
    // As root, drop to nobody for the run; never run it as root without
    // --root, which would edit the host's /etc/ld.so.preload.
    let wrap = |args: &[&str]| -> Command {
        let mut cmd = if is_root() {
            let mut cmd = bare("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(env!("CARGO_BIN_EXE_keepalive"));
            cmd
        } else {
            bare(env!("CARGO_BIN_EXE_keepalive"))
        };
        cmd.env("KEEPALIVE_LIBRARY", preload()).args(args);
        cmd
    };
    if is_root() && tool("setpriv").is_none() {
        skip!("running as root and setpriv (util-linux) is missing to run as nobody");
    }
    let host_file = snapshot(Path::new("/etc/ld.so.preload"));
    for (args, sudo) in [
        (
            &["install", "--global"][..],
            "sudo keepalive install --global",
        ),
        (&["install"][..], "sudo keepalive install"),
        (
            &["uninstall", "--global"][..],
            "sudo keepalive uninstall --global",
        ),
    ] {
        let out = run(&mut wrap(args), TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{out}");
        assert!(out.stderr.contains("needs root"), "{args:?}\n{out}");
        assert!(out.stderr.contains(sudo), "{args:?}\n{out}");
        assert_eq!(out.stdout, "", "{args:?}\n{out}");
    }
    assert_eq!(snapshot(Path::new("/etc/ld.so.preload")), host_file);
}

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run(bare("umount").arg(&self.0), TIMEOUT);
    }
}

#[test]
fn install_undoes_the_copy_when_it_does_not_load_where_installed() {
    if !is_root() {
        skip!("mounting a noexec tmpfs needs root");
    }
    // The library loads from where it is, but not from a noexec mount:
    // the copy must be undone, the previous one put back.
    let root = Root::new("noexec");
    let out = run(
        bare("mount")
            .args(["-t", "tmpfs", "-o", "noexec,mode=0755", "tmpfs"])
            .arg(root.path()),
        TIMEOUT,
    );
    if !out.status.success() {
        skip!("cannot mount a tmpfs (a container without CAP_SYS_ADMIN?)\n{out}");
    }
    let _mount = Mount(root.path().to_owned());
    std::fs::create_dir_all(root.library().parent().unwrap()).unwrap();
    std::fs::write(root.library(), b"the previous copy").unwrap();
    root.write_preload_file(OTHERS);
    let file = snapshot(&root.preload_file());

    let out = root.keepalive(&["install", "--global"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("does not load"), "{out}");
    assert!(out.stderr.contains("failed to map segment"), "{out}");
    assert_eq!(std::fs::read(root.library()).unwrap(), b"the previous copy");
    assert_eq!(snapshot(&root.preload_file()), file, "{out}");

    std::fs::remove_file(root.library()).unwrap();
    let out = root.keepalive(&["install", "--global"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(!root.library().exists(), "no copy left behind\n{out}");
    assert_eq!(snapshot(&root.preload_file()), file, "{out}");
}

#[test]
fn install_without_global_refuses_a_library_that_does_not_load() {
    // An earlier `install --global` made every program preload the file
    // that a plain `install` replaces: it must be test-loaded too.
    let root = Root::new("local-garbage");
    root.ok(&["install", "--global"]);
    let garbage = root.path().join("libkeepalive.so");
    std::fs::write(&garbage, b"garbage").unwrap();
    let out = assert_refused_by(&root, &["install"], &garbage, "does not load");
    assert!(out.stderr.contains("cannot be preloaded"), "{out}");
    assert_eq!(
        std::fs::read(root.library()).unwrap(),
        std::fs::read(preload()).unwrap()
    );
    assert_eq!(text(&root.preload_file()), format!("{ENTRY}\n"));
}

#[test]
fn install_without_global_refuses_a_library_whose_constructor_aborts() {
    if tool("gcc").is_none() {
        skip!("gcc is not installed, and the aborting library is built from C");
    }
    let root = Root::new("abort");
    root.ok(&["install", "--global"]);
    let source = root.path().join("abort.c");
    std::fs::write(
        &source,
        "#include <stdlib.h>\n\
         __attribute__((constructor)) static void die(void) { abort(); }\n",
    )
    .unwrap();
    let lib = root.path().join("libabort.so");
    let out = run(
        bare("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&source),
        TIMEOUT,
    );
    assert!(out.status.success(), "gcc failed\n{out}");
    assert_refused_by(
        &root,
        &["install"],
        &lib,
        "does not give a new socket keepalive",
    );
    assert_eq!(
        std::fs::read(root.library()).unwrap(),
        std::fs::read(preload()).unwrap()
    );
}

/// `sh -c 'umask 077 && exec keepalive <args> --root <root>'`.
fn keepalive_under_umask_077(root: &Root, args: &[&str]) -> Output {
    let mut cmd = bare("sh");
    cmd.args(["-c", "umask 077 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(args)
        .arg("--root")
        .arg(root.path())
        .env("KEEPALIVE_LIBRARY", preload());
    run(&mut cmd, TIMEOUT)
}

#[test]
fn install_under_umask_077_creates_directories_everyone_can_search() {
    let root = Root::new("umask");
    let out = keepalive_under_umask_077(&root, &["install", "--global"]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    for dir in [
        "etc",
        "usr",
        "usr/local",
        "usr/local/lib",
        "usr/local/lib/keepalive",
    ] {
        assert_eq!(mode(&root.path().join(dir)), 0o755, "{dir}\n{out}");
    }
    assert_eq!(mode(&root.library()), 0o644, "{out}");
    assert_eq!(mode(&root.preload_file()), 0o644, "{out}");
    assert_eq!(text(&root.preload_file()), format!("{ENTRY}\n"), "{out}");
}

#[test]
fn install_global_refuses_a_library_others_cannot_reach() {
    let root = Root::new("closed");
    let dir = root.library().parent().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700)).unwrap();
    let out = root.keepalive(&["install", "--global"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains(&format!("chmod o+x {}", dir.display())),
        "the message names the fix\n{out}"
    );
    assert!(!root.preload_file().exists(), "{out}");
    assert_eq!(mode(&dir), 0o700, "an existing directory keeps its mode");

    // The file itself must be readable by others too.
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o755)).unwrap();
    let lib = root.path().join("libkeepalive.so");
    std::fs::copy(preload(), &lib).unwrap();
    std::fs::set_permissions(&lib, PermissionsExt::from_mode(0o600)).unwrap();
    root.ok(&["install", "--library", lib.to_str().unwrap()]);
    std::fs::set_permissions(root.library(), PermissionsExt::from_mode(0o640)).unwrap();
    // An identical library gets its mode back.
    let out = root.ok(&["install", "--global"]);
    assert_eq!(mode(&root.library()), 0o644, "{out}");
    assert_eq!(text(&root.preload_file()), format!("{ENTRY}\n"), "{out}");
}

#[test]
fn install_makes_an_identical_library_0644() {
    let root = Root::new("mode");
    root.ok(&["install"]);
    std::fs::set_permissions(root.library(), PermissionsExt::from_mode(0o600)).unwrap();
    let out = root.ok(&["install"]);
    assert_eq!(mode(&root.library()), 0o644, "{out}");
    assert!(out.stdout.contains("is up to date"), "{out}");
}

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
