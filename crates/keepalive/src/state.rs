//! A socket's keepalive state: reading it, what applying a [`Settings`]
//! makes of it, and which options differ between two states.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use keepalive_core::{KernelDefaults, Settings, UserTimeout};
use rustix::net::sockopt;

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

/// One of the five options of a [`KeepaliveState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeepaliveOption {
    /// `SO_KEEPALIVE` (0 or 1).
    Keepalive,
    /// `TCP_KEEPIDLE`, seconds.
    Idle,
    /// `TCP_KEEPINTVL`, seconds.
    Interval,
    /// `TCP_KEEPCNT`.
    Count,
    /// `TCP_USER_TIMEOUT`, milliseconds.
    UserTimeout,
}

impl KeepaliveOption {
    /// The five, in the HOWTO's order (the order of [`KeepaliveState`]).
    pub const ALL: [KeepaliveOption; 5] = [
        KeepaliveOption::Keepalive,
        KeepaliveOption::Idle,
        KeepaliveOption::Interval,
        KeepaliveOption::Count,
        KeepaliveOption::UserTimeout,
    ];

    /// The option's C name, e.g. `"TCP_KEEPIDLE"`.
    pub const fn c_name(self) -> &'static str {
        match self {
            KeepaliveOption::Keepalive => "SO_KEEPALIVE",
            KeepaliveOption::Idle => "TCP_KEEPIDLE",
            KeepaliveOption::Interval => "TCP_KEEPINTVL",
            KeepaliveOption::Count => "TCP_KEEPCNT",
            KeepaliveOption::UserTimeout => "TCP_USER_TIMEOUT",
        }
    }
}

impl fmt::Display for KeepaliveOption {
    /// The C name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.c_name())
    }
}

/// One option whose value differs between two states: see
/// [`KeepaliveState::changes_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptionChange {
    /// The option.
    pub option: KeepaliveOption,
    /// Its value in the first state (`SO_KEEPALIVE`: 0 or 1).
    pub old: u32,
    /// Its value in the second.
    pub new: u32,
}

impl fmt::Display for OptionChange {
    /// `TCP_KEEPIDLE 7200->60`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}->{}", self.option, self.old, self.new)
    }
}

impl KeepaliveState {
    /// Reads the five options of the TCP socket `fd`.
    ///
    /// `getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE)`, `getsockopt(fd, IPPROTO_TCP, TCP_KEEP*)`
    #[doc(alias = "getsockopt")]
    pub fn read(fd: impl AsFd) -> io::Result<KeepaliveState> {
        let fd = fd.as_fd();
        // rustix reports the seconds as a Duration; the kernel's are ints.
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Ok(KeepaliveState {
            enabled: sockopt::socket_keepalive(fd)?,
            idle: secs(sockopt::tcp_keepidle(fd)?),
            interval: secs(sockopt::tcp_keepintvl(fd)?),
            count: sockopt::tcp_keepcnt(fd)?,
            user_timeout_ms: sockopt::tcp_user_timeout(fd)?,
        })
    }

    /// The value of `option`; `SO_KEEPALIVE` is 0 or 1.
    pub const fn get(&self, option: KeepaliveOption) -> u32 {
        match option {
            KeepaliveOption::Keepalive => self.enabled as u32,
            KeepaliveOption::Idle => self.idle,
            KeepaliveOption::Interval => self.interval,
            KeepaliveOption::Count => self.count,
            KeepaliveOption::UserTimeout => self.user_timeout_ms,
        }
    }

