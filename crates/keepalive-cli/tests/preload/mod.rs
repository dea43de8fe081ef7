//! The preload contract (DESIGN.md, "The preload contract"), checked with
//! the C program `tests/c/probe.c` and judged by what the kernel reports:
//! getsockopt in the program, and the setsockopt calls strace sees.

use std::ffi::OsStr;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;

use crate::util::{
    COUNT, IDLE, INTERVAL, Keepalive, Output, Record, SETTINGS, TIMEOUT, bare, commands,
    configured, ctor_lib, inherit_fd, is_root, kernel_defaults, ld_preload, nodelay_lib, preload,
    preloaded, probe, run_ok, set_int_option, skip, spawn, strace_setsockopt, target_tempdir, tool,
    wait,
};

/// The variables that set a socket option.
const TUNABLES: [&str; 4] = ["KEEPCNT", "KEEPIDLE", "KEEPINTVL", "TCP_USER_TIMEOUT"];

/// The `socket` lines of a probe run, each checked to be a created socket.
fn sockets(out: &Output) -> Vec<Record> {
    let found: Vec<Record> = out
        .records()
        .into_iter()
        .filter(|r| r.what == "socket")
        .collect();
    for r in &found {
        assert!(r.get("fd") >= 0, "socket() failed: `{}`\n{out}", r.line);
    }
    found
}

/// The setsockopt calls the preload should make for [`SETTINGS`] on `fd`,
/// in the order of the original libkeepalive.
fn expected_calls(fd: i64) -> Vec<String> {
    [
        "SO_KEEPALIVE=1".to_owned(),
        format!("TCP_KEEPCNT={COUNT}"),
        format!("TCP_KEEPIDLE={IDLE}"),
        format!("TCP_KEEPINTVL={INTERVAL}"),
    ]
    .iter()
    .map(|call| format!("{fd} {call} = 0"))
    .collect()
}

#[test]
fn inet6_socket_gets_keepalive() {
    let out = run_ok(configured(probe()).args(commands(&["socket inet6 stream 0"])));
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
}

#[test]
fn cloexec_nonblock_socket_gets_keepalive_and_keeps_its_flags() {
    let out = run_ok(configured(probe()).args(commands(&[
        "socket inet stream+cloexec+nonblock 0",
        "socket inet6 stream+cloexec+nonblock tcp",
    ])));
    let found = sockets(&out);
    assert_eq!(found.len(), 2, "{out}");
    for r in found {
        assert_eq!(r.keepalive(), Keepalive::configured(), "{out}");
        assert_eq!((r.get("cloexec"), r.get("nonblock")), (1, 1), "{out}");
    }
}

#[test]
fn protocol_zero_and_ipproto_tcp_get_keepalive() {
    let out = run_ok(configured(probe()).args(commands(&[
        "socket inet stream 0",
        "socket inet stream tcp",
        "socket inet6 stream 0",
        "socket inet6 stream tcp",
    ])));
    let found = sockets(&out);
    assert_eq!(found.len(), 4, "{out}");
    for r in found {
        assert_eq!(r.keepalive(), Keepalive::configured(), "{out}");
    }
}

#[test]
fn mptcp_socket_gets_keepalive() {
    let out = run_ok(configured(probe()).args(commands(&["socket inet stream mptcp"])));
    let r = out.only("socket");
    if r.get("fd") < 0 {
        skip!(
            "MPTCP sockets are not available here (errno {})",
            r.get("errno")
        );
    }
    // MPTCP sockets may refuse getsockopt(TCP_USER_TIMEOUT) (-1 here).
    let got = Keepalive {
        user_timeout: 0,
        ..r.keepalive()
    };
    assert_eq!(got, Keepalive::configured(), "{out}");
}

#[test]
fn failing_option_leaves_errno_untouched() {
    // MPTCP sockets refuse TCP_USER_TIMEOUT (ENOPROTOOPT on Linux 6.18):
    // the preload's last setsockopt fails, and errno must not show it.
    let out = run_ok(
        configured(probe())
            .env("TCP_USER_TIMEOUT", "5000")
            .env("KEEPALIVE_DEBUG", "1")
            .args(commands(&["socket inet stream mptcp"])),
    );
    let r = out.only("socket");
    if r.get("fd") < 0 {
        skip!(
            "MPTCP sockets are not available here (errno {})",
            r.get("errno")
        );
    }
    if !out.stderr.contains("(failed)") {
        skip!("this kernel takes TCP_USER_TIMEOUT on MPTCP sockets\n{out}");
    }
    assert_eq!(r.get("errno"), 4242, "{out}");
    assert_eq!((r.get("keepalive"), r.get("keepidle")), (1, IDLE), "{out}");
}

