//! The preload's environment: `KEEPALIVE`, `KEEPIDLE`, `KEEPINTVL`,
//! `KEEPCNT`, `TCP_USER_TIMEOUT` and `KEEPALIVE_DEBUG`.
//!
//! Everything works on bytes, allocates nothing and never panics, so the
//! same code serves the no_std preload and the std library. Reading the
//! process environment is the caller's business: [`from_vars`] takes
//! `(name, value)` pairs.

use core::fmt;

use crate::settings::{Millis, ProbeCount, Seconds, Settings, UserTimeout};

/// A variable of the preload's environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `KEEPALIVE`: the master switch.
    Keepalive,
    /// `KEEPIDLE`: `TCP_KEEPIDLE`.
    Idle,
    /// `KEEPINTVL`: `TCP_KEEPINTVL`.
    Interval,
    /// `KEEPCNT`: `TCP_KEEPCNT`.
    Count,
    /// `TCP_USER_TIMEOUT`: `TCP_USER_TIMEOUT`.
    UserTimeout,
}

impl Var {
    /// Every variable, in the order diagnostics are reported.
    pub const ALL: [Var; 5] = [
        Var::Keepalive,
        Var::Count,
        Var::Idle,
        Var::Interval,
        Var::UserTimeout,
    ];

    /// The variable's name in the environment.
    pub const fn name(self) -> &'static str {
        match self {
            Var::Keepalive => "KEEPALIVE",
            Var::Idle => "KEEPIDLE",
            Var::Interval => "KEEPINTVL",
            Var::Count => "KEEPCNT",
            Var::UserTimeout => "TCP_USER_TIMEOUT",
        }
    }

    /// The values the variable accepts, in words.
    pub const fn expected(self) -> &'static str {
        match self {
            Var::Keepalive => "on or off (also 1/0, yes/no, true/false)",
            Var::Idle | Var::Interval => {
                "whole seconds 1..=32767, optionally with a unit: 90s, 10m, 1h30m"
            }
            Var::Count => "a probe count 1..=127",
            Var::UserTimeout => {
                "milliseconds 1..=2147483647, a duration with a unit (1500ms, 30s, 5m, 1h30m) or auto"
            }
        }
    }

    fn index(self) -> usize {
        match self {
            Var::Keepalive => 0,
            Var::Count => 1,
            Var::Idle => 2,
            Var::Interval => 3,
            Var::UserTimeout => 4,
        }
    }

    fn from_name(name: &[u8]) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name().as_bytes() == name)
    }
}

/// Why a value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The value is empty (or only white space).
    Empty,
    /// A minus sign: negative values are never valid.
    Negative,
    /// Not a number (and not a word the variable accepts).
    NotANumber,
    /// A number followed by something that is not a known unit.
    BadUnit,
    /// A unit this variable does not take (`ms` for whole seconds).
    NotWholeSeconds,
    /// Zero.
    Zero,
    /// Larger than the kernel accepts (or than any integer holds).
    TooLarge,
}

impl ErrorKind {
    /// The reason, in words.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty value",
            ErrorKind::Negative => "negative value",
            ErrorKind::NotANumber => "not a number",
            ErrorKind::BadUnit => "unknown unit",
            ErrorKind::NotWholeSeconds => "not a whole number of seconds",
            ErrorKind::Zero => "zero is not allowed",
            ErrorKind::TooLarge => "too large",
        }
    }
}

/// The unit a bare number is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareUnit {
    /// A bare number is seconds (`KEEPIDLE`, `--idle`).
    Seconds,
    /// A bare number is milliseconds (`TCP_USER_TIMEOUT`, like the option).
    Millis,
    /// A bare number is refused: a unit is required (`--user-timeout`).
    Required,
}

