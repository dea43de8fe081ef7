//! A python3 process that holds idle loopback connections in a network
//! namespace, some with keepalive and some without, for doctor and metrics
//! to count.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use super::{Running, TIMEOUT, python3};

/// `python3 -c HOLDER ACCEPTED CLIENT...`: listens on 127.0.0.1 (port 0,
/// no options), opens one connection per CLIENT spec, accepts each, and
/// gives the accepted end the ACCEPTED spec. A spec is `off` (no option
/// set) or `on` (`SO_KEEPALIVE` only) or `on,IDLE,INTERVAL` (with
/// `TCP_KEEPIDLE` and `TCP_KEEPINTVL`). Then prints `ready listener=P
/// ports=P,P,...` (the listener's and every connection end's local port)
/// and sends nothing more until its stdin closes, when it exits.
const HOLDER_PY: &str = r#"
import socket, sys

def apply(s, spec):
    if spec == "off":
        return
    parts = spec.split(",")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if len(parts) == 3:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(parts[1]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, int(parts[2]))

accepted_spec, specs = sys.argv[1], sys.argv[2:]
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", 0))
l.listen(len(specs) + 1)
port = l.getsockname()[1]
held, ports = [l], []
for spec in specs:
    c = socket.create_connection(("127.0.0.1", port))
    apply(c, spec)
    a, _ = l.accept()
    apply(a, accepted_spec)
    held += [c, a]
    ports += [c.getsockname()[1], a.getsockname()[1]]
print("ready listener=%d ports=%s" % (port, ",".join(map(str, ports))), flush=True)
sys.stdin.read()
"#;

/// The running holder: killed (with its process group) when dropped, and it
/// exits by itself when the test process is gone (its stdin closes).
pub struct Holder {
    pub pid: u32,
    /// The listener's port.
    pub listener: u16,
    /// The local port of every connection end it holds.
    pub ports: Vec<u16>,
    _stdin: ChildStdin,
    _running: Running,
}

impl Holder {
    /// Starts the holder in network namespace `netns` (`ip netns exec`,
    /// which execs python3, so the pid is python3's) and waits until it
    /// holds every connection. See [`HOLDER_PY`] for the specs.
    pub fn spawn(netns: &str, accepted: &str, clients: &[&str]) -> Holder {
        let python = python3().expect("the caller checked for python3");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .arg(python)
            .args(["-c", HOLDER_PY, accepted])
            .args(clients)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let pid = child.id();
        let running = Running(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("the holder (pid {pid}) did not get ready"));
        let field = |key: &str| -> &str {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in the holder's line {line:?}"))
        };
        let listener = field("listener=").parse().expect("a port");
        let ports = field("ports=")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().expect("a port"))
            .collect();
        Holder {
            pid,
            listener,
            ports,
            _stdin: stdin,
            _running: running,
        }
    }
}
