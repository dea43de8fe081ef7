//! Setting the kernel defaults, `net.ipv4.tcp_keepalive_{time,intvl,probes}`
//! (HOWTO 3.1), all or nothing. Reading them is
//! [`kernel_defaults`](crate::kernel_defaults).
//!
//! They are per network namespace; run these functions inside one with
//! [`NetNs::run`](super::NetNs::run).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use keepalive_core::{KernelDefaults, ProbeCount, Seconds};

use rustix::io::Errno;

use crate::sysctl::{proc_path, read_value};

/// One of the three keepalive sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SysctlKey {
    /// `net.ipv4.tcp_keepalive_time`: idle seconds before the first probe.
    Time,
    /// `net.ipv4.tcp_keepalive_intvl`: seconds between probes.
    Intvl,
    /// `net.ipv4.tcp_keepalive_probes`: unanswered probes before the drop.
    Probes,
}

impl SysctlKey {
    /// The three, in the HOWTO's order.
    pub const ALL: [SysctlKey; 3] = [SysctlKey::Time, SysctlKey::Intvl, SysctlKey::Probes];

    /// The sysctl(8) name, e.g. `net.ipv4.tcp_keepalive_time`.
    pub const fn name(self) -> &'static str {
        match self {
            SysctlKey::Time => "net.ipv4.tcp_keepalive_time",
            SysctlKey::Intvl => "net.ipv4.tcp_keepalive_intvl",
            SysctlKey::Probes => "net.ipv4.tcp_keepalive_probes",
        }
    }

    /// The procfs path relative to `/`, e.g. `proc/sys/net/ipv4/tcp_keepalive_time`.
    pub fn proc_path(self) -> &'static str {
        proc_path(self as usize)
    }

    /// The key's value in `d`.
    pub const fn get(self, d: &KernelDefaults) -> u64 {
        match self {
            SysctlKey::Time => d.idle,
            SysctlKey::Intvl => d.interval,
            SysctlKey::Probes => d.count,
        }
    }

    /// Finds a key by its sysctl name, with `.` or `/` as separator.
    ///
    /// ```
    /// use keepalive::host::SysctlKey;
    /// assert_eq!(SysctlKey::from_name("net/ipv4/tcp_keepalive_intvl"), Some(SysctlKey::Intvl));
    /// assert_eq!(SysctlKey::from_name("net.ipv4.tcp_fin_timeout"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<SysctlKey> {
        let name = name.replace('/', ".");
        SysctlKey::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// New kernel defaults; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultsChange {
    /// `net.ipv4.tcp_keepalive_time`.
    pub idle: Option<Seconds>,
    /// `net.ipv4.tcp_keepalive_intvl`.
    pub interval: Option<Seconds>,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub count: Option<ProbeCount>,
}

impl DefaultsChange {
    /// The values given, in key order.
    pub fn values(&self) -> Vec<(SysctlKey, u64)> {
        let mut out = Vec::new();
        if let Some(v) = self.idle {
            out.push((SysctlKey::Time, u64::from(v.get())));
        }
        if let Some(v) = self.interval {
            out.push((SysctlKey::Intvl, u64::from(v.get())));
        }
        if let Some(v) = self.count {
            out.push((SysctlKey::Probes, u64::from(v.get())));
        }
        out
    }

    /// `current` with this change applied.
    pub fn applied_to(&self, current: KernelDefaults) -> KernelDefaults {
        let mut d = current;
        for (key, v) in self.values() {
            match key {
                SysctlKey::Time => d.idle = v,
                SysctlKey::Intvl => d.interval = v,
                SysctlKey::Probes => d.count = v,
            }
        }
        d
    }
}

/// What [`set_kernel_defaults_with`] did to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The key.
    pub key: SysctlKey,
    /// Its value before.
    pub old: u64,
    /// Its value now (equal to `old` when nothing was written).
    pub new: u64,
}

