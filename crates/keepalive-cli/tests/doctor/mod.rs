//! Issue 12: `keepalive doctor`. Its exit status and `--json` decoded into
//! the tests' own types; in network namespaces, a firewall whose conntrack
//! forgets idle connections (conntrack.rs), and namespaces with nothing at
//! risk. Namespace tests need root, ip, nft and python3, and skip with a
//! message otherwise.

mod conntrack;

use crate::util::json::{DoctorSummary, Finding, Message, messages};
use crate::util::{Holder, Netns, Output, TIMEOUT, bare, is_root, python3, run, skip, tool};

/// `keepalive doctor ARGS`, bounded by [`TIMEOUT`].
fn doctor(args: &[&str]) -> Output {
    run(
        bare(env!("CARGO_BIN_EXE_keepalive"))
            .arg("doctor")
            .args(args),
        TIMEOUT,
    )
}

/// `keepalive doctor --json ARGS`: the findings and the summary (the last
/// line, the only `doctor_summary`); panics, showing the output, on a line
/// that does not decode or an exit status other than 0 or 1.
fn doctor_json(args: &[&str]) -> (Vec<Finding>, DoctorSummary, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = doctor(&all);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "doctor --json must exit 0 or 1\n{out}"
    );
    let mut findings = Vec::new();
    let mut summary = None;
    let msgs = messages(&out);
    let n = msgs.len();
    for (i, msg) in msgs.into_iter().enumerate() {
        match msg {
            Message::Finding(f) => findings.push(f),
            Message::DoctorSummary(s) if i + 1 == n => summary = Some(s),
            other => panic!("unexpected line {other:?}\n{out}"),
        }
    }
    let summary = summary.unwrap_or_else(|| panic!("no doctor_summary last\n{out}"));
    assert_eq!(
        code == Some(1),
        summary.at_risk,
        "the exit status must say at_risk\n{out}"
    );
    (findings, summary, out)
}

/// The namespace tests' tools; `Err(why)` when one is missing.
fn netns_tools() -> Result<(), String> {
    if !is_root() {
        return Err("doctor in network namespaces needs root".to_owned());
    }
    for (name, package) in [("ip", "iproute2"), ("ss", "iproute2"), ("nft", "nftables")] {
        if tool(name).is_none() {
            return Err(format!(
                "{name} is not installed (apt-get install {package})"
            ));
        }
    }
    if python3().is_none() {
        return Err("python3 is not installed".to_owned());
    }
    Ok(())
}

/// A fresh namespace (no connections) has nothing at risk: exit 0,
/// `at_risk: false`, no warning or critical finding, in text too.
#[test]
fn doctor_finds_nothing_at_risk_in_a_fresh_namespace() {
    if let Err(why) = netns_tools() {
        skip!("{why}");
    }
    let ns = Netns::new("doctor-fresh").unwrap_or_else(|e| panic!("{e}"));
    let (findings, summary, out) = doctor_json(&["--netns", ns.name()]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert!(!summary.at_risk, "{out}");
    assert_eq!(summary.netns.name.as_deref(), Some(ns.name()), "{out}");
    assert!(!summary.netns.current, "{out}");
    assert_eq!(
        (summary.connections, summary.critical, summary.warning),
        (0, 0, 0),
        "{out}"
    );
    assert!(
        findings.iter().all(|f| f.severity == "info"),
        "only information in a fresh namespace\n{out}"
    );
    let text = doctor(&["--netns", ns.name()]);
    assert_eq!(text.status.code(), Some(0), "{text}");
    assert!(
        text.stdout.trim_end().ends_with("nothing at risk"),
        "{text}"
    );
}

/// Connections whose keepalive (idle 2 s, interval 1 s) beats a 5 s idle
/// timeout, in a namespace whose kernel defaults beat it too: exit 0,
/// `at_risk: false`, and an `all_covered` finding for both ends.
#[test]
fn doctor_finds_nothing_at_risk_when_keepalive_beats_the_timeout() {
    if let Err(why) = netns_tools() {
        skip!("{why}");
    }
    let ns = Netns::new("doctor-covered").unwrap_or_else(|e| panic!("{e}"));
    ns.sysctl("net.ipv4.tcp_keepalive_time", "2");
    ns.sysctl("net.ipv4.tcp_keepalive_intvl", "1");
    let holder = Holder::spawn(ns.name(), "on,2,1", &["on,2,1"]);
    let (findings, summary, out) = doctor_json(&["--netns", ns.name(), "--idle-timeout", "5s"]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert!(!summary.at_risk, "{out}");
    assert_eq!(
        (
            summary.idle_timeout_secs,
            summary.timeout_source.as_deref(),
            summary.connections,
            summary.options_read,
            summary.critical,
            summary.warning,
        ),
        (Some(5), Some("given"), 2, true, 0, 0),
        "{out}"
    );
    let covered: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == "all_covered")
        .collect();
    assert_eq!(covered.len(), 1, "{out}");
    assert_eq!(covered[0].connections, Some(2), "{out}");
    assert!(
        findings.iter().all(|f| f.pid != Some(holder.pid)),
        "no finding about the holder (pid {})\n{out}",
        holder.pid
    );
}

/// `--behind aws-nlb` judges by the AWS NLB's 350 s, whatever conntrack
/// says; in a fresh namespace, so that the host's connections do not count.
#[test]
fn doctor_behind_a_preset_uses_its_timeout() {
    let ns = match Netns::new("doctor-behind") {
        Ok(ns) => Some(ns),
        Err(why) => {
            eprintln!("in this namespace: {why}");
            None
        }
    };
    let mut args = vec!["--behind", "aws-nlb"];
    if let Some(ns) = &ns {
        args.extend(["--netns", ns.name()]);
    }
    let (_, summary, out) = doctor_json(&args);
    assert_eq!(
        (summary.idle_timeout_secs, summary.timeout_source.as_deref()),
        (Some(350), Some("aws-nlb")),
        "{out}"
    );
    let (_, summary, out) = doctor_json(&["--idle-timeout", "4m", "--netns", "/proc/self/ns/net"]);
    assert_eq!(
        (summary.idle_timeout_secs, summary.timeout_source.as_deref()),
        (Some(240), Some("given")),
        "{out}"
    );
}

/// An unknown `--behind` exits 2 with one line naming every known preset.
#[test]
fn doctor_behind_an_unknown_name_is_an_error_naming_the_presets() {
    let out = doctor(&["--behind", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line\n{out}");
    assert!(lines[0].contains("nosuch"), "{out}");
    for preset in keepalive::host::PRESETS {
        assert!(
            lines[0].contains(preset.name),
            "the error should name {}\n{out}",
            preset.name
        );
    }
}

/// `--idle-timeout` and `--behind` together are a usage error.
#[test]
fn doctor_idle_timeout_and_behind_conflict() {
    let out = doctor(&["--idle-timeout", "5s", "--behind", "aws-nlb"]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains("--idle-timeout") && out.stderr.contains("--behind"),
        "{out}"
    );
    let out = doctor(&["--idle-timeout", "0"]);
    assert_eq!(out.status.code(), Some(2), "zero is no timeout\n{out}");
}
