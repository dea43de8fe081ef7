//! `keepalive ls`: the TCP sockets of the host or of one network namespace
//! (sock_diag), each with its owning processes (`/proc/*/fd`) and its
//! keepalive state; with `--pid`, also each socket's own options, read on a
//! duplicate of the process's descriptor (pidfd_getfd).
//!
//! Where "keepalive on" comes from: without `--pid` it is read from the
//! kernel's timer. A connection with keepalive on always has its keepalive
//! timer pending, but the dump shows one timer per socket and a pending
//! retransmission or zero-window probe takes precedence, so such a
//! connection's keepalive is "unknown"; a listener never has a timer
//! (its connections inherit its options when accepted). With `--pid` it is
//! the socket's own `SO_KEEPALIVE`.
//!
//! # Format (`--json`)
//!
//! One line per socket, `{"type":"connection","data":{...}}`, with
//! `family` (`inet`, `inet6`), `state` (`established`, `listen`, ...),
//! `local`, `remote` (`null` for a listener), `inode`, `uid`, `processes`
//! (`[{"pid","command","fd"}]`; `[]` when no process holds it, `null` when
//! that could not be seen for lack of rights), `timer` (`null` or
//! `{"kind","left_ms","count"}`, kind `keepalive`, `retransmit`,
//! `time-wait`, `zero-window-probe`), `keepalive` (`true`, `false`, `null`
//! when unknown or not applicable), `keepalive_from` (`timer` or
//! `SO_KEEPALIVE`), `options` (with `--pid`: `so_keepalive`,
//! `tcp_keepidle`, `tcp_keepintvl`, `tcp_keepcnt`, `tcp_user_timeout` as
//! getsockopt reports them; else `null`), `recv_queue`, `send_queue`. Then
//! one `{"type":"summary","data":{...}}` with the counts of the summary line.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use keepalive::KeepaliveState;
use keepalive::host::NetNs;
use keepalive_diag::{
    Owner, Owners, PROC, PidFd, PidFdError, PidFdErrorKind, StateSet, TcpSocket, TcpState, Timer,
    TimerKind, socket_inode,
};
use serde::Serialize;

use crate::cli::{LsArgs, StateFilter};
use crate::exit::Exit;
use crate::json::write_line;

pub fn ls(args: &LsArgs) -> anyhow::Result<Exit> {
    let states = match args.state {
        StateFilter::Established => StateSet::ESTABLISHED,
        StateFilter::Listen => StateSet::LISTEN,
        StateFilter::All => StateSet::ALL,
    };
    let proc = Path::new(PROC);
    // With --pid, its descriptors first: no such process, or no right to
    // see them, is the first thing to say.
    let owners = match args.pid {
        Some(pid) => Owners::of_process(proc, pid).map_err(|e| proc_fd_error(pid, e))?,
        None => Owners::scan(proc).context("cannot read /proc")?,
    };
    let ns = match (&args.netns, args.pid) {
        (Some(spec), _) => NetNs::open(spec)?,
        (None, Some(pid)) => NetNs::of_pid(pid)?,
        (None, None) => NetNs::current()?,
    };
    let sockets = list(&ns, states)?;
    let mut rows: Vec<Row> = sockets
        .into_iter()
        .filter_map(|socket| {
            let held = owners.get(socket.inode);
            let processes = if !held.is_empty() {
                Some(held.to_vec())
            } else if args.pid.is_some() {
                return None;
            } else if owners.denied() > 0 && socket.inode != 0 {
                None
            } else {
                Some(Vec::new())
            };
            Some(Row {
                socket,
                processes,
                options: None,
            })
        })
        .collect();
    if let Some(pid) = args.pid {
        match read_options(pid, &rows) {
            Ok(options) => {
                for row in &mut rows {
                    row.options = options.get(&row.socket.inode).copied();
                }
            }
            Err(why) => eprintln!("keepalive: warning: {why}; the OPTIONS are not shown"),
        }
    }
    rows.sort_by_key(|r| {
        (
            r.socket.state != TcpState::Listen,
            r.socket.local,
            r.socket.remote,
        )
    });
    let summary = Summary::of(&rows, &ns, args.pid.is_some());
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in &rows {
            write_line(&mut out, "connection", row.json())?;
        }
        write_line(&mut out, "summary", &summary)?;
    } else {
        out.write_all(table(&rows, args.pid.is_some()).as_bytes())?;
        writeln!(out, "{}", summary.text())?;
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// The TCP sockets in `states` of namespace `ns`.
pub(crate) fn list(ns: &NetNs, states: StateSet) -> anyhow::Result<Vec<TcpSocket>> {
    let sockets = ns
        .run(|| keepalive_diag::tcp_sockets(states))?
        .with_context(|| format!("cannot list the TCP sockets of {ns}"))?;
    Ok(sockets)
}

/// The error for `/proc/PID/fd` that cannot be read.
fn proc_fd_error(pid: u32, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("no process with pid {pid}"),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "listing the sockets of pid {pid} needs the right to read /proc/{pid}/fd: \
             run as its user or as root"
        ),
        _ => anyhow!(e).context(format!("cannot read /proc/{pid}/fd")),
    }
}

