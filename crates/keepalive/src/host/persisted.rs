//! The keepalive sysctls as the next boot will set them: every setting of
//! `net.ipv4.tcp_keepalive_*` in the sysctl.d(5) files in the order they
//! are applied, which one wins for each key, and where a later file
//! overrides our drop-in ([`DROPIN`]) with another value.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::sysctl::SysctlKey;
use super::sysctl_d::{DROPIN, Setting, boot_order, parse};

/// A setting of our drop-in that a later file overrides with another value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The drop-in's setting.
    pub ours: Setting,
    /// The setting that wins at boot.
    pub winner: Setting,
}

/// The keepalive sysctls the configuration files set at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedState {
    /// The files in the order they are applied ([`boot_order`]).
    pub files: Vec<PathBuf>,
    /// Our drop-in, if it exists.
    pub dropin: Option<PathBuf>,
    /// Every keepalive setting, in the order applied.
    pub settings: Vec<Setting>,
    /// The last setting of each key: the value the key has after boot.
    pub winners: BTreeMap<SysctlKey, Setting>,
    /// Keys our drop-in sets that a later file sets to another value.
    pub conflicts: Vec<Conflict>,
}

/// Reads the sysctl configuration files under `/`.
pub fn persisted() -> io::Result<PersistedState> {
    persisted_in(Path::new("/"))
}

/// Reads the sysctl configuration files under `root`. A file that
/// disappears meanwhile (or a dangling link) is skipped; one that cannot
/// be read is an error naming it.
pub fn persisted_in(root: &Path) -> io::Result<PersistedState> {
    let files = boot_order(root);
    let ours = fs::canonicalize(root.join(DROPIN)).ok();
    let is_ours = |p: &Path| ours.is_some() && fs::canonicalize(p).ok() == ours;
    let mut settings = Vec::new();
    let mut dropin = None;
    let mut ours_settings: BTreeMap<SysctlKey, Setting> = BTreeMap::new();
    let mut winners: BTreeMap<SysctlKey, Setting> = BTreeMap::new();
    for file in &files {
        let text = match fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display())));
            }
        };
        let mine = is_ours(file);
        if mine && dropin.is_none() {
            dropin = Some(file.clone());
        }
        for s in parse(file, &text) {
            if mine {
                ours_settings.insert(s.key, s.clone());
            }
            winners.insert(s.key, s.clone());
            settings.push(s);
        }
    }
    let conflicts = ours_settings
        .into_values()
        .filter_map(|ours| {
            let winner = winners.get(&ours.key)?;
            (!is_ours(&winner.path) && !same_value(&winner.value, &ours.value)).then(|| Conflict {
                ours,
                winner: winner.clone(),
            })
        })
        .collect();
    Ok(PersistedState {
        files,
        dropin,
        settings,
        winners,
        conflicts,
    })
}

/// Equal as numbers when both are, else as text.
fn same_value(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn summary(settings: &[Setting]) -> Vec<(PathBuf, usize, SysctlKey, &str)> {
        settings
            .iter()
            .map(|s| (s.path.clone(), s.line, s.key, s.value.as_str()))
            .collect()
    }

    #[test]
    fn nothing_configured() {
        let dir = tempfile::tempdir().unwrap();
        let got = persisted_in(dir.path()).unwrap();
        assert_eq!(
            got,
            PersistedState {
                files: vec![],
                dropin: None,
                settings: vec![],
                winners: BTreeMap::new(),
                conflicts: vec![],
            }
        );
    }

    #[test]
    fn order_winners_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r.join("usr/lib/sysctl.d/50-default.conf"),
            "net.ipv4.tcp_keepalive_time = 7200\n",
        );
        write(
            r.join(DROPIN),
            "net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_intvl = 60\n\
             net.ipv4.tcp_keepalive_probes = 5\n",
        );
        write(
            r.join("etc/sysctl.d/99-late.conf"),
            "net.ipv4.tcp_keepalive_time = 300\nnet.ipv4.tcp_keepalive_intvl = 060\n",
        );
        let got = persisted_in(r).unwrap();
        let late = r.join("etc/sysctl.d/99-late.conf");
        let ours = r.join(DROPIN);
        assert_eq!(got.dropin, Some(ours.clone()));
        assert_eq!(
            summary(&got.settings),
            [
                (
                    r.join("usr/lib/sysctl.d/50-default.conf"),
                    1,
                    SysctlKey::Time,
                    "7200"
                ),
                (ours.clone(), 1, SysctlKey::Time, "600"),
                (ours.clone(), 2, SysctlKey::Intvl, "60"),
                (ours.clone(), 3, SysctlKey::Probes, "5"),
                (late.clone(), 1, SysctlKey::Time, "300"),
                (late.clone(), 2, SysctlKey::Intvl, "060"),
            ]
        );
        let winners: Vec<(SysctlKey, &str)> = got
            .winners
            .values()
            .map(|s| (s.key, s.value.as_str()))
            .collect();
        assert_eq!(
            winners,
            [
                (SysctlKey::Time, "300"),
                (SysctlKey::Intvl, "060"),
                (SysctlKey::Probes, "5"),
            ]
        );
        // 060 = 60: overridden, but to the same value, so no conflict.
        assert_eq!(got.conflicts.len(), 1, "{:?}", got.conflicts);
        let c = &got.conflicts[0];
        assert_eq!(
            (c.ours.key, c.ours.value.as_str()),
            (SysctlKey::Time, "600")
        );
        assert_eq!((c.winner.path.clone(), c.winner.line), (late, 1));
    }

    #[test]
    fn a_link_to_our_dropin_is_not_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r.join(DROPIN), "net.ipv4.tcp_keepalive_time = 600\n");
        std::os::unix::fs::symlink(r.join(DROPIN), r.join("etc/sysctl.d/99-link.conf")).unwrap();
        let got = persisted_in(r).unwrap();
        assert_eq!(got.settings.len(), 2);
        assert!(got.conflicts.is_empty(), "{:?}", got.conflicts);
    }

    #[test]
    fn without_our_dropin_nothing_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r.join("etc/sysctl.conf"),
            "net.ipv4.tcp_keepalive_probes=3\n",
        );
        let got = persisted_in(r).unwrap();
        assert_eq!(got.dropin, None);
        assert_eq!(got.winners[&SysctlKey::Probes].value, "3");
        assert!(got.conflicts.is_empty());
    }

    #[test]
    fn a_dangling_link_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("etc/sysctl.d")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", r.join("etc/sysctl.d/10-gone.conf")).unwrap();
        assert!(persisted_in(r).unwrap().settings.is_empty());
    }
}
