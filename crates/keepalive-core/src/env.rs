//! The preload's environment: `KEEPALIVE`, `KEEPIDLE`, `KEEPINTVL`,
//! `KEEPCNT`, `TCP_USER_TIMEOUT` and `KEEPALIVE_DEBUG`.
//!
//! Everything works on bytes, allocates nothing and never panics, so the
//! same code serves the no_std preload and the std library. Reading the
//! process environment is the caller's business: [`from_vars`] takes
//! `(name, value)` pairs.

use core::fmt;

use crate::settings::Settings;
pub use crate::value::{
    BareUnit, ErrorKind, parse_count, parse_duration_ms, parse_seconds, parse_switch,
    parse_user_timeout,
};

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
    use crate::settings::ProbeCount;

    fn one(name: &'static str, value: &'static [u8]) -> FromEnv<'static> {
        from_vars([(name.as_bytes(), value)])
    }

    #[test]
    fn every_off_word_switches_it_off() {
        for off in ["off", "OFF", "Off", "0", "no", "NO", "false", "False"] {
            assert!(!one("KEEPALIVE", off.as_bytes()).settings.enabled, "{off}");
        }
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
    }
}
