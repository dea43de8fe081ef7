//! The keepalive options of another process's sockets, read with
//! getsockopt on duplicates of its descriptors ([`PidFd::socket`]): the
//! socket's own `SO_KEEPALIVE` and values, where the dump only shows a
//! timer (`ls --pid`).

use std::collections::HashMap;

use keepalive::KeepaliveState;

use crate::held::Listed;
use crate::pidfd::{Duplicate, PidFd, PidFdError};

/// The options of each socket of `listed` that process `pid` holds, by
/// socket inode, read on a duplicate of one of its descriptors.
///
/// A socket is tried at each of `pid`'s descriptors for it, in order,
/// until one is still that socket; a socket closed or moved away from all
/// of them meanwhile, or whose options cannot be read, is left out of the
/// map, as are the sockets `pid` does not hold.
///
/// An error when `pid` cannot be opened or a duplicate cannot be taken:
/// [`crate::PidFdErrorKind::NotPermitted`] when the caller lacks the right
/// to ptrace `pid`, [`crate::PidFdErrorKind::NoProcess`] when it is gone.
pub fn keepalive_options(
    pid: u32,
    listed: &[Listed],
) -> Result<HashMap<u64, KeepaliveState>, PidFdError> {
    let pidfd = PidFd::open(pid)?;
    let mut options = HashMap::new();
    for l in listed {
        let inode = l.socket.inode;
        let fds = l.processes.iter().flatten().filter(|o| o.pid == pid);
        for owner in fds {
            match pidfd.socket(owner.fd, inode)? {
                Duplicate::Socket(dup) => {
                    if let Ok(state) = KeepaliveState::read(&dup) {
                        options.insert(inode, state);
                    }
                    break;
                }
                Duplicate::Closed | Duplicate::Reused => {}
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, OwnedFd};

    use super::*;
    use crate::pidfd::{PidFdErrorKind, socket_inode};
    use crate::procfs::Owner;
    use crate::seen::tests::socket;
    use crate::tcp::TcpState;

    /// `fd` of this process, listed as the socket `inode`, held at
    /// `owners` (pid, fd).
    fn listed(inode: u64, owners: Option<&[(u32, i32)]>) -> Listed {
        Listed {
            socket: crate::TcpSocket {
                inode,
                ..socket(TcpState::Established, None)
            },
            processes: owners.map(|o| {
                o.iter()
                    .map(|&(pid, fd)| Owner {
                        pid,
                        command: "test".into(),
                        fd,
                    })
                    .collect()
            }),
        }
    }

    fn inode(fd: impl std::os::fd::AsFd) -> u64 {
        socket_inode(fd).unwrap().expect("a socket")
    }

    #[test]
    fn reads_each_held_socket() {
        let me = std::process::id();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        rustix::net::sockopt::set_socket_keepalive(&c, true).unwrap();
        rustix::net::sockopt::set_tcp_keepidle(&c, std::time::Duration::from_secs(77)).unwrap();
        let (li, ci) = (inode(&l), inode(&c));
        let got = keepalive_options(
            me,
            &[
                listed(li, Some(&[(me, l.as_raw_fd())])),
                listed(ci, Some(&[(me, c.as_raw_fd())])),
            ],
        )
        .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(!got[&li].enabled);
        assert!(got[&ci].enabled);
        assert_eq!(got[&ci].idle, 77);
    }

    #[test]
    fn tries_the_next_descriptor_when_one_was_reused() {
        let me = std::process::id();
        let c = TcpListener::bind("127.0.0.1:0").unwrap();
        rustix::net::sockopt::set_socket_keepalive(&c, true).unwrap();
        let ci = inode(&c);
        // The first descriptor listed for it now holds a file.
        let mut reused = OwnedFd::from(c.try_clone().unwrap());
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        rustix::io::dup2(&file, &mut reused).unwrap();
        let got = keepalive_options(
            me,
            &[listed(
                ci,
                Some(&[(me, reused.as_raw_fd()), (me, c.as_raw_fd())]),
            )],
        )
        .unwrap();
        assert!(got[&ci].enabled, "read at the second descriptor");
    }

    #[test]
    fn leaves_out_what_it_cannot_read_there() {
        let me = std::process::id();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let li = inode(&l);
        let mut reused = OwnedFd::from(l);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        rustix::io::dup2(&file, &mut reused).unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let got = keepalive_options(
            me,
            &[
                // Its only descriptor was reused for a file.
                listed(li, Some(&[(me, reused.as_raw_fd())])),
                // Holders unknown, or only another process.
                listed(inode(&other), None),
                listed(inode(&other), Some(&[(1, other.as_raw_fd())])),
            ],
        )
        .unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn no_such_process() {
        let err = keepalive_options(5_000_000, &[]).unwrap_err();
        assert_eq!(err.kind(), PidFdErrorKind::NoProcess, "{err}");
    }
}
