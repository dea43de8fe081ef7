//! Dumping the TCP sockets of the calling thread's network namespace
//! through a `NETLINK_SOCK_DIAG` socket (sock_diag(7)). To list another
//! namespace, call [`tcp_sockets`] on a thread inside it
//! (`keepalive::host::NetNs::run`): the netlink socket belongs to the namespace
//! it is created in.

use std::io;
use std::time::Duration;

use rustix::io::Errno;

use crate::inet_diag::{parse, request};
use crate::netlink::{ParseError, Progress, ReplyError};
use crate::sys::{self, NetlinkSocket};
use crate::tcp::{Family, StateSet, TcpSocket};

/// How long to wait for each datagram of the reply (and to send the
/// request).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The receive buffer: the kernel builds dump datagrams of at most 32 KiB
/// (`netlink_recvmsg` caps `max_recvmsg_len` there).
const BUF_LEN: usize = 64 * 1024;

/// How often a dump that the kernel marks interrupted (`NLM_F_DUMP_INTR`:
/// sockets came and went meanwhile) is started again before its result is
/// taken as it is.
const DUMP_TRIES: usize = 3;

/// Why the sockets could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiagError {
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call, e.g. `recv`.
        call: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered the request with an error.
    #[error("the kernel refused to list the {} TCP sockets: {source}{}", family.name(), hint(source))]
    Kernel {
        /// The family being listed.
        family: Family,
        /// The errno it gave.
        #[source]
        source: io::Error,
    },
    /// A reply datagram was larger than the buffer.
    #[error("a sock_diag reply of {len} bytes did not fit the {BUF_LEN}-byte buffer")]
    Truncated {
        /// The datagram's length.
        len: usize,
    },
    /// A reply datagram was malformed.
    #[error("malformed sock_diag reply: {0}")]
    Malformed(#[from] ParseError),
}

fn hint(e: &io::Error) -> &'static str {
    match sys::errno(e) {
        Some(Errno::NOENT) => " (no TCP sock_diag support: is the tcp_diag module available?)",
        _ => "",
    }
}

fn syscall(call: &'static str) -> impl FnOnce(io::Error) -> DiagError {
    move |source| DiagError::Syscall { call, source }
}

/// The TCP sockets, IPv4 then IPv6, of the calling thread's network
/// namespace whose state is in `states`: `SOCK_DIAG_BY_FAMILY` dumps of
/// `inet_diag`. Needs no privilege: every user sees every socket (with its
/// uid and inode), as `ss` does.
pub fn tcp_sockets(states: StateSet) -> Result<Vec<TcpSocket>, DiagError> {
    let sock = NetlinkSocket::sock_diag(TIMEOUT)
        .map_err(syscall("socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG)"))?;
    let mut buf = vec![0u8; BUF_LEN];
    let mut out = Vec::new();
    let mut seq = 0;
    for family in Family::ALL {
        for attempt in 1..=DUMP_TRIES {
            seq += 1;
            let start = out.len();
            let interrupted = dump(&sock, family, states, seq, &mut buf, &mut out)?;
            if !interrupted || attempt == DUMP_TRIES {
                break;
            }
            out.truncate(start);
        }
    }
    Ok(out)
}

