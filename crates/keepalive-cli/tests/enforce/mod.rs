//! Issue 6: `keepalive enforce` and `keepalive run --enforce`, judged by
//! what a statically linked C program (no preload can reach it) reads back
//! with getsockopt, and by what the kernel says is attached (BPF_PROG_QUERY).
//! Root only: skipped with the reason otherwise.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use keepalive::KeepaliveState;
use keepalive_bpf::Hierarchy;
use crate::util::json::{
    EnforceSummary, Enforced, Enforcement, Message, Policy, Removed, messages, only_message,
};
use crate::util::{
    Keepalive, Output, Record, Running, TIMEOUT, bare, kernel_defaults, preload, run, skip, spawn,
    tool, wait,
};

/// The values most tests enforce, as `keepalive run --enforce` takes them.
const ENFORCE: [&str; 8] = [
    "--idle",
    "11",
    "--interval",
    "7",
    "--count",
    "3",
    "--user-timeout",
    "15s",
];

/// What a connection gets with [`ENFORCE`].
const ENFORCED: Keepalive = Keepalive {
    on: 1,
    count: 3,
    idle: 11,
    interval: 7,
    user_timeout: 15_000,
};

/// Why these tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    if let Err(e) = keepalive_bpf::check_privileges() {
        return Some(e.to_string());
    }
    if let Err(e) = Hierarchy::find() {
        return Some(e.to_string());
    }
    if tool("gcc").is_none() {
        return Some("gcc is not installed".to_owned());
    }
    if static_client().is_none() {
        return Some("libc.a is missing (install libc6-dev): no static C program".to_owned());
    }
    None
}

/// The test client, compiled with `gcc -static` so that no preload can
/// reach it:
///
/// - `connect ADDR PORT [IDLE]`: connects (with IDLE, switching keepalive
///   on itself first, with TCP_KEEPIDLE=IDLE) and prints `connected ...`;
/// - `serve inet|inet6`: listens on the loopback, prints
///   `listening port=N`, accepts one connection and prints `accepted ...`;
///
/// where `...` is `keepalive= keepcnt= keepidle= keepintvl= user_timeout=`
/// from getsockopt.
const CLIENT_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(2); }

static int opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) != 0) return -1;
    return v;
}

static void show(const char *what, int fd) {
    printf("%s keepalive=%d keepcnt=%d keepidle=%d keepintvl=%d user_timeout=%d\n", what,
           opt(fd, SOL_SOCKET, SO_KEEPALIVE), opt(fd, IPPROTO_TCP, TCP_KEEPCNT),
           opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), opt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
           opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT));
    fflush(stdout);
}

int main(int argc, char **argv) {
    struct sockaddr_storage ss;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (argc >= 4 && !strcmp(argv[1], "connect")) {
        int port = atoi(argv[3]);
        if (inet_pton(AF_INET, argv[2], &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET; in4->sin_port = htons(port); len = sizeof *in4;
        } else if (inet_pton(AF_INET6, argv[2], &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6; in6->sin6_port = htons(port); len = sizeof *in6;
        } else {
            die("address");
        }
        int fd = socket(ss.ss_family, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (argc >= 5) {
            int one = 1, idle = atoi(argv[4]);
            if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
                setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle))
                die("setsockopt");
        }
        if (connect(fd, (struct sockaddr *)&ss, len)) die("connect");
        show("connected", fd);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "serve")) {
        int v6 = !strcmp(argv[2], "inet6");
        if (v6) {
            in6->sin6_family = AF_INET6; in6->sin6_addr = in6addr_loopback; len = sizeof *in6;
        } else {
            in4->sin_family = AF_INET; in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof *in4;
        }
        int l = socket(ss.ss_family, SOCK_STREAM, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1)) die("listen");
        if (getsockname(l, (struct sockaddr *)&ss, &len)) die("getsockname");
        printf("listening port=%d\n", ntohs(v6 ? in6->sin6_port : in4->sin_port));
        fflush(stdout);
        int c = accept(l, NULL, NULL);
        if (c < 0) die("accept");
        show("accepted", c);
        return 0;
    }
    fprintf(stderr, "usage: enforce_client connect ADDR PORT [IDLE] | serve inet|inet6\n");
    return 2;
}
"#;

