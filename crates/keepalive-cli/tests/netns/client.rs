//! The clients: the unmodified python3 program under `keepalive run`, and
//! the same steps in this process with `keepalive::apply`; both print
//! event lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ChildStdin;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use keepalive::host::NetNs;
use keepalive::{KeepaliveState, Settings};

use super::timeline::{Event, Proc, mono};
use super::topology::Topology;
use super::{PORT, SERVER};
use crate::util::{Running, TIMEOUT, bare, preload, python3};

/// The unmodified client: connects, then does the steps given as
/// arguments, printing one event line for each (`kind t=MONOTONIC
/// since_recv=S since_send=S ...`, flushed at once):
/// - `go`: waits for a line on stdin (the test's go-ahead);
/// - `connect`: connects, prints `up` with the port and the socket's
///   keepalive options as getsockopt reports them;
/// - `send`: sends a request line, prints `sent`;
/// - `recv=S`: a blocking recv() bounded by SO_RCVTIMEO: `answer`,
///   `quiet` (nothing for S seconds), `eof`, or `error errno=NAME` (then
///   exits).
pub(crate) const CLIENT_PY: &str = r#"
import errno, socket, struct, sys, time

host, port, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sock = None
last_recv = last_send = None

def say(kind, extra=""):
    t = time.monotonic()
    line = "%s t=%.6f" % (kind, t)
    if last_recv is not None:
        line += " since_recv=%.6f" % (t - last_recv)
    if last_send is not None:
        line += " since_send=%.6f" % (t - last_send)
    print(line + extra, flush=True)

def fail(e):
    say("error", " errno=%s" % errno.errorcode.get(e.errno, str(e.errno)))
    sys.exit(0)

def options():
    get = sock.getsockopt
    tcp = socket.IPPROTO_TCP
    return " keepalive=%d idle=%d intvl=%d cnt=%d user_timeout_ms=%d" % (
        get(socket.SOL_SOCKET, socket.SO_KEEPALIVE), get(tcp, socket.TCP_KEEPIDLE),
        get(tcp, socket.TCP_KEEPINTVL), get(tcp, socket.TCP_KEEPCNT),
        get(tcp, socket.TCP_USER_TIMEOUT))

say("started")
for step in steps:
    if step == "go":
        if not sys.stdin.readline():
            sys.exit(0)
        say("go")
    elif step == "connect":
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError as e:
            fail(e)
        sock.settimeout(None)
        say("up", " port=%d%s" % (sock.getsockname()[1], options()))
    elif step == "send":
        try:
            sock.sendall(b"ping\n")
        except OSError as e:
            fail(e)
        last_send = time.monotonic()
        say("sent")
    elif step.startswith("recv="):
        secs = float(step[5:])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", int(secs), int(secs % 1 * 1e6)))
        try:
            data = sock.recv(64)
        except BlockingIOError:
            say("quiet")
            continue
        except OSError as e:
            fail(e)
        if not data:
            say("eof")
            sys.exit(0)
        last_recv = time.monotonic()
        say("answer")
    else:
        sys.exit("unknown step " + step)
say("done")
"#;

/// An event line in the python client's format, for the library client.
pub(crate) fn event_line(
    kind: &str,
    last_recv: Option<f64>,
    last_send: Option<f64>,
    extra: &str,
) -> String {
    let t = mono();
    let mut line = format!("{kind} t={t:.6}");
    if let Some(r) = last_recv {
        line += &format!(" since_recv={:.6}", t - r);
    }
    if let Some(s) = last_send {
        line += &format!(" since_send={:.6}", t - s);
    }
    line + extra
}

/// The name python's `errno.errorcode` gives `code`.
pub(crate) fn errno_name(code: i32) -> String {
    let known = [
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::EPIPE, "EPIPE"),
        (libc::EAGAIN, "EAGAIN"),
    ];
    known
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, name)| (*name).to_owned())
}

