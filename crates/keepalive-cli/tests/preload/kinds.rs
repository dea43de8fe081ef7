//! Which sockets get keepalive, with which system calls, and what errno
//! the program sees afterwards.

use super::*;

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
