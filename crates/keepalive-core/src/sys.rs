//! The only place in this crate that calls libc. Every function here is
//! async-signal-safe: plain system calls, no allocation, no lock.
#![allow(unsafe_code, reason = "the libc layer of the crate")]

use core::ffi::{CStr, c_int, c_void};

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = value }
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`; `Err(errno)` on failure.
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> Result<(), c_int> {
    let len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: the option value points to a live c_int of the length given;
    // the kernel validates the descriptor.
    let r = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast::<c_void>(), len) };
    if r == -1 { Err(errno()) } else { Ok(()) }
}

/// `getsockopt(fd, level, name, &value, &len)` for an `int` option;
/// `Err(errno)` on failure.
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: value and len point to live locals; len holds value's size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&raw mut value).cast::<c_void>(),
            &raw mut len,
        )
    };
    if r == -1 { Err(errno()) } else { Ok(value) }
}

/// Reads at most `buf.len()` bytes of the file at `path`; `None` when it
/// cannot be opened or read.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut filled = 0;
    let ok = loop {
        let rest = &mut buf[filled..];
        if rest.is_empty() {
            break true;
        }
        // SAFETY: rest is a live, writable buffer of rest.len() bytes.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast::<c_void>(), rest.len()) };
        match n {
            0 => break true,
            n if n > 0 => filled += n as usize,
            _ if errno() == libc::EINTR => continue,
            _ => break false,
        }
    };
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    ok.then_some(filled)
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes;
/// gives up silently on any other error.
pub fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: bytes is a live buffer of bytes.len() bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast::<c_void>(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// Appends `bytes` to the file at `path` (created 0600 if missing) in one
/// write(2), so lines from several processes do not interleave.
pub fn append_file(path: &CStr, bytes: &[u8]) {
    // Never through a symbolic link: the path comes from the environment.
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_CLOEXEC
        | libc::O_NOCTTY
        | libc::O_NOFOLLOW;
    // SAFETY: path is NUL-terminated; the mode is passed as the variadic int.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd >= 0 {
        write_all(fd, bytes);
        // SAFETY: fd was opened above and is closed once.
        unsafe { libc::close(fd) };
    }
}

/// The address family of the socket `fd`, `None` when `fd` is not an open
/// socket.
pub fn socket_domain(fd: c_int) -> Option<c_int> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ok()
}
