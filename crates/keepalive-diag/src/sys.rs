//! The only place in this crate that makes system calls, all through
//! rustix's safe wrappers: a netlink socket, pidfd_open(2), pidfd_getfd(2)
//! and fstat(2). Everything else in the crate is pure or reads `/proc`.
//!
//! Each function returns `io::Error` (rustix's `Errno` converted), so
//! callers match errors with [`errno`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};

/// The errno an `io::Error` carries, when it carries one.
pub(crate) fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// An `io::Error` for `errno`.
pub(crate) fn error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno.raw_os_error())
}

/// A `NETLINK_SOCK_DIAG` socket, bound by the kernel on first send.
#[derive(Debug)]
pub(crate) struct NetlinkSocket(OwnedFd);

impl NetlinkSocket {
    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)`,
    /// with `SO_SNDTIMEO` and `SO_RCVTIMEO` set to `timeout` so that a
    /// silent kernel cannot hang the caller. rustix refuses a zero
    /// `timeout` (`EINVAL`: zero would mean "wait forever") and rounds one
    /// below a microsecond up to a microsecond.
    pub(crate) fn sock_diag(timeout: Duration) -> io::Result<NetlinkSocket> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        sockopt::set_socket_timeout(&fd, Timeout::Send, Some(timeout))?;
        sockopt::set_socket_timeout(&fd, Timeout::Recv, Some(timeout))?;
        Ok(NetlinkSocket(fd))
    }

    /// `sendto(fd, buf, len, 0, {AF_NETLINK, pid 0, groups 0}, ...)`: to
    /// the kernel. A datagram is sent whole or not at all; a short count
    /// is reported as `WriteZero` all the same.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        let kernel = SocketAddrNetlink::new(0, 0);
        let sent = rustix::net::sendto(&self.0, buf, SendFlags::empty(), &kernel)?;
        if sent != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sendto sent {sent} of {} bytes", buf.len()),
            ));
        }
        Ok(())
    }

    /// `recv(fd, buf, len, MSG_TRUNC)`: one datagram. Returns its full
    /// length, which is larger than `buf` when the datagram was cut.
    /// Retries on `EINTR`; a timeout is `WouldBlock` (`EAGAIN`).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::net::recv(&self.0, &mut *buf, RecvFlags::TRUNC) {
                Ok((_, full_len)) => return Ok(full_len),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `pidfd_open(pid, 0)`: a descriptor for process `pid` (Linux >= 5.3).
/// `EINVAL` for pid 0 and pids above `i32::MAX`, as the kernel gives for
/// pids that cannot exist.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(error(Errno::INVAL))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate, in this process and
/// close-on-exec, of descriptor `target` of the process `pidfd` refers to
/// (Linux >= 5.6; needs ptrace-attach rights over it).
pub(crate) fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_getfd(
        pidfd,
        target,
        PidfdGetfdFlags::empty(),
    )?)
}

/// `fstat(fd)`: `st_ino` when `S_ISSOCK(st_mode)`, else `None`.
pub(crate) fn socket_inode(fd: impl AsFd) -> io::Result<Option<u64>> {
    let st = rustix::fs::fstat(fd)?;
    let is_socket = rustix::fs::FileType::from_raw_mode(st.st_mode).is_socket();
    Ok(is_socket.then_some(st.st_ino))
}