/// The sentence for a missing ptrace right over `pid`.
pub(crate) fn needs_ptrace(doing: &str, pid: u32) -> anyhow::Error {
    anyhow!(
        "{doing} pid {pid} needs the right to ptrace it: run as its user \
         (if /proc/sys/kernel/yama/ptrace_scope allows) or as root (CAP_SYS_PTRACE)"
    )
}

/// The sentence for a pidfd call refused: which right or feature is missing.
pub(crate) fn pidfd_error(doing: &str, e: &PidFdError) -> anyhow::Error {
    let pid = e.pid;
    match e.kind() {
        PidFdErrorKind::NotPermitted => needs_ptrace(doing, pid),
        PidFdErrorKind::Unsupported => {
            anyhow!("{doing} pid {pid} needs Linux >= 5.6 (pidfd_getfd)")
        }
        PidFdErrorKind::NoProcess => anyhow!("no process with pid {pid}"),
        _ => anyhow!("{doing} pid {pid}: {e}"),
    }
}

/// Each socket's options, by inode, read on duplicates of `pid`'s
/// descriptors; the reason when they cannot be read.
fn read_options(pid: u32, rows: &[Row]) -> Result<HashMap<u64, KeepaliveState>, String> {
    let reading = "reading the socket options of";
    let pidfd = PidFd::open(pid).map_err(|e| format!("{:#}", pidfd_error(reading, &e)))?;
    let mut options = HashMap::new();
    for row in rows {
        let Some(owner) = row.processes.as_ref().and_then(|p| p.first()) else {
            continue;
        };
        let dup = match pidfd.get_fd(owner.fd) {
            Ok(dup) => dup,
            // Closed since it was listed.
            Err(e) if e.kind() == PidFdErrorKind::NoDescriptor => continue,
            Err(e) => return Err(format!("{:#}", pidfd_error(reading, &e))),
        };
        // The number may have been reused for another file meanwhile.
        if socket_inode(&dup).ok().flatten() != Some(row.socket.inode) {
            continue;
        }
        if let Ok(state) = KeepaliveState::read(&dup) {
            options.insert(row.socket.inode, state);
        }
    }
    Ok(options)
}

/// One socket and what is known of it.
struct Row {
    socket: TcpSocket,
    /// The processes holding it; `None` when that could not be seen.
    processes: Option<Vec<Owner>>,
    /// Its options (with `--pid`).
    options: Option<KeepaliveState>,
}

/// Whether keepalive is on, and how that is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keepalive {
    /// On or off, read from the timer or from `SO_KEEPALIVE`.
    Known(bool, Source),
    /// Hidden behind another timer, or a listener seen without `--pid`.
    Unknown,
    /// No socket a program holds: TIME_WAIT, request and orphaned sockets.
    NotApplicable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Timer,
    SoKeepalive,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Timer => "timer",
            Source::SoKeepalive => "SO_KEEPALIVE",
        }
    }
}

