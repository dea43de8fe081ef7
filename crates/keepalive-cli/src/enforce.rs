//! `keepalive enforce`: keepalive for every TCP connection of a cgroup,
//! enforced in the kernel by a BPF sock_ops program (keepalive-bpf), pinned
//! in bpffs so that it outlives the command.
//!
//! # Format
//!
//! With `--json`, one line per result, `{"type":...,"data":...}`:
//!
//! - `enforced`: `{cgroup, cgroup_id, change: "attached"|"updated",
//!   settings, previous: settings|null, pin_dir, prog_id, link_id}`
//! - `enforcement` (one per cgroup, `--status`): `{cgroup: path|null,
//!   cgroup_id, attached, prog_id|null, link_id|null, link_pinned,
//!   settings|null, pin_dir}`
//! - `removed`: `{cgroup, cgroup_id, detached: [{prog_id, link_id}],
//!   unpinned: path|null}`
//!
//! where `settings` is `{idle, interval, count, user_timeout_ms,
//! user_timeout_auto, force}` and a `null` value is left to the kernel
//! default.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use keepalive::UserTimeout;
use keepalive_bpf::{Attachment, Change, Enforced, Enforcement, Policy, Removed};
use serde::Serialize;

use crate::cli::{EnforceArgs, SettingsArgs};
use crate::exit::Exit;

pub fn enforce(args: &EnforceArgs) -> anyhow::Result<Exit> {
    let out = Printer { json: args.json };
    let given = has_values(&args.settings);
    if args.status || args.remove {
        if given {
            let flag = if args.status { "--status" } else { "--remove" };
            eprintln!(
                "keepalive: enforce {flag} takes no --idle, --interval, --count or --user-timeout"
            );
            return Ok(Exit::Usage);
        }
        if args.status {
            return status(&out);
        }
    }
    let Some(cgroup) = args.cgroup.as_deref() else {
        eprintln!("keepalive: enforce needs --cgroup PATH (or --status)");
        return Ok(Exit::Usage);
    };
    if args.remove {
        return remove(cgroup, &out);
    }
    let enforced = keepalive_bpf::enforce(cgroup, &policy(&args.settings, args.force))
        .with_context(|| format!("cannot enforce keepalive on {}", cgroup.display()))?;
    if enforced.bpffs.mounted_now {
        eprintln!("keepalive: mounted bpffs on {}", keepalive_bpf::BPFFS);
    }
    if enforced.bpffs.private_namespace {
        eprintln!(
            "keepalive: warning: this process is in a mount namespace of its own (ip netns exec, \
             unshare -m, a container) where bpffs was not mounted: the pins, and the \
             enforcement, end with that namespace; run it from the host's mount namespace"
        );
    }
    out.enforced(&enforced)?;
    Ok(Exit::Success)
}

/// The policy for the settings given on the command line.
pub fn policy(s: &SettingsArgs, force: bool) -> Policy {
    Policy {
        idle: s.idle,
        interval: s.interval,
        count: s.count,
        user_timeout: s.user_timeout,
        force,
    }
}

fn has_values(s: &SettingsArgs) -> bool {
    s.idle.is_some() || s.interval.is_some() || s.count.is_some() || s.user_timeout.is_some()
}

fn status(out: &Printer) -> anyhow::Result<Exit> {
    let all = keepalive_bpf::status().context("cannot list the enforced cgroups")?;
    if all.is_empty() && !out.json {
        writeln!(std::io::stdout(), "keepalive is not enforced on any cgroup")?;
    }
    for e in &all {
        out.enforcement(e)?;
    }
    Ok(Exit::Success)
}

fn remove(cgroup: &Path, out: &Printer) -> anyhow::Result<Exit> {
    let removed = keepalive_bpf::remove(cgroup)
        .with_context(|| format!("cannot remove the enforcement on {}", cgroup.display()))?;
    out.removed(&removed)?;
    Ok(Exit::Success)
}

