//! HOWTO 2.3: a dead peer.

use super::client::start_all;
use super::topology::Topology;
use super::{BOUND, COUNT, IDLE, INTERVAL, RUN_1_1_3, TOLERANCE, options_1_1_3, settings};
use crate::util::skip;

/// HOWTO 2.3: a peer that dies without a word. After the last answer the
/// path is black-holed both ways; a blocking recv() fails with ETIMEDOUT
/// idle + interval x count after that answer (the last acknowledged
/// packet), and without keepalive nothing happens in three times as long.
#[test]
fn dead_peer_is_detected_after_idle_plus_interval_times_count() {
    let net = match Topology::new("dead_peer", "dead", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let window = 3.0 * BOUND;
    let wait = format!("recv={window}");
    let steps = ["go", "connect", "send", "recv=5", &wait];
    let mut py = net.python("python+keepalive", Some(&RUN_1_1_3), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(IDLE, Some((INTERVAL, COUNT)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    let cut = net.cut();
    for c in [&mut py, &mut lib] {
        c.assert_options(options_1_1_3(false));
        let late = cut - c.last("answer").t;
        assert!(
            late < IDLE as f64,
            "{}: the path was cut {late:.3} s after the last answer, after the first probe \
             was due: the detection time would not count from the last acknowledged packet",
            c.name
        );
        let error = c.expect("error", window + 2.0);
        let took = error.num("since_recv");
        let seen = net.seen(c);
        net.measured(
            &c.name,
            format!(
                "{} {took:.3} s after the last answer (bound {BOUND} s); ss counted {} \
                 unanswered probes",
                error.get("errno"),
                seen.max_probes
            ),
        );
        assert_eq!(error.get("errno"), "ETIMEDOUT", "{}", c.name);
        assert!(
            (took - BOUND).abs() <= TOLERANCE,
            "{}: recv() failed {took:.3} s after the last answer, expected {BOUND} s +/- {TOLERANCE} s",
            c.name
        );
        assert!(
            seen.keepalive_timer && seen.max_probes >= 1,
            "{}: ss never showed an unanswered keepalive probe: {seen:?}",
            c.name
        );
    }
    plain.assert_options(None);
    let quiet = plain.expect("quiet", window + 2.0);
    let idle = quiet.num("since_recv");
    net.measured(
        &plain.name,
        format!("no error in {idle:.3} s after the last answer"),
    );
    assert!(
        idle >= window - 0.1,
        "{}: quiet after only {idle:.3} s",
        plain.name
    );
    assert!(
        !net.seen(&plain).keepalive_timer,
        "the control had a keepalive timer"
    );
    net.counter("ka4cut", "blackholed");
}
