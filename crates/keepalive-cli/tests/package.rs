//! The Debian package (`cargo deb -p keepalive-cli`) and what it ships:
//! the generated man pages and completions match the committed ones, the
//! .deb holds every file, its maintainer scripts edit /etc/ld.so.preload,
//! lintian finds no error; the library is found in the package's layout
//! and in `cargo install`'s, and the packaged library is preloaded in
//! place.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{
    Output, TIMEOUT, bare, is_root, preload, run, skip, target_tempdir, tool, workspace_root,
};

/// The command that refreshes the committed man pages and completions.
const REFRESH: &str = "cargo run -p keepalive-cli -- generate --man packaging/man1 \
                       --completions packaging/completions";

/// The packaged library, as the loader sees it.
const PACKAGED: &str = "/usr/lib/keepalive/libkeepalive.so";

/// The entry a from-source `install --global` writes.
const LOCAL: &str = "/usr/local/lib/keepalive/libkeepalive.so";

/// How long building the .deb may take: a release build, with LTO.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn keepalive() -> Command {
    bare(env!("CARGO_BIN_EXE_keepalive"))
}

fn packaging() -> PathBuf {
    workspace_root().join("packaging")
}

/// The names of the files in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn generated_man_pages_and_completions_are_the_committed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        keepalive()
            .arg("generate")
            .arg("--man")
            .arg(dir.path().join("man1"))
            .arg("--completions")
            .arg(dir.path().join("completions")),
        TIMEOUT,
    );
    out.assert_success();
    for sub in ["man1", "completions"] {
        let fresh = dir.path().join(sub);
        let committed = packaging().join(sub);
        let (want, have) = (names(&fresh), names(&committed));
        assert_eq!(
            have, want,
            "packaging/{sub} does not hold the files `keepalive generate` writes: \
             remove packaging/{sub} and run `{REFRESH}`"
        );
        for name in &want {
            let a = std::fs::read(fresh.join(name)).unwrap();
            let b = std::fs::read(committed.join(name)).unwrap();
            assert!(
                a == b,
                "packaging/{sub}/{name} is stale (the command line changed): run `{REFRESH}` \
                 and commit the result"
            );
        }
    }
    let pages = names(&dir.path().join("man1"));
    for page in [
        "keepalive.1",
        "keepalive-run.1",
        "keepalive-doctor.1",
        "keepalive-metrics.1",
    ] {
        assert!(pages.contains(page), "{page} missing: {pages:?}");
    }
}

#[test]
fn the_hand_written_page_names_the_version_and_every_variable() {
    let page = std::fs::read_to_string(packaging().join("man7/libkeepalive.7")).unwrap();
    let version = format!("\"keepalive {}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        page.contains(&version),
        "packaging/man7/libkeepalive.7: .TH should say {version}"
    );
    for var in [
        "KEEPALIVE",
        "KEEPIDLE",
        "KEEPINTVL",
        "KEEPCNT",
        "TCP_USER_TIMEOUT",
        "KEEPALIVE_DEBUG",
    ] {
        assert!(
            page.contains(&format!(".B {var}\n")),
            "{var} is not described"
        );
    }
    let changelog = std::fs::read_to_string(packaging().join("changelog")).unwrap();
    let entry = format!("keepalive ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        changelog.starts_with(&entry),
        "packaging/changelog should start with an entry for {entry}"
    );
}

/// `<dir>/bin/keepalive`, a copy of the binary under test, and cargo's
/// record of an install in `<dir>`: the layout `cargo install` makes.
fn cargo_install_layout(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join(".crates2.json"), "{\"installs\":{}}").unwrap();
    let exe = dir.join("bin/keepalive");
    std::fs::copy(env!("CARGO_BIN_EXE_keepalive"), &exe).unwrap();
    exe
}

