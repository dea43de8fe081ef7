//! `keepalive attach`: keepalive on the TCP sockets of a running process.
//!
//! The process's established and listening TCP sockets are found by
//! matching its `/proc/PID/fd` socket inodes with a sock_diag dump of its
//! network namespace. A duplicate of each is taken with pidfd_getfd(2)
//! (all of them first, so that a missing right stops everything before
//! anything changed), checked to be still the socket listed (its inode:
//! the descriptor number may have been reused), then set, read back and
//! reported. The duplicates are closed, which leaves the process's own
//! descriptors and its sockets as they were: options set on a duplicate
//! apply to the shared socket.
//!
//! The duplicate-and-check, the join with the dump, and what applying the
//! settings makes of each socket (`--user-timeout auto` resolved from each
//! socket's own values) come from keepalive-diag and keepalive; this
//! module reports. `--json` prints one `attached` message per socket, one
//! `skipped` per descriptor left alone, then `attach_summary` (see
//! [`crate::json`]).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, anyhow};
use keepalive::host::NetNs;
use keepalive::{KeepaliveOption, KeepaliveState, OptionChange, Settings};
use keepalive_diag::{Duplicate, HeldSocket, PROC, PidFd, StateSet, TcpState};

use crate::cli::AttachArgs;
use crate::exit::Exit;
use crate::json::{self, AttachSummary, Attached, Change, Message, Options, Skipped};
use crate::ls::{needs_ptrace, pidfd_error};

const ATTACHING: &str = "attaching to";

pub fn attach(args: &AttachArgs) -> anyhow::Result<Exit> {
    let pid = args.pid;
    let pidfd = PidFd::open(pid).map_err(|e| pidfd_error(ATTACHING, &e))?;
    let proc = Path::new(PROC);
    let fds = keepalive_diag::process_sockets(proc, pid).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("no process with pid {pid}"),
        std::io::ErrorKind::PermissionDenied => needs_ptrace(ATTACHING, pid),
        _ => anyhow!(e).context(format!("cannot read /proc/{pid}/fd")),
    })?;
    let command = keepalive_diag::command(proc, pid).unwrap_or_default();
    let ns = NetNs::of_pid(pid)?;
    let dump = ns
        .run(|| keepalive_diag::tcp_sockets(StateSet::ESTABLISHED.union(StateSet::LISTEN)))?
        .with_context(|| format!("cannot list the TCP sockets of {ns}"))?;
    let settings = args.settings.settings();

    // Every duplicate first: without the right, nothing is changed (and
    // nothing printed).
    let mut taken: Vec<(HeldSocket, OwnedFd)> = Vec::new();
    let mut skipped: Vec<(i32, u64, Gone)> = Vec::new();
    for held in keepalive_diag::held_sockets(&fds, &dump) {
        // Each of the process's descriptors for the socket, until one is
        // still that socket.
        let mut gone = None;
        let mut dup = None;
        for &fd in &held.fds {
            match pidfd.socket(fd, held.socket.inode) {
                Ok(Duplicate::Socket(d)) => {
                    dup = Some(d);
                    break;
                }
                Ok(Duplicate::Closed) => gone = Some(Gone::Closed),
                Ok(Duplicate::Reused) => gone = Some(Gone::Reused),
                Err(e) => return Err(pidfd_error(ATTACHING, &e)),
            }
        }
        match (dup, gone) {
            (Some(d), _) => taken.push((held, d)),
            (None, gone) => {
                skipped.push((held.fds[0], held.socket.inode, gone.unwrap_or(Gone::Closed)))
            }
        }
    }

    let mut out = std::io::stdout().lock();
    let mut report = Report::new(args.json, args.dry_run);
    for (fd, inode, gone) in skipped {
        report.skipped(&mut out, fd, inode, gone)?;
    }
    for (held, dup) in &taken {
        let outcome = attach_one(dup, &settings, args.dry_run);
        report.socket(&mut out, held, &outcome)?;
    }
    report.summary(&mut out, pid, &command)?;
    out.flush()?;
    Ok(if report.failed > 0 {
        Exit::Error
    } else {
        Exit::Success
    })
}

/// Why a listed socket was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gone {
    /// Its descriptors were closed since it was listed.
    Closed,
    /// Its descriptor numbers now hold other files.
    Reused,
}

impl Gone {
    /// The JSON value.
    fn code(self) -> &'static str {
        match self {
            Gone::Closed => "closed",
            Gone::Reused => "reused",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Gone::Closed => "closed since it was listed",
            Gone::Reused => "now another file (the number was reused)",
        }
    }
}

