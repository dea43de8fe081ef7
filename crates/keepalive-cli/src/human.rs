//! Text for people: durations with units, counted nouns. The one
//! formatter of durations in text output.

use std::time::Duration;

/// `2h11m15s`, `1m`, `1s500ms`, `250ms`: every non-zero unit from hours
/// down to milliseconds (below that is dropped). The output is a duration
/// the command line and the preload's variables accept back, exactly.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    if secs == 0 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 {
        out += &format!("{s}s");
    }
    if ms > 0 {
        out += &format!("{ms}ms");
    }
    out
}

/// [`duration`] of whole seconds.
pub fn secs(secs: u64) -> String {
    duration(Duration::from_secs(secs))
}

/// [`duration`] of milliseconds.
pub fn millis(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// `1 probe`, `2 probes`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What an unset value means, in the same words everywhere.
pub const KERNEL_DEFAULT: &str = "kernel default";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_hours_to_seconds() {
        assert_eq!(secs(7875), "2h11m15s");
        assert_eq!(secs(7200), "2h");
        assert_eq!(secs(7199), "1h59m59s");
        assert_eq!(secs(125), "2m5s");
        assert_eq!(secs(60), "1m");
        assert_eq!(secs(59), "59s");
    }

    #[test]
    fn milliseconds_are_kept() {
        assert_eq!(millis(250), "250ms");
        assert_eq!(millis(0), "0ms");
        assert_eq!(millis(1500), "1s500ms");
        assert_eq!(millis(855_000), "14m15s");
        assert_eq!(millis(60_500), "1m500ms");
        assert_eq!(millis(90_500), "1m30s500ms");
    }

    #[test]
    fn output_parses_back() {
        for ms in [
            250, 1500, 59_999, 60_001, 90_500, 855_000, 7_875_000, 7_875_001,
        ] {
            let text = millis(ms);
            let back = keepalive::parse::parse_duration_ms(
                text.as_bytes(),
                keepalive::parse::BareUnit::Required,
            );
            assert_eq!(back, Ok(ms), "{text}");
        }
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1u8, "probe", "probes"), "1 probe");
        assert_eq!(plural(0u8, "probe", "probes"), "0 probes");
    }
}