#[test]
fn after_cargo_install_run_says_how_to_get_the_library_and_that_works() {
    if let Some(lib) = [LOCAL, PACKAGED].iter().find(|p| Path::new(p).exists()) {
        skip!("{lib} is installed on this host: keepalive would find it");
    }
    let dir = target_tempdir("cargo-install");
    let exe = cargo_install_layout(dir.path());
    let out = run(bare(&exe).args(["run", "--", "true"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{out}");
    let lib = dir.path().join("lib/keepalive/libkeepalive.so");
    for words in [
        "cannot find libkeepalive.so".to_owned(),
        "`cargo install` installs the keepalive binary only".to_owned(),
        "`cargo build --release -p keepalive-preload`".to_owned(),
        format!(
            "`install -D -m 644 target/release/libkeepalive.so {}`",
            lib.display()
        ),
        "KEEPALIVE_LIBRARY=".to_owned(),
    ] {
        assert!(out.stderr.contains(&words), "{words:?} missing\n{out}");
    }
    assert!(!out.stderr.contains("next to"), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "one sentence\n{out}");

    // Doing what it says makes `run` work, with no variable set.
    let make = run(
        Command::new("install")
            .args(["-D", "-m", "644"])
            .arg(preload())
            .arg(&lib),
        TIMEOUT,
    );
    make.assert_success();
    let out = run(
        bare(&exe)
            .args(["run", "--idle", "77", "--"])
            .arg(&exe)
            .arg("check"),
        TIMEOUT,
    );
    out.assert_success();
    assert!(out.stdout.contains("SO_KEEPALIVE is ON"), "{out}");
    assert!(out.stdout.contains("TCP_KEEPIDLE  = 77\n"), "{out}");
}

/// A tree holding the package's library at `<root>/usr/lib/keepalive/`.
fn packaged_root(name: &str) -> (tempfile::TempDir, PathBuf) {
    let root = target_tempdir(name);
    let lib = root.path().join(PACKAGED.trim_start_matches('/'));
    std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
    std::fs::copy(preload(), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    (root, lib)
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{out}");
    out
}

#[test]
fn install_global_preloads_the_packaged_library_where_it_is() {
    let (root, lib) = packaged_root("packaged-global");
    let preload_file = root.path().join("etc/ld.so.preload");
    let install = |args: &[&str]| {
        ok(keepalive()
            .args(args)
            .arg("--root")
            .arg(root.path())
            .arg("--library")
            .arg(&lib))
    };
    let out = install(&["install"]);
    assert!(
        out.stdout
            .contains("the keepalive package's library: used where it is"),
        "{out}"
    );
    let out = install(&["install", "--global"]);
    assert_eq!(
        std::fs::read_to_string(&preload_file).unwrap(),
        format!("{PACKAGED}\n"),
        "{out}"
    );
    assert!(
        !root.path().join("usr/local").exists(),
        "nothing is copied to /usr/local\n{out}"
    );
    let again = install(&["install", "--global"]);
    assert!(again.stdout.contains("already installed"), "{again}");

    // uninstall removes it, and a from-source entry too; others stay.
    std::fs::write(
        &preload_file,
        format!("/usr/lib/libfoo.so\n{PACKAGED}\n{LOCAL} # ours too\n"),
    )
    .unwrap();
    let out = ok(keepalive()
        .args(["uninstall", "--global", "--root"])
        .arg(root.path()));
    assert_eq!(
        std::fs::read_to_string(&preload_file).unwrap(),
        "/usr/lib/libfoo.so\n# ours too\n",
        "{out}"
    );
    assert!(
        out.stdout.contains(PACKAGED) && out.stdout.contains(LOCAL),
        "{out}"
    );
}

#[test]
fn a_copy_of_the_packaged_library_elsewhere_is_still_copied_to_usr_local() {
    let (root, _) = packaged_root("packaged-copy");
    let out = ok(keepalive()
        .args(["install", "--global", "--root"])
        .arg(root.path())
        .arg("--library")
        .arg(preload()));
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/ld.so.preload")).unwrap(),
        format!("{LOCAL}\n"),
        "{out}"
    );
    assert!(
        root.path().join(LOCAL.trim_start_matches('/')).is_file(),
        "{out}"
    );
}

/// Builds the .deb once (`cargo deb -p keepalive-cli`, in the workspace's
/// target directory) and returns its path; `None` (with the reason) when
/// cargo-deb or dpkg-deb is missing.
fn build_deb() -> Result<PathBuf, String> {
    if tool("dpkg-deb").is_none() {
        return Err("dpkg-deb is not installed".to_owned());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = run(Command::new(&cargo).args(["deb", "--version"]), TIMEOUT);
    if !version.status.success() {
        return Err("cargo-deb is not installed (cargo install cargo-deb --locked)".to_owned());
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_owned();
    // Its own copy of the package, built while no other test runs cargo
    // deb: another build in the same target directory may replace the
    // file under target/debian meanwhile.
    let _one_at_a_time = crate::util::CARGO_DEB
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = run(
        Command::new(&cargo)
            .current_dir(workspace_root())
            .args(["deb", "-p", "keepalive-cli"])
            .env("CARGO_TARGET_DIR", &target),
        BUILD_TIMEOUT,
    );
    assert!(out.status.success(), "cargo deb failed\n{out}");
    let built = target.join(format!(
        "debian/keepalive_{}-1_{}.deb",
        env!("CARGO_PKG_VERSION"),
        deb_arch()
    ));
    assert!(built.is_file(), "{} missing\n{out}", built.display());
    let deb = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("package-test-{}.deb", std::process::id()));
    std::fs::copy(&built, &deb).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    Ok(deb)
}

/// dpkg's name for this machine's architecture.
fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn the_deb_holds_everything_and_lintian_finds_no_error() {
    let deb = match build_deb() {
        Ok(deb) => deb,
        Err(why) => skip!("{why}"),
    };
    let size = std::fs::metadata(&deb).unwrap().len();
    eprintln!("{}: {size} bytes", deb.display());

    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb), TIMEOUT);
    contents.assert_success();
    let files: BTreeSet<String> = contents
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let mut want: Vec<String> = [
        "/usr/bin/keepalive",
        PACKAGED,
        "/usr/share/man/man7/libkeepalive.7.gz",
        "/usr/share/bash-completion/completions/keepalive",
        "/usr/share/zsh/vendor-completions/_keepalive",
        "/usr/share/fish/vendor_completions.d/keepalive.fish",
        "/usr/lib/systemd/system/keepalive-enforce@.service",
        "/usr/share/doc/keepalive/copyright",
        "/usr/share/doc/keepalive/changelog.Debian.gz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for page in names(&packaging().join("man1")) {
        want.push(format!("/usr/share/man/man1/{page}.gz"));
    }
    for file in &want {
        assert!(
            files.contains(file),
            "{file} is not in the package\n{contents}"
        );
    }
    // Beside libkeepalive0, never over it.
    assert!(!files.contains("/usr/lib/libkeepalive.so"), "{contents}");

    for script in ["prerm", "postrm"] {
        let info = run(
            Command::new("dpkg-deb").arg("-I").arg(&deb).arg(script),
            TIMEOUT,
        );
        assert!(
            info.status.success() && info.stdout.starts_with("#!/bin/sh\n"),
            "{script} missing\n{info}"
        );
    }

    // Unpacked anywhere, its keepalive finds its library with no variable.
    let tree = target_tempdir("deb-tree");
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path()));
    let exe = tree.path().join("usr/bin/keepalive");
    let out = run(
        bare(&exe)
            .args(["run", "--idle", "77", "--"])
            .arg(&exe)
            .arg("check"),
        TIMEOUT,
    );
    out.assert_success();
    assert!(out.stdout.contains("SO_KEEPALIVE is ON"), "{out}");
    assert!(out.stdout.contains("TCP_KEEPIDLE  = 77\n"), "{out}");

    maintainer_scripts_edit_ld_so_preload(&deb, tree.path());

    match tool("lintian") {
        None => eprintln!("skipped lintian: not installed (apt-get install lintian)"),
        Some(lintian) => {
            let out = run(Command::new(lintian).arg(&deb), BUILD_TIMEOUT);
            eprintln!("lintian:\n{}{}", out.stdout, out.stderr);
            let errors: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("E:")).collect();
            assert!(errors.is_empty(), "lintian errors: {errors:#?}\n{out}");
        }
    }
}

