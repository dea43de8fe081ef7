//! Issue 10 item 1: `enforce --existing` reaches connections made before
//! it, both ways (the BPF iterator, and the pidfd fallback forced with
//! `KEEPALIVE_EXISTING_VIA=pidfd`), judged by a statically linked C client
//! that holds them and reads its own options back with getsockopt when
//! asked on stdin, and by `ss -tno`.

use std::io::{BufRead, BufReader, Lines, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, ChildStdout, Stdio};

use super::*;
use crate::util::{run_ok, ss_keepalive_timer};

/// The holding client, compiled with `gcc -static`:
///
/// `hold ADDR PORT [IDLE]` listens on 127.0.0.1 (port 0), connects to
/// ADDR:PORT (with IDLE, switching keepalive on itself first, with
/// TCP_KEEPIDLE=IDLE), prints `ready listen_port=N local_port=M` and then,
/// for each line on stdin: `show` prints `client ...` and `listener ...`;
/// `accept` accepts one connection and prints `accepted ...`; `go N`
/// does what a Go program does after connecting (SO_KEEPALIVE 1, then
/// TCP_KEEPIDLE and TCP_KEEPINTVL N) and prints `set ...`; where `...`
/// is `keepalive= keepcnt= keepidle= keepintvl= user_timeout=`. Exits at
/// the end of stdin.
const HOLDER_C: &str = r#"
int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[1], "hold")) {
        fprintf(stderr, "usage: existing_client hold ADDR PORT [IDLE]\n");
        return 2;
    }
    struct sockaddr_in l_addr, c_addr, me;
    socklen_t len = sizeof l_addr;
    memset(&l_addr, 0, sizeof l_addr);
    l_addr.sin_family = AF_INET;
    l_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&l_addr, len) || listen(l, 8)) die("listen");
    if (getsockname(l, (struct sockaddr *)&l_addr, &len)) die("getsockname");

    memset(&c_addr, 0, sizeof c_addr);
    c_addr.sin_family = AF_INET;
    c_addr.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &c_addr.sin_addr) != 1) die("address");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0) die("socket");
    if (argc >= 5) {
        int one = 1, idle = atoi(argv[4]);
        if (setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
            setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle))
            die("setsockopt");
    }
    if (connect(c, (struct sockaddr *)&c_addr, sizeof c_addr)) die("connect");
    len = sizeof me;
    if (getsockname(c, (struct sockaddr *)&me, &len)) die("getsockname");
    printf("ready listen_port=%d local_port=%d\n", ntohs(l_addr.sin_port), ntohs(me.sin_port));
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "show", 4)) {
            show("client", c);
            show("listener", l);
        } else if (!strncmp(line, "accept", 6)) {
            int a = accept(l, NULL, NULL);
            if (a < 0) die("accept");
            show("accepted", a);
            close(a);
        } else if (!strncmp(line, "go ", 3)) {
            int one = 1, n = atoi(line + 3);
            if (setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
                setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &n, sizeof n) ||
                setsockopt(c, IPPROTO_TCP, TCP_KEEPINTVL, &n, sizeof n))
                die("setsockopt");
            show("set", c);
        }
    }
    return 0;
}
"#;

/// The holding client, built once; `None` without static linking.
fn holder_client() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        // The enforce client's build says whether `gcc -static` works.
        static_client()?;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let pid = std::process::id();
        let src = dir.join(format!("existing_client.{pid}.c"));
        std::fs::write(&src, format!("{SHOW_C}{HOLDER_C}")).expect("write the client's source");
        let out = dir.join("existing_client");
        let partial = dir.join(format!("existing_client.{pid}.partial"));
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

/// A holding client running in a cgroup, talked to through its stdin.
struct Holder {
    child: Running,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    listen_port: u16,
    local_port: u16,
}

