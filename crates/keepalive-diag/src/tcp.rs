//! The TCP sockets a dump lists: address family, state, pending timer,
//! and the socket itself with its addresses, queues, owner uid, inode and
//! idle times.
//! Plain data with the kernel's numbering (`include/net/tcp_states.h`,
//! `idiag_timer` in inet_diag.h); decoding them from kernel bytes is
//! `inet_diag`'s job.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tcp_info::TcpInfo;

/// `AF_INET`.
pub(crate) const AF_INET: u8 = 2;
/// `AF_INET6`.
pub(crate) const AF_INET6: u8 = 10;

/// An address family sock_diag dumps separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `AF_INET`.
    Inet,
    /// `AF_INET6` (IPv4-mapped addresses included).
    Inet6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Inet, Family::Inet6];

    /// `AF_INET` or `AF_INET6`.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Family::Inet => AF_INET,
            Family::Inet6 => AF_INET6,
        }
    }

    /// The family of an `AF_*` number; `None` for another family.
    pub(crate) const fn from_code(code: u8) -> Option<Family> {
        match code {
            AF_INET => Some(Family::Inet),
            AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }

    /// `inet` or `inet6`.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// A TCP state, as the kernel numbers them (`include/net/tcp_states.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TcpState {
    /// `TCP_ESTABLISHED` (1).
    Established,
    /// `TCP_SYN_SENT` (2).
    SynSent,
    /// `TCP_SYN_RECV` (3); request sockets are reported so too.
    SynRecv,
    /// `TCP_FIN_WAIT1` (4).
    FinWait1,
    /// `TCP_FIN_WAIT2` (5).
    FinWait2,
    /// `TCP_TIME_WAIT` (6).
    TimeWait,
    /// `TCP_CLOSE` (7).
    Close,
    /// `TCP_CLOSE_WAIT` (8).
    CloseWait,
    /// `TCP_LAST_ACK` (9).
    LastAck,
    /// `TCP_LISTEN` (10).
    Listen,
    /// `TCP_CLOSING` (11).
    Closing,
    /// `TCP_NEW_SYN_RECV` (12).
    NewSynRecv,
    /// `TCP_BOUND_INACTIVE` (13).
    BoundInactive,
    /// A number this code does not know.
    Other(u8),
}

impl TcpState {
    /// The state the kernel numbers `code`.
    pub(crate) const fn from_code(code: u8) -> TcpState {
        match code {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            12 => TcpState::NewSynRecv,
            13 => TcpState::BoundInactive,
            n => TcpState::Other(n),
        }
    }

    /// The kernel's number.
    pub const fn code(self) -> u8 {
        match self {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynRecv => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Close => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
            TcpState::NewSynRecv => 12,
            TcpState::BoundInactive => 13,
            TcpState::Other(n) => n,
        }
    }

    /// The name `ss` takes in a state filter (`established`, `time-wait`,
    /// ...), except `listen` and `close`.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn-sent",
            TcpState::SynRecv => "syn-recv",
            TcpState::FinWait1 => "fin-wait-1",
            TcpState::FinWait2 => "fin-wait-2",
            TcpState::TimeWait => "time-wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close-wait",
            TcpState::LastAck => "last-ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
            TcpState::NewSynRecv => "new-syn-recv",
            TcpState::BoundInactive => "bound-inactive",
            TcpState::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpState::Other(n) => write!(f, "state-{n}"),
            s => f.write_str(s.name()),
        }
    }
}

/// Which TCP states to dump: `idiag_states`, bit `1 << state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateSet(u32);

impl StateSet {
    /// Established connections.
    pub const ESTABLISHED: StateSet = StateSet(1 << 1);
    /// Listening sockets.
    pub const LISTEN: StateSet = StateSet(1 << 10);
    /// Every state.
    pub const ALL: StateSet = StateSet(u32::MAX);

    /// Both sets.
    pub const fn union(self, other: StateSet) -> StateSet {
        StateSet(self.0 | other.0)
    }

    /// True when `state` is in the set.
    pub const fn contains(self, state: TcpState) -> bool {
        let code = state.code();
        code < 32 && self.0 & (1 << code) != 0
    }

    /// The bit mask.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// What a pending socket timer is (`idiag_timer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 1: retransmission (also loss probe and reordering timeouts); it
    /// takes precedence over the keepalive timer, which it hides.
    Retransmit,
    /// 2: the keepalive timer (`sk_timer`; for an orphaned socket in
    /// FIN_WAIT2 it is the FIN_WAIT2 timeout instead).
    Keepalive,
    /// 3: the TIME_WAIT timer.
    TimeWait,
    /// 4: the zero-window probe timer (`ss` calls it `persist`).
    ZeroWindowProbe,
    /// Another number.
    Other(u8),
}

