//! Applying settings to a socket. See tcp(7) and socket(7).

use std::error::Error;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use keepalive_core::{KernelDefaults, Plan, Settings, is_tcp_protocol};
use rustix::io::Errno;
use rustix::net::{SocketType, sockopt};

use crate::state::KeepaliveState;

/// Why [`apply`] failed.
#[derive(Debug)]
pub struct ApplyError {
    kind: ApplyErrorKind,
    source: Option<io::Error>,
}

/// What went wrong in [`apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyErrorKind {
    /// The descriptor is not a socket (`ENOTSOCK`). Nothing was set.
    NotASocket,
    /// The socket is not TCP: its `SO_TYPE` is not `SOCK_STREAM`, or its
    /// `SO_PROTOCOL` is neither `IPPROTO_TCP` nor `IPPROTO_MPTCP` (UDP,
    /// a UNIX socket, SCTP). Nothing was set.
    NotTcp {
        /// `SO_TYPE`, e.g. 2 for `SOCK_DGRAM`.
        socket_type: u32,
        /// `SO_PROTOCOL`, e.g. 17 for `IPPROTO_UDP`; 0 for a UNIX socket.
        protocol: u32,
    },
    /// Reading an option back failed (`getsockopt`). Nothing was set.
    Query {
        /// The option's C name, e.g. `SO_PROTOCOL`.
        option: &'static str,
    },
    /// An option could not be set. The other options were still tried.
    Refused {
        /// The option's C name, e.g. `TCP_KEEPIDLE`.
        option: &'static str,
        /// The value that was refused.
        value: i32,
    },
}

impl ApplyError {
    /// What went wrong.
    pub fn kind(&self) -> ApplyErrorKind {
        self.kind
    }

