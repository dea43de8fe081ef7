//! Keeping the kernel defaults across reboots (HOWTO 3.2): a drop-in in
//! `/etc/sysctl.d/`, which `systemd-sysctl` and `sysctl --system` read at
//! boot, and a scan of the other configuration files for settings that
//! would override it. See sysctl.d(5).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::atomic_file::write_atomic;
use super::sysctl::SysctlKey;

/// Our drop-in, relative to the root.
pub const DROPIN: &str = "etc/sysctl.d/90-keepalive.conf";

/// The directories sysctl.d(5) reads, highest precedence first: a file name
/// found in an earlier directory masks the same name in later ones.
pub const SYSCTL_DIRS: [&str; 5] = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
];

/// Read last by `sysctl --system` (procps); Debian links
/// `/etc/sysctl.d/99-sysctl.conf` to it for systemd-sysctl.
pub const SYSCTL_CONF: &str = "etc/sysctl.conf";

const HEADER: &str = "# TCP keepalive defaults (TCP Keepalive HOWTO 3.2), read at boot by\n\
                      # systemd-sysctl and `sysctl --system`. Written by `keepalive sysctl`;\n\
                      # change it with `keepalive sysctl persist`.\n";

/// One `key = value` line of a sysctl configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The keepalive key it sets.
    pub key: SysctlKey,
    /// The value as written.
    pub value: String,
}

/// The keepalive settings of a sysctl.conf(5) text: `key = value` lines,
/// `#` and `;` comments, `/` or `.` separators, a leading `-`.
pub fn parse(path: &Path, text: &str) -> Vec<Setting> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (key, value) = parse_line(line)?;
            Some(Setting {
                path: path.to_owned(),
                line: i + 1,
                key,
                value,
            })
        })
        .collect()
}

/// One line's keepalive setting, if it is one.
fn parse_line(line: &str) -> Option<(SysctlKey, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    let key = SysctlKey::from_name(key.trim().trim_start_matches('-'))?;
    Some((key, value.trim().to_owned()))
}

/// The configuration files in the order they are applied at boot (later
/// ones win): sysctl.d files sorted by name, each name taken from the
/// highest-precedence directory that has it, then `/etc/sysctl.conf`.
pub fn boot_order(root: &Path) -> Vec<PathBuf> {
    let mut by_name: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
    for dir in SYSCTL_DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if Path::new(&name).extension().is_some_and(|e| e == "conf") {
                by_name.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    let mut files: Vec<PathBuf> = by_name.into_values().collect();
    let conf = root.join(SYSCTL_CONF);
    if conf.is_file() {
        files.push(conf);
    }
    files
}

/// Settings of `keys` in files applied after our drop-in: they would
/// override it at boot. A symlink to our drop-in is not reported.
pub fn overrides(root: &Path, keys: &[SysctlKey]) -> Vec<Setting> {
    let ours = root.join(DROPIN);
    let same = |p: &Path| fs::canonicalize(p).ok() == fs::canonicalize(&ours).ok();
    let order = boot_order(root);
    let after = order.iter().position(|p| *p == ours).map_or(0, |i| i + 1);
    order[after..]
        .iter()
        .filter(|p| !same(p))
        .flat_map(|p| {
            fs::read_to_string(p)
                .map(|t| parse(p, &t))
                .unwrap_or_default()
        })
        .filter(|s| keys.contains(&s.key))
        .collect()
}

/// The drop-in's text with `values` set. From `existing` (the drop-in as
/// it is) the other keepalive keys keep their values, and every line that
/// is not ours (an admin's note, another key) is kept as it is.
pub fn render(existing: Option<&str>, values: &[(SysctlKey, u64)]) -> String {
    let existing = existing.unwrap_or_default();
    let mut merged: BTreeMap<SysctlKey, String> = existing.lines().filter_map(parse_line).collect();
    for (key, value) in values {
        merged.insert(*key, value.to_string());
    }
    let mut text = HEADER.to_owned();
    for line in existing.lines() {
        if parse_line(line).is_none() && !HEADER.lines().any(|h| h == line) {
            text += line;
            text += "\n";
        }
    }
    for (key, value) in merged {
        text += &format!("{key} = {value}\n");
    }
    text
}

/// What [`persist`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persisted {
    /// The drop-in's path.
    pub path: PathBuf,
    /// False when the file already said exactly this (nothing written).
    pub changed: bool,
    /// Later settings that override ours at boot.
    pub overridden_by: Vec<Setting>,
}

