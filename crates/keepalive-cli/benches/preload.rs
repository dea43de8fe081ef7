//! What `libkeepalive.so` costs the programs it is preloaded into.
//!
//! Run it with
//!
//! ```text
//! cargo bench -p keepalive-cli --bench preload
//! ```
//!
//! It prints figures and takes well under two minutes. It asserts nothing
//! about timings: it exits 0 whenever it could measure, and fails only if it
//! cannot build or run what it times, or if the preload was visibly not in
//! effect (or in effect where it must not be). It needs `gcc` (or `$CC`).
//! Run without the `--bench` argument that `cargo bench` passes (for
//! example by `cargo test --benches`), it does a quick smoke run whose
//! figures mean nothing.
//!
//! It first builds the preload (`cargo build --release -p keepalive-preload`)
//! and compiles the C sources in `benches/c/` with `gcc -O2`, then measures:
//!
//! 1. **Per-socket cost, separate processes.** `c/bench_socket.c` is a C
//!    loop of `socket()` + `close()` that times itself with
//!    `clock_gettime(CLOCK_MONOTONIC)` after a warm-up. Variants: TCP with
//!    no preload, TCP with `libkeepalive.so` (`KEEPCNT=20 KEEPIDLE=180
//!    KEEPINTVL=60`), `tcp-manual` (no preload; the program itself makes the
//!    four `setsockopt` calls the preload makes: the floor the preload
//!    cannot go under), UDP without and with the preload, and TCP with
//!    Debian's original `libkeepalive` if it is installed. The variants run
//!    round-robin in many short processes, so drift hits all alike; each
//!    variant's figure is the median (and the minimum) of all its
//!    repetitions, and each difference between two variants (the overhead,
//!    the cost of the `setsockopt` calls) is the median of their differences
//!    within a round.
//! 2. **Per-socket cost, paired in one process.** On a virtual machine the
//!    speed of `socket()` can jump by a quarter for seconds at a time, as
//!    much as the effect measured in 1. So `bench_socket paired` runs all
//!    variants in one process, in alternating blocks of a few milliseconds:
//!    `socket()` as the program sees it (through the preload) against
//!    libc's own `socket()` looked up with `dlsym()`, which no preload is in
//!    the way of. Each figure is the median of the per-block differences.
//!    It runs with our preload, with Debian's if present, and with none (a
//!    check of the method: its overhead must come out as about zero).
//! 3. **Process start-up.** Spawn + exec + wait of `/bin/true` with no
//!    preload, with an empty preload library (`c/empty_preload.c`, the cost
//!    of preloading anything at all), with `libkeepalive.so` and with
//!    Debian's `libkeepalive` if present, round-robin, median of many runs;
//!    overheads are medians of the differences within a round.
//! 4. **Size** of the built `libkeepalive.so`.
//!
//! Targets, each reported PASS or MISS in the summary at the end:
//! the preload's overhead per TCP socket is at most 1.10 x what the four bare
//! `setsockopt` calls cost; a UDP socket costs the same with and without the
//! preload, within the noise of the measurement (three standard errors of
//! the median ratio, at least 2 %); and the preload adds at most 1.25 x to a
//! process start what an empty preload adds. Differences and ratios come
//! with `+-` their noise, three standard errors of the median estimated from
//! the interquartile range; the verdicts compare the figure itself.

use std::env;
use std::error::Error;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The settings the preload is given; `bench_socket.c` sets the same values
/// itself for `tcp-manual`.
const KEEPALIVE_ENV: [(&str, &str); 3] =
    [("KEEPCNT", "20"), ("KEEPIDLE", "180"), ("KEEPINTVL", "60")];

/// SO_KEEPALIVE, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL on a TCP socket
/// when keepalive was applied with [`KEEPALIVE_ENV`].
const APPLIED: [i32; 4] = [1, 20, 180, 60];
/// The same on a UDP socket, which the preload must leave alone (the TCP
/// options cannot be read there: -1).
const UDP_UNTOUCHED: [i32; 4] = [0, -1, -1, -1];

