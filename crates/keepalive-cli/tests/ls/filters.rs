//! `ls` filters (`--port`, `--sport`, `--dport`, `--without-keepalive`),
//! a listener shared by pre-forked processes, and TIME-WAIT in the counts,
//! judged by python3's own getsockopt and by `ss`.

use std::collections::BTreeSet;

use super::*;
use crate::util::configured;

type Key = (SocketAddr, Option<SocketAddr>);

fn keys(all: &[Connection]) -> BTreeSet<Key> {
    all.iter().map(|c| (c.local, c.remote)).collect()
}

/// The established connections `ss` shows for the filter `expr`.
fn ss_keys(expr: &str) -> BTreeSet<Key> {
    let out = run(
        bare("ss").args(["-Htn", "state", "established", expr]),
        TIMEOUT,
    );
    out.assert_success();
    out.stdout
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [_, _, local, peer, ..] = w[..] else {
                panic!("unexpected ss line: {l}")
            };
            (ss_addr_of(local), Some(ss_addr_of(peer)))
        })
        .collect()
}

fn ss_addr_of(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("ss address {text}: {e}"))
}

/// A client on `127.0.0.1:port` under the preload (keepalive on), and its
/// own port.
fn client_with_keepalive(python: &Path, port: u16) -> (Peer, u16) {
    let peer = Peer::start_cmd(
        configured(python)
            .args(["-c", PEER, "client", "127.0.0.1"])
            .arg(port.to_string()),
    );
    let own = peer.expect("connected").get("port");
    (peer, u16::try_from(own).unwrap())
}

#[test]
fn port_filters_select_what_ss_selects() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let (a_server, a) = Peer::server(python, "127.0.0.1");
    let (a_client, a1) = Peer::client(python, "127.0.0.1", a);
    let (b_server, b) = Peer::server(python, "127.0.0.1");
    let (b_client, b1) = client_with_keepalive(python, b);
    a_server.expect("accepted");
    b_server.expect("accepted");
    // The programs' own view: only the second client has keepalive.
    assert_eq!(a_client.only("client").on, 0);
    assert_eq!(b_client.only("client").on, 1);
    let at = |port| addr("127.0.0.1", port);
    let (a_out, a_in) = ((at(a1), Some(at(a))), (at(a), Some(at(a1))));
    let (b_out, b_in) = ((at(b1), Some(at(b))), (at(b), Some(at(b1))));

    let cases: [(&[&str], BTreeSet<Key>, String); 4] = [
        (
            &["--port", &a.to_string()],
            [a_out, a_in].into(),
            format!("( sport = :{a} or dport = :{a} )"),
        ),
        (
            &["--sport", &a.to_string()],
            [a_in].into(),
            format!("sport = :{a}"),
        ),
        (
            &["--dport", &a.to_string()],
            [a_out].into(),
            format!("dport = :{a}"),
        ),
        (
            &["--port", &b.to_string()],
            [b_out, b_in].into(),
            format!("( sport = :{b} or dport = :{b} )"),
        ),
    ];
    for (args, want, ss_filter) in cases {
        let (listed, summary, out) = ls(args);
        assert_eq!(keys(&listed), want, "{args:?}\n{out}");
        assert_eq!(ss_keys(&ss_filter), want, "ss {ss_filter}");
        assert_eq!(summary.connections, want.len() as u64, "{args:?}\n{out}");
    }

    let (listed, summary, out) = ls(&["--port", &b.to_string(), "--without-keepalive"]);
    assert_eq!(keys(&listed), [b_in].into(), "{out}");
    assert_eq!(listed[0].keepalive, Some(false), "{out}");
    assert_eq!(
        (summary.connections, summary.without_keepalive),
        (1, 1),
        "{out}"
    );
    let (both, _, out) = ls(&["--port", &b.to_string()]);
    let with = both.iter().find(|c| (c.local, c.remote) == b_out).unwrap();
    assert_eq!(
        with.keepalive,
        Some(true),
        "the client the filter left out\n{out}"
    );

    // Text: one row, the client's.
    let text = keepalive(&["ls", "--dport", &a.to_string()]);
    text.assert_success();
    let rows: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.starts_with("127.0.0.1:"))
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].starts_with(&format!("{} ", at(a1)))
            && rows[0].contains(&format!("{}/python3", a_client.pid)),
        "{text}"
    );
}