/// One dump; true when the kernel marked it interrupted.
fn dump(
    sock: &NetlinkSocket,
    family: Family,
    states: StateSet,
    seq: u32,
    buf: &mut [u8],
    out: &mut Vec<TcpSocket>,
) -> Result<bool, DiagError> {
    sock.send(&request(family, states, seq))
        .map_err(syscall("sendto(SOCK_DIAG_BY_FAMILY)"))?;
    loop {
        let len = sock.recv(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                DiagError::Syscall {
                    call: "recv",
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the kernel in {} s", TIMEOUT.as_secs()),
                    ),
                }
            } else {
                syscall("recv")(e)
            }
        })?;
        let Some(datagram) = buf.get(..len) else {
            return Err(DiagError::Truncated { len });
        };
        match parse(datagram, seq, out) {
            Ok(Progress::More) => {}
            Ok(Progress::Done { interrupted }) => return Ok(interrupted),
            Err(ReplyError::Kernel(errno)) => {
                return Err(DiagError::Kernel {
                    family,
                    source: io::Error::from_raw_os_error(errno),
                });
            }
            Err(ReplyError::Malformed(e)) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;
    use crate::pidfd::socket_inode;
    use crate::tcp::TcpState;

    #[test]
    fn lists_our_own_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        let all = tcp_sockets(StateSet::ESTABLISHED.union(StateSet::LISTEN)).unwrap();
        let find = |inode| all.iter().find(|s| s.inode == inode);
        let client = find(socket_inode(&c).unwrap().unwrap()).expect("the client");
        assert_eq!(client.state, TcpState::Established);
        assert_eq!(client.local, c.local_addr().unwrap());
        assert_eq!(client.remote, l.local_addr().unwrap());
        assert_eq!(client.timer, None, "no keepalive asked for");
        let accepted = find(socket_inode(&a).unwrap().unwrap()).expect("the accepted");
        assert_eq!(accepted.remote, c.local_addr().unwrap());
        let listener = find(socket_inode(&l).unwrap().unwrap()).expect("the listener");
        assert_eq!(listener.state, TcpState::Listen);
    }

    #[test]
    fn idle_time_of_a_real_connection() {
        use std::io::{Read, Write};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut a, _) = l.accept().unwrap();
        // Data one way, then idle: the client sent, the server received.
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        a.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let all = tcp_sockets(StateSet::ESTABLISHED.union(StateSet::LISTEN)).unwrap();
        let find = |inode| all.iter().find(|s| s.inode == inode).unwrap();
        for end in [&c, &a] {
            let s = find(socket_inode(end).unwrap().unwrap());
            let info = s.info.expect("tcp_info of an established connection");
            let idle = s.idle().unwrap();
            assert!(idle >= Duration::from_secs(1), "{info:?}");
            assert!(idle < Duration::from_secs(30), "{info:?}");
            assert!(info.last_ack_recv >= Duration::from_secs(1), "{info:?}");
            assert_eq!(info.probes, 0);
        }
        let listener = find(socket_inode(&l).unwrap().unwrap());
        assert_eq!(listener.info, None, "a listener has no idle time");
        // Data the other way resets idle, and tells the fields apart: the
        // client received just now and last sent over a second ago.
        a.write_all(b"pong").unwrap();
        c.read_exact(&mut buf).unwrap();
        let all = tcp_sockets(StateSet::ESTABLISHED).unwrap();
        let inode = socket_inode(&c).unwrap().unwrap();
        let info = all.iter().find(|s| s.inode == inode).unwrap().info.unwrap();
        assert!(info.idle() < Duration::from_secs(1), "{info:?}");
        assert!(info.last_data_recv < Duration::from_secs(1), "{info:?}");
        assert!(info.last_data_sent >= Duration::from_secs(1), "{info:?}");
    }

    #[test]
    fn keepalive_shows_as_a_timer() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _a = l.accept().unwrap();
        let idle = Some(keepalive::Seconds::new(100).unwrap());
        keepalive::apply(
            &c,
            &keepalive::Settings {
                idle,
                ..keepalive::Settings::new()
            },
        )
        .unwrap();
        let inode = socket_inode(&c).unwrap().unwrap();
        let all = tcp_sockets(StateSet::ESTABLISHED).unwrap();
        let s = all.iter().find(|s| s.inode == inode).expect("the client");
        assert_eq!(s.family, Family::Inet6);
        let timer = s.timer.expect("a timer");
        assert_eq!(timer.kind, crate::TimerKind::Keepalive);
        assert!(timer.left <= Duration::from_secs(100), "{timer:?}");
        assert!(timer.left > Duration::from_secs(90), "{timer:?}");
        assert_eq!(timer.count, 0);
    }
}