/// `idle 60s, interval default, count 6, user timeout auto`.
fn describe(p: &Policy) -> String {
    let secs =
        |v: Option<keepalive::Seconds>| v.map_or("default".to_owned(), |s| format!("{}s", s.get()));
    let user_timeout = match p.user_timeout {
        None => "unset".to_owned(),
        Some(UserTimeout::Auto) => "auto (idle + interval x count)".to_owned(),
        Some(UserTimeout::Millis(ms)) => format!("{}ms", ms.get()),
    };
    format!(
        "idle {}, interval {}, count {}, user timeout {user_timeout}",
        secs(p.idle),
        secs(p.interval),
        p.count
            .map_or("default".to_owned(), |c| c.get().to_string()),
    )
}

fn mode(p: &Policy) -> &'static str {
    if p.force {
        "also replacing the settings of programs that switch keepalive on themselves (--force)"
    } else {
        "programs that switch keepalive on themselves keep their own settings"
    }
}

/// Writes text or JSON lines (`{"type":...,"data":...}`) to stdout.
struct Printer {
    json: bool,
}

#[derive(Serialize)]
struct SettingsJson {
    idle: Option<u16>,
    interval: Option<u16>,
    count: Option<u8>,
    user_timeout_ms: Option<u32>,
    user_timeout_auto: bool,
    force: bool,
}

impl From<&Policy> for SettingsJson {
    fn from(p: &Policy) -> SettingsJson {
        SettingsJson {
            idle: p.idle.map(|s| s.get()),
            interval: p.interval.map(|s| s.get()),
            count: p.count.map(|c| c.get()),
            user_timeout_ms: match p.user_timeout {
                Some(UserTimeout::Millis(ms)) => Some(ms.get()),
                _ => None,
            },
            user_timeout_auto: p.user_timeout == Some(UserTimeout::Auto),
            force: p.force,
        }
    }
}

#[derive(Serialize)]
struct EnforcedJson<'a> {
    cgroup: &'a Path,
    cgroup_id: u64,
    change: &'static str,
    settings: SettingsJson,
    previous: Option<SettingsJson>,
    pin_dir: &'a Path,
    prog_id: u32,
    link_id: u32,
}

#[derive(Serialize)]
struct EnforcementJson<'a> {
    cgroup: Option<&'a Path>,
    cgroup_id: u64,
    attached: bool,
    prog_id: Option<u32>,
    link_id: Option<u32>,
    link_pinned: bool,
    settings: Option<SettingsJson>,
    pin_dir: &'a Path,
}

#[derive(Serialize)]
struct AttachmentJson {
    prog_id: u32,
    link_id: u32,
}

#[derive(Serialize)]
struct RemovedJson<'a> {
    cgroup: &'a Path,
    cgroup_id: u64,
    detached: Vec<AttachmentJson>,
    unpinned: Option<&'a Path>,
}