    /// `settings` for a socket in this state: `TCP_USER_TIMEOUT=auto`
    /// becomes the milliseconds of `idle + interval x count` computed from
    /// the values the socket will have, the ones `settings` gives, else the
    /// socket's own (this state). Anything else is returned as it is.
    ///
    /// This is what [`apply`](crate::apply) sets, so that `auto` follows a
    /// socket that set its own idle time rather than the kernel defaults.
    ///
    /// ```
    /// use keepalive::{KeepaliveState, Millis, Seconds, Settings, UserTimeout};
    /// let socket = KeepaliveState { enabled: false, idle: 600, interval: 30, count: 4, user_timeout_ms: 0 };
    /// let settings = Settings { idle: Some(Seconds::new(60).unwrap()), user_timeout: Some(UserTimeout::Auto), ..Settings::new() };
    /// // 60 s given, then the socket's own 30 s x 4.
    /// assert_eq!(socket.resolve(&settings).user_timeout, Some(UserTimeout::Millis(Millis::new(180_000).unwrap())));
    /// ```
    pub fn resolve(&self, settings: &Settings) -> Settings {
        let own = KernelDefaults {
            idle: u64::from(self.idle),
            interval: u64::from(self.interval),
            count: u64::from(self.count),
        };
        match settings.user_timeout {
            Some(UserTimeout::Auto) => Settings {
                user_timeout: settings.user_timeout_ms(own).map(UserTimeout::Millis),
                ..*settings
            },
            _ => *settings,
        }
    }

    /// The state [`apply`](crate::apply)ing `settings` to a socket in this
    /// state produces: keepalive on, the values `settings` gives replace the
    /// socket's, the others are kept; `auto` is resolved as [`resolve`]
    /// does. [`Settings::off`] changes nothing.
    ///
    /// [`resolve`]: KeepaliveState::resolve
    ///
    /// ```
    /// use keepalive::{KeepaliveState, ProbeCount, Settings, UserTimeout};
    /// let before = KeepaliveState { enabled: false, idle: 7200, interval: 75, count: 9, user_timeout_ms: 0 };
    /// let settings = Settings { count: Some(ProbeCount::new(3).unwrap()), user_timeout: Some(UserTimeout::Auto), ..Settings::new() };
    /// let after = before.after(&settings);
    /// assert_eq!(after, KeepaliveState { enabled: true, count: 3, user_timeout_ms: 7_425_000, ..before });
    /// ```
    pub fn after(&self, settings: &Settings) -> KeepaliveState {
        if !settings.enabled {
            return *self;
        }
        let s = self.resolve(settings);
        let secs = |v: Option<keepalive_core::Seconds>, old| v.map_or(old, |v| u32::from(v.get()));
        KeepaliveState {
            enabled: true,
            idle: secs(s.idle, self.idle),
            interval: secs(s.interval, self.interval),
            count: s.count.map_or(self.count, |c| u32::from(c.get())),
            user_timeout_ms: match s.user_timeout {
                Some(UserTimeout::Millis(ms)) => ms.get(),
                // Unresolvable auto (a zero in the values) leaves it unset.
                Some(UserTimeout::Auto) | None => self.user_timeout_ms,
            },
        }
    }

    /// The options whose values differ from this state to `other`, in the
    /// HOWTO's order ([`KeepaliveOption::ALL`]); empty when they are equal.
    ///
    /// ```
    /// use keepalive::{KeepaliveOption, KeepaliveState, OptionChange};
    /// let a = KeepaliveState { enabled: false, idle: 7200, interval: 75, count: 9, user_timeout_ms: 0 };
    /// let b = KeepaliveState { enabled: true, idle: 60, ..a };
    /// assert_eq!(
    ///     a.changes_to(&b),
    ///     [
    ///         OptionChange { option: KeepaliveOption::Keepalive, old: 0, new: 1 },
    ///         OptionChange { option: KeepaliveOption::Idle, old: 7200, new: 60 },
    ///     ]
    /// );
    /// assert_eq!(a.changes_to(&b)[1].to_string(), "TCP_KEEPIDLE 7200->60");
    /// assert!(a.changes_to(&a).is_empty());
    /// ```
    pub fn changes_to(&self, other: &KeepaliveState) -> Vec<OptionChange> {
        KeepaliveOption::ALL
            .into_iter()
            .map(|option| OptionChange {
                option,
                old: self.get(option),
                new: other.get(option),
            })
            .filter(|c| c.old != c.new)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Millis, ProbeCount, Seconds};

