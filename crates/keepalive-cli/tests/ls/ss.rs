//! `ls` against `ss`: the same sockets, states and timers, on the host
//! and in a network namespace.

use super::*;

/// Our own sockets, made in the calling thread's namespace: per family an
/// idle pair without keepalive and one with it, and their listeners.
struct Sockets {
    _held: Vec<(TcpListener, TcpStream, TcpStream)>,
    /// (local, remote) of each; remote `None` for a listener.
    keys: Vec<(SocketAddr, Option<SocketAddr>)>,
    inodes: Vec<u64>,
}

fn make_sockets(hosts: &[&str]) -> Sockets {
    let mut held = Vec::new();
    let mut keys = Vec::new();
    for host in hosts {
        for with_keepalive in [false, true] {
            let l = TcpListener::bind(addr(host, 0)).expect("bind");
            let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (a, _) = l.accept().expect("accept");
            if with_keepalive {
                let s = Settings {
                    idle: Some(Seconds::new(300).unwrap()),
                    interval: Some(Seconds::new(30).unwrap()),
                    count: Some(ProbeCount::new(3).unwrap()),
                    ..Settings::new()
                };
                keepalive::apply(&c, &s).expect("apply");
            }
            keys.push((l.local_addr().unwrap(), None));
            keys.push((c.local_addr().unwrap(), Some(c.peer_addr().unwrap())));
            keys.push((a.local_addr().unwrap(), Some(a.peer_addr().unwrap())));
            held.push((l, c, a));
        }
    }
    let inodes = held
        .iter()
        .flat_map(|(l, c, a)| [inode(l.as_fd()), inode(c.as_fd()), inode(a.as_fd())])
        .collect();
    Sockets {
        _held: held,
        keys,
        inodes,
    }
}

/// The socket inode of `fd`, as `/proc/self/fd` shows it.
fn inode(fd: BorrowedFd<'_>) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let text = link.to_str().unwrap();
    text.strip_prefix("socket:[")
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a socket: {text}"))
}

/// One socket as both tools describe it: state in ss's words, timer kind
/// in ss's words and time left.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    timer: Option<(String, Duration)>,
}

type View = BTreeMap<(SocketAddr, Option<SocketAddr>), Seen>;

fn ss_state(ls_state: &str) -> String {
    match ls_state {
        "established" => "ESTAB".to_owned(),
        "close" => "UNCONN".to_owned(),
        s => s.to_uppercase(),
    }
}

fn ss_timer(ls_kind: &str) -> &str {
    match ls_kind {
        "retransmit" => "on",
        "time-wait" => "timewait",
        "zero-window-probe" => "persist",
        k => k,
    }
}

fn ls_view(all: &[Connection]) -> View {
    all.iter()
        .map(|c| {
            let seen = Seen {
                state: ss_state(&c.state),
                timer: c.timer.as_ref().map(|t| {
                    (
                        ss_timer(&t.kind).to_owned(),
                        Duration::from_millis(t.left_ms),
                    )
                }),
            };
            ((c.local, c.remote), seen)
        })
        .collect()
}

/// `ADDR:PORT` as ss -n prints it; `None` for a wildcard peer (`*`).
fn ss_addr(text: &str) -> Option<SocketAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split('%').next()?;
    let host = if host == "*" { "::" } else { host };
    Some(addr(host, port))
}

/// Every line of `ss -tnoaH` (prefixed with `prefix`, e.g. `ip netns exec`).
fn ss_view(prefix: &[&str]) -> (View, String) {
    let mut cmd = if prefix.is_empty() {
        bare("ss")
    } else {
        let mut c = bare(prefix[0]);
        c.args(&prefix[1..]).arg("ss");
        c
    };
    let out = run(cmd.arg("-tnoaH"), TIMEOUT);
    out.assert_success();
    let mut view = View::new();
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [state, _, _, local, peer, rest @ ..] = &words[..] else {
            panic!("unexpected ss line: {line}");
        };
        let local = ss_addr(local).unwrap_or_else(|| panic!("{line}"));
        let remote = if *state == "LISTEN" {
            None
        } else {
            ss_addr(peer)
        };
        let timer = rest
            .iter()
            .find_map(|w| w.strip_prefix("timer:("))
            .map(|t| {
                let parts: Vec<&str> = t.trim_end_matches(')').split(',').collect();
                let left = parse_ss_time(parts[1]).unwrap_or_else(|| panic!("{line}"));
                (parts[0].to_owned(), left)
            });
        view.insert(
            (local, remote),
            Seen {
                state: state.to_string(),
                timer,
            },
        );
    }
    (view, out.stdout)
}