impl Holder {
    /// Starts `hold 127.0.0.1 PORT [IDLE]` inside `cg`.
    fn start(cg: &TestCgroup, port: u16, idle: Option<&str>) -> Holder {
        Holder::start_in(cg.path(), port, idle)
    }

    /// Starts `hold 127.0.0.1 PORT [IDLE]` inside the cgroup at `cgroup`.
    fn start_in(cgroup: &Path, port: u16, idle: Option<&str>) -> Holder {
        let mut cmd = bare("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(cgroup)
            .arg(holder_client().expect("checked"))
            .args(["hold", "127.0.0.1", &port.to_string()])
            .args(idle)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn the holding client");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let child = Running(child);
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .next()
            .and_then(Result::ok)
            .expect("a `ready` line from the client");
        let r = Record::parse(&ready).unwrap_or_else(|| panic!("{ready:?}"));
        assert_eq!(r.what, "ready", "{ready}");
        let port_of = |key: &str| {
            let v = ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {ready:?}"));
            v.parse::<u16>().unwrap()
        };
        Holder {
            listen_port: port_of("listen_port="),
            local_port: port_of("local_port="),
            child,
            stdin,
            lines,
        }
    }

    fn ask(&mut self, command: &str, answers: usize) -> Vec<Record> {
        writeln!(self.stdin, "{command}").expect("write to the client");
        self.stdin.flush().unwrap();
        (0..answers)
            .map(|_| {
                let line = self
                    .lines
                    .next()
                    .and_then(Result::ok)
                    .expect("an answer from the client");
                Record::parse(&line).unwrap_or_else(|| panic!("{line:?}"))
            })
            .collect()
    }

    /// (client, listener) as the client reads them.
    fn show(&mut self) -> (Keepalive, Keepalive) {
        let r = self.ask("show", 2);
        assert_eq!(
            (r[0].what.as_str(), r[1].what.as_str()),
            ("client", "listener")
        );
        (r[0].keepalive(), r[1].keepalive())
    }

    /// `go N`: keepalive switched on and idle and interval N by the
    /// client itself, after connecting; what its socket has then.
    fn go(&mut self, secs: u32) -> Keepalive {
        let r = self.ask(&format!("go {secs}"), 1);
        assert_eq!(r[0].what, "set");
        r[0].keepalive()
    }

    /// A connection from outside to its listener, accepted: what the
    /// accepted socket has.
    fn accept(&mut self) -> Keepalive {
        let _outside = TcpStream::connect(("127.0.0.1", self.listen_port)).unwrap();
        let r = self.ask("accept", 1);
        assert_eq!(r[0].what, "accepted");
        r[0].keepalive()
    }

    /// `ss -tno` of its connection to the test's server: the keepalive
    /// timer, if one runs.
    fn ss_timer(&self) -> Option<Duration> {
        let out = run_ok(Command::new("ss").args([
            "-tnoH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{}", self.local_port),
        ]));
        let line = out.stdout.lines().next().unwrap_or_default().to_owned();
        assert!(!line.is_empty(), "ss shows no connection\n{out}");
        ss_keepalive_timer(&line)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
    }
}

/// The `existing` line of `enforce --json --existing`.
#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
struct ExistingLine {
    way: String,
    fallback: Option<String>,
    namespaces: u64,
    processes: u64,
    changed: u64,
    listening: u64,
    left_alone: u64,
    failed: u64,
    unreachable: u64,
}

/// `keepalive enforce --json --existing [args]`, with the way forced by
/// `way`: its `existing` line (after its `enforced` line).
fn enforce_existing(way: &str, args: &[&str]) -> ExistingLine {
    let mut cmd = keepalive();
    cmd.env("KEEPALIVE_EXISTING_VIA", way)
        .args(["enforce", "--json", "--existing"])
        .args(args);
    let out = run(&mut cmd, TIMEOUT);
    out.assert_success();
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["type"], "enforced", "{out}");
    assert_eq!(lines[1]["type"], "existing", "{out}");
    serde_json::from_value(lines[1]["data"].clone()).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

