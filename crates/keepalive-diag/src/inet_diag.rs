//! inet_diag messages: the request for a dump of the TCP sockets of one
//! address family, and the parser of the kernel's replies. Pure code: no
//! system call, so every byte of it is tested without root.
//!
//! The layouts are the kernel's UAPI, pinned below by size:
//! `struct nlmsghdr` and `struct nlattr` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/netlink.h>,
//! `struct inet_diag_req_v2`, `struct inet_diag_sockid` and
//! `struct inet_diag_msg` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/inet_diag.h>.
//! See sock_diag(7) and netlink(7).
//!
//! Kernel bytes are never indexed: every field is read with `.get(..)` at
//! its `offset_of!` offset, so a short or lying message is an error, never a
//! panic.

use std::fmt;
use std::mem::offset_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// `NETLINK_SOCK_DIAG`, the netlink family of sock_diag(7).
pub const NETLINK_SOCK_DIAG: i32 = 4;
/// `SOCK_DIAG_BY_FAMILY`: the request (and reply) message type.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// `NLMSG_NOOP`: nothing, skip it.
const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: a `struct nlmsgerr`; error 0 is an acknowledgement.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a multi-part reply.
const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data was lost.
const NLMSG_OVERRUN: u16 = 4;

/// `NLM_F_REQUEST`: a request.
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: one part of a multi-part reply, which `NLMSG_DONE` ends.
const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`): every matching object.
const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_DUMP_INTR`: the tables changed during the dump, which may have
/// missed or repeated a socket.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// `AF_INET`.
const AF_INET: u8 = 2;
/// `AF_INET6`.
const AF_INET6: u8 = 10;
/// `IPPROTO_TCP`.
const IPPROTO_TCP: u8 = 6;

/// `struct nlmsghdr`, host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NlMsgHdr {
    len: u32,
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}
const _: () = assert!(size_of::<NlMsgHdr>() == 16);

/// `struct nlattr`: an attribute after the fixed part of a message.
#[repr(C)]
struct NlAttr {
    len: u16,
    ty: u16,
}
const _: () = assert!(size_of::<NlAttr>() == 4);

/// `struct nlmsgerr`: the payload of `NLMSG_ERROR`.
#[repr(C)]
struct NlMsgErr {
    /// `-errno`, or 0 for an acknowledgement.
    error: i32,
    msg: NlMsgHdr,
}
const _: () = assert!(size_of::<NlMsgErr>() == 20);

/// `struct inet_diag_sockid`. Ports and addresses are in network byte
/// order, kept here as bytes; the interface and cookie in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}
const _: () = assert!(size_of::<InetDiagSockId>() == 48);

/// `struct inet_diag_req_v2`: the request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    /// Bit mask of extensions asked for (`INET_DIAG_INFO`, ...): none.
    ext: u8,
    pad: u8,
    /// Bit mask of TCP states, bit `1 << state`.
    states: u32,
    id: InetDiagSockId,
}
const _: () = assert!(size_of::<InetDiagReqV2>() == 56);

/// `struct inet_diag_msg`: one socket in the reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    /// 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe.
    timer: u8,
    /// Retransmissions (timer 1) or probes sent (timers 2 and 4).
    retrans: u8,
    id: InetDiagSockId,
    /// Milliseconds until the timer fires.
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}
const _: () = assert!(size_of::<InetDiagMsg>() == 72);

