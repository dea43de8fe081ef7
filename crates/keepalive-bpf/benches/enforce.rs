//! Loopback TCP connections per second in a cgroup without and with
//! keepalive enforced on it, in one run (root only; prints a skip message
//! otherwise). Prints figures; asserts nothing about time.
//!
//! Each connection is connect + accept + close, with the client and the
//! listener both in the cgroup, so that the program acts on both sides
//! (ACTIVE_ESTABLISHED and PASSIVE_ESTABLISHED; it returns at once from the
//! other sock_ops callbacks). The enforced policy sets every option, in
//! the default mode (the program first checks whether the connection's
//! program switched keepalive on itself):
//! `--idle 60 --interval 10 --count 6 --user-timeout auto`.
//!
//! A third figure is the reference for what keepalive itself costs: the
//! plain cgroup, with the program of the benchmark setting the same options
//! on both sockets with setsockopt(2), as a program that asks for
//! keepalive does (or as the preload does for it).
//!
//! The process moves itself from cgroup to cgroup, the three measurements
//! of a round back to back (in a rotating order), so that drift in the
//! machine's speed hits them alike; the figures are medians over the
//! rounds, the ratios medians of each round's ratio.
//!
//! `cargo bench -p keepalive-bpf --bench enforce` (env: ROUNDS, CONNECTIONS).

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

    let plain = BenchCgroup::new(&parent, "plain");
    let enforced = BenchCgroup::new(&parent, "enforced");
    let policy = Policy {
        idle: Some(Seconds::new(60).unwrap()),
        interval: Some(Seconds::new(10).unwrap()),
        count: Some(ProbeCount::new(6).unwrap()),
        user_timeout: Some(UserTimeout::Auto),
        force: false,
    };
    // The same options, `auto` resolved: 60 + 10 x 6 s.
    let own = Settings {
        idle: policy.idle,
        interval: policy.interval,
        count: policy.count,
        user_timeout: Some(UserTimeout::Millis(Millis::new(120_000).unwrap())),
        ..Settings::new()
    };
    if let Err(e) = keepalive_bpf::enforce(enforced.cgroup().path(), &policy) {
        println!("enforce bench skipped: {e}");
        return;
    }

    // Check that the enforcement acts before timing it.
    enforced.enter();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let probe = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let state = keepalive::KeepaliveState::read(&probe).expect("getsockopt");
    assert!(
        state.enabled && state.idle == 60 && state.user_timeout_ms == 120_000,
        "the enforcement did not act: {state:?}"
    );
    drop((probe, listener));

    // Warm up every path.
    plain.enter();
    round(n / 4, None);
    round(n / 4, Some(&own));
    enforced.enter();
    round(n / 4, None);

    let (mut without, mut with, mut by_hand) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratio_with, mut ratio_by_hand) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let mut rates = [0.0; 3];
        for k in 0..3 {
            let which = (i + k) % 3;
            rates[which] = match which {
                0 => {
                    plain.enter();
                    round(n, None)
                }
                1 => {
                    enforced.enter();
                    round(n, None)
                }
                _ => {
                    plain.enter();
                    round(n, Some(&own))
                }
            };
        }
        without.push(rates[0]);
        with.push(rates[1]);
        by_hand.push(rates[2]);
        ratio_with.push(rates[1] / rates[0]);
        ratio_by_hand.push(rates[2] / rates[0]);
    }
    let percent = |r: f64| (r - 1.0) * 100.0;
    let (ratio_with, ratio_by_hand) = (median(ratio_with), median(ratio_by_hand));
    // What each connection (both of its sockets) pays, in microseconds.
    let added = |rate: f64| 1e6 / rate - 1e6 / median(without.clone());
    let (added_with, added_by_hand) = (added(median(with.clone())), added(median(by_hand.clone())));
    println!(
        "enforce: {rounds} rounds x {n} loopback connections (connect + accept + close; \
         client and listener in the cgroup)"
    );
    println!("{}", figure("without enforcement", &without));
    println!("{}", figure("with enforcement", &with));
    println!(
        "{}",
        figure("without, both sockets set by setsockopt", &by_hand)
    );
    println!(
        "  with / without: {ratio_with:.3} ({:+.1}%, {added_with:+.2} us per connection; \
         target: within 2%)",
        percent(ratio_with)
    );
    println!(
        "  setsockopt / without: {ratio_by_hand:.3} ({:+.1}%, {added_by_hand:+.2} us per \
         connection): keepalive set by the program itself, or by the preload",
        percent(ratio_by_hand)
    );
}
