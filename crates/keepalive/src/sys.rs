//! The system calls std does not wrap.
#![allow(unsafe_code, reason = "the libc layer of the crate")]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `setns(fd, CLONE_NEWNET)`: moves the calling thread into the network
/// namespace `fd` refers to.
pub(crate) fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: BorrowedFd guarantees an open descriptor for the call's length;
    // setns reads nothing else from us.
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
