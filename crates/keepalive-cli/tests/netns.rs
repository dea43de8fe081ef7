//! Issue 4: the HOWTO's two promises (2.3 and 2.4) shown on the real kernel,
//! in network namespaces: a dead peer, a peer that rebooted, a NAT that
//! evicts idle connections, and a peer that vanishes while data is
//! unacknowledged.
//!
//! Each test builds its own three namespaces, `ka4-<pid>-<tag>-{cli,rtr,srv}`:
//!
//! ```text
//!  cli                    rtr (forwards; NAT in one test)          srv
//!  c0 10.200.1.2/24 ---- r0 10.200.1.1/24   r1 10.200.2.1/24 ---- s0 10.200.2.2/24
//! ```
//!
//! The veths are made inside the namespaces (never in the host's), the
//! addresses exist only there, and `nft` only ever runs through `ip netns
//! exec`: nothing reaches a real network or the host's settings. The
//! [`Topology`] guard deletes the namespaces (and so their veths and
//! rules) on every exit path, panics included; namespaces left by a test
//! process that was killed are swept by the next run.
//!
//! Each test starts its clients together against its topology: an unmodified
//! python3 program (standard library only, [`CLIENT_PY`]) under
//! `keepalive run`, a client in this process using the library API
//! (`keepalive::apply` on a std `TcpStream`, from a thread inside the
//! client namespace), and a control without keepalive. Every client
//! reports its events with CLOCK_MONOTONIC (python's `time.monotonic()`,
//! [`mono`] here) and the time since its last successful recv() (the last
//! acknowledged packet: the server's answer) and since its last send(); the
//! assertions use those. The test adds what it did and what `ss -tno` shows
//! in the client namespace (keepalive probes, retransmissions) to one
//! timeline, printed at the end of each test, and on failure that is the
//! explanation.
//!
//! They need root, ip and ss (iproute2), nft (nftables) and python3; without
//! them they skip and say why.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use keepalive::host::NetNs;
use keepalive::{KeepaliveState, ProbeCount, Seconds, Settings, UserTimeout};

use crate::util::{Running, TIMEOUT, bare, is_root, preload, python3, run, skip, tool};

/// The client's address (namespace `cli`, device `c0`).
const CLIENT_NET: &str = "10.200.1.2/24";
/// The router's address on the client side (`rtr`, `r0`).
const ROUTER_CLIENT_SIDE: &str = "10.200.1.1";
/// The router's address on the server side (`rtr`, `r1`).
const ROUTER_SERVER_SIDE: &str = "10.200.2.1";
/// The server's address (`srv`, `s0`).
const SERVER: &str = "10.200.2.2";
/// The server's port.
const PORT: u16 = 7777;

/// Keepalive of the dead peer, reboot and unacknowledged data tests:
/// idle 1 s, interval 1 s, 3 probes.
const IDLE: u64 = 1;
const INTERVAL: u64 = 1;
const COUNT: u64 = 3;
/// idle + interval x count: when a silent peer is given up on, seconds.
const BOUND: f64 = (IDLE + INTERVAL * COUNT) as f64;
/// How far a measured detection time may be from [`BOUND`].
const TOLERANCE: f64 = 1.0;
/// `keepalive run` options for [`IDLE`], [`INTERVAL`], [`COUNT`].
const RUN_1_1_3: [&str; 6] = ["--idle", "1", "--interval", "1", "--count", "3"];

/// The NAT test: the router forgets an established connection after this
/// many idle seconds...
const CONNTRACK_TIMEOUT: u64 = 5;
/// ...and the clients stay idle this long before their request.
const NAT_IDLE: f64 = 10.0;
/// Keepalive idle time and interval in the NAT test, well under
/// [`CONNTRACK_TIMEOUT`]. Both matter: on a live connection the kernel's
/// keepalive timer goes off `interval` after a probe, so answered probes
/// come every max(idle, interval) seconds; with `--idle 2` alone they come
/// every 75 s (the namespace's default interval) and the NAT forgets the
/// connection anyway.
const NAT_KEEPIDLE: u64 = 2;

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
const CLIENT_PY: &str = r#"
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

/// The server: answers each request with one line, any number of clients;
/// exits when its stdin closes (the test process is gone).
const SERVER_PY: &str = r#"
import os, socket, sys, threading, time

lock = threading.Lock()

def say(line):
    with lock:
        sys.stdout.write("%s t=%.6f\n" % (line, time.monotonic()))
        sys.stdout.flush()