    const DEFAULT: KeepaliveState = KeepaliveState {
        enabled: false,
        idle: 7200,
        interval: 75,
        count: 9,
        user_timeout_ms: 0,
    };

    /// A socket that set its own values.
    const OWN: KeepaliveState = KeepaliveState {
        enabled: true,
        idle: 30,
        interval: 10,
        count: 3,
        user_timeout_ms: 5000,
    };

    fn auto() -> Settings {
        Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        }
    }

    fn ms(v: u64) -> Option<UserTimeout> {
        Some(UserTimeout::Millis(Millis::new(v).unwrap()))
    }

    #[test]
    fn auto_uses_the_sockets_own_values() {
        assert_eq!(OWN.resolve(&auto()).user_timeout, ms(60_000));
        assert_eq!(DEFAULT.resolve(&auto()).user_timeout, ms(7_875_000));
    }

    #[test]
    fn auto_prefers_the_given_values() {
        let s = Settings {
            interval: Some(Seconds::new(20).unwrap()),
            count: Some(ProbeCount::new(5).unwrap()),
            ..auto()
        };
        // The socket's own idle (30), the given 20 x 5.
        assert_eq!(OWN.resolve(&s).user_timeout, ms(130_000));
    }

    #[test]
    fn resolve_keeps_everything_else() {
        let s = Settings {
            idle: Some(Seconds::new(60).unwrap()),
            user_timeout: ms(1500),
            ..Settings::new()
        };
        assert_eq!(OWN.resolve(&s), s);
        assert_eq!(OWN.resolve(&Settings::off()), Settings::off());
    }

    #[test]
    fn auto_of_zero_values_stays_unset() {
        let zero = KeepaliveState {
            idle: 0,
            interval: 0,
            count: 0,
            ..DEFAULT
        };
        assert_eq!(zero.resolve(&auto()).user_timeout, None);
        assert_eq!(zero.after(&auto()).user_timeout_ms, 0);
    }

    #[test]
    fn after_replaces_given_values_and_keeps_the_others() {
        let s = Settings {
            idle: Some(Seconds::new(60).unwrap()),
            count: Some(ProbeCount::new(4).unwrap()),
            ..Settings::new()
        };
        assert_eq!(
            OWN.after(&s),
            KeepaliveState {
                enabled: true,
                idle: 60,
                interval: 10,
                count: 4,
                user_timeout_ms: 5000
            }
        );
    }

    #[test]
    fn after_enables_and_resolves_auto() {
        assert_eq!(
            DEFAULT.after(&auto()),
            KeepaliveState {
                enabled: true,
                user_timeout_ms: 7_875_000,
                ..DEFAULT
            }
        );
    }

    #[test]
    fn after_off_changes_nothing() {
        assert_eq!(OWN.after(&Settings::off()), OWN);
        assert_eq!(DEFAULT.after(&Settings::off()), DEFAULT);
    }

    #[test]
    fn changes_in_the_howto_order() {
        let got: Vec<(&str, u32, u32)> = DEFAULT
            .changes_to(&OWN)
            .into_iter()
            .map(|c| (c.option.c_name(), c.old, c.new))
            .collect();
        assert_eq!(
            got,
            [
                ("SO_KEEPALIVE", 0, 1),
                ("TCP_KEEPIDLE", 7200, 30),
                ("TCP_KEEPINTVL", 75, 10),
                ("TCP_KEEPCNT", 9, 3),
                ("TCP_USER_TIMEOUT", 0, 5000),
            ]
        );
        assert_eq!(OWN.changes_to(&OWN), []);
    }

    #[test]
    fn after_matches_what_apply_does() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let settings = Settings {
            idle: Some(Seconds::new(42).unwrap()),
            ..auto()
        };
        let before = KeepaliveState::read(&s).unwrap();
        let want = before.after(&settings);
        assert_ne!(before, want);
        crate::apply(&s, &settings).unwrap();
        assert_eq!(KeepaliveState::read(&s).unwrap(), want);
    }
}
