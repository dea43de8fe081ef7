//! `keepalive doctor`: what will cut idle connections in a network
//! namespace, what the connections will do, what is in place, and the
//! command that fixes each finding. The facts come from keepalive-diag
//! (the survey) and keepalive::host; the judgement from
//! `keepalive_diag::assess`; this module words it.
//!
//! `--json` prints one `finding` message per finding, then a
//! `doctor_summary` (see [`crate::json`]).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use keepalive::KernelDefaults;
use keepalive::host::{self, NetNs};
use keepalive_diag::{
    Finding, FindingKind, Fix, Group, IdleTimeout, Inputs, PROC, Severity, StateSet, Survey,
    SurveyOptions, TimeoutSource,
};

use crate::cli::{DoctorArgs, TimeoutArgs};
use crate::exit::Exit;
use crate::human;
use crate::in_place::InPlaceState;
use crate::json::{self, DoctorSummary, FindingJson, Message};

/// The idle timeout, as doctor and metrics use it.
pub type Timeout = IdleTimeout;

pub fn doctor(args: &DoctorArgs) -> anyhow::Result<Exit> {
    let given = given_timeout(&args.timeout)?;
    let ns = match &args.netns {
        Some(spec) => NetNs::open(spec)?,
        None => NetNs::current()?,
    };
    let facts = ns
        .run(|| -> anyhow::Result<Facts> {
            Ok(Facts {
                survey: keepalive_diag::survey(
                    Path::new(PROC),
                    &SurveyOptions {
                        states: StateSet::ESTABLISHED,
                        read_options: true,
                    },
                )
                .context("cannot list the TCP connections")?,
                defaults: keepalive::kernel_defaults()
                    .context("cannot read the kernel defaults")?,
                host_timeout: host_timeout(),
                retransmission: host::retransmission().ok().map(|r| r.give_up_after),
            })
        })?
        .with_context(|| format!("in network namespace {ns}"))?;
    let timeout = given.or(facts.host_timeout.clone());
    let host = InPlaceState::read();
    let findings = keepalive_diag::assess_with(
        &Inputs {
            connections: &facts.survey.connections,
            defaults: facts.defaults,
            timeout: timeout.as_ref(),
            retransmission_timeout: facts.retransmission,
        },
        &host.in_place(),
    );
    let at_risk = keepalive_diag::at_risk(&findings);

    let mut out = std::io::stdout().lock();
    if args.json {
        for f in &findings {
            json::write(&mut out, &Message::Finding(finding_json(f)))?;
        }
        json::write(
            &mut out,
            &Message::DoctorSummary(DoctorSummary {
                netns: (&ns).into(),
                idle_timeout_secs: timeout.as_ref().map(|t| t.timeout.as_secs()),
                timeout_source: timeout.as_ref().map(source_label),
                connections: facts.survey.connections.len() as u64,
                options_read: facts.survey.options_read,
                at_risk,
                critical: count(&findings, Severity::Critical),
                warning: count(&findings, Severity::Warning),
                info: count(&findings, Severity::Info),
            }),
        )?;
    } else {
        out.write_all(header(&ns, &facts, timeout.as_ref(), &host).as_bytes())?;
        for f in &findings {
            out.write_all(finding_text(f).as_bytes())?;
        }
        writeln!(out, "{}", summary_text(&findings))?;
    }
    out.flush()?;
    Ok(if at_risk {
        Exit::Problem
    } else {
        Exit::Success
    })
}

/// What one namespace shows doctor.
struct Facts {
    survey: Survey,
    defaults: KernelDefaults,
    host_timeout: Option<Timeout>,
    retransmission: Option<Duration>,
}

/// The timeout the user gave: `--idle-timeout`, or `--behind NAME`.
pub fn given_timeout(args: &TimeoutArgs) -> anyhow::Result<Option<Timeout>> {
    if let Some(timeout) = args.idle_timeout {
        return Ok(Some(IdleTimeout {
            timeout,
            source: TimeoutSource::Given,
        }));
    }
    let Some(name) = &args.behind else {
        return Ok(None);
    };
    match host::preset(name) {
        Some(p) => Ok(Some(IdleTimeout {
            timeout: p.timeout,
            source: TimeoutSource::Preset(p.name.to_owned()),
        })),
        None => {
            let names: Vec<&str> = host::PRESETS.iter().map(|p| p.name).collect();
            bail!(
                "--behind {name}: unknown; known are {} (or give --idle-timeout)",
                names.join(", ")
            )
        }
    }
}