def orphaned():
    # The test holds stdin open: EOF means it is gone, and so must we be.
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=orphaned, daemon=True).start()
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(16)
say("listening")

def serve(conn, peer):
    say("accepted peer=%s:%d" % peer)
    with conn:
        while True:
            data = conn.recv(64)
            if not data:
                return
            conn.sendall(b"pong\n")

while True:
    conn, peer = srv.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
"#;

/// CLOCK_MONOTONIC in seconds: the clock of python's `time.monotonic()`,
/// the same for every process, so both sides' events share a timeline.
fn mono() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives
    // in this frame.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One line a client or the server printed: `kind t=... key=value ...`.
#[derive(Clone, Debug)]
struct Event {
    kind: String,
    t: f64,
    fields: BTreeMap<String, String>,
    line: String,
}

impl Event {
    /// `None` for a line without a kind and a `t=`.
    fn parse(line: &str) -> Option<Event> {
        let mut words = line.split_whitespace();
        let kind = words.next()?.to_owned();
        let fields: BTreeMap<String, String> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let t = fields.get("t")?.parse().ok()?;
        Some(Event {
            kind,
            t,
            fields,
            line: line.to_owned(),
        })
    }

    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in `{}`", self.line))
    }

    fn num(&self, key: &str) -> f64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|e| panic!("{key}= in `{}`: {e}", self.line))
    }

    /// The line without its absolute time, times rounded to the millisecond.
    fn brief(&self) -> String {
        let mut out = self.kind.clone();
        for word in self.line.split_whitespace().skip(1) {
            match word.split_once('=') {
                Some(("t", _)) => continue,
                Some((k, v)) if k.starts_with("since_") && v.parse::<f64>().is_ok() => {
                    let secs: f64 = v.parse().unwrap_or_default();
                    out += &format!(" {k}={secs:.3}");
                }
                _ => out += &format!(" {word}"),
            }
        }
        out
    }
}

/// An event line in the python client's format, for the library client.
fn event_line(kind: &str, last_recv: Option<f64>, last_send: Option<f64>, extra: &str) -> String {
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
fn errno_name(code: i32) -> String {
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

/// What happened, from every source, on CLOCK_MONOTONIC.
struct Timeline {
    test: &'static str,
    start: f64,
    entries: Mutex<Vec<(f64, String, String)>>,
    /// The clients' local ports, to name them in what ss shows.
    ports: Mutex<BTreeMap<u16, String>>,
}

impl Timeline {
    fn log(&self, who: &str, what: impl Into<String>) {
        self.at(mono(), who, what);
    }

    fn at(&self, t: f64, who: &str, what: impl Into<String>) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((t, who.to_owned(), what.into()));
    }

    fn event(&self, who: &str, event: &Event) {
        if let Some(port) = event.fields.get("port").and_then(|p| p.parse().ok()) {
            self.ports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port, who.to_owned());
        }
        self.at(event.t, who, event.brief());
    }

    fn who(&self, port: u16) -> String {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("port {port}"))
    }

    fn render(&self, failed: bool) -> String {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0));
        let verdict = if failed { "FAILED" } else { "passed" };
        let mut out = format!(
            "--- timeline of {} ({verdict}), seconds since the namespaces were made:\n",
            self.test
        );
        for (t, who, what) in entries {
            out += &format!("{:>8.3}  {who:<28} {what}\n", t - self.start);
        }
        out + "---"
    }
}

/// What `ss -tno` showed for one client socket over the test.
#[derive(Clone, Copy, Debug, Default)]
struct SsSeen {
    keepalive_timer: bool,
    max_probes: u32,
    max_retransmits: u32,
}

/// One line of `ss -tnoH`.
struct SsLine {
    state: String,
    port: u16,
    peer_port: u16,
    /// The timer's kind (`keepalive`, `on` for retransmission) and count
    /// (unanswered probes, retransmissions).
    timer: Option<(String, u32)>,
}

impl SsLine {
    fn parse(line: &str) -> Option<SsLine> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let port = |w: &str| w.rsplit_once(':')?.1.parse().ok();
        let timer = words.iter().find_map(|w| {
            let inner = w.strip_prefix("timer:(")?.strip_suffix(')')?;
            let mut parts = inner.split(',');
            let kind = parts.next()?.to_owned();
            let count = parts.nth(1)?.parse().ok()?;
            Some((kind, count))
        });
        Some(SsLine {
            state: (*words.first()?).to_owned(),
            port: port(words.get(3)?)?,
            peer_port: port(words.get(4)?)?,
            timer,
        })
    }
}

