//! `keepalive sysctl`: show, set and persist the kernel defaults
//! (HOWTO 3.1, 3.2), in the current or another network namespace.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use keepalive::KernelDefaults;
use keepalive::host::{DefaultsChange, NetNs, Persisted, SysctlKey, Written};

use crate::cli::{
    DefaultsArgs, NamespaceArgs, SysctlAction, SysctlArgs, SysctlPersistArgs, SysctlSetArgs,
};
use crate::exit::Exit;
use crate::human;
use crate::json::{self, Message, Override, SysctlChange, SysctlValues};

pub fn sysctl(args: &SysctlArgs) -> anyhow::Result<Exit> {
    let ns = namespace(&args.namespace)?;
    let out = Printer { json: args.json };
    match &args.action {
        None | Some(SysctlAction::Show) => show(&ns, &out),
        Some(SysctlAction::Set(set_args)) => set(&ns, set_args, &out),
        Some(SysctlAction::Persist(p)) => persist_only(&ns, p, &out),
    }
}

fn namespace(args: &NamespaceArgs) -> anyhow::Result<NetNs> {
    let ns = match (&args.netns, args.pid) {
        (Some(spec), _) => NetNs::open(spec),
        (None, Some(pid)) => NetNs::of_pid(pid),
        (None, None) => NetNs::current(),
    };
    Ok(ns?)
}

fn read(ns: &NetNs) -> anyhow::Result<KernelDefaults> {
    ns.run(keepalive::kernel_defaults)?
        .with_context(|| format!("cannot read the keepalive sysctls of {ns}"))
}

fn change(values: &DefaultsArgs) -> DefaultsChange {
    DefaultsChange {
        idle: values.idle,
        interval: values.interval,
        count: values.count,
    }
}

fn show(ns: &NetNs, out: &Printer) -> anyhow::Result<Exit> {
    let d = read(ns)?;
    out.values(ns, &d)?;
    Ok(Exit::Success)
}

fn set(ns: &NetNs, args: &SysctlSetArgs, out: &Printer) -> anyhow::Result<Exit> {
    let root = if args.persist {
        Some(persist_root(ns, args.root.as_deref())?)
    } else {
        None
    };
    let change = change(&args.values);
    let written = ns
        .run(|| keepalive::host::set_kernel_defaults(&change))?
        .with_context(|| format!("in {ns}"))?;
    let now = read(ns)?;
    let persisted = match &root {
        Some(root) => Some(
            persist(root, &change.values())
                .context("the live values were set, but they will not survive a reboot")?,
        ),
        None => None,
    };
    // Every change is made before anything is printed: a closed stdout
    // (`| head -1`) cannot cut the work short.
    out.changes(ns, &written)?;
    out.values(ns, &now)?;
    if let Some(p) = &persisted {
        out.persisted(p)?;
    }
    Ok(Exit::Success)
}

fn persist_only(ns: &NetNs, args: &SysctlPersistArgs, out: &Printer) -> anyhow::Result<Exit> {
    let root = persist_root(ns, args.root.as_deref())?;
    let values = if args.values.is_empty() {
        let live = read(ns)?;
        SysctlKey::ALL.iter().map(|k| (*k, k.get(&live))).collect()
    } else {
        change(&args.values).values()
    };
    out.persisted(&persist(&root, &values)?)?;
    Ok(Exit::Success)
}

/// Where the drop-in goes. The files under / are the host's boot
/// configuration: values read or set in another network namespace (a
/// container) only go there when `--root` names that system's tree.
fn persist_root(ns: &NetNs, root: Option<&Path>) -> anyhow::Result<PathBuf> {
    match root {
        Some(root) => Ok(root.to_path_buf()),
        None if ns.is_current() => Ok(PathBuf::from("/")),
        None => anyhow::bail!(
            "not persisting the values of {ns} into this host's /etc/sysctl.d, which sets \
             the host's own namespace at boot: give --root with the container's root \
             directory; nothing was changed"
        ),
    }
}

fn persist(root: &Path, values: &[(SysctlKey, u64)]) -> anyhow::Result<Persisted> {
    keepalive::host::persist(root, values).with_context(|| {
        if root == Path::new("/") {
            "cannot persist the values (root is needed to write /etc/sysctl.d; --root DIR writes under DIR)"
        } else {
            "cannot persist the values"
        }
    })
}

