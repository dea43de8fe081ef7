//! inet_diag messages: the request for a dump of the TCP sockets of one
//! address family, and the decoder of the kernel's reply datagrams into
//! [`TcpSocket`]s. Pure code: no system call, so every byte of it is
//! tested without root. The netlink framing around them is `netlink`'s.
//!
//! The layouts are the kernel's UAPI, pinned below by size:
//! `struct inet_diag_req_v2`, `struct inet_diag_sockid` and
//! `struct inet_diag_msg` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/inet_diag.h>.
//! See sock_diag(7). The request asks for one extension, `INET_DIAG_INFO`
//! (`struct tcp_info`, decoded by `tcp_info`), for the connections' idle
//! times.
//!
//! Kernel bytes are never indexed: every field is read with `.get(..)` at
//! its `offset_of!` offset, so a short or lying message is an error, never a
//! panic.

use std::mem::offset_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use crate::netlink::{
    self, HEADER_LEN, NLM_F_DUMP, NLM_F_REQUEST, NlMsgHdr, ParseErrorKind, PayloadError, Progress,
    ReplyError, field, u32_at,
};
use crate::tcp::{Family, StateSet, TcpSocket, TcpState, Timer, TimerKind};
use crate::tcp_info::{EXT_INFO, INET_DIAG_INFO, TcpInfo};

/// `NETLINK_SOCK_DIAG`, the netlink family of sock_diag(7).
pub const NETLINK_SOCK_DIAG: i32 = 4;
/// `SOCK_DIAG_BY_FAMILY`: the request (and reply) message type.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// `IPPROTO_TCP`.
const IPPROTO_TCP: u8 = 6;

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
    /// Bit mask of extensions asked for: bit `n - 1` for attribute `n`
    /// (`INET_DIAG_INFO` only).
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

/// The length of a request made by [`request`].
pub const REQUEST_LEN: usize = HEADER_LEN + size_of::<InetDiagReqV2>();

/// Encodes `SOCK_DIAG_BY_FAMILY` with `NLM_F_REQUEST | NLM_F_DUMP` for the
/// TCP sockets of `family` in `states`, asking for the `INET_DIAG_INFO`
/// extension (`struct tcp_info`).
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
        ext: EXT_INFO,
        states: states.bits(),
        ..InetDiagReqV2::default()
    };
    let mut out = [0u8; REQUEST_LEN];
    put(&mut out, 0, &hdr.to_bytes());
    let base = HEADER_LEN;
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

    /// The socket it describes, with `info` from its `INET_DIAG_INFO`
    /// attribute; `None` for a family other than `AF_INET`/`AF_INET6`.
    fn socket(&self, info: Option<TcpInfo>) -> Option<TcpSocket> {
        let family = Family::from_code(self.family)?;
        let id = &self.id;
        Some(TcpSocket {
            family,
            state: TcpState::from_code(self.state),
            local: address(family, id.src, id.sport, id.interface),
            remote: address(family, id.dst, id.dport, id.interface),
            timer: TimerKind::from_code(self.timer).map(|kind| Timer {
                kind,
                left: Duration::from_millis(u64::from(self.expires)),
                count: self.retrans,
            }),
            recv_queue: self.rqueue,
            send_queue: self.wqueue,
            uid: self.uid,
            inode: u64::from(self.inode),
            cookie: u64::from(id.cookie[0]) | (u64::from(id.cookie[1]) << 32),
            interface: id.interface,
            info,
        })
    }
}