/// `NLMSG_ALIGN` and `NLA_ALIGN`: lengths round up to 4 bytes.
const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The length of a request made by [`request`].
pub const REQUEST_LEN: usize = size_of::<NlMsgHdr>() + size_of::<InetDiagReqV2>();

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

    const fn code(self) -> u8 {
        match self {
            Family::Inet => AF_INET,
            Family::Inet6 => AF_INET6,
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
    const fn from_code(code: u8) -> TcpState {
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
    const fn from_code(code: u8) -> Option<TimerKind> {
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
}

/// Encodes `SOCK_DIAG_BY_FAMILY` with `NLM_F_REQUEST | NLM_F_DUMP` for the
/// TCP sockets of `family` in `states`, no extension asked for.
pub fn request(family: Family, states: StateSet, seq: u32) -> [u8; REQUEST_LEN] {
    let hdr = NlMsgHdr {
        len: REQUEST_LEN as u32,
        ty: SOCK_DIAG_BY_FAMILY,
        flags: NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        pid: 0,
    };
    let req = InetDiagReqV2 {
        family: family.code(),
        protocol: IPPROTO_TCP,
        states: states.bits(),
        ..InetDiagReqV2::default()
    };
    let mut out = [0u8; REQUEST_LEN];
    put(&mut out, offset_of!(NlMsgHdr, len), &hdr.len.to_ne_bytes());
    put(&mut out, offset_of!(NlMsgHdr, ty), &hdr.ty.to_ne_bytes());
    put(
        &mut out,
        offset_of!(NlMsgHdr, flags),
        &hdr.flags.to_ne_bytes(),
    );
    put(&mut out, offset_of!(NlMsgHdr, seq), &hdr.seq.to_ne_bytes());
    put(&mut out, offset_of!(NlMsgHdr, pid), &hdr.pid.to_ne_bytes());
    let base = size_of::<NlMsgHdr>();
    put(
        &mut out,
        base + offset_of!(InetDiagReqV2, family),
        &[req.family],
    );
    put(
        &mut out,
        base + offset_of!(InetDiagReqV2, protocol),
        &[req.protocol],
    );
    put(&mut out, base + offset_of!(InetDiagReqV2, ext), &[req.ext]);
    put(
        &mut out,
        base + offset_of!(InetDiagReqV2, states),
        &req.states.to_ne_bytes(),
    );
    // The socket id stays zero: no filter on addresses, ports or cookie.
    out
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

/// What a reply datagram was wrong about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Fewer bytes left than a `struct nlmsghdr`.
    TruncatedHeader,
    /// `nlmsg_len` is smaller than its header or runs past the datagram.
    BadMessageLength,
    /// The payload is shorter than `struct inet_diag_msg` (or
    /// `struct nlmsgerr` for `NLMSG_ERROR`).
    TruncatedPayload,
    /// An attribute's `nla_len` is below 4 or runs past its message.
    BadAttribute,
    /// `idiag_family` is neither `AF_INET` nor `AF_INET6`.
    UnknownFamily(u8),
}

/// A reply datagram that does not hold what netlink promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}, at byte {offset} of a {len}-byte datagram", self.describe())]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// Where, from the start of the datagram.
    pub offset: usize,
    /// The datagram's length.
    pub len: usize,
}

impl ParseError {
    fn describe(&self) -> String {
        match self.kind {
            ParseErrorKind::TruncatedHeader => "truncated netlink header".to_owned(),
            ParseErrorKind::BadMessageLength => "bad nlmsg_len".to_owned(),
            ParseErrorKind::TruncatedPayload => "message shorter than its payload".to_owned(),
            ParseErrorKind::BadAttribute => "bad attribute length".to_owned(),
            ParseErrorKind::UnknownFamily(f) => format!("unknown address family {f}"),
        }
    }
}

/// A reply that ends the dump with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The bytes are not a valid reply.
    #[error("malformed sock_diag reply: {0}")]
    Malformed(#[from] ParseError),
    /// `NLMSG_ERROR` (or `NLMSG_DONE`) carried this errno (positive), or
    /// `NLMSG_OVERRUN` came (`ENOBUFS`).
    #[error("the kernel answered errno {0}")]
    Kernel(i32),
}

/// Where the dump stands after one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// The reply is complete. `interrupted` is true when a part carried
    /// `NLM_F_DUMP_INTR`: sockets came or went meanwhile, and one may be
    /// missing or listed twice.
    Done {
        /// `NLM_F_DUMP_INTR` seen.
        interrupted: bool,
    },
}

/// Reads a fixed-size field at `at`; `None` when `buf` is too short.
fn field<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    field(buf, at).map(u16::from_ne_bytes)
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    field(buf, at).map(u32::from_ne_bytes)
}

impl NlMsgHdr {
    fn read(buf: &[u8]) -> Option<NlMsgHdr> {
        Some(NlMsgHdr {
            len: u32_at(buf, offset_of!(NlMsgHdr, len))?,
            ty: u16_at(buf, offset_of!(NlMsgHdr, ty))?,
            flags: u16_at(buf, offset_of!(NlMsgHdr, flags))?,
            seq: u32_at(buf, offset_of!(NlMsgHdr, seq))?,
            pid: u32_at(buf, offset_of!(NlMsgHdr, pid))?,
        })
    }
}

