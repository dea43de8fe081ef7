//! Real, unmodified programs under the preload: python3, perl, curl, java
//! and a C program, judged by what the kernel reports for their sockets
//! (getsockopt inside the program, or the keepalive timer `ss` shows).

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    self, Keepalive, Output, Running, TIMEOUT, bare, commands, configured, have_java,
    kernel_defaults, preloaded, probe, python3, run, run_ok, skip, spawn, ss_keepalive_timer, tool,
};

/// Prints one line per socket family, in the probe's format.
const PYTHON_SCRIPT: &str = r#"
import socket
for family, what in ((socket.AF_INET, "inet"), (socket.AF_INET6, "inet6")):
    s = socket.socket(family, socket.SOCK_STREAM)
    opt = s.getsockopt
    print(what,
          "keepalive=%d" % opt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
          "keepcnt=%d" % opt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
          "keepidle=%d" % opt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
          "keepintvl=%d" % opt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL))
    s.close()
"#;

/// Connects to 127.0.0.1:$ARGV[0] and prints the socket's options.
const PERL_SCRIPT: &str = r#"
use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_KEEPALIVE IPPROTO_TCP TCP_KEEPCNT TCP_KEEPIDLE TCP_KEEPINTVL);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ARGV[0],
                              Proto => 'tcp', Timeout => 10) or die "connect: $@";
sub opt { my $v = getsockopt($s, $_[0], $_[1]); defined $v ? unpack('i', $v) : -1 }
printf "perl keepalive=%d keepcnt=%d keepidle=%d keepintvl=%d\n",
    opt(SOL_SOCKET, SO_KEEPALIVE), opt(IPPROTO_TCP, TCP_KEEPCNT),
    opt(IPPROTO_TCP, TCP_KEEPIDLE), opt(IPPROTO_TCP, TCP_KEEPINTVL);
"#;

/// Connects to 127.0.0.1:args[0] and prints the socket's options.
const JAVA_SOURCE: &str = r#"
import java.net.Socket;
import jdk.net.ExtendedSocketOptions;

public class KeepaliveProbe {
    public static void main(String[] args) throws Exception {
        try (Socket s = new Socket("127.0.0.1", Integer.parseInt(args[0]))) {
            System.out.println("java keepalive=" + (s.getKeepAlive() ? 1 : 0)
                + " keepcnt=" + s.getOption(ExtendedSocketOptions.TCP_KEEPCOUNT)
                + " keepidle=" + s.getOption(ExtendedSocketOptions.TCP_KEEPIDLE)
                + " keepintvl=" + s.getOption(ExtendedSocketOptions.TCP_KEEPINTERVAL));
        }
    }
}
"#;

fn local_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