/// Target: preload overhead per TCP socket / cost of the bare setsockopt calls.
const TCP_RATIO_TARGET: f64 = 1.10;
/// Target: start-up overhead of ours / start-up overhead of an empty preload.
const STARTUP_RATIO_TARGET: f64 = 1.25;
/// The smallest tolerance for "UDP is unchanged"; it is wider when three
/// standard errors of the measured ratio are.
const UDP_MIN_TOLERANCE: f64 = 0.02;

/// Where Debian's package `libkeepalive0` puts its library, if `dpkg` does
/// not say.
const DEBIAN_LIBRARY_PATHS: [&str; 2] = [
    "/usr/lib/libkeepalive.so",
    "/usr/lib/x86_64-linux-gnu/libkeepalive.so",
];

/// How much to measure.
struct Plan {
    /// socket()+close() calls per timed repetition, separate processes.
    socket_iterations: u32,
    /// Timed repetitions per `bench_socket` process.
    socket_reps_per_run: u32,
    /// Round-robin passes over the socket variants.
    socket_rounds: u32,
    /// Calls per block in `bench_socket paired`.
    paired_block: u32,
    /// Rounds of blocks (one of each variant) in `bench_socket paired`.
    paired_sets: u32,
    /// Untimed process starts per start-up variant.
    startup_warmup: u32,
    /// Timed process starts per start-up variant.
    startup_runs: u32,
}

impl Plan {
    /// About 35 seconds on a two-core virtual machine where one
    /// socket()+close() takes ~8 us.
    const FULL: Plan = Plan {
        socket_iterations: 2_000,
        socket_reps_per_run: 2,
        socket_rounds: 80,
        paired_block: 200,
        paired_sets: 400,
        startup_warmup: 20,
        startup_runs: 2_000,
    };

    /// A smoke run: checks that everything builds and runs.
    const QUICK: Plan = Plan {
        socket_iterations: 100,
        socket_reps_per_run: 1,
        socket_rounds: 1,
        paired_block: 20,
        paired_sets: 3,
        startup_warmup: 1,
        startup_runs: 5,
    };
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
    // only wants to know that the benchmark works.
    let quick = !env::args().any(|arg| arg == "--bench");
    let plan = if quick { &Plan::QUICK } else { &Plan::FULL };
    if quick {
        println!("quick smoke run (no --bench argument): the figures mean nothing");
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Only for shorter paths in the output: `root` works either way.
    let root = root.canonicalize().unwrap_or(root);
    let ours = build_preload(&root)?;
    let debian = find_debian_library();
    match &debian {
        Some(path) => println!("Debian's libkeepalive: {}", path.display()),
        None => println!(
            "Debian's libkeepalive: not installed, comparison skipped (package libkeepalive0)"
        ),
    }

    let scratch = tempfile::Builder::new()
        .prefix("keepalive-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let c_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/c");
    let bench_socket = scratch.path().join("bench_socket");
    compile(
        &["-O2", "-Wall", "-Wextra"],
        &c_dir.join("bench_socket.c"),
        &bench_socket,
    )?;
    let empty = scratch.path().join("libempty_preload.so");
    compile(
        &["-O2", "-shared", "-fPIC"],
        &c_dir.join("empty_preload.c"),
        &empty,
    )?;
    let socket_bench = SocketBench {
        plan,
        binary: &bench_socket,
    };

    let separate = socket_bench.separate(&ours, debian.as_deref())?;
    let paired = Paired {
        none: socket_bench.paired("no preload", None)?,
        ours: socket_bench.paired("libkeepalive.so", Some(&ours))?,
        debian: debian
            .as_deref()
            .map(|library| socket_bench.paired("Debian libkeepalive", Some(library)))
            .transpose()?,
    };
    let startup = measure_startup(plan, &empty, &ours, debian.as_deref())?;
    let size = fs::metadata(&ours)
        .map_err(|e| format!("cannot stat {}: {e}", ours.display()))?
        .len();

    Summary {
        plan,
        separate: &separate,
        paired: &paired,
        startup: &startup,
        library: &ours,
        size,
    }
    .print();
    Ok(())
}

/// Builds the preload in release mode and returns the path of
/// `libkeepalive.so`.
///
/// The nested cargo normally shares the workspace's target directory: the
/// outer `cargo bench` no longer holds its lock while the benchmark runs.
/// If cargo reports that it is blocked on that lock anyway (say another
/// cargo holds it), the build moves to a target directory of its own rather
/// than wait.
fn build_preload(root: &Path) -> Result<PathBuf> {
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    println!("building libkeepalive.so: cargo build --release -p keepalive-preload");
    if cargo_build(root, None)? {
        return Ok(target_dir.join("release/libkeepalive.so"));
    }
    let own_dir = target_dir.join("bench-preload");
    println!(
        "cargo is blocked on the target directory's lock; building in {} instead",
        own_dir.display()
    );
    if cargo_build(root, Some(&own_dir))? {
        return Ok(own_dir.join("release/libkeepalive.so"));
    }
    Err(format!("cargo is blocked on the lock of {} too", own_dir.display()).into())
}

/// Runs one `cargo build --release -p keepalive-preload`, echoing cargo's
/// messages to stderr. `Ok(true)` when it built; `Ok(false)` if cargo
/// blocked on a file lock, in which case the build was stopped.
fn cargo_build(root: &Path, target_dir: Option<&Path>) -> Result<bool> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--release", "-p", "keepalive-preload"])
        .stderr(Stdio::piped());
    if let Some(dir) = target_dir {
        command.arg("--target-dir").arg(dir);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stderr = child.stderr.take().expect("stderr was set to piped");
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        eprintln!("    {line}");
        if line.contains("Blocking waiting for file lock") {
            // Results ignored: the child may have finished meanwhile, and
            // it is waited for either way.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("cargo build -p keepalive-preload failed: {status}").into());
    }
    Ok(true)
}

/// Debian's original `libkeepalive` (package `libkeepalive0`), if installed.
fn find_debian_library() -> Option<PathBuf> {
    let listed = Command::new("dpkg")
        .args(["-L", "libkeepalive0"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("libkeepalive.so"))
                })
                // libkeepalive.so before libkeepalive.so.0
                .min_by_key(|path| path.as_os_str().len())
        });
    listed
        .into_iter()
        .chain(DEBIAN_LIBRARY_PATHS.iter().map(PathBuf::from))
        .find(|path| path.is_file())
}

