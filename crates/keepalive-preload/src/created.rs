//! The TCP sockets this process made through our `socket()`, by descriptor
//! number: a lock-free bitmap, async-signal-safe, in 2 KiB of zeroed static
//! memory (small enough to share the page of the other writable data, so
//! loading the library costs no extra mapping) (no allocation, nothing to set up, nothing to fix after fork).
//!
//! `accept()` uses it to tell a listener the program made itself (its
//! keepalive choice, even "off", is the program's and is inherited by what
//! it accepts) from one it inherited across exec (which may never have had
//! keepalive). A stale bit, left by a socket closed and its number reused,
//! can only make `accept()` skip a socket: it never overrides a program.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU64, Ordering};

/// Descriptors below this are tracked; accept() treats others as inherited.
const TRACKED: usize = 16384;

static BITS: [AtomicU64; TRACKED / 64] = [const { AtomicU64::new(0) }; TRACKED / 64];

fn slot(fd: c_int) -> Option<(&'static AtomicU64, u64)> {
    let fd = usize::try_from(fd).ok().filter(|fd| *fd < TRACKED)?;
    Some((&BITS[fd / 64], 1 << (fd % 64)))
}

/// Records that `fd` is a TCP socket made by our `socket()`.
pub(crate) fn mark(fd: c_int) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_or(bit, Ordering::Release);
    }
}

/// True when `fd` was made by our `socket()` (or its number was, earlier).
pub(crate) fn is_marked(fd: c_int) -> bool {
    slot(fd).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}
