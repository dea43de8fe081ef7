//! Keepalive settings that can only hold values the kernel accepts.
//!
//! The ranges are the kernel's own: `MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`
//! and `MAX_TCP_KEEPCNT` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/net/tcp.h>, and
//! `TCP_USER_TIMEOUT`, which the kernel reads as a non-negative `int`.

use crate::sysctl::KernelDefaults;

/// A whole number of seconds in `1..=32767`: a valid `TCP_KEEPIDLE` or
/// `TCP_KEEPINTVL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(u16);

impl Seconds {
    /// The smallest value the kernel accepts.
    pub const MIN: Seconds = Seconds(1);
    /// `MAX_TCP_KEEPIDLE` and `MAX_TCP_KEEPINTVL`.
    pub const MAX: Seconds = Seconds(32767);

    /// `Some` when `secs` is in `1..=32767`.
    ///
    /// ```
    /// use keepalive_core::Seconds;
    /// assert_eq!(Seconds::new(180).map(Seconds::get), Some(180));
    /// assert_eq!(Seconds::new(0), None);
    /// assert_eq!(Seconds::new(40_000), None);
    /// ```
    pub const fn new(secs: u64) -> Option<Seconds> {
        if secs >= Self::MIN.0 as u64 && secs <= Self::MAX.0 as u64 {
            Some(Seconds(secs as u16))
        } else {
            None
        }
    }

    /// The number of seconds.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// A number of keepalive probes in `1..=127`: a valid `TCP_KEEPCNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeCount(u8);

impl ProbeCount {
    /// The smallest value the kernel accepts.
    pub const MIN: ProbeCount = ProbeCount(1);
    /// `MAX_TCP_KEEPCNT`.
    pub const MAX: ProbeCount = ProbeCount(127);

    /// `Some` when `count` is in `1..=127`.
    ///
    /// ```
    /// use keepalive_core::ProbeCount;
    /// assert_eq!(ProbeCount::new(20).map(ProbeCount::get), Some(20));
    /// assert_eq!(ProbeCount::new(128), None);
    /// ```
    pub const fn new(count: u64) -> Option<ProbeCount> {
        if count >= Self::MIN.0 as u64 && count <= Self::MAX.0 as u64 {
            Some(ProbeCount(count as u8))
        } else {
            None
        }
    }

    /// The number of probes.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A number of milliseconds in `1..=2147483647`: a valid, non-zero
/// `TCP_USER_TIMEOUT` (the kernel reads an `int`; 0 would mean "system
/// default", which is what leaving the option unset already does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u32);

impl Millis {
    /// The smallest value accepted.
    pub const MIN: Millis = Millis(1);
    /// `INT_MAX`, the largest value the kernel's `int` holds.
    pub const MAX: Millis = Millis(i32::MAX as u32);

    /// `Some` when `ms` is in `1..=2147483647`.
    pub const fn new(ms: u64) -> Option<Millis> {
        if ms >= Self::MIN.0 as u64 && ms <= Self::MAX.0 as u64 {
            Some(Millis(ms as u32))
        } else {
            None
        }
    }

    /// The number of milliseconds.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// What to set `TCP_USER_TIMEOUT` to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserTimeout {
    /// A fixed timeout.
    Millis(Millis),
    /// `idle + interval x count` from the effective values (kernel defaults
    /// for unset ones), so that unacknowledged data is given up on in the
    /// same time as a silent idle peer.
    Auto,
}

/// Which keepalive options to set on a TCP socket.
///
/// `None` leaves that option to the kernel default (the
/// `net.ipv4.tcp_keepalive_*` sysctls of the socket's network namespace).
/// Every field can only hold a value the kernel accepts.
///
/// ```
/// use keepalive_core::{ProbeCount, Seconds, Settings};
/// let s = Settings {
///     idle: Seconds::new(180),
///     interval: Seconds::new(60),
///     count: ProbeCount::new(20),
///     ..Settings::new()
/// };
/// assert!(s.enabled);
/// assert_eq!(s.idle.map(Seconds::get), Some(180));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `SO_KEEPALIVE` on. When false nothing at all is set.
    pub enabled: bool,
    /// `TCP_KEEPIDLE`: idle time before the first probe.
    pub idle: Option<Seconds>,
    /// `TCP_KEEPINTVL`: time between probes.
    pub interval: Option<Seconds>,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped.
    pub count: Option<ProbeCount>,
    /// `TCP_USER_TIMEOUT`: bounds detection while data is unacknowledged.
    pub user_timeout: Option<UserTimeout>,
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

impl Settings {
    /// Keepalive on, every value left to the kernel default.
    pub const fn new() -> Settings {
        Settings {
            enabled: true,
            idle: None,
            interval: None,
            count: None,
            user_timeout: None,
        }
    }

