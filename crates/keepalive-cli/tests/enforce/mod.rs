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

mod existing;
mod kubernetes;
mod lifecycle;
mod max_idle;
mod nested;
mod paths;
mod unit;
mod values;

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

/// What every static C client of these tests starts with: the headers,
/// `die`, and `show(what, fd)`, which prints `what keepalive= keepcnt=
/// keepidle= keepintvl= user_timeout=` from getsockopt.
pub(super) const SHOW_C: &str = r#"
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

"#;

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
        std::fs::write(&src, format!("{SHOW_C}{CLIENT_C}")).expect("write the client's source");
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
        mode: "default".to_owned(),
        max_idle_secs: None,
    }
}
