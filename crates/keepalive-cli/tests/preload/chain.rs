//! Next to other preloads and other libraries' constructors.

use super::*;

/// Runs the probe with `LD_PRELOAD` set to `libs` (space-separated) and
/// checks that its TCP sockets got keepalive and TCP_NODELAY.
fn assert_chained(libs: &[&Path]) {
    let ld_preload = ld_preload(libs);
    let out = run_ok(
        configured(probe())
            .env("LD_PRELOAD", &ld_preload)
            .args(commands(&["socket inet stream 0", "socket inet6 stream 0"])),
    );
    let found = sockets(&out);
    assert_eq!(found.len(), 2, "{out}");
    for r in found {
        assert_eq!(
            r.keepalive(),
            Keepalive::configured(),
            "LD_PRELOAD={ld_preload:?}\n{out}"
        );
        assert_eq!(r.get("nodelay"), 1, "LD_PRELOAD={ld_preload:?}\n{out}");
    }
}

#[test]
fn chained_after_another_preload() {
    assert_chained(&[nodelay_lib(), preload()]);
}

#[test]
fn chained_before_another_preload() {
    assert_chained(&[preload(), nodelay_lib()]);
}

/// Runs the probe with `libctor.so` preloaded before, then after ours,
/// with `LD_DEBUG=files` (the loader's `calling init:` lines) and `env`.
/// Returns, per order, whether ctor's constructor ran before ours, the
/// line it printed, and the output.
fn ctor_runs(env: &[(&str, &str)]) -> Vec<(bool, Record, Output)> {
    let orders: [[&Path; 2]; 2] = [[ctor_lib(), preload()], [preload(), ctor_lib()]];
    orders
        .iter()
        .map(|libs| {
            let ld_preload = ld_preload(libs);
            let out = run_ok(
                preloaded(probe())
                    .env("LD_PRELOAD", &ld_preload)
                    .env("LD_DEBUG", "files")
                    .envs(env.iter().copied())
                    .args(commands(&["socket inet stream 0"])),
            );
            let inits: Vec<&str> = out
                .stderr
                .lines()
                .filter_map(|l| l.split_once("calling init: ").map(|(_, lib)| lib.trim()))
                .collect();
            let position = |lib: &Path| {
                inits
                    .iter()
                    .position(|i| Path::new(i) == lib)
                    .unwrap_or_else(|| panic!("no `calling init: {}`\n{out}", lib.display()))
            };
            let ctor_first = position(ctor_lib()) < position(preload());
            let ctor = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("ctor: "))
                .filter_map(Record::parse)
                .next()
                .unwrap_or_else(|| panic!("libctor.so printed nothing\n{out}"));
            (ctor_first, ctor, out)
        })
        .collect()
}

#[test]
fn socket_made_in_another_constructor_gets_keepalive() {
    let runs = ctor_runs(&SETTINGS);
    assert!(
        runs.iter().any(|(ctor_first, _, _)| *ctor_first),
        "the loader ran our constructor first in both orders, so no run had \
         a socket made before it ran"
    );
    for (_, ctor, out) in &runs {
        assert_eq!(
            (ctor.get("keepalive"), ctor.get("keepidle")),
            (1, IDLE),
            "{out}"
        );
        assert_eq!(
            out.only("socket").keepalive(),
            Keepalive::configured(),
            "{out}"
        );
    }
}

#[test]
fn bad_value_warned_once_when_another_constructor_calls_socket_first() {
    let runs = ctor_runs(&[("KEEPIDLE", "abc")]);
    for (_, ctor, out) in &runs {
        let warnings: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("keepalive:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{out}");
        assert!(
            warnings[0].starts_with("keepalive: ignoring KEEPIDLE="),
            "{out}"
        );
        assert_eq!(
            (ctor.get("keepalive"), ctor.get("keepidle")),
            (1, kernel_defaults().idle),
            "{out}"
        );
    }
}
