//! cgroup v2: where the hierarchy is mounted, which cgroup a process is in,
//! and cgroup directories (open, create, remove, move a process in).
//!
//! The mount point differs between systems: `/sys/fs/cgroup` on a unified
//! hierarchy, `/sys/fs/cgroup/unified` on a hybrid one, elsewhere in
//! containers. It is read from `/proc/self/mountinfo`, never assumed. See
//! [Documentation/admin-guide/cgroup-v2.rst](https://github.com/torvalds/linux/blob/v6.18/Documentation/admin-guide/cgroup-v2.rst).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

/// `CGROUP2_SUPER_MAGIC`, statfs(2)'s `f_type` on a cgroup v2 filesystem.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup v2 hierarchy as this process sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    mount_point: PathBuf,
    /// The cgroup the mount shows at its mount point (`/` unless a subtree
    /// was bind-mounted).
    root: PathBuf,
}

impl Hierarchy {
    /// Finds the cgroup v2 mount in `/proc/self/mountinfo`.
    pub fn find() -> Result<Hierarchy> {
        let text = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::path("read", "/proc/self/mountinfo", e))?;
        parse_mountinfo(&text).ok_or_else(Error::no_cgroup2)
    }

    /// Where the hierarchy is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The directory of the cgroup this process is in.
    pub fn current(&self) -> Result<PathBuf> {
        let text = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::path("read", "/proc/self/cgroup", e))?;
        let cgroup = parse_proc_cgroup(&text).ok_or_else(Error::no_cgroup2)?;
        self.directory(Path::new(cgroup))
            .ok_or_else(|| Error::Path {
                what: "find the directory of this process's cgroup",
                path: PathBuf::from(cgroup),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the cgroup v2 mount at {} shows only {}",
                        self.mount_point.display(),
                        self.root.display()
                    ),
                ),
            })
    }

    /// The directory of `cgroup`, a path as /proc/PID/cgroup and systemd's
    /// `ControlGroup` write it (`/system.slice/app.service`); `None` when
    /// this mount shows only another subtree.
    pub fn directory(&self, cgroup: &Path) -> Option<PathBuf> {
        let rel = cgroup.strip_prefix(&self.root).ok()?;
        Some(self.mount_point.join(rel))
    }

    /// The directory of the cgroup whose id (inode number) is `id`, found
    /// by walking the hierarchy.
    pub fn find_by_id(&self, id: u64) -> Option<PathBuf> {
        let mut dirs = vec![self.mount_point.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(meta) = fs::symlink_metadata(&dir) else {
                continue;
            };
            if meta.ino() == id {
                return Some(dir);
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        None
    }
}

/// The first cgroup2 mount in a mountinfo text, preferring one that shows
/// the whole hierarchy. Fields (proc(5)): `id parent major:minor root
/// mount-point options [optional fields] - fstype source super-options`.
fn parse_mountinfo(text: &str) -> Option<Hierarchy> {
    let mut found: Option<Hierarchy> = None;
    for line in text.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        if fs.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let mut fields = mount.split(' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        let h = Hierarchy {
            mount_point: PathBuf::from(unescape(mount_point)),
            root: PathBuf::from(unescape(root)),
        };
        if h.root == Path::new("/") {
            return Some(h);
        }
        found.get_or_insert(h);
    }
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`,
/// `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path in a /proc/PID/cgroup text: the `0::/path` line.
fn parse_proc_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// An open cgroup v2 directory.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    id: u64,
    dir: File,
}

impl Cgroup {
    /// Opens `path`, which must be a directory of the cgroup v2 hierarchy.
    pub fn open(path: &Path) -> Result<Cgroup> {
        let not_cgroup2 = || Error::NotCgroup2 {
            path: path.to_path_buf(),
            mount: Hierarchy::find().ok().map(|h| h.mount_point),
        };
        let dir = File::open(path).map_err(|e| Error::path("open the cgroup", path, e))?;
        // Asked of the open directory, so that it is the one checked.
        match sys::fstatfs_type(&dir) {
            Ok(CGROUP2_SUPER_MAGIC) => {}
            Ok(_) => return Err(not_cgroup2()),
            Err(e) => return Err(Error::path("open the cgroup", path, e)),
        }
        let meta = dir
            .metadata()
            .map_err(|e| Error::path("open the cgroup", path, e))?;
        if !meta.is_dir() {
            return Err(not_cgroup2());
        }
        Ok(Cgroup {
            path: path.to_path_buf(),
            id: meta.ino(),
            dir,
        })
    }

