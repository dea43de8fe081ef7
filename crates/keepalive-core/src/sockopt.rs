//! Which sockets get keepalive, and the options set on them.
//!
//! A [`Plan`] is a [`Settings`] resolved into the exact `setsockopt` calls
//! to make, computed once so that applying it is nothing but system calls.
//! See tcp(7) and socket(7).

use core::ffi::c_int;

use crate::settings::Settings;
use crate::sys;
use crate::sysctl::KernelDefaults;

/// `IPPROTO_MPTCP`: MPTCP sockets take the same keepalive options as TCP.
pub const IPPROTO_MPTCP: c_int = 262;

/// `SOCK_TYPE_MASK`: the bits of socket(2)'s `type` that are the type,
/// without `SOCK_CLOEXEC` and `SOCK_NONBLOCK`.
const SOCK_TYPE_MASK: c_int = 0xf;

/// True for the arguments of a socket(2) call that creates a TCP socket:
/// `AF_INET` or `AF_INET6`, type `SOCK_STREAM` (whatever flags are or'ed
/// in), protocol 0, `IPPROTO_TCP` or `IPPROTO_MPTCP`.
///
/// ```
/// use keepalive_core::is_tcp;
/// assert!(is_tcp(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0));
/// assert!(!is_tcp(libc::AF_INET, libc::SOCK_DGRAM, 0));
/// assert!(!is_tcp(libc::AF_UNIX, libc::SOCK_STREAM, 0));
/// ```
pub const fn is_tcp(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && ty & SOCK_TYPE_MASK == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP || protocol == IPPROTO_MPTCP)
}

/// True for the socket(2) types that listen(2) accepts: `SOCK_STREAM` and
/// `SOCK_SEQPACKET`, whatever flags are or'ed in.
///
/// ```
/// use keepalive_core::can_listen;
/// assert!(can_listen(libc::SOCK_STREAM | libc::SOCK_NONBLOCK));
/// assert!(!can_listen(libc::SOCK_DGRAM));
/// ```
pub const fn can_listen(ty: c_int) -> bool {
    let ty = ty & SOCK_TYPE_MASK;
    ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET
}

/// True when `protocol`, as read back with `SO_PROTOCOL`, is TCP or MPTCP.
pub const fn is_tcp_protocol(protocol: c_int) -> bool {
    protocol == libc::IPPROTO_TCP || protocol == IPPROTO_MPTCP
}

/// One `setsockopt(fd, level, name, &value, sizeof(int))` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOpt {
    /// `SOL_SOCKET` or `IPPROTO_TCP`.
    pub level: c_int,
    /// The option.
    pub name: c_int,
    /// Its value.
    pub value: c_int,
}

impl SockOpt {
    /// The option's C name, e.g. `"TCP_KEEPIDLE"`.
    pub const fn c_name(&self) -> &'static str {
        match (self.level, self.name) {
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SO_KEEPALIVE",
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => "TCP_KEEPCNT",
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => "TCP_KEEPIDLE",
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => "TCP_KEEPINTVL",
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => "TCP_USER_TIMEOUT",
            _ => "?",
        }
    }
}

/// The `setsockopt` calls that apply a [`Settings`], in the order the
/// original libkeepalive made them: `SO_KEEPALIVE`, `TCP_KEEPCNT`,
/// `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, then `TCP_USER_TIMEOUT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    opts: [SockOpt; 5],
    len: u8,
}

/// What [`Plan::apply`] did: which options failed, and the first error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Applied {
    /// Bit `i` set: option `i` of the plan failed.
    pub failed: u8,
    /// The errno of the first failure, 0 when none failed.
    pub first_errno: c_int,
}

impl Plan {
    /// A plan that sets nothing.
    pub const EMPTY: Plan = Plan {
        opts: [SockOpt {
            level: 0,
            name: 0,
            value: 0,
        }; 5],
        len: 0,
    };

