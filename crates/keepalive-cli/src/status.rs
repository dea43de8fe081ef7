//! `keepalive status`: everything keepalive has put in effect on this
//! host, in one screen: the kernel defaults, the persisted sysctls and
//! what overrides them, the global preload (and whether it loads), the
//! enforcements. It changes nothing.
//!
//! `--json` prints one `host_status` message (see [`crate::json`]).

use std::io::Write;

use anyhow::Context;
use keepalive::host::{NetNs, Setting};

use crate::cli::StatusArgs;
use crate::exit::Exit;
use crate::human;
use crate::in_place::InPlaceState;
use crate::json::{
    self, DefaultsJson, GlobalPreloadJson, HostStatus, Message, PersistedSetting, StatusEnforcement,
};

pub fn status(args: &StatusArgs) -> anyhow::Result<Exit> {
    let ns = NetNs::current()?;
    let defaults = keepalive::kernel_defaults().context("cannot read the kernel defaults")?;
    let state = match &args.root {
        Some(root) => InPlaceState::read_in(root),
        None => InPlaceState::read(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let persisted = state.persisted.as_ref();
        let preload = state.preload.as_ref();
        json::write(
            &mut out,
            &Message::HostStatus(HostStatus {
                netns: (&ns).into(),
                defaults: DefaultsJson {
                    idle: defaults.idle,
                    interval: defaults.interval,
                    count: defaults.count,
                    detection_secs: defaults.detection_secs(),
                },
                persisted: persisted
                    .map(|p| p.winners.values().map(setting_json).collect())
                    .unwrap_or_default(),
                overrides: persisted
                    .map(|p| {
                        p.conflicts
                            .iter()
                            .map(|c| setting_json(&c.winner))
                            .collect()
                    })
                    .unwrap_or_default(),
                global_preload: GlobalPreloadJson {
                    file: preload
                        .map_or_else(|| keepalive::host::LD_SO_PRELOAD.into(), |p| p.file.clone()),
                    entry: preload.and_then(|p| p.entry.clone()),
                    library_present: preload.is_some_and(|p| p.library_present),
                    loads: state.loads,
                },
                enforcements: state
                    .enforcements
                    .iter()
                    .flatten()
                    .map(|e| StatusEnforcement {
                        cgroup: e.cgroup.clone(),
                        cgroup_id: e.cgroup_id,
                        attached: e.attachment.is_some(),
                    })
                    .collect(),
            }),
        )?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "kernel defaults: idle {}, interval {}, count {}: a dead idle peer is noticed after {} \
         (network namespace {ns})",
        human::secs(defaults.idle),
        human::secs(defaults.interval),
        defaults.count,
        human::secs(defaults.detection_secs()),
    )?;
    out.write_all(state.text().as_bytes())?;
    if let Some(p) = &state.persisted {
        for c in &p.conflicts {
            writeln!(
                out,
                "  overridden at boot: {}:{} sets {} = {} after {}",
                c.winner.path.display(),
                c.winner.line,
                c.winner.key.name(),
                c.winner.value,
                c.ours.path.display()
            )?;
        }
    }
    out.flush()?;
    Ok(Exit::Success)
}

fn setting_json(s: &Setting) -> PersistedSetting {
    PersistedSetting {
        setting: json::sysctl_setting(s.key),
        key: s.key.name(),
        value: s.value.clone(),
        path: s.path.clone(),
        line: s.line,
    }
}