/// The static client, built once; `None` when static linking is not
/// possible (no libc.a).
fn static_client() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let libc_a = Command::new("gcc")
            .arg("-print-file-name=libc.a")
            .output()
            .ok()?;
        let libc_a = PathBuf::from(String::from_utf8_lossy(&libc_a.stdout).trim());
        if !libc_a.is_absolute() || !libc_a.is_file() {
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).ok()?;
        let pid = std::process::id();
        let src = dir.join(format!("enforce_client.{pid}.c"));
        std::fs::write(&src, CLIENT_C).expect("write the client's source");
        let out = dir.join("enforce_client");
        let partial = dir.join(format!("enforce_client.{pid}.partial"));
        let mut gcc = Command::new("gcc");
        gcc.args(["-static", "-O2", "-Wall", "-o"])
            .arg(&partial)
            .arg(&src);
        let result = run(&mut gcc, Duration::from_secs(120));
        let _ = std::fs::remove_file(&src);
        assert!(result.status.success(), "gcc -static failed\n{result}");
        std::fs::rename(&partial, &out).expect("rename the client into place");
        Some(out)
    })
    .as_deref()
}

fn client() -> &'static Path {
    static_client().expect("checked by unavailable()")
}

/// `keepalive` with none of the preload's variables set.
fn keepalive() -> Command {
    bare(env!("CARGO_BIN_EXE_keepalive"))
}

/// `keepalive run --enforce [args] -- client [client_args]`.
fn run_enforced(args: &[&str], client_args: &[&str]) -> Output {
    let mut cmd = keepalive();
    cmd.args(["run", "--enforce"])
        .args(args)
        .arg("--")
        .arg(client())
        .args(client_args);
    run(&mut cmd, TIMEOUT)
}

/// The one `connected` line of a client run, as keepalive values.
fn connected(out: &Output) -> Keepalive {
    out.assert_success();
    out.only("connected").keepalive()
}

/// What the kernel gives a connection on its own: keepalive off.
fn untouched() -> Keepalive {
    kernel_defaults()
}

/// A loopback listener for the client to connect to; IPv6 only when the
/// host has `::1`.
fn listener(addr: &str) -> Option<TcpListener> {
    TcpListener::bind((addr, 0)).ok()
}

fn families() -> Vec<&'static str> {
    let mut addrs = vec!["127.0.0.1"];
    if listener("::1").is_some() {
        addrs.push("::1");
    } else {
        eprintln!("note: no ::1 on this host, IPv6 not tested");
    }
    addrs
}

