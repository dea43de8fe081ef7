//! What is in place on this host: the global preload (and whether its
//! library loads), the enforcements, the persisted sysctls. Read by
//! `doctor` and `status`; what cannot be read is `None`, never a failure.

use std::path::Path;

use keepalive::host;
use keepalive_diag::InPlace;

use crate::human;

/// What is in place on the host: the global preload, the enforcements,
/// the persisted sysctls. What cannot be read is `None` (said so in the
/// header, never a failure).
pub struct InPlaceState {
    pub preload: Option<host::GlobalPreload>,
    /// Whether the preload's library loads, when there is one to try.
    pub loads: Option<bool>,
    pub enforcements: Option<Vec<keepalive_bpf::Enforcement>>,
    pub persisted: Option<host::PersistedState>,
}

impl InPlaceState {
    pub fn read() -> InPlaceState {
        Self::read_in(Path::new("/"))
    }

    /// [`read`](Self::read) of the files under `root` (an image); the
    /// enforcements are always this host's.
    pub fn read_in(root: &Path) -> InPlaceState {
        let preload = host::global_preload_in(root).ok();
        let loads = preload
            .as_ref()
            .and_then(|p| p.entry.as_ref().filter(|_| p.library_present))
            .map(|entry| {
                let file = root.join(entry.strip_prefix("/").unwrap_or(entry));
                crate::install::test_load(&file).is_ok()
            });
        InPlaceState {
            preload,
            loads,
            enforcements: keepalive_bpf::status().ok(),
            persisted: host::persisted_in(root).ok(),
        }
    }

    pub fn in_place(&self) -> InPlace {
        InPlace {
            preload: self.preload.as_ref().and_then(|p| {
                p.entry
                    .clone()
                    .map(|entry| (entry, p.library_present, self.loads))
            }),
            detached_enforcements: self
                .enforcements
                .iter()
                .flatten()
                .filter(|e| e.attachment.is_none())
                .map(|e| {
                    e.cgroup.as_ref().map_or_else(
                        || format!("cgroup id {}", e.cgroup_id),
                        |p| p.display().to_string(),
                    )
                })
                .collect(),
            sysctl_overrides: self
                .persisted
                .iter()
                .flat_map(|p| &p.conflicts)
                .map(|c| {
                    (
                        c.ours.key.name().to_owned(),
                        (c.ours.path.clone(), c.ours.value.clone()),
                        (c.winner.path.clone(), c.winner.line, c.winner.value.clone()),
                    )
                })
                .collect(),
        }
    }

    /// The header lines about what is in place.
    pub fn text(&self) -> String {
        let preload = match (&self.preload, self.loads) {
            (None, _) => "unreadable".to_owned(),
            (Some(p), _) if p.entry.is_none() => "off".to_owned(),
            (Some(p), Some(true)) => format!(
                "on ({}, loads)",
                p.entry.as_deref().unwrap_or(Path::new("")).display()
            ),
            (Some(p), _) => format!(
                "BROKEN ({})",
                p.entry.as_deref().unwrap_or(Path::new("")).display()
            ),
        };
        let enforcements = match &self.enforcements {
            None => "unreadable (root is needed to read bpffs)".to_owned(),
            Some(all) if all.is_empty() => "none".to_owned(),
            Some(all) => {
                let list: Vec<String> = all
                    .iter()
                    .map(|e| {
                        let where_ = e.cgroup.as_ref().map_or_else(
                            || format!("cgroup id {} (removed)", e.cgroup_id),
                            |p| p.display().to_string(),
                        );
                        match (e.attachment, &e.policy) {
                            (Some(_), Some(p)) => format!(
                                "{where_} (idle {})",
                                p.idle.map_or(human::KERNEL_DEFAULT.to_owned(), |s| {
                                    human::secs(u64::from(s.get()))
                                })
                            ),
                            (Some(_), None) => format!("{where_} (attached)"),
                            (None, _) => format!("{where_} (not attached)"),
                        }
                    })
                    .collect();
                list.join(", ")
            }
        };
        let persisted = match &self.persisted {
            None => "unreadable".to_owned(),
            Some(p) if p.winners.is_empty() => "none".to_owned(),
            Some(p) => {
                let list: Vec<String> = p
                    .winners
                    .values()
                    .map(|s| format!("{} = {} ({})", s.key.name(), s.value, s.path.display()))
                    .collect();
                list.join(", ")
            }
        };
        format!(
            "global preload: {preload}
enforcements: {enforcements}
persisted sysctls: {persisted}
"
        )
    }
}
