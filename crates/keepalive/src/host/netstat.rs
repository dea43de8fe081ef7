//! The kernel's TCP counters in `/proc/net/netstat`: `TcpExt: TCPKeepAlive`
//! (keepalive probes sent) and `TCPAbortOnTimeout` (connections the kernel
//! gave up on: keepalive, retransmission or user timeout), per network
//! namespace.
//!
//! The file holds pairs of lines per group, names then values, both
//! starting with the group's prefix:
//!
//! ```text
//! TcpExt: SyncookiesSent ... TCPKeepAlive ...
//! TcpExt: 0 ... 20461 ...
//! ```
//!
//! Counters come and go between kernel versions, so every one is looked up
//! by name and a missing one is `None`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

/// The netstat file of the calling thread's namespace, relative to `/`.
/// (`/proc/net` is the namespace of the process's main thread, which
/// [`NetNs::run`](super::NetNs::run) does not move.)
pub const NETSTAT: &str = "proc/thread-self/net/netstat";

/// The counters of `/proc/net/netstat`, by group (`TcpExt`, `IpExt`,
/// `MPTcpExt`) and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netstat {
    groups: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Netstat {
    /// One counter, e.g. `get("TcpExt", "TCPKeepAlive")`; `None` when this
    /// kernel does not have it.
    pub fn get(&self, group: &str, name: &str) -> Option<u64> {
        self.groups.get(group)?.get(name).copied()
    }

    /// The counters of one group, by name.
    pub fn group(&self, group: &str) -> Option<&BTreeMap<String, u64>> {
        self.groups.get(group)
    }

    /// The keepalive-related counters.
    pub fn tcp_ext_counters(&self) -> TcpExtCounters {
        TcpExtCounters {
            keepalive_probes: self.get("TcpExt", "TCPKeepAlive"),
            abort_on_timeout: self.get("TcpExt", "TCPAbortOnTimeout"),
        }
    }
}

/// The counters `keepalive metrics` reports; `None` for one this kernel
/// does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpExtCounters {
    /// `TcpExt: TCPKeepAlive`: keepalive probes sent.
    pub keepalive_probes: Option<u64>,
    /// `TcpExt: TCPAbortOnTimeout`: connections reset because a keepalive,
    /// retransmission or `TCP_USER_TIMEOUT` timer ran out.
    pub abort_on_timeout: Option<u64>,
}

/// Why a netstat text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind} (expected pairs of lines \"Group: Name ...\" and \"Group: 1 ...\")")]
pub struct NetstatError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: NetstatErrorKind,
}

/// What is wrong with a netstat line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetstatErrorKind {
    /// A line without `Group:`.
    #[error("no \"Group:\" prefix")]
    NoPrefix,
    /// A line of names with no line of values after it.
    #[error("names without values")]
    MissingValues,
    /// The values line belongs to another group.
    #[error("values of {found:?} after names of {expected:?}")]
    GroupMismatch {
        /// The group the names line named.
        expected: String,
        /// The group of the next line.
        found: String,
    },
    /// Not as many values as names.
    #[error("{names} names but {values} values")]
    CountMismatch {
        /// How many names.
        names: usize,
        /// How many values.
        values: usize,
    },
    /// A value that is not an unsigned number.
    #[error("{value:?} is not a counter")]
    BadValue {
        /// The value.
        value: String,
    },
}

/// Parses the text of `/proc/net/netstat` (or `/proc/net/snmp`, which has
/// the same shape).
pub fn parse_netstat(text: &str) -> Result<Netstat, NetstatError> {
    let mut groups: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((line, names)) = lines.next() {
        let err = |line, kind| NetstatError { line, kind };
        let (group, names) = split_prefix(names).ok_or(err(line, NetstatErrorKind::NoPrefix))?;
        let (vline, values) = lines
            .next()
            .ok_or(err(line, NetstatErrorKind::MissingValues))?;
        let (vgroup, values) =
            split_prefix(values).ok_or(err(vline, NetstatErrorKind::NoPrefix))?;
        if vgroup != group {
            return Err(err(
                vline,
                NetstatErrorKind::GroupMismatch {
                    expected: group.to_owned(),
                    found: vgroup.to_owned(),
                },
            ));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(err(
                vline,
                NetstatErrorKind::CountMismatch {
                    names: names.len(),
                    values: values.len(),
                },
            ));
        }
        let counters = groups.entry(group.to_owned()).or_default();
        for (name, value) in names.into_iter().zip(values) {
            let value = value.parse::<u64>().map_err(|_| {
                err(
                    vline,
                    NetstatErrorKind::BadValue {
                        value: value.to_owned(),
                    },
                )
            })?;
            counters.insert(name.to_owned(), value);
        }
    }
    Ok(Netstat { groups })
}

