//! What one `keepalive metrics` scrape costs against `ss -tnop` over the
//! same sockets (issue 12: no more than ss at 20,000 connections).
//!
//! Run it with
//!
//! ```text
//! cargo bench -p keepalive-cli --bench scrape
//! ```
//!
//! It prints figures and asserts nothing about timings: it fails only when
//! it cannot make the connections or run what it times, or when either
//! program visibly did not see the connections. Run without the `--bench`
//! argument that `cargo bench` passes (for example by `cargo test
//! --benches`), it does a quick smoke run with few connections whose
//! figures mean nothing.
//!
//! For each size (2,000 and 20,000 established loopback connections), child
//! processes of the benchmark (itself, run with `--hold N`) hold the
//! connections, both ends (so 4,000 and 40,000 sockets), idle, spread over
//! a few listeners, at most 5,000 connections a process (RLIMIT_NOFILE
//! raised as far as the hard limit allows). It then runs `keepalive metrics` (the binary cargo
//! built for this benchmark: the release profile under `cargo bench`) and
//! `ss -tnop` (every TCP socket of the namespace, with its timer and the
//! processes holding it) round-robin, each with its output to /dev/null,
//! alternating which goes first, and times each process from spawn to
//! exit. It prints each program's median and minimum, and the ratio
//! metrics/ss of the medians with the median of the per-round ratios.
//! `keepalive metrics` surveys every network namespace of the host, so
//! other namespaces with many sockets make it look slower.

use std::env;
use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The keepalive binary cargo built for this benchmark.
const KEEPALIVE: &str = env!("CARGO_BIN_EXE_keepalive");

/// Listeners the connections are spread over (fewer clashes in the
/// ephemeral port range).
const LISTENERS: usize = 4;

struct Plan {
    /// Connections held, per measurement.
    sizes: &'static [usize],
    /// Untimed runs of each program first.
    warmup: usize,
    /// Timed rounds (one run of each program).
    rounds: usize,
}

impl Plan {
    /// About a minute on a two-core virtual machine.
    const FULL: Plan = Plan {
        sizes: &[2_000, 20_000],
        warmup: 2,
        rounds: 11,
    };

    /// A smoke run: checks that everything runs.
    const QUICK: Plan = Plan {
        sizes: &[200],
        warmup: 0,
        rounds: 2,
    };
}

fn main() -> Result<()> {
    let args: Vec<String> = env::args().collect();
    if let Some(n) = args
        .iter()
        .position(|a| a == "--hold")
        .and_then(|i| args.get(i + 1))
    {
        return hold(n.parse()?);
    }
    let quick = !args.iter().any(|arg| arg == "--bench");
    let plan = if quick { &Plan::QUICK } else { &Plan::FULL };
    if quick {
        println!("quick smoke run (no --bench argument): the figures mean nothing");
    }
    println!("keepalive: {KEEPALIVE}");

    let mut results = Vec::new();
    for &size in plan.sizes {
        let held = Held::new(size)?;
        check(size, &held.pids())?;
        let (metrics, ss) = measure(plan)?;
        drop(held);
        results.push((size, metrics, ss));
    }

    println!();
    println!(
        "{:>12}  {:>22}  {:>22}  {:>10}  {:>12}",
        "connections", "keepalive metrics ms", "ss -tnop ms", "ratio", "round ratio"
    );
    for (size, metrics, ss) in &results {
        let ratios: Vec<f64> = metrics.iter().zip(ss).map(|(m, s)| m / s).collect();
        println!(
            "{size:>12}  {:>13.1} (min {:>5.1})  {:>13.1} (min {:>5.1})  {:>10.2}  {:>12.2}",
            median(metrics),
            min(metrics),
            median(ss),
            min(ss),
            median(metrics) / median(ss),
            median(&ratios),
        );
    }
    println!(
        "\nratio: median keepalive metrics / median ss -tnop; round ratio: median of the \
         per-round ratios. Both count process start and exit."
    );
    Ok(())
}

/// Raises the soft (and if need be the hard) limit of open files to `want`.
fn raise_nofile(want: u64) -> Result<()> {
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|c| c >= want) {
        return Ok(());
    }
    let maximum = match now.maximum {
        Some(m) if m < want => Some(want),
        m => m,
    };
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum,
        },
    )
    .map_err(|e| format!("cannot raise RLIMIT_NOFILE to {want}: {e} (the hard limit needs CAP_SYS_RESOURCE to go up)"))?;
    Ok(())
}

