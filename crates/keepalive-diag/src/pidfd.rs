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
    /// `pidfd_open` or `pidfd_getfd`.
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

    #[test]
    fn a_file_is_not_a_socket() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(socket_inode(&f).unwrap(), None);
    }
}