/// Parses a duration into milliseconds, without overflow: a bare number
/// (read as `bare` says), or one or more `<number><unit>` parts, as
/// systemd.time(7) writes them (`90s`, `10m`, `1h30m`, `90sec`, `2min`,
/// `1h 30min`); a last part without a unit is read as `bare` says (`1h30`
/// is 1 h 30 s). White space around the value and between parts is ignored.
///
/// Units: `ms`/`msec`, `s`/`sec`/`second`/`seconds`,
/// `m`/`min`/`minute`/`minutes`, `h`/`hr`/`hour`/`hours`, `d`/`day`/`days`.
///
/// ```
/// use keepalive_core::env::{parse_duration_ms, BareUnit, ErrorKind};
/// assert_eq!(parse_duration_ms(b"10m", BareUnit::Seconds), Ok(600_000));
/// assert_eq!(parse_duration_ms(b"1h30m", BareUnit::Seconds), Ok(5_400_000));
/// assert_eq!(parse_duration_ms(b"2min", BareUnit::Seconds), Ok(120_000));
/// assert_eq!(parse_duration_ms(b"1500", BareUnit::Millis), Ok(1500));
/// assert_eq!(parse_duration_ms(b"30x", BareUnit::Seconds), Err(ErrorKind::BadUnit));
/// ```
pub fn parse_duration_ms(value: &[u8], bare: BareUnit) -> Result<u64, ErrorKind> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(ErrorKind::Empty);
    }
    if value[0] == b'-' {
        return Err(ErrorKind::Negative);
    }
    if value.iter().all(u8::is_ascii_digit) {
        let factor = match bare {
            BareUnit::Seconds => 1000,
            BareUnit::Millis => 1,
            BareUnit::Required => return Err(ErrorKind::BadUnit),
        };
        return number(value)
            .and_then(|n| n.checked_mul(factor))
            .ok_or(ErrorKind::TooLarge);
    }
    let mut rest = value;
    let mut total: Option<u64> = Some(0);
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(if rest.len() == value.len() {
                ErrorKind::NotANumber
            } else {
                ErrorKind::BadUnit
            });
        }
        let (n, after) = rest.split_at(digits);
        let after = after.trim_ascii_start();
        let letters = after.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, after) = after.split_at(letters);
        // A last bare number is in the default unit, as systemd reads
        // `1h30` (1 h 30 s); one in the middle is an error.
        let factor = match (unit, after.trim_ascii_start().is_empty(), bare) {
            (b"", true, BareUnit::Seconds) => 1000,
            (b"", true, BareUnit::Millis) => 1,
            _ => unit_ms(unit).ok_or(ErrorKind::BadUnit)?,
        };
        // An overflow anywhere makes the whole value too large, but the
        // rest must still be well-formed for that to be the reason.
        total = total
            .zip(number(n).and_then(|n| n.checked_mul(factor)))
            .and_then(|(t, part)| t.checked_add(part));
        rest = after.trim_ascii_start();
    }
    total.ok_or(ErrorKind::TooLarge)
}

/// The decimal number `digits` (ASCII digits only), `None` on overflow.
fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Milliseconds in one `unit`, as systemd.time(7) names them.
fn unit_ms(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ms" | b"msec" => 1,
        b"s" | b"sec" | b"second" | b"seconds" => 1000,
        b"m" | b"min" | b"minute" | b"minutes" => 60_000,
        b"h" | b"hr" | b"hour" | b"hours" => 3_600_000,
        b"d" | b"day" | b"days" => 86_400_000,
        _ => return None,
    })
}

/// Parses whole seconds in `1..=32767` (bare number: seconds; units `s`,
/// `m`, `h`; `ms` only for whole seconds).
///
/// ```
/// use keepalive_core::env::{parse_seconds, ErrorKind};
/// assert_eq!(parse_seconds(b"2m").map(|s| s.get()), Ok(120));
/// assert_eq!(parse_seconds(b"40000"), Err(ErrorKind::TooLarge));
/// assert_eq!(parse_seconds(b"0"), Err(ErrorKind::Zero));
/// ```
pub fn parse_seconds(value: &[u8]) -> Result<Seconds, ErrorKind> {
    let ms = parse_duration_ms(value, BareUnit::Seconds)?;
    if ms % 1000 != 0 {
        return Err(ErrorKind::NotWholeSeconds);
    }
    nonzero(ms / 1000).and_then(|s| Seconds::new(s).map_err(|_| ErrorKind::TooLarge))
}

