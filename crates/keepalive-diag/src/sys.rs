//! The only place in this crate that calls libc: a netlink socket, and
//! pidfd_open(2) / pidfd_getfd(2), which libc has no wrapper for.
#![allow(unsafe_code, reason = "the libc layer of the crate")]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `-1` (or any negative value) into the calling thread's errno, else the
/// value.
fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the caller passes a descriptor the kernel just created for
    // this process and that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netlink socket of one protocol, bound by the kernel on first send.
#[derive(Debug)]
pub(crate) struct NetlinkSocket(OwnedFd);

impl NetlinkSocket {
    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)`, with
    /// `SO_RCVTIMEO` set to `timeout_secs` so that a silent kernel cannot
    /// hang the caller.
    pub(crate) fn open(protocol: i32, timeout_secs: libc::time_t) -> io::Result<NetlinkSocket> {
        // SAFETY: socket(2) takes no pointer.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        let sock = NetlinkSocket(owned(check(fd.into())?)?);
        let tv = libc::timeval {
            tv_sec: timeout_secs,
            tv_usec: 0,
        };
        // SAFETY: the option value points to a live timeval of the length
        // given; the descriptor is open (OwnedFd).
        let r = unsafe {
            libc::setsockopt(
                sock.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        check(r.into())?;
        Ok(sock)
    }

    /// `sendto(fd, buf, len, 0, {AF_NETLINK, pid 0}, ...)`: to the kernel.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf is live for buf.len() bytes and addr for its size;
        // the descriptor is open.
        let r = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        let sent = check(r as libc::c_long)? as usize;
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
    /// Retries on `EINTR`.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is live and writable for buf.len() bytes; the
            // descriptor is open.
            let r = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            match check(r as libc::c_long) {
                Ok(n) => return Ok(n as usize),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// `pidfd_open(pid, 0)`: a descriptor for process `pid` (Linux >= 5.3).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no pointer.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(check(r)?)
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate, in this process and
/// close-on-exec, of descriptor `target` of the process `pidfd` refers to
/// (Linux >= 5.6; needs ptrace-attach rights over it).
pub(crate) fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes two descriptors and flags, no pointer;
    // BorrowedFd keeps pidfd open for the call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    owned(check(r)?)
}

/// `fstat(fd)`: `(st_mode, st_ino)`.
pub(crate) fn fstat_mode_inode(fd: impl AsFd) -> io::Result<(u32, u64)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is a live, writable stat buffer; the descriptor is open
    // (AsFd).
    let r = unsafe { libc::fstat(fd.as_fd().as_raw_fd(), st.as_mut_ptr()) };
    check(r.into())?;
    // SAFETY: fstat succeeded, so it filled st.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode, st.st_ino))
}
