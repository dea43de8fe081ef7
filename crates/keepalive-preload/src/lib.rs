//! `libkeepalive.so`: switches TCP keepalive on for programs that do not.
//!
//! Loaded with `LD_PRELOAD`, it interposes `socket()`, `accept()` and
//! `accept4()`. Right after the real call returns a TCP socket (AF_INET or
//! AF_INET6, SOCK_STREAM with any flags, protocol 0, TCP or MPTCP), it sets
//! `SO_KEEPALIVE` and the values of `KEEPCNT`, `KEEPIDLE`, `KEEPINTVL` and
//! `TCP_USER_TIMEOUT`; `KEEPALIVE=off` switches it off. An accepted socket
//! gets keepalive only if it did not inherit it from its listener.
//!
//! The environment is read once, when the library loads (or at the first
//! call, if another library's constructor calls `socket()` before ours ran).
//!
//! Rules, since this runs inside other people's programs:
//! - the real call's result and errno are passed through untouched;
//! - no lock and no allocation on any hooked path (socket() is
//!   async-signal-safe and so stays); nothing to fix up after fork;
//! - nothing is written to any descriptor, except one line per invalid
//!   variable at load and, when `KEEPALIVE_DEBUG` asks for it, one line per
//!   socket, never into a socket;
//! - no panic: the panic handler aborts, and no code path here can panic.
// `cargo clippy --all-targets` builds a test harness, which brings std.
#![cfg_attr(not(test), no_std)]
#![allow(
    unsafe_code,
    reason = "an LD_PRELOAD library is FFI through and through"
)]

mod created;
mod debug;
mod real;

use core::cell::UnsafeCell;
use core::ffi::{CStr, c_char, c_int};
use core::sync::atomic::{AtomicU8, Ordering};

use keepalive_core::env::{self, FromEnv};
use keepalive_core::{KernelDefaults, Plan, can_listen, is_tcp, is_tcp_protocol, sys};

use crate::debug::Sink;

/// What the environment asked for, computed once.
#[derive(Clone, Copy)]
struct Config {
    plan: Plan,
    debug: Sink,
}

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

/// UNINIT -> BUSY (one thread fills CONFIG) -> READY (CONFIG is read-only).
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

struct Shared(UnsafeCell<Config>);
// SAFETY: CONFIG is written only by the one thread that moved STATE from
// UNINIT to BUSY, before it publishes READY with Release; it is read only
// after an Acquire load of READY.
unsafe impl Sync for Shared {}

static CONFIG: Shared = Shared(UnsafeCell::new(Config {
    plan: Plan::EMPTY,
    debug: Sink::Off,
}));

/// Runs `f` with the configuration, computed on first use, without
/// copying it. Lock-free: a thread that finds another one computing it
/// computes its own copy (same environment, same result) rather than wait,
/// so a signal handler can never deadlock here.
fn with_config<R>(f: impl FnOnce(&Config) -> R) -> R {
    if STATE.load(Ordering::Acquire) == READY {
        // SAFETY: READY was published after the last write (see Shared).
        return f(unsafe { &*CONFIG.0.get() });
    }
    f(&init())
}

#[cold]
fn init() -> Config {
    // Another copy of this library earlier in the search order (a global
    // install plus `keepalive run`) does the work; this one passes through.
    if real::another_copy_came_first() {
        let cfg = Config {
            plan: Plan::EMPTY,
            debug: Sink::Off,
        };
        publish(cfg);
        return cfg;
    }
    let env = read_environ();
    let plan = Plan::new(&env.settings, KernelDefaults::read_proc);
    // In secure-execution mode (setuid, file capabilities) the environment
    // is the unprivileged caller's: never let it name a file to write.
    let debug = if secure_execution() {
        Sink::Off
    } else {
        Sink::new(env.debug)
    };
    let cfg = Config { plan, debug };
    if publish(cfg) {
        for invalid in env.invalid() {
            debug::warn(invalid);
        }
    }
    cfg
}

/// Stores `cfg` as the configuration unless another thread got there
/// first; true for the one thread that did.
fn publish(cfg: Config) -> bool {
    let won = STATE
        .compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_ok();
    if won {
        // SAFETY: this thread alone moved STATE out of UNINIT (see Shared).
        unsafe { *CONFIG.0.get() = cfg };
        debug::keep_path(&cfg.debug);
        STATE.store(READY, Ordering::Release);
    }
    won
}

