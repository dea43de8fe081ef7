//! What connections get under enforcement: the active and the passive
//! side, a program's own keepalive, and values changed in place.

use super::*;

#[test]
fn static_client_gets_the_values_only_with_enforce() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    for addr in families() {
        let server = listener(addr).unwrap();
        let port = server.local_addr().unwrap().port().to_string();
        let out = run_enforced(&ENFORCE, &["connect", addr, &port]);
        assert_eq!(connected(&out), ENFORCED, "{addr}\n{out}");
        // The listener is in the test's cgroup: its side is left alone.
        let (accepted, _) = server.accept().unwrap();
        assert!(!KeepaliveState::read(&accepted).unwrap().enabled, "{addr}");

        // The preload cannot reach it: keepalive stays off, and `run` says
        // what to use instead.
        let mut cmd = keepalive();
        cmd.env("KEEPALIVE_LIBRARY", preload())
            .arg("run")
            .args(ENFORCE)
            .arg("--")
            .arg(client())
            .args(["connect", addr, &port]);
        let out = run(&mut cmd, TIMEOUT);
        assert_eq!(connected(&out), untouched(), "{addr}\n{out}");
        assert!(
            out.stderr.contains("is statically linked")
                && out.stderr.contains("`keepalive run --enforce`"),
            "{out}"
        );
    }
}

#[test]
fn passive_side_gets_the_values() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    for (family, addr) in [("inet", "127.0.0.1"), ("inet6", "::1")] {
        if family == "inet6" && listener(addr).is_none() {
            eprintln!("note: no ::1 on this host, IPv6 not tested");
            continue;
        }
        let mut cmd = keepalive();
        cmd.args(["run", "--enforce"])
            .args(ENFORCE)
            .arg("--")
            .arg(client())
            .args(["serve", family]);
        let mut child = spawn(&mut cmd);
        // Read `listening port=N` as soon as it comes, with a deadline.
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            lines.map_while(Result::ok).collect::<Vec<_>>()
        });
        let first = rx.recv_timeout(TIMEOUT).unwrap_or_default();
        let Some(port) = first
            .strip_prefix("listening port=")
            .and_then(|p| p.parse::<u16>().ok())
        else {
            drop(Running(child));
            panic!("{family}: no `listening port=` line: {first:?}");
        };
        let stream = TcpStream::connect((addr, port)).unwrap();
        // The test's own side is outside the cgroup: untouched.
        assert!(!KeepaliveState::read(&stream).unwrap().enabled);
        let out = wait(child, TIMEOUT);
        let rest = reader.join().unwrap();
        out.assert_success();
        let accepted = rest
            .iter()
            .find_map(|l| Record::parse(l).filter(|r| r.what == "accepted"))
            .unwrap_or_else(|| panic!("{family}: no `accepted` line in {rest:?}\n{out}"));
        assert_eq!(accepted.keepalive(), ENFORCED, "{family}\n{out}");
    }
}

#[test]
fn default_mode_keeps_a_programs_own_keepalive_and_force_replaces_it() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    // The client switches keepalive on itself with TCP_KEEPIDLE=33.
    let own = ["connect", "127.0.0.1", &port, "33"];
    let defaults = untouched();

    let kept = connected(&run_enforced(&ENFORCE, &own));
    assert_eq!(
        kept,
        Keepalive {
            on: 1,
            idle: 33,
            ..defaults
        }
    );

    let mut forced = vec!["--force"];
    forced.extend(ENFORCE);
    assert_eq!(connected(&run_enforced(&forced, &own)), ENFORCED);
}

#[test]
fn changing_the_values_reaches_the_next_connection_without_reload() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("update");
    let server = listener("127.0.0.1").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let connect = ["connect", "127.0.0.1", &port];
    let defaults = untouched();

    let first = enforce(&[
        "--cgroup",
        cg.arg(),
        "--idle",
        "11",
        "--user-timeout",
        "auto",
    ]);
    assert_eq!(first.change, "attached");
    assert_eq!(first.cgroup, cg.path());
    assert!(first.pin_dir.join("link").exists() && first.pin_dir.join("settings").exists());
    // auto = idle + interval x count, with the kernel's interval and count.
    let auto = (11 + defaults.interval * defaults.count) * 1000;
    assert_eq!(
        connected(&cg.client(&connect)),
        Keepalive {
            on: 1,
            idle: 11,
            user_timeout: auto,
            ..defaults
        }
    );

    let second = enforce(&["--cgroup", cg.arg(), "--idle", "22", "--count", "4"]);
    assert_eq!(second.change, "updated");
    assert_eq!(second.settings, settings(22, None, Some(4)));
    assert_eq!(
        second.previous,
        Some(Policy {
            user_timeout_auto: true,
            ..settings(11, None, None)
        })
    );
    // The same program and link: only the map changed.
    assert_eq!(
        (second.prog_id, second.link_id, second.cgroup_id),
        (first.prog_id, first.link_id, first.cgroup_id)
    );
    assert_eq!(
        connected(&cg.client(&connect)),
        Keepalive {
            on: 1,
            idle: 22,
            count: 4,
            ..defaults
        }
    );
}