/// Compiles one C source with `$CC` (default `gcc`).
fn compile(flags: &[&str], source: &Path, output: &Path) -> Result<()> {
    let cc = env::var_os("CC").unwrap_or_else(|| OsString::from("gcc"));
    let status = Command::new(&cc)
        .args(flags)
        .arg("-o")
        .arg(output)
        .arg(source)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cc.to_string_lossy()))?;
    if !status.success() {
        return Err(format!(
            "{} {} failed: {status}",
            cc.to_string_lossy(),
            source.display()
        )
        .into());
    }
    Ok(())
}

/// The same environment for every variant but `LD_PRELOAD`, so that only
/// the preload differs between them.
fn set_environment(command: &mut Command, preload: Option<&Path>) {
    command
        .envs(KEEPALIVE_ENV)
        .env_remove("KEEPALIVE")
        .env_remove("TCP_USER_TIMEOUT");
    match preload {
        Some(library) => command.env("LD_PRELOAD", library),
        None => command.env_remove("LD_PRELOAD"),
    };
}

/// Timing samples and their order statistics.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    /// The `q` quantile (0.0..=1.0), interpolated between neighbours.
    fn quantile(&self, q: f64) -> f64 {
        let mut values = self.0.clone();
        values.sort_by(f64::total_cmp);
        assert!(!values.is_empty(), "quantile of no samples");
        let position = q * (values.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        values[low] + (values[high] - values[low]) * (position - low as f64)
    }

    fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    fn min(&self) -> f64 {
        self.quantile(0.0)
    }

    /// Interquartile range relative to the median: how noisy the samples are.
    fn relative_spread(&self) -> f64 {
        (self.quantile(0.75) - self.quantile(0.25)) / self.median().abs()
    }

    /// Three standard errors of the median: sigma estimated as IQR / 1.349,
    /// the median's standard error as 1.2533 sigma / sqrt(n).
    fn noise(&self) -> f64 {
        let sigma = (self.quantile(0.75) - self.quantile(0.25)) / 1.349;
        3.0 * 1.2533 * sigma / (self.0.len() as f64).sqrt()
    }

    /// `combine(a, b)` for each pair of samples taken in the same round, as
    /// new samples: pairing cancels drifts slower than a round.
    fn paired(&self, base: &Samples, combine: impl Fn(f64, f64) -> f64) -> Samples {
        assert_eq!(
            self.0.len(),
            base.0.len(),
            "paired samples of unequal count"
        );
        Samples(
            self.0
                .iter()
                .zip(&base.0)
                .map(|(&a, &b)| combine(a, b))
                .collect(),
        )
    }
}

