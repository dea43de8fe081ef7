//! Issue 5: `keepalive ls` and `keepalive attach` on running programs.
//!
//! The targets are python3 servers and clients that never set keepalive
//! and report their own getsockopt values when sent SIGUSR1; the judges are
//! those reports, `ss -tno`, and `ls` itself. Namespace and privilege tests
//! need root and skip with a message otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use keepalive::{ProbeCount, Seconds, Settings};

use crate::util::json::{Connection, LsSummary, Message, Options, messages};
use crate::util::{
    Keepalive, Netns, Output, Record, Running, TIMEOUT, bare, is_root, kernel_defaults,
    parse_ss_time, python3, run, skip, spawn, tool, units,
};

/// `server HOST`: listens on HOST, port 0, prints `listening port=P`, then
/// accepts forever, printing `accepted port=P` (the peer's port) for each.
/// `client HOST PORT`: connects, prints `connected port=P` (its own port),
/// then waits. Neither sets any socket option. On SIGUSR1 each prints one
/// line per socket (`listener`, `accepted`, `client`) with what its own
/// getsockopt reports, then `reported n=N`.
const PEER: &str = r#"
import os, signal, socket, sys

socks = []

def report(*_):
    out = []
    for name, s in socks:
        o = s.getsockopt
        out.append("%s port=%d keepalive=%d keepcnt=%d keepidle=%d keepintvl=%d user_timeout=%d\n" % (
            name, s.getsockname()[1],
            o(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            o(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            o(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            o(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            o(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)))
    out.append("reported n=%d\n" % len(socks))
    os.write(1, "".join(out).encode())

signal.signal(signal.SIGUSR1, report)
host = sys.argv[2]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
if sys.argv[1] == "server":
    l = socket.socket(family, socket.SOCK_STREAM)
    l.bind((host, 0))
    l.listen(16)
    socks.append(("listener", l))
    os.write(1, b"listening port=%d\n" % l.getsockname()[1])
    while True:
        a, peer = l.accept()
        socks.append(("accepted", a))
        os.write(1, b"accepted port=%d\n" % peer[1])
else:
    c = socket.create_connection((host, int(sys.argv[3])))
    socks.append(("client", c))
    os.write(1, b"connected port=%d\n" % c.getsockname()[1])
    while True:
        signal.pause()
"#;

fn keepalive_cmd() -> Command {
    bare(env!("CARGO_BIN_EXE_keepalive"))
}

fn keepalive(args: &[&str]) -> Output {
    run(keepalive_cmd().args(args), TIMEOUT)
}

/// A running python3 peer, killed (with its process group) on drop.
struct Peer {
    _child: Running,
    pid: u32,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Peer {
    fn start(python: &Path, args: &[&str]) -> Peer {
        Self::start_cmd(bare(python).args(["-c", PEER]).args(args))
    }

    fn start_cmd(cmd: &mut Command) -> Peer {
        let mut child = spawn(cmd);
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text);
            *sink.lock().unwrap() = text;
        });
        Peer {
            _child: Running(child),
            pid,
            lines,
            stderr,
        }
    }

    /// Starts a server on `host`; returns it and its port.
    fn server(python: &Path, host: &str) -> (Peer, u16) {
        let peer = Peer::start(python, &["server", host]);
        let port = peer.expect("listening").get("port");
        (peer, u16::try_from(port).unwrap())
    }

    /// Connects a client to `host:port`; returns it and its own port.
    fn client(python: &Path, host: &str, port: u16) -> (Peer, u16) {
        let peer = Peer::start(python, &["client", host, &port.to_string()]);
        let own = peer.expect("connected").get("port");
        (peer, u16::try_from(own).unwrap())
    }

    /// The next line reporting `what`, within [`TIMEOUT`].
    fn expect(&self, what: &str) -> Record {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match Record::parse(&line) {
                    Some(r) if r.what == what => return r,
                    _ => seen.push(line),
                },
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "it exited",
                    };
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "pid {}: no `{what}` line ({why}); other lines: {seen:#?}\nstderr:\n{}",
                        self.pid,
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Asks the peer (SIGUSR1) for its sockets' options, as its own
    /// getsockopt reports them; by name (`client`, `listener`, `accepted`).
    fn report(&self) -> Vec<Record> {
        let out = run(bare("kill").args(["-USR1", &self.pid.to_string()]), TIMEOUT);
        out.assert_success();
        let mut records = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("pid {}: no report ({e:?})", self.pid));
            let Some(r) = Record::parse(&line) else {
                continue;
            };
            if r.what == "reported" {
                assert_eq!(records.len() as i64, r.get("n"), "{records:#?}");
                return records;
            }
            records.push(r);
        }
    }

    /// The one reported socket named `what`.
    fn only(&self, what: &str) -> Keepalive {
        let records: Vec<Record> = self
            .report()
            .into_iter()
            .filter(|r| r.what == what)
            .collect();
        assert_eq!(records.len(), 1, "one `{what}`: {records:#?}");
        records[0].keepalive()
    }

    fn pid_arg(&self) -> String {
        self.pid.to_string()
    }
}