impl InetDiagSockId {
    fn read(buf: &[u8]) -> Option<InetDiagSockId> {
        Some(InetDiagSockId {
            sport: field(buf, offset_of!(InetDiagSockId, sport))?,
            dport: field(buf, offset_of!(InetDiagSockId, dport))?,
            src: field(buf, offset_of!(InetDiagSockId, src))?,
            dst: field(buf, offset_of!(InetDiagSockId, dst))?,
            interface: u32_at(buf, offset_of!(InetDiagSockId, interface))?,
            cookie: [
                u32_at(buf, offset_of!(InetDiagSockId, cookie))?,
                u32_at(buf, offset_of!(InetDiagSockId, cookie) + 4)?,
            ],
        })
    }
}

impl InetDiagMsg {
    fn read(buf: &[u8]) -> Option<InetDiagMsg> {
        let byte = |at: usize| buf.get(at).copied();
        Some(InetDiagMsg {
            family: byte(offset_of!(InetDiagMsg, family))?,
            state: byte(offset_of!(InetDiagMsg, state))?,
            timer: byte(offset_of!(InetDiagMsg, timer))?,
            retrans: byte(offset_of!(InetDiagMsg, retrans))?,
            id: InetDiagSockId::read(buf.get(offset_of!(InetDiagMsg, id)..)?)?,
            expires: u32_at(buf, offset_of!(InetDiagMsg, expires))?,
            rqueue: u32_at(buf, offset_of!(InetDiagMsg, rqueue))?,
            wqueue: u32_at(buf, offset_of!(InetDiagMsg, wqueue))?,
            uid: u32_at(buf, offset_of!(InetDiagMsg, uid))?,
            inode: u32_at(buf, offset_of!(InetDiagMsg, inode))?,
        })
    }
}

fn address(family: u8, raw: [u8; 16], port: [u8; 2], interface: u32) -> Option<SocketAddr> {
    let port = u16::from_be_bytes(port);
    match family {
        AF_INET => {
            let [a, b, c, d, ..] = raw;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
        }
        AF_INET6 => {
            let ip = Ipv6Addr::from(raw);
            // A link-local address means nothing without its interface.
            let scope = if ip.segments()[0] & 0xffc0 == 0xfe80 {
                interface
            } else {
                0
            };
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
        }
        _ => None,
    }
}

impl TcpSocket {
    fn from_msg(m: &InetDiagMsg) -> Option<TcpSocket> {
        let family = match m.family {
            AF_INET => Family::Inet,
            AF_INET6 => Family::Inet6,
            _ => return None,
        };
        Some(TcpSocket {
            family,
            state: TcpState::from_code(m.state),
            local: address(m.family, m.id.src, m.id.sport, m.id.interface)?,
            remote: address(m.family, m.id.dst, m.id.dport, m.id.interface)?,
            timer: TimerKind::from_code(m.timer).map(|kind| Timer {
                kind,
                left: Duration::from_millis(u64::from(m.expires)),
                count: m.retrans,
            }),
            recv_queue: m.rqueue,
            send_queue: m.wqueue,
            uid: m.uid,
            inode: u64::from(m.inode),
            cookie: u64::from(m.id.cookie[0]) | (u64::from(m.id.cookie[1]) << 32),
            interface: m.id.interface,
        })
    }
}