/// Keepalive on or off for `socket`, from its `options` when known, else
/// from its timer.
fn keepalive(socket: &TcpSocket, options: Option<&KeepaliveState>) -> Keepalive {
    if let Some(o) = options {
        return Keepalive::Known(o.enabled, Source::SoKeepalive);
    }
    let no_socket = matches!(
        socket.state,
        TcpState::TimeWait | TcpState::SynRecv | TcpState::NewSynRecv
    );
    if no_socket || socket.inode == 0 {
        return Keepalive::NotApplicable;
    }
    if socket.state == TcpState::Listen {
        return Keepalive::Unknown;
    }
    match socket.timer.map(|t| t.kind) {
        None => Keepalive::Known(false, Source::Timer),
        Some(TimerKind::Keepalive) => Keepalive::Known(true, Source::Timer),
        Some(_) => Keepalive::Unknown,
    }
}

/// `1h59m`, `2m5s`, `59s`, `250ms`: the largest two units, rounded down.
pub(crate) fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, 0) => format!("{}ms", d.as_millis()),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The KEEPALIVE column: the pending timer, or whether there is none.
fn timer_text(socket: &TcpSocket) -> String {
    let Some(Timer { kind, left, count }) = socket.timer else {
        return match socket.state {
            TcpState::Listen => "-".to_owned(),
            _ if keepalive(socket, None) == Keepalive::NotApplicable => "-".to_owned(),
            _ => "off".to_owned(),
        };
    };
    let left = short_duration(left);
    let hidden = match keepalive(socket, None) {
        Keepalive::Unknown => " (keepalive unknown)",
        _ => "",
    };
    match kind {
        TimerKind::Keepalive => {
            format!(
                "keepalive {left} left, {}",
                plural(count, "probe", "probes")
            )
        }
        TimerKind::Retransmit => format!(
            "retransmit {left} left, {}{hidden}",
            plural(count, "retransmission", "retransmissions")
        ),
        TimerKind::TimeWait => format!("time-wait {left} left"),
        TimerKind::ZeroWindowProbe => format!(
            "zero-window probe {left} left, {}{hidden}",
            plural(count, "probe", "probes")
        ),
        TimerKind::Other(n) => format!("timer {n} {left} left"),
    }
}

/// The OPTIONS column: `on idle=60 intvl=10 cnt=6`.
fn options_text(o: Option<&KeepaliveState>) -> String {
    let Some(o) = o else {
        return "?".to_owned();
    };
    let mut s = format!(
        "{} idle={} intvl={} cnt={}",
        if o.enabled { "on" } else { "off" },
        o.idle,
        o.interval,
        o.count
    );
    if o.user_timeout_ms != 0 {
        s += &format!(" user_timeout={}ms", o.user_timeout_ms);
    }
    s
}

fn processes_text(p: Option<&Vec<Owner>>) -> String {
    match p {
        None => "unknown".to_owned(),
        Some(v) if v.is_empty() => "-".to_owned(),
        Some(v) => {
            let mut seen: Vec<String> = Vec::new();
            for o in v {
                let s = format!("{}/{}", o.pid, o.command);
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            seen.join(",")
        }
    }
}

fn remote_text(socket: &TcpSocket) -> String {
    match socket.state {
        TcpState::Listen => "*".to_owned(),
        _ => socket.remote.to_string(),
    }
}

/// The table, with a header, columns aligned; empty without rows.
fn table(rows: &[Row], with_options: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut header = vec!["LOCAL", "REMOTE", "STATE", "PROCESS"];
    if with_options {
        header.extend(["FD", "OPTIONS"]);
    }
    header.push("KEEPALIVE");
    let mut lines: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for r in rows {
        let mut line = vec![
            r.socket.local.to_string(),
            remote_text(&r.socket),
            r.socket.state.to_string(),
            processes_text(r.processes.as_ref()),
        ];
        if with_options {
            let fds: Vec<String> = r
                .processes
                .iter()
                .flatten()
                .map(|o| o.fd.to_string())
                .collect();
            line.push(fds.join(","));
            line.push(options_text(r.options.as_ref()));
        }
        line.push(timer_text(&r.socket));
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == columns {
                out += cell;
            } else {
                out += &format!("{cell:<w$}  ", w = widths[c]);
            }
        }
        out += "\n";
    }
    out
}

