//! Network namespaces: the keepalive sysctls are per namespace, so a
//! container's values are read and written inside its namespace.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Where `ip netns add NAME` puts its namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The namespace file of the calling thread.
const THREAD_SELF: &str = "/proc/thread-self/ns/net";

/// How a [`NetNs`] was opened.
#[derive(Debug)]
enum Origin {
    Current,
    Name(String),
    Pid(u32),
    Path,
}

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    inode: u64,
    origin: Origin,
    path: Option<PathBuf>,
}

impl NetNs {
    /// The calling thread's own namespace.
    pub fn current() -> io::Result<NetNs> {
        let path = Path::new(THREAD_SELF);
        let file = File::open(path).map_err(|e| cannot_open(path, e))?;
        let inode = file.metadata()?.ino();
        Ok(NetNs {
            file,
            inode,
            origin: Origin::Current,
            path: None,
        })
    }

    /// A namespace by name (`/run/netns/NAME`, as `ip netns add` makes) or,
    /// when `spec` holds a `/`, by path (`/proc/PID/ns/net`, a bind mount).
    ///
    /// A file that is not a network namespace (a regular file, another
    /// kind of namespace such as `/proc/PID/ns/uts`) is refused with
    /// [`io::ErrorKind::InvalidInput`] and "PATH is not a network namespace".
    pub fn open(spec: &str) -> io::Result<NetNs> {
        if spec.contains('/') {
            Self::open_path(PathBuf::from(spec), Origin::Path)
        } else {
            let path = PathBuf::from(NETNS_RUN_DIR).join(spec);
            Self::open_path(path.clone(), Origin::Name(spec.to_owned())).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "no network namespace named {spec:?} ({} does not exist; \
                             `ip netns list` shows the named ones)",
                            path.display()
                        ),
                    )
                } else {
                    e
                }
            })
        }
    }

    /// The namespace of process `pid`.
    pub fn of_pid(pid: u32) -> io::Result<NetNs> {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        Self::open_path(path, Origin::Pid(pid)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                io::Error::new(e.kind(), format!("no process with pid {pid}"))
            }
            _ => e,
        })
    }

    fn open_path(path: PathBuf, origin: Origin) -> io::Result<NetNs> {
        let file = File::open(&path).map_err(|e| cannot_open(&path, e))?;
        let inode = file.metadata()?.ino();
        let ns = NetNs {
            file,
            inode,
            origin,
            path: Some(path),
        };
        if !ns.is_current() {
            ns.check_type()?;
        }
        Ok(ns)
    }

    /// Refuses a file that is not a network namespace, without privilege:
    /// setns(2) checks the file's type (EINVAL) before the caller's rights
    /// (EPERM). The check runs on a thread of its own, which exits, so the
    /// caller's namespace never changes.
    /// <https://elixir.bootlin.com/linux/v6.6/source/kernel/nsproxy.c#L546>
    fn check_type(&self) -> io::Result<()> {
        let file = &self.file;
        let entered = std::thread::scope(|s| {
            s.spawn(|| move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)))
                .join()
                .unwrap_or(Err(Errno::INVAL))
        });
        match entered {
            Ok(()) | Err(Errno::PERM) => Ok(()),
            Err(Errno::INVAL) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a network namespace", self.describe_path()),
            )),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "cannot check {}: {}",
                    self.describe_path(),
                    io::Error::from(e)
                ),
            )),
        }
    }

    /// The path for messages, or what stands for it.
    fn describe_path(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| THREAD_SELF.to_owned(), |p| p.display().to_string())
    }

    /// The namespace's inode number, as in `net:[4026531840]`.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// True when this is the calling thread's own namespace.
    pub fn is_current(&self) -> bool {
        std::fs::metadata(THREAD_SELF).is_ok_and(|m| m.ino() == self.inode)
    }

    /// The name of a namespace opened by name (`blue` for
    /// `/run/netns/blue`); `None` otherwise.
    pub fn name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The process whose namespace this is, when opened with [`of_pid`](NetNs::of_pid).
    pub fn pid(&self) -> Option<u32> {
        match self.origin {
            Origin::Pid(pid) => Some(pid),
            _ => None,
        }
    }

    /// The file it was opened from (`/run/netns/NAME`, `/proc/PID/ns/net`,
    /// the path given); `None` for [`current`](NetNs::current).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    /// The calling thread's namespace does not change. In the calling
    /// thread's own namespace `f` runs right here: no privilege is needed.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        if self.is_current() {
            return Ok(f());
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                move_into_link_name_space(self.file.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| {
                        let hint = match e {
                            Errno::PERM => ": entering it needs root (CAP_SYS_ADMIN)",
                            Errno::INVAL => ": not a network namespace",
                            _ => "",
                        };
                        let e = io::Error::from(e);
                        io::Error::new(e.kind(), format!("cannot enter {self}: {e}{hint}"))
                    })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

fn cannot_open(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
}

impl fmt::Display for NetNs {
    /// `netns blue (net:[4026532290])`, `pid 4242 (net:[...])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Current => f.write_str("current")?,
            Origin::Name(name) => write!(f, "netns {name}")?,
            Origin::Pid(pid) => write!(f, "pid {pid}")?,
            Origin::Path => write!(f, "{}", self.describe_path())?,
        }
        write!(f, " (net:[{}])", self.inode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_has_no_name_or_path() {
        let ns = NetNs::current().unwrap();
        assert!(ns.is_current());
        assert_eq!((ns.name(), ns.path(), ns.pid()), (None, None, None));
        assert_eq!(ns.to_string(), format!("current (net:[{}])", ns.inode()));
    }

    #[test]
    fn own_pid_is_the_current_namespace() {
        let ns = NetNs::of_pid(std::process::id()).unwrap();
        assert!(ns.is_current());
        assert_eq!(ns.inode(), NetNs::current().unwrap().inode());
        assert_eq!(ns.pid(), Some(std::process::id()));
        let path = format!("/proc/{}/ns/net", std::process::id());
        assert_eq!(ns.path(), Some(Path::new(&path)));
        assert_eq!(ns.name(), None);
    }

    #[test]
    fn a_path_is_kept() {
        let ns = NetNs::open("/proc/self/ns/net").unwrap();
        assert_eq!(ns.path(), Some(Path::new("/proc/self/ns/net")));
        assert_eq!(
            ns.to_string(),
            format!("/proc/self/ns/net (net:[{}])", ns.inode())
        );
    }

    #[test]
    fn a_regular_file_is_not_a_network_namespace() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let spec = file.path().to_str().unwrap();
        let err = NetNs::open(spec).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            format!("{spec} is not a network namespace")
        );
    }

    #[test]
    fn a_uts_namespace_is_not_a_network_namespace() {
        let err = NetNs::open("/proc/self/ns/uts").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "/proc/self/ns/uts is not a network namespace"
        );
    }

    #[test]
    fn a_missing_name_says_how_to_list() {
        let err = NetNs::open("keepalive-no-such-namespace").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("`ip netns list`"), "{err}");
    }

    #[test]
    fn run_here_needs_no_privilege() {
        let ns = NetNs::current().unwrap();
        assert_eq!(ns.run(|| 7).unwrap(), 7);
    }
}