/// `keepalive ls --json ARGS`: the connections and the summary.
fn ls(args: &[&str]) -> (Vec<Connection>, LsSummary, Output) {
    let out = keepalive(&[&["ls", "--json"], args].concat());
    out.assert_success();
    let (connections, summary) = ls_lines(&out);
    (connections, summary, out)
}

/// The `connection` lines of `ls --json` output and its last line, the
/// `ls_summary`; panics on any other line.
pub(crate) fn ls_lines(out: &Output) -> (Vec<Connection>, LsSummary) {
    let mut all = messages(out);
    let Some(Message::LsSummary(summary)) = all.pop() else {
        panic!("the last line is not an ls_summary\n{out}");
    };
    let connections = all
        .into_iter()
        .map(|m| match m {
            Message::Connection(c) => c,
            other => panic!("not a connection: {other:?}\n{out}"),
        })
        .collect();
    (connections, summary)
}

/// The connection from `local` to `remote`.
fn find(all: &[Connection], local: SocketAddr, remote: SocketAddr) -> &Connection {
    let found: Vec<&Connection> = all
        .iter()
        .filter(|c| c.local == local && c.remote == Some(remote))
        .collect();
    assert_eq!(found.len(), 1, "{local} -> {remote} in {all:#?}");
    found[0]
}

fn addr(host: &str, port: u16) -> SocketAddr {
    if host.contains(':') {
        format!("[{host}]:{port}").parse().unwrap()
    } else {
        format!("{host}:{port}").parse().unwrap()
    }
}

/// The `ss -tnoH` line of the established connection from `local`.
fn ss_line(local: SocketAddr) -> String {
    let out = run(
        bare("ss").args(["-tnoH", "state", "established", "src", &local.to_string()]),
        TIMEOUT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one ss line for {local}\n{out}");
    lines[0].to_owned()
}

/// python3 and ss, and the right to attach to the test's own children
/// (`keepalive` is their sibling, not their parent), or the reason to skip.
fn tools() -> Result<&'static Path, String> {
    let python = python3().ok_or("python3 is not installed")?;
    tool("ss").ok_or("ss (iproute2) is not installed")?;
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    let scope = scope.trim();
    if !is_root() && !scope.is_empty() && scope != "0" {
        return Err(format!(
            "kernel.yama.ptrace_scope = {scope} lets only root attach to a process \
             that is not its descendant"
        ));
    }
    Ok(python)
}