    /// Keepalive off: nothing is set on any socket.
    pub const fn off() -> Settings {
        Settings {
            enabled: false,
            ..Settings::new()
        }
    }

    /// True when computing the options needs the kernel defaults, i.e. when
    /// the user timeout is [`UserTimeout::Auto`] and a value it sums is unset.
    pub const fn needs_kernel_defaults(&self) -> bool {
        self.enabled
            && matches!(self.user_timeout, Some(UserTimeout::Auto))
            && (self.idle.is_none() || self.interval.is_none() || self.count.is_none())
    }

    /// The `TCP_USER_TIMEOUT` to set, in milliseconds, with `Auto` resolved
    /// against `defaults` for the values this `Settings` leaves unset.
    ///
    /// `Auto` is `idle + interval x count` seconds, computed without
    /// overflow and capped at [`Millis::MAX`].
    ///
    /// ```
    /// use keepalive_core::{KernelDefaults, ProbeCount, Seconds, Settings, UserTimeout};
    /// let s = Settings {
    ///     idle: Seconds::new(10),
    ///     count: ProbeCount::new(3),
    ///     user_timeout: Some(UserTimeout::Auto),
    ///     ..Settings::new()
    /// };
    /// // interval comes from the kernel default (75 s): 10 + 75 x 3 = 235 s.
    /// assert_eq!(s.user_timeout_ms(KernelDefaults::BUILTIN).map(|m| m.get()), Some(235_000));
    /// ```
    pub fn user_timeout_ms(&self, defaults: KernelDefaults) -> Option<Millis> {
        match self.user_timeout? {
            UserTimeout::Millis(ms) => Some(ms),
            UserTimeout::Auto => {
                let idle = self.idle.map_or(defaults.idle, |s| u64::from(s.get()));
                let intvl = self
                    .interval
                    .map_or(defaults.interval, |s| u64::from(s.get()));
                let count = self.count.map_or(defaults.count, |c| u64::from(c.get()));
                let secs = idle.saturating_add(intvl.saturating_mul(count));
                let ms = secs.saturating_mul(1000).min(u64::from(Millis::MAX.get()));
                // A kernel default of 0 (only possible through an odd sysctl)
                // leaves nothing to compute: keep the option unset.
                Millis::new(ms)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_bounds() {
        assert_eq!(Seconds::new(0), None);
        assert_eq!(Seconds::new(1), Some(Seconds::MIN));
        assert_eq!(Seconds::new(32767), Some(Seconds::MAX));
        assert_eq!(Seconds::new(32768), None);
        assert_eq!(Seconds::new(u64::MAX), None);
    }

    #[test]
    fn count_bounds() {
        assert_eq!(ProbeCount::new(0), None);
        assert_eq!(ProbeCount::new(127), Some(ProbeCount::MAX));
        assert_eq!(ProbeCount::new(128), None);
    }

    #[test]
    fn millis_bounds() {
        assert_eq!(Millis::new(0), None);
        assert_eq!(Millis::new(2_147_483_647), Some(Millis::MAX));
        assert_eq!(Millis::new(2_147_483_648), None);
    }

    #[test]
    fn auto_uses_kernel_defaults_for_unset_values() {
        let s = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        let d = KernelDefaults {
            idle: 600,
            interval: 60,
            count: 20,
        };
        assert_eq!(s.user_timeout_ms(d), Millis::new(1_800_000));
    }

    #[test]
    fn auto_saturates_instead_of_overflowing() {
        let s = Settings {
            idle: Some(Seconds::MAX),
            interval: Some(Seconds::MAX),
            count: Some(ProbeCount::MAX),
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        assert_eq!(
            s.user_timeout_ms(KernelDefaults::BUILTIN),
            Some(Millis::MAX)
        );
        let huge = KernelDefaults {
            idle: u64::MAX,
            interval: u64::MAX,
            count: u64::MAX,
        };
        let auto = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        assert_eq!(auto.user_timeout_ms(huge), Some(Millis::MAX));
    }

    #[test]
    fn fixed_user_timeout_ignores_defaults() {
        let s = Settings {
            user_timeout: Millis::new(1500).map(UserTimeout::Millis),
            ..Settings::new()
        };
        assert_eq!(
            s.user_timeout_ms(KernelDefaults::BUILTIN),
            Millis::new(1500)
        );
        assert!(!s.needs_kernel_defaults());
    }
}
