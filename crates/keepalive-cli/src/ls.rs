//! `keepalive ls`: the TCP sockets of the host or of one network namespace,
//! each with its owning processes and its keepalive state. What is known
//! (the sock_diag dump, its join with `/proc/*/fd`, whether keepalive is
//! on and how that is known, each socket's options with `--pid`) comes
//! from keepalive-diag; this module filters and renders.
//!
//! `--json` prints one `connection` message per socket, then one
//! `ls_summary` (see [`crate::json`]).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow};
use keepalive::KeepaliveState;
use keepalive::host::NetNs;
use keepalive_diag::{
    KeepaliveSeen, Listed, Owners, PROC, PidFdError, PidFdErrorKind, StateSet, TcpSocket, TcpState,
    Timer, TimerKind, keepalive_seen,
};

use crate::cli::{LsArgs, StateFilter};
use crate::exit::Exit;
use crate::human::{self, plural};
use crate::json::{self, Connection, LsSummary, Message, Options, Process, TimerJson};

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
    let dump = list(&ns, states)?;
    let listed = keepalive_diag::listed_sockets(dump, &owners, args.pid.is_some());
    let mut rows: Vec<Row> = listed
        .into_iter()
        .map(|listed| Row {
            listed,
            options: None,
        })
        .collect();
    if let Some(pid) = args.pid {
        let all: Vec<Listed> = rows.iter().map(|r| r.listed.clone()).collect();
        match keepalive_diag::keepalive_options(pid, &all) {
            Ok(options) => {
                for row in &mut rows {
                    row.options = options.get(&row.listed.socket.inode).copied();
                }
            }
            Err(e) => eprintln!(
                "keepalive: warning: {:#}; the OPTIONS are not shown",
                pidfd_error("reading the socket options of", &e)
            ),
        }
    }
    rows.retain(|r| r.wanted(args));
    rows.sort_by_key(|r| {
        let s = &r.listed.socket;
        (s.state != TcpState::Listen, s.local, s.remote)
    });
    let summary = summary(&rows, &ns, args.pid.is_some());
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in &rows {
            json::write(&mut out, &Message::Connection(row.json()))?;
        }
        json::write(&mut out, &Message::LsSummary(summary))?;
    } else {
        out.write_all(table(&rows, args.pid.is_some()).as_bytes())?;
        writeln!(out, "{}", summary_text(&summary, &ns))?;
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// The TCP sockets in `states` of namespace `ns`.
fn list(ns: &NetNs, states: StateSet) -> anyhow::Result<Vec<TcpSocket>> {
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

/// One socket, what is known of it, and its options (with `--pid`).
struct Row {
    listed: Listed,
    options: Option<KeepaliveState>,
}

impl Row {
    fn seen(&self) -> KeepaliveSeen {
        keepalive_seen(&self.listed.socket, self.options.as_ref())
    }

    /// Whether the filters of `args` keep this row.
    fn wanted(&self, args: &LsArgs) -> bool {
        let s = &self.listed.socket;
        let (local, remote) = (s.local.port(), s.remote.port());
        let port_ok = args.port.is_none_or(|p| p == local || p == remote)
            && args.sport.is_none_or(|p| p == local)
            && args.dport.is_none_or(|p| p == remote);
        let keepalive_ok = !args.without_keepalive
            || matches!(self.seen(), KeepaliveSeen::Known { on: false, .. });
        port_ok && keepalive_ok
    }

    fn json(&self) -> Connection<'_> {
        let s = &self.listed.socket;
        let (keepalive, keepalive_from) = match self.seen() {
            KeepaliveSeen::Known { on, from } => (Some(on), Some(from.name())),
            KeepaliveSeen::Unknown | KeepaliveSeen::NotApplicable => (None, None),
        };
        Connection {
            family: s.family.name(),
            state: s.state.name(),
            local: s.local,
            remote: (s.state != TcpState::Listen).then_some(s.remote),
            inode: s.inode,
            uid: s.uid,
            processes: self.listed.processes.as_ref().map(|v| {
                v.iter()
                    .map(|o| Process {
                        pid: o.pid,
                        command: &o.command,
                        fd: o.fd,
                    })
                    .collect()
            }),
            timer: s.timer.map(|t| TimerJson {
                kind: t.kind.name(),
                left_ms: u64::try_from(t.left.as_millis()).unwrap_or(u64::MAX),
                count: t.count,
            }),
            keepalive,
            keepalive_from,
            options: self.options.as_ref().map(Options::from),
            recv_queue: s.recv_queue,
            send_queue: s.send_queue,
        }
    }
}

/// The KEEPALIVE column: the pending timer, or whether there is none.
fn timer_text(socket: &TcpSocket) -> String {
    let seen = keepalive_seen(socket, None);
    let Some(Timer { kind, left, count }) = socket.timer else {
        return match (socket.state, seen) {
            (TcpState::Listen, _) | (_, KeepaliveSeen::NotApplicable) => "-".to_owned(),
            _ => "off".to_owned(),
        };
    };
    // Time left, to the second once there is one: a timer's milliseconds
    // are already gone when they are read.
    let left = match left.as_secs() {
        0 => human::duration(left),
        secs => human::secs(secs),
    };
    let hidden = match seen {
        KeepaliveSeen::Unknown => " (keepalive unknown)",
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

/// The OPTIONS column: `on idle=1m intvl=10s cnt=6`.
fn options_text(o: Option<&KeepaliveState>) -> String {
    let Some(o) = o else {
        return "?".to_owned();
    };
    let mut s = format!(
        "{} idle={} intvl={} cnt={}",
        if o.enabled { "on" } else { "off" },
        human::secs(u64::from(o.idle)),
        human::secs(u64::from(o.interval)),
        o.count
    );
    if o.user_timeout_ms != 0 {
        s += &format!(
            " user_timeout={}",
            human::millis(u64::from(o.user_timeout_ms))
        );
    }
    s
}

/// The PROCESS column: the first holder, and how many more processes hold
/// the socket (a listener shared by pre-forked workers): `17801/python3 (+12)`.
fn processes_text(p: Option<&Vec<keepalive_diag::Owner>>) -> String {
    match p {
        None => "unknown".to_owned(),
        Some(v) if v.is_empty() => "-".to_owned(),
        Some(v) => {
            let mut pids: Vec<u32> = v.iter().map(|o| o.pid).collect();
            pids.sort_unstable();
            pids.dedup();
            let first = &v[0];
            match pids.len() {
                1 => format!("{}/{}", first.pid, first.command),
                n => format!("{}/{} (+{})", first.pid, first.command, n - 1),
            }
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
        let s = &r.listed.socket;
        let mut line = vec![
            s.local.to_string(),
            remote_text(s),
            s.state.to_string(),
            processes_text(r.listed.processes.as_ref()),
        ];
        if with_options {
            let fds: Vec<String> = r
                .listed
                .processes
                .iter()
                .flatten()
                .map(|o| o.fd.to_string())
                .collect();
            line.push(fds.join(","));
            line.push(options_text(r.options.as_ref()));
        }
        line.push(timer_text(s));
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

/// The counts of the summary line. TIME-WAIT and request sockets, which
/// no program holds, are not connections.
fn summary(rows: &[Row], ns: &NetNs, with_options: bool) -> LsSummary {
    let mut s = LsSummary {
        netns: ns.into(),
        connections: 0,
        without_keepalive: 0,
        keepalive_unknown: 0,
        listening: 0,
        listening_without_keepalive: with_options.then_some(0),
    };
    for r in rows {
        let seen = r.seen();
        if r.listed.socket.state == TcpState::Listen {
            s.listening += 1;
            if let (Some(n), KeepaliveSeen::Known { on: false, .. }) =
                (s.listening_without_keepalive.as_mut(), seen)
            {
                *n += 1;
            }
            continue;
        }
        match seen {
            KeepaliveSeen::NotApplicable => continue,
            KeepaliveSeen::Known { on: false, .. } => s.without_keepalive += 1,
            KeepaliveSeen::Unknown => s.keepalive_unknown += 1,
            KeepaliveSeen::Known { on: true, .. } => {}
        }
        s.connections += 1;
    }
    s
}

/// `14 connections, 9 without keepalive`, and more when there is more.
fn summary_text(s: &LsSummary, ns: &NetNs) -> String {
    let mut t = format!(
        "{}, {} without keepalive",
        plural(s.connections, "connection", "connections"),
        s.without_keepalive
    );
    if s.keepalive_unknown > 0 {
        t += &format!(
            ", {} unknown (another timer pending; --pid reads SO_KEEPALIVE)",
            s.keepalive_unknown
        );
    }
    if s.listening > 0 {
        t += &format!("; {} listening", s.listening);
        if let Some(n) = s.listening_without_keepalive {
            t += &format!(", {n} without keepalive");
        }
    }
    if !s.netns.current {
        t += &format!(" (network namespace: {ns})");
    }
    t
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keepalive_diag::{Family, Owner};

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
            info: None,
        }
    }

    fn owner(pid: u32, fd: i32) -> Owner {
        Owner {
            pid,
            command: "python3".into(),
            fd,
        }
    }

    fn row(s: TcpSocket, options: Option<KeepaliveState>) -> Row {
        Row {
            listed: Listed {
                socket: s,
                processes: Some(vec![owner(42, 3)]),
            },
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
    fn timer_column() {
        let s = socket(
            TcpState::Established,
            Some((TimerKind::Keepalive, 7_199_500, 0)),
        );
        assert_eq!(timer_text(&s), "keepalive 1h59m59s left, 0 probes");
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
    fn options_column_has_units() {
        assert_eq!(options_text(Some(&OFF)), "off idle=2h intvl=1m15s cnt=9");
        let on = KeepaliveState {
            enabled: true,
            idle: 60,
            interval: 10,
            count: 6,
            user_timeout_ms: 120_000,
        };
        assert_eq!(
            options_text(Some(&on)),
            "on idle=1m intvl=10s cnt=6 user_timeout=2m"
        );
        assert_eq!(options_text(None), "?");
    }

    #[test]
    fn a_shared_socket_shows_its_first_holder_and_how_many_more() {
        let mut owners: Vec<Owner> = (0..13).map(|i| owner(17801 + i, 3)).collect();
        // The same process again, not next to its first entry.
        owners.push(owner(17801, 7));
        assert_eq!(processes_text(Some(&owners)), "17801/python3 (+12)");
        assert_eq!(
            processes_text(Some(&vec![owner(42, 3), owner(42, 5)])),
            "42/python3"
        );
        assert_eq!(processes_text(None), "unknown");
        assert_eq!(processes_text(Some(&Vec::new())), "-");
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
        let s = summary(&rows, &ns, false);
        assert_eq!(
            summary_text(&s, &ns),
            "2 connections, 1 without keepalive; 1 listening"
        );
    }

    #[test]
    fn time_wait_is_not_a_connection() {
        let mut tw = row(
            socket(TcpState::TimeWait, Some((TimerKind::TimeWait, 1000, 0))),
            None,
        );
        tw.listed.processes = Some(Vec::new());
        let rows = vec![tw, row(socket(TcpState::Established, None), None)];
        let ns = NetNs::current().unwrap();
        let s = summary(&rows, &ns, false);
        assert_eq!((s.connections, s.without_keepalive), (1, 1));
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
            summary_text(&summary(&rows, &ns, true), &ns),
            "1 connection, 0 without keepalive, 1 unknown (another timer pending; \
             --pid reads SO_KEEPALIVE); 1 listening, 1 without keepalive"
        );
    }

    fn args(extra: &[&str]) -> LsArgs {
        use clap::Parser;
        let mut argv = vec!["keepalive", "ls"];
        argv.extend(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Ls(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn filters_like_ss() {
        let off = row(socket(TcpState::Established, None), None);
        let on = row(
            socket(TcpState::Established, Some((TimerKind::Keepalive, 1000, 0))),
            None,
        );
        assert!(off.wanted(&args(&["--port", "5000"])));
        assert!(off.wanted(&args(&["--port", "41234"])));
        assert!(!off.wanted(&args(&["--port", "80"])));
        assert!(off.wanted(&args(&["--sport", "5000"])));
        assert!(!off.wanted(&args(&["--sport", "41234"])));
        assert!(off.wanted(&args(&["--dport", "41234"])));
        assert!(!off.wanted(&args(&["--dport", "5000"])));
        assert!(off.wanted(&args(&["--without-keepalive"])));
        assert!(!on.wanted(&args(&["--without-keepalive"])));
        assert!(on.wanted(&args(&[])));
    }
}