/// `ls --pid` shows a connection without keepalive; `attach --pid` on the
/// client switches it on, which the client's own getsockopt, `ss -tno` and
/// `ls` all show; the server's side is left alone.
#[test]
fn attach_switches_keepalive_on_in_a_running_client() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    server.expect("accepted");
    let (local, remote) = (addr("127.0.0.1", client_port), addr("127.0.0.1", port));

    let (before, summary, out) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(before.len(), 1, "{out}");
    let c = find(&before, local, remote);
    assert_eq!(c.state, "established");
    assert_eq!(c.family, "inet");
    assert_eq!(c.keepalive, Some(false), "{out}");
    assert_eq!(c.keepalive_from.as_deref(), Some("SO_KEEPALIVE"));
    assert!(c.timer.is_none(), "{out}");
    let p = &c.processes.as_ref().expect("owner known")[0];
    assert_eq!((p.pid, p.command.as_str()), (client.pid, "python3"));
    assert_eq!(
        c.options,
        Some(Options {
            keepalive: false,
            idle: defaults.idle as u32,
            interval: defaults.interval as u32,
            count: defaults.count as u32,
            user_timeout_ms: None,
        })
    );
    assert_eq!((summary.connections, summary.without_keepalive), (1, 1));
    let text = keepalive(&["ls", "--pid", &client.pid_arg()]);
    assert!(
        text.stdout.ends_with("1 connection, 1 without keepalive\n"),
        "{text}"
    );

    let out = keepalive(&[
        "attach",
        "--pid",
        &client.pid_arg(),
        "--idle",
        "61",
        "--interval",
        "11",
        "--count",
        "7",
    ]);
    out.assert_success();
    let want = format!(
        "fd {} {local}->{remote}: SO_KEEPALIVE 0->1, TCP_KEEPIDLE {}->1m1s, \
         TCP_KEEPINTVL {}->11s, TCP_KEEPCNT {}->7\n\
         pid {} (python3): 1 changed, 0 unchanged\n",
        p.fd,
        units(defaults.idle),
        units(defaults.interval),
        defaults.count,
        client.pid
    );
    assert_eq!(out.stdout, want, "{out}");

    // The program's own view.
    let configured = Keepalive {
        on: 1,
        count: 7,
        idle: 61,
        interval: 11,
        user_timeout: 0,
    };
    assert_eq!(client.only("client"), configured);
    // The kernel's, through ss.
    let line = ss_line(local);
    let timer = crate::util::ss_keepalive_timer(&line)
        .unwrap_or_else(|| panic!("no keepalive timer in ss: {line}"));
    assert!(
        timer <= Duration::from_secs(61) && timer > Duration::from_secs(45),
        "{line}"
    );
    // And ls's, from the timer, host-wide.
    let (after, _, out) = ls(&[]);
    let c = find(&after, local, remote);
    let t = c.timer.as_ref().expect("a timer");
    assert_eq!(t.kind, "keepalive", "{out}");
    assert!(t.left_ms <= 61_000 && t.left_ms > 45_000, "{t:?}");
    assert_eq!(t.count, 0);
    assert_eq!(c.keepalive, Some(true));
    assert_eq!(c.keepalive_from.as_deref(), Some("timer"));
    assert_eq!(c.processes.as_ref().unwrap()[0].pid, client.pid);
    // The server's end of the same connection was not touched.
    let s = find(&after, remote, local);
    assert_eq!(s.keepalive, Some(false), "{out}");
    assert_eq!(s.processes.as_ref().unwrap()[0].pid, server.pid);
    assert_eq!(server.only("accepted").on, 0);
}

/// `attach` on a listening socket: connections accepted afterwards inherit
/// the settings (IPv6).
#[test]
fn attach_to_a_listener_reaches_connections_accepted_later() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    if TcpListener::bind("[::1]:0").is_err() {
        skip!("no IPv6 loopback");
    }
    let (server, port) = Peer::server(python, "::1");
    let out = keepalive(&[
        "attach",
        "--pid",
        &server.pid_arg(),
        "--idle",
        "62",
        "--interval",
        "12",
        "--count",
        "8",
        "--user-timeout",
        "auto",
    ]);
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("[::1]:{port} (listening): SO_KEEPALIVE 0->1, ")),
        "{out}"
    );
    assert!(
        out.stdout.ends_with("(python3): 1 changed, 0 unchanged\n"),
        "{out}"
    );
    let (_client, client_port) = Peer::client(python, "::1", port);
    server.expect("accepted");
    // auto = 62 + 12 x 8 = 158 s.
    let configured = Keepalive {
        on: 1,
        count: 8,
        idle: 62,
        interval: 12,
        user_timeout: 158_000,
    };
    assert_eq!(server.only("accepted"), configured);
    assert_eq!(server.only("listener"), configured);
    let (all, summary, out) = ls(&["--pid", &server.pid_arg(), "--state", "all"]);
    let accepted = find(&all, addr("::1", port), addr("::1", client_port));
    assert_eq!(accepted.family, "inet6");
    assert_eq!(
        accepted.timer.as_ref().map(|t| t.kind.as_str()),
        Some("keepalive"),
        "{out}"
    );
    let listener = all
        .iter()
        .find(|c| c.state == "listen")
        .expect("the listener");
    assert_eq!(listener.remote, None);
    assert_eq!(listener.options.map(|o| o.keepalive), Some(true));
    assert_eq!((summary.connections, summary.without_keepalive), (1, 0));
    assert_eq!(summary.listening, 1);
}