/// The client, router and server namespaces of one test, deleted on drop,
/// with the server running in `srv` and `ss` watching `cli`.
struct Topology {
    prefix: String,
    timeline: Arc<Timeline>,
    netns: Vec<String>,
    server: Option<Proc>,
    sampler: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>,
    seen: Arc<Mutex<BTreeMap<u16, SsSeen>>>,
}

/// The router's NAT (HOWTO 2.4): masquerade towards the server, and drop
/// what conntrack finds invalid (a packet of a connection it forgot), with
/// a counter.
const NAT_RULES: &str = "add table ip ka4nat; \
    add counter ip ka4nat invalid; \
    add chain ip ka4nat forward { type filter hook forward priority filter; policy accept; }; \
    add rule ip ka4nat forward ct state invalid counter name \"invalid\" drop; \
    add chain ip ka4nat postrouting { type nat hook postrouting priority srcnat; policy accept; }; \
    add rule ip ka4nat postrouting oifname \"r1\" masquerade";

impl Topology {
    /// Builds the three namespaces (with NAT in the router when `nat`),
    /// and starts the server. `Err` says why the test cannot run here.
    fn new(test: &'static str, tag: &str, nat: bool) -> Result<Topology, String> {
        if !is_root() {
            return Err(format!(
                "{test} builds network namespaces, which needs root"
            ));
        }
        for (name, package) in [("ip", "iproute2"), ("ss", "iproute2"), ("nft", "nftables")] {
            if tool(name).is_none() {
                return Err(format!(
                    "{name} is not installed (apt-get install {package})"
                ));
            }
        }
        if python3().is_none() {
            return Err("python3 is not installed".to_owned());
        }
        // Built before the clock starts.
        preload();
        sweep_stale();
        let mut net = Topology {
            prefix: format!("ka4-{}-{tag}", std::process::id()),
            timeline: Arc::new(Timeline {
                test,
                start: mono(),
                entries: Mutex::new(Vec::new()),
                ports: Mutex::new(BTreeMap::new()),
            }),
            netns: Vec::new(),
            server: None,
            sampler: None,
            seen: Arc::new(Mutex::new(BTreeMap::new())),
        };
        for role in ["cli", "rtr", "srv"] {
            net.add_netns(role);
        }
        let (cli, rtr) = (net.ns("cli"), net.ns("rtr"));
        net.ip(&format!(
            "-n {rtr} link add r0 type veth peer name c0 netns {cli}"
        ));
        net.ip(&format!("-n {cli} addr add {CLIENT_NET} dev c0"));
        net.ip(&format!("-n {cli} link set c0 up"));
        net.ip(&format!(
            "-n {cli} route add default via {ROUTER_CLIENT_SIDE}"
        ));
        net.ip(&format!("-n {rtr} addr add {ROUTER_CLIENT_SIDE}/24 dev r0"));
        net.ip(&format!("-n {rtr} link set r0 up"));
        net.sysctl(&rtr, "net.ipv4.ip_forward", "1");
        net.link_server();
        let mut what = format!(
            "namespaces {0}-{{cli,rtr,srv}}: client {CLIENT_NET} -> router -> server {SERVER}:{PORT}",
            net.prefix
        );
        if nat {
            net.sysctl(&rtr, "net.netfilter.nf_conntrack_tcp_loose", "0");
            net.sysctl(
                &rtr,
                "net.netfilter.nf_conntrack_tcp_timeout_established",
                &CONNTRACK_TIMEOUT.to_string(),
            );
            net.nft(&rtr, NAT_RULES);
            what += &format!(
                "; router masquerades, conntrack forgets established connections after \
                 {CONNTRACK_TIMEOUT} s idle, nf_conntrack_tcp_loose=0, invalid packets dropped"
            );
        }
        net.timeline.log("test", what);
        net.start_server();
        net.start_sampler();
        Ok(net)
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn add_netns(&mut self, role: &str) {
        let name = self.ns(role);
        self.ip(&format!("netns add {name}"));
        self.netns.push(name.clone());
        self.ip(&format!("-n {name} link set lo up"));
    }

    /// The router-server cable: `r1` in the router, `s0` in the server.
    fn link_server(&self) {
        let (rtr, srv) = (self.ns("rtr"), self.ns("srv"));
        self.ip(&format!(
            "-n {rtr} link add r1 type veth peer name s0 netns {srv}"
        ));
        self.ip(&format!("-n {rtr} addr add {ROUTER_SERVER_SIDE}/24 dev r1"));
        self.ip(&format!("-n {rtr} link set r1 up"));
        self.ip(&format!("-n {srv} addr add {SERVER}/24 dev s0"));
        self.ip(&format!("-n {srv} link set s0 up"));
        self.ip(&format!(
            "-n {srv} route add default via {ROUTER_SERVER_SIDE}"
        ));
    }

    /// Runs `ip ARGS` (words separated by spaces) and panics, showing its
    /// output, unless it succeeds.
    fn ip(&self, args: &str) {
        let out = run(bare("ip").args(args.split_whitespace()), TIMEOUT);
        assert!(out.status.success(), "ip {args}\n{out}");
    }

    /// `ip netns exec NS nft SCRIPT`.
    fn nft(&self, ns: &str, script: &str) -> String {
        let out = run(
            bare("ip").args(["netns", "exec", ns, "nft", script]),
            TIMEOUT,
        );
        assert!(out.status.success(), "nft {script} in {ns}\n{out}");
        out.stdout
    }

    /// The packets counted by the named counter `table`/`name` in `rtr`.
    fn counter(&self, table: &str, name: &str) -> u64 {
        let text = self.nft(&self.ns("rtr"), &format!("list counter ip {table} {name}"));
        let packets = text
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in `{text}`"));
        self.timeline
            .log("router", format!("nft counter {name}: {packets} packets"));
        packets
    }

    /// The router's conntrack table, into the timeline (when `conntrack`
    /// is installed).
    fn conntrack(&self) {
        if tool("conntrack").is_none() {
            return;
        }
        let out = run(
            bare("ip").args(["netns", "exec", &self.ns("rtr"), "conntrack", "-L"]),
            TIMEOUT,
        );
        for line in out.stdout.lines().chain(out.stderr.lines()) {
            self.timeline.log("router", format!("conntrack: {line}"));
        }
    }

    /// Writes a sysctl of namespace `ns` (from a thread inside it) and
    /// checks that it took.
    fn sysctl(&self, ns: &str, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let netns = NetNs::open(ns).unwrap_or_else(|e| panic!("{e}"));
        let read = netns
            .run(|| {
                std::fs::write(&path, value)?;
                std::fs::read_to_string(&path)
            })
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("{key}={value} in {ns}: {e}"));
        assert_eq!(read.trim(), value, "{key} in {ns}");
    }