/// A cgroup for one test, with whatever is enforced on it removed when
/// dropped.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let h = Hierarchy::find().expect("checked by unavailable()");
        let path = h
            .mount_point()
            .join(format!("keepalive-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("create the cgroup {}: {e}", path.display()));
        TestCgroup(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }

    /// The client run inside this cgroup: a shell moves itself in, then
    /// becomes the client.
    fn client(&self, args: &[&str]) -> Output {
        let mut cmd = bare("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(self.path())
            .arg(client())
            .args(args);
        run(&mut cmd, TIMEOUT)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = keepalive_bpf::remove(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `keepalive enforce --json [args]`, which must succeed.
fn enforce_json(args: &[&str]) -> Output {
    let out = run(keepalive().arg("enforce").arg("--json").args(args), TIMEOUT);
    out.assert_success();
    out
}

/// `keepalive enforce --json [args]`: its one line, an `enforced`.
fn enforce(args: &[&str]) -> Enforced {
    let out = enforce_json(args);
    match only_message(&out) {
        Message::Enforced(e) => e,
        other => panic!("not an enforced line: {other:?}\n{out}"),
    }
}

/// `keepalive enforce --json --remove [args]`: its one line, a `removed`.
fn remove(args: &[&str]) -> Removed {
    let out = enforce_json(&[args, &["--remove"]].concat());
    match only_message(&out) {
        Message::Removed(r) => r,
        other => panic!("not a removed line: {other:?}\n{out}"),
    }
}

/// `keepalive enforce --status --json`: the `enforcement` lines and the
/// `enforce_summary` that must end them; checks that the summary counts
/// the lines before it.
fn enforce_status() -> (Vec<Enforcement>, EnforceSummary) {
    let out = enforce_json(&["--status"]);
    let mut all = messages(&out);
    let Some(Message::EnforceSummary(summary)) = all.pop() else {
        panic!("--status does not end with an enforce_summary\n{out}");
    };
    let enforcements: Vec<Enforcement> = all
        .into_iter()
        .map(|m| match m {
            Message::Enforcement(e) => e,
            other => panic!("not an enforcement line: {other:?}\n{out}"),
        })
        .collect();
    assert_eq!(
        summary.enforcements,
        enforcements.len() as u64,
        "the summary counts the lines\n{out}"
    );
    let attached = enforcements.iter().filter(|e| e.attached).count() as u64;
    assert_eq!(summary.attached, attached, "{out}");
    (enforcements, summary)
}

fn settings(idle: u16, interval: Option<u16>, count: Option<u8>) -> Policy {
    Policy {
        idle: Some(idle),
        interval,
        count,
        user_timeout_ms: None,
        user_timeout_auto: false,
        force: false,
    }
}

#[test]
fn static_client_gets_the_values_only_with_enforce() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    for addr in families() {
        let server = listener(addr).unwrap();
        let port = server.local_addr().unwrap().port().to_string();
        let out = run_enforced(&ENFORCE, &["connect", addr, &port]);
        assert_eq!(connected(&out), ENFORCED, "{addr}\n{out}");
        // The listener is in the test's cgroup: its side is left alone.
        let (accepted, _) = server.accept().unwrap();
        assert!(!KeepaliveState::read(&accepted).unwrap().enabled, "{addr}");

        // The preload cannot reach it: keepalive stays off, and `run` says
        // what to use instead.
        let mut cmd = keepalive();
        cmd.env("KEEPALIVE_LIBRARY", preload())
            .arg("run")
            .args(ENFORCE)
            .arg("--")
            .arg(client())
            .args(["connect", addr, &port]);
        let out = run(&mut cmd, TIMEOUT);
        assert_eq!(connected(&out), untouched(), "{addr}\n{out}");
        assert!(
            out.stderr.contains("is statically linked")
                && out.stderr.contains("`keepalive run --enforce`"),
            "{out}"
        );
    }
}

#[test]
fn passive_side_gets_the_values() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    for (family, addr) in [("inet", "127.0.0.1"), ("inet6", "::1")] {
        if family == "inet6" && listener(addr).is_none() {
            eprintln!("note: no ::1 on this host, IPv6 not tested");
            continue;
        }
        let mut cmd = keepalive();
        cmd.args(["run", "--enforce"])
            .args(ENFORCE)
            .arg("--")
            .arg(client())
            .args(["serve", family]);
        let mut child = spawn(&mut cmd);
        // Read `listening port=N` as soon as it comes, with a deadline.
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            lines.map_while(Result::ok).collect::<Vec<_>>()
        });
        let first = rx.recv_timeout(TIMEOUT).unwrap_or_default();
        let Some(port) = first
            .strip_prefix("listening port=")
            .and_then(|p| p.parse::<u16>().ok())
        else {
            drop(Running(child));
            panic!("{family}: no `listening port=` line: {first:?}");
        };
        let stream = TcpStream::connect((addr, port)).unwrap();
        // The test's own side is outside the cgroup: untouched.
        assert!(!KeepaliveState::read(&stream).unwrap().enabled);
        let out = wait(child, TIMEOUT);
        let rest = reader.join().unwrap();
        out.assert_success();
        let accepted = rest
            .iter()
            .find_map(|l| Record::parse(l).filter(|r| r.what == "accepted"))
            .unwrap_or_else(|| panic!("{family}: no `accepted` line in {rest:?}\n{out}"));
        assert_eq!(accepted.keepalive(), ENFORCED, "{family}\n{out}");
    }
}

#[test]
fn default_mode_keeps_a_programs_own_keepalive_and_force_replaces_it() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    // The client switches keepalive on itself with TCP_KEEPIDLE=33.
    let own = ["connect", "127.0.0.1", &port, "33"];
    let defaults = untouched();

    let kept = connected(&run_enforced(&ENFORCE, &own));
    assert_eq!(
        kept,
        Keepalive {
            on: 1,
            idle: 33,
            ..defaults
        }
    );

    let mut forced = vec!["--force"];
    forced.extend(ENFORCE);
    assert_eq!(connected(&run_enforced(&forced, &own)), ENFORCED);
}

