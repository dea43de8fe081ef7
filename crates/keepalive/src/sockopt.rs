//! Applying settings to a socket and reading its keepalive state back.
//! See tcp(7) and socket(7).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use keepalive_core::{Plan, Settings, sys};

use crate::sysctl::kernel_defaults;

/// An option that could not be set. The other options were still tried.
#[derive(Debug, thiserror::Error)]
#[error("setsockopt({option}, {value}) failed: {source}")]
pub struct ApplyError {
    /// The option's C name, e.g. `TCP_KEEPIDLE`.
    pub option: &'static str,
    /// The value that was refused.
    pub value: i32,
    /// The kernel's error.
    #[source]
    pub source: io::Error,
}

/// Applies `settings` to the TCP socket `fd`: `SO_KEEPALIVE` on, then each
/// value the settings hold (`TCP_KEEPCNT`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_USER_TIMEOUT`). [`Settings::off`] changes nothing.
///
/// `TCP_USER_TIMEOUT=auto` is resolved against the kernel defaults of the
/// calling thread's network namespace. Every option is tried even when one
/// fails; the first failure is returned.
///
/// `setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1)`, `setsockopt(fd, IPPROTO_TCP, TCP_KEEP*, v)`
#[doc(alias = "SO_KEEPALIVE")]
#[doc(alias = "setsockopt")]
pub fn apply(fd: impl AsFd, settings: &Settings) -> Result<(), ApplyError> {
    let plan = Plan::new(settings, || {
        kernel_defaults().unwrap_or(keepalive_core::KernelDefaults::BUILTIN)
    });
    let fd = fd.as_fd().as_raw_fd();
    let applied = plan.apply(fd);
    match plan
        .opts()
        .iter()
        .enumerate()
        .find(|(i, _)| applied.failed & (1 << i) != 0)
    {
        None => Ok(()),
        Some((_, opt)) => Err(ApplyError {
            option: opt.c_name(),
            value: opt.value,
            source: io::Error::from_raw_os_error(applied.first_errno),
        }),
    }
}

/// A TCP socket's keepalive options, as the kernel reports them. Values the
/// socket did not set itself are the kernel defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeepaliveState {
    /// `SO_KEEPALIVE`.
    pub enabled: bool,
    /// `TCP_KEEPIDLE`, seconds.
    pub idle: u32,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval: u32,
    /// `TCP_KEEPCNT`.
    pub count: u32,
    /// `TCP_USER_TIMEOUT`, milliseconds; 0 when unset.
    pub user_timeout_ms: u32,
}

impl KeepaliveState {
    /// Reads the five options of the TCP socket `fd`.
    ///
    /// `getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE)`, `getsockopt(fd, IPPROTO_TCP, TCP_KEEP*)`
    #[doc(alias = "getsockopt")]
    pub fn read(fd: impl AsFd) -> io::Result<KeepaliveState> {
        let fd = fd.as_fd().as_raw_fd();
        let get = |level, name| {
            sys::getsockopt_int(fd, level, name)
                .map_err(io::Error::from_raw_os_error)
                // The kernel never reports these negative.
                .map(|v| v.max(0) as u32)
        };
        Ok(KeepaliveState {
            enabled: get(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0,
            idle: get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?,
            interval: get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)?,
            count: get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT)?,
            user_timeout_ms: get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};

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
            idle: Seconds::new(181),
            interval: Seconds::new(61),
            count: ProbeCount::new(21),
            user_timeout: Millis::new(4321).map(UserTimeout::Millis),
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
        let d = kernel_defaults().unwrap();
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
            idle: Seconds::new(10),
            interval: Seconds::new(5),
            count: ProbeCount::new(4),
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        apply(&s, &settings).unwrap();
        assert_eq!(KeepaliveState::read(&s).unwrap().user_timeout_ms, 30_000);
    }

    #[test]
    fn error_names_the_option() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = apply(
            &udp,
            &Settings {
                idle: Seconds::new(5),
                ..Settings::new()
            },
        )
        .unwrap_err();
        // SO_KEEPALIVE is accepted on UDP; TCP_KEEPIDLE is not.
        assert_eq!(err.option, "TCP_KEEPIDLE");
        assert_eq!(err.value, 5);
        assert!(
            err.to_string()
                .starts_with("setsockopt(TCP_KEEPIDLE, 5) failed"),
            "{err}"
        );
    }
}
