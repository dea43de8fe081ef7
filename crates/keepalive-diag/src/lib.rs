//! Another process's TCP sockets, for `keepalive ls` and `keepalive attach`:
//!
//! - [`tcp_sockets`] lists the TCP sockets (IPv4 and IPv6) of the calling
//!   thread's network namespace through sock_diag netlink (inet_diag), each
//!   with its addresses, state, uid, inode and pending timer: a keepalive
//!   timer shows keepalive is on, with the time left and the probes sent.
//!   The request encoder and reply parser ([`request`], [`parse`]) are pure.
//! - [`Owners`] and [`process_sockets`] map socket inodes to processes
//!   through `/proc/PID/fd`.
//! - [`PidFd`] duplicates another process's descriptor with pidfd_getfd(2)
//!   (Linux >= 5.6), so that socket options can be read and set on it;
//!   [`socket_inode`] tells whether the duplicate is still the socket listed.
//!
//! What it won't do: enter a network namespace (run [`tcp_sockets`] on a
//! thread inside one, e.g. with `keepalive::host::NetNs::run`), filter sockets in
//! the kernel (bytecode filters), ask for the optional extensions
//! (`tcp_info`, memory), or list UDP, UNIX and other sockets.
#![forbid(unsafe_code)]

mod inet_diag;
mod netlink;
mod pidfd;
mod procfs;
mod sock_diag;
mod sys;
mod tcp;

pub use inet_diag::{NETLINK_SOCK_DIAG, REQUEST_LEN, SOCK_DIAG_BY_FAMILY, parse, request};
pub use netlink::{ParseError, ParseErrorKind, Progress, ReplyError};
pub use pidfd::{PidFd, PidFdError, PidFdErrorKind, socket_inode};
pub use procfs::{Owner, Owners, PROC, SocketFd, command, process_sockets, socket_link_inode};
pub use sock_diag::{DiagError, tcp_sockets};
pub use tcp::{Family, StateSet, TcpSocket, TcpState, Timer, TimerKind};