#[test]
fn tcp_socket_gets_exactly_the_expected_setsockopt_calls() {
    if tool("strace").is_none() {
        skip!("strace is not installed");
    }
    let (out, calls) = strace_setsockopt(&SETTINGS, &["socket inet stream 0"]);
    out.assert_success();
    let fd = out.only("socket").get("fd");
    assert_eq!(calls, expected_calls(fd), "{out}");
}

#[test]
fn udp_and_unix_sockets_see_no_setsockopt() {
    if tool("strace").is_none() {
        skip!("strace is not installed");
    }
    let mut env = SETTINGS.to_vec();
    env.push(("TCP_USER_TIMEOUT", "5000"));
    let (out, calls) = strace_setsockopt(
        &env,
        &[
            "socket inet dgram 0",
            "socket inet6 dgram udp",
            "socket unix stream 0",
            "socket unix dgram 0",
            "socket unix seqpacket 0",
        ],
    );
    out.assert_success();
    assert_eq!(sockets(&out).len(), 5, "{out}");
    assert_eq!(calls, Vec::<String>::new(), "{out}");
}

#[test]
fn raw_sockets_see_no_setsockopt() {
    if !is_root() {
        skip!("raw sockets need root (CAP_NET_RAW)");
    }
    if tool("strace").is_none() {
        skip!("strace is not installed");
    }
    let (out, calls) =
        strace_setsockopt(&SETTINGS, &["socket inet raw tcp", "socket inet6 raw tcp"]);
    out.assert_success();
    assert_eq!(sockets(&out).len(), 2, "{out}");
    assert_eq!(calls, Vec::<String>::new(), "{out}");
}

#[test]
fn keepalive_off_makes_no_setsockopt_call() {
    if tool("strace").is_none() {
        skip!("strace is not installed");
    }
    let defaults = kernel_defaults();
    for value in ["off", "OFF", "0", "no", "false"] {
        let mut env = SETTINGS.to_vec();
        env.extend([("KEEPALIVE", value), ("TCP_USER_TIMEOUT", "auto")]);
        let (out, calls) =
            strace_setsockopt(&env, &["socket inet stream 0", "socket inet6 stream tcp"]);
        out.assert_success();
        assert_eq!(calls, Vec::<String>::new(), "KEEPALIVE={value}\n{out}");
        for r in sockets(&out) {
            assert_eq!(r.keepalive(), defaults, "KEEPALIVE={value}\n{out}");
        }
        assert_eq!(out.stderr, "", "KEEPALIVE={value} must be silent\n{out}");
    }
}

#[test]
fn failing_socket_keeps_the_real_errno() {
    // 999: no such family; 99: no such type; 257 is SOCK_STREAM with an
    // unknown flag bit, which the preload's filter takes for TCP.
    let args = &[
        "socket 999 stream 0",
        "socket inet 99 0",
        "socket inet 257 0",
        "socket inet stream udp",
    ];
    let errnos = |out: &Output| -> Vec<(i64, i64)> {
        out.records()
            .iter()
            .map(|r| (r.get("fd"), r.get("errno")))
            .collect()
    };
    let without = run_ok(bare(probe()).args(commands(args)));
    let want = [
        (-1, i64::from(libc::EAFNOSUPPORT)),
        (-1, i64::from(libc::EINVAL)),
        (-1, i64::from(libc::EINVAL)),
        (-1, i64::from(libc::EPROTONOSUPPORT)),
    ];
    assert_eq!(errnos(&without), want, "{without}");
    let with = run_ok(configured(probe()).args(commands(args)));
    assert_eq!(errnos(&with), want, "{with}");
}

#[test]
fn successful_socket_leaves_errno_untouched() {
    // The probe sets errno to 4242 before each socket() call.
    let out = run_ok(
        configured(probe())
            .env("TCP_USER_TIMEOUT", "auto")
            .args(commands(&[
                "socket inet stream 0",
                "socket inet6 stream+cloexec tcp",
                "socket inet dgram 0",
            ])),
    );
    let found = sockets(&out);
    assert_eq!(found.len(), 3, "{out}");
    for r in found {
        assert_eq!(r.get("errno"), 4242, "{out}");
    }
}