/// `numerator / denominator`, or `None` when the denominator is not above
/// zero (nothing measurable to compare against).
fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

/// A median with its noise: three standard errors (see [`Samples::noise`]).
#[derive(Clone, Copy)]
struct Estimate {
    value: f64,
    noise: f64,
}

impl Estimate {
    fn of(samples: &Samples) -> Self {
        Self {
            value: samples.median(),
            noise: samples.noise(),
        }
    }

    /// `self / denominator`, the noises propagated as if independent; `None`
    /// when the denominator is not above zero.
    fn over(self, denominator: Estimate) -> Option<Estimate> {
        let value = ratio(self.value, denominator.value)?;
        let noise = self.noise.hypot(value * denominator.noise) / denominator.value;
        Some(Estimate { value, noise })
    }
}

/// Whether the median of `ratios`, of two costs that should be equal, is 1
/// within the noise of the measurement. Returns the verdict, the median and
/// the tolerance used.
fn unchanged(ratios: &Samples) -> (bool, f64, f64) {
    let (median, tolerance) = (ratios.median(), ratios.noise().max(UDP_MIN_TOLERANCE));
    ((median - 1.0).abs() <= tolerance, median, tolerance)
}

/// One way of running `bench_socket` in its own process.
struct SocketVariant {
    label: &'static str,
    mode: &'static str,
    preload: Option<PathBuf>,
    /// What the probe socket must show; `None`: only reported.
    expect: Option<[i32; 4]>,
    series: Series,
}

/// What one variant of measurement 1 measured, ns per call.
#[derive(Default)]
struct Series {
    /// Every repetition.
    reps: Samples,
    /// One per round: the mean of that round's repetitions.
    rounds: Samples,
}

impl Series {
    /// Median over the rounds of `self` minus `base` in the same round.
    fn minus(&self, base: &Series) -> Estimate {
        Estimate::of(&self.rounds.paired(&base.rounds, |a, b| a - b))
    }
}

/// What `bench_socket` printed.
struct BenchOutput {
    /// SO_KEEPALIVE, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL of the probe
    /// socket.
    probe: [i32; 4],
    /// The numbers of each `rep` or `set` line.
    records: Vec<Vec<f64>>,
}

/// Per-socket results from separate processes, ns per socket()+close().
struct Separate {
    tcp_bare: Series,
    tcp_ours: Series,
    tcp_manual: Series,
    udp_bare: Series,
    udp_ours: Series,
    tcp_debian: Option<Series>,
}

/// Per-socket results of `bench_socket paired` with one preload (or none),
/// one sample per set of blocks.
struct PairedRun {
    /// ns per call: socket() minus libc's socket(), TCP.
    overhead: Samples,
    /// ns per call: libc's socket() + 4 setsockopt minus libc's socket().
    setsockopt: Samples,
    /// socket() / libc's socket(), UDP.
    udp_ratio: Samples,
}

impl PairedRun {
    fn tcp_ratio(&self) -> Option<Estimate> {
        Estimate::of(&self.overhead).over(Estimate::of(&self.setsockopt))
    }
}

struct Paired {
    none: PairedRun,
    ours: PairedRun,
    debian: Option<PairedRun>,
}

/// Runs the compiled `bench_socket`.
struct SocketBench<'a> {
    plan: &'a Plan,
    binary: &'a Path,
}

