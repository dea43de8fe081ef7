//! `keepalive enforce`: keepalive for every TCP connection of a cgroup,
//! enforced in the kernel by a BPF sock_ops program (keepalive-bpf), pinned
//! in bpffs so that it outlives the command.
//!
//! `--json` prints the `enforced`, `enforcement`, `enforce_summary` and
//! `removed` messages of [`crate::json`].

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use keepalive::UserTimeout;
use keepalive_bpf::{Attachment, Change, Enforced, Enforcement, Policy, Removed};

use crate::cli::EnforceArgs;
#[cfg(test)]
use crate::cli::SettingsArgs;
use crate::exit::Exit;
use crate::human::{self, KERNEL_DEFAULT};
use crate::json::{self, Detached, EnforceSummary, Message, PolicyJson, SettingsJson};

pub fn enforce(args: &EnforceArgs) -> anyhow::Result<Exit> {
    let out = Printer { json: args.json };
    if args.status {
        return status(&out);
    }
    // clap requires --cgroup without --status.
    let Some(cgroup) = args.cgroup.as_deref() else {
        anyhow::bail!("enforce needs --cgroup PATH (or --status)");
    };
    if args.remove {
        return remove(cgroup, &out);
    }
    let enforced = keepalive_bpf::enforce(cgroup, &args.settings.policy(args.force))
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

fn status(out: &Printer) -> anyhow::Result<Exit> {
    let all = keepalive_bpf::status().context("cannot list the enforced cgroups")?;
    for e in &all {
        out.enforcement(e)?;
    }
    out.status_summary(&all)?;
    Ok(Exit::Success)
}

fn remove(cgroup: &Path, out: &Printer) -> anyhow::Result<Exit> {
    let removed = keepalive_bpf::remove(cgroup)
        .with_context(|| format!("cannot remove the enforcement on {}", cgroup.display()))?;
    out.removed(&removed)?;
    Ok(Exit::Success)
}

fn policy_json(p: &Policy) -> PolicyJson {
    PolicyJson {
        settings: SettingsJson::from(&p.settings()),
        force: p.force,
    }
}

/// `idle 1m, interval kernel default, count 6, user timeout auto (…)`.
fn describe(p: &Policy) -> String {
    let secs = |v: Option<keepalive::Seconds>| {
        v.map_or(KERNEL_DEFAULT.to_owned(), |s| {
            human::secs(u64::from(s.get()))
        })
    };
    let user_timeout = match p.user_timeout {
        None => KERNEL_DEFAULT.to_owned(),
        Some(UserTimeout::Auto) => "auto (idle + interval x count)".to_owned(),
        Some(UserTimeout::Millis(ms)) => human::millis(u64::from(ms.get())),
    };
    format!(
        "idle {}, interval {}, count {}, user timeout {user_timeout}",
        secs(p.idle),
        secs(p.interval),
        p.count
            .map_or(KERNEL_DEFAULT.to_owned(), |c| c.get().to_string()),
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

impl Printer {
    fn enforced(&self, e: &Enforced) -> anyhow::Result<()> {
        let change = match e.change {
            Change::Attached => "attached",
            Change::Updated => "updated",
        };
        if self.json {
            json::print(&Message::Enforced(json::Enforced {
                cgroup: &e.cgroup,
                cgroup_id: e.cgroup_id,
                change,
                settings: policy_json(&e.policy),
                previous: e.previous.as_ref().map(policy_json),
                pin_dir: &e.pin_dir,
                prog_id: e.attachment.prog_id,
                link_id: e.attachment.link_id,
            }))?;
            return Ok(());
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
            json::print(&Message::Enforcement(json::Enforcement {
                cgroup: e.cgroup.as_deref(),
                cgroup_id: e.cgroup_id,
                attached: e.attachment.is_some(),
                prog_id: e.attachment.map(|a| a.prog_id),
                link_id: e.attachment.map(|a| a.link_id),
                link_pinned: e.link_pinned,
                settings: e.policy.as_ref().map(policy_json),
                pin_dir: &e.pin_dir,
            }))?;
            return Ok(());
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

    /// The last line of `--status`, printed even when nothing is enforced.
    fn status_summary(&self, all: &[Enforcement]) -> anyhow::Result<()> {
        let enforcements = all.len() as u64;
        let attached = all.iter().filter(|e| e.attachment.is_some()).count() as u64;
        if self.json {
            json::print(&Message::EnforceSummary(EnforceSummary {
                enforcements,
                attached,
            }))?;
        } else if enforcements == 0 {
            writeln!(std::io::stdout(), "keepalive is not enforced on any cgroup")?;
        }
        Ok(())
    }

    fn removed(&self, r: &Removed) -> anyhow::Result<()> {
        if self.json {
            json::print(&Message::Removed(json::Removed {
                cgroup: &r.cgroup,
                cgroup_id: r.cgroup_id,
                detached: r
                    .detached
                    .iter()
                    .map(|a: &Attachment| Detached {
                        prog_id: a.prog_id,
                        link_id: a.link_id,
                    })
                    .collect(),
                unpinned: r.unpinned.as_deref(),
            }))?;
            return Ok(());
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
        let p = s.policy(true);
        assert_eq!(
            describe(&p),
            "idle 11s, interval 7s, count 3, user timeout 15s"
        );
        assert!(p.force);
        assert_eq!(p.settings(), s.settings());
        assert_eq!(
            describe(&SettingsArgs::default().policy(false)),
            "idle kernel default, interval kernel default, count kernel default, \
             user timeout kernel default"
        );
    }
}