/// What cuts idle connections in the calling thread's namespace: the
/// smaller of the conntrack established timeout and the IPVS TCP timeout,
/// of those that are loaded.
pub fn host_timeout() -> Option<Timeout> {
    let conntrack = host::conntrack_established_timeout()
        .ok()
        .flatten()
        .map(|timeout| IdleTimeout {
            timeout,
            source: TimeoutSource::Conntrack,
        });
    let ipvs = host::ipvs_timeouts().ok().flatten().map(|t| IdleTimeout {
        timeout: t.tcp,
        source: TimeoutSource::Ipvs,
    });
    [conntrack, ipvs]
        .into_iter()
        .flatten()
        .min_by_key(|t| t.timeout)
}

/// `conntrack`, `ipvs`, `given`, `aws-nlb`.
pub fn source_label(t: &Timeout) -> String {
    match &t.source {
        TimeoutSource::Conntrack => "conntrack".to_owned(),
        TimeoutSource::Ipvs => "ipvs".to_owned(),
        TimeoutSource::Given => "given".to_owned(),
        TimeoutSource::Preset(name) => name.clone(),
    }
}

/// Where a timeout comes from, in words.
fn source_text(t: &Timeout) -> String {
    match &t.source {
        TimeoutSource::Conntrack => {
            "this namespace's conntrack (nf_conntrack_tcp_timeout_established)".to_owned()
        }
        TimeoutSource::Ipvs => "IPVS (kube-proxy), its TCP timeout".to_owned(),
        TimeoutSource::Given => "--idle-timeout".to_owned(),
        TimeoutSource::Preset(name) => match host::preset(name) {
            Some(p) => format!("--behind {name}: {}", p.what),
            None => format!("--behind {name}"),
        },
    }
}

/// Who cuts the connections, in a sentence's words.
fn cutter(t: &Timeout) -> &'static str {
    match &t.source {
        TimeoutSource::Conntrack => "this host's firewall (conntrack)",
        TimeoutSource::Ipvs => "IPVS",
        TimeoutSource::Given => "the device in front of this host",
        TimeoutSource::Preset(_) => "the load balancer or NAT",
    }
}

fn header(ns: &NetNs, facts: &Facts, timeout: Option<&Timeout>, host: &InPlaceState) -> String {
    let d = facts.defaults;
    let mut s = format!("network namespace: {ns}\n");
    s += &match timeout {
        Some(t) => format!(
            "idle timeout: {} ({})\n",
            human::duration(t.timeout),
            source_text(t)
        ),
        None => "idle timeout: none known (no conntrack or IPVS here; give --idle-timeout \
                 or --behind NAME)\n"
            .to_owned(),
    };
    s += &format!(
        "kernel defaults: idle {}, interval {}, count {}\n",
        human::secs(d.idle),
        human::secs(d.interval),
        d.count
    );
    s += &host.text();
    s += &format!(
        "connections: {} established{}\n\n",
        facts.survey.connections.len(),
        if facts.survey.options_read {
            ""
        } else {
            " (their options not read: run as root to read them)"
        }
    );
    s
}

/// `nginx.service (pid 4242, nginx)` or `pid 4242 (python3)`.
fn who(g: &Group) -> String {
    match &g.unit {
        Some(unit) => format!("{unit} (pid {}, {})", g.pid, g.command),
        None => format!("pid {} ({})", g.pid, g.command),
    }
}

/// `has` or `have`, after a count of connections.
fn has(n: usize) -> &'static str {
    if n == 1 { "has" } else { "have" }
}

fn plural_connections(n: usize) -> String {
    human::plural(n as u64, "connection", "connections")
}