impl SocketBench<'_> {
    /// Runs `bench_socket MODE ITERATIONS REPS` once with `preload`.
    fn run(
        &self,
        mode: &str,
        iterations: u32,
        reps: u32,
        preload: Option<&Path>,
    ) -> Result<BenchOutput> {
        let mut command = Command::new(self.binary);
        command.args([mode.to_owned(), iterations.to_string(), reps.to_string()]);
        set_environment(&mut command, preload);
        let output = command.stderr(Stdio::inherit()).output()?;
        if !output.status.success() {
            return Err(format!("bench_socket {mode} failed: {}", output.status).into());
        }

        let mut probe = None;
        let mut records = Vec::new();
        for line in String::from_utf8(output.stdout)?.lines() {
            let bad = || format!("bench_socket {mode}: unexpected output {line:?}");
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("probe") => {
                    let values = fields
                        .map(str::parse)
                        .collect::<std::result::Result<Vec<i32>, _>>()?;
                    probe = Some(<[i32; 4]>::try_from(values).map_err(|_| bad())?);
                }
                Some("rep" | "set") => {
                    records.push(
                        fields
                            .map(str::parse)
                            .collect::<std::result::Result<Vec<f64>, _>>()?,
                    );
                }
                _ => return Err(bad().into()),
            }
        }
        let probe = probe.ok_or_else(|| format!("bench_socket {mode} printed no probe line"))?;
        Ok(BenchOutput { probe, records })
    }

    /// Measurement 1: each variant in processes of its own, round-robin.
    fn separate(&self, ours: &Path, debian: Option<&Path>) -> Result<Separate> {
        let variant = |label, mode, preload: Option<&Path>, expect| SocketVariant {
            label,
            mode,
            preload: preload.map(Path::to_path_buf),
            expect,
            series: Series::default(),
        };
        // Plain TCP without a preload is checked in `check_probe`: the
        // TCP_KEEP* values are whatever the kernel's defaults are.
        let mut variants = vec![
            variant("tcp, no preload", "tcp", None, None),
            variant("tcp, libkeepalive.so", "tcp", Some(ours), Some(APPLIED)),
            variant("tcp-manual, no preload", "tcp-manual", None, Some(APPLIED)),
            variant("udp, no preload", "udp", None, Some(UDP_UNTOUCHED)),
            variant(
                "udp, libkeepalive.so",
                "udp",
                Some(ours),
                Some(UDP_UNTOUCHED),
            ),
        ];
        if let Some(debian) = debian {
            variants.push(variant(
                "tcp, Debian libkeepalive",
                "tcp",
                Some(debian),
                None,
            ));
        }

        let plan = self.plan;
        println!(
            "\n1. socket()+close() in separate processes: {} variants x {} rounds x {} repetitions of {} calls",
            variants.len(),
            plan.socket_rounds,
            plan.socket_reps_per_run,
            plan.socket_iterations
        );
        for round in 0..plan.socket_rounds {
            for variant in &mut variants {
                let output = self.run(
                    variant.mode,
                    plan.socket_iterations,
                    plan.socket_reps_per_run,
                    variant.preload.as_deref(),
                )?;
                if round == 0 {
                    check_probe(
                        variant.label,
                        output.probe,
                        variant.expect,
                        variant.preload.is_some(),
                    )?;
                }
                let reps: Vec<f64> = output
                    .records
                    .iter()
                    .filter_map(|record| record.first().copied())
                    .collect();
                variant
                    .series
                    .rounds
                    .0
                    .push(reps.iter().sum::<f64>() / reps.len().max(1) as f64);
                variant.series.reps.0.extend(reps);
            }
        }
        for variant in &variants {
            println!(
                "  {:<26} median {:>8.1} ns   min {:>8.1} ns   spread {:>5.1} %",
                variant.label,
                variant.series.reps.median(),
                variant.series.reps.min(),
                100.0 * variant.series.reps.relative_spread()
            );
        }

        let mut take = || variants.remove(0).series;
        Ok(Separate {
            tcp_bare: take(),
            tcp_ours: take(),
            tcp_manual: take(),
            udp_bare: take(),
            udp_ours: take(),
            tcp_debian: debian.map(|_| take()),
        })
    }

    /// Measurement 2: `bench_socket paired` with `preload`.
    fn paired(&self, label: &str, preload: Option<&Path>) -> Result<PairedRun> {
        let plan = self.plan;
        println!(
            "\n2. socket()+close() paired in one process, {label}: {} sets of blocks of {} calls",
            plan.paired_sets, plan.paired_block
        );
        let output = self.run("paired", plan.paired_block, plan.paired_sets, preload)?;
        let expect = preload.is_some().then_some(APPLIED);
        check_probe(label, output.probe, expect, preload.is_some())?;

        let mut run = PairedRun {
            overhead: Samples::default(),
            setsockopt: Samples::default(),
            udp_ratio: Samples::default(),
        };
        for record in &output.records {
            let &[tcp, tcp_libc, tcp_manual_libc, udp, udp_libc] = record.as_slice() else {
                return Err(format!("bench_socket paired: bad set {record:?}").into());
            };
            run.overhead.0.push(tcp - tcp_libc);
            run.setsockopt.0.push(tcp_manual_libc - tcp_libc);
            run.udp_ratio.0.push(udp / udp_libc);
        }
        println!(
            "  overhead {:>8.1} ns   setsockopt x4 {:>8.1} ns   udp ratio {:.3}",
            run.overhead.median(),
            run.setsockopt.median(),
            run.udp_ratio.median()
        );
        Ok(run)
    }
}

