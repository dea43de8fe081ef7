//! What an enforcement was made for: the cgroup path it was asked for, the
//! systemd unit when it was asked by unit, and whether it is persisted
//! (re-made at every start of the unit). Recorded beside the pins, so that
//! `--status` can say so after the cgroup is gone and `--remove` of that
//! path or unit finds the pins.
//!
//! bpffs has no regular files (its directories have no `create`
//! operation) and refuses names with a dot, but it has symbolic links: the
//! record is the *target* of the symlink `origin` in the pin directory, a
//! few `key value` lines (at most `PATH_MAX - 1` bytes). It is replaced
//! atomically: a new symlink under a temporary name, then rename(2) over
//! the old one, so a reader sees the old record or the new one, never half.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The first line of a record; a record without it is not ours.
const MAGIC: &str = "keepalive-enforcement 1";

/// The longest symlink target the kernel takes (`PATH_MAX`, with its NUL).
pub(crate) const MAX_RECORD: usize = 4095;

/// What an enforcement was made for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The cgroup directory it was asked for (absolute, normalised).
    pub path: PathBuf,
    /// The systemd unit (`app.service`, `system.slice`), when it was asked
    /// for by unit.
    pub unit: Option<String>,
    /// Whether systemd re-enforces it at every start of the unit (a
    /// drop-in, or our unit for a slice).
    pub persisted: bool,
}

impl Origin {
    /// An enforcement asked for a cgroup path.
    pub fn path(cgroup: &Path) -> Origin {
        Origin {
            path: normalise(cgroup),
            unit: None,
            persisted: false,
        }
    }

    /// An enforcement asked for `unit`, whose cgroup is `cgroup`.
    pub fn unit(unit: &str, cgroup: &Path, persisted: bool) -> Origin {
        Origin {
            path: normalise(cgroup),
            unit: Some(unit.to_owned()),
            persisted,
        }
    }

    /// The record's text.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("{MAGIC}\npath {}\n", escape(&self.path.to_string_lossy()));
        if let Some(unit) = &self.unit {
            let _ = writeln!(text, "unit {}", escape(unit));
        }
        let _ = writeln!(
            text,
            "persisted {}",
            if self.persisted { "yes" } else { "no" }
        );
        text
    }

    /// A record's text; `None` when it is not one (unknown keys are
    /// skipped, so that a later version may add some).
    pub(crate) fn parse(text: &str) -> Option<Origin> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut origin = Origin::default();
        let mut has_path = false;
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "path" => {
                    origin.path = PathBuf::from(unescape(value)?);
                    has_path = true;
                }
                "unit" => origin.unit = Some(unescape(value)?),
                "persisted" => origin.persisted = value == "yes",
                _ => {}
            }
        }
        has_path.then_some(origin)
    }

    /// True when this record was made for `path` or for `unit`.
    pub(crate) fn matches(&self, path: Option<&Path>, unit: Option<&str>) -> bool {
        path.is_some_and(|p| normalise(p) == self.path)
            || unit.is_some_and(|u| self.unit.as_deref() == Some(u))
    }
}

/// `path` made absolute and free of `.`, `..` and symlinks as far as it
/// exists: the path of a removed cgroup compares equal to what was
/// recorded while it existed.
pub(crate) fn normalise(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => normalise(parent).join(name),
        _ => absolute,
    }
}

/// One value on one line: `\` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_record_round_trips() {
        let o = Origin {
            path: PathBuf::from("/sys/fs/cgroup/system.slice/app.service"),
            unit: Some("app.service".to_owned()),
            persisted: true,
        };
        assert_eq!(
            o.to_text(),
            "keepalive-enforcement 1\npath /sys/fs/cgroup/system.slice/app.service\n\
             unit app.service\npersisted yes\n"
        );
        assert_eq!(Origin::parse(&o.to_text()), Some(o));
    }

    #[test]
    fn path_record_round_trips_with_odd_characters() {
        let o = Origin {
            path: PathBuf::from("/sys/fs/cgroup/a b\\c\nd"),
            unit: None,
            persisted: false,
        };
        assert_eq!(
            o.to_text(),
            "keepalive-enforcement 1\npath /sys/fs/cgroup/a b\\\\c\\nd\npersisted no\n"
        );
        assert_eq!(Origin::parse(&o.to_text()), Some(o));
    }

    #[test]
    fn foreign_or_broken_records_are_refused() {
        assert_eq!(Origin::parse("hello\npath /x\n"), None);
        assert_eq!(
            Origin::parse("keepalive-enforcement 1\nunit a.service\n"),
            None
        );
        assert_eq!(Origin::parse("keepalive-enforcement 1\npath /x\\q\n"), None);
        let later = Origin::parse("keepalive-enforcement 1\npath /x\nfuture 1\n").unwrap();
        assert_eq!(later.path, Path::new("/x"));
    }

    #[test]
    fn a_removed_directory_normalises_like_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("cg");
        std::fs::create_dir(&cg).unwrap();
        let live = normalise(&cg.join("../cg/."));
        std::fs::remove_dir(&cg).unwrap();
        assert_eq!(normalise(&cg), live);
        assert!(Origin::path(&live).matches(Some(&cg), None));
        assert!(!Origin::path(&live).matches(Some(dir.path()), Some("cg")));
    }
}
