//! Issue 12: `keepalive metrics`. The exposition is checked by promtool,
//! its values against connections a test made in its own network namespace,
//! and a real Prometheus scrapes `--listen` and answers a query with them.
//! Namespace tests need root, ip and python3; promtool and prometheus come
//! with Debian's `prometheus` package. Each skips with a message when what
//! it needs is missing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    Holder, Netns, Output, Running, TIMEOUT, bare, is_root, python3, run, skip, target_tempdir,
    tool,
};

/// The keepalive connections the namespace tests make: client ends with
/// `SO_KEEPALIVE` set by python itself...
const ON: usize = 3;
/// ...and client ends without; every accepted end is without too.
const OFF_CLIENTS: usize = 2;
/// Connection ends without keepalive: the plain clients and every
/// accepted end.
const OFF: u64 = (OFF_CLIENTS + ON + OFF_CLIENTS) as u64;
/// The namespace's `net.ipv4.tcp_keepalive_time`, unlike any default.
const DISTINCT_IDLE: &str = "4321";

fn keepalive_cmd() -> Command {
    bare(env!("CARGO_BIN_EXE_keepalive"))
}

/// `keepalive metrics ARGS`, which must succeed.
fn metrics(args: &[&str]) -> Output {
    let out = run(keepalive_cmd().arg("metrics").args(args), TIMEOUT);
    out.assert_success();
    out
}

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The samples of a text exposition (`name{k="v",...} value`), comments
/// skipped; label values unescaped (`\\`, `\"`, `\n`). Panics on a line
/// it cannot read.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || -> ! { panic!("not a sample line: {line:?}") };
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let mut key = String::new();
            loop {
                let Some((i, c)) = chars.next() else { bad() };
                match c {
                    '}' if key.is_empty() => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    ',' if key.is_empty() => {}
                    '=' => {
                        if chars.next().map(|(_, c)| c) != Some('"') {
                            bad();
                        }
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('"') => break,
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c @ ('\\' | '"')) => value.push(c),
                                    _ => bad(),
                                },
                                Some(c) => value.push(c),
                                None => bad(),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest.trim().parse().unwrap_or_else(|_| bad());
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

#[test]
fn exposition_lines_parse() {
    let samples = parse_exposition(
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",y=\"q\\\"\\\\\\n\"} 2\nb 0.5\nc{} 3\n",
    );
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        samples,
        [
            Sample {
                name: "a".into(),
                labels: labels(&[("x", "1"), ("y", "q\"\\\n")]),
                value: 2.0
            },
            Sample {
                name: "b".into(),
                labels: labels(&[]),
                value: 0.5
            },
            Sample {
                name: "c".into(),
                labels: labels(&[]),
                value: 3.0
            },
        ]
    );
}

