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

mod edit;
mod refuse;
mod safety;

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
