//! `keepalive ls | head -c1`: a reader that goes away while ls still has
//! more to write than a pipe holds is no error (exit 0, nothing on stderr).

use super::*;

/// Pairs of loopback connections, enough for ls to print more than a pipe
/// holds (64 KiB) in text and in JSON; closed when dropped.
struct Many {
    _listener: TcpListener,
    _pairs: Vec<(TcpStream, TcpStream)>,
}

fn many(pairs: usize) -> Many {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let pairs = (0..pairs)
        .map(|_| {
            let c = TcpStream::connect(addr).expect("connect");
            let (a, _) = listener.accept().expect("accept");
            (c, a)
        })
        .collect();
    Many {
        _listener: listener,
        _pairs: pairs,
    }
}

/// Runs `keepalive <args>` with stdout into a pipe, reads one byte, closes
/// the pipe, and returns how it ended.
fn head_c1(args: &[&str]) -> (Vec<u8>, Output) {
    let mut child = spawn(keepalive_cmd().args(args));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 1];
    let read = stdout.read(&mut first);
    drop(stdout);
    let out = crate::util::wait(child, TIMEOUT);
    let n = read.unwrap_or_else(|e| panic!("read: {e}\n{out}"));
    (first[..n].to_vec(), out)
}

#[test]
fn ls_into_a_pipe_closed_after_one_byte_exits_0_quietly() {
    // 500 pairs: 1000 sockets of ~80 bytes a row in text, ~350 in JSON.
    let _held = many(500);
    for (args, first) in [(&["ls"][..], b"L"), (&["ls", "--json"], b"{")] {
        // The control: all of it is more than the pipe holds, so ls is
        // still writing when the reader goes.
        let full = keepalive(args);
        full.assert_success();
        assert!(
            full.stdout.len() > 64 * 1024,
            "{args:?}: only {} bytes, the pipe would hold them all",
            full.stdout.len()
        );
        let (got, out) = head_c1(args);
        assert_eq!(got, first, "{args:?}\n{out}");
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{out}");
        assert_eq!(out.stderr, "", "{args:?}\n{out}");
    }
}

/// One JSON line longer than the pipe buffer: the reader goes away while
/// ls is inside that one line (serde_json's write, not the newline's).
#[test]
fn one_json_line_longer_than_a_pipe_closed_after_one_byte_exits_0_quietly() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    const COPIES: usize = 2000;
    // One socket held at COPIES + 1 descriptors of this process: its
    // `processes` array alone is over 64 KiB.
    let limit = getrlimit(Resource::Nofile);
    let needed = COPIES as u64 + 4096;
    if limit.current.is_some_and(|c| c < needed) {
        let raised = rustix::process::Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        };
        if limit.maximum.is_some_and(|m| m < needed) || setrlimit(Resource::Nofile, raised).is_err()
        {
            eprintln!("skipped: cannot hold {COPIES} descriptors (RLIMIT_NOFILE)");
            return;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_server, _) = listener.accept().expect("accept");
    let copies: Vec<TcpStream> = (0..COPIES)
        .map(|_| client.try_clone().expect("dup"))
        .collect();
    let port = port.to_string();
    let args = ["ls", "--json", "--port", &port, "--state", "all"];
    let full = keepalive(&args);
    full.assert_success();
    let longest = full.stdout.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest > 64 * 1024,
        "the longest line is {longest} bytes: a pipe would hold it\n{full}"
    );
    let (got, out) = head_c1(&args);
    assert_eq!(got, b"{", "{out}");
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(out.stderr, "", "{out}");
    drop(copies);
}
