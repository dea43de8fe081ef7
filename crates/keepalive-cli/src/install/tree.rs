//! The directory tree `install` acts in: `/`, or `--root DIR`, with the
//! checks made before anything is written (root, symbolic links, a library
//! others can read) and the lock on its /etc.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{DIR_MODE, path_parts, shell_word};

/// The directory tree to act in: `/`, or `--root DIR`.
pub(super) struct Root {
    dir: Option<PathBuf>,
}

impl Root {
    /// Without `dir` (the live system) this needs root: refused before
    /// anything is written, naming the fix.
    pub(super) fn new(dir: Option<&Path>, action: &str) -> anyhow::Result<Root> {
        match dir {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!(
                        "--root {} is not a directory: create it first, or fix the path",
                        dir.display()
                    );
                }
                Ok(Root {
                    dir: Some(dir.to_owned()),
                })
            }
            None => {
                let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
                // Unknown (no /proc): let the writes themselves fail.
                if effective_uid(&status).is_some_and(|uid| uid != 0) {
                    bail!(
                        "`keepalive {action}` changes system files and needs root: run it \
                         with sudo (`sudo keepalive {action}`), or pass --root DIR to act on \
                         a directory tree"
                    );
                }
                Ok(Root { dir: None })
            }
        }
    }

    /// Where the absolute `path` of the tree is on this host.
    pub(super) fn host(&self, path: &Path) -> PathBuf {
        match &self.dir {
            None => path.to_owned(),
            Some(dir) => dir.join(path.strip_prefix("/").unwrap_or(path)),
        }
    }

    /// The tree, as the user named it.
    pub(super) fn name(&self) -> String {
        match &self.dir {
            None => "/".to_owned(),
            Some(dir) => format!("--root {}", dir.display()),
        }
    }

    /// Refuses when one of `paths` (absolute, in the tree; those that do
    /// not exist yet are fine) is a symbolic link on the host: writing
    /// through it could change a file outside the tree (`<root>/etc ->
    /// /etc`), or replace a link with a file. On the live system only the
    /// files themselves are checked: linked directories there are the
    /// administrator's (`/usr/local -> /var/usrlocal` on image-based
    /// systems), not a way out of a tree.
    pub(super) fn refuse_symlinks(&self, paths: &[PathBuf]) -> anyhow::Result<()> {
        // `paths` is a file and its directories, top down: the file last.
        let checked = paths
            .iter()
            .enumerate()
            .filter(|(i, _)| self.dir.is_some() || *i + 1 == paths.len())
            .map(|(_, p)| p);
        for path in checked {
            let host = self.host(path);
            match fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let to = fs::read_link(&host)
                        .map(|to| format!(" (-> {})", to.display()))
                        .unwrap_or_default();
                    bail!(
                        "{}{to} is a symbolic link: keepalive does not write through symbolic \
                         links, which could change files outside {}; nothing was written. \
                         Replace it with the directory or file itself",
                        host.display(),
                        self.name()
                    );
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", host.display())),
            }
        }
        Ok(())
    }

    /// Refuses to preload `entry` into every program unless every program
    /// can load it: each of its directories (in the tree) searchable by
    /// others and the file readable by others. Otherwise every program not
    /// run as root would get "cannot be preloaded ... ignored" from the
    /// loader.
    pub(super) fn refuse_unreadable(&self, entry: &Path, file: &Path) -> anyhow::Result<()> {
        let parts = path_parts(entry);
        let mode = |path: &Path| -> anyhow::Result<u32> {
            Ok(fs::metadata(path)
                .with_context(|| format!("cannot stat {}", path.display()))?
                .permissions()
                .mode())
        };
        let mut closed = Vec::new();
        for dir in &parts[..parts.len() - 1] {
            let host = self.host(dir);
            if mode(&host)? & 0o001 == 0 {
                closed.push(host);
            }
        }
        let (mut why, mut fixes) = (Vec::new(), Vec::new());
        if !closed.is_empty() {
            let names: Vec<String> = closed.iter().map(|d| d.display().to_string()).collect();
            let words: Vec<String> = closed.iter().map(|d| shell_word(d)).collect();
            why.push(format!("others cannot search {}", names.join(", ")));
            fixes.push(format!("chmod o+x {}", words.join(" ")));
        }
        let library = self.host(entry);
        if mode(&library)? & 0o004 == 0 {
            why.push(format!("others cannot read {}", library.display()));
            fixes.push(format!("chmod o+r {}", shell_word(&library)));
        }
        if fixes.is_empty() {
            return Ok(());
        }
        bail!(
            "{} was not added to {}: programs not run as root could not load it, since {}; \
             run `{}` and install again",
            library.display(),
            file.display(),
            why.join(" and "),
            fixes.join(" && ")
        );
    }

    /// Opens `<root>/etc`, creating it (mode 0755) when missing, and takes
    /// an exclusive lock on it, so that two keepalive commands do not
    /// read-modify-write ld.so.preload at once. Released when dropped.
    pub(super) fn lock_etc(&self) -> anyhow::Result<File> {
        let etc = self.host(Path::new("/etc"));
        match fs::DirBuilder::new().mode(DIR_MODE).create(&etc) {
            // The umask narrowed the mode.
            Ok(()) => fs::set_permissions(&etc, fs::Permissions::from_mode(DIR_MODE))
                .with_context(|| format!("cannot set the mode of {}", etc.display()))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", etc.display()));
            }
        }
        self.lock_existing_etc()?
            .with_context(|| format!("{} vanished", etc.display()))
    }

    /// Like [`lock_etc`](Self::lock_etc), but `None` when `<root>/etc`
    /// does not exist.
    pub(super) fn lock_existing_etc(&self) -> anyhow::Result<Option<File>> {
        let etc = self.host(Path::new("/etc"));
        let dir = match File::open(&etc) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", etc.display())),
        };
        lock_exclusive(&dir).with_context(|| format!("cannot lock {}", etc.display()))?;
        Ok(Some(dir))
    }
}

/// flock(2) `LOCK_EX` on `file`, waiting for it.
fn lock_exclusive(file: &File) -> io::Result<()> {
    file.lock()
}

/// The effective uid from the text of /proc/self/status
/// (`Uid:  real  effective  saved  fs`).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_field() {
        let status =
            "Name:\tkeepalive\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn root_maps_absolute_paths_inside_it() {
        let root = Root {
            dir: Some(PathBuf::from("/mnt/image")),
        };
        assert_eq!(
            root.host(Path::new("/etc/ld.so.preload")),
            Path::new("/mnt/image/etc/ld.so.preload")
        );
        let live = Root { dir: None };
        assert_eq!(
            live.host(Path::new("/etc/ld.so.preload")),
            Path::new("/etc/ld.so.preload")
        );
    }
}