/// A socket address from `inet_diag_sockid` bytes.
fn address(family: Family, raw: [u8; 16], port: [u8; 2], interface: u32) -> SocketAddr {
    let port = u16::from_be_bytes(port);
    match family {
        Family::Inet => {
            let [a, b, c, d, ..] = raw;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
        }
        Family::Inet6 => {
            let ip = Ipv6Addr::from(raw);
            // A link-local address means nothing without its interface.
            let scope = if ip.segments()[0] & 0xffc0 == 0xfe80 {
                interface
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
        }
    }
}

/// One `SOCK_DIAG_BY_FAMILY` payload: `struct inet_diag_msg`, then
/// attributes, which are checked; `INET_DIAG_INFO` is decoded (absent for
/// TIME_WAIT and request sockets, and too short or a listener's: no
/// [`TcpInfo`]), the others (`INET_DIAG_SHUTDOWN`, ...) skipped.
fn decode(payload: &[u8]) -> Result<TcpSocket, PayloadError> {
    let msg = InetDiagMsg::read(payload).ok_or((ParseErrorKind::TruncatedPayload, 0))?;
    let fixed = size_of::<InetDiagMsg>();
    let mut info = None;
    netlink::attributes(&payload[fixed..], |ty, value| {
        if ty == INET_DIAG_INFO {
            info = TcpInfo::parse(value);
        }
    })
    .map_err(|at| (ParseErrorKind::BadAttribute, fixed + at))?;
    msg.socket(info)
        .ok_or((ParseErrorKind::UnknownFamily(msg.family), 0))
}

/// Parses one datagram of the reply to the request numbered `seq`,
/// appending its sockets to `out`.
///
/// The framing is netlink's: several messages per datagram, `NLM_F_MULTI`
/// parts, `NLMSG_DONE` (whose payload, when present, is an error code),
/// `NLMSG_ERROR` (0 is an acknowledgement and ends the reply, anything
/// else is [`ReplyError::Kernel`]) and `NLMSG_NOOP`. Messages with another
/// sequence number (late answers to an earlier request) and of other types
/// are skipped; attributes after `struct inet_diag_msg` are checked and
/// skipped.
pub fn parse(buf: &[u8], seq: u32, out: &mut Vec<TcpSocket>) -> Result<Progress, ReplyError> {
    netlink::walk(buf, seq, |ty, payload| {
        if ty == SOCK_DIAG_BY_FAMILY {
            out.push(decode(payload)?);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::tests::{done, header};
    use crate::netlink::{NLM_F_DUMP_INTR, NLM_F_MULTI, ParseError};
    use crate::tcp::{AF_INET, AF_INET6};
    use crate::tcp_info::tests::golden;

    const SEQ: u32 = 7;

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

    /// [`inet_msg`] with an `INET_DIAG_INFO` attribute of `info` after
    /// its `INET_DIAG_SHUTDOWN`.
    fn inet_msg_with_info(seq: u32, info: &[u8]) -> Vec<u8> {
        let mut m = inet_msg(seq, NLM_F_MULTI);
        let len = 4 + info.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        m.extend_from_slice(info);
        m.resize(netlink::align4(m.len()), 0);
        let total = m.len() as u32;
        m[..4].copy_from_slice(&total.to_ne_bytes());
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

    fn parse_all(buf: &[u8]) -> (Result<Progress, ReplyError>, Vec<TcpSocket>) {
        let mut out = Vec::new();
        let r = parse(buf, SEQ, &mut out);
        (r, out)
    }

    fn parse_error(buf: &[u8]) -> ParseError {
        match parse_all(buf).0 {
            Err(ReplyError::Malformed(e)) => e,
            other => panic!("want a parse error, got {other:?}"),
        }
    }

    #[test]
    fn request_golden_bytes() {
        let r = request(
            Family::Inet6,
            StateSet::ESTABLISHED.union(StateSet::LISTEN),
            3,
        );
        let mut want = header(72, 20, 0x0301, 3);
        want.extend_from_slice(&[10, 6, 0x02, 0]); // INET_DIAG_INFO asked
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
                info: None,
            }]
        );
    }

    #[test]
    fn tcp_info_attribute() {
        let (r, out) = parse_all(&inet_msg_with_info(SEQ, &golden(1)));
        assert_eq!(r, Ok(Progress::More));
        let info = out[0].info.expect("tcp_info decoded");
        assert_eq!(
            info,
            TcpInfo {
                last_data_sent: Duration::from_millis(1500),
                last_data_recv: Duration::from_millis(2500),
                last_ack_recv: Duration::from_millis(1400),
                probes: 2,
            }
        );
        assert_eq!(out[0].idle(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn short_tcp_info_is_no_info() {
        // A cut struct: the socket is still listed, without idle times.
        let (r, out) = parse_all(&inet_msg_with_info(SEQ, &golden(1)[..40]));
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].info, None);
        assert_eq!(out[0].idle(), None);
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
    fn other_message_types_are_skipped() {
        let mut other = inet_msg(SEQ, NLM_F_MULTI);
        other[4..6].copy_from_slice(&21u16.to_ne_bytes());
        other.extend(inet6_listener(SEQ, NLM_F_MULTI));
        let (r, out) = parse_all(&other);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].inode, 99);
    }

    #[test]
    fn short_payload() {
        let mut buf = header(16 + 40, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, SEQ);
        buf.extend_from_slice(&[0; 40]);
        let err = parse_error(&buf);
        assert_eq!(err.kind, ParseErrorKind::TruncatedPayload);
        assert_eq!(err.offset, 16);
        assert_eq!(
            err.to_string(),
            "message shorter than its payload, at byte 16 of a 56-byte datagram"
        );
    }

    #[test]
    fn attribute_running_past_its_message() {
        let mut buf = inet_msg(SEQ, NLM_F_MULTI);
        // nla_len of the attribute at 16 + 72: claim 200 bytes.
        buf[88..90].copy_from_slice(&200u16.to_ne_bytes());
        let err = parse_error(&buf);
        assert_eq!(err.kind, ParseErrorKind::BadAttribute);
        assert_eq!(err.offset, 88);
        buf[88..90].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse_error(&buf).kind, ParseErrorKind::BadAttribute);
    }

    #[test]
    fn unknown_family() {
        let mut buf = inet_msg(SEQ, NLM_F_MULTI);
        buf[16] = 1; // AF_UNIX
        assert_eq!(parse_error(&buf).kind, ParseErrorKind::UnknownFamily(1));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap fuzz: every one-byte change of a valid reply parses or
        // fails cleanly, with an error that points inside the datagram and
        // never more sockets than it holds messages.
        let mut valid = inet_msg_with_info(SEQ, &golden(1)[..64]);
        valid.extend(inet6_listener(SEQ, NLM_F_MULTI));
        valid.extend(done(SEQ, 0));
        let (mut failed, mut parsed) = (0, 0);
        for i in 0..valid.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = valid.clone();
                b[i] = v;
                match parse_all(&b) {
                    (Err(ReplyError::Malformed(e)), _) => {
                        failed += 1;
                        assert_eq!(e.len, b.len(), "byte {i} = {v:#x}");
                        assert!(e.offset < b.len(), "byte {i} = {v:#x}: {e}");
                    }
                    (_, out) => {
                        parsed += 1;
                        assert!(out.len() <= 2, "byte {i} = {v:#x}: {out:?}");
                    }
                }
            }
        }
        assert!(failed > 0 && parsed > 0, "{failed} failed, {parsed} parsed");
    }

    #[test]
    fn link_local_keeps_its_interface() {
        let mut ip = [0u8; 16];
        ip[0] = 0xfe;
        ip[1] = 0x80;
        ip[15] = 1;
        let a = address(Family::Inet6, ip, [0, 22], 3);
        assert_eq!(a.to_string(), "[fe80::1%3]:22");
        let lo = address(Family::Inet6, Ipv6Addr::LOCALHOST.octets(), [0, 22], 3);
        assert_eq!(lo.to_string(), "[::1]:22");
    }
}
