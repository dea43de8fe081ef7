//! The timers `ss -tno` shows.

use std::time::Duration;

/// The remaining time of the keepalive timer in a line of `ss -tno`
/// (`timer:(keepalive,29sec,0)`), `None` when the line has no such timer.
pub fn ss_keepalive_timer(line: &str) -> Option<Duration> {
    let rest = line.split_once("timer:(keepalive,")?.1;
    let time = rest.split(',').next()?;
    parse_ss_time(time)
}

/// Parses the time format of ss (iproute2 misc/ss.c, print_ms_timer):
/// `1min`, `1min5sec`, `29sec`, `5.250ms` (seconds and milliseconds),
/// `400ms`; an empty string is zero.
pub fn parse_ss_time(text: &str) -> Option<Duration> {
    let mut ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (factor, unit_len) = if rest.starts_with("min") {
            (60_000, 3)
        } else if rest.starts_with("sec") {
            (1000, 3)
        } else if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('.') {
            // `5.250ms`: whole seconds, then milliseconds.
            (1000, 1)
        } else {
            return None;
        };
        ms += n * factor;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(ms))
}

#[test]
fn ss_time_formats() {
    let ms = |text| parse_ss_time(text).map(|d| d.as_millis());
    assert_eq!(ms("29sec"), Some(29_000));
    assert_eq!(ms("1min"), Some(60_000));
    assert_eq!(ms("1min5sec"), Some(65_000));
    assert_eq!(ms("120min"), Some(7_200_000));
    assert_eq!(ms("5.250ms"), Some(5_250));
    assert_eq!(ms("400ms"), Some(400));
    assert_eq!(ms(""), Some(0));
    assert_eq!(ms("soon"), None);
    assert_eq!(
        ss_keepalive_timer("0 0 127.0.0.1:5 127.0.0.1:6 timer:(keepalive,29sec,0)"),
        Some(Duration::from_secs(29))
    );
    assert_eq!(
        ss_keepalive_timer("0 0 127.0.0.1:5 127.0.0.1:6 timer:(on,200ms,0)"),
        None
    );
}