#[test]
fn programs_own_setsockopt_wins() {
    let out = run_ok(configured(probe()).args(commands(&[
        "socket inet stream 0",
        "set keepalive 0",
        "socket inet stream 0",
        "set keepidle 77",
    ])));
    let set: Vec<Keepalive> = out
        .records()
        .iter()
        .filter(|r| r.what == "set")
        .map(Record::keepalive)
        .collect();
    let configured = Keepalive::configured();
    assert_eq!(
        set,
        [
            Keepalive {
                on: 0,
                ..configured
            },
            Keepalive {
                idle: 77,
                ..configured
            },
        ],
        "{out}"
    );
}

/// Runs the probe under the preload with `listener` inherited, making it
/// call `accepts` (`accept` or `accept4`) on it while the test connects
/// once per call.
fn accept_from_inherited(listener: &TcpListener, accepts: &[&str]) -> Output {
    let fd = listener.as_raw_fd();
    let mut cmd = configured(probe());
    for call in accepts {
        cmd.arg(call).arg(fd.to_string());
    }
    inherit_fd(&mut cmd, fd);
    let child = spawn(&mut cmd);
    let addr = listener.local_addr().expect("listener address");
    let clients: Vec<TcpStream> = accepts
        .iter()
        .map(|_| TcpStream::connect(addr).expect("connect to the listener"))
        .collect();
    let out = wait(child, TIMEOUT);
    drop(clients);
    out.assert_success();
    out
}

#[test]
fn accepted_sockets_of_an_inherited_listener_get_keepalive() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let out = accept_from_inherited(&listener, &["accept", "accept4"]);
    for what in ["accept", "accept4"] {
        let r = out.only(what);
        assert_eq!(r.keepalive(), Keepalive::configured(), "{what}\n{out}");
        assert_eq!(r.get("errno"), 4242, "{what} changed errno\n{out}");
    }
    assert_eq!(
        out.only("accept4").get("cloexec"),
        1,
        "accept4 flags lost\n{out}"
    );
}

#[test]
fn accepted_socket_keeps_the_keepalive_of_its_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fd = listener.as_raw_fd();
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 99);
    let out = accept_from_inherited(&listener, &["accept"]);
    let defaults = kernel_defaults();
    let own = Keepalive {
        on: 1,
        idle: 99,
        ..defaults
    };
    assert_eq!(out.only("accept").keepalive(), own, "{out}");
}

#[test]
fn eight_threads_making_80000_sockets_all_get_keepalive() {
    let out = run_ok(configured(probe()).args(["threads", "8", "10000", &IDLE.to_string()]));
    let r = out.only("threads");
    assert_eq!((r.get("total"), r.get("good")), (80_000, 80_000), "{out}");
}

#[test]
fn sockets_made_in_a_signal_handler_get_keepalive() {
    let out = run_ok(configured(probe()).args(["signal", "20000", &IDLE.to_string()]));
    let r = out.only("signal");
    assert_eq!(
        (r.get("main"), r.get("main_good")),
        (20_000, 20_000),
        "{out}"
    );
    assert!(r.get("handler") > 0, "the signal handler never ran\n{out}");
    assert_eq!(r.get("handler_good"), r.get("handler"), "{out}");
}

#[test]
fn children_forked_while_threads_make_sockets_get_keepalive() {
    let out = run_ok(configured(probe()).args(["fork", "50", &IDLE.to_string()]));
    let r = out.only("fork");
    assert_eq!((r.get("children"), r.get("failed")), (50, 0), "{out}");
    assert!(
        r.get("thread_sockets") > 0,
        "the threads made no socket\n{out}"
    );
    assert_eq!(r.get("thread_good"), r.get("thread_sockets"), "{out}");
}

#[test]
fn no_descriptor_or_memory_leak() {
    let out = run_ok(configured(probe()).args(commands(&["leak 10000 100000"])));
    let r = out.only("leak");
    assert_eq!(
        r.get("fds_after"),
        r.get("fds_before"),
        "descriptors leaked\n{out}"
    );
    let growth_kib = r.get("rss_second") - r.get("rss_first");
    assert!(
        growth_kib <= 1024,
        "VmRSS grew by {growth_kib} KiB from 10k to 100k sockets\n{out}"
    );
}