/// Writes text or JSON lines to stdout.
struct Printer {
    json: bool,
}

/// A sysctl value's duration in words, after its raw value: ` (2h)` for
/// the two times, nothing for the probe count.
fn unit(key: SysctlKey, value: u64) -> String {
    match key {
        SysctlKey::Probes => String::new(),
        _ => format!(" ({})", human::secs(value)),
    }
}

impl Printer {
    fn values(&self, ns: &NetNs, d: &KernelDefaults) -> anyhow::Result<()> {
        if self.json {
            json::print(&Message::Sysctl(SysctlValues {
                netns: ns.into(),
                idle: d.idle,
                interval: d.interval,
                count: d.count,
                detection_secs: d.detection_secs(),
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        write!(out, "{}", render(ns, d))?;
        Ok(())
    }

    fn changes(&self, ns: &NetNs, written: &[Written]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for w in written {
            if self.json {
                json::write(
                    &mut out,
                    &Message::Change(SysctlChange {
                        setting: json::sysctl_setting(w.key),
                        key: w.key.name(),
                        old: w.old,
                        new: w.new,
                    }),
                )?;
            } else if w.old == w.new {
                writeln!(
                    out,
                    "{}: {}{} (unchanged)",
                    w.key,
                    w.old,
                    unit(w.key, w.old)
                )?;
            } else {
                writeln!(
                    out,
                    "{}: {}{} -> {}{}",
                    w.key,
                    w.old,
                    unit(w.key, w.old),
                    w.new,
                    unit(w.key, w.new)
                )?;
            }
        }
        if !self.json {
            writeln!(out, "in network namespace {ns}")?;
            writeln!(out)?;
        }
        Ok(())
    }

    fn persisted(&self, p: &Persisted) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            json::write(
                &mut out,
                &Message::Persisted(json::Persisted {
                    path: &p.path,
                    changed: p.changed,
                }),
            )?;
        } else if p.changed {
            writeln!(out, "persisted in {} (applied at boot)", p.path.display())?;
        } else {
            writeln!(out, "{} already holds these values", p.path.display())?;
        }
        for s in &p.overridden_by {
            if self.json {
                json::write(
                    &mut out,
                    &Message::Override(Override {
                        path: &s.path,
                        line: s.line,
                        key: s.key.name(),
                        value: &s.value,
                    }),
                )?;
            }
            eprintln!(
                "keepalive: warning: {}:{} sets {} = {}, which is applied after {} at boot \
                 and overrides it: remove that line",
                s.path.display(),
                s.line,
                s.key,
                s.value,
                p.path.display()
            );
        }
        Ok(())
    }
}

/// The text of `keepalive sysctl show`.
fn render(ns: &NetNs, d: &KernelDefaults) -> String {
    format!(
        "network namespace: {ns}\n\
         {:<31} = {:<6} idle time before the first probe ({})\n\
         {:<31} = {:<6} time between probes ({})\n\
         {:<31} = {:<6} unanswered probes before the connection is dropped\n\
         A dead idle peer is detected after {} s + {} x {} s = {}.\n\
         These apply to sockets with keepalive on that set no value of their own.\n",
        SysctlKey::Time.name(),
        d.idle,
        human::secs(d.idle),
        SysctlKey::Intvl.name(),
        d.interval,
        human::secs(d.interval),
        SysctlKey::Probes.name(),
        d.count,
        d.idle,
        d.count,
        d.interval,
        human::secs(d.detection_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_their_unit() {
        assert_eq!(unit(SysctlKey::Time, 7200), " (2h)");
        assert_eq!(unit(SysctlKey::Intvl, 75), " (1m15s)");
        assert_eq!(unit(SysctlKey::Probes, 9), "");
    }

    #[test]
    fn render_shows_the_consequence() {
        let ns = NetNs::current().unwrap();
        let text = render(&ns, &KernelDefaults::BUILTIN);
        assert!(
            text.contains(
                "net.ipv4.tcp_keepalive_time     = 7200   idle time before the first probe (2h)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("A dead idle peer is detected after 7200 s + 9 x 75 s = 2h11m15s.\n"),
            "{text}"
        );
    }
}
