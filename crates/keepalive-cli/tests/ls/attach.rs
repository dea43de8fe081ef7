//! `keepalive attach` on running python3 peers, judged by their own
//! getsockopt, `ss -tno` and `ls`.

use super::*;
use crate::util::json::{AttachSummary, Change};

/// `ls --pid` shows a connection without keepalive; `attach --pid` on the
/// client switches it on, which the client's own getsockopt, `ss -tno` and
/// `ls` all show; the server's side is left alone.
#[test]
fn attach_switches_keepalive_on_in_a_running_client() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    server.expect("accepted");
    let (local, remote) = (addr("127.0.0.1", client_port), addr("127.0.0.1", port));

    let (before, summary, out) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(before.len(), 1, "{out}");
    let c = find(&before, local, remote);
    assert_eq!(c.state, "established");
    assert_eq!(c.family, "inet");
    assert_eq!(c.keepalive, Some(false), "{out}");
    assert_eq!(c.keepalive_from.as_deref(), Some("SO_KEEPALIVE"));
    assert!(c.timer.is_none(), "{out}");
    let p = &c.processes.as_ref().expect("owner known")[0];
    assert_eq!((p.pid, p.command.as_str()), (client.pid, "python3"));
    assert_eq!(
        c.options,
        Some(Options {
            keepalive: false,
            idle: defaults.idle as u32,
            interval: defaults.interval as u32,
            count: defaults.count as u32,
            user_timeout_ms: None,
        })
    );
    assert_eq!((summary.connections, summary.without_keepalive), (1, 1));
    let text = keepalive(&["ls", "--pid", &client.pid_arg()]);
    assert!(
        text.stdout.ends_with("1 connection, 1 without keepalive\n"),
        "{text}"
    );

    let out = keepalive(&[
        "attach",
        "--pid",
        &client.pid_arg(),
        "--idle",
        "61",
        "--interval",
        "11",
        "--count",
        "7",
    ]);
    out.assert_success();
    let want = format!(
        "fd {} {local}->{remote}: SO_KEEPALIVE 0->1, TCP_KEEPIDLE {}->1m1s, \
         TCP_KEEPINTVL {}->11s, TCP_KEEPCNT {}->7\n\
         pid {} (python3): 1 changed, 0 unchanged\n",
        p.fd,
        units(defaults.idle),
        units(defaults.interval),
        defaults.count,
        client.pid
    );
    assert_eq!(out.stdout, want, "{out}");

    // The program's own view.
    let configured = Keepalive {
        on: 1,
        count: 7,
        idle: 61,
        interval: 11,
        user_timeout: 0,
    };
    assert_eq!(client.only("client"), configured);
    // The kernel's, through ss.
    let line = ss_line(local);
    let timer = crate::util::ss_keepalive_timer(&line)
        .unwrap_or_else(|| panic!("no keepalive timer in ss: {line}"));
    assert!(
        timer <= Duration::from_secs(61) && timer > Duration::from_secs(45),
        "{line}"
    );
    // And ls's, from the timer, host-wide.
    let (after, _, out) = ls(&[]);
    let c = find(&after, local, remote);
    let t = c.timer.as_ref().expect("a timer");
    assert_eq!(t.kind, "keepalive", "{out}");
    assert!(t.left_ms <= 61_000 && t.left_ms > 45_000, "{t:?}");
    assert_eq!(t.count, 0);
    assert_eq!(c.keepalive, Some(true));
    assert_eq!(c.keepalive_from.as_deref(), Some("timer"));
    assert_eq!(c.processes.as_ref().unwrap()[0].pid, client.pid);
    // The server's end of the same connection was not touched.
    let s = find(&after, remote, local);
    assert_eq!(s.keepalive, Some(false), "{out}");
    assert_eq!(s.processes.as_ref().unwrap()[0].pid, server.pid);
    assert_eq!(server.only("accepted").on, 0);
}

