//! `struct tcp_info`, as sock_diag hands it over in the `INET_DIAG_INFO`
//! attribute when the request asks for it (the same struct `getsockopt(fd,
//! IPPROTO_TCP, TCP_INFO)` fills, see tcp(7)): here, only what says how
//! long a connection has been idle and how many probes are outstanding.
//! Pure code: no system call.
//!
//! The layout is the kernel's UAPI, in
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/tcp.h>:
//! eight `__u8`s, then `__u32`s. The head of the struct read here is
//! pinned below by size and offsets (and checked against the C header with
//! `offsetof`: 3, 44, 52, 56). sock_diag sends the whole struct as the
//! running kernel knows it (`idiag_info_size`), and the struct only grows
//! at its end, so an older kernel's attribute is shorter, never different,
//! and a newer one's longer; one too short to hold the fields read here
//! gives `None`.
//!
//! What the kernel puts there
//! (<https://github.com/torvalds/linux/blob/v6.18/net/ipv4/tcp.c>,
//! `tcp_get_info`): `tcpi_last_data_sent` is the time since the last data
//! segment was sent (`lsndtime`), `tcpi_last_data_recv` since the last
//! data segment was received (`icsk_ack.lrcvtime`), `tcpi_last_ack_recv`
//! since the last ACK was received (`rcv_tstamp`), all in milliseconds,
//! counted from the connection's establishment when nothing came since;
//! `tcpi_probes` is `icsk_probes_out`, the keepalive (or zero-window)
//! probes sent without an answer. A listener's times are left at zero
//! (the function returns early for `TCP_LISTEN`).

use std::mem::offset_of;
use std::time::Duration;

use crate::netlink::u32_at;

/// `INET_DIAG_INFO`, the attribute type (and extension number) of
/// `struct tcp_info` in `enum inet_diag_attrs`
/// (<https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/inet_diag.h>).
pub(crate) const INET_DIAG_INFO: u16 = 2;

/// The bit of `idiag_ext` that asks for [`INET_DIAG_INFO`]: extension `n`
/// is bit `n - 1`.
pub(crate) const EXT_INFO: u8 = 1 << (INET_DIAG_INFO - 1);

/// The head of `struct tcp_info`, up to `tcpi_last_ack_recv`: the part
/// read here. Host byte order.
#[repr(C)]
struct TcpInfoHead {
    state: u8,
    ca_state: u8,
    retransmits: u8,
    probes: u8,
    backoff: u8,
    options: u8,
    /// `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`.
    wscale: u8,
    /// `tcpi_delivery_rate_app_limited : 1, tcpi_fastopen_client_fail : 2`.
    flags: u8,
    rto: u32,
    ato: u32,
    snd_mss: u32,
    rcv_mss: u32,
    unacked: u32,
    sacked: u32,
    lost: u32,
    retrans: u32,
    fackets: u32,
    last_data_sent: u32,
    /// "Not remembered, sorry": always 0.
    last_ack_sent: u32,
    last_data_recv: u32,
    last_ack_recv: u32,
}
const _: () = assert!(size_of::<TcpInfoHead>() == 60);
const _: () = assert!(offset_of!(TcpInfoHead, probes) == 3);
const _: () = assert!(offset_of!(TcpInfoHead, rto) == 8);
const _: () = assert!(offset_of!(TcpInfoHead, last_data_sent) == 44);
const _: () = assert!(offset_of!(TcpInfoHead, last_ack_sent) == 48);
const _: () = assert!(offset_of!(TcpInfoHead, last_data_recv) == 52);
const _: () = assert!(offset_of!(TcpInfoHead, last_ack_recv) == 56);

/// `TCP_LISTEN`, `tcpi_state` of a listener.
const TCP_LISTEN: u8 = 10;

/// What `struct tcp_info` says of a connection's idleness, as the kernel
/// measured it when the dump was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpInfo {
    /// Since the last data segment was sent (`tcpi_last_data_sent`).
    pub last_data_sent: Duration,
    /// Since the last data segment was received (`tcpi_last_data_recv`).
    pub last_data_recv: Duration,
    /// Since the last ACK was received (`tcpi_last_ack_recv`): keepalive
    /// probes that are answered renew it, data does not need to flow.
    pub last_ack_recv: Duration,
    /// Keepalive (or zero-window) probes sent and not answered
    /// (`tcpi_probes`, the kernel's `icsk_probes_out`).
    pub probes: u8,
}

impl TcpInfo {
    /// Time since the last data in either direction: the smaller of
    /// [`last_data_sent`](Self::last_data_sent) and
    /// [`last_data_recv`](Self::last_data_recv). Keepalive probes carry no
    /// data, so they do not reset it; a NAT or firewall, which times out
    /// flows without packets, may see the connection as less idle than
    /// this when probes flow.
    pub fn idle(&self) -> Duration {
        self.last_data_sent.min(self.last_data_recv)
    }

