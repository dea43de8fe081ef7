//! The preload's variables: bad values are ignored with one warning,
//! durations take units, `auto` is computed.

use super::*;

/// Runs the probe with `var=value` next to valid [`SETTINGS`], and checks
/// that the program ran normally, `var`'s option stayed at the kernel
/// default, the others were applied, and one stderr line named `var`.
fn assert_ignored(var: &str, value: &OsStr) {
    let out = run_ok(
        configured(probe())
            .env(var, value)
            .args(commands(&["socket inet stream 0"])),
    );
    let defaults = kernel_defaults();
    let mut want = Keepalive::configured();
    match var {
        "KEEPCNT" => want.count = defaults.count,
        "KEEPIDLE" => want.idle = defaults.idle,
        "KEEPINTVL" => want.interval = defaults.interval,
        "TCP_USER_TIMEOUT" => want.user_timeout = defaults.user_timeout,
        _ => panic!("not a tunable: {var}"),
    }
    assert_eq!(
        out.only("socket").keepalive(),
        want,
        "{var}={value:?}\n{out}"
    );
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{var}={value:?}: want one warning\n{out}");
    assert!(
        lines[0].starts_with(&format!("keepalive: ignoring {var}=")),
        "{var}={value:?}: the warning does not name {var}\n{out}"
    );
}

#[test]
fn bad_value_not_a_number() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("abc"));
    }
}

#[test]
fn bad_value_empty() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new(""));
    }
}

#[test]
fn bad_value_zero() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("0"));
    }
}

#[test]
fn bad_value_negative() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("-5"));
    }
}

#[test]
fn bad_value_too_large() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("99999999999"));
    }
}

#[test]
fn bad_value_unknown_unit() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::new("30x"));
    }
}

#[test]
fn bad_value_not_utf8() {
    for var in TUNABLES {
        assert_ignored(var, OsStr::from_bytes(b"\xff\xfe30"));
    }
}

#[test]
fn bad_value_keepidle_above_kernel_maximum() {
    assert_ignored("KEEPIDLE", OsStr::new("40000"));
}

#[test]
fn bad_value_keepcnt_above_kernel_maximum() {
    assert_ignored("KEEPCNT", OsStr::new("128"));
}

#[test]
fn duration_units_are_accepted() {
    for (idle, interval, want) in [("3m", "90s", (180, 90)), ("1h", "2m", (3600, 120))] {
        let out = run_ok(
            configured(probe())
                .env("KEEPIDLE", idle)
                .env("KEEPINTVL", interval)
                .args(commands(&["socket inet stream 0"])),
        );
        let r = out.only("socket").keepalive();
        assert_eq!(
            (r.idle, r.interval),
            want,
            "KEEPIDLE={idle} KEEPINTVL={interval}\n{out}"
        );
        assert_eq!(out.stderr, "", "{out}");
    }
}

#[test]
fn user_timeout_in_milliseconds_or_with_unit() {
    for (value, want) in [("5000", 5000), ("30s", 30_000), ("1m", 60_000)] {
        let out = run_ok(
            configured(probe())
                .env("TCP_USER_TIMEOUT", value)
                .args(commands(&["socket inet stream 0"])),
        );
        let want = Keepalive {
            user_timeout: want,
            ..Keepalive::configured()
        };
        assert_eq!(
            out.only("socket").keepalive(),
            want,
            "TCP_USER_TIMEOUT={value}\n{out}"
        );
    }
}

#[test]
fn user_timeout_auto_is_idle_plus_interval_times_count() {
    let defaults = kernel_defaults();
    // KEEPCNT unset: auto uses the kernel's tcp_keepalive_probes.
    let out = run_ok(
        preloaded(probe())
            .env("KEEPIDLE", IDLE.to_string())
            .env("KEEPINTVL", INTERVAL.to_string())
            .env("TCP_USER_TIMEOUT", "auto")
            .args(commands(&["socket inet stream 0"])),
    );
    let want = Keepalive {
        on: 1,
        count: defaults.count,
        idle: IDLE,
        interval: INTERVAL,
        user_timeout: (IDLE + INTERVAL * defaults.count) * 1000,
    };
    assert_eq!(out.only("socket").keepalive(), want, "{out}");
}