/// `attach` on a listening socket: connections accepted afterwards inherit
/// the settings (IPv6).
#[test]
fn attach_to_a_listener_reaches_connections_accepted_later() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    if TcpListener::bind("[::1]:0").is_err() {
        skip!("no IPv6 loopback");
    }
    let (server, port) = Peer::server(python, "::1");
    let out = keepalive(&[
        "attach",
        "--pid",
        &server.pid_arg(),
        "--idle",
        "62",
        "--interval",
        "12",
        "--count",
        "8",
        "--user-timeout",
        "auto",
    ]);
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("[::1]:{port} (listening): SO_KEEPALIVE 0->1, ")),
        "{out}"
    );
    assert!(
        out.stdout.ends_with("(python3): 1 changed, 0 unchanged\n"),
        "{out}"
    );
    let (_client, client_port) = Peer::client(python, "::1", port);
    server.expect("accepted");
    // auto = 62 + 12 x 8 = 158 s.
    let configured = Keepalive {
        on: 1,
        count: 8,
        idle: 62,
        interval: 12,
        user_timeout: 158_000,
    };
    assert_eq!(server.only("accepted"), configured);
    assert_eq!(server.only("listener"), configured);
    let (all, summary, out) = ls(&["--pid", &server.pid_arg(), "--state", "all"]);
    let accepted = find(&all, addr("::1", port), addr("::1", client_port));
    assert_eq!(accepted.family, "inet6");
    assert_eq!(
        accepted.timer.as_ref().map(|t| t.kind.as_str()),
        Some("keepalive"),
        "{out}"
    );
    let listener = all
        .iter()
        .find(|c| c.state == "listen")
        .expect("the listener");
    assert_eq!(listener.remote, None);
    assert_eq!(listener.options.map(|o| o.keepalive), Some(true));
    assert_eq!((summary.connections, summary.without_keepalive), (1, 0));
    assert_eq!(summary.listening, 1);
}

/// `--dry-run` says what would change and changes nothing.
#[test]
fn dry_run_changes_nothing() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (_server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    let out = keepalive(&[
        "attach",
        "--pid",
        &client.pid_arg(),
        "--idle",
        "61",
        "--dry-run",
    ]);
    out.assert_success();
    assert!(
        out.stdout.contains(&format!(
            ": would change SO_KEEPALIVE 0->1, TCP_KEEPIDLE {}->1m1s\n",
            units(defaults.idle)
        )),
        "{out}"
    );
    assert!(
        out.stdout
            .ends_with("1 would change, 0 unchanged; nothing was changed (--dry-run)\n"),
        "{out}"
    );
    assert_eq!(client.only("client"), defaults);
    let local = addr("127.0.0.1", client_port);
    let line = ss_line(local);
    assert!(!line.contains("timer:(keepalive"), "{line}");
    let (all, _, _) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(all[0].keepalive, Some(false));
}

/// No such process: one line, exit 2 (an error).
#[test]
fn missing_process_is_one_line() {
    // Above the largest pid_max the kernel allows (4194304).
    for args in [
        &["attach", "--pid", "5000000"][..],
        &["ls", "--pid", "5000000"],
    ] {
        let out = keepalive(args);
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert_eq!(
            out.stderr, "keepalive: no process with pid 5000000\n",
            "{out}"
        );
        assert_eq!(out.stdout, "");
    }
}

