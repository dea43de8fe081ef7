//! `keepalive sysctl persist` and `set --persist`: the drop-in under
//! `--root`, and the later files that override it.

use super::*;

#[test]
fn persist_writes_the_exact_dropin_once() {
    let root = Root::new("persist");
    let out = sysctl(&[
        "persist",
        "--root",
        root.arg(),
        "--idle",
        "10m",
        "--count",
        "20",
    ]);
    out.assert_success();
    let text = std::fs::read_to_string(root.dropin()).unwrap();
    assert_eq!(
        text,
        format!("{HEADER}net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_probes = 20\n")
    );
    let mtime = std::fs::metadata(root.dropin())
        .unwrap()
        .modified()
        .unwrap();
    let again = sysctl(&[
        "persist",
        "--root",
        root.arg(),
        "--idle",
        "600",
        "--count",
        "20",
    ]);
    again.assert_success();
    assert!(
        again.stdout.contains("already holds these values"),
        "{again}"
    );
    assert_eq!(std::fs::read_to_string(root.dropin()).unwrap(), text);
    assert_eq!(
        std::fs::metadata(root.dropin())
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // A later call for another key keeps the earlier ones.
    sysctl(&["persist", "--root", root.arg(), "--interval", "1m"]).assert_success();
    assert_eq!(
        std::fs::read_to_string(root.dropin()).unwrap(),
        format!(
            "{HEADER}net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_intvl = 60\n\
             net.ipv4.tcp_keepalive_probes = 20\n"
        )
    );
}

#[test]
fn persist_reports_a_later_override_with_file_and_line() {
    let root = Root::new("override");
    std::fs::create_dir_all(root.0.path().join("etc")).unwrap();
    std::fs::write(
        root.0.path().join("etc/sysctl.conf"),
        "# site settings\nnet.ipv4.tcp_keepalive_time = 7200\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.0.path().join("usr/lib/sysctl.d")).unwrap();
    std::fs::write(
        root.0.path().join("usr/lib/sysctl.d/10-early.conf"),
        "net.ipv4.tcp_keepalive_time = 1\n",
    )
    .unwrap();
    let out = sysctl(&["persist", "--root", root.arg(), "--idle", "600"]);
    out.assert_success();
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        warnings.len(),
        1,
        "only the later file overrides ours\n{out}"
    );
    let want = format!(
        "{}/etc/sysctl.conf:2 sets net.ipv4.tcp_keepalive_time = 7200",
        root.arg()
    );
    assert!(warnings[0].contains(&want), "{out}");
    // Other files are never edited.
    assert_eq!(
        std::fs::read_to_string(root.0.path().join("etc/sysctl.conf")).unwrap(),
        "# site settings\nnet.ipv4.tcp_keepalive_time = 7200\n"
    );
}

#[test]
fn set_persist_writes_live_and_file() {
    let Some(ns) = netns() else { return };
    let root = Root::new("setpersist");
    let out = sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "300",
        "--persist",
        "--root",
        root.arg(),
    ]);
    out.assert_success();
    assert_eq!(read(&ns, "tcp_keepalive_time"), 300);
    let text = std::fs::read_to_string(root.dropin()).unwrap();
    assert_eq!(text, format!("{HEADER}net.ipv4.tcp_keepalive_time = 300\n"));
}

#[test]
fn persist_without_values_takes_the_live_ones() {
    let Some(ns) = netns() else { return };
    let root = Root::new("live");
    sysctl(&[
        "set",
        "--netns",
        ns.name(),
        "--idle",
        "900",
        "--interval",
        "30",
        "--count",
        "4",
    ])
    .assert_success();
    sysctl(&["persist", "--netns", ns.name(), "--root", root.arg()]).assert_success();
    assert_eq!(
        std::fs::read_to_string(root.dropin()).unwrap(),
        format!(
            "{HEADER}net.ipv4.tcp_keepalive_time = 900\nnet.ipv4.tcp_keepalive_intvl = 30\n\
             net.ipv4.tcp_keepalive_probes = 4\n"
        )
    );
}

#[test]
fn persist_from_another_namespace_needs_a_root() {
    let Some(ns) = netns() else { return };
    let host_dropin = Path::new("/etc/sysctl.d/90-keepalive.conf");
    let before = std::fs::read(host_dropin).ok();
    let set = sysctl(&["set", "--netns", ns.name(), "--idle", "300", "--persist"]);
    let persist = sysctl(&["persist", "--netns", ns.name()]);
    let after = std::fs::read(host_dropin).ok();
    if after != before {
        // Undo a regression's damage before failing.
        match &before {
            Some(bytes) => std::fs::write(host_dropin, bytes).unwrap(),
            None => std::fs::remove_file(host_dropin).unwrap(),
        }
        panic!("the host's drop-in was written\n{set}\n{persist}");
    }
    for out in [&set, &persist] {
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(
            out.stderr
                .contains("give --root with the container's root directory"),
            "{out}"
        );
        assert!(out.stderr.contains("nothing was changed"), "{out}");
    }
    assert_eq!(
        read(&ns, "tcp_keepalive_time"),
        7200,
        "refused before the live write"
    );
}

#[test]
fn persist_json_names_the_dropin_and_the_override() {
    let root = Root::new("json");
    std::fs::create_dir_all(root.0.path().join("etc")).unwrap();
    let conf = root.0.path().join("etc/sysctl.conf");
    std::fs::write(&conf, "# site\nnet.ipv4.tcp_keepalive_time = 7200\n").unwrap();
    let out = sysctl(&["persist", "--root", root.arg(), "--idle", "600", "--json"]);
    out.assert_success();
    let lines = messages(&out);
    assert_eq!(
        lines,
        [
            Message::Persisted(Persisted {
                path: root.dropin(),
                changed: true,
            }),
            Message::Override(Override {
                path: conf,
                line: 2,
                key: "net.ipv4.tcp_keepalive_time".to_owned(),
                value: "7200".to_owned(),
            }),
        ],
        "{out}"
    );
    assert!(root.dropin().is_file());
    let again = sysctl(&["persist", "--root", root.arg(), "--idle", "600", "--json"]);
    assert!(
        matches!(
            messages(&again).first(),
            Some(Message::Persisted(Persisted { changed: false, .. }))
        ),
        "{again}"
    );
}
