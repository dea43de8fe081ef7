//! The setsockopt(2) calls a program makes, as strace shows them.

use super::{Output, TIMEOUT, bare, commands, preload, probe, run};

/// One setsockopt(2) call as strace shows it, e.g.
/// `setsockopt(3, SOL_TCP, TCP_KEEPIDLE, [180], 4) = 0` becomes
/// `"3 TCP_KEEPIDLE=180 = 0"`.
fn setsockopt_call(line: &str) -> Option<String> {
    let args = line.split_once("setsockopt(")?.1;
    let (args, result) = args.rsplit_once(") = ")?;
    let args: Vec<&str> = args.split(", ").collect();
    let [fd, _level, name, value, _len] = args[..] else {
        return Some(line.to_owned());
    };
    let value = value.trim_start_matches('[').trim_end_matches(']');
    Some(format!("{fd} {name}={value} = {result}"))
}

/// Runs the probe with the commands `cmds` under strace with `env` (and LD_PRELOAD),
/// and returns the probe's output and every setsockopt(2) call it made
/// (see [`setsockopt_call`]; a line strace wrote in an unexpected form is
/// kept as it is).
pub fn strace_setsockopt(env: &[(&str, &str)], cmds: &[&str]) -> (Output, Vec<String>) {
    let trace = tempfile::NamedTempFile::new().expect("create the trace file");
    let mut cmd = bare("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=setsockopt",
        "-e",
        "signal=none",
        "-o",
    ])
    .arg(trace.path())
    .arg("-E")
    .arg(format!("LD_PRELOAD={}", preload().display()));
    for (name, value) in env {
        cmd.arg("-E").arg(format!("{name}={value}"));
    }
    cmd.arg("--").arg(probe()).args(commands(cmds));
    let out = run(&mut cmd, TIMEOUT);
    let calls = std::fs::read_to_string(trace.path())
        .expect("read the trace")
        .lines()
        .filter_map(setsockopt_call)
        .collect();
    (out, calls)
}