/// Parses one datagram of the reply to the request numbered `seq`,
/// appending its sockets to `out`.
///
/// Handles several messages per datagram, `NLM_F_MULTI` parts, `NLMSG_DONE`
/// (whose payload, when present, is an error code), `NLMSG_ERROR` (0 is an
/// acknowledgement and ends the reply, anything else is
/// [`ReplyError::Kernel`]) and `NLMSG_NOOP`. Messages with another sequence
/// number (late answers to an earlier request) and of other types are
/// skipped; attributes after `struct inet_diag_msg` are checked and
/// skipped.
pub fn parse(buf: &[u8], seq: u32, out: &mut Vec<TcpSocket>) -> Result<Progress, ReplyError> {
    let err = |kind, offset| ParseError {
        kind,
        offset,
        len: buf.len(),
    };
    let hdr_len = size_of::<NlMsgHdr>();
    let mut at = 0;
    let mut interrupted = false;
    let mut multi = false;
    while at < buf.len() {
        let rest = &buf[at..];
        let hdr = NlMsgHdr::read(rest).ok_or(err(ParseErrorKind::TruncatedHeader, at))?;
        let len = hdr.len as usize;
        if len < hdr_len || len > rest.len() {
            return Err(err(ParseErrorKind::BadMessageLength, at).into());
        }
        let payload = &rest[hdr_len..len];
        // The last message may end the datagram without its padding.
        let next = at + align4(len).min(rest.len());
        if hdr.seq != seq {
            at = next;
            continue;
        }
        interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
        multi = hdr.flags & NLM_F_MULTI != 0;
        match hdr.ty {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                // Dumps put an int there: 0, or -errno when the dump failed.
                if let Some(code) = field(payload, 0).map(i32::from_ne_bytes)
                    && code < 0
                {
                    return Err(ReplyError::Kernel(-code));
                }
                return Ok(Progress::Done { interrupted });
            }
            NLMSG_ERROR => {
                if payload.len() < size_of::<NlMsgErr>() {
                    return Err(err(ParseErrorKind::TruncatedPayload, at + hdr_len).into());
                }
                let code = field(payload, offset_of!(NlMsgErr, error))
                    .map(i32::from_ne_bytes)
                    .unwrap_or_default();
                return match code {
                    0 => Ok(Progress::Done { interrupted }),
                    c => Err(ReplyError::Kernel(c.saturating_neg())),
                };
            }
            NLMSG_OVERRUN => return Err(ReplyError::Kernel(libc::ENOBUFS)),
            SOCK_DIAG_BY_FAMILY => {
                let msg = InetDiagMsg::read(payload)
                    .ok_or(err(ParseErrorKind::TruncatedPayload, at + hdr_len))?;
                check_attributes(&payload[size_of::<InetDiagMsg>()..])
                    .map_err(|o| err(ParseErrorKind::BadAttribute, at + hdr_len + o))?;
                let socket = TcpSocket::from_msg(&msg)
                    .ok_or(err(ParseErrorKind::UnknownFamily(msg.family), at + hdr_len))?;
                out.push(socket);
            }
            _ => {}
        }
        at = next;
    }
    // A lone message without NLM_F_MULTI is the whole reply.
    Ok(if multi || buf.is_empty() {
        Progress::More
    } else {
        Progress::Done { interrupted }
    })
}

