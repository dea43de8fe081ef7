//! Keepalive options: the values the tests give the preload, the kernel's
//! defaults, and the probe's `what key=value ...` lines that report them.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

// The settings most tests give the preload. [`kernel_defaults`] checks that
// they differ from the kernel's, so a socket that has them got them from the
// preload.
/// `KEEPCNT` in [`SETTINGS`].
pub const COUNT: i64 = 20;
/// `KEEPIDLE` in [`SETTINGS`], seconds.
pub const IDLE: i64 = 180;
/// `KEEPINTVL` in [`SETTINGS`], seconds.
pub const INTERVAL: i64 = 60;

/// [`COUNT`], [`IDLE`] and [`INTERVAL`] as the preload's environment.
pub const SETTINGS: [(&str, &str); 3] =
    [("KEEPCNT", "20"), ("KEEPIDLE", "180"), ("KEEPINTVL", "60")];

/// `setsockopt(fd, level, name, &value, sizeof(int))`, for the test's own
/// sockets.
pub fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) {
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: the option value points to a live int of the length given.
    let r = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) };
    assert_eq!(
        r,
        0,
        "setsockopt({fd}, {level}, {name}, {value}): {}",
        std::io::Error::last_os_error()
    );
}

/// One line of a test program's output: `what key=value key=value ...`.
#[derive(Debug, Clone)]
pub struct Record {
    pub what: String,
    pub line: String,
    fields: BTreeMap<String, i64>,
}

impl Record {
    /// Parses a `what key=value ...` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Record> {
        let mut words = line.split_whitespace();
        let what = words.next()?.to_owned();
        let mut fields = BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=')?;
            fields.insert(key.to_owned(), value.parse().ok()?);
        }
        Some(Record {
            what,
            line: line.to_owned(),
            fields,
        })
    }

    /// The value of `key`; panics, showing the line, when it is missing.
    pub fn get(&self, key: &str) -> i64 {
        *self
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in `{}`", self.line))
    }

    /// The keepalive options the line reports.
    pub fn keepalive(&self) -> Keepalive {
        Keepalive {
            on: self.get("keepalive"),
            count: self.get("keepcnt"),
            idle: self.get("keepidle"),
            interval: self.get("keepintvl"),
            user_timeout: self.fields.get("user_timeout").copied().unwrap_or(0),
        }
    }
}

/// The keepalive options of a socket, as getsockopt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// SO_KEEPALIVE.
    pub on: i64,
    /// TCP_KEEPCNT.
    pub count: i64,
    /// TCP_KEEPIDLE, seconds.
    pub idle: i64,
    /// TCP_KEEPINTVL, seconds.
    pub interval: i64,
    /// TCP_USER_TIMEOUT, milliseconds.
    pub user_timeout: i64,
}

impl Keepalive {
    /// A new TCP socket's options when the preload had `KEEPCNT`, `KEEPIDLE`
    /// and `KEEPINTVL` set to [`COUNT`], [`IDLE`] and [`INTERVAL`].
    pub fn configured() -> Keepalive {
        kernel_defaults();
        Keepalive {
            on: 1,
            count: COUNT,
            idle: IDLE,
            interval: INTERVAL,
            user_timeout: 0,
        }
    }
}

/// A new TCP socket's options without the preload: keepalive off, the
/// values of `net.ipv4.tcp_keepalive_{probes,time,intvl}` in this network
/// namespace, no user timeout. Checks that they differ from [`COUNT`],
/// [`IDLE`] and [`INTERVAL`], which would otherwise prove nothing.
pub fn kernel_defaults() -> Keepalive {
    let read = |name: &str| -> i64 {
        let path = format!("/proc/sys/net/ipv4/tcp_keepalive_{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
    };
    let defaults = Keepalive {
        on: 0,
        count: read("probes"),
        idle: read("time"),
        interval: read("intvl"),
        user_timeout: 0,
    };
    assert!(
        defaults.count != COUNT && defaults.idle != IDLE && defaults.interval != INTERVAL,
        "the kernel defaults {defaults:?} equal the test values; change the sysctls"
    );
    defaults
}

/// Whole seconds as the CLI's text writes a duration, worked out here from
/// its documented form: every non-zero unit of hours, minutes and seconds
/// (`2h`, `1m15s`, `1h59m59s`).
pub fn units(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out += &format!("{n}{unit}");
        }
    }
    out
}

#[test]
fn units_of_a_duration() {
    assert_eq!(units(7200), "2h");
    assert_eq!(units(75), "1m15s");
    assert_eq!(units(7199), "1h59m59s");
    assert_eq!(units(61), "1m1s");
    assert_eq!(units(11), "11s");
}