/// Why [`set_kernel_defaults_with`] failed (nothing changed, unless it says otherwise).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// Reading the current values failed.
    #[error("cannot read the current values")]
    Read(#[source] io::Error),
    /// The files cannot be opened for writing: not root, or no
    /// CAP_NET_ADMIN over the network namespace.
    #[error(
        "writing {key} needs root (or CAP_NET_ADMIN in its network namespace); \
         nothing was changed"
    )]
    PermissionDenied {
        /// The first key refused.
        key: SysctlKey,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// `/proc/sys` is mounted read-only, as in most containers.
    #[error(
        "{key} cannot be written here: /proc/sys is read-only (a container?); set it from \
         the host with `keepalive sysctl set --pid PID` or `--netns`; nothing was changed"
    )]
    ReadOnly {
        /// The first key refused.
        key: SysctlKey,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The file cannot be opened for writing for another reason (missing:
    /// no IPv4 in this kernel?).
    #[error("cannot open {key} for writing; nothing was changed")]
    NotWritable {
        /// The first key refused.
        key: SysctlKey,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// A write failed; the keys written before it were restored.
    #[error("writing {key} = {value} failed; the values written before it were restored")]
    Write {
        /// The key whose write failed.
        key: SysctlKey,
        /// The value refused.
        value: u64,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// A write failed and so did restoring an earlier one: the namespace is
    /// left half changed. Never expected; reported in full.
    #[error(
        "writing {key} = {value} failed ({source}) and restoring {restore_key} failed too \
         ({restore_error}): check the values with `keepalive sysctl`"
    )]
    RollbackFailed {
        /// The key whose write failed.
        key: SysctlKey,
        /// The value refused.
        value: u64,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// The key that could not be restored.
        restore_key: SysctlKey,
        /// Why.
        restore_error: io::Error,
    },
}

/// Where the sysctl values live: `/proc/sys` under a root directory.
pub trait SysctlStore {
    /// Reads one value.
    fn read(&mut self, key: SysctlKey) -> io::Result<u64>;
    /// Checks, before any write, that `key` can be written.
    fn check_writable(&mut self, key: SysctlKey) -> io::Result<()>;
    /// Writes one value.
    fn write(&mut self, key: SysctlKey, value: u64) -> io::Result<()>;
}

/// The procfs files under `root` (`/` for the live values).
#[derive(Clone, Debug)]
pub struct ProcStore {
    root: PathBuf,
}

impl ProcStore {
    /// The files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> ProcStore {
        ProcStore { root: root.into() }
    }

    fn path(&self, key: SysctlKey) -> PathBuf {
        self.root.join(key.proc_path())
    }
}

impl SysctlStore for ProcStore {
    fn read(&mut self, key: SysctlKey) -> io::Result<u64> {
        read_value(&self.path(key))
    }

    fn check_writable(&mut self, key: SysctlKey) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(self.path(key))
            .map(drop)
    }

    fn write(&mut self, key: SysctlKey, value: u64) -> io::Result<()> {
        // One write(2) of the whole value, as sysctl(8) does.
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(false)
            .open(self.path(key))?;
        f.write_all(format!("{value}\n").as_bytes())
    }
}

fn read_defaults(store: &mut impl SysctlStore) -> io::Result<KernelDefaults> {
    Ok(KernelDefaults {
        idle: store.read(SysctlKey::Time)?,
        interval: store.read(SysctlKey::Intvl)?,
        count: store.read(SysctlKey::Probes)?,
    })
}

/// Sets the kernel defaults of the current network namespace (the live
/// values under `/proc`): see [`set_kernel_defaults_with`].
pub fn set_kernel_defaults(change: &DefaultsChange) -> Result<Vec<Written>, SetError> {
    set_kernel_defaults_with(&mut ProcStore::new("/"), change)
}

