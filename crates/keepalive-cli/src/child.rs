//! The command `keepalive run --enforce` starts, and this process standing
//! by while it runs: the command starts inside the cgroup that
//! [`keepalive_bpf::RunScope`] made (so that every socket it creates is
//! enforced), SIGTERM and SIGHUP are passed on to it, SIGINT and SIGQUIT,
//! which a terminal sends to the command as well, are not (as system(3)
//! does), and its exit status, or the signal that killed it, becomes ours
//! ([`exit_as`]).

use std::fs::File;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use rustix::process::{Pid, Signal};

#[allow(
    unsafe_code,
    reason = "the signal mask, and code between fork and exec: neither std nor rustix offers them safely"
)]
mod sys;

/// Signals taken over while the command runs: SIGTERM and SIGHUP are
/// passed on to it; SIGINT and SIGQUIT are left to it; SIGCHLD says it
/// ended.
const TAKEN: [Signal; 5] = [
    Signal::CHILD,
    Signal::INT,
    Signal::QUIT,
    Signal::TERM,
    Signal::HUP,
];

/// The signals of [`TAKEN`], blocked in this thread (to be waited for)
/// from [`Foreground::take`] until dropped; then those still pending are
/// discarded (they were meant for the command) and the mask from before
/// comes back. Keep it until the clean-up after the command is done, so
/// that no signal interrupts the clean-up.
#[derive(Debug)]
pub struct Foreground {
    signals: sys::BlockedSignals,
}

impl Foreground {
    /// Blocks the signals of [`TAKEN`].
    pub fn take() -> io::Result<Foreground> {
        Ok(Foreground {
            signals: sys::BlockedSignals::block(&TAKEN)?,
        })
    }

    /// Starts `cmd` inside the cgroup whose `cgroup.procs` (open for
    /// writing) is `procs`, with the signal mask this process had before
    /// [`Foreground::take`], and waits for it, passing SIGTERM and SIGHUP
    /// on.
    ///
    /// A spawn error is the exec's (the command not found, ...), or the
    /// error of the child's move into the cgroup. After any other error the
    /// command is killed (it must not run on unenforced once the cgroup
    /// goes).
    pub fn run(&self, cmd: &mut Command, procs: File) -> io::Result<ExitStatus> {
        sys::prepare_child(cmd, procs.into(), &self.signals);
        let mut child = cmd.spawn()?;
        let waited = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            // SIGCHLD: look again; SIGINT, SIGQUIT: the command got them too.
            match self.signals.wait().map(Signal::from_named_raw) {
                Ok(Some(sig)) if sig == Signal::TERM || sig == Signal::HUP => {
                    // Not yet reaped, so the pid is still the command's.
                    let _ = rustix::process::kill_process(Pid::from_child(&child), sig);
                }
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        if waited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        waited
    }
}

/// Ends this process the way `status` says the command ended: its exit
/// code, or the signal that killed it (raised again, unless it would dump
/// a core of this process: then 128 + the signal's number, as shells do).
/// No destructor runs: drop what must be dropped first.
pub fn exit_as(status: ExitStatus) -> ! {
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    let sig = status.signal().unwrap_or(0);
    if sig > 0 && !dumps_core(sig) {
        sys::die_of(sig);
    }
    std::process::exit(128 + sig)
}

/// True for the signals whose default action dumps a core (signal(7)).
fn dumps_core(sig: i32) -> bool {
    [
        Signal::QUIT,
        Signal::ILL,
        Signal::TRAP,
        Signal::ABORT,
        Signal::BUS,
        Signal::FPE,
        Signal::SEGV,
        Signal::SYS,
        Signal::XCPU,
        Signal::XFSZ,
    ]
    .iter()
    .any(|s| s.as_raw() == sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_signals() {
        assert!(dumps_core(libc::SIGSEGV));
        assert!(dumps_core(libc::SIGQUIT));
        assert!(!dumps_core(libc::SIGTERM));
        assert!(!dumps_core(libc::SIGKILL));
        assert!(!dumps_core(libc::SIGPIPE));
        assert!(!dumps_core(libc::SIGRTMIN()));
    }
}