/// Checks what the probe socket showed: the preload must really have been
/// in effect, or really absent, or the figures would compare nothing.
/// Without `expect`: with no preload, keepalive must be off; with one (that
/// is Debian's), the options are only reported.
fn check_probe(
    label: &str,
    probe: [i32; 4],
    expect: Option<[i32; 4]>,
    preloaded: bool,
) -> Result<()> {
    let [keepalive, count, idle, interval] = probe;
    let shown = format!(
        "SO_KEEPALIVE={keepalive} TCP_KEEPCNT={count} TCP_KEEPIDLE={idle} TCP_KEEPINTVL={interval}"
    );
    println!("  probe {label:<26} {shown}");
    let right = match expect {
        Some(expected) => probe == expected,
        None => preloaded || keepalive == 0,
    };
    if right {
        Ok(())
    } else {
        Err(format!("{label}: the probe socket's options are wrong: {shown}").into())
    }
}

/// Process start-up results, microseconds per spawn + exec + wait.
struct Startup {
    none: Samples,
    empty: Samples,
    ours: Samples,
    debian: Option<Samples>,
}

/// Measurement 3: start-up of `/bin/true` with each preload, round-robin.
fn measure_startup(
    plan: &Plan,
    empty: &Path,
    ours: &Path,
    debian: Option<&Path>,
) -> Result<Startup> {
    let mut variants: Vec<(&str, Option<&Path>, Samples)> = vec![
        ("no preload", None, Samples::default()),
        ("empty preload", Some(empty), Samples::default()),
        ("libkeepalive.so", Some(ours), Samples::default()),
    ];
    if let Some(debian) = debian {
        variants.push(("Debian libkeepalive", Some(debian), Samples::default()));
    }

    println!(
        "\n3. start-up of /bin/true: {} variants x {} runs, round-robin",
        variants.len(),
        plan.startup_runs
    );
    for run in 0..plan.startup_warmup + plan.startup_runs {
        for (_, library, samples) in &mut variants {
            let micros = start_true(*library)?;
            if run >= plan.startup_warmup {
                samples.0.push(micros);
            }
        }
    }
    for (label, _, samples) in &variants {
        println!(
            "  {label:<26} median {:>8.1} us   min {:>8.1} us",
            samples.median(),
            samples.min()
        );
    }

    let mut take = || variants.remove(0).2;
    Ok(Startup {
        none: take(),
        empty: take(),
        ours: take(),
        debian: debian.map(|_| take()),
    })
}

/// Times one spawn + exec + wait of `/bin/true` with `library` preloaded,
/// in microseconds.
fn start_true(library: Option<&Path>) -> Result<f64> {
    let mut command = Command::new("/bin/true");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    set_environment(&mut command, library);
    let start = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run /bin/true: {e}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("/bin/true failed ({status}) with LD_PRELOAD={library:?}").into());
    }
    Ok(elapsed.as_secs_f64() * 1e6)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Everything measured, printed as the final table.
struct Summary<'a> {
    plan: &'a Plan,
    separate: &'a Separate,
    paired: &'a Paired,
    startup: &'a Startup,
    library: &'a Path,
    size: u64,
}

