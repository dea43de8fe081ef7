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
//! `--user-timeout auto` is resolved against the kernel defaults of the
//! process's network namespace (read inside it), so `apply` computes
//! nothing from the caller's namespace.
//!
//! # Format (`--json`)
//!
//! One `{"type":"socket","data":{...}}` per socket with `fds`, `inode`,
//! `state`, `local`, `remote` (`null` for a listener), `before` and
//! `after` (the options, named as in `keepalive check --json`; `after` is
//! what was read back, or with `--dry-run` what would be set), `changes`
//! (`[{"option","old","new"}]`), `dry_run`, `error` (`null` or a
//! sentence); one `{"type":"skipped","data":{"fd","inode","reason"}}` per
//! descriptor left alone; then `{"type":"summary","data":{...}}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::anyhow;
use keepalive::host::NetNs;
use keepalive::{KeepaliveState, KernelDefaults, Millis, Settings, UserTimeout};
use keepalive_diag::{PROC, PidFd, PidFdErrorKind, StateSet, TcpSocket, TcpState, socket_inode};
use serde::Serialize;

use crate::cli::{AttachArgs, SettingsArgs};
use crate::exit::Exit;
use crate::json::write_line;
use crate::ls::{OptionsJson, list, needs_ptrace, pidfd_error};

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
    let sockets = list(&ns, StateSet::ESTABLISHED.union(StateSet::LISTEN))?;
    let settings = settings(&args.settings);

    // The process's sockets, by inode (a socket may sit at several
    // descriptors), in descriptor order.
    let by_inode: BTreeMap<u64, &TcpSocket> = sockets.iter().map(|s| (s.inode, s)).collect();
    let mut targets: Vec<Target> = Vec::new();
    for fd in &fds {
        let Some(socket) = by_inode.get(&fd.inode) else {
            continue;
        };
        match targets.iter_mut().find(|t| t.socket.inode == fd.inode) {
            Some(t) => t.fds.push(fd.fd),
            None => targets.push(Target {
                fds: vec![fd.fd],
                socket: **socket,
            }),
        }
    }

    // Every duplicate first: without the right, nothing is changed (and
    // nothing printed).
    let mut taken: Vec<(Target, OwnedFd)> = Vec::new();
    let mut skipped: Vec<(i32, u64, &str)> = Vec::new();
    for t in targets {
        let fd = t.fds[0];
        let dup = match pidfd.get_fd(fd) {
            Ok(dup) => dup,
            Err(e) if e.kind() == PidFdErrorKind::NoDescriptor => {
                skipped.push((fd, t.socket.inode, "closed since it was listed"));
                continue;
            }
            Err(e) => return Err(pidfd_error(ATTACHING, &e)),
        };
        if socket_inode(&dup).ok().flatten() != Some(t.socket.inode) {
            let why = "now another file (the number was reused)";
            skipped.push((fd, t.socket.inode, why));
            continue;
        }
        taken.push((t, dup));
    }

    let mut out = std::io::stdout().lock();
    let mut report = Report::new(args.json, args.dry_run);
    for (fd, inode, why) in skipped {
        report.skipped(&mut out, fd, inode, why)?;
    }

    for (t, dup) in &taken {
        let before = match KeepaliveState::read(dup) {
            Ok(b) => b,
            Err(e) => {
                report.failed(&mut out, t, None, None, &format!("getsockopt failed: {e}"))?;
                continue;
            }
        };
        let settings = resolve(settings, &before);
        let want = expected(&before, &settings);
        if args.dry_run {
            report.done(&mut out, t, &before, &want)?;
            continue;
        }
        if let Err(e) = keepalive::apply(dup, &settings) {
            let after = KeepaliveState::read(dup).ok();
            report.failed(&mut out, t, Some(&before), after.as_ref(), &e.to_string())?;
            continue;
        }
        match KeepaliveState::read(dup) {
            Ok(after) if after == want => report.done(&mut out, t, &before, &after)?,
            Ok(after) => {
                let why = format!("read back {}", differences(&want, &after));
                report.failed(&mut out, t, Some(&before), Some(&after), &why)?;
            }
            Err(e) => {
                let why = format!("cannot read the options back: {e}");
                report.failed(&mut out, t, Some(&before), None, &why)?;
            }
        }
    }
    report.summary(&mut out, pid, &command)?;
    out.flush()?;
    Ok(if report.failed > 0 {
        Exit::Error
    } else {
        Exit::Success
    })
}

/// The settings the flags give: keepalive on, the values given.
fn settings(a: &SettingsArgs) -> Settings {
    Settings {
        idle: a.idle,
        interval: a.interval,
        count: a.count,
        user_timeout: a.user_timeout,
        ..Settings::new()
    }
}