#[test]
fn changing_the_values_reaches_the_next_connection_without_reload() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("update");
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let connect = ["connect", "127.0.0.1", &port];
    let defaults = untouched();

    let first = enforce(&[
        "--cgroup",
        cg.arg(),
        "--idle",
        "11",
        "--user-timeout",
        "auto",
    ]);
    assert_eq!(first.change, "attached");
    assert_eq!(first.cgroup, cg.path());
    assert!(first.pin_dir.join("link").exists() && first.pin_dir.join("settings").exists());
    // auto = idle + interval x count, with the kernel's interval and count.
    let auto = (11 + defaults.interval * defaults.count) * 1000;
    assert_eq!(
        connected(&cg.client(&connect)),
        Keepalive {
            on: 1,
            idle: 11,
            user_timeout: auto,
            ..defaults
        }
    );

    let second = enforce(&["--cgroup", cg.arg(), "--idle", "22", "--count", "4"]);
    assert_eq!(second.change, "updated");
    assert_eq!(second.settings, settings(22, None, Some(4)));
    assert_eq!(
        second.previous,
        Some(Policy {
            user_timeout_auto: true,
            ..settings(11, None, None)
        })
    );
    // The same program and link: only the map changed.
    assert_eq!(
        (second.prog_id, second.link_id, second.cgroup_id),
        (first.prog_id, first.link_id, first.cgroup_id)
    );
    assert_eq!(
        connected(&cg.client(&connect)),
        Keepalive {
            on: 1,
            idle: 22,
            count: 4,
            ..defaults
        }
    );
}

#[test]
fn remove_leaves_no_program_attached_and_no_pin() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("remove");
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let connect = ["connect", "127.0.0.1", &port];

    let enforced = enforce(&["--cgroup", cg.arg(), "--idle", "11", "--interval", "7"]);
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [enforced.prog_id],
        "BPF_PROG_QUERY on the cgroup"
    );
    let (status, _) = enforce_status();
    let listed = status
        .iter()
        .find(|e| e.cgroup_id == enforced.cgroup_id)
        .expect("the cgroup in --status");
    assert_eq!(listed.cgroup.as_deref(), Some(cg.path()));
    assert!(listed.attached && listed.link_pinned);
    assert_eq!(listed.prog_id, Some(enforced.prog_id));
    assert_eq!(listed.link_id, Some(enforced.link_id));
    assert_eq!(listed.pin_dir, enforced.pin_dir);
    assert_eq!(listed.settings, Some(settings(11, Some(7), None)));
    assert_eq!(connected(&cg.client(&connect)).on, 1);

    let removed = remove(&["--cgroup", cg.arg()]);
    assert_eq!(removed.cgroup_id, enforced.cgroup_id);
    assert_eq!(removed.cgroup, cg.path());
    assert_eq!(
        removed
            .detached
            .iter()
            .map(|a| a.prog_id)
            .collect::<Vec<_>>(),
        [enforced.prog_id]
    );
    assert_eq!(
        removed.unpinned.as_deref(),
        Some(enforced.pin_dir.as_path())
    );
    // Judged by the kernel, not by our own bookkeeping.
    assert_eq!(
        keepalive_bpf::attached_programs(cg.path()).unwrap(),
        [] as [u32; 0],
        "BPF_PROG_QUERY after --remove"
    );
    assert!(!enforced.pin_dir.exists());
    let (status, _) = enforce_status();
    assert!(status.iter().all(|e| e.cgroup_id != enforced.cgroup_id));
    assert_eq!(connected(&cg.client(&connect)), untouched());
}

