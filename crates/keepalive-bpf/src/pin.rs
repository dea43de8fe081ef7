//! Pins in bpffs: what keeps an enforcement alive after the command that
//! made it exits.
//!
//! A BPF link lives as long as something refers to it: an fd, or a name in
//! a mounted bpffs. Each enforced cgroup gets a directory named after the
//! cgroup's id, `/sys/fs/bpf/keepalive/cgroup-<id>/`, holding
//!
//! - `settings`: the array map (always), so that the values can be read
//!   and changed without reloading the program;
//! - `link`: the sock_ops program's link (for `keepalive enforce`;
//!   `keepalive run --enforce` keeps its links in fds only, so that they
//!   detach if the command dies);
//! - `link-setsockopt`: the cgroup/setsockopt program's link, pinned and
//!   removed with `link` (one enforcement, two links);
//! - `origin`: what the enforcement was made for (path, unit, persisted),
//!   a symlink whose target is the record ([`Origin`](crate::Origin)),
//!   because bpffs holds no regular file.
//!
//! Beside the directories, `/sys/fs/bpf/keepalive/claims` is the socket
//! storage map every enforcement shares ([`crate::claim`]), unpinned with
//! the last enforcement.
//!
//! bpffs is mounted at `/sys/fs/bpf` when it is not. Every change under the
//! directory happens under an exclusive flock(2) on it.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::origin::{MAX_RECORD, Origin};
use crate::sys;

/// `BPF_FS_MAGIC`, statfs(2)'s `f_type` on a bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is mounted (and mounted by us when it is not).
pub const BPFFS: &str = "/sys/fs/bpf";
/// Our directory in it.
pub const PIN_ROOT: &str = "/sys/fs/bpf/keepalive";

const DIR_PREFIX: &str = "cgroup-";
const LINK: &str = "link";
const LINK_SETSOCKOPT: &str = "link-setsockopt";
const SETTINGS: &str = "settings";
const ORIGIN: &str = "origin";
/// The temporary names of a new `origin` (bpffs refuses dots in names).
const ORIGIN_NEW: &str = "origin-new-";

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Path {
        what: "use",
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })
}

/// True when `path` is on a bpffs.
fn is_bpffs(path: &Path) -> Result<bool> {
    match sys::statfs_type(path) {
        Ok(t) => Ok(t == BPF_FS_MAGIC),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::path("inspect", path, e)),
    }
}

/// What [`enforce`](crate::enforce) found or did about bpffs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfFsMount {
    /// bpffs was not mounted at [`BPFFS`]: it was mounted now.
    pub mounted_now: bool,
    /// ... in a mount namespace other than init's (`ip netns exec`,
    /// `unshare -m`, a container): the pins vanish with that namespace and
    /// the enforcement with them.
    pub private_namespace: bool,
}

/// [`PIN_ROOT`], locked.
#[derive(Debug)]
pub(crate) struct Pins {
    root: PathBuf,
    _lock: File,
    pub(crate) mount: BpfFsMount,
}

impl Pins {
    /// Mounts bpffs when needed, creates [`PIN_ROOT`] and locks it.
    pub(crate) fn lock() -> Result<Pins> {
        let mut mount = BpfFsMount::default();
        let bpffs = Path::new(BPFFS);
        if !is_bpffs(bpffs)? {
            if !bpffs.is_dir() {
                return Err(Error::NoBpfFs);
            }
            sys::mount_bpffs(bpffs).map_err(|e| Error::path("mount bpffs on", bpffs, e))?;
            mount.mounted_now = true;
            mount.private_namespace = !same_mount_namespace_as_init();
        }
        let root = PathBuf::from(PIN_ROOT);
        match fs::create_dir(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::path("create", &root, e)),
        }
        let lock = File::open(&root).map_err(|e| Error::path("open", &root, e))?;
        // flock(2) LOCK_EX on Linux, waiting (again after a signal
        // handler interrupted it); released when `lock` is closed.
        while let Err(e) = lock.lock() {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::path("lock", &root, e));
            }
        }
        Ok(Pins {
            root,
            _lock: lock,
            mount,
        })
    }

    /// The directory for the cgroup `id` (not created).
    pub(crate) fn dir(&self, cgroup_id: u64) -> PinDir {
        PinDir::new(&self.root, cgroup_id)
    }
}

/// True when this process shares init's mount namespace (or when that
/// cannot be told: then no warning is worth printing).
pub(crate) fn same_mount_namespace_as_init() -> bool {
    match (
        fs::metadata("/proc/self/ns/mnt"),
        fs::metadata("/proc/1/ns/mnt"),
    ) {
        (Ok(me), Ok(init)) => me.ino() == init.ino(),
        _ => true,
    }
}