    /// Decodes the value of an `INET_DIAG_INFO` attribute. `None` when it
    /// is too short to hold the fields read here (no kernel since 2.6
    /// sends one that short) or describes a listener, whose times the
    /// kernel does not fill.
    pub(crate) fn parse(value: &[u8]) -> Option<TcpInfo> {
        if value.len() < size_of::<TcpInfoHead>() {
            return None;
        }
        if *value.get(offset_of!(TcpInfoHead, state))? == TCP_LISTEN {
            return None;
        }
        let ms = |at: usize| u32_at(value, at).map(|v| Duration::from_millis(u64::from(v)));
        Some(TcpInfo {
            last_data_sent: ms(offset_of!(TcpInfoHead, last_data_sent))?,
            last_data_recv: ms(offset_of!(TcpInfoHead, last_data_recv))?,
            last_ack_recv: ms(offset_of!(TcpInfoHead, last_ack_recv))?,
            probes: *value.get(offset_of!(TcpInfoHead, probes))?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `struct tcp_info` of 232 bytes (the size in Debian bookworm's
    /// linux-libc-dev headers), state `state`, with 2 probes, rto 204000 us, and last data
    /// sent 1500 ms, last data received 2500 ms, last ACK received 1400 ms
    /// ago; every other field non-zero, so that a wrong offset shows.
    pub(crate) fn golden(state: u8) -> Vec<u8> {
        let mut b = vec![state, 0, 0, 2, 0, 7, 0x77, 0];
        // rto, ato, snd_mss, rcv_mss, unacked, sacked, lost, retrans,
        // fackets
        for v in [204_000u32, 40_000, 65_483, 536, 3, 4, 5, 6, 8] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        // last_data_sent, last_ack_sent, last_data_recv, last_ack_recv
        for v in [1500u32, 0, 2500, 1400] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        // pmtu onwards: filler
        b.resize(232, 0xee);
        b
    }

    const ESTABLISHED: u8 = 1;

    #[test]
    fn golden_bytes() {
        let info = TcpInfo::parse(&golden(ESTABLISHED)).unwrap();
        assert_eq!(
            info,
            TcpInfo {
                last_data_sent: Duration::from_millis(1500),
                last_data_recv: Duration::from_millis(2500),
                last_ack_recv: Duration::from_millis(1400),
                probes: 2,
            }
        );
        assert_eq!(info.idle(), Duration::from_millis(1500));
    }

    #[test]
    fn golden_offsets_by_hand() {
        // The same bytes, checked at the offsets counted in tcp.h rather
        // than through the struct: 8 u8s, then u32s from byte 8.
        let b = golden(ESTABLISHED);
        assert_eq!(b[3], 2, "tcpi_probes");
        assert_eq!(b[44..48], 1500u32.to_ne_bytes(), "tcpi_last_data_sent");
        assert_eq!(b[52..56], 2500u32.to_ne_bytes(), "tcpi_last_data_recv");
        assert_eq!(b[56..60], 1400u32.to_ne_bytes(), "tcpi_last_ack_recv");
    }

    #[test]
    fn an_older_kernels_shorter_struct() {
        // Linux 2.6's struct ended after tcpi_total_retrans (104 bytes);
        // what is read here was there already.
        let b = golden(ESTABLISHED);
        let old = TcpInfo::parse(&b[..104]).unwrap();
        assert_eq!(old, TcpInfo::parse(&b).unwrap());
        assert!(TcpInfo::parse(&b[..60]).is_some(), "just long enough");
    }

    #[test]
    fn too_short_is_none_not_a_panic() {
        let b = golden(ESTABLISHED);
        for len in 0..60 {
            assert_eq!(TcpInfo::parse(&b[..len]), None, "{len} bytes");
        }
    }

    #[test]
    fn a_listener_has_no_times() {
        assert_eq!(TcpInfo::parse(&golden(TCP_LISTEN)), None);
    }

    #[test]
    fn idle_is_the_most_recent_data() {
        let info = |sent, recv| TcpInfo {
            last_data_sent: Duration::from_millis(sent),
            last_data_recv: Duration::from_millis(recv),
            last_ack_recv: Duration::ZERO,
            probes: 0,
        };
        assert_eq!(info(10, 900).idle(), Duration::from_millis(10));
        assert_eq!(info(900, 20).idle(), Duration::from_millis(20));
    }

    #[test]
    fn extension_bit() {
        assert_eq!(EXT_INFO, 0x02);
    }
}