/// `promtool check metrics` on `text`; `None` (after saying so) when
/// promtool is not installed.
fn promtool_check(text: &str) -> Option<Output> {
    let Some(promtool) = tool("promtool") else {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return None;
    };
    let dir = target_tempdir("promtool");
    let path = dir.path().join("metrics.prom");
    std::fs::write(&path, text).expect("write the metrics");
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "metrics"])
        .stdin(File::open(&path).expect("open the metrics"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().expect("start promtool");
    Some(crate::util::wait(child, TIMEOUT))
}

/// The holder's namespace, with a distinctive `tcp_keepalive_time`, and
/// [`ON`] connections with keepalive and [`OFF_CLIENTS`] without; or why
/// it cannot be made here.
fn namespace_with_connections(tag: &str) -> Result<(Netns, Holder), String> {
    if !is_root() {
        return Err("the namespace tests need root".to_owned());
    }
    if python3().is_none() {
        return Err("python3 is not installed".to_owned());
    }
    let ns = Netns::new(tag)?;
    ns.sysctl("net.ipv4.tcp_keepalive_time", DISTINCT_IDLE);
    let mut specs = vec!["on"; ON];
    specs.extend(["off"; OFF_CLIENTS]);
    let holder = Holder::spawn(ns.name(), "off", &specs);
    assert_eq!(holder.ports.len(), 2 * (ON + OFF_CLIENTS));
    Ok((ns, holder))
}

/// The output, as printed once, is what promtool accepts.
#[test]
fn metrics_pass_promtool_check() {
    // With a namespace of connections when possible, so that every family
    // is in the output.
    let made = namespace_with_connections("metrics-promtool");
    if let Err(why) = &made {
        eprintln!("without connections of the test's own: {why}");
    }
    let out = metrics(&[]);
    assert!(out.stdout.contains("# TYPE keepalive_"), "{out}");
    if made.is_ok() {
        assert!(
            out.stdout.contains("\nkeepalive_connections{"),
            "no keepalive_connections\n{out}"
        );
    }
    let Some(check) = promtool_check(&out.stdout) else {
        return;
    };
    assert!(
        check.status.success(),
        "promtool check metrics rejects the output\n{check}\n--- the metrics:\n{}",
        out.stdout
    );
    let with_timeout = metrics(&["--behind", "aws-nlb"]);
    let check = promtool_check(&with_timeout.stdout).expect("promtool was there");
    assert!(check.status.success(), "with --behind\n{check}");
}

/// In the test's namespace: the connections by keepalive state are the
/// counts the test made (each connection has two ends, both in the
/// namespace), all of python3; the kernel default idle is the namespace's;
/// and no label holds the holder's pid or a port of its.
#[test]
fn metrics_count_the_connections_a_test_made() {
    let (ns, holder) = match namespace_with_connections("metrics-count") {
        Ok(made) => made,
        Err(why) => skip!("{why}"),
    };
    let out = metrics(&[]);
    let samples = parse_exposition(&out.stdout);
    let ours: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.label("netns") == Some(ns.name()))
        .collect();
    let count = |state: &str| -> u64 {
        ours.iter()
            .filter(|s| s.name == "keepalive_connections" && s.label("keepalive") == Some(state))
            .map(|s| s.value as u64)
            .sum()
    };
    assert_eq!(
        (count("on"), count("off"), count("unknown")),
        (ON as u64, OFF, 0),
        "keepalive_connections{{netns=\"{}\"}} by keepalive state\n{out}",
        ns.name()
    );
    for s in ours.iter().filter(|s| s.name == "keepalive_connections") {
        assert_eq!(s.label("command"), Some("python3"), "{s:?}");
    }
    let idle: Vec<f64> = ours
        .iter()
        .filter(|s| {
            s.name == "keepalive_kernel_default_seconds" && s.label("setting") == Some("idle")
        })
        .map(|s| s.value)
        .collect();
    assert_eq!(
        idle,
        [DISTINCT_IDLE.parse::<f64>().unwrap()],
        "keepalive_kernel_default_seconds{{setting=\"idle\"}} of the namespace\n{out}"
    );
    assert!(
        ours.iter()
            .any(|s| s.name == "keepalive_probes_outstanding"),
        "{out}"
    );

    // Bounded cardinality: no pid, no port, in any label of any namespace.
    let mut forbidden: Vec<String> = holder.ports.iter().map(u16::to_string).collect();
    forbidden.push(holder.listener.to_string());
    forbidden.push(holder.pid.to_string());
    for s in &samples {
        for (key, value) in &s.labels {
            assert!(
                !["pid", "port", "local", "remote", "address"].contains(&key.as_str()),
                "label {key} in {s:?}"
            );
            assert!(
                !forbidden.contains(value),
                "label {key}=\"{value}\" holds a pid or port of the test's: {s:?}"
            );
        }
    }
}

/// `metrics --listen` on an address in use: exit 2, one line on stderr.
#[test]
fn metrics_listen_on_an_address_in_use_fails() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let out = run(
        keepalive_cmd().args(["metrics", "--listen", &addr]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line\n{out}");
    assert!(lines[0].contains(&addr), "names the address\n{out}");
}

/// Two different free ports on 127.0.0.1 (bound together, then released:
/// another process may take one in between, which the caller's bounded
/// wait would show).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("its address").port();
    (port(&a), port(&b))
}