/// Runs the probe with `var=value` next to valid [`SETTINGS`], and checks
/// that the program ran normally, `var`'s option stayed at the kernel
/// default, the others were applied, and one stderr line named `var`.
fn assert_ignored(var: &str, value: &OsStr) {
    let out = run_ok(
        configured(probe())
            .env(var, value)
            .args(commands(&["socket inet stream 0"])),
    );
    let defaults = kernel_defaults();
    let mut want = Keepalive::configured();
    match var {
        "KEEPCNT" => want.count = defaults.count,
        "KEEPIDLE" => want.idle = defaults.idle,
        "KEEPINTVL" => want.interval = defaults.interval,
        "TCP_USER_TIMEOUT" => want.user_timeout = defaults.user_timeout,
        _ => panic!("not a tunable: {var}"),
    }
    assert_eq!(
        out.only("socket").keepalive(),
        want,
        "{var}={value:?}\n{out}"
    );
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{var}={value:?}: want one warning\n{out}");
    assert!(
        lines[0].starts_with(&format!("keepalive: ignoring {var}=")),
        "{var}={value:?}: the warning does not name {var}\n{out}"
    );
}

#[test]
fn bad_value_not_a_number() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("abc"));
    }
}

#[test]
fn bad_value_empty() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new(""));
    }
}

#[test]
fn bad_value_zero() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("0"));
    }
}

#[test]
fn bad_value_negative() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("-5"));
    }
}

#[test]
fn bad_value_too_large() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("99999999999"));
    }
}

#[test]
fn bad_value_unknown_unit() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("30x"));
    }
}

#[test]
fn bad_value_not_utf8() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::from_bytes(b"\xff\xfe30"));
    }
}

#[test]
fn bad_value_keepidle_above_kernel_maximum() {
    assert_ignored("KEEPIDLE", OsStr::new("40000"));
}

#[test]
fn bad_value_keepcnt_above_kernel_maximum() {
    assert_ignored("KEEPCNT", OsStr::new("128"));
}

#[test]
fn duration_units_are_accepted() {
    for (idle, interval, want) in [("3m", "90s", (180, 90)), ("1h", "2m", (3600, 120))] {
        let out = run_ok(
            configured(probe())
                .env("KEEPIDLE", idle)
                .env("KEEPINTVL", interval)
                .args(commands(&["socket inet stream 0"])),
        );
        let r = out.only("socket").keepalive();
        assert_eq!(
            (r.idle, r.interval),
            want,
            "KEEPIDLE={idle} KEEPINTVL={interval}\n{out}"
        );
        assert_eq!(out.stderr, "", "{out}");
    }
}

#[test]
fn user_timeout_in_milliseconds_or_with_unit() {
    for (value, want) in [("5000", 5000), ("30s", 30_000), ("1m", 60_000)] {
        let out = run_ok(
            configured(probe())
                .env("TCP_USER_TIMEOUT", value)
                .args(commands(&["socket inet stream 0"])),
        );
        let want = Keepalive {
            user_timeout: want,
            ..Keepalive::configured()
        };
        assert_eq!(
            out.only("socket").keepalive(),
            want,
            "TCP_USER_TIMEOUT={value}\n{out}"
        );
    }
}

#[test]
fn user_timeout_auto_is_idle_plus_interval_times_count() {
    let defaults = kernel_defaults();
    // KEEPCNT unset: auto uses the kernel's tcp_keepalive_probes.
    let out = run_ok(
        preloaded(probe())
            .env("KEEPIDLE", IDLE.to_string())
            .env("KEEPINTVL", INTERVAL.to_string())
            .env("TCP_USER_TIMEOUT", "auto")
            .args(commands(&["socket inet stream 0"])),
    );
    let want = Keepalive {
        on: 1,
        count: defaults.count,
        idle: IDLE,
        interval: INTERVAL,
        user_timeout: (IDLE + INTERVAL * defaults.count) * 1000,
    };
    assert_eq!(out.only("socket").keepalive(), want, "{out}");
}

