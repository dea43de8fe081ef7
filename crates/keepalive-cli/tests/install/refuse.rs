//! What install refuses, and that a refusal changes nothing.

use super::*;

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