#[test]
fn c_program_gets_keepalive() {
    let out = run_ok(configured(probe()).args(commands(&["socket inet stream 0"])));
    assert_eq!(
        out.only("socket").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
}

#[test]
fn c_program_without_preload_has_kernel_defaults() {
    let out = run_ok(bare(probe()).args(commands(&["socket inet stream 0"])));
    assert_eq!(out.only("socket").keepalive(), kernel_defaults(), "{out}");
}

#[test]
fn python3_sockets_get_keepalive() {
    let Some(python) = python3() else {
        skip!("python3 is not installed");
    };
    let out = run_ok(configured(python).args(["-c", PYTHON_SCRIPT]));
    for what in ["inet", "inet6"] {
        assert_eq!(
            out.only(what).keepalive(),
            Keepalive::configured(),
            "{what}\n{out}"
        );
    }
}

/// A server that switches keepalive off on its own listener: what it
/// accepts inherits its choice, which the preload must not override.
const PYTHON_LISTENER_OFF: &str = "\
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
l.bind(('127.0.0.1', 0))
l.listen()
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
print(a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
";

#[test]
fn python3_listener_switched_off_by_the_program_stays_off() {
    let Some(python) = python3() else {
        skip!("python3 is not installed");
    };
    let out = run_ok(configured(python).args(["-c", PYTHON_LISTENER_OFF]));
    // accepted: the program's own "off"; client: the preload's "on".
    assert_eq!(out.stdout, "0 1\n", "{out}");
}

#[test]
fn perl_io_socket_inet_gets_keepalive() {
    if tool("perl").is_none() {
        skip!("perl is not installed");
    }
    let listener = local_listener();
    let port = listener.local_addr().expect("address").port();
    let out = run_ok(configured("perl").args(["-e", PERL_SCRIPT, &port.to_string()]));
    assert_eq!(
        out.only("perl").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
}

#[test]
fn java_socket_gets_keepalive() {
    if !have_java() {
        skip!("java is not installed (`java -version` failed)");
    }
    // The source-file launcher runs only a file named `*.java`.
    let source = tempfile::Builder::new()
        .prefix("KeepaliveProbe-")
        .suffix(".java")
        .tempfile()
        .expect("create the Java source file");
    std::fs::write(source.path(), JAVA_SOURCE).expect("write the Java source");
    let listener = local_listener();
    let port = listener.local_addr().expect("address").port();
    let out = run_ok(
        configured("java")
            .env_remove("JAVA_TOOL_OPTIONS")
            .arg(source.path())
            .arg(port.to_string()),
    );
    assert_eq!(
        out.only("java").keepalive(),
        Keepalive::configured(),
        "{out}"
    );
}

/// An HTTP server on 127.0.0.1 that accepts one connection, reads the
/// request, and then never answers; everything it does is bounded in time.
struct StalledServer {
    port: u16,
    requested: mpsc::Receiver<()>,
}

impl StalledServer {
    fn start() -> StalledServer {
        let listener = local_listener();
        let port = listener.local_addr().expect("address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (tx, requested) = mpsc::channel();
        thread::spawn(move || {
            let deadline = Instant::now() + TIMEOUT;
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            };
            conn.set_nonblocking(false).expect("blocking connection");
            conn.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(());
            // Stall: hold the connection until the client goes away.
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
        StalledServer { port, requested }
    }

    /// Starts curl, without its own keepalive, on this server, and waits
    /// until the server has its request.
    fn curl(&self, mut cmd: std::process::Command) -> Running {
        cmd.args(["--no-keepalive", "-s", "-m", "10"])
            .arg(format!("http://127.0.0.1:{}/", self.port));
        let curl = Running(spawn(&mut cmd));
        self.requested
            .recv_timeout(TIMEOUT)
            .expect("curl's request never reached the server");
        curl
    }

    /// The lines `ss` shows for established connections to this server,
    /// that is, curl's side of the connection.
    fn ss_client_lines(&self) -> Vec<String> {
        let mut cmd = bare("ss");
        cmd.args(["-tnoH", "state", "established", "dport", "="])
            .arg(format!(":{}", self.port));
        let out = run(&mut cmd, TIMEOUT);
        out.assert_success();
        out.stdout.lines().map(str::to_owned).collect()
    }
}

#[test]
fn curl_connection_has_a_keepalive_timer_in_ss() {
    if tool("curl").is_none() || tool("ss").is_none() {
        skip!("curl or ss is not installed");
    }
    let server = StalledServer::start();
    let mut cmd = preloaded("curl");
    cmd.env("KEEPIDLE", "30");
    let _curl = server.curl(cmd);
    let deadline = Instant::now() + Duration::from_secs(5);
    let timer = loop {
        let lines = server.ss_client_lines();
        if let Some(timer) = lines.iter().find_map(|l| ss_keepalive_timer(l)) {
            break timer;
        }
        assert!(
            Instant::now() < deadline,
            "no keepalive timer on curl's connection in ss: {lines:#?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        timer > Duration::ZERO && timer <= Duration::from_secs(30),
        "keepalive timer {timer:?}, want 0 < t <= 30 s (KEEPIDLE=30)"
    );
}

#[test]
fn curl_without_preload_has_no_keepalive_timer() {
    if tool("curl").is_none() || tool("ss").is_none() {
        skip!("curl or ss is not installed");
    }
    let server = StalledServer::start();
    let _curl = server.curl(bare("curl"));
    let lines = server.ss_client_lines();
    assert_eq!(lines.len(), 1, "want curl's connection in ss: {lines:#?}");
    assert!(
        !lines[0].contains("keepalive"),
        "curl --no-keepalive has a keepalive timer without the preload: {}",
        lines[0]
    );
}

/// Runs `python3 -c script` under the preload and `strace -f -e trace=EXPR`;
/// returns the output and the trace.
fn strace_python(env: &[(&str, &str)], expr: &str, script: &str) -> Option<(Output, String)> {
    let python = python3()?;
    tool("strace")?;
    let trace = tempfile::NamedTempFile::new().expect("create the trace file");
    let mut cmd = bare("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        &format!("trace={expr}"),
        "-e",
        "signal=none",
        "-o",
    ])
    .arg(trace.path())
    .arg("-E")
    .arg(format!("LD_PRELOAD={}", crate::util::preload().display()));
    for (name, value) in env {
        cmd.arg("-E").arg(format!("{name}={value}"));
    }
    cmd.arg("--").arg(python).args(["-c", script]);
    let out = run_ok(&mut cmd);
    let trace = std::fs::read_to_string(trace.path()).expect("read the trace");
    Some((out, trace))
}

/// A unix-socket server (dbus, postgres...) pays nothing for the preload:
/// accept() on its own AF_UNIX listener makes no extra system call.
const PYTHON_UNIX_SERVER: &str = "\
import os, socket, tempfile
path = os.path.join(tempfile.mkdtemp(), 's')
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(path)
l.listen()
for _ in range(3):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    a, _ = l.accept()
    a.close(); c.close()
os.unlink(path)
print('accepted 3')
";

#[test]
fn unix_server_accepts_without_extra_system_calls() {
    let Some((out, trace)) = strace_python(
        &util::SETTINGS,
        "getsockopt,setsockopt,accept,accept4",
        PYTHON_UNIX_SERVER,
    ) else {
        skip!("python3 or strace is not installed");
    };
    assert_eq!(out.stdout, "accepted 3\n", "{out}");
    let accepts = trace.lines().filter(|l| l.contains("accept")).count();
    assert_eq!(accepts, 3, "the control: strace saw the accepts\n{trace}");
    let extra: Vec<&str> = trace.lines().filter(|l| l.contains("sockopt")).collect();
    assert!(extra.is_empty(), "extra calls: {extra:?}\n{trace}");
}

/// A program's own listener at a high descriptor number, keepalive
/// switched off by the program: its connections keep the program's choice.
const PYTHON_HIGH_LISTENER_OFF: &str = "\
import os, socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
l.bind(('127.0.0.1', 0))
l.listen()
high = socket.socket(fileno=os.dup2(l.fileno(), 5000))
c = socket.create_connection(l.getsockname())
a, _ = high.accept()
print(a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
";

#[test]
fn high_numbered_listener_keeps_the_programs_choice() {
    let Some(python) = python3() else {
        skip!("python3 is not installed");
    };
    let out = run_ok(configured(python).args(["-c", PYTHON_HIGH_LISTENER_OFF]));
    assert_eq!(out.stdout, "0\n", "{out}");
}

#[test]
fn two_copies_of_the_library_act_once() {
    let copy = tempfile::Builder::new()
        .prefix("libkeepalive-copy-")
        .suffix(".so")
        .tempfile()
        .expect("create the copy")
        .into_temp_path();
    std::fs::copy(crate::util::preload(), &copy).expect("copy the library");
    let both = format!("{}:{}", copy.display(), crate::util::preload().display());
    let script = "import socket; s = socket.socket(); print(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))";
    let Some((out, trace)) = strace_python(
        &[("LD_PRELOAD", &both), ("KEEPIDLE", "abc")],
        "setsockopt",
        script,
    ) else {
        skip!("strace is not installed");
    };
    assert_eq!(out.stdout, "1\n", "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "one warning, not two\n{out}");
    let sets = trace.lines().filter(|l| l.contains("SO_KEEPALIVE")).count();
    assert_eq!(sets, 1, "SO_KEEPALIVE set once\n{trace}");
}

#[test]
fn auto_user_timeout_reads_no_sysctl_when_every_value_is_set() {
    let script = "import socket; s = socket.socket(); print(s.getsockopt(socket.IPPROTO_TCP, 18))";
    let env = [
        ("KEEPIDLE", "10"),
        ("KEEPINTVL", "5"),
        ("KEEPCNT", "4"),
        ("TCP_USER_TIMEOUT", "auto"),
    ];
    let Some((out, trace)) = strace_python(&env, "openat,open", script) else {
        skip!("python3 or strace is not installed");
    };
    assert_eq!(out.stdout, "30000\n", "{out}");
    assert!(!trace.contains("tcp_keepalive"), "{trace}");
    // The control: with one value unset the sysctl is read.
    let env = [
        ("KEEPIDLE", "10"),
        ("KEEPCNT", "4"),
        ("TCP_USER_TIMEOUT", "auto"),
    ];
    let (_, trace) = strace_python(&env, "openat,open", script).expect("ran once already");
    assert!(trace.contains("tcp_keepalive_intvl"), "{trace}");
}
