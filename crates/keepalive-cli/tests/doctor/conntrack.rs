//! A client namespace whose own firewall keeps conntrack state and forgets
//! an established connection after 5 s idle (`nf_conntrack_tcp_loose=0`,
//! invalid packets dropped): doctor names the python3 clients without
//! keepalive and gives the command that fixes them; that command, run as
//! given, keeps the connection alive through 10 s of idleness while the
//! control's request is dropped.
//!
//! The namespaces, the server and the clients are the NAT test's
//! (tests/netns/), without the NAT: here the conntrack that forgets is the
//! client's own.

use super::{doctor, doctor_json, netns_tools};
use crate::netns::client::{Client, start_all};
use crate::netns::topology::Topology;
use crate::netns::{CONNTRACK_TIMEOUT, NAT_IDLE};
use crate::util::{TIMEOUT, bare, run, skip};

/// The client namespace's firewall: conntrack on what it sends and
/// receives, invalid packets (of a connection it forgot) dropped and
/// counted.
const FIREWALL: &str = "add table ip ka12fw; \
    add counter ip ka12fw invalid; \
    add chain ip ka12fw output { type filter hook output priority filter; policy accept; }; \
    add rule ip ka12fw output ct state invalid counter name \"invalid\" drop; \
    add chain ip ka12fw input { type filter hook input priority filter; policy accept; }; \
    add rule ip ka12fw input ct state invalid counter name \"invalid\" drop";