fn secure_execution() -> bool {
    // SAFETY: getauxval reads the auxiliary vector; it cannot fail.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

unsafe extern "C" {
    /// libc's, which setenv(3) may replace at any time.
    static mut environ: *const *const c_char;
}

/// Parses the process environment in place: no copy, no allocation.
fn read_environ() -> FromEnv<'static> {
    // SAFETY: environ is set up by libc before any constructor runs; it is
    // read once, as a volatile load since other code may assign it, and a
    // NULL one (after clearenv) is an empty environment.
    let mut p = unsafe { (&raw const environ).read_volatile() };
    let vars = core::iter::from_fn(move || {
        if p.is_null() {
            return None;
        }
        // SAFETY: p points into the NULL-terminated environ array.
        let entry = unsafe { *p };
        if entry.is_null() {
            return None;
        }
        // SAFETY: as above; the next element exists since this one is not NULL.
        p = unsafe { p.add(1) };
        // SAFETY: every environ entry is a NUL-terminated string; the ones
        // libc set up at exec time are never freed.
        let bytes: &'static [u8] = unsafe { CStr::from_ptr(entry) }.to_bytes();
        let eq = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        let (name, value) = bytes.split_at(eq);
        Some((name, value.get(1..).unwrap_or(&[])))
    });
    env::from_vars(vars)
}

/// Applies the configuration to a new TCP socket. Callers restore errno.
fn apply(fd: c_int, call: debug::Call) {
    with_config(|cfg| {
        if !cfg.plan.is_empty() {
            let applied = cfg.plan.apply(fd);
            cfg.debug.log(call, fd, &cfg.plan, applied);
        }
    });
}

/// An accepted socket inherits keepalive from its listener. A listener our
/// socket() made has what the program chose (ours, or its own, even off):
/// leave its connections alone, at no cost. A listener from elsewhere
/// (inherited across exec, socket activation) is looked at once: not TCP
/// (AF_UNIX, SCTP), it is remembered and left alone at no cost from then
/// on; TCP, its accepted sockets that have no keepalive get it.
fn after_accept(listener: c_int, fd: c_int, flags: Option<c_int>) {
    if created::is_ours(listener) || with_config(|cfg| cfg.plan.is_empty()) {
        return;
    }
    if !created::is_inherited_tcp(listener) {
        match sys::getsockopt_int(listener, libc::SOL_SOCKET, libc::SO_PROTOCOL) {
            Ok(p) if is_tcp_protocol(p) => created::mark_inherited_tcp(listener),
            _ => {
                created::mark_ours(listener);
                return;
            }
        }
    }
    if sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE) != Ok(0) {
        return;
    }
    // The listener's number could have been reused since it was looked at.
    match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) {
        Ok(p) if is_tcp_protocol(p) => apply(fd, debug::Call::Accept { listener, flags }),
        _ => {}
    }
}

/// socket(2), with keepalive switched on for TCP sockets.
///
/// # Safety
///
/// Same contract as libc's `socket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let Some(real) = real::socket() else {
        sys::set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: real is the next `socket` in lookup order, same signature.
    let fd = unsafe { real(domain, ty, protocol) };
    if fd >= 0 {
        // Every socket that can listen made here is the program's own:
        // accept() on it leaves the program's choice alone. (Datagram
        // sockets, the common other kind, cannot listen: no mark.)
        if can_listen(ty) {
            created::mark_ours(fd);
        }
        if is_tcp(domain, ty, protocol) {
            let saved = sys::errno();
            apply(
                fd,
                debug::Call::Socket {
                    domain,
                    ty,
                    protocol,
                },
            );
            sys::set_errno(saved);
        }
    }
    fd
}

/// accept(2), with keepalive switched on for TCP connections that lack it.
///
/// # Safety
///
/// Same contract as libc's `accept`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> c_int {
    let Some(real) = real::accept() else {
        sys::set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: real is the next `accept`; the caller vouches for addr/len.
    let conn = unsafe { real(fd, addr, len) };
    if conn >= 0 {
        let saved = sys::errno();
        after_accept(fd, conn, None);
        sys::set_errno(saved);
    }
    conn
}

/// accept4(2), with keepalive switched on for TCP connections that lack it.
///
/// # Safety
///
/// Same contract as libc's `accept4`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: c_int,
) -> c_int {
    let Some(real) = real::accept4() else {
        sys::set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: real is the next `accept4`; the caller vouches for addr/len.
    let conn = unsafe { real(fd, addr, len, flags) };
    if conn >= 0 {
        let saved = sys::errno();
        after_accept(fd, conn, Some(flags));
        sys::set_errno(saved);
    }
    conn
}

/// Runs when the library is loaded: resolves the real functions and reads
/// the environment, so that the hooked paths only load atomics.
extern "C" fn on_load() {
    let saved = sys::errno();
    real::resolve_all();
    with_config(|_| ());
    sys::set_errno(saved);
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: abort(3) is always safe to call; no path here panics.
    unsafe { libc::abort() }
}

/// Unoptimized builds keep parts of the precompiled `core` that name the
/// unwinding personality routine, although with `panic = "abort"` nothing
/// ever unwinds. Release builds (LTO) drop those parts; for the others this
/// never-called definition satisfies the dynamic linker.
#[cfg(all(debug_assertions, not(test)))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
