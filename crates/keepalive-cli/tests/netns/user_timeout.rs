//! A peer that vanishes while data is unacknowledged: TCP_USER_TIMEOUT.

use super::client::start_all;
use super::topology::Topology;
use super::{BOUND, COUNT, IDLE, INTERVAL, RUN_1_1_3, TOLERANCE, options_1_1_3, settings};
use crate::util::skip;

/// Keepalive never fires while data is unacknowledged: the peer is
/// black-holed, then the client sends. With keepalive alone its blocking
/// recv() does not fail within idle + interval x count + 5 s; with
/// `TCP_USER_TIMEOUT=auto` (= idle + interval x count) it fails with
/// ETIMEDOUT within 1 s of that bound after the send.
#[test]
fn unacknowledged_data_needs_tcp_user_timeout() {
    let net = match Topology::new("unacknowledged_data", "unack", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let alone = BOUND + 5.0;
    let wait = format!("recv={alone}");
    let steps = ["go", "connect", "send", "recv=5", "go", "send", &wait];
    let with_timeout: Vec<&str> = RUN_1_1_3
        .iter()
        .copied()
        .chain(["--user-timeout", "auto"])
        .collect();
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut py_ut = net.python("python+keepalive+user-timeout", Some(&with_timeout), &steps);
    let lib_settings = |ut| Some(settings(IDLE, Some((INTERVAL, COUNT)), ut));
    let mut lib = net.library("library+keepalive", lib_settings(false), &steps);
    let mut lib_ut = net.library("library+keepalive+user-timeout", lib_settings(true), &steps);
    start_all(&mut [&mut py, &mut py_ut, &mut lib, &mut lib_ut]);
    net.cut();
    for c in [&mut py, &mut py_ut, &mut lib, &mut lib_ut] {
        c.go();
        c.expect("go", 2.0);
        c.expect("sent", 2.0);
    }
    for c in [&mut py_ut, &mut lib_ut] {
        c.assert_options(options_1_1_3(true));
        let error = c.expect("error", alone + 2.0);
        let took = error.num("since_send");
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after sending into the black hole (bound {BOUND} s)",
                error.get("errno")
            ),
        );
        assert_eq!(error.get("errno"), "ETIMEDOUT", "{}", c.name);
        assert!(
            (took - BOUND).abs() <= TOLERANCE,
            "{}: recv() failed {took:.3} s after the send, expected {BOUND} s +/- {TOLERANCE} s",
            c.name
        );
    }
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let quiet = c.expect("quiet", alone + 2.0);
        let waited = quiet.num("since_send");
        let seen = net.seen(c);
        net.measured(
            &c.name,
            format!(
                "no error {waited:.3} s after sending; ss counted {} retransmissions",
                seen.max_retransmits
            ),
        );
        assert!(
            waited >= alone - 0.1,
            "{}: quiet after only {waited:.3} s",
            c.name
        );
    }
    net.counter("ka4cut", "blackholed");
}
