//! `keepalive metrics`: Prometheus text exposition of what keepalive-diag
//! and keepalive::host know, printed once (node_exporter's textfile
//! collector) or served at `/metrics` (`--listen`).
//!
//! Every network namespace a process of the host is in is surveyed once
//! (entered through `/proc/PID/ns/net`). Labels are bounded: the
//! namespace, the command name, the systemd unit, the keepalive state;
//! never a pid, a port or an address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use keepalive::KernelDefaults;
use keepalive::host::{self, NetNs};
use keepalive_diag::{Owners, PROC, StateSet, Survey, SurveyOptions};

use crate::cli::MetricsArgs;
use crate::doctor::{self, Timeout};
use crate::exit::Exit;

pub fn metrics(args: &MetricsArgs) -> anyhow::Result<Exit> {
    let given = doctor::given_timeout(&args.timeout)?;
    let Some(addr) = args.listen else {
        let text = scrape(given.as_ref());
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(Exit::Success);
    };
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    eprintln!("keepalive: serving metrics at http://{addr}/metrics");
    for request in server.incoming_requests() {
        let response = match request.url() {
            "/metrics" => {
                let header = tiny_http::Header::from_bytes(
                    &b"Content-Type"[..],
                    &b"text/plain; version=0.0.4; charset=utf-8"[..],
                )
                .expect("a valid header");
                tiny_http::Response::from_string(scrape(given.as_ref())).with_header(header)
            }
            _ => tiny_http::Response::from_string("keepalive metrics are at /metrics\n")
                .with_status_code(404),
        };
        // A client that went away is no reason to stop serving.
        let _ = request.respond(response);
    }
    Ok(Exit::Success)
}

/// One scrape: every metric, as text. What cannot be read is left out and
/// counted in `keepalive_scrape_errors`.
pub fn scrape(given: Option<&Timeout>) -> String {
    let started = Instant::now();
    let mut m = Metrics::default();
    let mut errors = 0u64;
    // One scan of every process's descriptors serves all namespaces.
    let owners = Owners::scan(Path::new(PROC));
    for (label, ns) in namespaces() {
        let Ok(owners) = &owners else {
            errors += 1;
            break;
        };
        match survey(&ns, owners) {
            Ok(facts) => m.namespace(&label, &facts, given),
            Err(_) => errors += 1,
        }
    }
    if let Ok(preload) = host::global_preload_in(Path::new("/")) {
        m.gauge(
            "keepalive_global_preload_entry",
            "1 when /etc/ld.so.preload names libkeepalive.so.",
            &[],
            u64::from(preload.entry.is_some()),
        );
        m.gauge(
            "keepalive_global_preload_library_present",
            "1 when the library /etc/ld.so.preload names exists.",
            &[],
            u64::from(preload.library_present),
        );
    } else {
        errors += 1;
    }
    match keepalive_bpf::status() {
        Ok(all) => {
            for e in &all {
                let cgroup = e.cgroup.as_deref().map_or_else(
                    || format!("(removed) {}", e.cgroup_id),
                    |p| p.display().to_string(),
                );
                m.gauge(
                    "keepalive_enforcement_attached",
                    "1 for an enforcement attached to its cgroup, 0 for left-over pins.",
                    &[("cgroup", &cgroup)],
                    u64::from(e.attachment.is_some()),
                );
            }
        }
        Err(_) => errors += 1,
    }
    m.gauge(
        "keepalive_scrape_errors",
        "Parts of this scrape that could not be read (a namespace, bpffs, /etc).",
        &[],
        errors,
    );
    m.gauge_f(
        "keepalive_scrape_duration_seconds",
        "How long this scrape took.",
        &[],
        started.elapsed().as_secs_f64(),
    );
    m.render()
}

/// What one namespace shows.
struct Facts {
    survey: Survey,
    defaults: Option<KernelDefaults>,
    counters: Option<host::TcpExtCounters>,
    timeout: Option<Timeout>,
}

fn survey(ns: &NetNs, owners: &Owners) -> anyhow::Result<Facts> {
    ns.run(|| -> anyhow::Result<Facts> {
        let survey = keepalive_diag::survey_with(
            Path::new(PROC),
            owners,
            &SurveyOptions {
                states: StateSet::ESTABLISHED,
                read_options: false,
            },
        )?;
        Ok(Facts {
            survey,
            defaults: keepalive::kernel_defaults().ok(),
            counters: host::tcp_ext_counters().ok(),
            timeout: doctor::host_timeout(),
        })
    })?
    .context("survey")
}

/// Every network namespace a process is in, once, with its label: the
/// name under /run/netns, `current` for ours, else `net:[INODE]`.
fn namespaces() -> Vec<(String, NetNs)> {
    let mut seen: BTreeMap<u64, (String, NetNs)> = BTreeMap::new();
    if let Ok(ns) = NetNs::current() {
        seen.insert(ns.inode(), ("current".to_owned(), ns));
    }
    if let Ok(dir) = std::fs::read_dir(host::NETNS_RUN_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(ns) = NetNs::open(&name) {
                seen.entry(ns.inode()).or_insert((name, ns));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(PROC) {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(format!("{PROC}/{pid}/ns/net")) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            if seen.contains_key(&meta.ino()) {
                continue;
            }
            if let Ok(ns) = NetNs::of_pid(pid) {
                let label = format!("net:[{}]", ns.inode());
                seen.insert(ns.inode(), (label, ns));
            }
        }
    }
    seen.into_values().collect()
}

/// The metric families, in the order they are first seen.
#[derive(Default)]
struct Metrics {
    families: Vec<Family>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, String)>,
}