/// The finding's one sentence.
fn sentence(kind: &FindingKind) -> String {
    match kind {
        FindingKind::NoKeepalive {
            group,
            connections,
            oldest_idle,
            timeout,
        } => {
            let oldest = match oldest_idle {
                Some(d) if d.as_secs() > 0 => {
                    format!(" (the oldest idle for {})", human::secs(d.as_secs()))
                }
                _ => String::new(),
            };
            match timeout {
                Some(t) => format!(
                    "{} of {} {} no keepalive{oldest}; idle longer than {} {} dropped \
                     by {} without notice.",
                    plural_connections(*connections),
                    who(group),
                    has(*connections),
                    human::duration(t.timeout),
                    if *connections == 1 {
                        "it is"
                    } else {
                        "they are"
                    },
                    cutter(t),
                ),
                None => format!(
                    "{} of {} {} no keepalive{oldest}; a peer that vanishes is never noticed.",
                    plural_connections(*connections),
                    who(group),
                    has(*connections),
                ),
            }
        }
        FindingKind::TooSlow {
            group,
            connections,
            idle,
            interval,
            timeout,
        } => format!(
            "{} of {} {} keepalive, but with idle {} and interval {} the probes come after \
             {} has forgotten them ({}).",
            plural_connections(*connections),
            who(group),
            has(*connections),
            human::duration(*idle),
            human::duration(*interval),
            cutter(timeout),
            human::duration(timeout.timeout),
        ),
        FindingKind::Unknown { group, connections } => format!(
            "{} of {}: keepalive unknown (another timer pending, or no right to read their \
             options: run as root).",
            plural_connections(*connections),
            who(group),
        ),
        FindingKind::DefaultsTooSlow {
            idle,
            interval,
            timeout,
        } => format!(
            "The kernel defaults (idle {}, interval {}) probe later than the {} after which {} \
             forgets a connection: a program that switches keepalive on without values of its \
             own is not kept alive.",
            human::duration(*idle),
            human::duration(*interval),
            human::duration(timeout.timeout),
            cutter(timeout),
        ),
        FindingKind::UnacknowledgedData { after, connections } => format!(
            "With data unacknowledged keepalive never fires: a peer that vanishes then is \
             given up on only after {} (tcp_retries2){}.",
            human::duration(*after),
            if *connections > 0 {
                format!(
                    "; {} have no TCP_USER_TIMEOUT",
                    plural_connections(*connections)
                )
            } else {
                String::new()
            }
        ),
        FindingKind::PreloadBroken { entry, present } => format!(
            "/etc/ld.so.preload names {}, which {}: every program started prints an ld.so \
             error and runs without keepalive.",
            entry.display(),
            if *present {
                "does not load"
            } else {
                "does not exist"
            }
        ),
        FindingKind::EnforcementDetached { cgroup } => format!(
            "The enforcement made for {cgroup} is not attached any more (its cgroup was \
             removed or restarted): its connections get nothing from it, and its pins are \
             left over."
        ),
        FindingKind::SysctlOverridden { key, ours, winner } => format!(
            "{}:{} sets {key} = {}, which is applied after {} ({}) at boot and overrides it.",
            winner.0.display(),
            winner.1,
            winner.2,
            ours.0.display(),
            ours.1
        ),
        FindingKind::AllCovered {
            connections,
            timeout,
        } => match timeout {
            Some(t) => format!(
                "All {} keep alive through the idle timeout of {}.",
                plural_connections(*connections),
                human::duration(t.timeout)
            ),
            None => format!(
                "All {} have keepalive; no idle timeout is known to judge them by.",
                plural_connections(*connections)
            ),
        },
    }
}