impl Topology {
    /// The unmodified python3 client in the client namespace, under
    /// `keepalive run OPTIONS` when `keepalive` is given, bare otherwise.
    pub(crate) fn python(&self, name: &str, keepalive: Option<&[&str]>, steps: &[&str]) -> Client {
        let mut cmd = bare("ip");
        cmd.args(["netns", "exec", &self.ns("cli")]);
        if let Some(options) = keepalive {
            cmd.env("KEEPALIVE_LIBRARY", preload())
                .arg(env!("CARGO_BIN_EXE_keepalive"))
                .arg("run")
                .args(options)
                .arg("--");
        }
        cmd.arg(python3().expect("checked in new"))
            .args(["-c", CLIENT_PY, SERVER, &PORT.to_string()])
            .args(steps);
        let what = match keepalive {
            Some(options) => format!("python3 under keepalive run {}", options.join(" ")),
            None => "python3 without keepalive".to_owned(),
        };
        self.timeline
            .log(name, format!("{what}, steps: {}", steps.join(" ")));
        let proc = Proc::spawn(&mut cmd, name, &self.timeline);
        Client {
            name: name.to_owned(),
            events: proc.events,
            stdin: proc.stdin,
            go: None,
            history: Vec::new(),
            _process: Some(proc.running),
        }
    }

    /// A client in this process, on a thread inside the client namespace,
    /// with `settings` applied by `keepalive::apply` after connecting (none
    /// when `None`). It takes the python client's steps.
    pub(crate) fn library(&self, name: &str, settings: Option<Settings>, steps: &[&str]) -> Client {
        let netns = NetNs::open(&self.ns("cli")).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let steps: Vec<String> = steps.iter().map(|s| (*s).to_owned()).collect();
        self.timeline.log(
            name,
            format!(
                "library client, keepalive::apply({settings:?}), steps: {}",
                steps.join(" ")
            ),
        );
        let (who, timeline) = (name.to_owned(), self.timeline.clone());
        thread::spawn(move || {
            let emit = |line: String| {
                if let Some(event) = Event::parse(&line) {
                    timeline.event(&who, &event);
                    let _ = tx.send(event);
                } else {
                    timeline.log(&who, line);
                }
            };
            if let Err(e) = netns.run(|| library_client(settings, &steps, go_rx, &emit)) {
                emit(format!("failed {e}"));
            }
        });
        Client {
            name: name.to_owned(),
            events: rx,
            stdin: None,
            go: Some(go_tx),
            history: Vec::new(),
            _process: None,
        }
    }
}

/// The library client: the python client's steps, in Rust, with
/// `keepalive::apply` after connecting.
pub(crate) fn library_client(
    settings: Option<Settings>,
    steps: &[String],
    go: Receiver<()>,
    emit: &impl Fn(String),
) {
    let (mut last_recv, mut last_send) = (None, None);
    let mut stream: Option<TcpStream> = None;
    emit(event_line("started", None, None, ""));
    for step in steps {
        let say = |kind: &str, extra: &str| emit(event_line(kind, last_recv, last_send, extra));
        let fail = |e: std::io::Error| {
            let code = e.raw_os_error().map_or_else(|| e.to_string(), errno_name);
            say("error", &format!(" errno={code}"));
        };
        match (step.as_str(), stream.as_mut()) {
            ("go", _) => {
                if go.recv().is_err() {
                    return;
                }
                say("go", "");
            }
            ("connect", _) => {
                let addr = SocketAddr::new(SERVER.parse().expect("an address"), PORT);
                let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                };
                if let Some(settings) = &settings
                    && let Err(e) = keepalive::apply(&s, settings)
                {
                    return say("failed", &format!(" apply: {e}"));
                }
                let options = match KeepaliveState::read(&s) {
                    Ok(k) => format!(
                        " keepalive={} idle={} intvl={} cnt={} user_timeout_ms={}",
                        u8::from(k.enabled),
                        k.idle,
                        k.interval,
                        k.count,
                        k.user_timeout_ms
                    ),
                    Err(e) => return say("failed", &format!(" getsockopt: {e}")),
                };
                let port = s.local_addr().map_or(0, |a| a.port());
                say("up", &format!(" port={port}{options}"));
                stream = Some(s);
            }
            ("send", Some(s)) => {
                if let Err(e) = s.write_all(b"ping\n") {
                    return fail(e);
                }
                last_send = Some(mono());
                emit(event_line("sent", last_recv, last_send, ""));
            }
            (step, Some(s)) if step.starts_with("recv=") => {
                let secs: f64 = step["recv=".len()..].parse().expect("recv=SECONDS");
                // A blocking read bounded by SO_RCVTIMEO, as the python client.
                if let Err(e) = s.set_read_timeout(Some(Duration::from_secs_f64(secs))) {
                    return fail(e);
                }
                let mut buf = [0; 64];
                match s.read(&mut buf) {
                    Ok(0) => return say("eof", ""),
                    Ok(_) => {
                        last_recv = Some(mono());
                        emit(event_line("answer", last_recv, last_send, ""));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => say("quiet", ""),
                    Err(e) => return fail(e),
                }
            }
            (step, _) => return say("failed", &format!(" unknown-step={step}")),
        }
    }
    emit(event_line("done", last_recv, last_send, ""));
}

