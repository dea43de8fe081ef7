//! Loopback TCP connections per second in a cgroup without and with
//! keepalive enforced on it, in one run (root only; prints a skip message
//! otherwise), and the cost of the cgroup/setsockopt companion on a loop
//! of setsockopt calls. Prints figures; asserts nothing about time.
//!
//! Each connection is connect + accept + close, with the client and the
//! listener both in the cgroup, so that the programs act on both sides
//! (ACTIVE_ESTABLISHED and PASSIVE_ESTABLISHED; the sock_ops program
//! returns at once from the other callbacks). The enforced values set
//! every option: `--idle 60 --interval 10 --count 6 --user-timeout auto`,
//! in the default mode (the program first checks whether the connection's
//! program switched keepalive on itself), with `--force`, and with
//! `--max-idle 60` (which also reads idle and interval back to cap them).
//! Every mode attaches both programs (sock_ops and cgroup/setsockopt).
//!
//! The reference for what keepalive itself costs: the plain cgroup, with
//! the benchmark setting the same options on both sockets with
//! setsockopt(2), as a program that asks for keepalive does (or as the
//! preload does for it).
//!
//! The setsockopt loop: `setsockopt(TCP_NODELAY)` (an option the companion
//! lets through at once) and `setsockopt(TCP_KEEPIDLE, 5)` (one it checks
//! against `--max-idle`), SETSOCKOPTS times on one connected socket, in the
//! plain cgroup and in the `--max-idle` one.
//!
//! The process moves itself from cgroup to cgroup, the measurements of a
//! round back to back (in a rotating order), so that drift in the
//! machine's speed hits them alike; the figures are medians over the
//! rounds, the ratios medians of each round's ratio.
//!
//! `cargo bench -p keepalive-bpf --bench enforce` (env: ROUNDS, CONNECTIONS,
//! SETSOCKOPTS).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keepalive::{Millis, ProbeCount, Seconds, Settings, UserTimeout};
use keepalive_bpf::{Cgroup, Hierarchy, Policy};

/// A cgroup made for the benchmark; on drop, the process moves back to
/// where it came from and the cgroup (with its enforcement) goes.
struct BenchCgroup {
    cgroup: Option<Cgroup>,
    home: PathBuf,
}

impl BenchCgroup {
    fn new(parent: &Path, name: &str) -> BenchCgroup {
        let name = format!("keepalive-bench-{}-{name}", std::process::id());
        let cgroup = Cgroup::create(parent, &name).unwrap_or_else(|e| panic!("{e}"));
        BenchCgroup {
            cgroup: Some(cgroup),
            home: parent.to_path_buf(),
        }
    }

    fn cgroup(&self) -> &Cgroup {
        self.cgroup.as_ref().expect("until dropped")
    }

    /// Moves this process in: sockets created from now on belong here.
    fn enter(&self) {
        self.cgroup()
            .add_process(std::process::id())
            .unwrap_or_else(|e| panic!("move into {}: {e}", self.cgroup().path().display()));
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        if let Ok(home) = Cgroup::open(&self.home) {
            let _ = home.add_process(std::process::id());
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = keepalive_bpf::remove(cgroup.path());
            let _ = cgroup.remove();
        }
    }
}