const WAYS: [&str; 2] = ["iterator", "pidfd"];

fn existing_unavailable() -> Option<String> {
    if let Some(why) = unavailable() {
        return Some(why);
    }
    if tool("ss").is_none() {
        return Some("ss (iproute2) is not installed".to_owned());
    }
    None
}

#[test]
fn connections_made_before_get_the_values_both_ways() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    for way in WAYS {
        let cg = TestCgroup::new(&format!("existing-{way}"));
        let server = listener("127.0.0.1").unwrap();
        let port = server.local_addr().unwrap().port();
        let mut holder = Holder::start(&cg, port, None);
        // The test's end of that connection is outside the cgroup.
        let (outside, _) = server.accept().unwrap();

        let (client, listening) = holder.show();
        assert_eq!(client, untouched(), "{way}: before");
        assert_eq!(listening, untouched(), "{way}: before");
        assert_eq!(
            holder.ss_timer(),
            None,
            "{way}: ss shows no keepalive before"
        );

        let mut args = vec!["--cgroup", cg.arg()];
        args.extend(ENFORCE);
        let report = enforce_existing(way, &args);
        assert_eq!(
            report,
            ExistingLine {
                way: way.to_owned(),
                fallback: None,
                namespaces: 1,
                processes: 1,
                changed: 2,
                listening: 1,
                left_alone: 0,
                failed: 0,
                unreachable: 0,
            },
            "{way}: the client's connection and its listener"
        );

        let (client, listening) = holder.show();
        assert_eq!(client, ENFORCED, "{way}: after");
        assert_eq!(listening, ENFORCED, "{way}: after");
        let timer = holder.ss_timer();
        assert!(
            timer.is_some_and(|t| t <= Duration::from_secs(11)),
            "{way}: ss shows the keepalive timer of --idle 11: {timer:?}"
        );
        assert!(
            !KeepaliveState::read(&outside).unwrap().enabled,
            "{way}: a socket outside the cgroup is left alone"
        );

        // Without the enforcement, a connection the listener accepts
        // inherits what --existing set on the listener.
        remove(&["--cgroup", cg.arg()]);
        assert_eq!(holder.accept(), ENFORCED, "{way}: inherited");
    }
}

#[test]
fn default_mode_leaves_a_programs_own_keepalive_and_force_replaces_it_both_ways() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    for way in WAYS {
        let cg = TestCgroup::new(&format!("existing-own-{way}"));
        let server = listener("127.0.0.1").unwrap();
        let port = server.local_addr().unwrap().port();
        // The client switches keepalive on itself, TCP_KEEPIDLE=33.
        let mut holder = Holder::start(&cg, port, Some("33"));
        let _accepted = server.accept().unwrap();
        let own = Keepalive {
            on: 1,
            idle: 33,
            ..untouched()
        };
        assert_eq!(holder.show().0, own, "{way}: before");

        let mut args = vec!["--cgroup", cg.arg()];
        args.extend(ENFORCE);
        let report = enforce_existing(way, &args);
        assert_eq!(
            (report.changed, report.listening, report.left_alone),
            (1, 1, 1),
            "{way}: the listener changed, the client's own keepalive left alone: {report:?}"
        );
        let (client, listening) = holder.show();
        assert_eq!(client, own, "{way}: kept");
        assert_eq!(listening, ENFORCED, "{way}");

        args.push("--force");
        let report = enforce_existing(way, &args);
        assert_eq!(
            (report.changed, report.left_alone, report.failed),
            (2, 0, 0),
            "{way}: {report:?}"
        );
        assert_eq!(holder.show().0, ENFORCED, "{way}: forced");
    }
}

