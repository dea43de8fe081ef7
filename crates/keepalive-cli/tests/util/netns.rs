//! A network namespace guard.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{TIMEOUT, is_root, run, tool};

/// A network namespace named `ka-<tag>-<pid>-<n>`, with `lo` up, deleted
/// (with its links) when this is dropped.
pub struct Netns(String);

impl Netns {
    /// Err(why) when it cannot be made here: not root, no `ip`.
    pub fn new(tag: &str) -> Result<Netns, &'static str> {
        static N: AtomicUsize = AtomicUsize::new(0);
        if !is_root() {
            return Err("network namespaces need root");
        }
        if tool("ip").is_none() {
            return Err("ip (iproute2) is not installed");
        }
        let name = format!(
            "ka-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]), TIMEOUT).assert_success();
        let ns = Netns(name);
        run(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]),
            TIMEOUT,
        )
        .assert_success();
        Ok(ns)
    }

    /// Its name, as `ip netns` and `--netns` take it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Writes sysctl `key` (`net.ipv4.tcp_keepalive_time`) inside this
    /// namespace, from a thread that entered it, and checks that it took.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let ns = keepalive::host::NetNs::open(&self.0).unwrap_or_else(|e| panic!("{e}"));
        let read = ns
            .run(|| {
                std::fs::write(&path, value)?;
                std::fs::read_to_string(&path)
            })
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("{key}={value} in {}: {e}", self.0));
        assert_eq!(read.trim(), value, "{key} in {}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
