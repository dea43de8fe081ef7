//! Helpers for the integration tests: the preload and the C programs built
//! once per test binary, children run with a deadline, and parsers for what
//! the children, strace and ss print.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test program may run before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(30);

// The settings most tests give the preload. [`kernel_defaults`] checks that
// they differ from the kernel's, so a socket that has them got them from the
// preload.
/// `KEEPCNT` in [`SETTINGS`].
pub const COUNT: i64 = 20;
/// `KEEPIDLE` in [`SETTINGS`], seconds.
pub const IDLE: i64 = 180;
/// `KEEPINTVL` in [`SETTINGS`], seconds.
pub const INTERVAL: i64 = 60;

/// [`COUNT`], [`IDLE`] and [`INTERVAL`] as the preload's environment.
pub const SETTINGS: [(&str, &str); 3] =
    [("KEEPCNT", "20"), ("KEEPIDLE", "180"), ("KEEPINTVL", "60")];

/// The preload's variables: removed from every child's environment, so that
/// only what a test sets reaches the preload.
const PRELOAD_VARS: [&str; 8] = [
    "LD_PRELOAD",
    "LD_DEBUG",
    "KEEPALIVE",
    "KEEPCNT",
    "KEEPIDLE",
    "KEEPINTVL",
    "TCP_USER_TIMEOUT",
    "KEEPALIVE_DEBUG",
];

/// Prints `skipped: <why>` and returns from the test.
macro_rules! skip {
    ($($why:tt)+) => {{
        eprintln!("skipped: {}", format_args!($($why)+));
        return;
    }};
}
pub(crate) use skip;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `libkeepalive.so`, built once per test binary by
/// `cargo build --release -p keepalive-preload` in the workspace's target
/// directory (`cargo test` has released that directory's lock by the time
/// the tests run, so the nested build does not wait for the outer one).
pub fn preload() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        // CARGO_TARGET_TMPDIR is <target>/tmp, wherever the target is.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace_root())
            .args(["build", "--release", "--quiet", "-p", "keepalive-preload"])
            .arg("--target-dir")
            .arg(target);
        let out = run(&mut build, Duration::from_secs(600));
        assert!(out.status.success(), "building the preload failed\n{out}");
        let lib = target.join("release/libkeepalive.so");
        assert!(lib.is_file(), "{} missing after the build", lib.display());
        lib
    })
}

/// The test program `tests/c/probe.c` (see its header for the commands).
pub fn probe() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| gcc("probe.c", "probe", &["-pthread"]))
}

/// `tests/c/nodelay.c`: a second preload whose socket() sets TCP_NODELAY.
pub fn nodelay_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| gcc("nodelay.c", "libnodelay.so", &["-shared", "-fPIC", "-ldl"]))
}

/// `tests/c/ctor.c`: a library whose constructor makes a TCP socket.
pub fn ctor_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| gcc("ctor.c", "libctor.so", &["-shared", "-fPIC"]))
}

/// Compiles `tests/c/<source>` into the target's temporary directory. The
/// output is renamed into place, so that test binaries running side by
/// side never see a half-written file.
fn gcc(source: &str, output: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(source);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("create CARGO_TARGET_TMPDIR");
    let out = dir.join(output);
    let partial = dir.join(format!("{output}.{}.partial", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&partial)
        .arg(&src)
        .args(flags);
    let result = run(&mut cmd, Duration::from_secs(120));
    assert!(result.status.success(), "gcc {source} failed\n{result}");
    std::fs::rename(&partial, &out).expect("rename the compiled file into place");
    out
}

/// True when the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The path of `tool` in `PATH`, if it is installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The real python3 interpreter (`sys.executable`), not a pyenv-style shim
/// script, which would run many processes under the preload.
pub fn python3() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            tool("python3")?;
            let mut cmd = bare("python3");
            cmd.args(["-c", "import sys; print(sys.executable)"]);
            let out = run(&mut cmd, TIMEOUT);
            let path = PathBuf::from(out.stdout.trim());
            (out.status.success() && path.is_absolute()).then_some(path)
        })
        .as_deref()
}