    /// Resolves `settings`. `defaults` is called only when the settings need
    /// the kernel defaults (`TCP_USER_TIMEOUT=auto`).
    ///
    /// ```
    /// use keepalive_core::{KernelDefaults, Plan, Seconds, Settings};
    /// let s = Settings { idle: Some(Seconds::new(180).unwrap()), ..Settings::new() };
    /// let plan = Plan::new(&s, || KernelDefaults::BUILTIN);
    /// let names: Vec<_> = plan.opts().iter().map(|o| o.c_name()).collect();
    /// assert_eq!(names, ["SO_KEEPALIVE", "TCP_KEEPIDLE"]);
    /// assert!(Plan::new(&Settings::off(), || KernelDefaults::BUILTIN).is_empty());
    /// ```
    pub fn new(settings: &Settings, defaults: impl FnOnce() -> KernelDefaults) -> Plan {
        let mut plan = Plan::EMPTY;
        if !settings.enabled {
            return plan;
        }
        let mut push = |level, name, value: u32| {
            plan.opts[usize::from(plan.len)] = SockOpt {
                level,
                name,
                // Every value is range-checked by its type to fit an int.
                value: value as c_int,
            };
            plan.len += 1;
        };
        push(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        if let Some(c) = settings.count {
            push(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, u32::from(c.get()));
        }
        if let Some(s) = settings.idle {
            push(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, u32::from(s.get()));
        }
        if let Some(s) = settings.interval {
            push(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, u32::from(s.get()));
        }
        let user_timeout = if settings.needs_kernel_defaults() {
            settings.user_timeout_ms(defaults())
        } else {
            settings.user_timeout_ms(KernelDefaults::BUILTIN)
        };
        if let Some(ms) = user_timeout {
            push(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms.get());
        }
        plan
    }

    /// The calls, in order.
    pub fn opts(&self) -> &[SockOpt] {
        &self.opts[..usize::from(self.len)]
    }

    /// True when the plan sets nothing (keepalive off).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes every call on `fd`. A failing option does not stop the others.
    /// Async-signal-safe; changes `errno` when a call fails (callers that
    /// must not, save and restore it).
    pub fn apply(&self, fd: c_int) -> Applied {
        let mut out = Applied::default();
        for (i, o) in self.opts().iter().enumerate() {
            if let Err(e) = sys::setsockopt_int(fd, o.level, o.name, o.value) {
                out.failed |= 1 << i;
                if out.first_errno == 0 {
                    out.first_errno = e;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::settings::{Millis, ProbeCount, Seconds, UserTimeout};

    #[test]
    fn tcp_variants_are_tcp() {
        for domain in [libc::AF_INET, libc::AF_INET6] {
            for flags in [
                0,
                libc::SOCK_CLOEXEC,
                libc::SOCK_NONBLOCK,
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            ] {
                for proto in [0, libc::IPPROTO_TCP, IPPROTO_MPTCP] {
                    assert!(
                        is_tcp(domain, libc::SOCK_STREAM | flags, proto),
                        "{domain} {flags} {proto}"
                    );
                }
            }
        }
    }

    #[test]
    fn non_tcp_is_not_tcp() {
        assert!(!is_tcp(libc::AF_INET, libc::SOCK_DGRAM, 0));
        assert!(!is_tcp(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP));
        assert!(!is_tcp(libc::AF_INET6, libc::SOCK_SEQPACKET, 0));
        assert!(!is_tcp(libc::AF_UNIX, libc::SOCK_STREAM, 0));
        assert!(!is_tcp(libc::AF_NETLINK, libc::SOCK_STREAM, 0));
        // SCTP one-to-one sockets are SOCK_STREAM too.
        assert!(!is_tcp(
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_SCTP
        ));
    }

    #[test]
    fn plan_order_is_the_original_one() {
        let s = Settings {
            idle: Some(Seconds::new(180).unwrap()),
            interval: Some(Seconds::new(60).unwrap()),
            count: Some(ProbeCount::new(20).unwrap()),
            user_timeout: Some(UserTimeout::Millis(Millis::new(5000).unwrap())),
            enabled: true,
        };
        let plan = Plan::new(&s, || unreachable!("no auto, no defaults"));
        let got: Vec<_> = plan.opts().iter().map(|o| (o.c_name(), o.value)).collect();
        assert_eq!(
            got,
            [
                ("SO_KEEPALIVE", 1),
                ("TCP_KEEPCNT", 20),
                ("TCP_KEEPIDLE", 180),
                ("TCP_KEEPINTVL", 60),
                ("TCP_USER_TIMEOUT", 5000)
            ]
        );
    }

    #[test]
    fn auto_reads_defaults_once() {
        let s = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        let mut calls = 0;
        let plan = Plan::new(&s, || {
            calls += 1;
            KernelDefaults {
                idle: 1,
                interval: 2,
                count: 3,
            }
        });
        assert_eq!(calls, 1);
        assert_eq!(plan.opts()[1].value, 7000);
    }

    #[test]
    fn apply_sets_options_and_reports_failures() {
        use std::os::fd::AsRawFd;
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = sock.as_raw_fd();
        let s = Settings {
            idle: Some(Seconds::new(33).unwrap()),
            ..Settings::new()
        };
        let applied = Plan::new(&s, || KernelDefaults::BUILTIN).apply(fd);
        assert_eq!(applied, Applied::default());
        assert_eq!(
            sys::getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            Ok(33)
        );
        assert_eq!(
            sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            Ok(1)
        );
        // On a closed descriptor every call fails, and all are tried.
        let applied = Plan::new(&s, || KernelDefaults::BUILTIN).apply(-1);
        assert_eq!(applied.failed, 0b11);
        assert_eq!(applied.first_errno, libc::EBADF);
    }
}