/// Parses a probe count in `1..=127`.
///
/// ```
/// use keepalive_core::env::{parse_count, ErrorKind};
/// assert_eq!(parse_count(b"20").map(|c| c.get()), Ok(20));
/// assert_eq!(parse_count(b"128"), Err(ErrorKind::TooLarge));
/// ```
pub fn parse_count(value: &[u8]) -> Result<ProbeCount, ErrorKind> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(ErrorKind::Empty);
    }
    if value[0] == b'-' {
        return Err(ErrorKind::Negative);
    }
    if !value.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::NotANumber);
    }
    let n = crate::sysctl::parse_value(value).ok_or(ErrorKind::TooLarge)?;
    nonzero(n).and_then(|n| ProbeCount::new(n).map_err(|_| ErrorKind::TooLarge))
}

/// Parses a user timeout: `auto` (any case), or a duration where a bare
/// number is read as `bare` says.
///
/// ```
/// use keepalive_core::env::{parse_user_timeout, BareUnit, ErrorKind};
/// use keepalive_core::UserTimeout;
/// assert_eq!(parse_user_timeout(b"AUTO", BareUnit::Millis), Ok(UserTimeout::Auto));
/// assert_eq!(parse_user_timeout(b"15", BareUnit::Required), Err(ErrorKind::BadUnit));
/// ```
pub fn parse_user_timeout(value: &[u8], bare: BareUnit) -> Result<UserTimeout, ErrorKind> {
    if value.trim_ascii().eq_ignore_ascii_case(b"auto") {
        return Ok(UserTimeout::Auto);
    }
    let ms = parse_duration_ms(value, bare)?;
    nonzero(ms).and_then(|ms| {
        Millis::new(ms)
            .map(UserTimeout::Millis)
            .map_err(|_| ErrorKind::TooLarge)
    })
}

/// Parses the master switch: `Ok(false)` for `off`, `0`, `no`, `false`,
/// `Ok(true)` for `on`, `1`, `yes`, `true` (any case).
pub fn parse_switch(value: &[u8]) -> Result<bool, ErrorKind> {
    let v = value.trim_ascii();
    const OFF: [&[u8]; 4] = [b"off", b"0", b"no", b"false"];
    const ON: [&[u8]; 4] = [b"on", b"1", b"yes", b"true"];
    if v.is_empty() {
        Err(ErrorKind::Empty)
    } else if OFF.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Ok(false)
    } else if ON.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Ok(true)
    } else {
        Err(ErrorKind::NotANumber)
    }
}

fn nonzero(n: u64) -> Result<u64, ErrorKind> {
    if n == 0 { Err(ErrorKind::Zero) } else { Ok(n) }
}

/// A refused value: the variable, its raw bytes and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid<'a> {
    /// The variable.
    pub var: Var,
    /// The value as found in the environment.
    pub value: &'a [u8],
    /// Why it was refused.
    pub kind: ErrorKind,
}

impl fmt::Display for Invalid<'_> {
    /// One line: `keepalive: ignoring KEEPIDLE="abc" (not a number): expected
    /// ...; TCP_KEEPIDLE is left at the kernel default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keepalive: ignoring {}=\"", self.var.name())?;
        write_escaped(f, self.value, 64)?;
        write!(
            f,
            "\" ({}): expected {}; ",
            self.kind.as_str(),
            self.var.expected()
        )?;
        match self.var {
            Var::Keepalive => f.write_str("keepalive stays on"),
            Var::Idle => f.write_str("TCP_KEEPIDLE is left at the kernel default"),
            Var::Interval => f.write_str("TCP_KEEPINTVL is left at the kernel default"),
            Var::Count => f.write_str("TCP_KEEPCNT is left at the kernel default"),
            Var::UserTimeout => f.write_str("TCP_USER_TIMEOUT is left at the kernel default"),
        }
    }
}

