//! Keepalive settings that can only hold values the kernel accepts.
//!
//! The ranges are the kernel's own: `MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`
//! and `MAX_TCP_KEEPCNT` in
//! <https://github.com/torvalds/linux/blob/v6.18/include/net/tcp.h>, and
//! `TCP_USER_TIMEOUT`, which the kernel reads as a non-negative `int`.

use core::fmt;
use core::time::Duration;

use crate::sysctl::KernelDefaults;

/// A value outside the range the kernel accepts for an option. Its message
/// names the option and the range: `TCP_KEEPIDLE takes 1s..=32767s, not
/// 40000s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangeError {
    option: &'static str,
    value: u64,
    min: u64,
    max: u64,
    unit: &'static str,
}

impl RangeError {
    const fn new(option: &'static str, value: u64, min: u64, max: u64, unit: &'static str) -> Self {
        RangeError {
            option,
            value,
            min,
            max,
            unit,
        }
    }

    /// The option, `TCP_KEEPIDLE` (`TCP_KEEPIDLE/TCP_KEEPINTVL` from
    /// [`Seconds::new`], which serves both).
    pub const fn option(&self) -> &'static str {
        self.option
    }

    /// The value given, in the option's unit (whole seconds rounded up,
    /// milliseconds rounded up, or probes), saturated at `u64::MAX`.
    pub const fn value(&self) -> u64 {
        self.value
    }

    /// The accepted range, in the same unit.
    pub const fn range(&self) -> (u64, u64) {
        (self.min, self.max)
    }

    const fn named(self, option: &'static str) -> Self {
        RangeError { option, ..self }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.unit;
        write!(
            f,
            "{} takes {}{u}..={}{u}, not {}{u}",
            self.option, self.min, self.max, self.value
        )
    }
}

impl core::error::Error for RangeError {}

/// Whole seconds, rounded up (as rustix turns a `Duration` into seconds),
/// saturated at `u64::MAX`.
const fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s.saturating_add(1)
    } else {
        s
    }
}

/// Whole milliseconds, rounded up, saturated at `u64::MAX`.
const fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if d.subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms + 1
    };
    if ms > u64::MAX as u128 {
        u64::MAX
    } else {
        ms as u64
    }
}

/// A whole number of seconds in `1..=32767`: a valid `TCP_KEEPIDLE` or
/// `TCP_KEEPINTVL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(u16);

impl Seconds {
    /// The smallest value the kernel accepts.
    pub const MIN: Seconds = Seconds(1);
    /// `MAX_TCP_KEEPIDLE` and `MAX_TCP_KEEPINTVL`.
    pub const MAX: Seconds = Seconds(32767);

    /// `secs` when it is in `1..=32767`, else an error naming the range.
    ///
    /// ```
    /// use keepalive_core::Seconds;
    /// assert_eq!(Seconds::new(180).map(Seconds::get), Ok(180));
    /// let err = Seconds::new(40_000).unwrap_err();
    /// assert_eq!(err.to_string(), "TCP_KEEPIDLE/TCP_KEEPINTVL takes 1s..=32767s, not 40000s");
    /// assert!(Seconds::new(0).is_err());
    /// ```
    pub const fn new(secs: u64) -> Result<Seconds, RangeError> {
        if secs >= Self::MIN.0 as u64 && secs <= Self::MAX.0 as u64 {
            Ok(Seconds(secs as u16))
        } else {
            Err(RangeError::new(
                "TCP_KEEPIDLE/TCP_KEEPINTVL",
                secs,
                Self::MIN.0 as u64,
                Self::MAX.0 as u64,
                "s",
            ))
        }
    }

    /// `d` in whole seconds, rounded up (`1500ms` is 2 s), when that is in
    /// `1..=32767`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keepalive_core::Seconds;
    /// assert_eq!(Seconds::from_duration(Duration::from_millis(1500)).map(Seconds::get), Ok(2));
    /// assert!(Seconds::from_duration(Duration::ZERO).is_err());
    /// ```
    pub const fn from_duration(d: Duration) -> Result<Seconds, RangeError> {
        Seconds::new(ceil_secs(d))
    }

