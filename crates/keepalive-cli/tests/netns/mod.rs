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
//! [`Topology`](topology::Topology) guard (topology.rs) deletes the
//! namespaces (and so their veths and rules) on every exit path, panics
//! included; namespaces left by a test process that was killed are swept by
//! the next run.
//!
//! Each test starts its clients together against its topology: an unmodified
//! python3 program (standard library only, [`CLIENT_PY`](client::CLIENT_PY))
//! under `keepalive run`, a client in this process using the library API
//! (`keepalive::apply` on a std `TcpStream`, from a thread inside the client
//! namespace), and a control without keepalive. Every client reports its
//! events with CLOCK_MONOTONIC (python's `time.monotonic()`,
//! [`mono`](timeline::mono) here) and the time since its last successful
//! recv() (the last acknowledged packet: the server's answer) and since its
//! last send(); the assertions use those. The test adds what it did and what
//! `ss -tno` shows in the client namespace (keepalive probes,
//! retransmissions) to one timeline, printed at the end of each test, and on
//! failure that is the explanation.
//!
//! They need root, ip and ss (iproute2), nft (nftables) and python3; without
//! them they skip and say why.

pub(crate) mod client;
mod dead_peer;
mod nat;
mod peer_reboot;
pub(crate) mod timeline;
pub(crate) mod topology;
mod user_timeout;

use keepalive::{ProbeCount, Seconds, Settings, UserTimeout};

use self::timeline::Event;
use self::topology::SsLine;

/// The client's address (namespace `cli`, device `c0`).
const CLIENT_NET: &str = "10.200.1.2/24";
/// The router's address on the client side (`rtr`, `r0`).
const ROUTER_CLIENT_SIDE: &str = "10.200.1.1";
/// The router's address on the server side (`rtr`, `r1`).
const ROUTER_SERVER_SIDE: &str = "10.200.2.1";
/// The server's address (`srv`, `s0`).
pub(crate) const SERVER: &str = "10.200.2.2";
/// The server's port.
pub(crate) const PORT: u16 = 7777;

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
pub(crate) const CONNTRACK_TIMEOUT: u64 = 5;
/// ...and the clients stay idle this long before their request.
pub(crate) const NAT_IDLE: f64 = 10.0;
/// Keepalive idle time and interval in the NAT test, well under
/// [`CONNTRACK_TIMEOUT`]. Both matter: on a live connection the kernel's
/// keepalive timer goes off `interval` after a probe, so answered probes
/// come every max(idle, interval) seconds; with `--idle 2` alone they come
/// every 75 s (the namespace's default interval) and the NAT forgets the
/// connection anyway.
pub(crate) const NAT_KEEPIDLE: u64 = 2;

/// The library's settings: `idle`, and when given `interval`, `count`, and
/// `TCP_USER_TIMEOUT=auto`.
fn settings(idle: u64, interval_count: Option<(u64, u64)>, user_timeout: bool) -> Settings {
    Settings {
        idle: Some(Seconds::new(idle).unwrap()),
        interval: interval_count.map(|(i, _)| Seconds::new(i).unwrap()),
        count: interval_count.map(|(_, c)| ProbeCount::new(c).unwrap()),
        user_timeout: user_timeout.then_some(UserTimeout::Auto),
        ..Settings::new()
    }
}

/// The options a 1/1/3 client must report, with or without the user timeout.
fn options_1_1_3(user_timeout: bool) -> Option<(u64, u64, u64, u64)> {
    let ms = if user_timeout { BOUND as u64 * 1000 } else { 0 };
    Some((IDLE, INTERVAL, COUNT, ms))
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