/// The exact command for a fix.
fn command(fix: &Fix) -> String {
    let values = |v: &keepalive_diag::Recommended| {
        format!(
            "--idle {} --interval {}",
            human::duration(v.idle),
            human::duration(v.interval)
        )
    };
    match fix {
        Fix::Attach { pid, values: v } => format!("keepalive attach --pid {pid} {}", values(v)),
        // Idle and interval at most half the timeout, whatever the
        // programs set, on the connections that exist and the new ones; a
        // service's enforcement follows its restarts.
        Fix::Enforce {
            unit,
            cgroup,
            values: v,
        } => {
            let max_idle = human::duration(v.idle);
            match unit {
                Some(unit) if unit.ends_with(".service") => format!(
                    "keepalive enforce --unit {unit} --max-idle {max_idle} --existing --persist"
                ),
                _ => format!(
                    "keepalive enforce --cgroup {} --max-idle {max_idle} --existing",
                    cgroup.trim_start_matches('/')
                ),
            }
        }
        Fix::Sysctl { values: v } => {
            format!("keepalive sysctl set {} --persist", values(v))
        }
        Fix::UserTimeout => {
            "add --user-timeout auto to keepalive attach, run or enforce".to_owned()
        }
        Fix::Reinstall => "keepalive install --global".to_owned(),
        Fix::RemoveEnforcement { cgroup } => {
            format!("keepalive enforce --cgroup {cgroup} --remove")
        }
        Fix::RemoveLine { file, line } => format!("sed -i '{line}d' {}", file.display()),
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn finding_text(f: &Finding) -> String {
    let mut s = format!(
        "{:<9} {}\n",
        severity_name(f.severity).to_uppercase(),
        sentence(&f.kind)
    );
    for (i, fix) in f.fixes.iter().enumerate() {
        let what = match (i, fix) {
            (_, Fix::Enforce { .. }) => "for good",
            (0, _) => "fix",
            _ => "also",
        };
        s += &format!("          {what}: {}\n", command(fix));
    }
    s
}

fn count(findings: &[Finding], severity: Severity) -> u64 {
    findings.iter().filter(|f| f.severity == severity).count() as u64
}

fn summary_text(findings: &[Finding]) -> String {
    let critical = count(findings, Severity::Critical);
    let warning = count(findings, Severity::Warning);
    if critical + warning == 0 {
        "\nnothing at risk".to_owned()
    } else {
        format!(
            "\nat risk: {critical} critical, {warning} {}",
            if warning == 1 { "warning" } else { "warnings" }
        )
    }
}

fn finding_json(f: &Finding) -> FindingJson {
    let group = match &f.kind {
        FindingKind::NoKeepalive { group, .. }
        | FindingKind::TooSlow { group, .. }
        | FindingKind::Unknown { group, .. } => Some(group),
        _ => None,
    };
    let connections = match &f.kind {
        FindingKind::NoKeepalive { connections, .. }
        | FindingKind::TooSlow { connections, .. }
        | FindingKind::Unknown { connections, .. }
        | FindingKind::UnacknowledgedData { connections, .. }
        | FindingKind::AllCovered { connections, .. } => Some(*connections as u64),
        _ => None,
    };
    FindingJson {
        severity: severity_name(f.severity),
        kind: match f.kind {
            FindingKind::NoKeepalive { .. } => "no_keepalive",
            FindingKind::TooSlow { .. } => "too_slow",
            FindingKind::Unknown { .. } => "unknown",
            FindingKind::DefaultsTooSlow { .. } => "defaults_too_slow",
            FindingKind::UnacknowledgedData { .. } => "unacknowledged_data",
            FindingKind::AllCovered { .. } => "all_covered",
            FindingKind::PreloadBroken { .. } => "preload_broken",
            FindingKind::EnforcementDetached { .. } => "enforcement_detached",
            FindingKind::SysctlOverridden { .. } => "sysctl_overridden",
        },
        message: sentence(&f.kind),
        pid: group.map(|g| g.pid),
        command: group.map(|g| g.command.clone()),
        unit: group.and_then(|g| g.unit.clone()),
        cgroup: group.and_then(|g| g.cgroup.clone()),
        connections,
        oldest_idle_secs: match &f.kind {
            FindingKind::NoKeepalive { oldest_idle, .. } => oldest_idle.map(|d| d.as_secs()),
            _ => None,
        },
        fixes: f.fixes.iter().map(command).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_fixes_follow_a_service_and_hold_whatever_programs_set() {
        let values = keepalive_diag::Recommended::for_timeout(Duration::from_secs(350));
        let service = Fix::Enforce {
            unit: Some("nginx.service".into()),
            cgroup: "/system.slice/nginx.service".into(),
            values,
        };
        assert_eq!(
            command(&service),
            "keepalive enforce --unit nginx.service --max-idle 2m55s --existing --persist"
        );
        let scope = Fix::Enforce {
            unit: Some("session-2.scope".into()),
            cgroup: "/user.slice/user-1000.slice/session-2.scope".into(),
            values,
        };
        assert_eq!(
            command(&scope),
            "keepalive enforce --cgroup user.slice/user-1000.slice/session-2.scope \
             --max-idle 2m55s --existing"
        );
        assert_eq!(
            command(&Fix::Attach { pid: 42, values }),
            "keepalive attach --pid 42 --idle 2m55s --interval 58s"
        );
    }
}
