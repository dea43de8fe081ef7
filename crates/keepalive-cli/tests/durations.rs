//! Compound and long durations (`1h30m`, `90sec`, `2min`, `1h 30min`), in
//! flags and in the preload's variables, judged by what getsockopt reports
//! in the program that made the socket.

use std::process::Command;

use crate::util::json::{CheckedSocket, Message, only_message};
use crate::util::{Output, TIMEOUT, bare, preload, preloaded, python3, run, skip};

/// `keepalive` with the test's library and none of the preload's variables.
fn keepalive() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_keepalive"));
    cmd.env("KEEPALIVE_LIBRARY", preload());
    cmd
}

fn checked(out: &Output) -> CheckedSocket {
    out.assert_success();
    match only_message(out) {
        Message::Socket(s) => s,
        other => panic!("not a socket line: {other:?}\n{out}"),
    }
}

#[test]
fn run_flags_take_compound_and_long_durations() {
    for (idle, interval, want) in [
        ("1h30m", "90sec", (5400, 90)),
        ("1h 30min", "2min", (5400, 120)),
        ("2hours", "1m30s", (7200, 90)),
    ] {
        let out = run(
            keepalive()
                .args([
                    "run",
                    "--idle",
                    idle,
                    "--interval",
                    interval,
                    "--count",
                    "5",
                ])
                .args(["--", env!("CARGO_BIN_EXE_keepalive"), "check", "--json"]),
            TIMEOUT,
        );
        let s = checked(&out);
        assert_eq!(
            (s.keepalive, s.idle, s.interval, s.count),
            (true, want.0, want.1, 5),
            "--idle {idle:?} --interval {interval:?}\n{out}"
        );
        assert_eq!(out.stderr, "", "{out}");
    }
}

#[test]
fn preload_variables_take_long_units() {
    // keepalive check under LD_PRELOAD: the preload reads KEEPIDLE itself.
    let out = run(
        preloaded(env!("CARGO_BIN_EXE_keepalive"))
            .env("KEEPIDLE", "2min")
            .env("KEEPINTVL", "1m 30sec")
            .args(["check", "--json"]),
        TIMEOUT,
    );
    let s = checked(&out);
    assert_eq!((s.keepalive, s.idle, s.interval), (true, 120, 90), "{out}");
    assert_eq!(out.stderr, "", "no warning\n{out}");
}

#[test]
fn a_python3_socket_gets_a_long_unit_from_the_environment() {
    let Some(python) = python3() else {
        skip!("python3 is not installed")
    };
    let script = "import socket\n\
                  s = socket.socket()\n\
                  print(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),\n\
                  s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))\n";
    let out = run(
        preloaded(python)
            .env("KEEPIDLE", "2min")
            .args(["-c", script]),
        TIMEOUT,
    );
    out.assert_success();
    assert_eq!(out.stdout, "1 120\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}