    /// As a [`Duration`].
    pub const fn duration(self) -> Duration {
        Duration::from_secs(self.0 as u64)
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

    /// `count` when it is in `1..=127`, else an error naming the range.
    ///
    /// ```
    /// use keepalive_core::ProbeCount;
    /// assert_eq!(ProbeCount::new(20).map(ProbeCount::get), Ok(20));
    /// assert_eq!(ProbeCount::new(128).unwrap_err().to_string(), "TCP_KEEPCNT takes 1..=127, not 128");
    /// ```
    pub const fn new(count: u64) -> Result<ProbeCount, RangeError> {
        if count >= Self::MIN.0 as u64 && count <= Self::MAX.0 as u64 {
            Ok(ProbeCount(count as u8))
        } else {
            Err(RangeError::new(
                "TCP_KEEPCNT",
                count,
                Self::MIN.0 as u64,
                Self::MAX.0 as u64,
                "",
            ))
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

    /// `ms` when it is in `1..=2147483647`, else an error naming the range.
    ///
    /// ```
    /// use keepalive_core::Millis;
    /// assert_eq!(Millis::new(1500).map(Millis::get), Ok(1500));
    /// assert!(Millis::new(0).is_err());
    /// ```
    pub const fn new(ms: u64) -> Result<Millis, RangeError> {
        if ms >= Self::MIN.0 as u64 && ms <= Self::MAX.0 as u64 {
            Ok(Millis(ms as u32))
        } else {
            Err(RangeError::new(
                "TCP_USER_TIMEOUT",
                ms,
                Self::MIN.0 as u64,
                Self::MAX.0 as u64,
                "ms",
            ))
        }
    }

    /// `d` in whole milliseconds, rounded up, when that is in range.
    pub const fn from_duration(d: Duration) -> Result<Millis, RangeError> {
        Millis::new(ceil_millis(d))
    }

    /// As a [`Duration`].
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.0 as u64)
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
/// Every field can only hold a value the kernel accepts. Build it from
/// durations and counts, as socket2's `TcpKeepalive` is built; a value out
/// of range is an error that names the option and the range, never a
/// silent "kernel default":
///
/// ```
/// use std::time::Duration;
/// use keepalive_core::{Seconds, Settings};
/// let s = Settings::new()
///     .with_idle(Duration::from_secs(180))?
///     .with_interval(Duration::from_secs(60))?
///     .with_count(20)?;
/// assert!(s.enabled);
/// assert_eq!(s.idle.map(Seconds::get), Some(180));
///
/// let err = Settings::new().with_idle(Duration::from_secs(40_000)).unwrap_err();
/// assert_eq!(err.to_string(), "TCP_KEEPIDLE takes 1s..=32767s, not 40000s");
/// # Ok::<(), keepalive_core::RangeError>(())
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

    /// With `TCP_KEEPIDLE` = `idle`, in whole seconds rounded up: an
    /// error unless that is 1 s..=32767 s.
    pub const fn with_idle(self, idle: Duration) -> Result<Settings, RangeError> {
        match Seconds::from_duration(idle) {
            Ok(v) => Ok(Settings {
                idle: Some(v),
                ..self
            }),
            Err(e) => Err(e.named("TCP_KEEPIDLE")),
        }
    }

    /// With `TCP_KEEPINTVL` = `interval`, in whole seconds rounded up: an
    /// error unless that is 1 s..=32767 s.
    pub const fn with_interval(self, interval: Duration) -> Result<Settings, RangeError> {
        match Seconds::from_duration(interval) {
            Ok(v) => Ok(Settings {
                interval: Some(v),
                ..self
            }),
            Err(e) => Err(e.named("TCP_KEEPINTVL")),
        }
    }

    /// With `TCP_KEEPCNT` = `count`: an error unless it is 1..=127.
    pub const fn with_count(self, count: u32) -> Result<Settings, RangeError> {
        match ProbeCount::new(count as u64) {
            Ok(v) => Ok(Settings {
                count: Some(v),
                ..self
            }),
            Err(e) => Err(e),
        }
    }

    /// With `TCP_USER_TIMEOUT` = `timeout`, in whole milliseconds rounded
    /// up: an error unless that is 1 ms..=2147483647 ms.
    pub const fn with_user_timeout(self, timeout: Duration) -> Result<Settings, RangeError> {
        match Millis::from_duration(timeout) {
            Ok(v) => Ok(Settings {
                user_timeout: Some(UserTimeout::Millis(v)),
                ..self
            }),
            Err(e) => Err(e),
        }
    }

    /// With `TCP_USER_TIMEOUT` = idle + interval x count, from the values
    /// each socket ends up with ([`UserTimeout::Auto`]).
    pub const fn with_user_timeout_auto(self) -> Settings {
        Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..self
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
    ///     idle: Some(Seconds::new(10)?),
    ///     count: Some(ProbeCount::new(3)?),
    ///     user_timeout: Some(UserTimeout::Auto),
    ///     ..Settings::new()
    /// };
    /// // interval comes from the kernel default (75 s): 10 + 75 x 3 = 235 s.
    /// assert_eq!(s.user_timeout_ms(KernelDefaults::BUILTIN).map(|m| m.get()), Some(235_000));
    /// # Ok::<(), keepalive_core::RangeError>(())
    /// ```
    pub fn user_timeout_ms(&self, defaults: KernelDefaults) -> Option<Millis> {
        match self.user_timeout? {
            UserTimeout::Millis(ms) => Some(ms),
            UserTimeout::Auto => {
                let effective = KernelDefaults {
                    idle: self.idle.map_or(defaults.idle, |s| u64::from(s.get())),
                    interval: self
                        .interval
                        .map_or(defaults.interval, |s| u64::from(s.get())),
                    count: self.count.map_or(defaults.count, |c| u64::from(c.get())),
                };
                let ms = effective
                    .detection_secs()
                    .saturating_mul(1000)
                    .min(u64::from(Millis::MAX.get()));
                // A kernel default of 0 (only possible through an odd sysctl)
                // leaves nothing to compute: keep the option unset.
                Millis::new(ms).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn seconds_bounds() {
        assert!(Seconds::new(0).is_err_and(|e| e.range() == (1, 32767) && e.value() == 0));
        assert_eq!(Seconds::new(1), Ok(Seconds::MIN));
        assert_eq!(Seconds::new(32767), Ok(Seconds::MAX));
        assert!(Seconds::new(32768).is_err_and(|e| e.value() == 32768));
        assert!(Seconds::new(u64::MAX).is_err_and(|e| e.value() == u64::MAX));
    }

    #[test]
    fn count_bounds() {
        assert!(ProbeCount::new(0).is_err_and(|e| e.option() == "TCP_KEEPCNT"));
        assert_eq!(ProbeCount::new(127), Ok(ProbeCount::MAX));
        assert!(ProbeCount::new(128).is_err_and(|e| e.range() == (1, 127)));
    }

    #[test]
    fn millis_bounds() {
        assert!(Millis::new(0).is_err_and(|e| e.option() == "TCP_USER_TIMEOUT"));
        assert_eq!(Millis::new(2_147_483_647), Ok(Millis::MAX));
        assert!(Millis::new(2_147_483_648).is_err());
    }

    #[test]
    fn durations_round_up_to_the_unit() {
        let d = Duration::from_millis(1001);
        assert_eq!(Seconds::from_duration(d), Seconds::new(2));
        assert_eq!(
            Seconds::from_duration(Duration::from_nanos(1)),
            Ok(Seconds::MIN)
        );
        assert_eq!(
            Millis::from_duration(Duration::from_nanos(1_000_001)),
            Millis::new(2)
        );
        assert!(Seconds::from_duration(Duration::MAX).is_err_and(|e| e.value() == u64::MAX));
        assert!(Millis::from_duration(Duration::MAX).is_err_and(|e| e.value() == u64::MAX));
    }

    #[test]
    fn builder_names_the_option_out_of_range() {
        let s = Settings::new()
            .with_idle(Duration::from_secs(60))
            .and_then(|s| s.with_interval(Duration::from_secs(10)))
            .and_then(|s| s.with_count(6))
            .and_then(|s| s.with_user_timeout(Duration::from_millis(1500)))
            .unwrap();
        assert_eq!(s.idle, Seconds::new(60).ok());
        assert_eq!(s.interval, Seconds::new(10).ok());
        assert_eq!(s.count, ProbeCount::new(6).ok());
        assert_eq!(
            s.user_timeout,
            Millis::new(1500).ok().map(UserTimeout::Millis)
        );
        let e = |r: Result<Settings, RangeError>| r.unwrap_err().to_string();
        assert_eq!(
            e(Settings::new().with_idle(Duration::ZERO)),
            "TCP_KEEPIDLE takes 1s..=32767s, not 0s"
        );
        assert_eq!(
            e(Settings::new().with_interval(Duration::from_secs(40_000))),
            "TCP_KEEPINTVL takes 1s..=32767s, not 40000s"
        );
        assert_eq!(
            e(Settings::new().with_count(0)),
            "TCP_KEEPCNT takes 1..=127, not 0"
        );
        assert_eq!(
            e(Settings::new().with_user_timeout(Duration::from_secs(3_000_000))),
            "TCP_USER_TIMEOUT takes 1ms..=2147483647ms, not 3000000000ms"
        );
        assert_eq!(
            Settings::new().with_user_timeout_auto().user_timeout,
            Some(UserTimeout::Auto)
        );
    }

    #[test]
    fn auto_is_the_detection_time_of_the_effective_values() {
        let s = Settings::new().with_user_timeout_auto();
        let d = KernelDefaults::BUILTIN;
        assert_eq!(
            s.user_timeout_ms(d).map(Millis::get),
            Some(d.detection_secs() as u32 * 1000)
        );
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
        assert_eq!(s.user_timeout_ms(d), Millis::new(1_800_000).ok());
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
            user_timeout: Some(UserTimeout::Millis(Millis::new(1500).unwrap())),
            ..Settings::new()
        };
        assert_eq!(
            s.user_timeout_ms(KernelDefaults::BUILTIN),
            Millis::new(1500).ok()
        );
        assert!(!s.needs_kernel_defaults());
    }
}
