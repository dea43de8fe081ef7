//! `enforce --existing` on 20,000 established loopback connections, both
//! ends held by child processes in a cgroup made for the benchmark (the
//! open-file limit here is 20,000 per process: each child holds 2,500
//! connections, both ends, 5,000 descriptors), timed three ways:
//!
//! - the BPF iterator ([`Via::Iterator`]): read the kernel's BTF, load the
//!   program, run it over the TCP sockets of the namespace;
//! - the pidfd fallback ([`Via::Pidfd`]): `/proc/PID/fd` of every child,
//!   one sock_diag dump, pidfd_getfd, getsockopt and setsockopt per socket;
//! - `keepalive attach --pid` on every child, one after the other, when the
//!   binary is built (`cargo build --release -p keepalive-cli`): the same
//!   machinery as the fallback, with its read-back and report.
//!
//! The policy is `--force` (every socket is set on every run, none left
//! alone). Root only; prints a skip message otherwise. Prints the figures
//! (medians of ROUNDS runs, 3 by default) and the target: under 0.5 s.
//!
//! `cargo bench -p keepalive-bpf --bench existing` (env: ROUNDS,
//! CONNECTIONS, HOLDERS).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keepalive::{Millis, ProbeCount, Seconds, Settings, UserTimeout};
use keepalive_bpf::{Cgroup, Hierarchy, Policy, Via};

/// Set in a child: hold that many connections (both ends).
const HOLD: &str = "KEEPALIVE_BENCH_HOLD";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The child: raises its descriptor limit to the hard one, listens on the
/// loopback, makes `n` connections to itself and accepts them, says
/// `ready`, and holds them until its stdin ends.
fn hold(n: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut held = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let client = TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        held.push(client);
        held.push(accepted);
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(held);
}

/// A child holding connections, in the benchmark's cgroup.
struct Holder {
    child: Child,
}

impl Holder {
    fn start(cgroup: &Cgroup, n: usize) -> Holder {
        let exe = std::env::current_exe().expect("current_exe");
        // The shell moves itself into the cgroup, then becomes the holder:
        // its sockets are made there.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(cgroup.path())
            .arg(exe)
            .env(HOLD, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a holder");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the holder");
        assert_eq!(line.trim(), "ready", "the holder failed");
        Holder { child }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `keepalive` next to this benchmark in the target directory, if built.
fn keepalive_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/existing-HASH -> target/<profile>/keepalive
    let profile = exe.parent()?.parent()?;
    let target = profile.parent()?;
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("keepalive"))
        .chain(std::iter::once(profile.join("keepalive")))
        .find(|p| p.is_file())
}

fn main() {
    if let Ok(n) = std::env::var(HOLD) {
        hold(n.parse().expect("a number"));
        return;
    }
    if let Err(e) = keepalive_bpf::check_privileges() {
        println!("existing bench skipped: {e}");
        return;
    }
    let parent = match Hierarchy::find().and_then(|h| h.current()) {
        Ok(p) => p,
        Err(e) => {
            println!("existing bench skipped: {e}");
            return;
        }
    };
    let rounds = env_or("ROUNDS", 3);
    let connections = env_or("CONNECTIONS", 20_000);
    let holders = env_or("HOLDERS", 8).max(1);
    let per_holder = connections.div_ceil(holders);

    let name = format!("keepalive-bench-{}-existing", std::process::id());
    let cgroup = Cgroup::create(&parent, &name).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let held: Vec<Holder> = (0..holders)
        .map(|_| Holder::start(&cgroup, per_holder))
        .collect();
    let sockets = 2 * per_holder * holders;
    println!(
        "{} established connections ({sockets} sockets, both ends) and {holders} listeners \
         in {holders} processes, made in {:.2?}",
        per_holder * holders,
        start.elapsed()
    );

    let settings = Settings {
        idle: Some(Seconds::new(60).unwrap()),
        interval: Some(Seconds::new(10).unwrap()),
        count: Some(ProbeCount::new(6).unwrap()),
        user_timeout: Some(UserTimeout::Millis(Millis::new(120_000).unwrap())),
        ..Settings::new()
    };
    let policy = Policy::new(&settings, true);

    let mut results = Vec::new();
    for (label, via) in [
        ("--existing, BPF iterator", Via::Iterator),
        ("--existing, pidfd fallback", Via::Pidfd),
    ] {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let report = keepalive_bpf::apply_existing(cgroup.path(), &policy, via)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            times.push(t.elapsed());
            assert_eq!(
                report.changed as usize,
                sockets + holders,
                "{label}: every socket and listener changed: {report:?}"
            );
        }
        results.push((label, median(times)));
    }
    match keepalive_binary() {
        Some(bin) => {
            let mut times = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                for h in &held {
                    let out = Command::new(&bin)
                        .args(["attach", "--json", "--pid"])
                        .arg(h.child.id().to_string())
                        .args(["--idle", "60", "--interval", "10", "--count", "6"])
                        .args(["--user-timeout", "120s"])
                        .output()
                        .expect("run keepalive attach");
                    assert!(out.status.success(), "keepalive attach failed: {out:?}");
                }
                times.push(t.elapsed());
            }
            results.push(("keepalive attach --pid, each process", median(times)));
        }
        None => println!(
            "keepalive attach: not timed (no keepalive binary in the target directory: \
             cargo build --release -p keepalive-cli)"
        ),
    }

    // Of the iterator's time, reading and parsing the kernel's BTF.
    let btf = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                keepalive_bpf::Btf::vmlinux().expect("BTF");
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "(of the iterator's time, reading /sys/kernel/btf/vmlinux: {:.1} ms)",
        btf.as_secs_f64() * 1000.0
    );
    let iterator = results[0].1;
    for (label, time) in &results {
        println!(
            "{label:<40} {:>9.1} ms  ({:.1}x the iterator)",
            time.as_secs_f64() * 1000.0,
            time.as_secs_f64() / iterator.as_secs_f64()
        );
    }
    let verdict = if iterator < Duration::from_millis(500) {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "target: --existing on {} connections under 0.5 s: {verdict} ({:.1} ms)",
        per_holder * holders,
        iterator.as_secs_f64() * 1000.0
    );

    drop(held);
    let _ = cgroup.remove();
}