#[test]
fn text_report_names_the_way() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("existing-text");
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port();
    let _holder = Holder::start(&cg, port, None);
    let _accepted = server.accept().unwrap();
    let out = run(
        keepalive()
            .args(["enforce", "--existing", "--idle", "60", "--cgroup"])
            .arg(cg.path()),
        TIMEOUT,
    );
    out.assert_success();
    assert!(
        out.stdout
            .contains("new connections, and the existing ones below")
            && out
                .stdout
                .contains("(BPF iterator over TCP sockets, 1 network namespace):")
            && out
                .stdout
                .contains("  2 changed (1 listening), 0 left alone, 0 failed"),
        "{out}"
    );
}

/// The values of a second run, [`ENFORCE`] changed.
const AGAIN: [&str; 8] = [
    "--idle",
    "22",
    "--interval",
    "8",
    "--count",
    "4",
    "--user-timeout",
    "20s",
];

/// What a connection gets with [`AGAIN`].
const AGAIN_SET: Keepalive = Keepalive {
    on: 1,
    count: 4,
    idle: 22,
    interval: 8,
    user_timeout: 20_000,
};

/// A client's own keepalive, `hold ... 33`.
fn own_33() -> Keepalive {
    Keepalive {
        on: 1,
        idle: 33,
        ..untouched()
    }
}

/// `enforce --existing` in the default mode on `cg` with `values`:
/// (changed, listening, left alone, failed).
fn existing_counts(way: &str, cg: &TestCgroup, values: &[&str]) -> (u64, u64, u64, u64) {
    let mut args = vec!["--cgroup", cg.arg()];
    args.extend(values);
    let r = enforce_existing(way, &args);
    (r.changed, r.listening, r.left_alone, r.failed)
}

/// An operator changes the settings: `--existing` run again reaches the
/// sockets keepalive switched on the first time (the iterator reads the
/// claim its first run wrote), not those whose program switched keepalive
/// on itself. The pidfd fallback cannot read the claims: to it the
/// sockets it switched on are the program's own (as documented).
#[test]
fn existing_again_with_new_values_reaches_what_keepalive_switched_on() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    for way in WAYS {
        let cg = TestCgroup::new(&format!("existing-again-{way}"));
        let server = listener("127.0.0.1").unwrap();
        let port = server.local_addr().unwrap().port();
        let mut plain = Holder::start(&cg, port, None);
        let _plain_peer = server.accept().unwrap();
        let mut own = Holder::start(&cg, port, Some("33"));
        let _own_peer = server.accept().unwrap();

        assert_eq!(
            existing_counts(way, &cg, &ENFORCE),
            (3, 2, 1, 0),
            "{way}: the plain client, both listeners; the own client left alone"
        );
        assert_eq!(plain.show(), (ENFORCED, ENFORCED), "{way}: first run");
        assert_eq!(own.show(), (own_33(), ENFORCED), "{way}: first run");

        let counts = existing_counts(way, &cg, &AGAIN);
        let (plain_client, plain_listener) = plain.show();
        let (own_client, own_listener) = own.show();
        assert_eq!(own_client, own_33(), "{way}: the program's own, twice");
        match way {
            "iterator" => {
                assert_eq!(counts, (3, 2, 1, 0), "{way}: second run");
                assert_eq!(plain_client, AGAIN_SET, "{way}: the new values");
                assert_eq!(plain_listener, AGAIN_SET, "{way}");
                assert_eq!(own_listener, AGAIN_SET, "{way}");
                let timer = plain.ss_timer();
                assert!(
                    timer.is_some_and(|t| t <= Duration::from_secs(22)),
                    "{way}: ss shows the timer of --idle 22: {timer:?}"
                );
            }
            _ => {
                // Every socket has keepalive on now: all left alone.
                assert_eq!(counts, (0, 0, 4, 0), "{way}: second run");
                assert_eq!((plain_client, plain_listener), (ENFORCED, ENFORCED));
                assert_eq!(own_listener, ENFORCED, "{way}");
            }
        }
    }
}