/// Sets the kernel defaults all or nothing: reads the current values,
/// checks every key to change can be written before writing any, writes
/// only the values that differ, and when a write fails restores the ones
/// already written. Returns every key of `change`, old and new.
pub fn set_kernel_defaults_with(
    store: &mut impl SysctlStore,
    change: &DefaultsChange,
) -> Result<Vec<Written>, SetError> {
    let current = read_defaults(store).map_err(SetError::Read)?;
    let plan: Vec<Written> = change
        .values()
        .into_iter()
        .map(|(key, new)| Written {
            key,
            old: key.get(&current),
            new,
        })
        .collect();
    let writes: Vec<&Written> = plan.iter().filter(|w| w.old != w.new).collect();
    for w in &writes {
        store.check_writable(w.key).map_err(|source| {
            let key = w.key;
            match Errno::from_io_error(&source) {
                Some(Errno::ACCESS | Errno::PERM) => SetError::PermissionDenied { key, source },
                Some(Errno::ROFS) => SetError::ReadOnly { key, source },
                _ => SetError::NotWritable { key, source },
            }
        })?;
    }
    for (i, w) in writes.iter().enumerate() {
        if let Err(source) = store.write(w.key, w.new) {
            for done in writes[..i].iter().rev() {
                if let Err(restore_error) = store.write(done.key, done.old) {
                    return Err(SetError::RollbackFailed {
                        key: w.key,
                        value: w.new,
                        source,
                        restore_key: done.key,
                        restore_error,
                    });
                }
            }
            return Err(SetError::Write {
                key: w.key,
                value: w.new,
                source,
            });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kernel_defaults_in;
    use crate::sysctl::tests::proc_root;

    #[test]
    fn set_writes_only_what_changes() {
        let dir = proc_root(["7200\n", "75\n", "9\n"]);
        let mut store = ProcStore::new(dir.path());
        let change = DefaultsChange {
            idle: Some(Seconds::new(600).unwrap()),
            interval: Some(Seconds::new(75).unwrap()),
            ..Default::default()
        };
        let intvl = dir.path().join(SysctlKey::Intvl.proc_path());
        let before = std::fs::metadata(&intvl).unwrap().modified().unwrap();
        let written = set_kernel_defaults_with(&mut store, &change).unwrap();
        let after = kernel_defaults_in(dir.path()).unwrap();
        let untouched = std::fs::metadata(&intvl).unwrap().modified().unwrap() == before;
        assert_eq!(
            written,
            [
                Written {
                    key: SysctlKey::Time,
                    old: 7200,
                    new: 600
                },
                Written {
                    key: SysctlKey::Intvl,
                    old: 75,
                    new: 75
                }
            ]
        );
        assert_eq!(
            after,
            KernelDefaults {
                idle: 600,
                interval: 75,
                count: 9
            }
        );
        assert!(untouched, "an unchanged value is not written");
    }

    /// A store whose n-th write fails.
    struct Failing {
        values: BTreeMap<SysctlKey, u64>,
        writes: usize,
        fail_at: usize,
        deny: Option<(SysctlKey, Errno)>,
    }

    impl SysctlStore for Failing {
        fn read(&mut self, key: SysctlKey) -> io::Result<u64> {
            Ok(self.values[&key])
        }
        fn check_writable(&mut self, key: SysctlKey) -> io::Result<()> {
            match self.deny {
                Some((denied, errno)) if denied == key => Err(io::Error::from(errno)),
                _ => Ok(()),
            }?;
            Ok(())
        }
        fn write(&mut self, key: SysctlKey, value: u64) -> io::Result<()> {
            self.writes += 1;
            if self.writes == self.fail_at {
                return Err(Errno::INVAL.into());
            }
            self.values.insert(key, value);
            Ok(())
        }
    }

    fn failing(fail_at: usize, deny: Option<(SysctlKey, Errno)>) -> Failing {
        Failing {
            values: SysctlKey::ALL.into_iter().zip([7200, 75, 9]).collect(),
            writes: 0,
            fail_at,
            deny,
        }
    }

    fn all_three() -> DefaultsChange {
        DefaultsChange {
            idle: Some(Seconds::new(600).unwrap()),
            interval: Some(Seconds::new(60).unwrap()),
            count: Some(ProbeCount::new(20).unwrap()),
        }
    }

    #[test]
    fn second_write_failing_restores_the_first() {
        let mut store = failing(2, None);
        let err = set_kernel_defaults_with(&mut store, &all_three()).unwrap_err();
        assert!(
            matches!(
                err,
                SetError::Write {
                    key: SysctlKey::Intvl,
                    value: 60,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.values[&SysctlKey::Time], 7200, "restored");
        assert_eq!(store.values[&SysctlKey::Probes], 9, "never written");
        assert_eq!(store.writes, 3, "two writes and one restore");
    }

    #[test]
    fn permission_denied_writes_nothing() {
        let mut store = failing(usize::MAX, Some((SysctlKey::Probes, Errno::ACCESS)));
        let err = set_kernel_defaults_with(&mut store, &all_three()).unwrap_err();
        assert!(matches!(
            err,
            SetError::PermissionDenied {
                key: SysctlKey::Probes,
                ..
            }
        ));
        assert!(
            err.to_string().contains("needs root (or CAP_NET_ADMIN"),
            "{err}"
        );
        assert_eq!(store.writes, 0);
    }

    #[test]
    fn read_only_proc_sys_is_named() {
        let mut store = failing(usize::MAX, Some((SysctlKey::Time, Errno::ROFS)));
        let err = set_kernel_defaults_with(&mut store, &all_three()).unwrap_err();
        assert!(
            matches!(
                err,
                SetError::ReadOnly {
                    key: SysctlKey::Time,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("/proc/sys is read-only"), "{err}");
        assert_eq!(store.writes, 0);
    }
}