/// `n` connections to a new listener, with `own` set on both sockets by
/// setsockopt(2) when given; returns the connections per second.
fn round(n: usize, own: Option<&Settings>) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let start = Instant::now();
    for _ in 0..n {
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        if let Some(settings) = own {
            keepalive::apply(&client, settings).expect("setsockopt");
            keepalive::apply(&server, settings).expect("setsockopt");
        }
        // Close with a reset: no TIME_WAIT, so no run of the benchmark
        // exhausts the ephemeral ports.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
        drop(client);
        drop(server);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One line of figures: the median rate and the range over the rounds.
fn figure(name: &str, rates: &[f64]) -> String {
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    format!(
        "  {name:<38} {:>7.0} conn/s (rounds {lo:.0}..{hi:.0})",
        median(rates.to_vec())
    )
}

/// Which option the setsockopt loop sets.
#[derive(Clone, Copy)]
enum Opt {
    /// `setsockopt(TCP_NODELAY, 1)`.
    NoDelay,
    /// `setsockopt(TCP_KEEPIDLE, 5)`.
    KeepIdle,
}

/// `n` calls of setsockopt(`opt`) on a connected loopback socket; returns
/// the calls per second.
fn setsockopt_loop(n: usize, opt: Opt) -> f64 {
    use rustix::net::sockopt;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let idle = Duration::from_secs(5);
    let start = Instant::now();
    for _ in 0..n {
        match opt {
            Opt::NoDelay => sockopt::set_tcp_nodelay(&client, true),
            Opt::KeepIdle => sockopt::set_tcp_keepidle(&client, idle),
        }
        .expect("setsockopt");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(listener);
    rate
}

fn main() {
    if let Err(e) = keepalive_bpf::check_privileges() {
        println!("enforce bench skipped: {e}");
        return;
    }
    let parent = match Hierarchy::find().and_then(|h| h.current()) {
        Ok(p) => p,
        Err(e) => {
            println!("enforce bench skipped: {e}");
            return;
        }
    };
    let rounds = env_or("ROUNDS", 31);
    let n = env_or("CONNECTIONS", 1000);
    let calls = env_or("SETSOCKOPTS", 100_000);

    let settings = Settings {
        idle: Some(Seconds::new(60).unwrap()),
        interval: Some(Seconds::new(10).unwrap()),
        count: Some(ProbeCount::new(6).unwrap()),
        user_timeout: Some(UserTimeout::Auto),
        ..Settings::new()
    };
    let modes = [
        ("default", Policy::new(&settings, false)),
        ("--force", Policy::new(&settings, true)),
        (
            "--max-idle 60",
            Policy::with_max_idle(&settings, Seconds::new(60).unwrap()),
        ),
    ];
    // The same options, `auto` resolved: 60 + 10 x 6 s.
    let own = Settings {
        user_timeout: Some(UserTimeout::Millis(Millis::new(120_000).unwrap())),
        ..settings
    };
    let plain = BenchCgroup::new(&parent, "plain");
    let mut enforced = Vec::new();
    for (i, (name, policy)) in modes.iter().enumerate() {
        let cg = BenchCgroup::new(&parent, &format!("mode{i}"));
        if let Err(e) = keepalive_bpf::enforce(cg.cgroup().path(), policy) {
            println!("enforce bench skipped: {name}: {e}");
            return;
        }
        // Check that the enforcement acts before timing it.
        cg.enter();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let probe = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let state = keepalive::KeepaliveState::read(&probe).expect("getsockopt");
        assert!(
            state.enabled && state.idle == 60 && state.user_timeout_ms == 120_000,
            "{name}: the enforcement did not act: {state:?}"
        );
        drop((probe, listener));
        enforced.push((*name, cg));
    }
    let max_idle = &enforced[2].1;

    // Warm up every path.
    plain.enter();
    round(n / 4, None);
    round(n / 4, Some(&own));
    setsockopt_loop(calls / 10, Opt::NoDelay);
    for (_, cg) in &enforced {
        cg.enter();
        round(n / 4, None);
    }
    setsockopt_loop(calls / 10, Opt::NoDelay);

    // Connections: 0 plain, 1..=3 the modes, 4 plain with setsockopt.
    let kinds = 2 + enforced.len();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); kinds];
    // setsockopt loop: 0 NODELAY plain, 1 NODELAY hooked, 2 KEEPIDLE
    // plain, 3 KEEPIDLE hooked.
    let mut loops: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut loop_ratios: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for i in 0..rounds {
        let mut r = vec![0.0; kinds];
        for k in 0..kinds {
            let which = (i + k) % kinds;
            r[which] = match which {
                0 => {
                    plain.enter();
                    round(n, None)
                }
                w if w <= enforced.len() => {
                    enforced[w - 1].1.enter();
                    round(n, None)
                }
                _ => {
                    plain.enter();
                    round(n, Some(&own))
                }
            };
        }
        for (k, rate) in r.iter().enumerate() {
            rates[k].push(*rate);
            ratios[k].push(rate / r[0]);
        }
        let mut l = [0.0; 4];
        for k in 0..4 {
            let which = (i + k) % 4;
            let (cg, opt) = match which {
                0 => (&plain, Opt::NoDelay),
                1 => (max_idle, Opt::NoDelay),
                2 => (&plain, Opt::KeepIdle),
                _ => (max_idle, Opt::KeepIdle),
            };
            cg.enter();
            l[which] = setsockopt_loop(calls, opt);
        }
        for (k, rate) in l.iter().enumerate() {
            loops[k].push(*rate);
        }
        loop_ratios[0].push(l[1] / l[0]);
        loop_ratios[1].push(l[3] / l[2]);
    }
    plain.enter();
    let percent = |r: f64| (r - 1.0) * 100.0;
    let base = median(rates[0].clone());
    // What each connection (both of its sockets) pays, in microseconds.
    let added = |rate: f64| 1e6 / rate - 1e6 / base;
    println!(
        "enforce: {rounds} rounds x {n} loopback connections (connect + accept + close; \
         client and listener in the cgroup)"
    );
    println!("{}", figure("without enforcement", &rates[0]));
    for (k, (name, _)) in enforced.iter().enumerate() {
        println!("{}", figure(&format!("enforced, {name}"), &rates[k + 1]));
    }
    println!(
        "{}",
        figure("without, both sockets set by setsockopt", &rates[kinds - 1])
    );
    let by_hand = median(ratios[kinds - 1].clone());
    for (k, (name, _)) in enforced.iter().enumerate() {
        let ratio = median(ratios[k + 1].clone());
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        println!(
            "  {name} / without: {ratio:.3} ({:+.1}%, {:+.2} us per connection; >= 0.95: {}; \
             ahead of setsockopt: {})",
            percent(ratio),
            added(median(rates[k + 1].clone())),
            verdict(ratio >= 0.95),
            verdict(ratio > by_hand)
        );
    }
    println!(
        "  setsockopt / without: {by_hand:.3} ({:+.1}%, {:+.2} us per connection): keepalive \
         set by the program itself, or by the preload",
        percent(by_hand),
        added(median(rates[kinds - 1].clone()))
    );
    println!(
        "setsockopt loop: {rounds} rounds x {calls} calls on one socket, without and with the \
         cgroup/setsockopt program (--max-idle 60)"
    );
    for (k, (name, cost)) in [
        ("TCP_NODELAY", "let through at once"),
        ("TCP_KEEPIDLE 5", "claimed, checked against the cap"),
    ]
    .iter()
    .enumerate()
    {
        let ratio = median(loop_ratios[k].clone());
        let (lo, hi) = (
            median(loops[2 * k].clone()),
            median(loops[2 * k + 1].clone()),
        );
        println!(
            "  {name:<15} {lo:>10.0} -> {hi:>10.0} calls/s, with / without {ratio:.3} \
             ({:+.1}%, {:+.3} us per call; {cost}; target within 5%: {})",
            percent(ratio),
            1e6 / hi - 1e6 / lo,
            if ratio >= 0.95 { "met" } else { "missed" }
        );
    }
}