/// The counts of the summary line.
#[derive(Debug, Serialize)]
struct Summary {
    namespace: String,
    /// Sockets not listening.
    connections: u64,
    /// Connections with keepalive known to be off.
    without_keepalive: u64,
    /// Connections whose keepalive another timer hides.
    keepalive_unknown: u64,
    listening: u64,
    /// Listeners with `SO_KEEPALIVE` off; `null` without `--pid`.
    listening_without_keepalive: Option<u64>,
    #[serde(skip)]
    current_namespace: bool,
}

impl Summary {
    fn of(rows: &[Row], ns: &NetNs, with_options: bool) -> Summary {
        let mut s = Summary {
            namespace: ns.to_string(),
            connections: 0,
            without_keepalive: 0,
            keepalive_unknown: 0,
            listening: 0,
            listening_without_keepalive: with_options.then_some(0),
            current_namespace: ns.is_current(),
        };
        for r in rows {
            let k = keepalive(&r.socket, r.options.as_ref());
            if r.socket.state == TcpState::Listen {
                s.listening += 1;
                if let (Some(n), Keepalive::Known(false, _)) =
                    (s.listening_without_keepalive.as_mut(), k)
                {
                    *n += 1;
                }
                continue;
            }
            s.connections += 1;
            match k {
                Keepalive::Known(false, _) => s.without_keepalive += 1,
                Keepalive::Unknown => s.keepalive_unknown += 1,
                _ => {}
            }
        }
        s
    }

    /// `14 connections, 9 without keepalive`, and more when there is more.
    fn text(&self) -> String {
        let mut t = format!(
            "{}, {} without keepalive",
            plural(self.connections, "connection", "connections"),
            self.without_keepalive
        );
        if self.keepalive_unknown > 0 {
            t += &format!(
                ", {} unknown (another timer pending; --pid reads SO_KEEPALIVE)",
                self.keepalive_unknown
            );
        }
        if self.listening > 0 {
            t += &format!("; {} listening", self.listening);
            if let Some(n) = self.listening_without_keepalive {
                t += &format!(", {n} without keepalive");
            }
        }
        if !self.current_namespace {
            t += &format!(" (network namespace: {})", self.namespace);
        }
        t
    }
}

#[derive(Serialize)]
struct ConnectionJson<'a> {
    family: &'static str,
    state: &'static str,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    inode: u64,
    uid: u32,
    processes: Option<Vec<ProcessJson<'a>>>,
    timer: Option<TimerJson>,
    keepalive: Option<bool>,
    keepalive_from: Option<&'static str>,
    options: Option<OptionsJson>,
    recv_queue: u32,
    send_queue: u32,
}

#[derive(Serialize)]
struct ProcessJson<'a> {
    pid: u32,
    command: &'a str,
    fd: i32,
}

#[derive(Serialize)]
struct TimerJson {
    kind: &'static str,
    left_ms: u128,
    /// Probes sent (keepalive, zero-window probe) or retransmissions.
    count: u8,
}

/// A socket's options, as `keepalive check --json` names them.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptionsJson {
    pub so_keepalive: bool,
    pub tcp_keepidle: u32,
    pub tcp_keepintvl: u32,
    pub tcp_keepcnt: u32,
    /// Milliseconds; 0 when unset.
    pub tcp_user_timeout: u32,
}

