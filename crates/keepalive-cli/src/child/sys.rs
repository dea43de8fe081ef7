//! The signal mask and the code between fork and exec: neither std nor
//! rustix offers them safely (rustix's signal-mask calls are in its hidden,
//! unstable `runtime` module, meant for libc implementations), so they are
//! libc calls here. Killing a process (a named signal) goes through rustix
//! in the parent module instead.

use std::ffi::c_int;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::Signal;

/// A `sigset_t`, always initialised.
#[derive(Clone, Copy)]
struct SigSet(libc::sigset_t);

impl SigSet {
    /// The set of `signals` (valid signal numbers).
    fn of(signals: impl IntoIterator<Item = c_int>) -> SigSet {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set behind the pointer,
        // which is valid for writes, before sigaddset and assume_init touch
        // it. sigaddset fails only for an invalid number; it then leaves the
        // set as it was, still initialised.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for sig in signals {
                libc::sigaddset(set.as_mut_ptr(), sig);
            }
            SigSet(set.assume_init())
        }
    }
}

/// `pthread_sigmask(how, set, &old)`: changes the calling thread's mask and
/// returns the one before. Async-signal-safe (signal-safety(7)).
fn sigmask(how: c_int, set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::of([]);
    // SAFETY: both pointers come from references to initialised sets, live
    // for the call; the kernel writes a whole sigset_t into `old`.
    let r = unsafe { libc::pthread_sigmask(how, &set.0, &mut old.0) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(old)
}

/// Signals blocked in the calling thread, to be received with
/// [`BlockedSignals::wait`]; when dropped, those still pending are
/// discarded and the previous mask comes back.
pub(super) struct BlockedSignals {
    set: SigSet,
    old: SigSet,
}

impl std::fmt::Debug for BlockedSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockedSignals")
    }
}

impl BlockedSignals {
    pub(super) fn block(signals: &[Signal]) -> io::Result<BlockedSignals> {
        let set = SigSet::of(signals.iter().map(|s| s.as_raw()));
        let old = sigmask(libc::SIG_BLOCK, &set)?;
        Ok(BlockedSignals { set, old })
    }

    /// `sigwaitinfo(set, NULL)`: waits for one of the blocked signals and
    /// returns its number.
    pub(super) fn wait(&self) -> io::Result<c_int> {
        loop {
            // SAFETY: `set` is an initialised signal set, live for the call;
            // the info pointer may be NULL.
            let sig = unsafe { libc::sigwaitinfo(&self.set.0, std::ptr::null_mut()) };
            if sig >= 0 {
                return Ok(sig);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for BlockedSignals {
    /// Discards the blocked signals still pending, then restores the mask.
    fn drop(&mut self) {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` is initialised and `zero` a valid timespec, both
        // live for the call; the info pointer may be NULL. sigtimedwait
        // returns -1 (EAGAIN) once none of the signals is pending.
        while unsafe { libc::sigtimedwait(&self.set.0, std::ptr::null_mut(), &zero) } > 0 {}
        let _ = sigmask(libc::SIG_SETMASK, &self.old);
    }
}

/// Makes the child of `cmd`, between fork and exec, move itself into the
/// cgroup whose `cgroup.procs` (open for writing) is `procs`, by writing
/// "0" (the writing process) to it, then take back the mask from before
/// `signals` were blocked: a child inherits its parent's mask (std leaves
/// it as it is), and the command must not start with SIGTERM, SIGINT, ...
/// blocked. When either fails the command is not executed and spawn
/// returns that error.
pub(super) fn prepare_child(cmd: &mut Command, procs: OwnedFd, signals: &BlockedSignals) {
    let old = signals.old;
    let before_exec = move || {
        // rustix's write(2) is the bare system call, async-signal-safe.
        if rustix::io::write(&procs, b"0")? != 1 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sigmask(libc::SIG_SETMASK, &old)?;
        Ok(())
    };
    // SAFETY: code between fork and exec must be async-signal-safe. The
    // closure makes two system calls (write(2), pthread_sigmask(3)) on data
    // it owns, and builds its errors from plain numbers or kinds: no
    // allocation, no lock, nothing that fork can leave in a bad state.
    unsafe { cmd.pre_exec(before_exec) };
}

/// Dies of `sig` as the command did: default action, unblocked, raised in
/// this thread. Returns only when the default action does not end the
/// process. `sig` may be any signal, real-time ones included (which
/// rustix's `Signal` cannot name safely).
pub(super) fn die_of(sig: c_int) {
    let _ = sigmask(libc::SIG_UNBLOCK, &SigSet::of([sig]));
    // SAFETY: SIG_DFL installs no handler, so no code of ours runs on the
    // signal (std ignores SIGPIPE: this undoes it); the previous disposition
    // that signal(2) returns is not used. raise(3) takes a plain number.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