/// `--dry-run` says what would change and changes nothing.
#[test]
fn dry_run_changes_nothing() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (_server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    let out = keepalive(&[
        "attach",
        "--pid",
        &client.pid_arg(),
        "--idle",
        "61",
        "--dry-run",
    ]);
    out.assert_success();
    assert!(
        out.stdout.contains(&format!(
            ": would change SO_KEEPALIVE 0->1, TCP_KEEPIDLE {}->1m1s\n",
            units(defaults.idle)
        )),
        "{out}"
    );
    assert!(
        out.stdout
            .ends_with("1 would change, 0 unchanged; nothing was changed (--dry-run)\n"),
        "{out}"
    );
    assert_eq!(client.only("client"), defaults);
    let local = addr("127.0.0.1", client_port);
    let line = ss_line(local);
    assert!(!line.contains("timer:(keepalive"), "{line}");
    let (all, _, _) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(all[0].keepalive, Some(false));
}

/// No such process: one line, exit 2 (an error).
#[test]
fn missing_process_is_one_line() {
    // Above the largest pid_max the kernel allows (4194304).
    for args in [
        &["attach", "--pid", "5000000"][..],
        &["ls", "--pid", "5000000"],
    ] {
        let out = keepalive(args);
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert_eq!(
            out.stderr, "keepalive: no process with pid 5000000\n",
            "{out}"
        );
        assert_eq!(out.stdout, "");
    }
}

/// Our own sockets, made in the calling thread's namespace: per family an
/// idle pair without keepalive and one with it, and their listeners.
struct Sockets {
    _held: Vec<(TcpListener, TcpStream, TcpStream)>,
    /// (local, remote) of each; remote `None` for a listener.
    keys: Vec<(SocketAddr, Option<SocketAddr>)>,
    inodes: Vec<u64>,
}

fn make_sockets(hosts: &[&str]) -> Sockets {
    let mut held = Vec::new();
    let mut keys = Vec::new();
    for host in hosts {
        for with_keepalive in [false, true] {
            let l = TcpListener::bind(addr(host, 0)).expect("bind");
            let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (a, _) = l.accept().expect("accept");
            if with_keepalive {
                let s = Settings {
                    idle: Some(Seconds::new(300).unwrap()),
                    interval: Some(Seconds::new(30).unwrap()),
                    count: Some(ProbeCount::new(3).unwrap()),
                    ..Settings::new()
                };
                keepalive::apply(&c, &s).expect("apply");
            }
            keys.push((l.local_addr().unwrap(), None));
            keys.push((c.local_addr().unwrap(), Some(c.peer_addr().unwrap())));
            keys.push((a.local_addr().unwrap(), Some(a.peer_addr().unwrap())));
            held.push((l, c, a));
        }
    }
    let inodes = held
        .iter()
        .flat_map(|(l, c, a)| [inode(l.as_fd()), inode(c.as_fd()), inode(a.as_fd())])
        .collect();
    Sockets {
        _held: held,
        keys,
        inodes,
    }
}

/// The socket inode of `fd`, as `/proc/self/fd` shows it.
fn inode(fd: BorrowedFd<'_>) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let text = link.to_str().unwrap();
    text.strip_prefix("socket:[")
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a socket: {text}"))
}

/// One socket as both tools describe it: state in ss's words, timer kind
/// in ss's words and time left.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    timer: Option<(String, Duration)>,
}

type View = BTreeMap<(SocketAddr, Option<SocketAddr>), Seen>;

fn ss_state(ls_state: &str) -> String {
    match ls_state {
        "established" => "ESTAB".to_owned(),
        "close" => "UNCONN".to_owned(),
        s => s.to_uppercase(),
    }
}

fn ss_timer(ls_kind: &str) -> &str {
    match ls_kind {
        "retransmit" => "on",
        "time-wait" => "timewait",
        "zero-window-probe" => "persist",
        k => k,
    }
}