impl Printer {
    fn enforced(&self, e: &Enforced) -> anyhow::Result<()> {
        let change = match e.change {
            Change::Attached => "attached",
            Change::Updated => "updated",
        };
        if self.json {
            return crate::json::print_line(
                "enforced",
                EnforcedJson {
                    cgroup: &e.cgroup,
                    cgroup_id: e.cgroup_id,
                    change,
                    settings: (&e.policy).into(),
                    previous: e.previous.as_ref().map(Into::into),
                    pin_dir: &e.pin_dir,
                    prog_id: e.attachment.prog_id,
                    link_id: e.attachment.link_id,
                },
            );
        }
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "keepalive enforced on {} (cgroup id {}): {change}",
            e.cgroup.display(),
            e.cgroup_id
        )?;
        writeln!(out, "  {}", describe(&e.policy))?;
        if let Some(previous) = &e.previous
            && previous != &e.policy
        {
            writeln!(out, "  was: {}", describe(previous))?;
        }
        writeln!(out, "  {}", mode(&e.policy))?;
        writeln!(
            out,
            "  new connections only; pinned in {} (program {}, link {})",
            e.pin_dir.display(),
            e.attachment.prog_id,
            e.attachment.link_id
        )?;
        Ok(())
    }

    fn enforcement(&self, e: &Enforcement) -> anyhow::Result<()> {
        if self.json {
            return crate::json::print_line(
                "enforcement",
                EnforcementJson {
                    cgroup: e.cgroup.as_deref(),
                    cgroup_id: e.cgroup_id,
                    attached: e.attachment.is_some(),
                    prog_id: e.attachment.map(|a| a.prog_id),
                    link_id: e.attachment.map(|a| a.link_id),
                    link_pinned: e.link_pinned,
                    settings: e.policy.as_ref().map(Into::into),
                    pin_dir: &e.pin_dir,
                },
            );
        }
        let mut out = std::io::stdout().lock();
        let cgroup = e.cgroup.as_deref().map_or_else(
            || "(cgroup removed)".to_owned(),
            |p| p.display().to_string(),
        );
        let state = match (e.attachment, e.link_pinned) {
            (Some(a), true) => format!(
                "attached (program {}, link {}, pinned)",
                a.prog_id, a.link_id
            ),
            (Some(a), false) => format!(
                "attached (program {}, link {}, held by a running keepalive run --enforce)",
                a.prog_id, a.link_id
            ),
            (None, _) => {
                "not attached any more: left-over pins, cleared by the next enforce".to_owned()
            }
        };
        writeln!(out, "{cgroup} (cgroup id {}): {state}", e.cgroup_id)?;
        match &e.policy {
            Some(p) => {
                writeln!(out, "  {}", describe(p))?;
                writeln!(out, "  {}", mode(p))?;
            }
            None => writeln!(out, "  settings unreadable")?,
        }
        writeln!(out, "  pins: {}", e.pin_dir.display())?;
        Ok(())
    }

    fn removed(&self, r: &Removed) -> anyhow::Result<()> {
        if self.json {
            return crate::json::print_line(
                "removed",
                RemovedJson {
                    cgroup: &r.cgroup,
                    cgroup_id: r.cgroup_id,
                    detached: r
                        .detached
                        .iter()
                        .map(|a: &Attachment| AttachmentJson {
                            prog_id: a.prog_id,
                            link_id: a.link_id,
                        })
                        .collect(),
                    unpinned: r.unpinned.as_deref(),
                },
            );
        }
        let mut out = std::io::stdout().lock();
        if r.detached.is_empty() && r.unpinned.is_none() {
            writeln!(
                out,
                "keepalive is not enforced on {}: nothing to remove",
                r.cgroup.display()
            )?;
            return Ok(());
        }
        for a in &r.detached {
            writeln!(
                out,
                "detached program {} (link {}) from {}",
                a.prog_id,
                a.link_id,
                r.cgroup.display()
            )?;
        }
        if let Some(dir) = &r.unpinned {
            writeln!(out, "removed the pins in {}", dir.display())?;
        }
        writeln!(
            out,
            "new connections of {} no longer get keepalive from the kernel; existing ones keep theirs",
            r.cgroup.display()
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_idle, parse_probes, parse_user_timeout_arg};

    #[test]
    fn settings_become_the_policy() {
        let s = SettingsArgs {
            idle: parse_idle("11").ok(),
            interval: parse_idle("7").ok(),
            count: parse_probes("3").ok(),
            user_timeout: parse_user_timeout_arg("15s").ok(),
        };
        let p = policy(&s, true);
        assert_eq!(
            describe(&p),
            "idle 11s, interval 7s, count 3, user timeout 15000ms"
        );
        assert!(p.force);
        assert_eq!(
            describe(&policy(&SettingsArgs::default(), false)),
            "idle default, interval default, count default, user timeout unset"
        );
    }

    #[test]
    fn settings_json_leaves_defaults_null() {
        let p = Policy {
            idle: keepalive::Seconds::new(60),
            user_timeout: Some(UserTimeout::Auto),
            ..Policy::default()
        };
        let json = serde_json::to_string(&SettingsJson::from(&p)).unwrap();
        assert_eq!(
            json,
            r#"{"idle":60,"interval":null,"count":null,"user_timeout_ms":null,"user_timeout_auto":true,"force":false}"#
        );
    }
}