    fn start_server(&mut self) {
        let mut cmd = bare("ip");
        cmd.args(["netns", "exec", &self.ns("srv")])
            .arg(python3().expect("checked in new"))
            .args(["-c", SERVER_PY, SERVER, &PORT.to_string()]);
        let server = Proc::spawn(&mut cmd, "server", &self.timeline);
        match server.events.recv_timeout(TIMEOUT) {
            Ok(e) if e.kind == "listening" => {}
            // The timeline, with the server's stderr, is printed on drop.
            other => panic!("the server did not start: {other:?}"),
        }
        // Its later lines only go to the timeline; its stdin stays open
        // as long as it should run.
        self.server = Some(server);
    }

    /// Polls `ss -tno` in the client namespace every 200 ms, writing each
    /// change of a connection's state, timer or count to the timeline.
    fn start_sampler(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, timeline, seen, halt) = (
            self.ns("cli"),
            self.timeline.clone(),
            self.seen.clone(),
            stop.clone(),
        );
        let handle = thread::spawn(move || {
            let mut last: BTreeMap<u16, String> = BTreeMap::new();
            while !halt.load(Ordering::Relaxed) {
                let Ok(out) = bare("ss").args(["-N", &ns, "-tnoH"]).output() else {
                    return;
                };
                let now = mono();
                let mut current = BTreeMap::new();
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let Some(SsLine {
                        state,
                        port,
                        peer_port,
                        timer,
                    }) = SsLine::parse(line)
                    else {
                        continue;
                    };
                    if peer_port != PORT {
                        continue;
                    }
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    let seen = seen.entry(port).or_default();
                    let what = match &timer {
                        Some((kind, n)) if kind == "keepalive" => {
                            seen.keepalive_timer = true;
                            seen.max_probes = seen.max_probes.max(*n);
                            format!("{state}, keepalive timer, {n} probes unanswered")
                        }
                        Some((kind, n)) if kind == "on" => {
                            seen.max_retransmits = seen.max_retransmits.max(*n);
                            format!("{state}, retransmission timer, {n} retransmissions")
                        }
                        Some((kind, n)) => format!("{state}, timer {kind} {n}"),
                        None => format!("{state}, no timer"),
                    };
                    current.insert(port, what);
                }
                for (port, what) in &current {
                    if last.get(port) != Some(what) {
                        timeline.at(now, &timeline.who(*port), format!("ss: {what}"));
                    }
                }
                for port in last.keys().filter(|p| !current.contains_key(p)) {
                    timeline.at(now, &timeline.who(*port), "ss: connection gone");
                }
                last = current;
                thread::sleep(Duration::from_millis(200));
            }
        });
        self.sampler = Some((stop, handle));
    }

    /// What ss showed for the socket of `client`.
    fn seen(&self, client: &Client) -> SsSeen {
        let port = client.port();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&port).copied().unwrap_or_default()
    }

    /// Black-holes the path both ways: the router drops everything to and
    /// from the server (nftables, before routing), and the server's link
    /// goes down. Returns when both are done.
    fn cut(&self) -> f64 {
        // Before routing, so the router sends no ICMP either; with a counter.
        let rules = format!(
            "add table ip ka4cut; add counter ip ka4cut blackholed; \
             add chain ip ka4cut prerouting {{ type filter hook prerouting priority raw; policy accept; }}; \
             add rule ip ka4cut prerouting ip daddr {SERVER} counter name \"blackholed\" drop; \
             add rule ip ka4cut prerouting ip saddr {SERVER} counter name \"blackholed\" drop"
        );
        self.nft(&self.ns("rtr"), &rules);
        self.ip(&format!("-n {} link set s0 down", self.ns("srv")));
        let t = mono();
        self.timeline.at(
            t,
            "test",
            "path cut: router drops all to/from the server (nft), server link s0 down",
        );
        t
    }

    /// The server loses power and comes back: its link goes down first (so
    /// it sends nothing, not even a FIN), its processes die, its namespace
    /// is destroyed and made again with the same address and no listener.
    fn reboot_server(&mut self) {
        let (rtr, srv) = (self.ns("rtr"), self.ns("srv"));
        self.ip(&format!("-n {srv} link set s0 down"));
        self.timeline.log(
            "test",
            "server power lost: link s0 down, then its processes killed",
        );
        drop(self.server.take());
        self.ip(&format!("-n {rtr} link del r1"));
        self.ip(&format!("netns del {srv}"));
        self.netns.retain(|n| *n != srv);
        self.timeline
            .log("test", format!("namespace {srv} destroyed"));
        self.add_netns("srv");
        self.link_server();
        self.timeline.log(
            "test",
            format!("server rebooted: {srv} made again, {SERVER}, no listener"),
        );
    }

    /// The unmodified python3 client in the client namespace, under
    /// `keepalive run OPTIONS` when `keepalive` is given, bare otherwise.
    fn python(&self, name: &str, keepalive: Option<&[&str]>, steps: &[&str]) -> Client {
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
    fn library(&self, name: &str, settings: Option<Settings>, steps: &[&str]) -> Client {
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

    /// A measured result, for the timeline (and the closing note).
    fn measured(&self, who: &str, what: String) {
        self.timeline.log(who, format!("MEASURED {what}"));
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.sampler.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        drop(self.server.take());
        eprintln!("{}", self.timeline.render(thread::panicking()));
        for ns in self.netns.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes, once per test process, the namespaces of test processes that
/// no longer exist (`ka4-<pid>-...` whose pid is gone: killed before their
/// guards ran).
fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let Ok(dir) = std::fs::read_dir(keepalive::host::NETNS_RUN_DIR) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((pid, _)) = name.strip_prefix("ka4-").and_then(|r| r.split_once('-')) else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
                continue;
            }
            eprintln!("deleting {name}, left by test process {pid}, which is gone");
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    });
}