/// `cmd` in its own process group, its output to `log`; killed with its
/// group when dropped.
fn start_logged(cmd: &mut Command, log: &Path) -> Running {
    let file = File::create(log).expect("create a log");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log"))
        .stderr(file)
        .process_group(0);
    Running(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    )
}

/// `query` percent-encoded for a URL's query string.
fn url_encode(query: &str) -> String {
    let mut out = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// Prometheus's answer to an instant query: the sum of the vector's
/// values and how many series it had; `None` when it did not answer.
fn query(port: u16, promql: &str) -> Option<(f64, usize)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "GET /api/v1/query?query={} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        url_encode(promql)
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    if json["status"] != "success" {
        return None;
    }
    let result = json["data"]["result"].as_array()?;
    let sum = result
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .sum();
    Some((sum, result.len()))
}

/// Polls `promql` until `want` says yes (bounded by `within`); the last
/// answer either way.
fn poll(
    port: u16,
    promql: &str,
    within: Duration,
    want: impl Fn(Option<(f64, usize)>) -> bool,
) -> (bool, Option<(f64, usize)>) {
    let deadline = Instant::now() + within;
    loop {
        let answer = query(port, promql);
        if want(answer) {
            return (true, answer);
        }
        if Instant::now() >= deadline {
            return (false, answer);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// A real Prometheus, scraping `keepalive metrics --listen` every second,
/// answers through its HTTP API with the connections without keepalive
/// the test made, `up` is 1; after `keepalive attach` on the holder, it
/// answers with none without keepalive.
#[test]
fn prometheus_scrapes_the_counts_the_test_made() {
    let Some(prometheus) = tool("prometheus") else {
        skip!("prometheus is not installed (apt-get install prometheus)");
    };
    let (ns, holder) = match namespace_with_connections("metrics-prom") {
        Ok(made) => made,
        Err(why) => skip!("{why}"),
    };
    let dir = target_tempdir("prometheus");
    let (metrics_port, web_port) = free_ports();
    let job = "keepalive-test";
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .expect("write the configuration");
    let exporter_log = dir.path().join("keepalive.log");
    let _exporter = start_logged(
        keepalive_cmd().args(["metrics", "--listen", &format!("127.0.0.1:{metrics_port}")]),
        &exporter_log,
    );
    let prometheus_log = dir.path().join("prometheus.log");
    let _prometheus = start_logged(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}")),
        &prometheus_log,
    );
    let logs = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- keepalive metrics --listen:\n{}--- prometheus:\n{}",
            read(&exporter_log),
            read(&prometheus_log)
        )
    };
    let within = Duration::from_secs(20);
    let off = format!(
        "keepalive_connections{{netns=\"{}\",keepalive=\"off\"}}",
        ns.name()
    );
    let (ok, last) = poll(web_port, &off, within, |a| {
        a.is_some_and(|(sum, _)| sum == OFF as f64)
    });
    assert!(ok, "{off}: want {OFF}, last answer {last:?}\n{}", logs());
    let up = format!("up{{job=\"{job}\"}}");
    assert_eq!(query(web_port, &up), Some((1.0, 1)), "{up}\n{}", logs());

    // Keepalive on everything the holder has: none left without.
    let attached = run(
        keepalive_cmd().args(["attach", "--pid", &holder.pid.to_string(), "--idle", "600"]),
        TIMEOUT,
    );
    attached.assert_success();
    // The series reads 0, it does not vanish: an alert on `== 0` sees it.
    let (ok, last) = poll(web_port, &off, within, |a| {
        a.is_some_and(|(sum, series)| sum == 0.0 && series >= 1)
    });
    assert!(
        ok,
        "{off} after attach: want a series at 0, last answer {last:?}\n{}",
        logs()
    );
    let on = format!(
        "keepalive_connections{{netns=\"{}\",keepalive=\"on\"}}",
        ns.name()
    );
    let total = (2 * (ON + OFF_CLIENTS)) as f64;
    let (ok, last) = poll(web_port, &on, within, |a| {
        a.is_some_and(|(sum, _)| sum == total)
    });
    assert!(
        ok,
        "{on} after attach: want {total}, last answer {last:?}\n{}",
        logs()
    );
}