#[test]
fn run_enforce_passes_the_exit_status_on_and_cleans_up() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let here = Hierarchy::find().unwrap().current().unwrap();
    // The command prints its cgroup's id and whether its settings are
    // pinned, then exits 3.
    let script = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        id=$(stat -c %i "$dir")
        test -e "/sys/fs/bpf/keepalive/cgroup-$id/settings" && pinned=1 || pinned=0
        echo "cgroup id=$id pinned=$pinned"
        exit 3
    "#;
    let mount = Hierarchy::find().unwrap().mount_point().to_path_buf();
    let out = run(
        keepalive()
            .args(["run", "--enforce", "--idle", "5", "--", "sh", "-c", script])
            .arg(&mount),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(3), "{out}");
    let line = out.only("cgroup");
    assert_eq!(line.get("pinned"), 1, "{out}");
    let pins = PathBuf::from(format!("/sys/fs/bpf/keepalive/cgroup-{}", line.get("id")));
    assert!(!pins.exists(), "{} left behind", pins.display());
    let cgroup = here.join(format!("keepalive-run-{}", out.pid));
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());

    // Killed by a signal: so is keepalive.
    let out = run(
        keepalive().args(["run", "--enforce", "--", "sh", "-c", "kill -TERM $$"]),
        TIMEOUT,
    );
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out}");
    assert!(!here.join(format!("keepalive-run-{}", out.pid)).exists());

    let out = run(
        keepalive().args(["run", "--enforce", "--", "no-such-command-here"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(127), "{out}");
}

#[test]
fn errors_name_the_problem() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let out = run(keepalive().args(["enforce", "--cgroup", "/tmp"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("/tmp is not a cgroup v2 directory (cgroup v2 is mounted at "),
        "{out}"
    );

    let out = run(
        keepalive().args(["enforce", "--status", "--idle", "5"]),
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{out}");

    let Some(setpriv) = tool("setpriv") else {
        eprintln!("note: setpriv is not installed, the non-root error is not tested");
        return;
    };
    for args in [
        &["enforce", "--cgroup", "/sys/fs/cgroup"][..],
        &["run", "--enforce", "--", "true"],
    ] {
        let mut cmd = bare(&setpriv);
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_keepalive"))
        .args(args);
        let out = run(&mut cmd, TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(
            out.stderr.contains("needs root (CAP_BPF and CAP_NET_ADMIN"),
            "{out}"
        );
    }
}

/// The command's own cgroups below the run cgroup: empty ones are removed
/// with it; a process left in one keeps enforcement, and the cgroup stays.
#[test]
fn run_enforce_minds_the_commands_own_cgroups() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let here = Hierarchy::find().unwrap().current().unwrap();
    let mount = Hierarchy::find().unwrap().mount_point().to_path_buf();

    let empty_only = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        mkdir "$dir/empty" "$dir/empty/deeper"
    "#;
    let out = run(
        keepalive()
            .args(["run", "--enforce", "--", "sh", "-c", empty_only])
            .arg(&mount),
        TIMEOUT,
    );
    let left = here.join(format!("keepalive-run-{}", out.pid));
    let was_left = left.exists();
    if was_left {
        // Clean up before asserting.
        let _ = run(
            keepalive()
                .arg("enforce")
                .arg("--cgroup")
                .arg(&left)
                .arg("--remove"),
            TIMEOUT,
        );
        for dir in [left.join("empty/deeper"), left.join("empty"), left.clone()] {
            let _ = std::fs::remove_dir(dir);
        }
    }
    assert!(out.status.success(), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    assert!(!was_left, "{} left behind\n{out}", left.display());

    let leaves_a_process = r#"
        dir="$0$(sed -n 's/^0:://p' /proc/self/cgroup)"
        mkdir "$dir/worker"
        sh -c 'echo $$ > "$1/worker/cgroup.procs"; exec sleep 30' sh "$dir" </dev/null >/dev/null 2>&1 &
        echo "sleeper pid=$!"
        sleep 0.3
    "#;
    let out = run(
        keepalive()
            .args([
                "run",
                "--enforce",
                "--idle",
                "9",
                "--",
                "sh",
                "-c",
                leaves_a_process,
            ])
            .arg(&mount),
        TIMEOUT,
    );
    let cgroup = here.join(format!("keepalive-run-{}", out.pid));
    let sleeper = out.only("sleeper").get("pid") as i32;
    let kept = cgroup.exists();
    let id = std::fs::metadata(&cgroup).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let link_pinned = id
        .as_ref()
        .is_ok_and(|id| PathBuf::from(format!("/sys/fs/bpf/keepalive/cgroup-{id}/link")).exists());
    // Clean up before asserting.
    // SAFETY: kill(2) on the sleeper this test started.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    let worker = cgroup.join("worker");
    for _ in 0..100 {
        if std::fs::read_to_string(worker.join("cgroup.procs"))
            .map_or(true, |p| p.trim().is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let removed = run(
        keepalive()
            .arg("enforce")
            .arg("--cgroup")
            .arg(&cgroup)
            .arg("--remove"),
        TIMEOUT,
    );
    let _ = std::fs::remove_dir(&worker);
    let _ = std::fs::remove_dir(&cgroup);
    assert!(out.status.success(), "{out}");
    assert!(
        out.stderr.contains("keepalive stays enforced there"),
        "{out}"
    );
    assert!(
        kept,
        "the cgroup was removed under a running process\n{out}"
    );
    assert!(
        link_pinned,
        "enforcement ended under a running process\n{out}"
    );
    assert!(removed.status.success(), "{removed}");
}
