//! The preload and the C programs, built once per test binary, and
//! commands that run under the preload.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{SETTINGS, run, workspace_root};

/// The preload's variables: removed from every child's environment, so that
/// only what a test sets reaches the preload.
const PRELOAD_VARS: [&str; 8] = [
    "LD_PRELOAD",
    "LD_DEBUG",
    "KEEPALIVE",
    "KEEPCNT",
    "KEEPIDLE",
    "KEEPINTVL",
    "TCP_USER_TIMEOUT",
    "KEEPALIVE_DEBUG",
];

/// `libkeepalive.so`, built once per test binary by
/// `cargo build --release -p keepalive-preload` in the workspace's target
/// directory (`cargo test` has released that directory's lock by the time
/// the tests run, so the nested build does not wait for the outer one).
pub fn preload() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        // CARGO_TARGET_TMPDIR is <target>/tmp, wherever the target is.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace_root())
            .args(["build", "--release", "--quiet", "-p", "keepalive-preload"])
            .arg("--target-dir")
            .arg(target);
        let out = run(&mut build, Duration::from_secs(600));
        assert!(out.status.success(), "building the preload failed\n{out}");
        let lib = target.join("release/libkeepalive.so");
        assert!(lib.is_file(), "{} missing after the build", lib.display());
        lib
    })
}

/// The test program `tests/c/probe.c` (see its header for the commands).
pub fn probe() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| gcc("probe.c", "probe", &["-pthread"]))
}

/// `tests/c/nodelay.c`: a second preload whose socket() sets TCP_NODELAY.
pub fn nodelay_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| gcc("nodelay.c", "libnodelay.so", &["-shared", "-fPIC", "-ldl"]))
}

/// `tests/c/ctor.c`: a library whose constructor makes a TCP socket.
pub fn ctor_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| gcc("ctor.c", "libctor.so", &["-shared", "-fPIC"]))
}

/// Compiles `tests/c/<source>` into the target's temporary directory. The
/// output is renamed into place, so that test binaries running side by
/// side never see a half-written file.
fn gcc(source: &str, output: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(source);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("create CARGO_TARGET_TMPDIR");
    let out = dir.join(output);
    let partial = dir.join(format!("{output}.{}.partial", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&partial)
        .arg(&src)
        .args(flags);
    let result = run(&mut cmd, Duration::from_secs(120));
    assert!(result.status.success(), "gcc {source} failed\n{result}");
    std::fs::rename(&partial, &out).expect("rename the compiled file into place");
    out
}

/// A command for `program` with none of the preload's variables set.
pub fn bare(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in PRELOAD_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// A command for `program` with `LD_PRELOAD=libkeepalive.so` and none of
/// the preload's variables set.
pub fn preloaded(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = bare(program);
    cmd.env("LD_PRELOAD", preload());
    cmd
}

/// A command for `program` under the preload with `KEEPCNT`, `KEEPIDLE`
/// and `KEEPINTVL` set to [`COUNT`], [`IDLE`] and [`INTERVAL`].
pub fn configured(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = preloaded(program);
    cmd.envs(SETTINGS);
    cmd
}

/// The probe's arguments for `cmds`, each command written as one string:
/// `commands(&["socket inet stream 0", "set keepidle 77"])`.
pub fn commands<'a>(cmds: &[&'a str]) -> Vec<&'a str> {
    cmds.iter().flat_map(|c| c.split_whitespace()).collect()
}

/// An `LD_PRELOAD` value loading `libs` in this order.
pub fn ld_preload(libs: &[&Path]) -> OsString {
    let mut value = OsString::new();
    for (i, lib) in libs.iter().enumerate() {
        if i > 0 {
            value.push(" ");
        }
        value.push(lib);
    }
    value
}