/// What happened to one socket.
struct Outcome {
    before: Option<KeepaliveState>,
    /// Read back; with `--dry-run`, what would be set.
    after: Option<KeepaliveState>,
    error: Option<String>,
}

/// Reads, sets (unless `dry_run`) and reads back one socket.
fn attach_one(dup: &OwnedFd, settings: &Settings, dry_run: bool) -> Outcome {
    let before = match KeepaliveState::read(dup) {
        Ok(b) => b,
        Err(e) => {
            return Outcome {
                before: None,
                after: None,
                error: Some(format!(
                    "getsockopt failed: {}",
                    crate::exit::without_error_numbers(&e.to_string())
                )),
            };
        }
    };
    let want = before.after(settings);
    if dry_run {
        return Outcome {
            before: Some(before),
            after: Some(want),
            error: None,
        };
    }
    if let Err(e) = keepalive::apply(dup, settings) {
        return Outcome {
            before: Some(before),
            after: KeepaliveState::read(dup).ok(),
            error: Some(crate::exit::without_error_numbers(&e.to_string())),
        };
    }
    match KeepaliveState::read(dup) {
        Ok(after) if after == want => Outcome {
            before: Some(before),
            after: Some(after),
            error: None,
        },
        Ok(after) => Outcome {
            before: Some(before),
            after: Some(after),
            error: Some(format!("read back {}", differences(&want, &after))),
        },
        Err(e) => Outcome {
            before: Some(before),
            after: None,
            error: Some(format!(
                "cannot read the options back: {}",
                crate::exit::without_error_numbers(&e.to_string())
            )),
        },
    }
}

/// `SO_KEEPALIVE 0->1, TCP_KEEPIDLE 2h->1m`: values with their units.
fn changes_text(c: &[OptionChange]) -> String {
    let parts: Vec<String> = c
        .iter()
        .map(|c| {
            format!(
                "{} {}->{}",
                c.option,
                value(c.option, c.old),
                value(c.option, c.new)
            )
        })
        .collect();
    parts.join(", ")
}

/// An option's value in text: durations with a unit, unset user timeouts
/// in words.
fn value(option: KeepaliveOption, v: u32) -> String {
    match option {
        KeepaliveOption::Idle | KeepaliveOption::Interval => crate::human::secs(u64::from(v)),
        KeepaliveOption::UserTimeout if v == 0 => crate::human::KERNEL_DEFAULT.to_owned(),
        KeepaliveOption::UserTimeout => crate::human::millis(u64::from(v)),
        _ => v.to_string(),
    }
}

/// `TCP_KEEPIDLE 2h (expected 1m)`.
fn differences(want: &KeepaliveState, got: &KeepaliveState) -> String {
    let parts: Vec<String> = want
        .changes_to(got)
        .iter()
        .map(|c| {
            format!(
                "{} {} (expected {})",
                c.option,
                value(c.option, c.new),
                value(c.option, c.old)
            )
        })
        .collect();
    parts.join(", ")
}

/// `fd 4 127.0.0.1:41234->127.0.0.1:8080`, `fd 3,5 [::]:8080 (listening)`.
fn socket_text(held: &HeldSocket) -> String {
    let fds: Vec<String> = held.fds.iter().map(i32::to_string).collect();
    let fds = fds.join(",");
    match held.socket.state {
        TcpState::Listen => format!("fd {fds} {} (listening)", held.socket.local),
        _ => format!("fd {fds} {}->{}", held.socket.local, held.socket.remote),
    }
}

/// Prints each socket's outcome and counts them.
struct Report {
    json: bool,
    dry_run: bool,
    changed: u64,
    unchanged: u64,
    skipped: u64,
    failed: u64,
}

impl Report {
    fn new(json: bool, dry_run: bool) -> Report {
        Report {
            json,
            dry_run,
            changed: 0,
            unchanged: 0,
            skipped: 0,
            failed: 0,
        }
    }