/// A child with its stdout lines parsed into events (and logged) and its
/// stderr lines logged.
struct Proc {
    running: Running,
    stdin: Option<ChildStdin>,
    events: Receiver<Event>,
}

impl Proc {
    fn spawn(cmd: &mut Command, who: &str, timeline: &Arc<Timeline>) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (tx, rx) = mpsc::channel();
        let (who_out, timeline_out) = (who.to_owned(), timeline.clone());
        thread::spawn(move || {
            for line in BufReader::new(stdout.expect("piped"))
                .lines()
                .map_while(Result::ok)
            {
                match Event::parse(&line) {
                    Some(event) => {
                        timeline_out.event(&who_out, &event);
                        let _ = tx.send(event);
                    }
                    None => timeline_out.log(&who_out, line),
                }
            }
        });
        let (who_err, timeline_err) = (who.to_owned(), timeline.clone());
        thread::spawn(move || {
            for line in BufReader::new(stderr.expect("piped"))
                .lines()
                .map_while(Result::ok)
            {
                timeline_err.log(&who_err, format!("stderr: {line}"));
            }
        });
        Proc {
            running: Running(child),
            stdin,
            events: rx,
        }
    }
}

/// The library client: the python client's steps, in Rust, with
/// `keepalive::apply` after connecting.
fn library_client(
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
struct Client {
    name: String,
    events: Receiver<Event>,
    stdin: Option<ChildStdin>,
    go: Option<Sender<()>>,
    history: Vec<Event>,
    _process: Option<Running>,
}

impl Client {
    /// The go-ahead for its next `go` step.
    fn go(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
        }
        if let Some(go) = &self.go {
            let _ = go.send(());
        }
    }

    /// The next event, which must be a `kind` and come within `secs`.
    fn expect(&mut self, kind: &str, secs: f64) -> Event {
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
    fn last(&self, kind: &str) -> &Event {
        self.history
            .iter()
            .rev()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("{}: no `{kind}` yet", self.name))
    }

    fn port(&self) -> u16 {
        self.last("up").get("port").parse().expect("a port")
    }

    /// Checks the socket options it reported on `up`: `(idle, interval,
    /// count, user timeout ms)`, or keepalive off when `None`.
    fn assert_options(&self, expected: Option<(u64, u64, u64, u64)>) {
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
fn start_all(clients: &mut [&mut Client]) {
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

/// The library's settings: `idle`, and when given `interval`, `count`, and
/// `TCP_USER_TIMEOUT=auto`.
fn settings(idle: u64, interval_count: Option<(u64, u64)>, user_timeout: bool) -> Settings {
    Settings {
        idle: Seconds::new(idle),
        interval: interval_count.and_then(|(i, _)| Seconds::new(i)),
        count: interval_count.and_then(|(_, c)| ProbeCount::new(c)),
        user_timeout: user_timeout.then_some(UserTimeout::Auto),
        ..Settings::new()
    }
}

/// The options a 1/1/3 client must report, with or without the user timeout.
fn options_1_1_3(user_timeout: bool) -> Option<(u64, u64, u64, u64)> {
    let ms = if user_timeout { BOUND as u64 * 1000 } else { 0 };
    Some((IDLE, INTERVAL, COUNT, ms))
}

/// HOWTO 2.3: a peer that dies without a word. After the last answer the
/// path is black-holed both ways; a blocking recv() fails with ETIMEDOUT
/// idle + interval x count after that answer (the last acknowledged
/// packet), and without keepalive nothing happens in three times as long.
#[test]
fn dead_peer_is_detected_after_idle_plus_interval_times_count() {
    let net = match Topology::new("dead_peer", "dead", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let window = 3.0 * BOUND;
    let wait = format!("recv={window}");
    let steps = ["go", "connect", "send", "recv=5", &wait];
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(IDLE, Some((INTERVAL, COUNT)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    let cut = net.cut();
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let late = cut - c.last("answer").t;
        assert!(
            late < IDLE as f64,
            "{}: the path was cut {late:.3} s after the last answer, after the first probe \
             was due: the detection time would not count from the last acknowledged packet",
            c.name
        );
        let error = c.expect("error", window + 2.0);
        let took = error.num("since_recv");
        let seen = net.seen(c);
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after the last answer (bound {BOUND} s); ss counted {} \
                 unanswered probes",
                error.get("errno"),
                seen.max_probes
            ),
        );
        assert_eq!(error.get("errno"), "ETIMEDOUT", "{}", c.name);
        assert!(
            (took - BOUND).abs() <= TOLERANCE,
            "{}: recv() failed {took:.3} s after the last answer, expected {BOUND} s +/- {TOLERANCE} s",
            c.name
        );
        assert!(
            seen.keepalive_timer && seen.max_probes >= 1,
            "{}: ss never showed an unanswered keepalive probe: {seen:?}",
            c.name
        );
    }
    plain.assert_options(None);
    let quiet = plain.expect("quiet", window + 2.0);
    let idle = quiet.num("since_recv");
    net.measured(
        &plain.name,
        format!("no error in {idle:.3} s after the last answer"),
    );
    assert!(
        idle >= window - 0.1,
        "{}: quiet after only {idle:.3} s",
        plain.name
    );
    assert!(
        !net.seen(&plain).keepalive_timer,
        "the control had a keepalive timer"
    );
    net.counter("ka4cut", "blackholed");
}

/// HOWTO 2.3, the diagram: the server reboots (its namespace destroyed and
/// made again, same address, no listener). With keepalive the client's
/// blocking recv() fails with ECONNRESET (the probe is answered with a
/// reset) without it sending anything; without keepalive it stays blind
/// until it sends.
#[test]
fn peer_reboot_is_learned_by_the_probe_without_sending() {
    let mut net = match Topology::new("peer_reboot", "boot", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let window = 3.0 * BOUND;
    let wait = format!("recv={window}");
    let steps = ["go", "connect", "send", "recv=5", &wait];
    let plain_steps = ["go", "connect", "send", "recv=5", &wait, "send", "recv=5"];
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(IDLE, Some((INTERVAL, COUNT)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &plain_steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    net.reboot_server();
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let error = c.expect("error", window + 2.0);
        let took = error.num("since_recv");
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after the last answer, nothing sent since (bound {BOUND} s)",
                error.get("errno")
            ),
        );
        assert_eq!(error.get("errno"), "ECONNRESET", "{}", c.name);
        assert!(
            took <= BOUND,
            "{}: the reset came {took:.3} s after the last answer, later than {BOUND} s",
            c.name
        );
        assert!(
            error.num("since_send") > took,
            "{}: it sent something after its last answer",
            c.name
        );
    }
    plain.assert_options(None);
    let quiet = plain.expect("quiet", window + 2.0);
    assert!(
        quiet.num("since_recv") >= window - 0.1,
        "{}: quiet too early",
        plain.name
    );
    plain.expect("sent", 2.0);
    let error = plain.expect("error", 5.0);
    let after_send = error.num("since_send");
    net.measured(
        &plain.name,
        format!(
            "no error for {:.3} s; {} {after_send:.3} s after it sent",
            quiet.num("since_recv"),
            error.get("errno")
        ),
    );
    assert_eq!(error.get("errno"), "ECONNRESET", "{}", plain.name);
    assert!(after_send < TOLERANCE, "{}: {after_send:.3} s", plain.name);
}

/// HOWTO 2.4: client -> NAT router (conntrack forgets established
/// connections after 5 s idle, `nf_conntrack_tcp_loose=0`, invalid packets
/// dropped) -> server. After 10 s idle, a client with keepalive idle and
/// interval 2 s gets its answer and nothing was dropped; the control's request is
/// dropped as invalid and never answered.
#[test]
fn nat_idle_eviction_is_prevented_by_keepalive() {
    let net = match Topology::new("nat_idle_eviction", "nat", true) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let idle = format!("recv={NAT_IDLE}");
    let steps = ["go", "connect", "send", "recv=5", &idle, "send", "recv=3"];
    // The control asks one second later, so that the counter read when the
    // keepalive clients got their answers holds their packets only.
    let plain_idle = format!("recv={}", NAT_IDLE + 1.0);
    let plain_steps = [
        "go",
        "connect",
        "send",
        "recv=5",
        &plain_idle,
        "send",
        "recv=3",
    ];
    let every = NAT_KEEPIDLE.to_string();
    let options = ["--idle", &every, "--interval", &every];
    let mut py = net.python("python+keepalive", Some(&options), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(NAT_KEEPIDLE, Some((NAT_KEEPIDLE, 9)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &plain_steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    for c in [&mut py, &mut lib] {
        let up = c.last("up");
        assert_eq!(
            (up.get("keepalive"), up.get("idle"), up.get("intvl")),
            ("1", every.as_str(), every.as_str()),
            "{}: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL",
            c.name
        );
        let quiet = c.expect("quiet", NAT_IDLE + 3.0);
        c.expect("sent", 2.0);
        let answer = c.expect("answer", 5.0);
        net.measured(
            &c.name,
            format!(
                "answered after {:.3} s idle behind the NAT, in {:.3} s",
                quiet.num("since_recv"),
                answer.num("since_send")
            ),
        );
    }
    net.conntrack();
    let dropped = net.counter("ka4nat", "invalid");
    assert_eq!(
        dropped, 0,
        "the router dropped packets of the keepalive connections as invalid"
    );
    plain.assert_options(None);
    plain.expect("quiet", NAT_IDLE + 4.0);
    plain.expect("sent", 2.0);
    let lost = plain.expect("quiet", 5.0);
    let dropped = net.counter("ka4nat", "invalid");
    net.measured(
        &plain.name,
        format!(
            "no answer {:.3} s after its request; the router dropped {dropped} packets as invalid",
            lost.num("since_send")
        ),
    );
    assert!(
        dropped > 0,
        "the control's request was not dropped as invalid: did conntrack keep the connection?"
    );
}

/// Keepalive never fires while data is unacknowledged: the peer is
/// black-holed, then the client sends. With keepalive alone its blocking
/// recv() does not fail within idle + interval x count + 5 s; with
/// `TCP_USER_TIMEOUT=auto` (= idle + interval x count) it fails with
/// ETIMEDOUT within 1 s of that bound after the send.
#[test]
fn unacknowledged_data_needs_tcp_user_timeout() {
    let net = match Topology::new("unacknowledged_data", "unack", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let alone = BOUND + 5.0;
    let wait = format!("recv={alone}");
    let steps = ["go", "connect", "send", "recv=5", "go", "send", &wait];
    let with_timeout: Vec<&str> = RUN_1_1_3
        .iter()
        .copied()
        .chain(["--user-timeout", "auto"])
        .collect();
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut py_ut = net.python("python+keepalive+user-timeout", Some(&with_timeout), &steps);
    let lib_settings = |ut| Some(settings(IDLE, Some((INTERVAL, COUNT)), ut));
    let mut lib = net.library("library+keepalive", lib_settings(false), &steps);
    let mut lib_ut = net.library("library+keepalive+user-timeout", lib_settings(true), &steps);
    start_all(&mut [&mut py, &mut py_ut, &mut lib, &mut lib_ut]);
    net.cut();
    for c in [&mut py, &mut py_ut, &mut lib, &mut lib_ut] {
        c.go();
        c.expect("go", 2.0);
        c.expect("sent", 2.0);
    }
    for c in [&mut py_ut, &mut lib_ut] {
        c.assert_options(options_1_1_3(true));
        let error = c.expect("error", alone + 2.0);
        let took = error.num("since_send");
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after sending into the black hole (bound {BOUND} s)",
                error.get("errno")
            ),
        );
        assert_eq!(error.get("errno"), "ETIMEDOUT", "{}", c.name);
        assert!(
            (took - BOUND).abs() <= TOLERANCE,
            "{}: recv() failed {took:.3} s after the send, expected {BOUND} s +/- {TOLERANCE} s",
            c.name
        );
    }
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let quiet = c.expect("quiet", alone + 2.0);
        let waited = quiet.num("since_send");
        let seen = net.seen(c);
        net.measured(
            &c.name,
            format!(
                "no error {waited:.3} s after sending; ss counted {} retransmissions",
                seen.max_retransmits
            ),
        );
        assert!(
            waited >= alone - 0.1,
            "{}: quiet after only {waited:.3} s",
            c.name
        );
    }
    net.counter("ka4cut", "blackholed");
}

#[test]
fn ss_and_event_lines_parse() {
    let line = "ESTAB 0      0      10.200.1.2:46620 10.200.2.2:7777 timer:(keepalive,985ms,2)";
    let ss = SsLine::parse(line).expect("an ss line");
    assert_eq!(
        (ss.state.as_str(), ss.port, ss.peer_port, ss.timer),
        ("ESTAB", 46620, 7777, Some(("keepalive".to_owned(), 2)))
    );
    let ss = SsLine::parse("ESTAB 0 5 10.200.1.2:1 10.200.2.2:7777 timer:(on,1.2sec,3)");
    assert_eq!(ss.and_then(|s| s.timer), Some(("on".to_owned(), 3)));
    assert!(
        SsLine::parse("ESTAB 0 0 10.200.1.2:1 10.200.2.2:7777").is_some_and(|s| s.timer.is_none())
    );
    let event = Event::parse("error t=12.5 since_recv=4.012345 errno=ETIMEDOUT").expect("an event");
    assert_eq!((event.kind.as_str(), event.t), ("error", 12.5));
    assert_eq!(event.num("since_recv"), 4.012345);
    assert_eq!(event.get("errno"), "ETIMEDOUT");
    assert_eq!(event.brief(), "error since_recv=4.012 errno=ETIMEDOUT");
    assert!(Event::parse("Traceback (most recent call last):").is_none());
}