/// Connections the sock_ops program switched keepalive on at
/// establishment get the new values of a later `--existing`; one whose
/// program switched it on itself keeps its own.
#[test]
fn existing_reaches_what_the_sock_ops_program_switched_on() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("existing-after-sockops");
    let mut args = vec!["--cgroup", cg.arg()];
    args.extend(ENFORCE);
    enforce(&args);
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut plain = Holder::start(&cg, port, None);
    let _plain_peer = server.accept().unwrap();
    let mut own = Holder::start(&cg, port, Some("33"));
    let _own_peer = server.accept().unwrap();
    // The sock_ops program at establishment (listeners are not its).
    assert_eq!(plain.show(), (ENFORCED, untouched()));
    assert_eq!(own.show(), (own_33(), untouched()));

    assert_eq!(
        existing_counts("iterator", &cg, &AGAIN),
        (3, 2, 1, 0),
        "the plain client and both listeners; the own client left alone"
    );
    assert_eq!(plain.show(), (AGAIN_SET, AGAIN_SET));
    assert_eq!(own.show(), (own_33(), AGAIN_SET));
    // And once more: what --existing switched on is ours too.
    let mut again = AGAIN;
    again[1] = "44";
    assert_eq!(existing_counts("iterator", &cg, &again), (3, 2, 1, 0));
    assert_eq!(plain.show().0.idle, 44);
    assert_eq!(
        own.show(),
        (
            own_33(),
            Keepalive {
                idle: 44,
                ..AGAIN_SET
            }
        )
    );
}

/// A Go-style program switches keepalive on itself after connecting (on,
/// then idle and interval 15), on a socket the sock_ops program already
/// switched on at establishment: the values are the program's own now
/// (the setsockopt companion clears the claim's mark), and a later
/// default-mode `--existing` leaves them alone.
#[test]
fn existing_leaves_what_a_program_set_after_the_sock_ops_program() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("existing-after-go");
    let mut args = vec!["--cgroup", cg.arg()];
    args.extend(ENFORCE);
    enforce(&args);
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut holder = Holder::start(&cg, port, None);
    let _peer = server.accept().unwrap();
    assert_eq!(holder.show().0, ENFORCED, "the sock_ops program's");
    let own = Keepalive {
        idle: 15,
        interval: 15,
        ..ENFORCED
    };
    assert_eq!(holder.go(15), own, "the client's own, after connecting");

    assert_eq!(
        existing_counts("iterator", &cg, &["--idle", "40"]),
        (1, 1, 1, 0),
        "the listener changed; the client left alone"
    );
    let (client, listening) = holder.show();
    assert_eq!(client, own, "the client keeps its own 15 s");
    assert_eq!(listening.idle, 40, "{listening:?}");
}

/// `--existing` on a parent leaves alone the sockets a child cgroup's own
/// enforcement claimed (the most specific cgroup decides).
#[test]
fn existing_on_a_parent_leaves_a_childs_claimed_sockets_alone() {
    if let Some(why) = existing_unavailable() {
        skip!("{why}");
    }
    /// The child cgroup, its enforcement removed first.
    struct Child(PathBuf);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = keepalive_bpf::remove(&self.0);
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let parent = TestCgroup::new("existing-nested");
    let child = Child(parent.path().join("app"));
    std::fs::create_dir(&child.0).unwrap();
    enforce(&["--cgroup", child.0.to_str().unwrap(), "--idle", "20"]);
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut holder = Holder::start_in(&child.0, port, None);
    let _peer = server.accept().unwrap();
    assert_eq!((holder.show().0.on, holder.show().0.idle), (1, 20));

    let (_, _, left_alone, failed) = existing_counts("iterator", &parent, &ENFORCE);
    assert_eq!((left_alone, failed), (1, 0), "the child's client");
    let client = holder.show().0;
    assert_eq!((client.on, client.idle), (1, 20), "the child's values");
}