impl Metrics {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
    ) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    fn sample(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        let labels = label_set(labels);
        self.family(name, help, kind).samples.push((labels, value));
    }

    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: u64,
    ) {
        self.sample(name, help, "gauge", labels, value.to_string());
    }

    fn gauge_f(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.sample(name, help, "gauge", labels, format!("{value}"));
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: u64,
    ) {
        self.sample(name, help, "counter", labels, value.to_string());
    }

    /// The metrics of one namespace.
    fn namespace(&mut self, netns: &str, facts: &Facts, given: Option<&Timeout>) {
        let timeout = given.or(facts.timeout.as_ref());
        // Connections by state, command and unit.
        let mut by: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
        let mut idle_without: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut probes = 0u64;
        for c in &facts.survey.connections {
            let command = c
                .processes
                .as_ref()
                .and_then(|p| p.first())
                .map_or_else(String::new, |o| o.command.clone());
            let unit = c.unit.clone().unwrap_or_default();
            let state = match c.keepalive_on() {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown",
            };
            *by.entry((command.clone(), unit.clone(), state))
                .or_default() += 1;
            if let (Some(false), Some(t), Some(idle)) = (c.keepalive_on(), timeout, c.socket.idle())
                && idle > t.timeout
            {
                *idle_without.entry((command, unit)).or_default() += 1;
            }
            if let Some(timer) = c.socket.timer
                && timer.kind == keepalive_diag::TimerKind::Keepalive
            {
                probes += u64::from(timer.count);
            }
        }
        // Every state of a (command, unit) seen, 0 included: a series that
        // drops to 0 must read 0, not vanish (an alert on `== 0`, or the
        // count falling after `attach`).
        let groups: std::collections::BTreeSet<(String, String)> =
            by.keys().map(|(c, u, _)| (c.clone(), u.clone())).collect();
        for (command, unit) in groups {
            for state in ["on", "off", "unknown"] {
                by.entry((command.clone(), unit.clone(), state))
                    .or_default();
            }
        }
        for ((command, unit, state), n) in &by {
            self.gauge(
                "keepalive_connections",
                "Established TCP connections, by keepalive state (on, off, unknown), command and systemd unit.",
                &[("netns", netns), ("command", command), ("unit", unit), ("keepalive", state)],
                *n,
            );
        }
        if let Some(t) = timeout {
            self.gauge(
                "keepalive_idle_timeout_seconds",
                "The idle timeout connections are judged against, and where it comes from (conntrack, ipvs, given, a preset).",
                &[("netns", netns), ("source", &doctor::source_label(t))],
                t.timeout.as_secs(),
            );
            for ((command, unit), n) in &idle_without {
                self.gauge(
                    "keepalive_connections_idle_without_keepalive",
                    "Established connections without keepalive, idle longer than the idle timeout.",
                    &[("netns", netns), ("command", command), ("unit", unit)],
                    *n,
                );
            }
        }
        self.gauge(
            "keepalive_probes_outstanding",
            "Keepalive probes sent and not yet answered, summed over the namespace's connections.",
            &[("netns", netns)],
            probes,
        );
        if let Some(c) = &facts.counters {
            if let Some(v) = c.keepalive_probes {
                self.counter(
                    "keepalive_tcp_keepalive_probes_total",
                    "Keepalive probes the kernel sent (TcpExt TCPKeepAlive).",
                    &[("netns", netns)],
                    v,
                );
            }
            if let Some(v) = c.abort_on_timeout {
                self.counter(
                    "keepalive_tcp_abort_on_timeout_total",
                    "Connections the kernel gave up on after retransmissions or keepalive probes (TcpExt TCPAbortOnTimeout).",
                    &[("netns", netns)],
                    v,
                );
            }
        }
        if let Some(d) = facts.defaults {
            for (setting, value) in [("idle", d.idle), ("interval", d.interval)] {
                self.gauge(
                    "keepalive_kernel_default_seconds",
                    "The kernel defaults net.ipv4.tcp_keepalive_time (idle) and _intvl (interval).",
                    &[("netns", netns), ("setting", setting)],
                    value,
                );
            }
            self.gauge(
                "keepalive_kernel_default_probes",
                "The kernel default net.ipv4.tcp_keepalive_probes.",
                &[("netns", netns)],
                d.count,
            );
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (labels, value) in &f.samples {
                let _ = writeln!(out, "{}{labels} {value}", f.name);
            }
        }
        out
    }
}

/// `{a="x",b="y"}`, values escaped as the exposition format wants;
/// empty without labels.
fn label_set(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label_set(&[("command", "a\"b\\c\nd"), ("unit", "")]),
            r#"{command="a\"b\\c\nd",unit=""}"#
        );
        assert_eq!(label_set(&[]), "");
    }

    #[test]
    fn families_have_help_and_type_once() {
        let mut m = Metrics::default();
        m.gauge("x_total", "X.", &[("a", "1")], 1);
        m.gauge("x_total", "X.", &[("a", "2")], 2);
        m.counter("y_total", "Y.", &[], 3);
        assert_eq!(
            m.render(),
            "# HELP x_total X.\n# TYPE x_total gauge\nx_total{a=\"1\"} 1\nx_total{a=\"2\"} 2\n\
             # HELP y_total Y.\n# TYPE y_total counter\ny_total 3\n"
        );
    }
}
