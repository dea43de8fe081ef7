//! deploy/kubernetes/: the DaemonSet's own script, run against a test
//! cgroup, enforces there and removes the enforcement when stopped as a
//! deleted pod is (SIGTERM); the pod-sysctl recipe names the safe sysctls.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

use super::*;

fn load(name: &str) -> Vec<Yaml> {
    let path = crate::util::workspace_root()
        .join("deploy/kubernetes")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The DaemonSet's container, and the value of each of its variables.
fn container() -> (Yaml, Vec<(String, String)>) {
    let docs = load("daemonset.yaml");
    let ds = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("DaemonSet"))
        .expect("a DaemonSet")
        .clone();
    let spec = &ds["spec"]["template"]["spec"];
    let c = spec["containers"][0].clone();
    let env = c["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (c, env)
}

#[test]
fn the_manifests_parse_and_hold_what_the_kernel_needs() {
    let (c, env) = container();
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(true));
    let mounts: Vec<(&str, Option<&str>)> = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["mountPropagation"].as_str(),
            )
        })
        .collect();
    assert!(mounts.contains(&("/sys/fs/cgroup", None)), "{mounts:?}");
    assert!(
        mounts.contains(&("/sys/fs/bpf", Some("Bidirectional"))),
        "{mounts:?}"
    );
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["KEEPALIVE_CGROUP", "KEEPALIVE_SETTINGS"]);
    let script = c["args"][0].as_str().unwrap();
    assert!(script.contains("--existing"), "{script}");
    assert!(script.contains("--remove"), "{script}");

    let pod = &load("pod-sysctls.yaml")[0];
    let sysctls: Vec<(&str, u64)> = pod["spec"]["securityContext"]["sysctls"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["value"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = sysctls.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes"
        ]
    );
    // Idle and interval below the smallest load balancer timeout named (240 s).
    assert!(sysctls[0].1 < 240 && sysctls[1].1 < 240, "{sysctls:?}");
}

#[test]
fn the_daemonsets_script_enforces_and_removes_on_sigterm() {
    if let Some(why) = unavailable() {
        skip!("{why}");
    }
    let cg = TestCgroup::new("daemonset");
    let relative = cg.path().file_name().unwrap().to_str().unwrap().to_owned();
    let (c, env) = container();
    let script = c["args"][0].as_str().unwrap().to_owned();
    assert_eq!(c["command"][0].as_str(), Some("/bin/sh"));
    let settings = &env
        .iter()
        .find(|(n, _)| n == "KEEPALIVE_SETTINGS")
        .unwrap()
        .1;
    // `keepalive` on PATH is the binary under test.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_keepalive"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = bare("/bin/sh")
        .args(["-c", &script])
        .env("KEEPALIVE_CGROUP", &relative)
        .env("KEEPALIVE_SETTINGS", settings)
        .env("KEEPALIVE_LIBRARY", preload())
        .env("PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let deadline = Instant::now() + TIMEOUT;
    let attached = loop {
        let progs = keepalive_bpf::attached_programs(cg.path()).unwrap_or_default();
        if !progs.is_empty() {
            break progs;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = crate::util::wait(child, TIMEOUT);
            panic!("the script ended ({status}) before enforcing\n{out}");
        }
        assert!(Instant::now() < deadline, "not enforced within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!attached.is_empty());
    // A client in the pod cgroup gets the manifest's idle (2m).
    let server = listener("127.0.0.1").expect("a loopback listener");
    let port = server.local_addr().unwrap().port().to_string();
    assert_eq!(
        connected(&cg.client(&["connect", "127.0.0.1", &port])).idle,
        120
    );
    // The pod is deleted: SIGTERM to the container's process.
    // SAFETY: not needed; kill(1) by pid through std is not available, so
    // use the command.
    let pid = child.id().to_string();
    run(bare("kill").args(["-TERM", &pid]), TIMEOUT).assert_success();
    let out = crate::util::wait(child, TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(out.status.signal(), None);
    assert!(
        keepalive_bpf::attached_programs(cg.path())
            .unwrap()
            .is_empty(),
        "nothing attached after the pod is gone\n{out}"
    );
}
