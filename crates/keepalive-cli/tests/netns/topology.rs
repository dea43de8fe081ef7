//! The three namespaces (client, router, server), the veths between them,
//! the router's nftables rules, the server, and `ss` watching the client.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use keepalive::host::NetNs;

use super::client::Client;
use super::timeline::{Proc, Timeline, mono};
use super::{CLIENT_NET, CONNTRACK_TIMEOUT, PORT, ROUTER_CLIENT_SIDE, ROUTER_SERVER_SIDE, SERVER};
use crate::util::{TIMEOUT, bare, is_root, preload, python3, run, tool};

/// The server: answers each request with one line, any number of clients;
/// exits when its stdin closes (the test process is gone).
pub(crate) const SERVER_PY: &str = r#"
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

/// What `ss -tno` showed for one client socket over the test.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SsSeen {
    pub(crate) keepalive_timer: bool,
    pub(crate) max_probes: u32,
    pub(crate) max_retransmits: u32,
}

/// One line of `ss -tnoH`.
pub(crate) struct SsLine {
    pub(crate) state: String,
    pub(crate) port: u16,
    pub(crate) peer_port: u16,
    /// The timer's kind (`keepalive`, `on` for retransmission) and count
    /// (unanswered probes, retransmissions).
    pub(crate) timer: Option<(String, u32)>,
}

impl SsLine {
    pub(crate) fn parse(line: &str) -> Option<SsLine> {
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
pub(crate) struct Topology {
    pub(crate) prefix: String,
    pub(crate) timeline: Arc<Timeline>,
    pub(crate) netns: Vec<String>,
    pub(crate) server: Option<Proc>,
    pub(crate) sampler: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>,
    pub(crate) seen: Arc<Mutex<BTreeMap<u16, SsSeen>>>,
}

/// The router's NAT (HOWTO 2.4): masquerade towards the server, and drop
/// what conntrack finds invalid (a packet of a connection it forgot), with
/// a counter.
pub(crate) const NAT_RULES: &str = "add table ip ka4nat; \
    add counter ip ka4nat invalid; \
    add chain ip ka4nat forward { type filter hook forward priority filter; policy accept; }; \
    add rule ip ka4nat forward ct state invalid counter name \"invalid\" drop; \
    add chain ip ka4nat postrouting { type nat hook postrouting priority srcnat; policy accept; }; \
    add rule ip ka4nat postrouting oifname \"r1\" masquerade";

impl Topology {
    /// Builds the three namespaces (with NAT in the router when `nat`),
    /// and starts the server. `Err` says why the test cannot run here.
    pub(crate) fn new(test: &'static str, tag: &str, nat: bool) -> Result<Topology, String> {
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

    pub(crate) fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub(crate) fn add_netns(&mut self, role: &str) {
        let name = self.ns(role);
        self.ip(&format!("netns add {name}"));
        self.netns.push(name.clone());
        self.ip(&format!("-n {name} link set lo up"));
    }

    /// The router-server cable: `r1` in the router, `s0` in the server.
    pub(crate) fn link_server(&self) {
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
    pub(crate) fn ip(&self, args: &str) {
        let out = run(bare("ip").args(args.split_whitespace()), TIMEOUT);
        assert!(out.status.success(), "ip {args}\n{out}");
    }

    /// `ip netns exec NS nft SCRIPT`.
    pub(crate) fn nft(&self, ns: &str, script: &str) -> String {
        let out = run(
            bare("ip").args(["netns", "exec", ns, "nft", script]),
            TIMEOUT,
        );
        assert!(out.status.success(), "nft {script} in {ns}\n{out}");
        out.stdout
    }

    /// The packets counted by the named counter `table`/`name` in `rtr`.
    pub(crate) fn counter(&self, table: &str, name: &str) -> u64 {
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
    pub(crate) fn conntrack(&self) {
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
    pub(crate) fn sysctl(&self, ns: &str, key: &str, value: &str) {
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

    pub(crate) fn start_server(&mut self) {
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
    pub(crate) fn start_sampler(&mut self) {
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
    pub(crate) fn seen(&self, client: &Client) -> SsSeen {
        let port = client.port();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&port).copied().unwrap_or_default()
    }

    /// Black-holes the path both ways: the router drops everything to and
    /// from the server (nftables, before routing), and the server's link
    /// goes down. Returns when both are done.
    pub(crate) fn cut(&self) -> f64 {
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
    pub(crate) fn reboot_server(&mut self) {
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

    /// A measured result, for the timeline (and the closing note).
    pub(crate) fn measured(&self, who: &str, what: String) {
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
pub(crate) fn sweep_stale() {
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