/// Runs the package's prerm and postrm (`remove`) as dpkg would, in a
/// private mount namespace whose /etc is an overlay of the host's: the
/// host's /etc/ld.so.preload is never touched. Needs root.
fn maintainer_scripts_edit_ld_so_preload(deb: &Path, tree: &Path) {
    if !is_root() {
        eprintln!("skipped the maintainer scripts: they edit /etc, which needs root");
        return;
    }
    if Path::new(PACKAGED).exists() {
        eprintln!("skipped the maintainer scripts: the package is installed on this host");
        return;
    }
    let control = target_tempdir("deb-control");
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(control.path()));
    let overlay = target_tempdir("deb-etc");
    for dir in ["upper", "work"] {
        std::fs::create_dir(overlay.path().join(dir)).unwrap();
    }
    let others = "# site\n/usr/lib/libfoo.so\n";
    // prerm: `keepalive uninstall --global` (the unpacked keepalive first
    // in PATH) removes our entry and keeps the others.
    // postrm: an entry left behind (a line of its own) is removed, and the
    // file with it when nothing else is left.
    let script = format!(
        r#"set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc || exit 77
printf '%s{PACKAGED}\n' '{others}' > /etc/ld.so.preload
PATH={bin}:$PATH sh {control}/prerm remove >&2
echo "--- after prerm"; cat /etc/ld.so.preload
echo '{PACKAGED}' > /etc/ld.so.preload
sh {control}/postrm remove >&2
echo "--- after postrm"; test -e /etc/ld.so.preload && cat /etc/ld.so.preload || echo absent
printf '%s{PACKAGED}\n' '{others}' > /etc/ld.so.preload
sh {control}/postrm purge >&2
echo "--- after purge"; cat /etc/ld.so.preload
"#,
        upper = overlay.path().join("upper").display(),
        work = overlay.path().join("work").display(),
        bin = tree.join("usr/bin").display(),
        control = control.path().display(),
    );
    let out = run(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
        TIMEOUT,
    );
    if out.status.code() == Some(77) {
        eprintln!("skipped the maintainer scripts: cannot mount an overlay on /etc\n{out}");
        return;
    }
    out.assert_success();
    let sections: Vec<&str> = out.stdout.split("--- ").collect();
    let after = |label: &str| {
        sections
            .iter()
            .find_map(|s| s.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label}\n{out}"))
            .trim_start_matches('\n')
    };
    assert_eq!(after("after prerm"), others, "{out}");
    assert_eq!(after("after postrm"), "absent\n", "{out}");
    assert_eq!(after("after purge"), others, "{out}");
    for said in [
        format!("removed {PACKAGED} from /etc/ld.so.preload\n"),
        "removed /etc/ld.so.preload (it preloaded nothing else)\n".to_owned(),
    ] {
        assert!(out.stderr.contains(&said), "{said:?} missing\n{out}");
    }
}
