//! `KEEPALIVE_DEBUG`: where the log goes, and where it never goes.

use super::*;

#[test]
fn silent_without_debug() {
    let out = run_ok(
        configured(probe())
            .env("TCP_USER_TIMEOUT", "auto")
            .args(commands(&["socket inet stream 0", "socket inet6 stream 0"])),
    );
    assert_eq!(sockets(&out).len(), 2, "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(out.stdout.lines().count(), 2, "unexpected output\n{out}");
}

/// Probe arguments for two TCP sockets and a UDP one.
const TWO_TCP_ONE_UDP: [&str; 3] = [
    "socket inet stream 0",
    "socket inet6 stream+cloexec tcp",
    "socket inet dgram 0",
];

/// Checks that `log` has one line per TCP socket of a [`TWO_TCP_ONE_UDP`]
/// run, each naming the process, the socket's fd and the options set.
fn assert_debug_lines(out: &Output, log: &str) {
    let tcp_fds: Vec<i64> = sockets(out)
        .iter()
        .filter(|r| r.get("keepcnt") >= 0)
        .map(|r| r.get("fd"))
        .collect();
    assert_eq!(tcp_fds.len(), 2, "{out}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "want one line per TCP socket, got:\n{log}\n{out}"
    );
    for (line, fd) in lines.iter().zip(tcp_fds) {
        let wanted = [
            format!("keepalive[{}]", out.pid),
            format!("= {fd}:"),
            "SO_KEEPALIVE=1".to_owned(),
            format!("TCP_KEEPCNT={COUNT}"),
            format!("TCP_KEEPIDLE={IDLE}"),
            format!("TCP_KEEPINTVL={INTERVAL}"),
        ];
        for part in wanted {
            assert!(line.contains(&part), "`{line}` lacks `{part}`\n{out}");
        }
    }
}

#[test]
fn debug_file_gets_one_line_per_tcp_socket() {
    let log = tempfile::NamedTempFile::new().expect("create the log file");
    let out = run_ok(
        configured(probe())
            .env("KEEPALIVE_DEBUG", log.path())
            .args(commands(&TWO_TCP_ONE_UDP)),
    );
    let text = std::fs::read_to_string(log.path()).expect("read the log");
    assert_debug_lines(&out, &text);
    assert_eq!(out.stderr, "", "the log went to a file, not stderr\n{out}");
}

#[test]
fn debug_on_stderr_gets_one_line_per_tcp_socket() {
    let out = run_ok(
        configured(probe())
            .env("KEEPALIVE_DEBUG", "1")
            .args(commands(&TWO_TCP_ONE_UDP)),
    );
    assert_debug_lines(&out, &out.stderr);
}

#[test]
fn debug_never_writes_into_a_socket() {
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut cmd = configured(probe());
    cmd.env("KEEPALIVE_DEBUG", "1")
        .args(commands(&TWO_TCP_ONE_UDP))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().expect("start the probe");
    // The command holds the child's end of the pair: drop it, so that the
    // read below ends when the child does.
    drop(cmd);
    let out = wait(child, TIMEOUT);
    out.assert_success();
    assert_eq!(
        sockets(&out)[0].keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    let mut written = String::new();
    ours.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ours.read_to_string(&mut written).expect("read the socket");
    assert_eq!(written, "", "the preload wrote into a socket stderr\n{out}");
}

/// Runs the probe as nobody, with a global preload (an /etc/ld.so.preload
/// in a private mount namespace: the host's /etc is never touched) and
/// `KEEPALIVE_DEBUG` naming a file in a directory anyone may write.
fn probe_as_nobody_with_global_preload(dir: &Path, exe: &Path, log: &Path) -> Output {
    let script = "mount --bind \"$1\" /etc && shift && exec \"$@\"";
    let mut cmd = bare("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"])
        .arg(dir.join("etc"))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(exe)
        .args(["socket", "inet", "stream", "tcp"])
        .envs(SETTINGS)
        .env("KEEPALIVE_DEBUG", log);
    run_ok(&mut cmd)
}

/// A setuid program reached through a global preload runs with the
/// unprivileged caller's environment: `KEEPALIVE_DEBUG` must not make it
/// create or append to a file as root. Keepalive itself still applies.
#[test]
fn setuid_program_ignores_keepalive_debug() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        skip!("a setuid program and a private mount namespace need root");
    }
    if tool("unshare").is_none() || tool("setpriv").is_none() {
        skip!("unshare and setpriv (util-linux) are needed");
    }
    let dir = target_tempdir("secure");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mode =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(dir.path(), 0o755);
    mode(&logs, 0o777);
    let lib = dir.path().join("libkeepalive.so");
    std::fs::copy(preload(), &lib).unwrap();
    mode(&lib, 0o644);
    let copied = run_ok(bare("cp").arg("-a").arg("/etc").arg(dir.path().join("etc")));
    drop(copied);
    std::fs::write(
        dir.path().join("etc/ld.so.preload"),
        format!("{}\n", lib.display()),
    )
    .unwrap();
    let plain = dir.path().join("probe");
    let suid = dir.path().join("suid-probe");
    std::fs::copy(probe(), &plain).unwrap();
    std::fs::copy(probe(), &suid).unwrap();
    mode(&plain, 0o755);
    mode(&suid, 0o4755);

    // The control: not setuid, the log is written (as nobody).
    let plain_log = logs.join("plain.log");
    let out = probe_as_nobody_with_global_preload(dir.path(), &plain, &plain_log);
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    assert!(plain_log.exists(), "the control wrote no log\n{out}");

    let suid_log = logs.join("suid.log");
    let out = probe_as_nobody_with_global_preload(dir.path(), &suid, &suid_log);
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
    assert!(
        !suid_log.exists(),
        "a setuid program wrote the caller's KEEPALIVE_DEBUG file\n{out}"
    );
}