/// The packets the client namespace's firewall dropped as invalid.
fn dropped(net: &Topology) -> u64 {
    let text = net.nft(&net.ns("cli"), "list counter ip ka12fw invalid");
    let packets = text
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in `{text}`"));
    net.timeline.log(
        "firewall",
        format!("nft counter invalid: {packets} packets"),
    );
    packets
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn pid(client: &Client) -> u32 {
    client
        ._process
        .as_ref()
        .expect("a python client has a process")
        .0
        .id()
}

/// Issue 12's proof: doctor exits 1, names each python3 client without
/// keepalive (pid) and gives `keepalive attach --pid PID ...`; the same in
/// `--json`, with the timeout from conntrack (5 s). Running `fixes[0]` as
/// given on one client makes it survive 10 s idle through the firewall
/// (its request is answered, nothing dropped), while the control's request
/// is dropped as invalid and never answered; doctor then no longer reports
/// the fixed client.
#[test]
fn doctor_names_and_fixes_connections_a_conntrack_firewall_would_cut() {
    if let Err(why) = netns_tools() {
        skip!("{why}");
    }
    let net = match Topology::new("doctor_conntrack", "dct", false) {
        Ok(net) => net,
        Err(why) => skip!("{why}"),
    };
    let cli = net.ns("cli");
    // The rules first: they load nf_conntrack, whose sysctls then exist.
    net.nft(&cli, FIREWALL);
    net.sysctl(&cli, "net.netfilter.nf_conntrack_tcp_loose", "0");
    net.sysctl(
        &cli,
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        &CONNTRACK_TIMEOUT.to_string(),
    );
    net.timeline.log(
        "test",
        format!(
            "{cli}: its own firewall tracks connections (forgotten after {CONNTRACK_TIMEOUT} s \
             idle, nf_conntrack_tcp_loose=0) and drops invalid packets"
        ),
    );

    // Connect and be answered; wait for the go-ahead (doctor and the fix
    // run meanwhile); ask again (both start idle together); stay idle 10 s
    // (the control 11 s, so that the counter read after the fixed client's
    // answer holds its packets only); ask; then wait, holding the
    // connection, for doctor's second look.
    let idle = format!("recv={NAT_IDLE}");
    let control_idle = format!("recv={}", NAT_IDLE + 1.0);
    let steps = |idle: &str| -> Vec<String> {
        [
            "go", "connect", "send", "recv=5", "go", "send", "recv=5", idle, "send", "recv=3", "go",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let (fixed_steps, control_steps) = (steps(&idle), steps(&control_idle));
    let mut fixed = net.python(
        "python, fixed by doctor's command",
        None,
        &refs(&fixed_steps),
    );
    let mut control = net.python("python, control", None, &refs(&control_steps));
    start_all(&mut [&mut fixed, &mut control]);
    fixed.assert_options(None);
    control.assert_options(None);
    let (fixed_pid, control_pid) = (pid(&fixed), pid(&control));

    // Text: exit 1, the process named, and the command.
    let text = doctor(&["--netns", &cli]);
    net.timeline
        .log("doctor", format!("text output:\n{}", text.stdout));
    assert_eq!(text.status.code(), Some(1), "{text}");
    assert!(
        text.stdout.contains("idle timeout: 5s"),
        "the timeout from conntrack\n{text}"
    );
    for pid in [fixed_pid, control_pid] {
        let named = text
            .stdout
            .lines()
            .any(|l| l.contains(&format!("pid {pid}")) && l.contains("python3"));
        assert!(named, "pid {pid} (python3) not named\n{text}");
        let fix = format!("fix: keepalive attach --pid {pid} ");
        assert!(
            text.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&fix)),
            "no `{fix}...` line\n{text}"
        );
    }

    // JSON: the same, decoded.
    let (findings, summary, out) = doctor_json(&["--netns", &cli]);
    assert!(summary.at_risk, "{out}");
    assert_eq!(
        (
            summary.idle_timeout_secs,
            summary.timeout_source.as_deref(),
            summary.netns.name.as_deref(),
            summary.connections,
            summary.options_read,
        ),
        (
            Some(CONNTRACK_TIMEOUT),
            Some("conntrack"),
            Some(cli.as_str()),
            2,
            true
        ),
        "{out}"
    );
    let no_keepalive = |findings: &[crate::util::json::Finding], pid: u32| {
        findings
            .iter()
            .find(|f| f.kind == "no_keepalive" && f.pid == Some(pid))
            .cloned()
    };
    let finding = no_keepalive(&findings, fixed_pid)
        .unwrap_or_else(|| panic!("no no_keepalive for pid {fixed_pid}\n{out}"));
    assert_eq!(
        (
            finding.severity.as_str(),
            finding.command.as_deref(),
            finding.connections
        ),
        ("critical", Some("python3"), Some(1)),
        "{finding:?}"
    );
    assert!(
        no_keepalive(&findings, control_pid).is_some(),
        "no no_keepalive for the control, pid {control_pid}\n{out}"
    );
    let fix = finding.fixes.first().expect("a fix").clone();
    assert!(
        fix.starts_with(&format!("keepalive attach --pid {fixed_pid} ")),
        "{fix}"
    );
    assert!(
        text.stdout.contains(&format!("fix: {fix}\n")),
        "text and JSON give the same command `{fix}`\n{text}"
    );

    // Run the command as given, with this build's keepalive.
    let words: Vec<&str> = fix.split_whitespace().collect();
    assert_eq!(words[0], "keepalive");
    let attached = run(
        bare(env!("CARGO_BIN_EXE_keepalive")).args(&words[1..]),
        TIMEOUT,
    );
    net.timeline
        .log("test", format!("ran `{fix}`: {}", attached.status));
    attached.assert_success();

    // Both ask again and go idle together.
    for c in [&mut fixed, &mut control] {
        c.go();
        for kind in ["go", "sent", "answer"] {
            c.expect(kind, 5.0);
        }
    }
    let quiet = fixed.expect("quiet", NAT_IDLE + 3.0);
    fixed.expect("sent", 2.0);
    let answer = fixed.expect("answer", 5.0);
    net.measured(
        &fixed.name,
        format!(
            "after `{fix}`: answered after {:.3} s idle behind its own conntrack, in {:.3} s",
            quiet.num("since_recv"),
            answer.num("since_send")
        ),
    );
    assert_eq!(
        dropped(&net),
        0,
        "the firewall dropped packets of the fixed connection as invalid"
    );
    control.expect("quiet", NAT_IDLE + 4.0);
    control.expect("sent", 2.0);
    let lost = control.expect("quiet", 5.0);
    let n = dropped(&net);
    net.measured(
        &control.name,
        format!(
            "no answer {:.3} s after its request; the firewall dropped {n} packets as invalid",
            lost.num("since_send")
        ),
    );
    assert!(n > 0, "the control's request was not dropped as invalid");
    assert!(
        net.seen(&fixed).keepalive_timer,
        "ss showed no keepalive timer on the fixed connection"
    );
    assert!(
        !net.seen(&control).keepalive_timer,
        "ss showed a keepalive timer on the control"
    );

    // Doctor again: nothing about the fixed client, still the control.
    let (findings, _, out) = doctor_json(&["--netns", &cli]);
    assert!(
        findings.iter().all(|f| f.pid != Some(fixed_pid)),
        "a finding about the fixed client, pid {fixed_pid}\n{out}"
    );
    assert!(
        no_keepalive(&findings, control_pid).is_some(),
        "the control, pid {control_pid}, is still without keepalive\n{out}"
    );
    // Both still hold their connection until here.
    for c in [&mut fixed, &mut control] {
        c.go();
        c.expect("go", 5.0);
    }
}
