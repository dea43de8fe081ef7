//! HOWTO 2.3: a peer that rebooted.

use super::client::start_all;
use super::topology::Topology;
use super::{BOUND, COUNT, IDLE, INTERVAL, RUN_1_1_3, TOLERANCE, options_1_1_3, settings};
use crate::util::skip;

/// HOWTO 2.3, the diagram: the server reboots (its namespace destroyed and
/// made again, same address, no listener). With keepalive the client's
/// blocking recv() fails with ECONNRESET (the probe is answered with a
/// reset) without it sending anything; without keepalive it stays blind
/// until it sends.
#[test]
fn peer_reboot_is_learned_by_the_probe_without_sending() {
    let mut net = match Topology::new("peer_reboot", "boot", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let window = 3.0 * BOUND;
    let wait = format!("recv={window}");
    let steps = ["go", "connect", "send", "recv=5", &wait];
    let plain_steps = ["go", "connect", "send", "recv=5", &wait, "send", "recv=5"];
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(IDLE, Some((INTERVAL, COUNT)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &plain_steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    net.reboot_server();
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let error = c.expect("error", window + 2.0);
        let took = error.num("since_recv");
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after the last answer, nothing sent since (bound {BOUND} s)",
                error.get("errno")
            ),
        );
        assert_eq!(error.get("errno"), "ECONNRESET", "{}", c.name);
        assert!(
            took <= BOUND,
            "{}: the reset came {took:.3} s after the last answer, later than {BOUND} s",
            c.name
        );
        assert!(
            error.num("since_send") > took,
            "{}: it sent something after its last answer",
            c.name
        );
    }
    plain.assert_options(None);
    let quiet = plain.expect("quiet", window + 2.0);
    assert!(
        quiet.num("since_recv") >= window - 0.1,
        "{}: quiet too early",
        plain.name
    );
    plain.expect("sent", 2.0);
    let error = plain.expect("error", 5.0);
    let after_send = error.num("since_send");
    net.measured(
        &plain.name,
        format!(
            "no error for {:.3} s; {} {after_send:.3} s after it sent",
            quiet.num("since_recv"),
            error.get("errno")
        ),
    );
    assert_eq!(error.get("errno"), "ECONNRESET", "{}", plain.name);
    assert!(after_send < TOLERANCE, "{}: {after_send:.3} s", plain.name);
}