fn ls_view(all: &[Connection]) -> View {
    all.iter()
        .map(|c| {
            let seen = Seen {
                state: ss_state(&c.state),
                timer: c.timer.as_ref().map(|t| {
                    (
                        ss_timer(&t.kind).to_owned(),
                        Duration::from_millis(t.left_ms),
                    )
                }),
            };
            ((c.local, c.remote), seen)
        })
        .collect()
}

/// `ADDR:PORT` as ss -n prints it; `None` for a wildcard peer (`*`).
fn ss_addr(text: &str) -> Option<SocketAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split('%').next()?;
    let host = if host == "*" { "::" } else { host };
    Some(addr(host, port))
}

/// Every line of `ss -tnoaH` (prefixed with `prefix`, e.g. `ip netns exec`).
fn ss_view(prefix: &[&str]) -> (View, String) {
    let mut cmd = if prefix.is_empty() {
        bare("ss")
    } else {
        let mut c = bare(prefix[0]);
        c.args(&prefix[1..]).arg("ss");
        c
    };
    let out = run(cmd.arg("-tnoaH"), TIMEOUT);
    out.assert_success();
    let mut view = View::new();
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [state, _, _, local, peer, rest @ ..] = &words[..] else {
            panic!("unexpected ss line: {line}");
        };
        let local = ss_addr(local).unwrap_or_else(|| panic!("{line}"));
        let remote = if *state == "LISTEN" {
            None
        } else {
            ss_addr(peer)
        };
        let timer = rest
            .iter()
            .find_map(|w| w.strip_prefix("timer:("))
            .map(|t| {
                let parts: Vec<&str> = t.trim_end_matches(')').split(',').collect();
                let left = parse_ss_time(parts[1]).unwrap_or_else(|| panic!("{line}"));
                (parts[0].to_owned(), left)
            });
        view.insert(
            (local, remote),
            Seen {
                state: state.to_string(),
                timer,
            },
        );
    }
    (view, out.stdout)
}

/// ss prints whole seconds, rounded down: allow for that and for the time
/// between the two commands (ls runs first, so its timers are the longer).
fn same(ls: &Seen, ss: &Seen) -> bool {
    let close = match (&ls.timer, &ss.timer) {
        (None, None) => true,
        (Some((a, x)), Some((b, y))) => a == b && x.abs_diff(*y) <= Duration::from_secs(3),
        _ => false,
    };
    ls.state == ss.state && close
}