/// Why [`persist`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The root directory does not exist (or is not a directory): it is
    /// not created, since a mistyped `--root` would otherwise become a new
    /// tree nothing boots from. Nothing was written.
    #[error(
        "{}: no such directory; the root directory must exist (nothing was written)",
        root.display()
    )]
    MissingRoot {
        /// The root given.
        root: PathBuf,
    },
    /// The drop-in exists but cannot be read. Nothing was written.
    #[error("cannot read {}; nothing was written", path.display())]
    Read {
        /// The drop-in.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the drop-in failed (the error names the file); it is left
    /// as it was.
    #[error(transparent)]
    Write(io::Error),
}

/// Writes `values` to the drop-in under `root` (atomically, 0644; other
/// keepalive keys it held are kept), unless it already says exactly that,
/// then scans for later settings of the same keys.
///
/// `root` must be an existing directory ([`PersistError::MissingRoot`]);
/// the directories below it (`etc/sysctl.d`) are created as needed.
///
/// ```
/// use keepalive::host::{persist, SysctlKey};
/// let root = tempfile::tempdir()?;
/// let done = persist(root.path(), &[(SysctlKey::Time, 600)])?;
/// assert!(done.changed);
/// assert!(std::fs::read_to_string(&done.path)?.contains("net.ipv4.tcp_keepalive_time = 600\n"));
/// assert!(!persist(root.path(), &[(SysctlKey::Time, 600)])?.changed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn persist(root: &Path, values: &[(SysctlKey, u64)]) -> Result<Persisted, PersistError> {
    if !root.is_dir() {
        return Err(PersistError::MissingRoot {
            root: root.to_owned(),
        });
    }
    let path = root.join(DROPIN);
    let existing = match fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let text = render(existing.as_deref(), values);
    let changed = existing.as_deref() != Some(text.as_str());
    if changed {
        write_atomic(&path, text.as_bytes(), 0o644).map_err(PersistError::Write)?;
    }
    let keys: Vec<SysctlKey> = values.iter().map(|(k, _)| *k).collect();
    Ok(Persisted {
        path,
        changed,
        overridden_by: overrides(root, &keys),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use tempfile::TempDir;

    fn root() -> TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write(path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn parse_syntax() {
        let text = "# c\n; c\nnet.ipv4.tcp_keepalive_time=600\n -net/ipv4/tcp_keepalive_probes = 5 \nkernel.x = 1\n";
        let got: Vec<(usize, SysctlKey, String)> = parse(Path::new("f"), text)
            .into_iter()
            .map(|s| (s.line, s.key, s.value))
            .collect();
        assert_eq!(
            got,
            [
                (3, SysctlKey::Time, "600".to_owned()),
                (4, SysctlKey::Probes, "5".to_owned())
            ]
        );
    }

    #[test]
    fn render_exact_and_merged() {
        let first = render(None, &[(SysctlKey::Time, 600), (SysctlKey::Probes, 20)]);
        assert_eq!(
            first,
            format!(
                "{HEADER}net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_probes = 20\n"
            )
        );
        let second = render(
            Some(&first),
            &[(SysctlKey::Intvl, 60), (SysctlKey::Time, 300)],
        );
        assert_eq!(
            second,
            format!(
                "{HEADER}net.ipv4.tcp_keepalive_time = 300\nnet.ipv4.tcp_keepalive_intvl = 60\n\
                 net.ipv4.tcp_keepalive_probes = 20\n"
            )
        );
    }

    #[test]
    fn render_keeps_lines_that_are_not_ours() {
        let existing = format!(
            "{HEADER}# my note\nnet.ipv4.tcp_fin_timeout = 30\nnet.ipv4.tcp_keepalive_time = 1\n"
        );
        let text = render(Some(&existing), &[(SysctlKey::Probes, 5)]);
        assert_eq!(
            text,
            format!(
                "{HEADER}# my note\nnet.ipv4.tcp_fin_timeout = 30\n\
                 net.ipv4.tcp_keepalive_time = 1\nnet.ipv4.tcp_keepalive_probes = 5\n"
            )
        );
        assert_eq!(
            render(Some(&text), &[(SysctlKey::Probes, 5)]),
            text,
            "stable"
        );
    }

    #[test]
    fn boot_order_masks_and_sorts() {
        let dir = root();
        let r = dir.path();
        write(r.join("usr/lib/sysctl.d/50-default.conf"), "");
        write(r.join("usr/lib/sysctl.d/95-vendor.conf"), "");
        write(r.join("etc/sysctl.d/95-vendor.conf"), "");
        write(r.join("run/sysctl.d/10-run.conf"), "");
        write(r.join("etc/sysctl.d/README"), "");
        write(r.join("etc/sysctl.conf"), "");
        let got = boot_order(r);
        assert_eq!(
            got,
            [
                r.join("run/sysctl.d/10-run.conf"),
                r.join("usr/lib/sysctl.d/50-default.conf"),
                r.join("etc/sysctl.d/95-vendor.conf"),
                r.join("etc/sysctl.conf"),
            ]
        );
    }

    #[test]
    fn later_settings_are_reported_with_file_and_line() {
        let dir = root();
        let r = dir.path();
        write(
            r.join("etc/sysctl.d/10-early.conf"),
            "net.ipv4.tcp_keepalive_time = 1\n",
        );
        write(
            r.join("usr/lib/sysctl.d/99-late.conf"),
            "# x\nnet.ipv4.tcp_keepalive_time = 7200\nnet.ipv4.tcp_keepalive_intvl = 5\n",
        );
        write(
            r.join("etc/sysctl.conf"),
            "net.ipv4.tcp_keepalive_probes=3\n",
        );
        let done = persist(r, &[(SysctlKey::Time, 600), (SysctlKey::Probes, 20)]).unwrap();
        let got: Vec<(PathBuf, usize, SysctlKey)> = done
            .overridden_by
            .into_iter()
            .map(|s| (s.path, s.line, s.key))
            .collect();
        assert_eq!(
            got,
            [
                (r.join("usr/lib/sysctl.d/99-late.conf"), 2, SysctlKey::Time),
                (r.join("etc/sysctl.conf"), 1, SysctlKey::Probes),
            ]
        );
    }

    #[test]
    fn persist_is_idempotent_and_keeps_mtime() {
        let dir = root();
        let r = dir.path();
        let first = persist(r, &[(SysctlKey::Time, 600)]).unwrap();
        let mtime = fs::metadata(&first.path).unwrap().modified().unwrap();
        let second = persist(r, &[(SysctlKey::Time, 600)]).unwrap();
        let mtime2 = fs::metadata(&first.path).unwrap().modified().unwrap();
        assert!(first.changed);
        assert!(!second.changed);
        assert_eq!(mtime, mtime2);
    }

    #[test]
    fn a_missing_root_is_refused_and_not_created() {
        let dir = root();
        let missing = dir.path().join("no-such-root");
        let err = persist(&missing, &[(SysctlKey::Time, 600)]).unwrap_err();
        assert!(
            matches!(&err, PersistError::MissingRoot { root } if *root == missing),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no such directory; the root directory must exist (nothing was written)",
                missing.display()
            )
        );
        assert!(!missing.exists(), "created");
    }

    #[test]
    fn a_file_as_root_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = persist(file.path(), &[(SysctlKey::Time, 600)]).unwrap_err();
        assert!(matches!(err, PersistError::MissingRoot { .. }), "{err:?}");
    }

    #[test]
    fn an_unreadable_dropin_is_named() {
        let dir = root();
        // A directory where the drop-in should be: reading it fails.
        fs::create_dir_all(dir.path().join(DROPIN)).unwrap();
        let err = persist(dir.path(), &[(SysctlKey::Time, 600)]).unwrap_err();
        assert!(
            matches!(&err, PersistError::Read { path, .. } if *path == dir.path().join(DROPIN)),
            "{err:?}"
        );
    }
}