/// A client, python or library, seen through its events.
pub(crate) struct Client {
    pub(crate) name: String,
    pub(crate) events: Receiver<Event>,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) go: Option<Sender<()>>,
    pub(crate) history: Vec<Event>,
    pub(crate) _process: Option<Running>,
}

impl Client {
    /// The go-ahead for its next `go` step.
    pub(crate) fn go(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
        }
        if let Some(go) = &self.go {
            let _ = go.send(());
        }
    }

    /// The next event, which must be a `kind` and come within `secs`.
    pub(crate) fn expect(&mut self, kind: &str, secs: f64) -> Event {
        match self.events.recv_timeout(Duration::from_secs_f64(secs)) {
            Ok(event) if event.kind == kind => {
                self.history.push(event.clone());
                event
            }
            Ok(event) => panic!("{}: expected `{kind}`, got `{}`", self.name, event.brief()),
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no `{kind}` within {secs:.1} s", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{}: ended before `{kind}` (its stderr is in the timeline)",
                self.name
            ),
        }
    }

    /// Its last event of this kind.
    pub(crate) fn last(&self, kind: &str) -> &Event {
        self.history
            .iter()
            .rev()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("{}: no `{kind}` yet", self.name))
    }

    pub(crate) fn port(&self) -> u16 {
        self.last("up").get("port").parse().expect("a port")
    }

    /// Checks the socket options it reported on `up`: `(idle, interval,
    /// count, user timeout ms)`, or keepalive off when `None`.
    pub(crate) fn assert_options(&self, expected: Option<(u64, u64, u64, u64)>) {
        let up = self.last("up");
        let field = |k| up.get(k).parse::<u64>().expect("a number");
        match expected {
            Some((idle, interval, count, user_timeout)) => assert_eq!(
                (
                    field("keepalive"),
                    field("idle"),
                    field("intvl"),
                    field("cnt"),
                    field("user_timeout_ms")
                ),
                (1, idle, interval, count, user_timeout),
                "{}: the socket's options (keepalive, idle, intvl, cnt, user timeout) `{}`",
                self.name,
                up.brief()
            ),
            None => assert_eq!(
                field("keepalive"),
                0,
                "{}: keepalive should be off: `{}`",
                self.name,
                up.brief()
            ),
        }
    }
}

/// Waits until every client started, lets them all go at once, and waits
/// for each to connect and have its first request answered.
pub(crate) fn start_all(clients: &mut [&mut Client]) {
    for c in clients.iter_mut() {
        c.expect("started", TIMEOUT.as_secs_f64());
    }
    for c in clients.iter_mut() {
        c.go();
    }
    for c in clients.iter_mut() {
        for kind in ["go", "up", "sent", "answer"] {
            c.expect(kind, 5.0);
        }
    }
}