impl From<&KeepaliveState> for OptionsJson {
    fn from(o: &KeepaliveState) -> OptionsJson {
        OptionsJson {
            so_keepalive: o.enabled,
            tcp_keepidle: o.idle,
            tcp_keepintvl: o.interval,
            tcp_keepcnt: o.count,
            tcp_user_timeout: o.user_timeout_ms,
        }
    }
}

impl Row {
    fn json(&self) -> ConnectionJson<'_> {
        let s = &self.socket;
        let (keepalive, keepalive_from) = match keepalive(s, self.options.as_ref()) {
            Keepalive::Known(on, source) => (Some(on), Some(source.name())),
            Keepalive::Unknown | Keepalive::NotApplicable => (None, None),
        };
        ConnectionJson {
            family: s.family.name(),
            state: s.state.name(),
            local: s.local,
            remote: (s.state != TcpState::Listen).then_some(s.remote),
            inode: s.inode,
            uid: s.uid,
            processes: self.processes.as_ref().map(|v| {
                v.iter()
                    .map(|o| ProcessJson {
                        pid: o.pid,
                        command: &o.command,
                        fd: o.fd,
                    })
                    .collect()
            }),
            timer: s.timer.map(|t| TimerJson {
                kind: t.kind.name(),
                left_ms: t.left.as_millis(),
                count: t.count,
            }),
            keepalive,
            keepalive_from,
            options: self.options.as_ref().map(OptionsJson::from),
            recv_queue: s.recv_queue,
            send_queue: s.send_queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use keepalive_diag::Family;

    use super::*;

    fn socket(state: TcpState, timer: Option<(TimerKind, u64, u8)>) -> TcpSocket {
        TcpSocket {
            family: Family::Inet,
            state,
            local: "127.0.0.1:5000".parse().unwrap(),
            remote: "127.0.0.1:41234".parse().unwrap(),
            timer: timer.map(|(kind, ms, count)| Timer {
                kind,
                left: Duration::from_millis(ms),
                count,
            }),
            recv_queue: 0,
            send_queue: 0,
            uid: 0,
            inode: 1234,
            cookie: 1,
            interface: 0,
        }
    }

    fn row(s: TcpSocket, options: Option<KeepaliveState>) -> Row {
        Row {
            socket: s,
            processes: Some(vec![Owner {
                pid: 42,
                command: "python3".into(),
                fd: 3,
            }]),
            options,
        }
    }

    const OFF: KeepaliveState = KeepaliveState {
        enabled: false,
        idle: 7200,
        interval: 75,
        count: 9,
        user_timeout_ms: 0,
    };

    #[test]
    fn durations() {
        let d = |s| short_duration(Duration::from_secs(s));
        assert_eq!(d(7199), "1h59m");
        assert_eq!(d(7200), "2h");
        assert_eq!(d(125), "2m5s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(59), "59s");
        assert_eq!(short_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn keepalive_from_the_timer() {
        let est = TcpState::Established;
        let on = socket(est, Some((TimerKind::Keepalive, 1000, 0)));
        assert_eq!(keepalive(&on, None), Keepalive::Known(true, Source::Timer));
        assert_eq!(
            keepalive(&socket(est, None), None),
            Keepalive::Known(false, Source::Timer)
        );
        let retransmitting = socket(est, Some((TimerKind::Retransmit, 200, 1)));
        assert_eq!(keepalive(&retransmitting, None), Keepalive::Unknown);
        assert_eq!(
            keepalive(&socket(TcpState::Listen, None), None),
            Keepalive::Unknown
        );
        let tw = socket(TcpState::TimeWait, Some((TimerKind::TimeWait, 1000, 0)));
        assert_eq!(keepalive(&tw, None), Keepalive::NotApplicable);
    }

    #[test]
    fn so_keepalive_wins_over_the_timer() {
        let retransmitting = socket(TcpState::Established, Some((TimerKind::Retransmit, 200, 1)));
        assert_eq!(
            keepalive(&retransmitting, Some(&OFF)),
            Keepalive::Known(false, Source::SoKeepalive)
        );
    }

    #[test]
    fn timer_column() {
        let s = socket(
            TcpState::Established,
            Some((TimerKind::Keepalive, 7_199_500, 0)),
        );
        assert_eq!(timer_text(&s), "keepalive 1h59m left, 0 probes");
        let s = socket(
            TcpState::Established,
            Some((TimerKind::Keepalive, 5_000, 1)),
        );
        assert_eq!(timer_text(&s), "keepalive 5s left, 1 probe");
        assert_eq!(timer_text(&socket(TcpState::Established, None)), "off");
        assert_eq!(timer_text(&socket(TcpState::Listen, None)), "-");
        let s = socket(TcpState::Established, Some((TimerKind::Retransmit, 204, 2)));
        assert_eq!(
            timer_text(&s),
            "retransmit 204ms left, 2 retransmissions (keepalive unknown)"
        );
    }

    #[test]
    fn options_column() {
        assert_eq!(options_text(Some(&OFF)), "off idle=7200 intvl=75 cnt=9");
        let on = KeepaliveState {
            enabled: true,
            idle: 60,
            interval: 10,
            count: 6,
            user_timeout_ms: 120_000,
        };
        assert_eq!(
            options_text(Some(&on)),
            "on idle=60 intvl=10 cnt=6 user_timeout=120000ms"
        );
        assert_eq!(options_text(None), "?");
    }

    #[test]
    fn table_and_summary() {
        let rows = vec![
            row(socket(TcpState::Listen, None), None),
            row(
                socket(
                    TcpState::Established,
                    Some((TimerKind::Keepalive, 60_000, 0)),
                ),
                None,
            ),
            row(socket(TcpState::Established, None), None),
        ];
        assert_eq!(
            table(&rows, false),
            "\
LOCAL           REMOTE           STATE        PROCESS     KEEPALIVE
127.0.0.1:5000  *                listen       42/python3  -
127.0.0.1:5000  127.0.0.1:41234  established  42/python3  keepalive 1m left, 0 probes
127.0.0.1:5000  127.0.0.1:41234  established  42/python3  off
"
        );
        let ns = NetNs::current().unwrap();
        let summary = Summary::of(&rows, &ns, false);
        assert_eq!(
            summary.text(),
            "2 connections, 1 without keepalive; 1 listening"
        );
    }

    #[test]
    fn summary_with_options_and_unknowns() {
        let rows = vec![
            row(socket(TcpState::Listen, None), Some(OFF)),
            row(
                socket(TcpState::Established, Some((TimerKind::Retransmit, 200, 1))),
                None,
            ),
        ];
        let ns = NetNs::current().unwrap();
        assert_eq!(
            Summary::of(&rows, &ns, true).text(),
            "1 connection, 0 without keepalive, 1 unknown (another timer pending; \
             --pid reads SO_KEEPALIVE); 1 listening, 1 without keepalive"
        );
    }

    #[test]
    fn json_of_a_connection() {
        let r = row(
            socket(
                TcpState::Established,
                Some((TimerKind::Keepalive, 59_000, 0)),
            ),
            None,
        );
        let v = serde_json::to_value(r.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "family": "inet", "state": "established",
                "local": "127.0.0.1:5000", "remote": "127.0.0.1:41234",
                "inode": 1234, "uid": 0,
                "processes": [{"pid": 42, "command": "python3", "fd": 3}],
                "timer": {"kind": "keepalive", "left_ms": 59000, "count": 0},
                "keepalive": true, "keepalive_from": "timer", "options": null,
                "recv_queue": 0, "send_queue": 0
            })
        );
    }

    #[test]
    fn unknown_and_absent_owners() {
        assert_eq!(processes_text(None), "unknown");
        assert_eq!(processes_text(Some(&Vec::new())), "-");
    }
}