/// ss prints whole seconds, rounded down: allow for that and for the time
/// between the two commands (ls runs first, so its timers are the longer).
fn same(ls: &Seen, ss: &Seen) -> bool {
    let close = match (&ls.timer, &ss.timer) {
        (None, None) => true,
        (Some((a, x)), Some((b, y))) => a == b && x.abs_diff(*y) <= Duration::from_secs(3),
        _ => false,
    };
    ls.state == ss.state && close
}

fn assert_agree(keys: &[(SocketAddr, Option<SocketAddr>)], ls: &View, ss: &View, ss_text: &str) {
    for key in keys {
        let a = ls
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not in ls: {ls:#?}"));
        let b = ss
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not in ss:\n{ss_text}"));
        assert!(same(a, b), "{key:?}: ls {a:?}, ss {b:?}");
    }
}

/// ls and ss agree on our sockets on the host: state, addresses, timer
/// kind and time left, IPv4 and IPv6, with and without keepalive.
#[test]
fn ls_agrees_with_ss_on_the_host() {
    if tool("ss").is_none() {
        skip!("ss (iproute2) is not installed");
    }
    let hosts: &[&str] = if TcpListener::bind("[::1]:0").is_ok() {
        &["127.0.0.1", "::1"]
    } else {
        &["127.0.0.1"]
    };
    let ours = make_sockets(hosts);
    let (all, _, out) = ls(&["--state", "all"]);
    let (ss, ss_text) = ss_view(&[]);
    let listed = ls_view(&all);
    assert_agree(&ours.keys, &listed, &ss, &ss_text);
    // The timers are those keepalive gives: on the clients that asked.
    let with_timer = ours
        .keys
        .iter()
        .filter(|k| {
            listed[*k]
                .timer
                .as_ref()
                .is_some_and(|t| t.0 == "keepalive")
        })
        .count();
    assert_eq!(with_timer, hosts.len(), "{out}");
    // Every one of ours is held by this process.
    for inode in &ours.inodes {
        let c = all.iter().find(|c| c.inode == *inode).expect("listed");
        let pids: Vec<u32> = c.processes.iter().flatten().map(|p| p.pid).collect();
        assert!(pids.contains(&std::process::id()), "{c:?}");
    }
}

/// Inside a test namespace: ls --netns lists exactly what ss lists there,
/// and the host's listing has none of it.
#[test]
fn ls_agrees_with_ss_in_a_network_namespace() {
    if tool("ss").is_none() {
        skip!("ss (iproute2) is not installed");
    }
    let ns = match Netns::new("ls") {
        Ok(ns) => ns,
        Err(why) => skip!("{why}"),
    };
    let inside = keepalive::host::NetNs::open(ns.name()).expect("open the namespace");
    let ours = inside
        .run(|| make_sockets(&["127.0.0.1", "::1"]))
        .expect("enter the namespace");
    let (all, summary, out) = ls(&["--netns", ns.name(), "--state", "all"]);
    let (ss, ss_text) = ss_view(&["ip", "netns", "exec", ns.name()]);
    let listed = ls_view(&all);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        ss.keys().collect::<Vec<_>>(),
        "ls:\n{out}\nss:\n{ss_text}"
    );
    assert_agree(&ours.keys, &listed, &ss, &ss_text);
    assert_eq!(all.len(), 12, "{out}");
    assert_eq!((summary.connections, summary.without_keepalive), (8, 6));
    for c in &all {
        let pids: Vec<u32> = c.processes.iter().flatten().map(|p| p.pid).collect();
        assert_eq!(pids, [std::process::id()], "{c:?}");
    }
    let text = keepalive(&["ls", "--netns", ns.name()]);
    assert!(
        text.stdout.starts_with("LOCAL ")
            && text.stdout.contains(&format!(
                "\n8 connections, 6 without keepalive (network namespace: netns {} (net:[",
                ns.name()
            )),
        "{text}"
    );
    let (host, _, _) = ls(&["--state", "all"]);
    for inode in &ours.inodes {
        assert!(
            host.iter().all(|c| c.inode != *inode),
            "socket {inode} of the namespace in the host's listing"
        );
    }
}
