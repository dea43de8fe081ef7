//! Parsing one value of the preload's environment or of the command
//! line: durations (`90`, `1h30m`, `2min`), probe counts, the user
//! timeout (`auto`) and the master switch. On bytes, allocating nothing,
//! never panicking.

use crate::settings::{Millis, ProbeCount, Seconds, UserTimeout};

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
    /// Not one of the switch's words (`on`/`off`, `1`/`0`, `yes`/`no`,
    /// `true`/`false`).
    NotASwitch,
}

impl ErrorKind {
    /// The reason, in words.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty value",
            ErrorKind::Negative => "negative value",
            ErrorKind::NotANumber => "not a number",
            ErrorKind::NotASwitch => "not on or off",
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
        Err(ErrorKind::NotASwitch)
    }
}

fn nonzero(n: u64) -> Result<u64, ErrorKind> {
    if n == 0 { Err(ErrorKind::Zero) } else { Ok(n) }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

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
        }
        for on in ["on", "ON", "1", "yes", "true"] {
            assert_eq!(parse_switch(on.as_bytes()), Ok(true), "{on}");
        }
        assert_eq!(parse_switch(b"maybe"), Err(ErrorKind::NotASwitch));
    }

    proptest::proptest! {
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
