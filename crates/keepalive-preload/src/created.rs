//! What accept() knows about a listener, by descriptor number: two
//! lock-free bitmaps, async-signal-safe, in 1 KiB of zeroed static memory
//! (small enough to share the page of the other writable data, so loading
//! the library costs no extra mapping; nothing to set up or fix after fork).
//!
//! - *ours*: made by our `socket()` (any kind), or looked at once and found
//!   not to be TCP. Its keepalive choice, even "off", is the program's and
//!   is inherited by what it accepts: accept() leaves those alone, at no cost.
//! - *inherited TCP*: a TCP listener this process did not make (inherited
//!   across exec, socket activation), looked at once.
//!
//! A stale bit, left by a socket closed and its number reused, can only
//! make accept() skip a socket (or look at the accepted socket's own
//! protocol again): it never overrides a program, nor touches a non-TCP
//! socket. Descriptors past the bitmaps count as ours: inherited listeners
//! come first, at low numbers.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU64, Ordering};

/// Descriptors below this are tracked.
const TRACKED: usize = 4096;

type Bits = [AtomicU64; TRACKED / 64];

static OURS: Bits = [const { AtomicU64::new(0) }; TRACKED / 64];
static INHERITED_TCP: Bits = [const { AtomicU64::new(0) }; TRACKED / 64];

fn slot(bits: &'static Bits, fd: c_int) -> Option<(&'static AtomicU64, u64)> {
    let fd = usize::try_from(fd).ok().filter(|fd| *fd < TRACKED)?;
    Some((&bits[fd / 64], 1 << (fd % 64)))
}

fn set(bits: &'static Bits, fd: c_int) {
    if let Some((word, bit)) = slot(bits, fd) {
        // Descriptor numbers are reused: most often the bit is already set,
        // and a plain load is cheaper than a read-modify-write.
        if word.load(Ordering::Relaxed) & bit == 0 {
            word.fetch_or(bit, Ordering::Release);
        }
    }
}

fn get(bits: &'static Bits, fd: c_int) -> Option<bool> {
    slot(bits, fd).map(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

/// Records that `fd` is the program's own (see the module docs).
pub(crate) fn mark_ours(fd: c_int) {
    set(&OURS, fd);
}

/// True when `fd` is the program's own, or past the tracked range.
pub(crate) fn is_ours(fd: c_int) -> bool {
    get(&OURS, fd).unwrap_or(true)
}

/// Records that `fd` is an inherited TCP listener.
pub(crate) fn mark_inherited_tcp(fd: c_int) {
    set(&INHERITED_TCP, fd);
}

/// True when `fd` was found to be an inherited TCP listener.
pub(crate) fn is_inherited_tcp(fd: c_int) -> bool {
    get(&INHERITED_TCP, fd).unwrap_or(false)
}