/// A listener held by a parent and 3 forked children.
const PREFORK: &str = r#"
import os, signal, socket
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(16)
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        while True:
            signal.pause()
    kids.append(pid)
os.write(1, b"listening port=%d\n" % l.getsockname()[1])
while True:
    signal.pause()
"#;

/// The pids `ss -p` shows holding the listener on `port`.
fn ss_holders(port: u16) -> BTreeSet<u32> {
    let out = run(
        bare("ss").args(["-Htlnp", &format!("sport = :{port}")]),
        TIMEOUT,
    );
    out.assert_success();
    out.stdout
        .split("pid=")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|e| panic!("{e}\n{out}"))
        })
        .collect()
}

#[test]
fn a_listener_of_prefork_workers_shows_the_others_as_a_count() {
    let python = match tools() {
        Ok(p) => p,
        Err(why) => skip!("{why}"),
    };
    let server = Peer::start_cmd(bare(python).args(["-c", PREFORK]));
    let port = u16::try_from(server.expect("listening").get("port")).unwrap();
    let holders = ss_holders(port);
    assert_eq!(holders.len(), 4, "ss -p: {holders:?}");
    assert!(holders.contains(&server.pid), "{holders:?}");

    let (listed, summary, out) = ls(&["--state", "listen", "--sport", &port.to_string()]);
    assert_eq!(listed.len(), 1, "{out}");
    let procs = listed[0].processes.clone().expect("holders known");
    let pids: BTreeSet<u32> = procs.iter().map(|p| p.pid).collect();
    assert_eq!(pids, holders, "{out}");
    assert!(procs.iter().all(|p| p.command == "python3"), "{out}");
    assert_eq!((summary.listening, summary.connections), (1, 0), "{out}");

    let text = keepalive(&["ls", "--state", "listen", "--sport", &port.to_string()]);
    text.assert_success();
    let row = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("127.0.0.1:{port} ")))
        .unwrap_or_else(|| panic!("no row\n{text}"));
    let process = format!(" {}/python3 (+3) ", procs[0].pid);
    assert!(
        row.contains(&process),
        "want {process:?} in {row:?}\n{text}"
    );
}

#[test]
fn time_wait_is_listed_but_not_counted_as_a_connection() {
    if tool("ss").is_none() {
        skip!("ss (iproute2) is not installed");
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // One pair whose client closes first: the client's end waits in
    // TIME-WAIT. One pair left established.
    let closed = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let waiting = closed.local_addr().unwrap();
    drop(closed);
    let mut buf = [0u8; 1];
    let mut accepted = accepted;
    accepted
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    assert_eq!(accepted.read(&mut buf).unwrap(), 0, "the client's FIN");
    drop(accepted);
    let _open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _open_accepted = listener.accept().unwrap();

    // ss shows it in TIME-WAIT (the kernel moves it there once the
    // server's FIN is acknowledged: wait for that, bounded).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ss = run(
            bare("ss").args(["-Htan", "state", "time-wait", &format!("src {waiting}")]),
            TIMEOUT,
        );
        if ss.stdout.lines().count() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no TIME-WAIT for {waiting}\n{ss}"
        );
        thread::sleep(Duration::from_millis(10));
    }

    let (listed, summary, out) = ls(&["--state", "all", "--port", &port.to_string()]);
    let tw: Vec<&Connection> = listed.iter().filter(|c| c.local == waiting).collect();
    assert_eq!(tw.len(), 1, "{out}");
    assert_eq!(tw[0].state, "time-wait", "{out}");
    assert_eq!(
        tw[0].timer.as_ref().map(|t| t.kind.as_str()),
        Some("time-wait"),
        "{out}"
    );
    // Listed: the listener, the TIME-WAIT and the two established ends.
    assert_eq!(listed.len(), 4, "{out}");
    assert_eq!(
        (summary.connections, summary.listening),
        (2, 1),
        "TIME-WAIT is no connection\n{out}"
    );
    let text = keepalive(&["ls", "--state", "all", "--port", &port.to_string()]);
    assert!(
        text.stdout
            .contains("\n2 connections, 2 without keepalive; 1 listening"),
        "{text}"
    );
}