/// Connections per holder process: both ends are 10,000 descriptors,
/// under the hard RLIMIT_NOFILE of many containers (20,000 here), which
/// only CAP_SYS_RESOURCE may raise.
const PER_HOLDER: usize = 5_000;

/// `size` established loopback connections, both ends held by child
/// processes (this benchmark in `--hold N` mode), [`PER_HOLDER`] each at
/// most; they exit when dropped (their stdin closes).
struct Held {
    holders: Vec<Child>,
}

impl Held {
    fn new(size: usize) -> Result<Held> {
        let started = Instant::now();
        let mut held = Held {
            holders: Vec::new(),
        };
        let mut left = size;
        while left > 0 {
            let n = left.min(PER_HOLDER);
            left -= n;
            let mut child = Command::new(env::current_exe()?)
                .args(["--hold", &n.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
            held.holders.push(child);
            if line.trim() != "ready" {
                return Err(format!("a holder of {n} connections failed: {line:?}").into());
            }
        }
        println!(
            "\n{size} connections ({} sockets) made by {} holder processes in {:.2} s",
            2 * size,
            held.holders.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(held)
    }

    fn pids(&self) -> Vec<u32> {
        self.holders.iter().map(Child::id).collect()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for child in &mut self.holders {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// `--hold N`: makes `n` established loopback connections, spread over
/// [`LISTENERS`] listeners, holds both ends, prints `ready`, and exits
/// when stdin closes.
fn hold(n: usize) -> Result<()> {
    raise_nofile(2 * n as u64 + 100)?;
    let listeners = (0..LISTENERS)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ends = Vec::with_capacity(2 * n);
    for i in 0..n {
        let listener = &listeners[i % LISTENERS];
        let client = TcpStream::connect(listener.local_addr()?)
            .map_err(|e| format!("connection {i} of {n}: {e}"))?;
        let (accepted, _) = listener.accept()?;
        ends.push(client);
        ends.push(accepted);
    }
    println!("ready");
    std::io::stdout().flush()?;
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    drop(ends);
    Ok(())
}

/// Checks that both programs see at least `size` connections' two ends.
fn check(size: usize, pids: &[u32]) -> Result<()> {
    let out = Command::new(KEEPALIVE).arg("metrics").output()?;
    if !out.status.success() {
        return Err(format!(
            "keepalive metrics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let seen: f64 = text
        .lines()
        .filter(|l| l.starts_with("keepalive_connections{netns=\"current\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    let scrape = text
        .lines()
        .find_map(|l| l.strip_prefix("keepalive_scrape_duration_seconds "))
        .unwrap_or("?");
    println!(
        "keepalive metrics sees {seen} established connection ends here; its own scrape_duration_seconds {scrape}"
    );
    if seen < (2 * size) as f64 {
        return Err(format!(
            "keepalive metrics sees {seen} connection ends, not {}",
            2 * size
        )
        .into());
    }
    let out = Command::new("ss").args(["-tnopH"]).output()?;
    if !out.status.success() {
        return Err("ss -tnop failed (iproute2 installed?)".into());
    }
    let holders: Vec<String> = pids.iter().map(|p| format!("pid={p},")).collect();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| holders.iter().any(|h| l.contains(h.as_str())))
        .count();
    println!("ss -tnop shows {lines} sockets of the holders");
    if lines < 2 * size {
        return Err(format!(
            "ss -tnop shows {lines} sockets of the holders, not {}",
            2 * size
        )
        .into());
    }
    Ok(())
}

/// Wall time of one run of `program ARGS`, output to /dev/null.
fn time(program: &str, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("{program} {args:?}: {status}").into());
    }
    Ok(ms(elapsed))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Milliseconds of each timed run: (keepalive metrics, ss -tnop).
fn measure(plan: &Plan) -> Result<(Vec<f64>, Vec<f64>)> {
    let metrics = || time(KEEPALIVE, &["metrics"]);
    let ss = || time("ss", &["-tnop"]);
    for _ in 0..plan.warmup {
        metrics()?;
        ss()?;
    }
    let (mut m, mut s) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        if round % 2 == 0 {
            m.push(metrics()?);
            s.push(ss()?);
        } else {
            s.push(ss()?);
            m.push(metrics()?);
        }
    }
    Ok((m, s))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    sorted(v).first().copied().unwrap_or(f64::NAN)
}