/// The pins of one enforced cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PinDir {
    path: PathBuf,
    cgroup_id: u64,
}

impl PinDir {
    fn new(root: &Path, cgroup_id: u64) -> PinDir {
        PinDir {
            path: root.join(format!("{DIR_PREFIX}{cgroup_id}")),
            cgroup_id,
        }
    }

    /// Every pin directory, in id order; none when bpffs is not mounted.
    pub(crate) fn list() -> Result<Vec<PinDir>> {
        let root = Path::new(PIN_ROOT);
        if !is_bpffs(Path::new(BPFFS))? {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::path("list", root, e)),
        };
        let mut dirs: Vec<PinDir> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let id = name.to_str()?.strip_prefix(DIR_PREFIX)?.parse().ok()?;
                Some(PinDir::new(root, id))
            })
            .collect();
        dirs.sort_by_key(|d| d.cgroup_id);
        Ok(dirs)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }

    pub(crate) fn link(&self) -> PathBuf {
        self.path.join(LINK)
    }

    pub(crate) fn setsockopt_link(&self) -> PathBuf {
        self.path.join(LINK_SETSOCKOPT)
    }

    pub(crate) fn c_setsockopt_link(&self) -> Result<CString> {
        c_path(&self.setsockopt_link())
    }

    pub(crate) fn settings(&self) -> PathBuf {
        self.path.join(SETTINGS)
    }

    pub(crate) fn c_link(&self) -> Result<CString> {
        c_path(&self.link())
    }

    pub(crate) fn c_settings(&self) -> Result<CString> {
        c_path(&self.settings())
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.is_dir()
    }

    pub(crate) fn create(&self) -> Result<()> {
        match fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::path("create", &self.path, e)),
        }
    }

    pub(crate) fn origin_path(&self) -> PathBuf {
        self.path.join(ORIGIN)
    }

    /// What the enforcement was made for; `None` when it was not recorded
    /// (pins of an older keepalive) or the record is not ours.
    pub(crate) fn origin(&self) -> Option<Origin> {
        let target = fs::read_link(self.origin_path()).ok()?;
        Origin::parse(target.to_str()?)
    }

    /// Records `origin`, replacing the record atomically (a new symlink,
    /// renamed over the old one).
    pub(crate) fn write_origin(&self, origin: &Origin) -> Result<()> {
        let text = origin.to_text();
        let path = self.origin_path();
        if text.len() > MAX_RECORD || text.contains('\0') {
            return Err(Error::Path {
                what: "record the origin in",
                path,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the cgroup path or unit name is too long to record",
                ),
            });
        }
        let tmp = self
            .path
            .join(format!("{ORIGIN_NEW}{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&text, &tmp).map_err(|e| Error::path("create", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::path("rename into place", &path, e)
        })
    }

    /// Unpins everything in the directory and removes it. A link whose
    /// last reference was its pin detaches.
    pub(crate) fn remove(&self) -> Result<()> {
        let mut pins = vec![
            self.link(),
            self.setsockopt_link(),
            self.settings(),
            self.origin_path(),
        ];
        // Temporary records a killed writer left.
        if let Ok(entries) = fs::read_dir(&self.path) {
            pins.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(ORIGIN_NEW))
                    .map(|e| e.path()),
            );
        }
        for pin in pins {
            match fs::remove_file(&pin) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::path("unpin", &pin, e)),
            }
        }
        match fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("remove", &self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_paths() {
        let d = PinDir::new(Path::new(PIN_ROOT), 1234);
        assert_eq!(d.path(), Path::new("/sys/fs/bpf/keepalive/cgroup-1234"));
        assert_eq!(
            d.link(),
            Path::new("/sys/fs/bpf/keepalive/cgroup-1234/link")
        );
        assert_eq!(
            d.setsockopt_link(),
            Path::new("/sys/fs/bpf/keepalive/cgroup-1234/link-setsockopt")
        );
        assert_eq!(
            d.settings(),
            Path::new("/sys/fs/bpf/keepalive/cgroup-1234/settings")
        );
        assert_eq!(
            d.origin_path(),
            Path::new("/sys/fs/bpf/keepalive/cgroup-1234/origin")
        );
    }

    #[test]
    fn tmp_is_not_bpffs() {
        assert!(!is_bpffs(Path::new("/tmp")).unwrap());
        assert!(!is_bpffs(Path::new("/nonexistent/dir")).unwrap());
    }
}
