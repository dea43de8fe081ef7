//! The kernel defaults: `net.ipv4.tcp_keepalive_{time,intvl,probes}`.
//!
//! They apply to every socket that does not set its own value, and they are
//! per network namespace. Only the parsing lives here; reading them needs a
//! file system and sits behind [`KernelDefaults::read_proc`].

use crate::sys;

/// The three keepalive sysctls, as the kernel reports them (seconds,
/// seconds, probes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelDefaults {
    /// `net.ipv4.tcp_keepalive_time`, seconds.
    pub idle: u64,
    /// `net.ipv4.tcp_keepalive_intvl`, seconds.
    pub interval: u64,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub count: u64,
}

/// The procfs files of the three sysctls, NUL-terminated for open(2).
pub const PROC_FILES: [&core::ffi::CStr; 3] = [
    c"/proc/sys/net/ipv4/tcp_keepalive_time",
    c"/proc/sys/net/ipv4/tcp_keepalive_intvl",
    c"/proc/sys/net/ipv4/tcp_keepalive_probes",
];

impl KernelDefaults {
    /// The values a new network namespace starts with (7200 s, 75 s, 9).
    pub const BUILTIN: KernelDefaults = KernelDefaults {
        idle: 7200,
        interval: 75,
        count: 9,
    };

    /// How long keepalive takes to give up on a silent idle peer with
    /// these values: `idle + interval x count` seconds, saturating. The one
    /// place this sum is computed (`TCP_USER_TIMEOUT=auto` uses it too).
    ///
    /// ```
    /// use keepalive_core::KernelDefaults;
    /// assert_eq!(KernelDefaults::BUILTIN.detection_secs(), 7200 + 75 * 9);
    /// ```
    pub const fn detection_secs(&self) -> u64 {
        self.idle
            .saturating_add(self.interval.saturating_mul(self.count))
    }

    /// Reads the current network namespace's values from
    /// `/proc/sys/net/ipv4`, with no allocation (it is safe to call from
    /// a signal handler). A file that cannot be read or parsed gives the
    /// built-in value for that field.
    pub fn read_proc() -> KernelDefaults {
        let read = |i: usize, fallback: u64| {
            let mut buf = [0u8; 32];
            sys::read_file(PROC_FILES[i], &mut buf)
                .and_then(|n| parse_value(&buf[..n]))
                .unwrap_or(fallback)
        };
        KernelDefaults {
            idle: read(0, Self::BUILTIN.idle),
            interval: read(1, Self::BUILTIN.interval),
            count: read(2, Self::BUILTIN.count),
        }
    }
}

/// Parses one procfs value: decimal digits, optional surrounding white
/// space (the kernel ends it with a newline).
pub fn parse_value(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii();
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_value_with_newline() {
        assert_eq!(parse_value(b"7200\n"), Some(7200));
    }

    #[test]
    fn parse_value_rejects_garbage() {
        assert_eq!(parse_value(b""), None);
        assert_eq!(parse_value(b"\n"), None);
        assert_eq!(parse_value(b"-1\n"), None);
        assert_eq!(parse_value(b"12a"), None);
        assert_eq!(parse_value(b"99999999999999999999999"), None);
    }

    #[test]
    fn read_proc_matches_procfs() {
        let d = KernelDefaults::read_proc();
        let want = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap();
        assert_eq!(d.idle, want);
    }
}
