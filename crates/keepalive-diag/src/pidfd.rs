//! Another process's descriptors: pidfd_open(2) and pidfd_getfd(2)
//! (Linux >= 5.6), which give this process a duplicate of a descriptor of
//! the target. Socket options set on the duplicate apply to the shared
//! socket; closing the duplicate leaves the target's descriptor alone.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use rustix::io::Errno;

use crate::sys;

/// What a [`PidFdError`] means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PidFdErrorKind {
    /// No such process (`ESRCH`, or `EINVAL` for a pid that cannot exist).
    NoProcess,
    /// The caller may not ptrace-attach to it (`EPERM`, `EACCES`).
    NotPermitted,
    /// The kernel lacks the system call (`ENOSYS`): older than 5.6.
    Unsupported,
    /// The process has no such descriptor (`EBADF`): it was closed.
    NoDescriptor,
    /// Anything else.
    Other,
}

/// A failed pidfd call, naming the call, the process and the descriptor.
#[derive(Debug, thiserror::Error)]
pub struct PidFdError {
    /// `pidfd_open`, `pidfd_getfd`, or `fstat` (of a duplicate).
    pub call: &'static str,
    /// The target process.
    pub pid: u32,
    /// The target's descriptor, for `pidfd_getfd`.
    pub fd: Option<RawFd>,
    /// The error.
    #[source]
    pub source: io::Error,
}

impl fmt::Display for PidFdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(pid {}", self.call, self.pid)?;
        if let Some(fd) = self.fd {
            write!(f, ", fd {fd}")?;
        }
        write!(f, ") failed: {}", self.source)
    }
}

impl PidFdError {
    /// What the error means.
    pub fn kind(&self) -> PidFdErrorKind {
        let fd = self.fd.is_some();
        match sys::errno(&self.source) {
            Some(Errno::SRCH) => PidFdErrorKind::NoProcess,
            Some(Errno::INVAL) if !fd => PidFdErrorKind::NoProcess,
            Some(Errno::PERM | Errno::ACCESS) => PidFdErrorKind::NotPermitted,
            Some(Errno::NOSYS) => PidFdErrorKind::Unsupported,
            Some(Errno::BADF) if fd => PidFdErrorKind::NoDescriptor,
            _ => PidFdErrorKind::Other,
        }
    }
}

/// What became of a descriptor listed as a socket, once duplicated with
/// [`PidFd::socket`].
#[derive(Debug)]
pub enum Duplicate {
    /// Still the socket listed: a duplicate of it, in this process and
    /// close-on-exec. Options set on it apply to the shared socket;
    /// dropping it leaves the process's descriptor alone.
    Socket(OwnedFd),
    /// The descriptor was closed since it was listed (`EBADF`).
    Closed,
    /// The number now refers to another file, or another socket: it was
    /// closed and reused since it was listed. The duplicate taken of it
    /// is closed again.
    Reused,
}

/// A process, held by a pidfd: its pid cannot be reused while this is open.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// `pidfd_open(pid, 0)`.
    #[doc(alias = "pidfd_open")]
    pub fn open(pid: u32) -> Result<PidFd, PidFdError> {
        let err = |source| PidFdError {
            call: "pidfd_open",
            pid,
            fd: None,
            source,
        };
        let fd = sys::pidfd_open(pid).map_err(err)?;
        Ok(PidFd { fd, pid })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `pidfd_getfd(pidfd, fd, 0)`: a close-on-exec duplicate of the
    /// process's descriptor `fd`. Needs ptrace-attach rights over the
    /// process (ptrace(2), "Ptrace access mode checking":
    /// `PTRACE_MODE_ATTACH_REALCREDS`). The number `fd` may have been
    /// reused since it was listed: compare [`socket_inode`] with the inode
    /// expected.
    #[doc(alias = "pidfd_getfd")]
    pub fn get_fd(&self, fd: RawFd) -> Result<OwnedFd, PidFdError> {
        sys::pidfd_getfd(self.fd.as_fd(), fd).map_err(|source| PidFdError {
            call: "pidfd_getfd",
            pid: self.pid,
            fd: Some(fd),
            source,
        })
    }

    /// A duplicate of the process's descriptor `fd`, proved to be still
    /// the socket `inode` it was listed as (by `/proc/PID/fd` or a
    /// sock_diag dump): [`get_fd`](PidFd::get_fd), then
    /// [`socket_inode`] on the duplicate.
    ///
    /// A descriptor closed or reused since then is not an error but a
    /// [`Duplicate`] saying so; errors are the missing right
    /// ([`PidFdErrorKind::NotPermitted`]), a process gone, an old kernel.
    pub fn socket(&self, fd: RawFd, inode: u64) -> Result<Duplicate, PidFdError> {
        let dup = match self.get_fd(fd) {
            Ok(dup) => dup,
            Err(e) if e.kind() == PidFdErrorKind::NoDescriptor => return Ok(Duplicate::Closed),
            Err(e) => return Err(e),
        };
        match socket_inode(&dup) {
            Ok(Some(now)) if now == inode => Ok(Duplicate::Socket(dup)),
            Ok(_) => Ok(Duplicate::Reused),
            Err(source) => Err(PidFdError {
                call: "fstat",
                pid: self.pid,
                fd: Some(fd),
                source,
            }),
        }
    }
}

