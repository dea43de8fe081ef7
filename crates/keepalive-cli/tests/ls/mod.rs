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

mod attach;
mod filters;
mod pipe;
mod ss;

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
