//! Which process holds which socket of a dump: the join of the sock_diag
//! dump with the `/proc/PID/fd` descriptors, by socket inode. Pure
//! functions of what was listed, so that `ls` and `attach` (and whatever
//! comes after them) say the same thing about the same sockets.
//!
//! - [`held_sockets`]: the TCP sockets of one process, each once with all
//!   its descriptors (`attach`).
//! - [`listed_sockets`]: every socket of a dump with the processes holding
//!   it, or `None` when that could not be seen (`ls`).

use std::collections::HashMap;

use crate::procfs::{Owner, Owners, SocketFd};
use crate::tcp::TcpSocket;

/// A TCP socket a process holds, and the descriptors it holds it at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldSocket {
    /// The socket, from the dump.
    pub socket: TcpSocket,
    /// Its descriptor numbers in the process, ascending; usually one
    /// (`dup`, or a listener shared by forked workers, make more).
    pub fds: Vec<i32>,
}

/// The sockets of `dump` that a process holds at the descriptors `fds` (its
/// `/proc/PID/fd` sockets, e.g. from [`crate::process_sockets`]), in the
/// order of their lowest descriptor. A socket held at several descriptors
/// comes once, with all of them; descriptors whose inode is not in the dump
/// (UNIX, UDP, or TCP sockets in states not dumped) are left out.
pub fn held_sockets(fds: &[SocketFd], dump: &[TcpSocket]) -> Vec<HeldSocket> {
    let by_inode: HashMap<u64, &TcpSocket> = dump
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| (s.inode, s))
        .collect();
    let mut fds = fds.to_vec();
    fds.sort();
    let mut held: Vec<HeldSocket> = Vec::new();
    for fd in fds {
        let Some(socket) = by_inode.get(&fd.inode) else {
            continue;
        };
        match held.iter_mut().find(|h| h.socket.inode == fd.inode) {
            Some(h) => h.fds.push(fd.fd),
            None => held.push(HeldSocket {
                socket: **socket,
                fds: vec![fd.fd],
            }),
        }
    }
    held
}

/// A socket of a dump, and the processes holding it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listed {
    /// The socket, from the dump.
    pub socket: TcpSocket,
    /// The processes holding it, by pid then descriptor: empty when no
    /// process does (TIME_WAIT, an orphan, a kernel socket), `None` when
    /// that could not be seen (some `/proc/PID/fd` could not be read).
    pub processes: Option<Vec<Owner>>,
}

/// Every socket of `dump` with its holders in `owners`, in dump order.
///
/// With `only_held` (the owners of one process), the sockets no owner
/// holds are left out. Otherwise a socket held by no owner that was seen
/// is `Some(empty)` when every process could be read, or when it has no
/// inode (no process can hold it); else `None`: one of the processes that
/// could not be read may hold it.
pub fn listed_sockets(
    dump: impl IntoIterator<Item = TcpSocket>,
    owners: &Owners,
    only_held: bool,
) -> Vec<Listed> {
    dump.into_iter()
        .filter_map(|socket| {
            let held = owners.get(socket.inode);
            let processes = if !held.is_empty() {
                Some(held.to_vec())
            } else if only_held {
                return None;
            } else if owners.denied() > 0 && socket.inode != 0 {
                None
            } else {
                Some(Vec::new())
            };
            Some(Listed { socket, processes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seen::tests::socket;
    use crate::tcp::TcpState;

    /// A socket of the dump with inode `inode`.
    fn dumped(inode: u64, state: TcpState) -> TcpSocket {
        TcpSocket {
            inode,
            ..socket(state, None)
        }
    }

    fn fd(fd: i32, inode: u64) -> SocketFd {
        SocketFd { fd, inode }
    }

    fn owner(pid: u32, fd: i32) -> Owner {
        Owner {
            pid,
            command: format!("p{pid}"),
            fd,
        }
    }

    #[test]
    fn held_in_descriptor_order() {
        let dump = [
            dumped(700, TcpState::Established),
            dumped(300, TcpState::Listen),
        ];
        let held = held_sockets(&[fd(7, 700), fd(3, 300)], &dump);
        let got: Vec<(u64, Vec<i32>)> = held
            .iter()
            .map(|h| (h.socket.inode, h.fds.clone()))
            .collect();
        assert_eq!(got, [(300, vec![3]), (700, vec![7])]);
        assert_eq!(held[0].socket, dump[1]);
    }

    #[test]
    fn held_at_several_descriptors_comes_once() {
        let dump = [
            dumped(300, TcpState::Listen),
            dumped(400, TcpState::Established),
        ];
        let held = held_sockets(&[fd(3, 300), fd(4, 400), fd(9, 300), fd(5, 300)], &dump);
        assert_eq!(
            held,
            [
                HeldSocket {
                    socket: dump[0],
                    fds: vec![3, 5, 9]
                },
                HeldSocket {
                    socket: dump[1],
                    fds: vec![4]
                }
            ]
        );
    }

    #[test]
    fn descriptors_not_in_the_dump_are_left_out() {
        // fd 5: a UNIX socket, or a TCP socket in a state not dumped.
        let dump = [
            dumped(300, TcpState::Established),
            dumped(0, TcpState::TimeWait),
        ];
        let held = held_sockets(&[fd(3, 300), fd(5, 555), fd(6, 0)], &dump);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].fds, [3]);
        assert!(held_sockets(&[], &dump).is_empty());
    }

    fn owners(held: &[(u64, Owner)], denied: usize) -> Owners {
        let mut o = Owners::default();
        for (inode, owner) in held {
            o.insert(*inode, owner.pid, &owner.command, owner.fd);
        }
        for _ in 0..denied {
            o.add_denied();
        }
        o
    }

    fn processes(listed: &[Listed]) -> Vec<(u64, Option<Vec<u32>>)> {
        listed
            .iter()
            .map(|l| {
                let pids = l
                    .processes
                    .as_ref()
                    .map(|p| p.iter().map(|o| o.pid).collect());
                (l.socket.inode, pids)
            })
            .collect()
    }

    #[test]
    fn listed_with_every_holder() {
        let o = owners(&[(500, owner(10, 5)), (500, owner(11, 5))], 0);
        let dump = vec![
            dumped(500, TcpState::Listen),
            dumped(600, TcpState::Established),
        ];
        let listed = listed_sockets(dump, &o, false);
        assert_eq!(
            processes(&listed),
            [(500, Some(vec![10, 11])), (600, Some(vec![]))],
            "600: every process was read, none holds it"
        );
        assert_eq!(listed[0].processes.as_ref().unwrap()[1], owner(11, 5));
    }

    #[test]
    fn unreadable_processes_make_holders_unknown() {
        let o = owners(&[(500, owner(10, 5))], 2);
        let dump = vec![
            dumped(500, TcpState::Established),
            dumped(600, TcpState::Established),
            dumped(0, TcpState::TimeWait),
        ];
        assert_eq!(
            processes(&listed_sockets(dump, &o, false)),
            [(500, Some(vec![10])), (600, None), (0, Some(vec![]))],
            "a socket without inode is held by none, readable or not"
        );
    }

    #[test]
    fn only_held_drops_the_others() {
        let o = owners(&[(600, owner(42, 6))], 0);
        let dump = vec![
            dumped(500, TcpState::Established),
            dumped(600, TcpState::Established),
            dumped(0, TcpState::TimeWait),
        ];
        assert_eq!(
            processes(&listed_sockets(dump, &o, true)),
            [(600, Some(vec![42]))]
        );
    }
}