/// Walks the attributes (`struct nlattr` + value, each padded to 4 bytes);
/// on error, the offset of the bad one.
fn check_attributes(mut attrs: &[u8]) -> Result<(), usize> {
    let mut at = 0;
    let hdr = size_of::<NlAttr>();
    while !attrs.is_empty() {
        let len = u16_at(attrs, offset_of!(NlAttr, len)).ok_or(at)? as usize;
        // The type is not needed: no extension was asked for, and what the
        // kernel adds anyway (INET_DIAG_SHUTDOWN, ...) is not used.
        let _ty = u16_at(attrs, offset_of!(NlAttr, ty)).ok_or(at)?;
        if len < hdr || len > attrs.len() {
            return Err(at);
        }
        let step = align4(len).min(attrs.len());
        attrs = &attrs[step..];
        at += step;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQ: u32 = 7;

    /// A netlink header, in the kernel's byte order (this machine's).
    fn header(len: usize, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b
    }

    /// 127.0.0.1:41234 -> 127.0.0.1:8080, established, keepalive timer with
    /// 59999 ms left and 2 probes, uid 1000, inode 123456, cookie
    /// 0x0000000200000001, then one `INET_DIAG_SHUTDOWN` attribute (u8, so
    /// 5 bytes padded to 8).
    fn inet_msg(seq: u32, flags: u16) -> Vec<u8> {
        let mut p = vec![
            AF_INET, 1, 2, 2, // family, state, timer, retrans
            0xa1, 0x12, 0x1f, 0x90, // sport 41234, dport 8080 (big-endian)
        ];
        p.extend_from_slice(&[127, 0, 0, 1]);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[127, 0, 0, 1]);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&0u32.to_ne_bytes()); // interface
        p.extend_from_slice(&1u32.to_ne_bytes()); // cookie[0]
        p.extend_from_slice(&2u32.to_ne_bytes()); // cookie[1]
        for v in [59_999u32, 0, 0, 1000, 123_456] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(p.len(), 72);
        p.extend_from_slice(&5u16.to_ne_bytes());
        p.extend_from_slice(&8u16.to_ne_bytes()); // INET_DIAG_SHUTDOWN
        p.extend_from_slice(&[0, 0, 0, 0]); // value + padding
        let mut m = header(16 + p.len(), SOCK_DIAG_BY_FAMILY, flags, seq);
        m.extend_from_slice(&p);
        m
    }

    /// [::1]:22 listening, no timer, inode 99.
    fn inet6_listener(seq: u32, flags: u16) -> Vec<u8> {
        let mut p = vec![AF_INET6, 10, 0, 0, 0, 22, 0, 0];
        let mut lo = [0u8; 16];
        lo[15] = 1;
        p.extend_from_slice(&lo);
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&[0; 12]); // interface, cookie
        for v in [0u32, 0, 128, 0, 99] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        let mut m = header(16 + p.len(), SOCK_DIAG_BY_FAMILY, flags, seq);
        m.extend_from_slice(&p);
        m
    }

    fn done(seq: u32, code: i32) -> Vec<u8> {
        let mut m = header(20, NLMSG_DONE, NLM_F_MULTI, seq);
        m.extend_from_slice(&code.to_ne_bytes());
        m
    }

    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut m = header(36, NLMSG_ERROR, 0, seq);
        m.extend_from_slice(&code.to_ne_bytes());
        m.extend_from_slice(&header(REQUEST_LEN, SOCK_DIAG_BY_FAMILY, 0x301, seq));
        m
    }

    fn parse_all(buf: &[u8]) -> (Result<Progress, ReplyError>, Vec<TcpSocket>) {
        let mut out = Vec::new();
        let r = parse(buf, SEQ, &mut out);
        (r, out)
    }

    #[test]
    fn request_golden_bytes() {
        let r = request(
            Family::Inet6,
            StateSet::ESTABLISHED.union(StateSet::LISTEN),
            3,
        );
        let mut want = header(72, 20, 0x0301, 3);
        want.extend_from_slice(&[10, 6, 0, 0]);
        want.extend_from_slice(&0x0402u32.to_ne_bytes());
        want.extend_from_slice(&[0; 48]);
        assert_eq!(r.to_vec(), want);
    }

    #[test]
    fn one_socket_with_attribute() {
        let (r, out) = parse_all(&inet_msg(SEQ, NLM_F_MULTI));
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(
            out,
            [TcpSocket {
                family: Family::Inet,
                state: TcpState::Established,
                local: "127.0.0.1:41234".parse().unwrap(),
                remote: "127.0.0.1:8080".parse().unwrap(),
                timer: Some(Timer {
                    kind: TimerKind::Keepalive,
                    left: Duration::from_millis(59_999),
                    count: 2,
                }),
                recv_queue: 0,
                send_queue: 0,
                uid: 1000,
                inode: 123_456,
                cookie: 0x2_0000_0001,
                interface: 0,
            }]
        );
    }

    #[test]
    fn multipart_then_done() {
        let mut first = inet_msg(SEQ, NLM_F_MULTI);
        first.extend(inet6_listener(SEQ, NLM_F_MULTI));
        let (r, out) = parse_all(&first);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].state, TcpState::Listen);
        assert_eq!(out[1].local, "[::1]:22".parse().unwrap());
        assert_eq!(out[1].remote, "[::]:0".parse().unwrap());
        assert_eq!(out[1].timer, None);
        assert_eq!(out[1].inode, 99);
        let (r, out) = parse_all(&done(SEQ, 0));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
        assert!(out.is_empty());
    }

    #[test]
    fn done_in_the_same_datagram() {
        let mut buf = inet_msg(SEQ, NLM_F_MULTI | NLM_F_DUMP_INTR);
        buf.extend(done(SEQ, 0));
        let (r, out) = parse_all(&buf);
        assert_eq!(r, Ok(Progress::Done { interrupted: true }));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn done_with_an_error() {
        let (r, _) = parse_all(&done(SEQ, -libc::EINTR));
        assert_eq!(r, Err(ReplyError::Kernel(libc::EINTR)));
    }

    #[test]
    fn done_without_payload() {
        let (r, _) = parse_all(&header(16, NLMSG_DONE, NLM_F_MULTI, SEQ));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
    }

    #[test]
    fn nlmsg_error_is_the_kernels_errno() {
        let (r, _) = parse_all(&error(SEQ, -libc::ENOENT));
        assert_eq!(r, Err(ReplyError::Kernel(libc::ENOENT)));
    }

    #[test]
    fn nlmsg_error_zero_is_an_ack() {
        let (r, _) = parse_all(&error(SEQ, 0));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
    }

    #[test]
    fn overrun_is_enobufs() {
        let (r, _) = parse_all(&header(16, NLMSG_OVERRUN, 0, SEQ));
        assert_eq!(r, Err(ReplyError::Kernel(libc::ENOBUFS)));
    }

    #[test]
    fn other_sequence_numbers_are_skipped() {
        let mut buf = inet_msg(SEQ + 1, NLM_F_MULTI);
        buf.extend(done(SEQ + 1, 0));
        buf.extend(inet6_listener(SEQ, NLM_F_MULTI));
        let (r, out) = parse_all(&buf);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].inode, 99);
    }

    #[test]
    fn single_part_reply_ends_without_done() {
        let (r, out) = parse_all(&inet_msg(SEQ, 0));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
        assert_eq!(out.len(), 1);
    }

    fn kind(buf: &[u8]) -> ParseErrorKind {
        match parse_all(buf).0 {
            Err(ReplyError::Malformed(e)) => e.kind,
            other => panic!("want a parse error, got {other:?}"),
        }
    }

    #[test]
    fn truncated_header() {
        let buf = inet_msg(SEQ, NLM_F_MULTI);
        assert_eq!(kind(&buf[..10]), ParseErrorKind::TruncatedHeader);
    }

    #[test]
    fn truncated_message_is_an_error_not_a_panic() {
        let buf = inet_msg(SEQ, NLM_F_MULTI);
        // Every cut inside the message: the header's length then lies.
        for cut in 16..buf.len() {
            assert_eq!(
                kind(&buf[..cut]),
                ParseErrorKind::BadMessageLength,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn short_payload() {
        let mut buf = header(16 + 40, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, SEQ);
        buf.extend_from_slice(&[0; 40]);
        let err = match parse_all(&buf).0 {
            Err(ReplyError::Malformed(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.kind, ParseErrorKind::TruncatedPayload);
        assert_eq!(err.offset, 16);
        assert_eq!(
            err.to_string(),
            "message shorter than its payload, at byte 16 of a 56-byte datagram"
        );
    }

    #[test]
    fn length_below_the_header() {
        let buf = header(8, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, SEQ);
        assert_eq!(kind(&buf), ParseErrorKind::BadMessageLength);
    }

    #[test]
    fn attribute_running_past_its_message() {
        let mut buf = inet_msg(SEQ, NLM_F_MULTI);
        // nla_len of the attribute at 16 + 72: claim 200 bytes.
        buf[88..90].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(kind(&buf), ParseErrorKind::BadAttribute);
        buf[88..90].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(kind(&buf), ParseErrorKind::BadAttribute);
    }

    #[test]
    fn unknown_family() {
        let mut buf = inet_msg(SEQ, NLM_F_MULTI);
        buf[16] = 1; // AF_UNIX
        assert_eq!(kind(&buf), ParseErrorKind::UnknownFamily(1));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap fuzz: every one-byte change of a valid reply parses or
        // fails cleanly.
        let mut valid = inet_msg(SEQ, NLM_F_MULTI);
        valid.extend(inet6_listener(SEQ, NLM_F_MULTI));
        valid.extend(done(SEQ, 0));
        for i in 0..valid.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = valid.clone();
                b[i] = v;
                let _ = parse_all(&b);
            }
        }
    }

    #[test]
    fn link_local_keeps_its_interface() {
        let mut ip = [0u8; 16];
        ip[0] = 0xfe;
        ip[1] = 0x80;
        ip[15] = 1;
        let a = address(AF_INET6, ip, [0, 22], 3).unwrap();
        assert_eq!(a.to_string(), "[fe80::1%3]:22");
        let lo = address(AF_INET6, Ipv6Addr::LOCALHOST.octets(), [0, 22], 3).unwrap();
        assert_eq!(lo.to_string(), "[::1]:22");
    }

    #[test]
    fn state_set_bits() {
        assert!(StateSet::ESTABLISHED.contains(TcpState::Established));
        assert!(!StateSet::ESTABLISHED.contains(TcpState::Listen));
        assert!(StateSet::ALL.contains(TcpState::TimeWait));
        assert_eq!(StateSet::LISTEN.bits(), 1 << 10);
    }
}