/// `s` with `TCP_USER_TIMEOUT=auto` replaced by its value on this socket:
/// idle + interval x count from the values it will have, the ones given or
/// else its own (what its program set, or the kernel defaults of its
/// network namespace, as getsockopt reports them).
fn resolve(s: Settings, before: &KeepaliveState) -> Settings {
    let own = KernelDefaults {
        idle: u64::from(before.idle),
        interval: u64::from(before.interval),
        count: u64::from(before.count),
    };
    match s.user_timeout {
        Some(UserTimeout::Auto) => Settings {
            user_timeout: s.user_timeout_ms(own).map(UserTimeout::Millis),
            ..s
        },
        _ => s,
    }
}

/// What a socket's options are once `s` (resolved) is applied to it.
fn expected(before: &KeepaliveState, s: &Settings) -> KeepaliveState {
    let secs = |v: Option<keepalive::Seconds>, old| v.map_or(old, |v| u32::from(v.get()));
    KeepaliveState {
        enabled: true,
        idle: secs(s.idle, before.idle),
        interval: secs(s.interval, before.interval),
        count: s.count.map_or(before.count, |c| u32::from(c.get())),
        user_timeout_ms: match s.user_timeout {
            Some(UserTimeout::Millis(ms)) => Millis::get(ms),
            _ => before.user_timeout_ms,
        },
    }
}

/// One option that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Change {
    option: &'static str,
    old: u32,
    new: u32,
}