/// Width of the label column in the summary.
const LABEL: usize = 36;

impl Summary<'_> {
    fn print(&self) {
        let rule = "-".repeat(80);
        println!("\n{rule}\nSUMMARY: what libkeepalive.so costs\n{rule}");
        let verdicts = [
            self.print_separate(),
            self.print_paired(),
            self.print_startup(),
        ]
        .concat();
        println!(
            "\n4. size of {}\n  {:<LABEL$} {:>10} bytes = {:.1} KiB",
            self.library.display(),
            "libkeepalive.so",
            self.size,
            self.size as f64 / 1024.0
        );
        println!("\nverdicts (informational)");
        for (target, pass, detail) in verdicts {
            println!("  {:<4}  {target:<58} {detail}", verdict(pass));
        }
        println!("{rule}");
    }

    fn row(label: &str, estimate: Estimate, unit: &str) {
        let Estimate { value, noise } = estimate;
        println!("  {label:<LABEL$} {value:>10.1} +- {noise:<7.1} {unit}");
    }

    fn ratio_row(label: &str, estimate: Option<Estimate>, note: &str) {
        match estimate {
            Some(Estimate { value, noise }) => {
                println!("  {label:<LABEL$} {value:>10.3} +- {noise:<7.3} {note}");
            }
            None => println!("  {label:<LABEL$} {:>10}    {:<7} {note}", "n/a", ""),
        }
    }

    /// A verdict: what the target is, whether the ratio is within the limit,
    /// the ratio.
    fn target(target: String, ratio: Option<Estimate>, limit: f64) -> (String, bool, String) {
        match ratio {
            Some(Estimate { value, noise }) => {
                (target, value <= limit, format!("{value:.3} +- {noise:.3}"))
            }
            None => (target, false, "not measurable".to_owned()),
        }
    }

    fn print_separate(&self) -> Vec<(String, bool, String)> {
        let s = self.separate;
        let plan = self.plan;
        println!(
            "1. socket()+close(), separate processes, ns per call\n  {:<LABEL$} {:>10} {:>10}   ({} repetitions of {} calls each)",
            "",
            "median",
            "min",
            plan.socket_rounds * plan.socket_reps_per_run,
            plan.socket_iterations
        );
        let mut rows = vec![
            ("tcp, no preload", &s.tcp_bare),
            ("tcp, libkeepalive.so", &s.tcp_ours),
            ("tcp-manual (4 x setsockopt)", &s.tcp_manual),
            ("udp, no preload", &s.udp_bare),
            ("udp, libkeepalive.so", &s.udp_ours),
        ];
        if let Some(debian) = &s.tcp_debian {
            rows.push(("tcp, Debian libkeepalive", debian));
        }
        for (label, series) in rows {
            println!(
                "  {label:<LABEL$} {:>10.1} {:>10.1}",
                series.reps.median(),
                series.reps.min()
            );
        }

        println!("  differences: medians of the per-round differences");
        let overhead = s.tcp_ours.minus(&s.tcp_bare);
        let setsockopt = s.tcp_manual.minus(&s.tcp_bare);
        Self::row("preload overhead per TCP socket", overhead, "ns");
        Self::row("bare setsockopt cost (4 calls)", setsockopt, "ns");
        let tcp_ratio = overhead.over(setsockopt);
        Self::ratio_row(
            "ratio overhead / setsockopt",
            tcp_ratio,
            &format!("target <= {TCP_RATIO_TARGET:.2}"),
        );
        if let Some(debian) = &s.tcp_debian {
            let debian_overhead = debian.minus(&s.tcp_bare);
            Self::row("Debian overhead per TCP socket", debian_overhead, "ns");
            Self::ratio_row(
                "Debian ratio / setsockopt",
                debian_overhead.over(setsockopt),
                "(comparison)",
            );
        }
        let (udp_pass, udp_ratio, tolerance) =
            unchanged(&s.udp_ours.rounds.paired(&s.udp_bare.rounds, |a, b| a / b));
        println!(
            "  {:<LABEL$} {udp_ratio:>10.3}    {:<7} target 1.00 +- {tolerance:.3} (noise)",
            "udp ratio preload / no preload", ""
        );
        vec![
            Self::target(
                format!("TCP overhead <= {TCP_RATIO_TARGET:.2} x setsockopt (1: separate)"),
                tcp_ratio,
                TCP_RATIO_TARGET,
            ),
            (
                format!("UDP unchanged within +- {tolerance:.3} (1: separate)"),
                udp_pass,
                format!("{udp_ratio:.3}"),
            ),
        ]
    }

    fn print_paired(&self) -> Vec<(String, bool, String)> {
        let p = self.paired;
        println!(
            "\n2. socket()+close(), paired in one process, ns per call, medians of {} sets of {}-call blocks\n  {:<LABEL$} {:>10} {:>10} {:>10} {:>10}",
            self.plan.paired_sets,
            self.plan.paired_block,
            "",
            "overhead",
            "setsockopt",
            "tcp ratio",
            "udp ratio"
        );
        let mut rows = vec![
            ("no preload (method check: ~0)", &p.none),
            ("libkeepalive.so", &p.ours),
        ];
        if let Some(debian) = &p.debian {
            rows.push(("Debian libkeepalive", debian));
        }
        for (label, run) in rows {
            let tcp_ratio = run
                .tcp_ratio()
                .map_or_else(|| "n/a".to_owned(), |r| format!("{:.3}", r.value));
            println!(
                "  {label:<LABEL$} {:>10.1} {:>10.1} {tcp_ratio:>10} {:>10.3}",
                run.overhead.median(),
                run.setsockopt.median(),
                run.udp_ratio.median()
            );
        }
        let (udp_pass, udp_ratio, tolerance) = unchanged(&p.ours.udp_ratio);
        println!(
            "  targets: tcp ratio <= {TCP_RATIO_TARGET:.2}, udp ratio 1.00 +- {tolerance:.3} (noise)"
        );
        vec![
            Self::target(
                format!("TCP overhead <= {TCP_RATIO_TARGET:.2} x setsockopt (2: paired)"),
                p.ours.tcp_ratio(),
                TCP_RATIO_TARGET,
            ),
            (
                format!("UDP unchanged within +- {tolerance:.3} (2: paired)"),
                udp_pass,
                format!("{udp_ratio:.3}"),
            ),
        ]
    }

    fn print_startup(&self) -> Vec<(String, bool, String)> {
        let s = self.startup;
        println!(
            "\n3. start-up of /bin/true (spawn + exec + wait), us\n  {:<LABEL$} {:>10} {:>10}   ({} runs each)",
            "", "median", "min", self.plan.startup_runs
        );
        let mut rows = vec![
            ("no preload", &s.none),
            ("empty preload", &s.empty),
            ("libkeepalive.so", &s.ours),
        ];
        if let Some(debian) = &s.debian {
            rows.push(("Debian libkeepalive", debian));
        }
        for (label, samples) in rows {
            println!(
                "  {label:<LABEL$} {:>10.1} {:>10.1}",
                samples.median(),
                samples.min()
            );
        }

        // Runs of the same round are next to each other in time.
        let overhead = |samples: &Samples| Estimate::of(&samples.paired(&s.none, |a, b| a - b));
        let empty_overhead = overhead(&s.empty);
        let ours_overhead = overhead(&s.ours);
        println!("  differences: medians of the per-round differences");
        Self::row("overhead empty - none", empty_overhead, "us");
        Self::row("overhead ours - none", ours_overhead, "us");
        let startup_ratio = ours_overhead.over(empty_overhead);
        Self::ratio_row(
            "ratio ours / empty",
            startup_ratio,
            &format!("target <= {STARTUP_RATIO_TARGET:.2}"),
        );
        match &s.debian {
            Some(debian) => {
                let debian_overhead = overhead(debian);
                Self::row("overhead Debian - none", debian_overhead, "us");
                Self::ratio_row(
                    "ratio Debian / empty",
                    debian_overhead.over(empty_overhead),
                    "(comparison)",
                );
            }
            None => println!("  Debian libkeepalive not installed: no comparison"),
        }
        vec![Self::target(
            format!("start-up overhead <= {STARTUP_RATIO_TARGET:.2} x empty preload's"),
            startup_ratio,
            STARTUP_RATIO_TARGET,
        )]
    }
}