#[test]
fn silent_without_debug() {
    let out = run_ok(
        configured(probe())
            .env("TCP_USER_TIMEOUT", "auto")
            .args(commands(&["socket inet stream 0", "socket inet6 stream 0"])),
    );
    assert_eq!(sockets(&out).len(), 2, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(out.stdout.lines().count(), 2, "unexpected output\n{out}");
}

/// Probe arguments for two TCP sockets and a UDP one.
const TWO_TCP_ONE_UDP: [&str; 3] = [
    "socket inet stream 0",
    "socket inet6 stream+cloexec tcp",
    "socket inet dgram 0",
];

/// Checks that `log` has one line per TCP socket of a [`TWO_TCP_ONE_UDP`]
/// run, each naming the process, the socket's fd and the options set.
fn assert_debug_lines(out: &Output, log: &str) {
    let tcp_fds: Vec<i64> = sockets(out)
        .iter()
        .filter(|r| r.get("keepcnt") >= 0)
        .map(|r| r.get("fd"))
        .collect();
    assert_eq!(tcp_fds.len(), 2, "{out}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "want one line per TCP socket, got:\n{log}\n{out}"
    );
    for (line, fd) in lines.iter().zip(tcp_fds) {
        let wanted = [
            format!("keepalive[{}]", out.pid),
            format!("= {fd}:"),
            "SO_KEEPALIVE=1".to_owned(),
            format!("TCP_KEEPCNT={COUNT}"),
            format!("TCP_KEEPIDLE={IDLE}"),
            format!("TCP_KEEPINTVL={INTERVAL}"),
        ];
        for part in wanted {
            assert!(line.contains(&part), "`{line}` lacks `{part}`\n{out}");
        }
    }
}

#[test]
fn debug_file_gets_one_line_per_tcp_socket() {
    let log = tempfile::NamedTempFile::new().expect("create the log file");
    let out = run_ok(
        configured(probe())
            .env("KEEPALIVE_DEBUG", log.path())
            .args(commands(&TWO_TCP_ONE_UDP)),
    );
    let text = std::fs::read_to_string(log.path()).expect("read the log");
    assert_debug_lines(&out, &text);
    assert_eq!(out.stderr, "", "the log went to a file, not stderr\n{out}");
}

#[test]
fn debug_on_stderr_gets_one_line_per_tcp_socket() {
    let out = run_ok(
        configured(probe())
            .env("KEEPALIVE_DEBUG", "1")
            .args(commands(&TWO_TCP_ONE_UDP)),
    );
    assert_debug_lines(&out, &out.stderr);
}

#[test]
fn debug_never_writes_into_a_socket() {
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut cmd = configured(probe());
    cmd.env("KEEPALIVE_DEBUG", "1")
        .args(commands(&TWO_TCP_ONE_UDP))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().expect("start the probe");
    // The command holds the child's end of the pair: drop it, so that the
    // read below ends when the child does.
    drop(cmd);
    let out = wait(child, TIMEOUT);
    out.assert_success();
    assert_eq!(
        sockets(&out)[0].keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    let mut written = String::new();
    ours.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ours.read_to_string(&mut written).expect("read the socket");
    assert_eq!(written, "", "the preload wrote into a socket stderr\n{out}");
}

/// Runs the probe with `LD_PRELOAD` set to `libs` (space-separated) and
/// checks that its TCP sockets got keepalive and TCP_NODELAY.
fn assert_chained(libs: &[&Path]) {
    let ld_preload = ld_preload(libs);
    let out = run_ok(
        configured(probe())
            .env("LD_PRELOAD", &ld_preload)
            .args(commands(&["socket inet stream 0", "socket inet6 stream 0"])),
    );
    let found = sockets(&out);
    assert_eq!(found.len(), 2, "{out}");
    for r in found {
        assert_eq!(
            r.keepalive(),
            Keepalive::configured(),
            "LD_PRELOAD={ld_preload:?}\n{out}"
        );
        assert_eq!(r.get("nodelay"), 1, "LD_PRELOAD={ld_preload:?}\n{out}");
    }
}

#[test]
fn chained_after_another_preload() {
    assert_chained(&[nodelay_lib(), preload()]);
}

#[test]
fn chained_before_another_preload() {
    assert_chained(&[preload(), nodelay_lib()]);
}

/// Runs the probe with `libctor.so` preloaded before, then after ours,
/// with `LD_DEBUG=files` (the loader's `calling init:` lines) and `env`.
/// Returns, per order, whether ctor's constructor ran before ours, the
/// line it printed, and the output.
fn ctor_runs(env: &[(&str, &str)]) -> Vec<(bool, Record, Output)> {
    let orders: [[&Path; 2]; 2] = [[ctor_lib(), preload()], [preload(), ctor_lib()]];
    orders
        .iter()
        .map(|libs| {
            let ld_preload = ld_preload(libs);
            let out = run_ok(
                preloaded(probe())
                    .env("LD_PRELOAD", &ld_preload)
                    .env("LD_DEBUG", "files")
                    .envs(env.iter().copied())
                    .args(commands(&["socket inet stream 0"])),
            );
            let inits: Vec<&str> = out
                .stderr
                .lines()
                .filter_map(|l| l.split_once("calling init: ").map(|(_, lib)| lib.trim()))
                .collect();
            let position = |lib: &Path| {
                inits
                    .iter()
                    .position(|i| Path::new(i) == lib)
                    .unwrap_or_else(|| panic!("no `calling init: {}`\n{out}", lib.display()))
            };
            let ctor_first = position(ctor_lib()) < position(preload());
            let ctor = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("ctor: "))
                .filter_map(Record::parse)
                .next()
                .unwrap_or_else(|| panic!("libctor.so printed nothing\n{out}"));
            (ctor_first, ctor, out)
        })
        .collect()
}

#[test]
fn socket_made_in_another_constructor_gets_keepalive() {
    let runs = ctor_runs(&SETTINGS);
    assert!(
        runs.iter().any(|(ctor_first, _, _)| *ctor_first),
        "the loader ran our constructor first in both orders, so no run had \
         a socket made before it ran"
    );
    for (_, ctor, out) in &runs {
        assert_eq!(
            (ctor.get("keepalive"), ctor.get("keepidle")),
            (1, IDLE),
            "{out}"
        );
        assert_eq!(
            out.only("socket").keepalive(),
            Keepalive::configured(),
            "{out}"
        );
    }
}

#[test]
fn bad_value_warned_once_when_another_constructor_calls_socket_first() {
    let runs = ctor_runs(&[("KEEPIDLE", "abc")]);
    for (_, ctor, out) in &runs {
        let warnings: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("keepalive:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{out}");
        assert!(
            warnings[0].starts_with("keepalive: ignoring KEEPIDLE="),
            "{out}"
        );
        assert_eq!(
            (ctor.get("keepalive"), ctor.get("keepidle")),
            (1, kernel_defaults().idle),
            "{out}"
        );
    }
}

/// Runs the probe as nobody, with a global preload (an /etc/ld.so.preload
/// in a private mount namespace: the host's /etc is never touched) and
/// `KEEPALIVE_DEBUG` naming a file in a directory anyone may write.
fn probe_as_nobody_with_global_preload(dir: &Path, exe: &Path, log: &Path) -> Output {
    let script = "mount --bind \"$1\" /etc && shift && exec \"$@\"";
    let mut cmd = bare("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"])
        .arg(dir.join("etc"))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(exe)
        .args(["socket", "inet", "stream", "tcp"])
        .envs(SETTINGS)
        .env("KEEPALIVE_DEBUG", log);
    run_ok(&mut cmd)
}

