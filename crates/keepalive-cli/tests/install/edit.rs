//! What install and uninstall write: the library, ld.so.preload with
//! every other entry kept, and the original bytes back on uninstall.

use super::*;

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
fn install_makes_an_identical_library_0644() {
    let root = Root::new("mode");
    root.ok(&["install"]);
    std::fs::set_permissions(root.library(), PermissionsExt::from_mode(0o600)).unwrap();
    let out = root.ok(&["install"]);
    assert_eq!(mode(&root.library()), 0o644, "{out}");
    assert!(out.stdout.contains("is up to date"), "{out}");
}