/// Writes printable ASCII as is, anything else as `\xNN`, `"` and `\` escaped,
/// at most `max` input bytes (then `...`).
fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8], max: usize) -> fmt::Result {
    for &b in bytes.iter().take(max) {
        match b {
            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
            0x20..=0x7e => write!(f, "{}", b as char)?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    if bytes.len() > max {
        f.write_str("...")?;
    }
    Ok(())
}

/// Where the preload's per-socket debug log goes (`KEEPALIVE_DEBUG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Debug<'a> {
    /// No log (unset, empty, `0`, `off`, ...).
    Off,
    /// Standard error, unless it is a socket (`1`, `on`, `yes`, `true`, or
    /// any other value that is not a path).
    Stderr,
    /// Appended to this file (a value that starts with `/`).
    File(&'a [u8]),
}

/// The environment, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FromEnv<'a> {
    /// The settings; refused values are left unset (kernel default).
    pub settings: Settings,
    /// `KEEPALIVE_DEBUG`.
    pub debug: Debug<'a>,
    invalid: [Option<Invalid<'a>>; 5],
}

impl<'a> FromEnv<'a> {
    /// The refused values, at most one per variable, in a fixed order.
    pub fn invalid(&self) -> impl Iterator<Item = &Invalid<'a>> {
        self.invalid.iter().flatten()
    }
}

/// Parses the preload's variables out of `(name, value)` pairs (other names
/// are skipped). When a name appears twice the first one counts, as with
/// getenv(3).
///
/// ```
/// use keepalive_core::env::from_vars;
/// let env = [
///     (&b"KEEPCNT"[..], &b"20"[..]),
///     (b"KEEPIDLE", b"3m"),
///     (b"KEEPINTVL", b"abc"),
///     (b"HOME", b"/root"),
/// ];
/// let parsed = from_vars(env);
/// assert!(parsed.settings.enabled);
/// assert_eq!(parsed.settings.count.map(|c| c.get()), Some(20));
/// assert_eq!(parsed.settings.idle.map(|s| s.get()), Some(180));
/// assert_eq!(parsed.settings.interval, None);
/// let bad: Vec<_> = parsed.invalid().map(|i| i.var.name()).collect();
/// assert_eq!(bad, ["KEEPINTVL"]);
/// ```
pub fn from_vars<'a, I>(vars: I) -> FromEnv<'a>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut out = FromEnv {
        settings: Settings::new(),
        debug: Debug::Off,
        invalid: [None; 5],
    };
    let mut seen = [false; 5];
    let mut debug_seen = false;
    for (name, value) in vars {
        if name == b"KEEPALIVE_DEBUG" {
            if !debug_seen {
                debug_seen = true;
                out.debug = parse_debug(value);
            }
            continue;
        }
        let Some(var) = Var::from_name(name) else {
            continue;
        };
        if core::mem::replace(&mut seen[var.index()], true) {
            continue;
        }
        let s = &mut out.settings;
        let result = match var {
            Var::Keepalive => parse_switch(value).map(|on| s.enabled = on),
            Var::Idle => parse_seconds(value).map(|v| s.idle = Some(v)),
            Var::Interval => parse_seconds(value).map(|v| s.interval = Some(v)),
            Var::Count => parse_count(value).map(|v| s.count = Some(v)),
            Var::UserTimeout => {
                parse_user_timeout(value, BareUnit::Millis).map(|v| s.user_timeout = Some(v))
            }
        };
        if let Err(kind) = result {
            out.invalid[var.index()] = Some(Invalid { var, value, kind });
        }
    }
    if !out.settings.enabled {
        // Switched off: the other values are irrelevant, and so are their
        // errors (the user asked for silence).
        out.settings = Settings::off();
        out.invalid = [None; 5];
    }
    out
}

