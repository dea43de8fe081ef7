//! Another process's TCP sockets, and what can be known of their
//! keepalive, for `keepalive ls` and `keepalive attach` (and `doctor`,
//! `metrics`): the commands render, this crate knows.
//!
//! What it does:
//!
//! - [`tcp_sockets`] lists the TCP sockets (IPv4 and IPv6) of the calling
//!   thread's network namespace through sock_diag netlink (inet_diag), each
//!   a [`TcpSocket`] with its addresses, state, uid, inode, pending timer
//!   and, from `struct tcp_info`, its idle times ([`TcpInfo`]). The
//!   request encoder and reply parser ([`request`], [`parse`]) are pure,
//!   as is the netlink framing under them.
//! - [`Owners`] and [`process_sockets`] map socket inodes to processes
//!   through `/proc/PID/fd`, counting the processes it may not read.
//! - [`held_sockets`] joins one process's descriptors with a dump (each
//!   socket once, with all its descriptors); [`listed_sockets`] joins a
//!   whole dump with its [`Owners`], telling "held by none" from "could
//!   not be seen". Both are pure.
//! - [`PidFd::socket`] duplicates another process's descriptor with
//!   pidfd_getfd(2) (Linux >= 5.6) and proves it is still the socket
//!   listed (its inode), or says it was [closed or reused](Duplicate), so
//!   that options can be read and set on it; [`keepalive_options`] reads
//!   them for every listed socket of a process.
//! - [`keepalive_seen`] says whether a socket has keepalive on and how
//!   that is known: its own `SO_KEEPALIVE`, or the timer in the dump, or
//!   neither (hidden by a retransmission, a listener), or that the
//!   question does not apply (TIME_WAIT, orphans).
//! - [`cgroup`] and [`unit_of`] say which cgroup and systemd unit a
//!   process runs in.
//! - [`survey`] gathers all of it for a network namespace in one dump and
//!   one `/proc` scan: each connection and listener with its processes,
//!   unit, options and idle time ([`Surveyed`]), for `doctor` and
//!   `metrics`.
//!
//! What it won't do: enter a network namespace (run [`tcp_sockets`] on a
//! thread inside one, e.g. with `keepalive::host::NetNs::run`), filter
//! sockets in the kernel (bytecode filters), ask for the optional
//! extensions other than `tcp_info` (memory, congestion control), list
//! UDP, UNIX and other sockets, set
//! options (that is `keepalive::apply`, on a duplicate), or render
//! anything. It makes its system calls through rustix's safe API and has
//! no `unsafe` code.

mod held;
mod inet_diag;
mod netlink;
mod options;
mod pidfd;
mod procfs;
mod risk;
mod seen;
mod sock_diag;
mod survey;
mod sys;
mod tcp;
mod tcp_info;

pub use held::{HeldSocket, Listed, held_sockets, listed_sockets};
pub use inet_diag::{NETLINK_SOCK_DIAG, REQUEST_LEN, SOCK_DIAG_BY_FAMILY, parse, request};
pub use netlink::{ParseError, ParseErrorKind, Progress, ReplyError};
pub use options::keepalive_options;
pub use pidfd::{Duplicate, PidFd, PidFdError, PidFdErrorKind, socket_inode};
pub use procfs::{
    Owner, Owners, PROC, SocketFd, cgroup, command, process_sockets, socket_link_inode, unit_of,
};
pub use risk::{
    Finding, FindingKind, Fix, Group, IdleTimeout, InPlace, Inputs, Recommended, Severity,
    TimeoutSource, assess, assess_with, at_risk,
};
pub use seen::{Evidence, KeepaliveSeen, keepalive_seen};
pub use sock_diag::{DiagError, tcp_sockets};
pub use survey::{Effective, Survey, SurveyError, SurveyOptions, Surveyed, survey, survey_with};
pub use tcp::{Family, StateSet, TcpSocket, TcpState, Timer, TimerKind};
pub use tcp_info::TcpInfo;
