//! The real `socket`, `accept` and `accept4`: the next definitions in
//! symbol lookup order (libc, or another preloaded library, so preloads
//! chain). Resolved once at load; resolved on demand, without a lock, when
//! another library's constructor calls us before our constructor ran.

use core::ffi::{CStr, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type AcceptFn = unsafe extern "C" fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int;
type Accept4Fn =
    unsafe extern "C" fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t, c_int) -> c_int;

static SOCKET: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static ACCEPT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static ACCEPT4: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The next definition of `name`, cached in `slot`. Two threads racing here
/// both find the same address; storing it twice is harmless.
fn next(slot: &AtomicPtr<c_void>, name: &CStr) -> Option<*mut c_void> {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    // dlsym may change errno; the hooks pass the real call's errno through.
    let saved = keepalive_core::sys::errno();
    // SAFETY: name is NUL-terminated; RTLD_NEXT looks past this library.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    keepalive_core::sys::set_errno(saved);
    if p.is_null() {
        return None;
    }
    slot.store(p, Ordering::Release);
    Some(p)
}

pub(crate) fn resolve_all() {
    let _ = (socket(), accept(), accept4());
}

pub(crate) fn socket() -> Option<SocketFn> {
    // SAFETY: the symbol `socket` has libc's socket(2) signature.
    next(&SOCKET, c"socket").map(|p| unsafe { core::mem::transmute::<*mut c_void, SocketFn>(p) })
}

pub(crate) fn accept() -> Option<AcceptFn> {
    // SAFETY: the symbol `accept` has libc's accept(2) signature.
    next(&ACCEPT, c"accept").map(|p| unsafe { core::mem::transmute::<*mut c_void, AcceptFn>(p) })
}

pub(crate) fn accept4() -> Option<Accept4Fn> {
    // SAFETY: the symbol `accept4` has libc's accept4(2) signature.
    next(&ACCEPT4, c"accept4").map(|p| unsafe { core::mem::transmute::<*mut c_void, Accept4Fn>(p) })
}

/// This copy of the library: a private static, so that its address, taken
/// here, is this copy's own (an exported symbol's address would be the one
/// that interposes it: the first copy's).
static THIS_COPY: u8 = 0;

/// Exported so that copies of this library can find the first one: dlsym
/// returns the first copy's, whose value names that copy.
#[unsafe(no_mangle)]
#[used]
pub static keepalive_preload_v1: &u8 = &THIS_COPY;

/// True when another copy of this library came before this one: the first
/// copy in lookup order does the work, so each option is set once and each
/// warning printed once (loaded twice: a global install plus `keepalive run`
/// with another copy). The lookup always succeeds, finding at least our own
/// marker, so it costs one hash lookup per loaded object and no dlerror
/// state.
pub(crate) fn another_copy_came_first() -> bool {
    let saved = keepalive_core::sys::errno();
    // SAFETY: the name is NUL-terminated.
    let first = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"keepalive_preload_v1".as_ptr()) };
    keepalive_core::sys::set_errno(saved);
    if first.is_null() {
        return false;
    }
    // SAFETY: the symbol is a copy of this library's marker, a `&u8`.
    let first_copy: &u8 = unsafe { *first.cast::<&u8>() };
    !core::ptr::eq(first_copy, &THIS_COPY)
}