    fn socket(
        &mut self,
        out: &mut impl Write,
        held: &HeldSocket,
        o: &Outcome,
    ) -> anyhow::Result<()> {
        let changes = match (&o.before, &o.after) {
            (Some(b), Some(a)) => b.changes_to(a),
            _ => Vec::new(),
        };
        match (&o.error, changes.is_empty()) {
            (Some(_), _) => self.failed += 1,
            (None, true) => self.unchanged += 1,
            (None, false) => self.changed += 1,
        }
        if self.json {
            let s = &held.socket;
            json::write(
                out,
                &Message::Attached(Attached {
                    fds: &held.fds,
                    inode: s.inode,
                    state: s.state.name(),
                    local: s.local,
                    remote: (s.state != TcpState::Listen).then_some(s.remote),
                    before: o.before.as_ref().map(Options::from),
                    after: o.after.as_ref().map(Options::from),
                    changes: changes
                        .iter()
                        .map(|c| Change {
                            setting: json::option_setting(c.option),
                            old: c.old,
                            new: c.new,
                        })
                        .collect(),
                    dry_run: self.dry_run,
                    error: o.error.as_deref(),
                }),
            )?;
            return Ok(());
        }
        let what = match (&o.error, changes.is_empty(), self.dry_run) {
            (Some(why), _, _) => format!("failed: {why}"),
            (None, true, _) => "unchanged".to_owned(),
            (None, false, false) => changes_text(&changes),
            (None, false, true) => format!("would change {}", changes_text(&changes)),
        };
        writeln!(out, "{}: {what}", socket_text(held))?;
        Ok(())
    }

    fn skipped(
        &mut self,
        out: &mut impl Write,
        fd: i32,
        inode: u64,
        gone: Gone,
    ) -> anyhow::Result<()> {
        self.skipped += 1;
        if self.json {
            let reason = gone.code();
            json::write(out, &Message::Skipped(Skipped { fd, inode, reason }))?;
            return Ok(());
        }
        writeln!(out, "fd {fd}: {}, skipped", gone.text())?;
        Ok(())
    }

    fn summary(&self, out: &mut impl Write, pid: u32, command: &str) -> anyhow::Result<()> {
        let sockets = self.changed + self.unchanged + self.failed;
        if self.json {
            json::write(
                out,
                &Message::AttachSummary(AttachSummary {
                    pid,
                    command,
                    sockets,
                    changed: self.changed,
                    unchanged: self.unchanged,
                    skipped: self.skipped,
                    failed: self.failed,
                    dry_run: self.dry_run,
                }),
            )?;
            return Ok(());
        }
        writeln!(out, "{}", self.summary_text(pid, command))?;
        Ok(())
    }

    fn summary_text(&self, pid: u32, command: &str) -> String {
        let who = format!("pid {pid} ({command})");
        if self.changed + self.unchanged + self.failed + self.skipped == 0 {
            return format!("{who} has no established or listening TCP socket");
        }
        let mut t = if self.dry_run {
            format!(
                "{who}: {} would change, {} unchanged",
                self.changed, self.unchanged
            )
        } else {
            format!(
                "{who}: {} changed, {} unchanged",
                self.changed, self.unchanged
            )
        };
        if self.skipped > 0 {
            t += &format!(", {} skipped", self.skipped);
        }
        if self.failed > 0 {
            t += &format!(", {} failed", self.failed);
        }
        if self.dry_run {
            t += "; nothing was changed (--dry-run)";
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: KeepaliveState = KeepaliveState {
        enabled: false,
        idle: 7200,
        interval: 75,
        count: 9,
        user_timeout_ms: 0,
    };

    #[test]
    fn change_report_has_units() {
        let after = KeepaliveState {
            enabled: true,
            idle: 60,
            interval: 10,
            count: 6,
            user_timeout_ms: 120_000,
        };
        assert_eq!(
            changes_text(&DEFAULT.changes_to(&after)),
            "SO_KEEPALIVE 0->1, TCP_KEEPIDLE 2h->1m, TCP_KEEPINTVL 1m15s->10s, TCP_KEEPCNT 9->6, \
             TCP_USER_TIMEOUT kernel default->2m"
        );
        assert_eq!(
            differences(&after, &DEFAULT),
            "SO_KEEPALIVE 0 (expected 1), TCP_KEEPIDLE 2h (expected 1m), \
             TCP_KEEPINTVL 1m15s (expected 10s), TCP_KEEPCNT 9 (expected 6), \
             TCP_USER_TIMEOUT kernel default (expected 2m)"
        );
    }

    #[test]
    fn summaries() {
        let mut r = Report::new(false, true);
        r.changed = 2;
        assert_eq!(
            r.summary_text(42, "python3"),
            "pid 42 (python3): 2 would change, 0 unchanged; nothing was changed (--dry-run)"
        );
        let r = Report::new(false, false);
        assert_eq!(
            r.summary_text(42, "sleep"),
            "pid 42 (sleep) has no established or listening TCP socket"
        );
    }
}