/// The options that differ between `a` and `b`, in the HOWTO's order.
fn changes(a: &KeepaliveState, b: &KeepaliveState) -> Vec<Change> {
    [
        ("SO_KEEPALIVE", u32::from(a.enabled), u32::from(b.enabled)),
        ("TCP_KEEPIDLE", a.idle, b.idle),
        ("TCP_KEEPINTVL", a.interval, b.interval),
        ("TCP_KEEPCNT", a.count, b.count),
        ("TCP_USER_TIMEOUT", a.user_timeout_ms, b.user_timeout_ms),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .map(|(option, old, new)| Change { option, old, new })
    .collect()
}

/// `SO_KEEPALIVE 0->1, TCP_KEEPIDLE 7200->60`.
fn changes_text(c: &[Change]) -> String {
    let parts: Vec<String> = c
        .iter()
        .map(|c| format!("{} {}->{}", c.option, c.old, c.new))
        .collect();
    parts.join(", ")
}

/// `TCP_KEEPIDLE 7200 (expected 60)`.
fn differences(want: &KeepaliveState, got: &KeepaliveState) -> String {
    let parts: Vec<String> = changes(want, got)
        .iter()
        .map(|c| format!("{} {} (expected {})", c.option, c.new, c.old))
        .collect();
    parts.join(", ")
}

/// A socket of the process.
struct Target {
    /// Its descriptors there (usually one).
    fds: Vec<i32>,
    socket: TcpSocket,
}

impl Target {
    /// `fd 4 127.0.0.1:41234->127.0.0.1:8080`, `fd 3,5 [::]:8080 (listening)`.
    fn text(&self) -> String {
        let fds: Vec<String> = self.fds.iter().map(i32::to_string).collect();
        let fds = fds.join(",");
        match self.socket.state {
            TcpState::Listen => format!("fd {fds} {} (listening)", self.socket.local),
            _ => format!("fd {fds} {}->{}", self.socket.local, self.socket.remote),
        }
    }
}

#[derive(Serialize)]
struct SocketJson<'a> {
    fds: &'a [i32],
    inode: u64,
    state: &'static str,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    before: Option<OptionsJson>,
    after: Option<OptionsJson>,
    changes: Vec<Change>,
    dry_run: bool,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct SkippedJson<'a> {
    fd: i32,
    inode: u64,
    reason: &'a str,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    pid: u32,
    command: &'a str,
    sockets: u64,
    changed: u64,
    unchanged: u64,
    skipped: u64,
    failed: u64,
    dry_run: bool,
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

    fn json_socket(
        &self,
        out: &mut impl Write,
        t: &Target,
        before: Option<&KeepaliveState>,
        after: Option<&KeepaliveState>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let s = &t.socket;
        let changes = match (before, after) {
            (Some(b), Some(a)) => changes(b, a),
            _ => Vec::new(),
        };
        write_line(
            out,
            "socket",
            SocketJson {
                fds: &t.fds,
                inode: s.inode,
                state: s.state.name(),
                local: s.local,
                remote: (s.state != TcpState::Listen).then_some(s.remote),
                before: before.map(OptionsJson::from),
                after: after.map(OptionsJson::from),
                changes,
                dry_run: self.dry_run,
                error,
            },
        )
    }

    /// Set (or, dry, would be set) and read back as expected.
    fn done(
        &mut self,
        out: &mut impl Write,
        t: &Target,
        before: &KeepaliveState,
        after: &KeepaliveState,
    ) -> anyhow::Result<()> {
        let c = changes(before, after);
        if c.is_empty() {
            self.unchanged += 1;
        } else {
            self.changed += 1;
        }
        if self.json {
            return self.json_socket(out, t, Some(before), Some(after), None);
        }
        let what = match (c.is_empty(), self.dry_run) {
            (true, _) => "unchanged".to_owned(),
            (false, false) => changes_text(&c),
            (false, true) => format!("would change {}", changes_text(&c)),
        };
        writeln!(out, "{}: {what}", t.text())?;
        Ok(())
    }

    fn failed(
        &mut self,
        out: &mut impl Write,
        t: &Target,
        before: Option<&KeepaliveState>,
        after: Option<&KeepaliveState>,
        why: &str,
    ) -> anyhow::Result<()> {
        self.failed += 1;
        if self.json {
            return self.json_socket(out, t, before, after, Some(why));
        }
        writeln!(out, "{}: failed: {why}", t.text())?;
        Ok(())
    }

    fn skipped(
        &mut self,
        out: &mut impl Write,
        fd: i32,
        inode: u64,
        reason: &str,
    ) -> anyhow::Result<()> {
        self.skipped += 1;
        if self.json {
            return write_line(out, "skipped", SkippedJson { fd, inode, reason });
        }
        writeln!(out, "fd {fd}: {reason}, skipped")?;
        Ok(())
    }

    fn summary(&self, out: &mut impl Write, pid: u32, command: &str) -> anyhow::Result<()> {
        let sockets = self.changed + self.unchanged + self.failed;
        if self.json {
            return write_line(
                out,
                "summary",
                SummaryJson {
                    pid,
                    command,
                    sockets,
                    changed: self.changed,
                    unchanged: self.unchanged,
                    skipped: self.skipped,
                    failed: self.failed,
                    dry_run: self.dry_run,
                },
            );
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
    use keepalive::{ProbeCount, Seconds};

    use super::*;
    use crate::cli::{parse_idle, parse_probes, parse_user_timeout_arg};

    const DEFAULT: KeepaliveState = KeepaliveState {
        enabled: false,
        idle: 7200,
        interval: 75,
        count: 9,
        user_timeout_ms: 0,
    };

    #[test]
    fn settings_from_flags() {
        let a = SettingsArgs {
            idle: parse_idle("1m").ok(),
            interval: parse_idle("10").ok(),
            count: parse_probes("6").ok(),
            user_timeout: parse_user_timeout_arg("auto").ok(),
        };
        let s = settings(&a);
        assert!(s.enabled);
        assert_eq!(s.idle, Seconds::new(60));
        assert_eq!(s.count, ProbeCount::new(6));
        let before = KeepaliveState {
            enabled: false,
            idle: 7200,
            interval: 75,
            count: 9,
            user_timeout_ms: 0,
        };
        // auto = 60 + 10 x 6 = 120 s, from the given values.
        assert_eq!(
            resolve(s, &before).user_timeout,
            Millis::new(120_000).map(UserTimeout::Millis)
        );
        // Unset ones come from the socket itself: its program set 30/5/2.
        let own = KeepaliveState {
            idle: 30,
            interval: 5,
            count: 2,
            ..before
        };
        let only_auto = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        assert_eq!(
            resolve(only_auto, &own).user_timeout,
            Millis::new(40_000).map(UserTimeout::Millis)
        );
    }

    #[test]
    fn expected_keeps_what_is_not_given() {
        let s = Settings {
            idle: Seconds::new(60),
            ..Settings::new()
        };
        assert_eq!(
            expected(&DEFAULT, &s),
            KeepaliveState {
                enabled: true,
                idle: 60,
                ..DEFAULT
            }
        );
    }

    #[test]
    fn change_report() {
        let after = KeepaliveState {
            enabled: true,
            idle: 60,
            interval: 10,
            count: 6,
            user_timeout_ms: 0,
        };
        assert_eq!(
            changes_text(&changes(&DEFAULT, &after)),
            "SO_KEEPALIVE 0->1, TCP_KEEPIDLE 7200->60, TCP_KEEPINTVL 75->10, TCP_KEEPCNT 9->6"
        );
        assert!(changes(&after, &after).is_empty());
        assert_eq!(
            differences(&after, &DEFAULT),
            "SO_KEEPALIVE 0 (expected 1), TCP_KEEPIDLE 7200 (expected 60), \
             TCP_KEEPINTVL 75 (expected 10), TCP_KEEPCNT 9 (expected 6)"
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