    /// The kernel's error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

/// `SOCK_DGRAM`, or `type 7` when it has no name here.
struct TypeName(u32);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = [
            SocketType::STREAM,
            SocketType::DGRAM,
            SocketType::SEQPACKET,
            SocketType::RAW,
        ];
        let names = ["SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_RAW"];
        match known.iter().position(|t| t.as_raw() == self.0) {
            Some(i) => f.write_str(names[i]),
            None => write!(f, "type {}", self.0),
        }
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FIX: &str = "keepalive options are for TCP: apply them to a TCP (or MPTCP) \
                           stream socket such as a TcpStream or TcpListener; nothing was set";
        match self.kind {
            ApplyErrorKind::NotASocket => write!(f, "not a socket: {FIX}"),
            ApplyErrorKind::NotTcp {
                socket_type,
                protocol,
            } => write!(
                f,
                "not a TCP socket ({}, protocol {protocol}): {FIX}",
                TypeName(socket_type)
            ),
            ApplyErrorKind::Query { option } => {
                write!(f, "getsockopt({option}) failed; nothing was set")
            }
            ApplyErrorKind::Refused { option, value } => {
                write!(f, "setsockopt({option}, {value}) failed")?;
                match &self.source {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Error for ApplyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self.kind {
            // The message already holds it (as it always did).
            ApplyErrorKind::Refused { .. } => None,
            _ => self.source.as_ref().map(|e| e as &(dyn Error + 'static)),
        }
    }
}

/// Applies `settings` to the TCP socket `fd`: `SO_KEEPALIVE` on, then each
/// value the settings hold (`TCP_KEEPCNT`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_USER_TIMEOUT`). [`Settings::off`] changes nothing.
///
/// `fd` must be a TCP or MPTCP socket (`SO_TYPE` `SOCK_STREAM`, `SO_PROTOCOL`
/// `IPPROTO_TCP` or `IPPROTO_MPTCP`); any other descriptor, a UDP or UNIX
/// socket for instance, is refused with [`ApplyErrorKind::NotTcp`] (or
/// [`NotASocket`](ApplyErrorKind::NotASocket)) before anything is set,
/// whatever the settings.
///
/// `TCP_USER_TIMEOUT=auto` is resolved against the values the socket will
/// have, as [`KeepaliveState::resolve`] does: the ones `settings` gives,
/// else the socket's own (the kernel defaults of its network namespace,
/// unless it set its own). Every option is tried even when one fails; the
/// first failure is returned.
///
/// `getsockopt(fd, SOL_SOCKET, SO_TYPE)`, `getsockopt(fd, SOL_SOCKET, SO_PROTOCOL)`,
/// `setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1)`, `setsockopt(fd, IPPROTO_TCP, TCP_KEEP*, v)`
#[doc(alias = "SO_KEEPALIVE")]
#[doc(alias = "setsockopt")]
pub fn apply(fd: impl AsFd, settings: &Settings) -> Result<(), ApplyError> {
    let fd = fd.as_fd();
    check_tcp(fd)?;
    let settings = if settings.enabled && settings.needs_kernel_defaults() {
        let current = KeepaliveState::read(fd).map_err(|e| ApplyError {
            kind: ApplyErrorKind::Query {
                option: "TCP_KEEP*",
            },
            source: Some(e),
        })?;
        current.resolve(settings)
    } else {
        *settings
    };
    // Resolved above: the plan never needs the kernel defaults.
    let plan = Plan::new(&settings, || KernelDefaults::BUILTIN);
    let applied = plan.apply(fd.as_raw_fd());
    match plan
        .opts()
        .iter()
        .enumerate()
        .find(|(i, _)| applied.failed & (1 << i) != 0)
    {
        None => Ok(()),
        Some((_, opt)) => Err(ApplyError {
            kind: ApplyErrorKind::Refused {
                option: opt.c_name(),
                value: opt.value,
            },
            source: Some(io::Error::from_raw_os_error(applied.first_errno)),
        }),
    }
}

/// Refuses a descriptor that is not a TCP or MPTCP socket.
fn check_tcp(fd: BorrowedFd<'_>) -> Result<(), ApplyError> {
    let query = |option| {
        move |e: Errno| ApplyError {
            kind: if e == Errno::NOTSOCK {
                ApplyErrorKind::NotASocket
            } else {
                ApplyErrorKind::Query { option }
            },
            source: Some(e.into()),
        }
    };
    let ty = sockopt::socket_type(fd).map_err(query("SO_TYPE"))?;
    let protocol = sockopt::socket_protocol(fd)
        .map_err(query("SO_PROTOCOL"))?
        .map_or(0, |p| p.as_raw().get());
    let tcp = ty == SocketType::STREAM && i32::try_from(protocol).is_ok_and(is_tcp_protocol);
    if tcp {
        Ok(())
    } else {
        Err(ApplyError {
            kind: ApplyErrorKind::NotTcp {
                socket_type: ty.as_raw(),
                protocol,
            },
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::{Millis, ProbeCount, Seconds, UserTimeout};

    fn pair() -> (TcpListener, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (l, s)
    }

    #[test]
    fn round_trip_changes_the_socket() {
        let (_l, s) = pair();
        let before = KeepaliveState::read(&s).unwrap();
        assert!(!before.enabled);
        let settings = Settings {
            idle: Some(Seconds::new(181).unwrap()),
            interval: Some(Seconds::new(61).unwrap()),
            count: Some(ProbeCount::new(21).unwrap()),
            user_timeout: Some(UserTimeout::Millis(Millis::new(4321).unwrap())),
            ..Settings::new()
        };
        apply(&s, &settings).unwrap();
        let after = KeepaliveState::read(&s).unwrap();
        assert_ne!(before, after);
        assert_eq!(
            after,
            KeepaliveState {
                enabled: true,
                idle: 181,
                interval: 61,
                count: 21,
                user_timeout_ms: 4321
            }
        );
    }

    #[test]
    fn a_listener_takes_the_options() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        apply(&l, &Settings::new()).unwrap();
        assert!(KeepaliveState::read(&l).unwrap().enabled);
    }

    #[test]
    fn off_changes_nothing() {
        let (_l, s) = pair();
        let before = KeepaliveState::read(&s).unwrap();
        apply(&s, &Settings::off()).unwrap();
        assert_eq!(KeepaliveState::read(&s).unwrap(), before);
    }

    #[test]
    fn unset_values_stay_at_kernel_defaults() {
        let (_l, s) = pair();
        apply(&s, &Settings::new()).unwrap();
        let d = crate::kernel_defaults().unwrap();
        let st = KeepaliveState::read(&s).unwrap();
        assert!(st.enabled);
        assert_eq!(u64::from(st.idle), d.idle);
        assert_eq!(u64::from(st.interval), d.interval);
        assert_eq!(u64::from(st.count), d.count);
        assert_eq!(st.user_timeout_ms, 0);
    }

    #[test]
    fn auto_user_timeout() {
        let (_l, s) = pair();
        let settings = Settings {
            idle: Some(Seconds::new(10).unwrap()),
            interval: Some(Seconds::new(5).unwrap()),
            count: Some(ProbeCount::new(4).unwrap()),
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        apply(&s, &settings).unwrap();
        assert_eq!(KeepaliveState::read(&s).unwrap().user_timeout_ms, 30_000);
    }

    #[test]
    fn auto_follows_the_sockets_own_values() {
        let (_l, s) = pair();
        let own = Settings {
            idle: Some(Seconds::new(20).unwrap()),
            interval: Some(Seconds::new(3).unwrap()),
            count: Some(ProbeCount::new(2).unwrap()),
            ..Settings::new()
        };
        apply(&s, &own).unwrap();
        let auto = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        apply(&s, &auto).unwrap();
        assert_eq!(KeepaliveState::read(&s).unwrap().user_timeout_ms, 26_000);
    }

    #[test]
    fn udp_is_refused_and_left_alone() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = apply(&udp, &Settings::new()).unwrap_err();
        assert_eq!(
            err.kind(),
            ApplyErrorKind::NotTcp {
                socket_type: SocketType::DGRAM.as_raw(),
                protocol: 17
            }
        );
        assert!(
            err.to_string().starts_with(
                "not a TCP socket (SOCK_DGRAM, protocol 17): keepalive options are for TCP"
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with("nothing was set"), "{err}");
        assert!(
            !sockopt::socket_keepalive(&udp).unwrap(),
            "SO_KEEPALIVE set"
        );
    }

    #[test]
    fn a_unix_stream_socket_is_refused_and_left_alone() {
        let (a, _b) = UnixStream::pair().unwrap();
        let err = apply(&a, &Settings::new()).unwrap_err();
        assert_eq!(
            err.kind(),
            ApplyErrorKind::NotTcp {
                socket_type: SocketType::STREAM.as_raw(),
                protocol: 0
            }
        );
        assert!(
            err.to_string()
                .starts_with("not a TCP socket (SOCK_STREAM, protocol 0)"),
            "{err}"
        );
        assert!(!sockopt::socket_keepalive(&a).unwrap(), "SO_KEEPALIVE set");
    }

    #[test]
    fn a_file_is_not_a_socket() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let err = apply(&f, &Settings::new()).unwrap_err();
        assert_eq!(err.kind(), ApplyErrorKind::NotASocket);
        assert_eq!(
            err.io_error().and_then(|e| e.raw_os_error()),
            Some(Errno::NOTSOCK.raw_os_error())
        );
    }

    #[test]
    fn a_refused_option_is_named() {
        // Every value Settings can hold is one a TCP socket accepts, so
        // the error is built here.
        let err = ApplyError {
            kind: ApplyErrorKind::Refused {
                option: "TCP_KEEPIDLE",
                value: 5,
            },
            source: Some(Errno::INVAL.into()),
        };
        assert_eq!(
            err.to_string(),
            format!(
                "setsockopt(TCP_KEEPIDLE, 5) failed: {}",
                io::Error::from(Errno::INVAL)
            )
        );
    }
}