/// `"TcpExt: a b"` -> `("TcpExt", " a b")`.
fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let (group, rest) = line.split_once(':')?;
    let group = group.trim();
    (!group.is_empty() && !group.contains(char::is_whitespace)).then_some((group, rest))
}

/// Reads the counters of the calling thread's network namespace.
pub fn netstat() -> io::Result<Netstat> {
    netstat_in(Path::new("/"))
}

/// The keepalive-related counters of the calling thread's network
/// namespace: [`netstat`], then [`Netstat::tcp_ext_counters`].
pub fn tcp_ext_counters() -> io::Result<TcpExtCounters> {
    tcp_ext_counters_in(Path::new("/"))
}

/// [`tcp_ext_counters`] under `root`.
pub fn tcp_ext_counters_in(root: &Path) -> io::Result<TcpExtCounters> {
    Ok(netstat_in(root)?.tcp_ext_counters())
}

/// [`netstat`] under `root` (tests): reads `root/`[`NETSTAT`]. Errors name
/// the file.
pub fn netstat_in(root: &Path) -> io::Result<Netstat> {
    let path = root.join(NETSTAT);
    let text = fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    parse_netstat(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cat /proc/net/netstat` on Linux 6.18, after 4 keepalive probes.
    const LINUX_6_18: &str = include_str!("testdata/netstat-6.18.txt");

    #[test]
    fn fixture_from_linux_6_18() {
        let n = parse_netstat(LINUX_6_18).unwrap();
        assert_eq!(
            n.tcp_ext_counters(),
            TcpExtCounters {
                keepalive_probes: Some(4),
                abort_on_timeout: Some(0),
            }
        );
        assert_eq!(n.get("TcpExt", "TCPOrigDataSent"), Some(13870));
        assert_eq!(n.get("TcpExt", "TCPPureAcks"), Some(13820));
        assert_eq!(n.get("IpExt", "InOctets"), Some(88_683_810));
        assert_eq!(n.group("MPTcpExt").map(BTreeMap::len), Some(76));
    }

    #[test]
    fn missing_counters_are_none() {
        // An older kernel: no TCPKeepAlive.
        let n = parse_netstat("TcpExt: SyncookiesSent TCPAbortOnTimeout\nTcpExt: 0 7\n").unwrap();
        assert_eq!(
            n.tcp_ext_counters(),
            TcpExtCounters {
                keepalive_probes: None,
                abort_on_timeout: Some(7),
            }
        );
        assert_eq!(
            parse_netstat("").unwrap().tcp_ext_counters(),
            TcpExtCounters::default()
        );
    }

    #[test]
    fn names_without_values() {
        let err = parse_netstat("TcpExt: A B\n").unwrap_err();
        assert_eq!(
            err,
            NetstatError {
                line: 1,
                kind: NetstatErrorKind::MissingValues
            }
        );
    }

    #[test]
    fn values_of_another_group() {
        let err = parse_netstat("TcpExt: A\nIpExt: 1\n").unwrap_err();
        assert_eq!(
            err.kind,
            NetstatErrorKind::GroupMismatch {
                expected: "TcpExt".to_owned(),
                found: "IpExt".to_owned()
            }
        );
        assert_eq!(err.line, 2);
    }

    #[test]
    fn count_mismatch() {
        let err = parse_netstat("TcpExt: A B\nTcpExt: 1\n").unwrap_err();
        assert_eq!(
            err.kind,
            NetstatErrorKind::CountMismatch {
                names: 2,
                values: 1
            }
        );
    }

    #[test]
    fn bad_value() {
        let err = parse_netstat("TcpExt: A\nTcpExt: -1\n").unwrap_err();
        assert_eq!(
            err.kind,
            NetstatErrorKind::BadValue {
                value: "-1".to_owned()
            }
        );
        assert!(
            err.to_string()
                .starts_with("line 2: \"-1\" is not a counter"),
            "{err}"
        );
    }

    #[test]
    fn no_prefix() {
        let err = parse_netstat("garbage\n").unwrap_err();
        assert_eq!(err.kind, NetstatErrorKind::NoPrefix);
    }

    #[test]
    fn read_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NETSTAT);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, LINUX_6_18).unwrap();
        assert_eq!(
            tcp_ext_counters_in(dir.path()).unwrap(),
            TcpExtCounters {
                keepalive_probes: Some(4),
                abort_on_timeout: Some(0),
            }
        );
        let err = netstat_in(&dir.path().join("none")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("netstat"), "{err}");
    }

    #[test]
    fn this_machine() {
        // The real file parses and has the counters (Linux 3.x+ has both).
        let n = netstat().unwrap();
        assert!(n.tcp_ext_counters().abort_on_timeout.is_some(), "{n:?}");
    }
}