impl TimerKind {
    /// The timer `idiag_timer` names; `None` for 0, no timer.
    pub(crate) const fn from_code(code: u8) -> Option<TimerKind> {
        match code {
            0 => None,
            1 => Some(TimerKind::Retransmit),
            2 => Some(TimerKind::Keepalive),
            3 => Some(TimerKind::TimeWait),
            4 => Some(TimerKind::ZeroWindowProbe),
            n => Some(TimerKind::Other(n)),
        }
    }

    /// `retransmit`, `keepalive`, `time-wait`, `zero-window-probe`, `other`.
    pub const fn name(self) -> &'static str {
        match self {
            TimerKind::Retransmit => "retransmit",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "time-wait",
            TimerKind::ZeroWindowProbe => "zero-window-probe",
            TimerKind::Other(_) => "other",
        }
    }

    /// The name `ss -o` prints in `timer:(NAME,...)`.
    pub const fn ss_name(self) -> &'static str {
        match self {
            TimerKind::Retransmit => "on",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "timewait",
            TimerKind::ZeroWindowProbe => "persist",
            TimerKind::Other(_) => "unknown",
        }
    }
}

/// A pending socket timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timer {
    /// Which timer.
    pub kind: TimerKind,
    /// Time until it fires (`idiag_expires`, milliseconds).
    pub left: Duration,
    /// `idiag_retrans`: retransmissions for [`TimerKind::Retransmit`],
    /// probes sent without an answer for [`TimerKind::Keepalive`] and
    /// [`TimerKind::ZeroWindowProbe`].
    pub count: u8,
}

/// One TCP socket from the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpSocket {
    /// The socket's address family.
    pub family: Family,
    /// Its state.
    pub state: TcpState,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified, port 0, for a listener).
    pub remote: SocketAddr,
    /// The pending timer, `None` when there is none.
    pub timer: Option<Timer>,
    /// Bytes received and not read (for a listener: the accept backlog).
    pub recv_queue: u32,
    /// Bytes sent and not acknowledged (for a listener: the backlog limit).
    pub send_queue: u32,
    /// The socket's owner uid.
    pub uid: u32,
    /// The socket inode, as `/proc/PID/fd/N -> socket:[INODE]` shows it; 0
    /// for TIME_WAIT and request sockets, which have none.
    pub inode: u64,
    /// The kernel's cookie for the socket.
    pub cookie: u64,
    /// The interface the socket is bound to, 0 for none.
    pub interface: u32,
    /// Its `struct tcp_info` idle times and probes (`INET_DIAG_INFO`):
    /// `None` for listeners, TIME_WAIT and request sockets, and when the
    /// kernel sent none.
    pub info: Option<TcpInfo>,
}

impl TcpSocket {
    /// Time since the last data sent or received ([`TcpInfo::idle`]),
    /// when the dump gave it.
    pub fn idle(&self) -> Option<Duration> {
        self.info.map(|i| i.idle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_set_bits() {
        assert!(StateSet::ESTABLISHED.contains(TcpState::Established));
        assert!(!StateSet::ESTABLISHED.contains(TcpState::Listen));
        assert!(StateSet::ALL.contains(TcpState::TimeWait));
        assert_eq!(StateSet::LISTEN.bits(), 1 << 10);
        let both = StateSet::ESTABLISHED.union(StateSet::LISTEN);
        assert_eq!(both.bits(), (1 << 1) | (1 << 10));
        assert!(!both.contains(TcpState::Other(40)), "beyond the mask");
    }

    #[test]
    fn state_codes_round_trip() {
        for code in 0..=20u8 {
            let state = TcpState::from_code(code);
            assert_eq!(state.code(), code, "{state:?}");
        }
        assert_eq!(TcpState::from_code(1), TcpState::Established);
        assert_eq!(TcpState::from_code(10), TcpState::Listen);
        assert_eq!(TcpState::from_code(0), TcpState::Other(0));
    }

    #[test]
    fn state_display() {
        assert_eq!(TcpState::FinWait1.to_string(), "fin-wait-1");
        assert_eq!(TcpState::Other(42).to_string(), "state-42");
    }

    #[test]
    fn timer_codes() {
        assert_eq!(TimerKind::from_code(0), None);
        assert_eq!(TimerKind::from_code(2), Some(TimerKind::Keepalive));
        assert_eq!(
            TimerKind::from_code(4).map(TimerKind::ss_name),
            Some("persist")
        );
        assert_eq!(TimerKind::from_code(9), Some(TimerKind::Other(9)));
    }

    #[test]
    fn family_codes() {
        for f in Family::ALL {
            assert_eq!(Family::from_code(f.code()), Some(f));
        }
        assert_eq!(Family::from_code(1), None, "AF_UNIX");
    }
}