/// A copy of the keepalive binary that any user may run, removed on drop
/// (a path with no descriptor open on it, so that it can be run).
fn world_executable_binary() -> tempfile::TempPath {
    let copy = tempfile::Builder::new()
        .prefix("keepalive-bin-")
        .tempfile()
        .expect("create the copy")
        .into_temp_path();
    std::fs::copy(env!("CARGO_BIN_EXE_keepalive"), &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// `setpriv` to nobody, or the reason it cannot be used.
fn as_nobody(program: &Path) -> Result<Command, &'static str> {
    if !is_root() {
        return Err("switching to another user needs root");
    }
    tool("setpriv").ok_or("setpriv (util-linux) is not installed")?;
    let mut cmd = bare("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    Ok(cmd)
}

/// An unprivileged user attaching to a root process gets one line naming
/// the missing right, and the target is untouched; its `ls` shows root's
/// sockets with their owner unknown.
#[test]
fn attach_without_the_right_is_refused_and_changes_nothing() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let bin = world_executable_binary();
    let mut cmd = match as_nobody(&bin) {
        Ok(c) => c,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (_server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    let out = run(
        cmd.args(["attach", "--pid", &client.pid_arg(), "--idle", "61"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "keepalive: attaching to pid {} needs the right to ptrace it: run as its user \
             (if /proc/sys/kernel/yama/ptrace_scope allows) or as root (CAP_SYS_PTRACE)\n",
            client.pid
        )
    );
    assert_eq!(client.only("client"), defaults, "the target changed");
    let (mine, _, _) = ls(&["--pid", &client.pid_arg()]);
    assert_eq!(mine[0].options.map(|o| o.keepalive), Some(false));

    // What nobody's ls shows of the same connection: all but the owner.
    let mut ls_cmd = as_nobody(&bin).unwrap();
    let out = run(ls_cmd.args(["ls", "--json"]), TIMEOUT);
    out.assert_success();
    let local = addr("127.0.0.1", client_port);
    let (seen, _) = ls_lines(&out);
    let c = find(&seen, local, addr("127.0.0.1", port));
    assert!(c.processes.is_none(), "owner should be unknown: {c:?}");
    assert_eq!(c.keepalive, Some(false));
    let text = run(as_nobody(&bin).unwrap().arg("ls"), TIMEOUT);
    let row = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{local} ")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" unknown "), "{row}");
}

/// `attach --json`: one `attached` line with the options before and after
/// (the latter as the program's own getsockopt then reports them) and the
/// changes, then the `attach_summary`.
#[test]
fn attach_json_reports_before_after_and_changes() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let defaults = kernel_defaults();
    let (_server, port) = Peer::server(python, "127.0.0.1");
    let (client, client_port) = Peer::client(python, "127.0.0.1", port);
    let out = keepalive(&[
        "attach",
        "--pid",
        &client.pid_arg(),
        "--idle",
        "61",
        "--json",
    ]);
    out.assert_success();
    let mut lines = messages(&out);
    assert_eq!(lines.len(), 2, "{out}");
    let Some(Message::AttachSummary(summary)) = lines.pop() else {
        panic!("the last line is not an attach_summary\n{out}");
    };
    let Some(Message::Attached(socket)) = lines.pop() else {
        panic!("not an attached line\n{out}");
    };
    let before = Options {
        keepalive: false,
        idle: defaults.idle as u32,
        interval: defaults.interval as u32,
        count: defaults.count as u32,
        user_timeout_ms: None,
    };
    let after = Options {
        keepalive: true,
        idle: 61,
        ..before
    };
    assert_eq!(socket.state, "established", "{out}");
    assert_eq!(socket.local, addr("127.0.0.1", client_port), "{out}");
    assert_eq!(socket.remote, Some(addr("127.0.0.1", port)), "{out}");
    assert_eq!(
        (socket.before, socket.after),
        (Some(before), Some(after)),
        "{out}"
    );
    let change = |setting: &str, old, new| Change {
        setting: setting.to_owned(),
        old,
        new,
    };
    assert_eq!(
        socket.changes,
        [
            change("keepalive", 0, 1),
            change("idle", defaults.idle as u32, 61)
        ],
        "{out}"
    );
    assert_eq!((socket.dry_run, socket.error.as_deref()), (false, None));
    assert_eq!(
        summary,
        AttachSummary {
            pid: client.pid,
            command: "python3".to_owned(),
            sockets: 1,
            changed: 1,
            unchanged: 0,
            skipped: 0,
            failed: 0,
            dry_run: false,
        },
        "{out}"
    );
    // The program's own view agrees with `after`.
    let own = client.only("client");
    assert_eq!((own.on, own.idle), (1, 61));
}