/// A setuid program reached through a global preload runs with the
/// unprivileged caller's environment: `KEEPALIVE_DEBUG` must not make it
/// create or append to a file as root. Keepalive itself still applies.
#[test]
fn setuid_program_ignores_keepalive_debug() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        skip!("a setuid program and a private mount namespace need root");
    }
    if tool("unshare").is_none() || tool("setpriv").is_none() {
        skip!("unshare and setpriv (util-linux) are needed");
    }
    let dir = target_tempdir("secure");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mode =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(dir.path(), 0o755);
    mode(&logs, 0o777);
    let lib = dir.path().join("libkeepalive.so");
    std::fs::copy(preload(), &lib).unwrap();
    mode(&lib, 0o644);
    let copied = run_ok(bare("cp").arg("-a").arg("/etc").arg(dir.path().join("etc")));
    drop(copied);
    std::fs::write(
        dir.path().join("etc/ld.so.preload"),
        format!("{}\n", lib.display()),
    )
    .unwrap();
    let plain = dir.path().join("probe");
    let suid = dir.path().join("suid-probe");
    std::fs::copy(probe(), &plain).unwrap();
    std::fs::copy(probe(), &suid).unwrap();
    mode(&plain, 0o755);
    mode(&suid, 0o4755);

    // The control: not setuid, the log is written (as nobody).
    let plain_log = logs.join("plain.log");
    let out = probe_as_nobody_with_global_preload(dir.path(), &plain, &plain_log);
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    assert!(plain_log.exists(), "the control wrote no log\n{out}");

    let suid_log = logs.join("suid.log");
    let out = probe_as_nobody_with_global_preload(dir.path(), &suid, &suid_log);
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    assert!(
        !suid_log.exists(),
        "a setuid program wrote the caller's KEEPALIVE_DEBUG file\n{out}"
    );
}
