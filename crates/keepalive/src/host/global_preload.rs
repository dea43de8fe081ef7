//! Whether the global preload is in place: an entry for `libkeepalive.so`
//! in `/etc/ld.so.preload`, and the file it names. Whether the library
//! actually *loads* is for a test-load (the `keepalive` command has one):
//! ld.so only prints an error when a preload fails.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::ld_so_preload::{LD_SO_PRELOAD, LdSoPreload};

/// The file name an entry must have to count as ours.
pub const LIBRARY_FILE_NAME: &str = "libkeepalive.so";

/// What `/etc/ld.so.preload` says about `libkeepalive.so`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalPreload {
    /// The file read (under the root).
    pub file: PathBuf,
    /// False when the file does not exist (nothing is preloaded).
    pub exists: bool,
    /// The first entry whose file name is [`LIBRARY_FILE_NAME`], as written
    /// (a path as the loader sees it, not under the root).
    pub entry: Option<PathBuf>,
    /// Further such entries: two copies preloaded (the first acts).
    pub duplicates: Vec<PathBuf>,
    /// True when [`entry`](Self::entry) names a file that exists (under
    /// the root). False without an entry.
    pub library_present: bool,
}

impl GlobalPreload {
    /// True when an entry names an existing library: the preload is in
    /// place (if it loads).
    pub fn in_place(&self) -> bool {
        self.entry.is_some() && self.library_present
    }
}

/// Reads `/etc/ld.so.preload`.
pub fn global_preload() -> io::Result<GlobalPreload> {
    global_preload_in(Path::new("/"))
}

/// Reads `root/etc/ld.so.preload`; an entry is looked up under `root` too.
/// Errors other than a missing file name the file.
pub fn global_preload_in(root: &Path) -> io::Result<GlobalPreload> {
    let file = under(root, Path::new(LD_SO_PRELOAD));
    let (exists, text) = match fs::read(&file) {
        Ok(text) => (true, text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (false, Vec::new()),
        Err(e) => {
            return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display())));
        }
    };
    let preload = LdSoPreload::new(text);
    let mut ours = preload
        .entries()
        .filter(|e| e.file_name() == Some(OsStr::new(LIBRARY_FILE_NAME)))
        .map(Path::to_path_buf);
    let entry = ours.next();
    let duplicates = ours.collect();
    let library_present = entry.as_deref().is_some_and(|e| under(root, e).is_file());
    Ok(GlobalPreload {
        file,
        exists,
        entry,
        duplicates,
        library_present,
    })
}

/// `path` (absolute as the host sees it) inside `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn no_file() {
        let dir = tempfile::tempdir().unwrap();
        let got = global_preload_in(dir.path()).unwrap();
        assert_eq!(
            got,
            GlobalPreload {
                file: dir.path().join("etc/ld.so.preload"),
                exists: false,
                entry: None,
                duplicates: vec![],
                library_present: false,
            }
        );
        assert!(!got.in_place());
    }

    #[test]
    fn entry_with_library() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r.join("etc/ld.so.preload"),
            "# site\n/usr/lib/libfoo.so /usr/local/lib/keepalive/libkeepalive.so\n",
        );
        write(r.join("usr/local/lib/keepalive/libkeepalive.so"), "");
        let got = global_preload_in(r).unwrap();
        assert!(got.exists);
        assert_eq!(
            got.entry,
            Some(PathBuf::from("/usr/local/lib/keepalive/libkeepalive.so"))
        );
        assert!(got.library_present);
        assert!(got.in_place());
    }

    #[test]
    fn entry_without_library_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r.join("etc/ld.so.preload"),
            "/opt/a/libkeepalive.so\n#/opt/c/libkeepalive.so\n/opt/b/libkeepalive.so\n\
             /opt/libkeepalive.so.0\n",
        );
        let got = global_preload_in(r).unwrap();
        assert_eq!(got.entry, Some(PathBuf::from("/opt/a/libkeepalive.so")));
        assert_eq!(got.duplicates, [PathBuf::from("/opt/b/libkeepalive.so")]);
        assert!(!got.library_present);
        assert!(!got.in_place());
    }

    #[test]
    fn other_preloads_only() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path().join("etc/ld.so.preload"), "/usr/lib/libfoo.so\n");
        let got = global_preload_in(dir.path()).unwrap();
        assert!(got.exists);
        assert_eq!(got.entry, None);
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails.
        fs::create_dir_all(dir.path().join("etc/ld.so.preload")).unwrap();
        let err = global_preload_in(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ld.so.preload"), "{err}");
    }
}
