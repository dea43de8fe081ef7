//! Network namespaces: the keepalive sysctls are per namespace, so a
//! container's values are read and written inside its namespace.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Where `ip netns add NAME` puts its namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    inode: u64,
    what: String,
}

impl NetNs {
    /// The calling thread's own namespace.
    pub fn current() -> io::Result<NetNs> {
        Self::open_path(Path::new("/proc/thread-self/ns/net"), "current".to_owned())
    }

    /// A namespace by name (`/run/netns/NAME`, as `ip netns add` makes) or,
    /// when `spec` holds a `/`, by path (`/proc/PID/ns/net`, a bind mount).
    pub fn open(spec: &str) -> io::Result<NetNs> {
        if spec.contains('/') {
            Self::open_path(Path::new(spec), spec.to_owned())
        } else {
            let path = PathBuf::from(NETNS_RUN_DIR).join(spec);
            Self::open_path(&path, format!("netns {spec}")).map_err(|e| {
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
        Self::open_path(&path, format!("pid {pid}")).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                io::Error::new(e.kind(), format!("no process with pid {pid}"))
            }
            _ => e,
        })
    }

    fn open_path(path: &Path, what: String) -> io::Result<NetNs> {
        let file = File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        let inode = file.metadata()?.ino();
        Ok(NetNs { file, inode, what })
    }

    /// The namespace's inode number, as in `net:[4026531840]`.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// True when this is the calling thread's own namespace.
    pub fn is_current(&self) -> bool {
        NetNs::current().is_ok_and(|c| c.inode == self.inode)
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
                sys::setns_net(self.file.as_fd()).map_err(|e| {
                    let hint = match e.raw_os_error() {
                        Some(libc::EPERM) => ": entering it needs root (CAP_SYS_ADMIN)",
                        Some(libc::EINVAL) => ": not a network namespace",
                        _ => "",
                    };
                    io::Error::new(e.kind(), format!("cannot enter {self}: {e}{hint}"))
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl fmt::Display for NetNs {
    /// `netns blue (net:[4026532290])`, `pid 4242 (net:[...])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (net:[{}])", self.what, self.inode)
    }
}
