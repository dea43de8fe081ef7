//! Netlink framing (netlink(7)): the message header, the walk over the
//! messages of one reply datagram, and what ends a reply. Pure code: the
//! payload of each message is handed to the caller, which knows what the
//! request was (inet_diag, in this crate).
//!
//! A reply is made of datagrams, each holding one or more messages, each
//! a `struct nlmsghdr` followed by its payload, padded to 4 bytes. A dump
//! answers with `NLM_F_MULTI` parts ended by `NLMSG_DONE`; a failure with
//! `NLMSG_ERROR` (`-errno`; 0 is an acknowledgement); messages carry the
//! sequence number of the request they answer.
//!
//! The layouts are the kernel's UAPI, pinned below by size: `struct
//! nlmsghdr`, `struct nlmsgerr` and `struct nlattr` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/netlink.h>.
//! Kernel bytes are never indexed: every field is read with `.get(..)` at
//! its `offset_of!` offset, so a short or lying message is an error, never
//! a panic.

use std::mem::offset_of;

use rustix::io::Errno;

/// `NLMSG_NOOP`: nothing, skip it.
pub(crate) const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: a `struct nlmsgerr`; error 0 is an acknowledgement.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a multi-part reply.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data was lost.
pub(crate) const NLMSG_OVERRUN: u16 = 4;

/// `NLM_F_REQUEST`: a request.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: one part of a multi-part reply, which `NLMSG_DONE` ends.
pub(crate) const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`): every matching object.
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_DUMP_INTR`: the tables changed during the dump, which may have
/// missed or repeated an object.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;

/// `struct nlmsghdr`, host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NlMsgHdr {
    /// The message's length, header included, padding excluded.
    pub(crate) len: u32,
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// The sender's port id: 0 for the kernel.
    pub(crate) pid: u32,
}
const _: () = assert!(size_of::<NlMsgHdr>() == 16);

/// The length of a `struct nlmsghdr`.
pub(crate) const HEADER_LEN: usize = size_of::<NlMsgHdr>();

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
    /// The header of the request it answers.
    msg: NlMsgHdr,
}
const _: () = assert!(size_of::<NlMsgErr>() == 20);

/// `NLMSG_ALIGN` and `NLA_ALIGN`: lengths round up to 4 bytes.
pub(crate) const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads a fixed-size field at `at`; `None` when `buf` is too short.
pub(crate) fn field<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// A native-endian `u16` at `at`.
pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    field(buf, at).map(u16::from_ne_bytes)
}

/// A native-endian `u32` at `at`.
pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    field(buf, at).map(u32::from_ne_bytes)
}

impl NlMsgHdr {
    /// The header at the start of `buf`; `None` when it is too short.
    pub(crate) fn read(buf: &[u8]) -> Option<NlMsgHdr> {
        Some(NlMsgHdr {
            len: u32_at(buf, offset_of!(NlMsgHdr, len))?,
            ty: u16_at(buf, offset_of!(NlMsgHdr, ty))?,
            flags: u16_at(buf, offset_of!(NlMsgHdr, flags))?,
            seq: u32_at(buf, offset_of!(NlMsgHdr, seq))?,
            pid: u32_at(buf, offset_of!(NlMsgHdr, pid))?,
        })
    }

    /// The header's bytes, in the kernel's byte order (this machine's).
    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut put = |at: usize, bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(offset_of!(NlMsgHdr, len), &self.len.to_ne_bytes());
        put(offset_of!(NlMsgHdr, ty), &self.ty.to_ne_bytes());
        put(offset_of!(NlMsgHdr, flags), &self.flags.to_ne_bytes());
        put(offset_of!(NlMsgHdr, seq), &self.seq.to_ne_bytes());
        put(offset_of!(NlMsgHdr, pid), &self.pid.to_ne_bytes());
        out
    }
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

/// A payload the caller could not decode: what was wrong, and where from
/// the start of the payload.
pub(crate) type PayloadError = (ParseErrorKind, usize);

