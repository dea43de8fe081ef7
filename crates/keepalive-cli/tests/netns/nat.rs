//! HOWTO 2.4: a NAT that evicts idle connections.

use super::client::start_all;
use super::topology::Topology;
use super::{NAT_IDLE, NAT_KEEPIDLE, settings};
use crate::util::skip;

/// HOWTO 2.4: client -> NAT router (conntrack forgets established
/// connections after 5 s idle, `nf_conntrack_tcp_loose=0`, invalid packets
/// dropped) -> server. After 10 s idle, a client with keepalive idle and
/// interval 2 s gets its answer and nothing was dropped; the control's request is
/// dropped as invalid and never answered.
#[test]
fn nat_idle_eviction_is_prevented_by_keepalive() {
    let net = match Topology::new("nat_idle_eviction", "nat", true) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let idle = format!("recv={NAT_IDLE}");
    let steps = ["go", "connect", "send", "recv=5", &idle, "send", "recv=3"];
    // The control asks one second later, so that the counter read when the
    // keepalive clients got their answers holds their packets only.
    let plain_idle = format!("recv={}", NAT_IDLE + 1.0);
    let plain_steps = [
        "go",
        "connect",
        "send",
        "recv=5",
        &plain_idle,
        "send",
        "recv=3",
    ];
    let every = NAT_KEEPIDLE.to_string();
    let options = ["--idle", &every, "--interval", &every];
    let mut py = net.python("python+keepalive", Some(&options), &steps);
    let mut lib = net.library(
        "library+keepalive",
        Some(settings(NAT_KEEPIDLE, Some((NAT_KEEPIDLE, 9)), false)),
        &steps,
    );
    let mut plain = net.python("python, no keepalive", None, &plain_steps);
    start_all(&mut [&mut py, &mut lib, &mut plain]);
    for c in [&mut py, &mut lib] {
        let up = c.last("up");
        assert_eq!(
            (up.get("keepalive"), up.get("idle"), up.get("intvl")),
            ("1", every.as_str(), every.as_str()),
            "{}: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL",
            c.name
        );
        let quiet = c.expect("quiet", NAT_IDLE + 3.0);
        c.expect("sent", 2.0);
        let answer = c.expect("answer", 5.0);
        net.measured(
            &c.name,
            format!(
                "answered after {:.3} s idle behind the NAT, in {:.3} s",
                quiet.num("since_recv"),
                answer.num("since_send")
            ),
        );
    }
    net.conntrack();
    let dropped = net.counter("ka4nat", "invalid");
    assert_eq!(
        dropped, 0,
        "the router dropped packets of the keepalive connections as invalid"
    );
    plain.assert_options(None);
    plain.expect("quiet", NAT_IDLE + 4.0);
    plain.expect("sent", 2.0);
    let lost = plain.expect("quiet", 5.0);
    let dropped = net.counter("ka4nat", "invalid");
    net.measured(
        &plain.name,
        format!(
            "no answer {:.3} s after its request; the router dropped {dropped} packets as invalid",
            lost.num("since_send")
        ),
    );
    assert!(
        dropped > 0,
        "the control's request was not dropped as invalid: did conntrack keep the connection?"
    );
}
