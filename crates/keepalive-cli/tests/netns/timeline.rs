//! The clients' and the server's event lines and the timeline they go
//! into, with everything else that happened, on CLOCK_MONOTONIC.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::util::Running;

/// CLOCK_MONOTONIC in seconds: the clock of python's `time.monotonic()`,
/// the same for every process, so both sides' events share a timeline.
pub(crate) fn mono() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives
    // in this frame.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One line a client or the server printed: `kind t=... key=value ...`.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) kind: String,
    pub(crate) t: f64,
    pub(crate) fields: BTreeMap<String, String>,
    pub(crate) line: String,
}

impl Event {
    /// `None` for a line without a kind and a `t=`.
    pub(crate) fn parse(line: &str) -> Option<Event> {
        let mut words = line.split_whitespace();
        let kind = words.next()?.to_owned();
        let fields: BTreeMap<String, String> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let t = fields.get("t")?.parse().ok()?;
        Some(Event {
            kind,
            t,
            fields,
            line: line.to_owned(),
        })
    }

    pub(crate) fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in `{}`", self.line))
    }

    pub(crate) fn num(&self, key: &str) -> f64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|e| panic!("{key}= in `{}`: {e}", self.line))
    }

    /// The line without its absolute time, times rounded to the millisecond.
    pub(crate) fn brief(&self) -> String {
        let mut out = self.kind.clone();
        for word in self.line.split_whitespace().skip(1) {
            match word.split_once('=') {
                Some(("t", _)) => continue,
                Some((k, v)) if k.starts_with("since_") && v.parse::<f64>().is_ok() => {
                    let secs: f64 = v.parse().unwrap_or_default();
                    out += &format!(" {k}={secs:.3}");
                }
                _ => out += &format!(" {word}"),
            }
        }
        out
    }
}

/// What happened, from every source, on CLOCK_MONOTONIC.
pub(crate) struct Timeline {
    pub(crate) test: &'static str,
    pub(crate) start: f64,
    pub(crate) entries: Mutex<Vec<(f64, String, String)>>,
    /// The clients' local ports, to name them in what ss shows.
    pub(crate) ports: Mutex<BTreeMap<u16, String>>,
}

impl Timeline {
    pub(crate) fn log(&self, who: &str, what: impl Into<String>) {
        self.at(mono(), who, what);
    }

    pub(crate) fn at(&self, t: f64, who: &str, what: impl Into<String>) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((t, who.to_owned(), what.into()));
    }

    pub(crate) fn event(&self, who: &str, event: &Event) {
        if let Some(port) = event.fields.get("port").and_then(|p| p.parse().ok()) {
            self.ports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port, who.to_owned());
        }
        self.at(event.t, who, event.brief());
    }

    pub(crate) fn who(&self, port: u16) -> String {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("port {port}"))
    }

    pub(crate) fn render(&self, failed: bool) -> String {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0));
        let verdict = if failed { "FAILED" } else { "passed" };
        let mut out = format!(
            "--- timeline of {} ({verdict}), seconds since the namespaces were made:\n",
            self.test
        );
        for (t, who, what) in entries {
            out += &format!("{:>8.3}  {who:<28} {what}\n", t - self.start);
        }
        out + "---"
    }
}

/// A child with its stdout lines parsed into events (and logged) and its
/// stderr lines logged.
pub(crate) struct Proc {
    pub(crate) running: Running,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) events: Receiver<Event>,
}

impl Proc {
    pub(crate) fn spawn(cmd: &mut Command, who: &str, timeline: &Arc<Timeline>) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (tx, rx) = mpsc::channel();
        let (who_out, timeline_out) = (who.to_owned(), timeline.clone());
        thread::spawn(move || {
            for line in BufReader::new(stdout.expect("piped"))
                .lines()
                .map_while(Result::ok)
            {
                match Event::parse(&line) {
                    Some(event) => {
                        timeline_out.event(&who_out, &event);
                        let _ = tx.send(event);
                    }
                    None => timeline_out.log(&who_out, line),
                }
            }
        });
        let (who_err, timeline_err) = (who.to_owned(), timeline.clone());
        thread::spawn(move || {
            for line in BufReader::new(stderr.expect("piped"))
                .lines()
                .map_while(Result::ok)
            {
                timeline_err.log(&who_err, format!("stderr: {line}"));
            }
        });
        Proc {
            running: Running(child),
            stdin,
            events: rx,
        }
    }
}