fn parse_debug(value: &[u8]) -> Debug<'_> {
    let v = value.trim_ascii();
    if v.first() == Some(&b'/') {
        Debug::File(v)
    } else if v.is_empty() || parse_switch(v) == Ok(false) {
        Debug::Off
    } else {
        Debug::Stderr
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use super::*;

    fn one(name: &'static str, value: &'static [u8]) -> FromEnv<'static> {
        from_vars([(name.as_bytes(), value)])
    }

    #[test]
    fn suffixes() {
        assert_eq!(parse_seconds(b"90s").map(Seconds::get), Ok(90));
        assert_eq!(parse_seconds(b"10m").map(Seconds::get), Ok(600));
        assert_eq!(parse_seconds(b"2h").map(Seconds::get), Ok(7200));
        assert_eq!(parse_seconds(b"2000ms").map(Seconds::get), Ok(2));
        assert_eq!(parse_seconds(b" 180\n").map(Seconds::get), Ok(180));
    }

    #[test]
    fn compound_and_long_forms() {
        assert_eq!(parse_seconds(b"1h30m").map(Seconds::get), Ok(5400));
        assert_eq!(parse_seconds(b"1h 30min").map(Seconds::get), Ok(5400));
        assert_eq!(parse_seconds(b"90sec").map(Seconds::get), Ok(90));
        assert_eq!(parse_seconds(b"2min").map(Seconds::get), Ok(120));
        assert_eq!(parse_seconds(b"2 minutes").map(Seconds::get), Ok(120));
        assert_eq!(parse_seconds(b"1m30s").map(Seconds::get), Ok(90));
        assert_eq!(parse_seconds(b"1s500ms"), Err(ErrorKind::NotWholeSeconds));
        assert_eq!(parse_seconds(b"1d"), Err(ErrorKind::TooLarge));
        assert_eq!(parse_seconds(b"1h30").map(Seconds::get), Ok(3630));
        assert_eq!(parse_seconds(b"1h 30 5m"), Err(ErrorKind::BadUnit));
        assert_eq!(
            parse_user_timeout(b"1s500", BareUnit::Millis),
            Ok(UserTimeout::Millis(Millis::new(1500).unwrap()))
        );
        assert_eq!(
            parse_user_timeout(b"1s500", BareUnit::Required),
            Err(ErrorKind::BadUnit)
        );
        assert_eq!(parse_seconds(b"1h x"), Err(ErrorKind::BadUnit));
        assert_eq!(parse_seconds(b"1hh"), Err(ErrorKind::BadUnit));
        assert_eq!(
            parse_seconds(b"1h99999999999999999999m"),
            Err(ErrorKind::TooLarge)
        );
        assert_eq!(
            parse_user_timeout(b"1m30s", BareUnit::Required),
            Ok(UserTimeout::Millis(Millis::new(90_000).unwrap()))
        );
        assert_eq!(
            parse_duration_ms(b"1min 500msec", BareUnit::Millis),
            Ok(60_500)
        );
    }

    #[test]
    fn invalid_kinds() {
        assert_eq!(parse_seconds(b"abc"), Err(ErrorKind::NotANumber));
        assert_eq!(parse_seconds(b""), Err(ErrorKind::Empty));
        assert_eq!(parse_seconds(b"   "), Err(ErrorKind::Empty));
        assert_eq!(parse_seconds(b"0"), Err(ErrorKind::Zero));
        assert_eq!(parse_seconds(b"-5"), Err(ErrorKind::Negative));
        assert_eq!(parse_seconds(b"99999999999"), Err(ErrorKind::TooLarge));
        assert_eq!(
            parse_seconds(b"99999999999999999999999h"),
            Err(ErrorKind::TooLarge)
        );
        assert_eq!(parse_seconds(b"30x"), Err(ErrorKind::BadUnit));
        assert_eq!(parse_seconds(b"1500ms"), Err(ErrorKind::NotWholeSeconds));
        assert_eq!(parse_seconds(b"40000"), Err(ErrorKind::TooLarge));
        assert_eq!(parse_seconds(b"10h"), Err(ErrorKind::TooLarge));
        assert_eq!(parse_seconds(b"+5"), Err(ErrorKind::NotANumber));
        assert_eq!(parse_count(b"128"), Err(ErrorKind::TooLarge));
        assert_eq!(parse_count(b"5s"), Err(ErrorKind::NotANumber));
        assert_eq!(parse_count(b"0"), Err(ErrorKind::Zero));
    }

    #[test]
    fn boundaries() {
        assert_eq!(parse_seconds(b"32767").map(Seconds::get), Ok(32767));
        assert_eq!(parse_seconds(b"1").map(Seconds::get), Ok(1));
        assert_eq!(parse_count(b"127").map(ProbeCount::get), Ok(127));
        assert_eq!(parse_count(b"1").map(ProbeCount::get), Ok(1));
        assert_eq!(
            parse_user_timeout(b"2147483647", BareUnit::Millis),
            Ok(UserTimeout::Millis(Millis::MAX))
        );
        assert_eq!(
            parse_user_timeout(b"2147483648", BareUnit::Millis),
            Err(ErrorKind::TooLarge)
        );
    }

    #[test]
    fn user_timeout_units() {
        let ms = |v: &[u8], b| parse_user_timeout(v, b);
        assert_eq!(
            ms(b"1500", BareUnit::Millis),
            Ok(UserTimeout::Millis(Millis::new(1500).unwrap()))
        );
        assert_eq!(
            ms(b"15s", BareUnit::Required),
            Ok(UserTimeout::Millis(Millis::new(15000).unwrap()))
        );
        assert_eq!(ms(b"15", BareUnit::Required), Err(ErrorKind::BadUnit));
        assert_eq!(ms(b"Auto", BareUnit::Required), Ok(UserTimeout::Auto));
        assert_eq!(ms(b"0", BareUnit::Millis), Err(ErrorKind::Zero));
    }

    #[test]
    fn switch_words() {
        for off in ["off", "OFF", "Off", "0", "no", "NO", "false", "False"] {
            assert_eq!(parse_switch(off.as_bytes()), Ok(false), "{off}");
            let env = one("KEEPALIVE", off.as_bytes());
            assert!(!env.settings.enabled);
        }
        for on in ["on", "ON", "1", "yes", "true"] {
            assert_eq!(parse_switch(on.as_bytes()), Ok(true), "{on}");
        }
        assert_eq!(parse_switch(b"maybe"), Err(ErrorKind::NotANumber));
    }

    #[test]
    fn off_silences_other_errors() {
        let env = from_vars([(&b"KEEPALIVE"[..], &b"off"[..]), (b"KEEPIDLE", b"abc")]);
        assert_eq!(env.settings, Settings::off());
        assert_eq!(env.invalid().count(), 0);
    }

    #[test]
    fn invalid_keepalive_keeps_it_on() {
        let env = one("KEEPALIVE", b"maybe");
        assert!(env.settings.enabled);
        assert_eq!(
            env.invalid().map(|i| i.var).collect::<Vec<_>>(),
            [Var::Keepalive]
        );
    }

    #[test]
    fn first_occurrence_wins() {
        let env = from_vars([(&b"KEEPCNT"[..], &b"5"[..]), (b"KEEPCNT", b"abc")]);
        assert_eq!(env.settings.count.map(ProbeCount::get), Some(5));
        assert_eq!(env.invalid().count(), 0);
    }

    #[test]
    fn message_names_variable_value_and_range() {
        let env = one("KEEPIDLE", b"40000");
        let msg = env.invalid().next().unwrap().to_string();
        assert_eq!(
            msg,
            "keepalive: ignoring KEEPIDLE=\"40000\" (too large): expected whole seconds \
             1..=32767, optionally with a unit: 90s, 10m, 1h30m; TCP_KEEPIDLE is left at the \
             kernel default"
        );
    }

    #[test]
    fn message_escapes_bytes() {
        let env = one("KEEPCNT", b"\xff\"x\n");
        let msg = env.invalid().next().unwrap().to_string();
        assert!(
            msg.starts_with("keepalive: ignoring KEEPCNT=\"\\xff\\\"x\\x0a\""),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn debug_values() {
        assert_eq!(one("KEEPALIVE_DEBUG", b"1").debug, Debug::Stderr);
        assert_eq!(one("KEEPALIVE_DEBUG", b"0").debug, Debug::Off);
        assert_eq!(one("KEEPALIVE_DEBUG", b"").debug, Debug::Off);
        assert_eq!(
            one("KEEPALIVE_DEBUG", b"/tmp/k.log").debug,
            Debug::File(b"/tmp/k.log")
        );
        assert_eq!(
            one("KEEPALIVE_DEBUG", b" /tmp/k.log\n").debug,
            Debug::File(b"/tmp/k.log")
        );
        assert_eq!(one("HOME", b"/").debug, Debug::Off);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(name in proptest::sample::select(&["KEEPALIVE", "KEEPIDLE", "KEEPINTVL", "KEEPCNT", "TCP_USER_TIMEOUT", "KEEPALIVE_DEBUG"][..]),
                           value in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let env = from_vars([(name.as_bytes(), &value[..])]);
            for i in env.invalid() {
                let line = i.to_string();
                proptest::prop_assert!(line.contains(name));
                proptest::prop_assert!(!line.contains('\n'));
            }
        }

        #[test]
        fn accepted_seconds_are_in_range(value in "[0-9]{0,12}(ms|s|m|h|x)?") {
            if let Ok(s) = parse_seconds(value.as_bytes()) {
                proptest::prop_assert!((1..=32767).contains(&s.get()));
            }
        }

        #[test]
        fn seconds_round_trip(n in 1u64..=32767) {
            proptest::prop_assert_eq!(parse_seconds(n.to_string().as_bytes()).map(Seconds::get), Ok(n as u16));
        }
    }
}