/// The inode of the socket `fd` (as in `socket:[INODE]`), `None` when `fd`
/// is not a socket.
///
/// `fstat(fd)`: `st_ino` when `S_ISSOCK(st_mode)`.
pub fn socket_inode(fd: impl AsFd) -> io::Result<Option<u64>> {
    sys::socket_inode(fd)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn duplicate_of_our_own_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let me = PidFd::open(std::process::id()).unwrap();
        let dup = me.get_fd(l.as_raw_fd()).unwrap();
        assert_ne!(
            std::os::fd::AsRawFd::as_raw_fd(&dup),
            l.as_raw_fd(),
            "a new descriptor"
        );
        let inode = socket_inode(&l).unwrap().expect("a socket");
        assert_eq!(socket_inode(&dup).unwrap(), Some(inode));
    }

    #[test]
    fn closed_descriptor() {
        let me = PidFd::open(std::process::id()).unwrap();
        let err = me.get_fd(999_999).unwrap_err();
        assert_eq!(err.kind(), PidFdErrorKind::NoDescriptor);
        assert!(
            err.to_string()
                .starts_with(&format!("pidfd_getfd(pid {}, fd 999999) failed:", me.pid())),
            "{err}"
        );
    }

    #[test]
    fn no_such_process() {
        // Above the largest pid_max the kernel allows (4194304).
        let err = PidFd::open(5_000_000).unwrap_err();
        assert_eq!(err.kind(), PidFdErrorKind::NoProcess, "{err}");
    }

    /// Our own process, held by a pidfd.
    fn me() -> PidFd {
        PidFd::open(std::process::id()).unwrap()
    }

    #[test]
    fn socket_still_there() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&l).unwrap().unwrap();
        match me().socket(l.as_raw_fd(), inode).unwrap() {
            Duplicate::Socket(dup) => {
                assert_ne!(dup.as_raw_fd(), l.as_raw_fd(), "a new descriptor");
                assert_eq!(socket_inode(&dup).unwrap(), Some(inode));
            }
            other => panic!("want the socket, got {other:?}"),
        }
    }

    #[test]
    fn socket_closed_since_listed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&l).unwrap().unwrap();
        // A number far above the ones other test threads get (the lowest
        // free), so that nothing reuses it once closed.
        let high = rustix::io::fcntl_dupfd_cloexec(&l, 700).unwrap();
        let number = high.as_raw_fd();
        drop(high);
        let d = me().socket(number, inode).unwrap();
        assert!(matches!(d, Duplicate::Closed), "{d:?}");
    }

    #[test]
    fn socket_number_reused_by_a_file() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&l).unwrap().unwrap();
        let mut number = OwnedFd::from(l);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        rustix::io::dup2(&file, &mut number).unwrap();
        let d = me().socket(number.as_raw_fd(), inode).unwrap();
        assert!(matches!(d, Duplicate::Reused), "{d:?}");
    }

    #[test]
    fn socket_number_reused_by_another_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&l).unwrap().unwrap();
        let mut number = OwnedFd::from(l);
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        rustix::io::dup2(&other, &mut number).unwrap();
        let d = me().socket(number.as_raw_fd(), inode).unwrap();
        assert!(matches!(d, Duplicate::Reused), "{d:?}");
    }

    #[test]
    fn a_file_is_not_a_socket() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(socket_inode(&f).unwrap(), None);
    }
}