/// True when `java -version` works (a JDK or JRE is installed).
pub fn have_java() -> bool {
    static JAVA: OnceLock<bool> = OnceLock::new();
    *JAVA.get_or_init(|| {
        tool("java").is_some() && run(bare("java").arg("-version"), TIMEOUT).status.success()
    })
}

/// A command for `program` with none of the preload's variables set.
pub fn bare(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in PRELOAD_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// A command for `program` with `LD_PRELOAD=libkeepalive.so` and none of
/// the preload's variables set.
pub fn preloaded(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = bare(program);
    cmd.env("LD_PRELOAD", preload());
    cmd
}

/// A command for `program` under the preload with `KEEPCNT`, `KEEPIDLE`
/// and `KEEPINTVL` set to [`COUNT`], [`IDLE`] and [`INTERVAL`].
pub fn configured(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = preloaded(program);
    cmd.envs(SETTINGS);
    cmd
}

/// The probe's arguments for `cmds`, each command written as one string:
/// `commands(&["socket inet stream 0", "set keepidle 77"])`.
pub fn commands<'a>(cmds: &[&'a str]) -> Vec<&'a str> {
    cmds.iter().flat_map(|c| c.split_whitespace()).collect()
}

/// Runs `cmd` (bounded by [`TIMEOUT`]) and panics, showing its output,
/// unless it exits with status 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd, TIMEOUT);
    out.assert_success();
    out
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`, for the test's own
/// sockets.
pub fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) {
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: the option value points to a live int of the length given.
    let r = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) };
    assert_eq!(
        r,
        0,
        "setsockopt({fd}, {level}, {name}, {value}): {}",
        std::io::Error::last_os_error()
    );
}

/// An `LD_PRELOAD` value loading `libs` in this order.
pub fn ld_preload(libs: &[&Path]) -> OsString {
    let mut value = OsString::new();
    for (i, lib) in libs.iter().enumerate() {
        if i > 0 {
            value.push(" ");
        }
        value.push(lib);
    }
    value
}

/// Lets the child inherit `fd` (which the test keeps open): FD_CLOEXEC is
/// cleared in the child only, so no other test's child inherits it.
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe,
    // as code between fork and exec must be.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a finished child did.
pub struct Output {
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {}, {}\n--- stdout:\n{}--- stderr:\n{}---",
            self.pid, self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// The lines of stdout in the probe's `what key=value ...` form.
    pub fn records(&self) -> Vec<Record> {
        self.stdout.lines().filter_map(Record::parse).collect()
    }

    /// The one record of this kind; panics, showing the output, when there
    /// is not exactly one.
    pub fn only(&self, what: &str) -> Record {
        let mut found: Vec<Record> = self
            .records()
            .into_iter()
            .filter(|r| r.what == what)
            .collect();
        assert_eq!(found.len(), 1, "expected one `{what}` line\n{self}");
        found.remove(0)
    }

    /// Panics, showing the output, unless the child exited with status 0.
    pub fn assert_success(&self) {
        assert!(self.status.success(), "the program failed\n{self}");
    }

    /// The stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured; panics (after
/// killing it) when it runs longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    wait(spawn(cmd), timeout)
}

/// Starts `cmd` in its own process group with stdin closed and
/// stdout/stderr piped.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A program a test has just copied can be busy for a moment: another
    // test thread's fork may still hold the copy's write descriptor until
    // its exec closes it (ETXTBSY).
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                thread::sleep(Duration::from_millis(10));
            }
            result => return result.unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        }
    }
}

/// Waits for `child` (from [`spawn`]) and collects its output; when it runs
/// longer than `timeout`, kills its process group and panics.
pub fn wait(mut child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait().expect("waitpid") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    };
    let out = Output {
        pid,
        status: status.unwrap_or_default(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "hung: still running after {timeout:?}, killed\n{out}"
    );
    out
}

/// Reads `pipe` to its end in a thread, as text.
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills the process group `pid` leads (a child from [`spawn`]; for
/// another child this finds no group and does nothing).
fn kill_group(pid: u32) {
    let pgid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a negative pid signals the group the child leads;
    // the child is not reaped yet, so its pid cannot have been reused.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// A child that is killed (with its process group) and reaped when dropped,
/// for programs that would otherwise wait long (curl on a stalled server).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill_group(self.0.id());
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// One line of a test program's output: `what key=value key=value ...`.
#[derive(Debug, Clone)]
pub struct Record {
    pub what: String,
    pub line: String,
    fields: BTreeMap<String, i64>,
}

impl Record {
    /// Parses a `what key=value ...` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Record> {
        let mut words = line.split_whitespace();
        let what = words.next()?.to_owned();
        let mut fields = BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=')?;
            fields.insert(key.to_owned(), value.parse().ok()?);
        }
        Some(Record {
            what,
            line: line.to_owned(),
            fields,
        })
    }

    /// The value of `key`; panics, showing the line, when it is missing.
    pub fn get(&self, key: &str) -> i64 {
        *self
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in `{}`", self.line))
    }

    /// The keepalive options the line reports.
    pub fn keepalive(&self) -> Keepalive {
        Keepalive {
            on: self.get("keepalive"),
            count: self.get("keepcnt"),
            idle: self.get("keepidle"),
            interval: self.get("keepintvl"),
            user_timeout: self.fields.get("user_timeout").copied().unwrap_or(0),
        }
    }
}

/// The keepalive options of a socket, as getsockopt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// SO_KEEPALIVE.
    pub on: i64,
    /// TCP_KEEPCNT.
    pub count: i64,
    /// TCP_KEEPIDLE, seconds.
    pub idle: i64,
    /// TCP_KEEPINTVL, seconds.
    pub interval: i64,
    /// TCP_USER_TIMEOUT, milliseconds.
    pub user_timeout: i64,
}

impl Keepalive {
    /// A new TCP socket's options when the preload had `KEEPCNT`, `KEEPIDLE`
    /// and `KEEPINTVL` set to [`COUNT`], [`IDLE`] and [`INTERVAL`].
    pub fn configured() -> Keepalive {
        kernel_defaults();
        Keepalive {
            on: 1,
            count: COUNT,
            idle: IDLE,
            interval: INTERVAL,
            user_timeout: 0,
        }
    }
}

/// A new TCP socket's options without the preload: keepalive off, the
/// values of `net.ipv4.tcp_keepalive_{probes,time,intvl}` in this network
/// namespace, no user timeout. Checks that they differ from [`COUNT`],
/// [`IDLE`] and [`INTERVAL`], which would otherwise prove nothing.
pub fn kernel_defaults() -> Keepalive {
    let read = |name: &str| -> i64 {
        let path = format!("/proc/sys/net/ipv4/tcp_keepalive_{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
    };
    let defaults = Keepalive {
        on: 0,
        count: read("probes"),
        idle: read("time"),
        interval: read("intvl"),
        user_timeout: 0,
    };
    assert!(
        defaults.count != COUNT && defaults.idle != IDLE && defaults.interval != INTERVAL,
        "the kernel defaults {defaults:?} equal the test values; change the sysctls"
    );
    defaults
}

/// A new directory under the cargo target (not /tmp, which may be mounted
/// noexec, and then nothing loads or runs from it), named `<prefix>-XXXXXX`,
/// mode 0755 so that programs a test runs as nobody can reach it; removed
/// with everything in it when dropped, whatever way the test ends.
pub fn target_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("create CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir_in(dir)
        .expect("create a temporary directory")
}

/// A network namespace named `ka-<tag>-<pid>-<n>`, with `lo` up, deleted
/// (with its links) when this is dropped.
pub struct Netns(String);

impl Netns {
    /// Err(why) when it cannot be made here: not root, no `ip`.
    pub fn new(tag: &str) -> Result<Netns, &'static str> {
        static N: AtomicUsize = AtomicUsize::new(0);
        if !is_root() {
            return Err("network namespaces need root");
        }
        if tool("ip").is_none() {
            return Err("ip (iproute2) is not installed");
        }
        let name = format!(
            "ka-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]), TIMEOUT).assert_success();
        let ns = Netns(name);
        run(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]),
            TIMEOUT,
        )
        .assert_success();
        Ok(ns)
    }

    /// Its name, as `ip netns` and `--netns` take it.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One setsockopt(2) call as strace shows it, e.g.
/// `setsockopt(3, SOL_TCP, TCP_KEEPIDLE, [180], 4) = 0` becomes
/// `"3 TCP_KEEPIDLE=180 = 0"`.
fn setsockopt_call(line: &str) -> Option<String> {
    let args = line.split_once("setsockopt(")?.1;
    let (args, result) = args.rsplit_once(") = ")?;
    let args: Vec<&str> = args.split(", ").collect();
    let [fd, _level, name, value, _len] = args[..] else {
        return Some(line.to_owned());
    };
    let value = value.trim_start_matches('[').trim_end_matches(']');
    Some(format!("{fd} {name}={value} = {result}"))
}

/// Runs the probe with the commands `cmds` under strace with `env` (and LD_PRELOAD),
/// and returns the probe's output and every setsockopt(2) call it made
/// (see [`setsockopt_call`]; a line strace wrote in an unexpected form is
/// kept as it is).
pub fn strace_setsockopt(env: &[(&str, &str)], cmds: &[&str]) -> (Output, Vec<String>) {
    let trace = tempfile::NamedTempFile::new().expect("create the trace file");
    let mut cmd = bare("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=setsockopt",
        "-e",
        "signal=none",
        "-o",
    ])
    .arg(trace.path())
    .arg("-E")
    .arg(format!("LD_PRELOAD={}", preload().display()));
    for (name, value) in env {
        cmd.arg("-E").arg(format!("{name}={value}"));
    }
    cmd.arg("--").arg(probe()).args(commands(cmds));
    let out = run(&mut cmd, TIMEOUT);
    let calls = std::fs::read_to_string(trace.path())
        .expect("read the trace")
        .lines()
        .filter_map(setsockopt_call)
        .collect();
    (out, calls)
}

/// The remaining time of the keepalive timer in a line of `ss -tno`
/// (`timer:(keepalive,29sec,0)`), `None` when the line has no such timer.
pub fn ss_keepalive_timer(line: &str) -> Option<Duration> {
    let rest = line.split_once("timer:(keepalive,")?.1;
    let time = rest.split(',').next()?;
    parse_ss_time(time)
}

/// Parses the time format of ss (iproute2 misc/ss.c, print_ms_timer):
/// `1min`, `1min5sec`, `29sec`, `5.250ms` (seconds and milliseconds),
/// `400ms`; an empty string is zero.
pub fn parse_ss_time(text: &str) -> Option<Duration> {
    let mut ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (factor, unit_len) = if rest.starts_with("min") {
            (60_000, 3)
        } else if rest.starts_with("sec") {
            (1000, 3)
        } else if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('.') {
            // `5.250ms`: whole seconds, then milliseconds.
            (1000, 1)
        } else {
            return None;
        };
        ms += n * factor;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(ms))
}

#[test]
fn ss_time_formats() {
    let ms = |text| parse_ss_time(text).map(|d| d.as_millis());
    assert_eq!(ms("29sec"), Some(29_000));
    assert_eq!(ms("1min"), Some(60_000));
    assert_eq!(ms("1min5sec"), Some(65_000));
    assert_eq!(ms("120min"), Some(7_200_000));
    assert_eq!(ms("5.250ms"), Some(5_250));
    assert_eq!(ms("400ms"), Some(400));
    assert_eq!(ms(""), Some(0));
    assert_eq!(ms("soon"), None);
    assert_eq!(
        ss_keepalive_timer("0 0 127.0.0.1:5 127.0.0.1:6 timer:(keepalive,29sec,0)"),
        Some(Duration::from_secs(29))
    );
    assert_eq!(
        ss_keepalive_timer("0 0 127.0.0.1:5 127.0.0.1:6 timer:(on,200ms,0)"),
        None
    );
}