fn assert_agree(keys: &[(SocketAddr, Option<SocketAddr>)], ls: &View, ss: &View, ss_text: &str) {
    for key in keys {
        let a = ls
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not in ls: {ls:#?}"));
        let b = ss
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not in ss:\n{ss_text}"));
        assert!(same(a, b), "{key:?}: ls {a:?}, ss {b:?}");
    }
}

/// ls and ss agree on our sockets on the host: state, addresses, timer
/// kind and time left, IPv4 and IPv6, with and without keepalive.
#[test]
fn ls_agrees_with_ss_on_the_host() {
    if tool("ss").is_none() {
        skip!("ss (iproute2) is not installed");
    }
    let hosts: &[&str] = if TcpListener::bind("[::1]:0").is_ok() {
        &["127.0.0.1", "::1"]
    } else {
        &["127.0.0.1"]
    };
    let ours = make_sockets(hosts);
    let (all, _, out) = ls(&["--state", "all"]);
    let (ss, ss_text) = ss_view(&[]);
    let listed = ls_view(&all);
    assert_agree(&ours.keys, &listed, &ss, &ss_text);
    // The timers are those keepalive gives: on the clients that asked.
    let with_timer = ours
        .keys
        .iter()
        .filter(|k| {
            listed[*k]
                .timer
                .as_ref()
                .is_some_and(|t| t.0 == "keepalive")
        })
        .count();
    assert_eq!(with_timer, hosts.len(), "{out}");
    // Every one of ours is held by this process.
    for inode in &ours.inodes {
        let c = all.iter().find(|c| c.inode == *inode).expect("listed");
        let pids: Vec<u32> = c.processes.iter().flatten().map(|p| p.pid).collect();
        assert!(pids.contains(&std::process::id()), "{c:?}");
    }
}

/// Inside a test namespace: ls --netns lists exactly what ss lists there,
/// and the host's listing has none of it.
#[test]
fn ls_agrees_with_ss_in_a_network_namespace() {
    if tool("ss").is_none() {
        skip!("ss (iproute2) is not installed");
    }
    let ns = match Netns::new("ls") {
        Ok(ns) => ns,
        Err(why) => skip!("{why}"),
    };
    let inside = keepalive::host::NetNs::open(ns.name()).expect("open the namespace");
    let ours = inside
        .run(|| make_sockets(&["127.0.0.1", "::1"]))
        .expect("enter the namespace");
    let (all, summary, out) = ls(&["--netns", ns.name(), "--state", "all"]);
    let (ss, ss_text) = ss_view(&["ip", "netns", "exec", ns.name()]);
    let listed = ls_view(&all);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        ss.keys().collect::<Vec<_>>(),
        "ls:\n{out}\nss:\n{ss_text}"
    );
    assert_agree(&ours.keys, &listed, &ss, &ss_text);
    assert_eq!(all.len(), 12, "{out}");
    assert_eq!((summary.connections, summary.without_keepalive), (8, 6));
    for c in &all {
        let pids: Vec<u32> = c.processes.iter().flatten().map(|p| p.pid).collect();
        assert_eq!(pids, [std::process::id()], "{c:?}");
    }
    let text = keepalive(&["ls", "--netns", ns.name()]);
    assert!(
        text.stdout.starts_with("LOCAL ")
            && text.stdout.contains(&format!(
                "\n8 connections, 6 without keepalive (network namespace: netns {} (net:[",
                ns.name()
            )),
        "{text}"
    );
    let (host, _, _) = ls(&["--state", "all"]);
    for inode in &ours.inodes {
        assert!(
            host.iter().all(|c| c.inode != *inode),
            "socket {inode} of the namespace in the host's listing"
        );
    }
}

/// A copy of the keepalive binary that any user may run, removed on drop
/// (a path with no descriptor open on it, so that it can be run).
fn world_executable_binary() -> tempfile::TempPath {
    let copy = tempfile::Builder::new()
        .prefix("keepalive-bin-")
        .tempfile()
        .expect("create the copy")
        .into_temp_path();
    std::fs::copy(env!("CARGO_BIN_EXE_keepalive"), &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// `setpriv` to nobody, or the reason it cannot be used.
fn as_nobody(program: &Path) -> Result<Command, &'static str> {
    if !is_root() {
        return Err("switching to another user needs root");
    }
    tool("setpriv").ok_or("setpriv (util-linux) is not installed")?;
    let mut cmd = bare("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    Ok(cmd)
}

/// An unprivileged user attaching to a root process gets one line naming
/// the missing right, and the target is untouched; its `ls` shows root's
/// sockets with their owner unknown.
#[test]
fn attach_without_the_right_is_refused_and_changes_nothing() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let bin = world_executable_binary();
    let mut cmd = match as_nobody(&bin) {
        Ok(c) => c,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (_server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    let out = run(
        cmd.args(["attach", "--pid", &client.pid_arg(), "--idle", "61"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "keepalive: attaching to pid {} needs the right to ptrace it: run as its user \
             (if /proc/sys/kernel/yama/ptrace_scope allows) or as root (CAP_SYS_PTRACE)\n",
            client.pid
        )
    );
    assert_eq!(client.only("client"), defaults, "the target changed");
    let (mine, _, _) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(mine[0].options.map(|o| o.keepalive), Some(false));

    // What nobody's ls shows of the same connection: all but the owner.
    let mut ls_cmd = as_nobody(&bin).unwrap();
    let out = run(ls_cmd.args(["ls", "--json"]), TIMEOUT);
    out.assert_success();
    let local = addr("127.0.0.1", client_port);
    let (seen, _) = ls_lines(&out);
    let c = find(&seen, local, addr("127.0.0.1", port));
    assert!(c.processes.is_none(), "owner should be unknown: {c:?}");
    assert_eq!(c.keepalive, Some(false));
    let text = run(as_nobody(&bin).unwrap().arg("ls"), TIMEOUT);
    let row = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{local} ")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" unknown "), "{row}");
}