    /// Creates the cgroup `name` under `parent` (a cgroup v2 directory).
    pub fn create(parent: &Path, name: &str) -> Result<Cgroup> {
        Cgroup::open(parent)?;
        let path = parent.join(name);
        fs::create_dir(&path).map_err(|e| Error::path("create the cgroup", &path, e))?;
        Cgroup::open(&path)
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its id, as BPF link info and `bpftool cgroup` show it (the inode
    /// number of its directory).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The processes in it (`cgroup.procs`).
    pub fn procs(&self) -> io::Result<Vec<u32>> {
        let text = fs::read_to_string(self.path.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The processes in it and in every cgroup below it.
    pub fn subtree_procs(&self) -> io::Result<Vec<u32>> {
        fn walk(dir: &Path, pids: &mut Vec<u32>) -> io::Result<()> {
            let text = fs::read_to_string(dir.join("cgroup.procs"))?;
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    walk(&entry.path(), pids)?;
                }
            }
            Ok(())
        }
        let mut pids = Vec::new();
        walk(&self.path, &mut pids)?;
        Ok(pids)
    }

    /// Removes the cgroups below it, deepest first; they must hold no
    /// process (EBUSY otherwise).
    pub fn remove_children(&self) -> io::Result<()> {
        fn walk(dir: &Path) -> io::Result<()> {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    walk(&entry.path())?;
                    fs::remove_dir(entry.path())?;
                }
            }
            Ok(())
        }
        walk(&self.path)
    }

    /// Moves process `pid` (with all its threads) into this cgroup. Its
    /// existing sockets stay where they were created; new ones are made here.
    pub fn add_process(&self, pid: u32) -> io::Result<()> {
        self.procs_file()?.write_all(pid.to_string().as_bytes())
    }

    /// `cgroup.procs`, open for writing.
    pub(crate) fn procs_file(&self) -> io::Result<File> {
        File::options()
            .write(true)
            .open(self.path.join("cgroup.procs"))
    }

    /// Removes the cgroup's directory; it must hold no process and no
    /// child cgroup (EBUSY otherwise).
    pub fn remove(self) -> io::Result<()> {
        fs::remove_dir(&self.path)
    }
}

impl AsFd for Cgroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_hierarchy() {
        let h = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(h.mount_point(), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.root, Path::new("/"));
    }

    #[test]
    fn unified_hierarchy_with_optional_fields() {
        let h = parse_mountinfo(UNIFIED).unwrap();
        assert_eq!(h.mount_point(), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn no_cgroup2() {
        assert_eq!(
            parse_mountinfo("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn escaped_mount_point_and_subtree_root() {
        let text = "50 1 0:40 /kubepods/pod\\0401 /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        let h = parse_mountinfo(text).unwrap();
        assert_eq!(h.mount_point(), Path::new("/mnt/my cg"));
        assert_eq!(h.root, Path::new("/kubepods/pod 1"));
        assert_eq!(
            h.directory(Path::new("/kubepods/pod 1/app")),
            Some(PathBuf::from("/mnt/my cg/app"))
        );
        assert_eq!(h.directory(Path::new("/system.slice")), None);
    }

    #[test]
    fn whole_hierarchy_is_preferred() {
        let text = "\
50 1 0:40 /sub /mnt/sub rw - cgroup2 cgroup2 rw
51 1 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            parse_mountinfo(text).unwrap().mount_point(),
            Path::new("/sys/fs/cgroup")
        );
    }

    #[test]
    fn proc_cgroup_v2_line() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(parse_proc_cgroup(text), Some("/user.slice/session-1.scope"));
        assert_eq!(parse_proc_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn current_cgroup_is_under_the_mount() {
        let Ok(h) = Hierarchy::find() else {
            eprintln!("skipped: no cgroup v2 here");
            return;
        };
        let dir = h.current().unwrap();
        assert!(dir.starts_with(h.mount_point()), "{}", dir.display());
        assert!(dir.join("cgroup.procs").exists());
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let err = Cgroup::open(Path::new("/tmp")).unwrap_err();
        assert!(matches!(err, Error::NotCgroup2 { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("/tmp is not a cgroup v2 directory")
        );
    }
}