/// Walks the messages of one datagram of the reply to the request numbered
/// `seq`, handing each payload of another type than the control messages
/// to `payload(type, bytes)`.
///
/// Handles several messages per datagram, `NLM_F_MULTI` parts,
/// `NLMSG_DONE` (whose payload, when present, is an error code),
/// `NLMSG_ERROR` (0 is an acknowledgement and ends the reply, anything
/// else is [`ReplyError::Kernel`]), `NLMSG_OVERRUN` (`ENOBUFS`) and
/// `NLMSG_NOOP`. Messages with another sequence number (late answers to an
/// earlier request) are skipped. A lone message without `NLM_F_MULTI` is
/// the whole reply.
pub(crate) fn walk(
    buf: &[u8],
    seq: u32,
    mut payload: impl FnMut(u16, &[u8]) -> Result<(), PayloadError>,
) -> Result<Progress, ReplyError> {
    let err = |kind, offset| ParseError {
        kind,
        offset,
        len: buf.len(),
    };
    let mut at = 0;
    let mut interrupted = false;
    let mut multi = false;
    while at < buf.len() {
        let rest = &buf[at..];
        let hdr = NlMsgHdr::read(rest).ok_or(err(ParseErrorKind::TruncatedHeader, at))?;
        let len = hdr.len as usize;
        if len < HEADER_LEN || len > rest.len() {
            return Err(err(ParseErrorKind::BadMessageLength, at).into());
        }
        let body = &rest[HEADER_LEN..len];
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
                if let Some(code) = field(body, 0).map(i32::from_ne_bytes)
                    && code < 0
                {
                    return Err(ReplyError::Kernel(code.saturating_neg()));
                }
                return Ok(Progress::Done { interrupted });
            }
            NLMSG_ERROR => {
                if body.len() < size_of::<NlMsgErr>() {
                    return Err(err(ParseErrorKind::TruncatedPayload, at + HEADER_LEN).into());
                }
                let code = field(body, offset_of!(NlMsgErr, error))
                    .map(i32::from_ne_bytes)
                    .unwrap_or_default();
                return match code {
                    0 => Ok(Progress::Done { interrupted }),
                    c => Err(ReplyError::Kernel(c.saturating_neg())),
                };
            }
            NLMSG_OVERRUN => return Err(ReplyError::Kernel(Errno::NOBUFS.raw_os_error())),
            ty => payload(ty, body).map_err(|(kind, o)| err(kind, at + HEADER_LEN + o))?,
        }
        at = next;
    }
    Ok(if multi || buf.is_empty() {
        Progress::More
    } else {
        Progress::Done { interrupted }
    })
}

