//! Whether a listed socket has keepalive on, and how that is known.
//!
//! The socket's own `SO_KEEPALIVE`, read with getsockopt on a duplicate
//! (see [`crate::keepalive_options`]), says it for certain. Without it, the
//! dump's timer says it: a connection with keepalive on always has its
//! keepalive timer pending, and one with keepalive off never has it. But
//! the dump shows one timer per socket, and a pending retransmission or
//! zero-window probe takes precedence over the keepalive timer: such a
//! connection's keepalive is unknown. A listener has no timer (its
//! connections inherit its options when accepted), so it too is unknown.
//! TIME_WAIT, request and orphaned sockets are held by no program: the
//! question does not apply to them.

use keepalive::KeepaliveState;

use crate::tcp::{TcpSocket, TcpState, TimerKind};

/// Whether keepalive is on for a socket, as far as can be seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeepaliveSeen {
    /// On or off, and what shows it.
    Known {
        /// `SO_KEEPALIVE` is on.
        on: bool,
        /// What shows it.
        from: Evidence,
    },
    /// Hidden behind another timer, or a listener whose options were not
    /// read.
    Unknown,
    /// A socket no program holds: TIME_WAIT, request (SYN_RECV) and
    /// orphaned sockets (inode 0).
    NotApplicable,
}

/// What shows whether keepalive is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// `SO_KEEPALIVE`, read with getsockopt on a duplicate of the socket.
    SoKeepalive,
    /// The timer in the sock_diag dump: a keepalive timer, or none.
    Timer,
}

impl Evidence {
    /// `SO_KEEPALIVE` or `timer`.
    pub const fn name(self) -> &'static str {
        match self {
            Evidence::SoKeepalive => "SO_KEEPALIVE",
            Evidence::Timer => "timer",
        }
    }
}

/// Keepalive on or off for `socket`: from its `options` when they were
/// read, else from its timer in the dump.
pub fn keepalive_seen(socket: &TcpSocket, options: Option<&KeepaliveState>) -> KeepaliveSeen {
    if let Some(o) = options {
        return KeepaliveSeen::Known {
            on: o.enabled,
            from: Evidence::SoKeepalive,
        };
    }
    let no_socket = matches!(
        socket.state,
        TcpState::TimeWait | TcpState::SynRecv | TcpState::NewSynRecv
    );
    if no_socket || socket.inode == 0 {
        return KeepaliveSeen::NotApplicable;
    }
    if socket.state == TcpState::Listen {
        return KeepaliveSeen::Unknown;
    }
    match socket.timer.map(|t| t.kind) {
        None => KeepaliveSeen::Known {
            on: false,
            from: Evidence::Timer,
        },
        Some(TimerKind::Keepalive) => KeepaliveSeen::Known {
            on: true,
            from: Evidence::Timer,
        },
        Some(_) => KeepaliveSeen::Unknown,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tcp::{Family, Timer};

    /// 127.0.0.1:5000 <-> 127.0.0.1:41234, inode 1234, with `timer`
    /// (kind, milliseconds left, count).
    pub(crate) fn socket(state: TcpState, timer: Option<(TimerKind, u64, u8)>) -> TcpSocket {
        TcpSocket {
            family: Family::Inet,
            state,
            local: "127.0.0.1:5000".parse().unwrap(),
            remote: "127.0.0.1:41234".parse().unwrap(),
            timer: timer.map(|(kind, ms, count)| Timer {
                kind,
                left: Duration::from_millis(ms),
                count,
            }),
            recv_queue: 0,
            send_queue: 0,
            uid: 0,
            inode: 1234,
            cookie: 1,
            interface: 0,
            info: None,
        }
    }

    const OFF: KeepaliveState = KeepaliveState {
        enabled: false,
        idle: 7200,
        interval: 75,
        count: 9,
        user_timeout_ms: 0,
    };

    const ON: KeepaliveState = KeepaliveState {
        enabled: true,
        ..OFF
    };

    const fn from_timer(on: bool) -> KeepaliveSeen {
        KeepaliveSeen::Known {
            on,
            from: Evidence::Timer,
        }
    }

    const EST: TcpState = TcpState::Established;

    #[test]
    fn keepalive_timer_means_on() {
        let on = socket(EST, Some((TimerKind::Keepalive, 1000, 0)));
        assert_eq!(keepalive_seen(&on, None), from_timer(true));
    }

    #[test]
    fn no_timer_means_off() {
        assert_eq!(keepalive_seen(&socket(EST, None), None), from_timer(false));
        let closing = socket(TcpState::CloseWait, None);
        assert_eq!(keepalive_seen(&closing, None), from_timer(false));
    }

    #[test]
    fn another_timer_hides_keepalive() {
        for kind in [
            TimerKind::Retransmit,
            TimerKind::ZeroWindowProbe,
            TimerKind::Other(9),
        ] {
            let s = socket(EST, Some((kind, 200, 1)));
            assert_eq!(keepalive_seen(&s, None), KeepaliveSeen::Unknown, "{kind:?}");
        }
    }

    #[test]
    fn listener_without_options_is_unknown() {
        let l = socket(TcpState::Listen, None);
        assert_eq!(keepalive_seen(&l, None), KeepaliveSeen::Unknown);
    }

    #[test]
    fn sockets_no_program_holds_are_not_applicable() {
        let tw = socket(TcpState::TimeWait, Some((TimerKind::TimeWait, 1000, 0)));
        assert_eq!(keepalive_seen(&tw, None), KeepaliveSeen::NotApplicable);
        for state in [TcpState::SynRecv, TcpState::NewSynRecv] {
            let s = socket(state, Some((TimerKind::Retransmit, 1000, 0)));
            assert_eq!(keepalive_seen(&s, None), KeepaliveSeen::NotApplicable);
        }
        // An orphan in FIN_WAIT2: its "keepalive" timer is the FIN_WAIT2
        // timeout, and it has no inode.
        let orphan = TcpSocket {
            inode: 0,
            ..socket(TcpState::FinWait2, Some((TimerKind::Keepalive, 1000, 0)))
        };
        assert_eq!(keepalive_seen(&orphan, None), KeepaliveSeen::NotApplicable);
    }

    #[test]
    fn so_keepalive_wins_over_the_timer() {
        let retransmitting = socket(EST, Some((TimerKind::Retransmit, 200, 1)));
        assert_eq!(
            keepalive_seen(&retransmitting, Some(&OFF)),
            KeepaliveSeen::Known {
                on: false,
                from: Evidence::SoKeepalive
            }
        );
        // The timer says off, the option says on: the option is read
        // later, and is the socket's own word.
        assert_eq!(
            keepalive_seen(&socket(EST, None), Some(&ON)),
            KeepaliveSeen::Known {
                on: true,
                from: Evidence::SoKeepalive
            }
        );
    }

    #[test]
    fn listener_with_options_is_known() {
        let l = socket(TcpState::Listen, None);
        assert_eq!(
            keepalive_seen(&l, Some(&ON)),
            KeepaliveSeen::Known {
                on: true,
                from: Evidence::SoKeepalive
            }
        );
    }

    #[test]
    fn evidence_names() {
        assert_eq!(Evidence::SoKeepalive.name(), "SO_KEEPALIVE");
        assert_eq!(Evidence::Timer.name(), "timer");
    }
}