/// `NLA_TYPE_MASK`: the type bits of `nla_type`, without the
/// `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Walks the attributes (`struct nlattr` + value, each padded to 4 bytes)
/// that follow a message's fixed part, handing each one's type (flags
/// masked off) and value to `attribute`; on error, the offset of the bad
/// one (those before it were handed over).
pub(crate) fn attributes(
    mut attrs: &[u8],
    mut attribute: impl FnMut(u16, &[u8]),
) -> Result<(), usize> {
    let mut at = 0;
    while !attrs.is_empty() {
        let len = u16_at(attrs, offset_of!(NlAttr, len)).ok_or(at)? as usize;
        let ty = u16_at(attrs, offset_of!(NlAttr, ty)).ok_or(at)?;
        if len < size_of::<NlAttr>() || len > attrs.len() {
            return Err(at);
        }
        attribute(ty & NLA_TYPE_MASK, &attrs[size_of::<NlAttr>()..len]);
        let step = align4(len).min(attrs.len());
        attrs = &attrs[step..];
        at += step;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SEQ: u32 = 7;
    /// A message type that is not a control message.
    const DATA: u16 = 0x20;

    /// A netlink header, in the kernel's byte order (this machine's).
    pub(crate) fn header(len: usize, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        NlMsgHdr {
            len: len as u32,
            ty,
            flags,
            seq,
            pid: 0,
        }
        .to_bytes()
        .to_vec()
    }

    /// A `DATA` message carrying `payload`, padded.
    fn data(seq: u32, flags: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = header(HEADER_LEN + payload.len(), DATA, flags, seq);
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    pub(crate) fn done(seq: u32, code: i32) -> Vec<u8> {
        let mut m = header(20, NLMSG_DONE, NLM_F_MULTI, seq);
        m.extend_from_slice(&code.to_ne_bytes());
        m
    }

    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut m = header(36, NLMSG_ERROR, 0, seq);
        m.extend_from_slice(&code.to_ne_bytes());
        m.extend_from_slice(&header(72, 20, 0x301, seq));
        m
    }

    /// Walks `buf`, collecting the payloads handed over.
    fn walk_all(buf: &[u8]) -> (Result<Progress, ReplyError>, Vec<Vec<u8>>) {
        let mut seen = Vec::new();
        let r = walk(buf, SEQ, |ty, p| {
            assert_eq!(ty, DATA, "only data messages are handed over");
            seen.push(p.to_vec());
            Ok(())
        });
        (r, seen)
    }

    fn kind(buf: &[u8]) -> ParseErrorKind {
        match walk_all(buf).0 {
            Err(ReplyError::Malformed(e)) => e.kind,
            other => panic!("want a parse error, got {other:?}"),
        }
    }

    #[test]
    fn header_golden_bytes() {
        let h = NlMsgHdr {
            len: 72,
            ty: 20,
            flags: NLM_F_REQUEST | NLM_F_DUMP,
            seq: 3,
            pid: 0,
        };
        let mut want = Vec::new();
        want.extend_from_slice(&72u32.to_ne_bytes());
        want.extend_from_slice(&20u16.to_ne_bytes());
        want.extend_from_slice(&0x0301u16.to_ne_bytes());
        want.extend_from_slice(&3u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(h.to_bytes().to_vec(), want);
        assert_eq!(NlMsgHdr::read(&want), Some(h));
    }

    #[test]
    fn multipart_then_done() {
        let mut first = data(SEQ, NLM_F_MULTI, b"one");
        first.extend(data(SEQ, NLM_F_MULTI, b"two!"));
        let (r, seen) = walk_all(&first);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(seen, [b"one".to_vec(), b"two!".to_vec()]);
        let (r, seen) = walk_all(&done(SEQ, 0));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
        assert!(seen.is_empty());
    }

    #[test]
    fn done_in_the_same_datagram_after_an_interrupted_part() {
        let mut buf = data(SEQ, NLM_F_MULTI | NLM_F_DUMP_INTR, b"x");
        buf.extend(done(SEQ, 0));
        let (r, seen) = walk_all(&buf);
        assert_eq!(r, Ok(Progress::Done { interrupted: true }));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn done_with_an_error() {
        let (r, _) = walk_all(&done(SEQ, -Errno::INTR.raw_os_error()));
        assert_eq!(r, Err(ReplyError::Kernel(Errno::INTR.raw_os_error())));
    }

    #[test]
    fn done_without_payload() {
        let (r, _) = walk_all(&header(16, NLMSG_DONE, NLM_F_MULTI, SEQ));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
    }

    #[test]
    fn nlmsg_error_is_the_kernels_errno() {
        let (r, _) = walk_all(&error(SEQ, -Errno::NOENT.raw_os_error()));
        assert_eq!(r, Err(ReplyError::Kernel(Errno::NOENT.raw_os_error())));
    }

    #[test]
    fn nlmsg_error_zero_is_an_ack() {
        let (r, _) = walk_all(&error(SEQ, 0));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
    }

    #[test]
    fn nlmsg_error_without_its_payload() {
        let mut buf = header(20, NLMSG_ERROR, 0, SEQ);
        buf.extend_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(kind(&buf), ParseErrorKind::TruncatedPayload);
    }

    #[test]
    fn overrun_is_enobufs() {
        let (r, _) = walk_all(&header(16, NLMSG_OVERRUN, 0, SEQ));
        assert_eq!(r, Err(ReplyError::Kernel(Errno::NOBUFS.raw_os_error())));
    }

    #[test]
    fn noop_is_skipped() {
        let mut buf = header(16, NLMSG_NOOP, NLM_F_MULTI, SEQ);
        buf.extend(data(SEQ, NLM_F_MULTI, b"after"));
        let (r, seen) = walk_all(&buf);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(seen, [b"after".to_vec()]);
    }

    #[test]
    fn other_sequence_numbers_are_skipped() {
        let mut buf = data(SEQ + 1, NLM_F_MULTI, b"late");
        buf.extend(done(SEQ + 1, 0));
        buf.extend(error(SEQ - 1, -1));
        buf.extend(data(SEQ, NLM_F_MULTI, b"ours"));
        let (r, seen) = walk_all(&buf);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(seen, [b"ours".to_vec()]);
    }

    #[test]
    fn single_part_reply_ends_without_done() {
        let (r, seen) = walk_all(&data(SEQ, 0, b"all"));
        assert_eq!(r, Ok(Progress::Done { interrupted: false }));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn last_message_without_its_padding() {
        let mut buf = data(SEQ, NLM_F_MULTI, b"abcde");
        buf.truncate(HEADER_LEN + 5);
        let (r, seen) = walk_all(&buf);
        assert_eq!(r, Ok(Progress::More));
        assert_eq!(seen, [b"abcde".to_vec()]);
    }

    #[test]
    fn truncated_header() {
        let buf = data(SEQ, NLM_F_MULTI, b"x");
        assert_eq!(kind(&buf[..10]), ParseErrorKind::TruncatedHeader);
    }

    #[test]
    fn every_cut_message_is_an_error_not_a_panic() {
        let buf = data(SEQ, NLM_F_MULTI, &[9; 40]);
        // Every cut inside the message: the header's length then lies.
        for cut in HEADER_LEN..buf.len() {
            assert_eq!(
                kind(&buf[..cut]),
                ParseErrorKind::BadMessageLength,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn length_below_the_header() {
        let buf = header(8, DATA, NLM_F_MULTI, SEQ);
        assert_eq!(kind(&buf), ParseErrorKind::BadMessageLength);
    }

    #[test]
    fn payload_errors_point_into_the_datagram() {
        let mut buf = data(SEQ, NLM_F_MULTI, b"good");
        buf.extend(data(SEQ, NLM_F_MULTI, b"bad!"));
        let r = walk(&buf, SEQ, |_, p| match p {
            b"bad!" => Err((ParseErrorKind::BadAttribute, 2)),
            _ => Ok(()),
        });
        let want = ParseError {
            kind: ParseErrorKind::BadAttribute,
            offset: 20 + HEADER_LEN + 2,
            len: 40,
        };
        assert_eq!(r, Err(ReplyError::Malformed(want)));
        assert_eq!(
            want.to_string(),
            "bad attribute length, at byte 38 of a 40-byte datagram"
        );
    }

    /// The attributes of `buf`, as (type, value).
    fn attrs_of(buf: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, usize> {
        let mut seen = Vec::new();
        attributes(buf, |ty, v| seen.push((ty, v.to_vec())))?;
        Ok(seen)
    }

    #[test]
    fn attributes_walk() {
        let attr = |len: u16, ty: u16, value: &[u8]| {
            let mut a = len.to_ne_bytes().to_vec();
            a.extend_from_slice(&ty.to_ne_bytes());
            a.extend_from_slice(value);
            a
        };
        // One u8 attribute (5 bytes, padded to 8), an empty one, and a
        // nested one (NLA_F_NESTED) with a u32.
        let mut good = attr(5, 8, &[1, 0, 0, 0]);
        good.extend(attr(4, 2, &[]));
        good.extend(attr(8, 0x8000 | 3, &[9, 9, 9, 9]));
        assert_eq!(
            attrs_of(&good),
            Ok(vec![(8, vec![1]), (2, vec![]), (3, vec![9, 9, 9, 9])])
        );
        assert_eq!(attrs_of(&[]), Ok(vec![]));
        let mut past = attr(5, 8, &[1, 0, 0, 0]);
        past.extend(attr(200, 8, &[]));
        assert_eq!(attrs_of(&past), Err(8), "runs past its message");
        assert_eq!(attrs_of(&attr(2, 8, &[])), Err(0), "below its header");
        assert_eq!(attrs_of(&[4, 0]), Err(0), "a cut header");
    }
}
