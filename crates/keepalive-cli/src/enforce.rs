//! `keepalive enforce`: keepalive for every TCP connection of a cgroup,
//! enforced in the kernel by a BPF sock_ops program (keepalive-bpf), pinned
//! in bpffs so that it outlives the command.
//!
//! `--json` prints the `enforced`, `enforcement`, `enforce_summary`,
//! `removed` and `existing` messages of [`crate::json`].
//!
//! `--existing` then applies the settings to the connections that exist
//! (`keepalive_bpf::apply_existing`) and reports how many were changed.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use keepalive::UserTimeout;
use keepalive::host::{self, Systemctl, UnitPersisted};
use keepalive_bpf::{
    Attachment, Change, Enforced, Enforcement, Existing, Hierarchy, Mode, Origin, Policy, Removed,
    Way,
};

use crate::cli::{EnforceArgs, SettingsArgs};
use crate::exit::Exit;
use crate::human::{self, KERNEL_DEFAULT};
use crate::json::{self, Detached, EnforceSummary, Message, PolicyJson, SettingsJson};

pub fn enforce(args: &EnforceArgs) -> anyhow::Result<Exit> {
    let out = Printer {
        json: args.json,
        existing: args.existing,
    };
    let root = args.root.as_deref().unwrap_or(Path::new("/"));
    if args.status {
        return status(root, &out);
    }
    if let Some(unit) = args.unit.as_deref() {
        return enforce_unit(args, unit, root, &out);
    }
    // clap requires --cgroup or --all without --status or --unit.
    let resolved = match (args.cgroup.as_deref(), args.all) {
        (Some(given), _) => resolve_cgroup(given)?,
        (None, true) => {
            let root = Hierarchy::find()?.mount_point().to_path_buf();
            eprintln!(
                "keepalive: --all: the root cgroup {}, every process on this host",
                root.display()
            );
            root
        }
        (None, false) => {
            anyhow::bail!("enforce needs --cgroup PATH, --unit NAME or --all (or --status)")
        }
    };
    let cgroup = resolved.as_path();
    if args.remove {
        let removed = keepalive_bpf::remove(cgroup)
            .with_context(|| format!("cannot remove the enforcement on {}", cgroup.display()))?;
        out.removed(&removed, &[], false)?;
        return Ok(Exit::Success);
    }
    let enforced = keepalive_bpf::enforce(cgroup, &policy(args)?)
        .with_context(|| format!("cannot enforce keepalive on {}", cgroup.display()))?;
    let exit = report_enforced(&enforced, &out)?;
    existing(args, &enforced, &out)?;
    Ok(exit)
}

/// The variable that makes `--existing` take one way only, for the tests
/// of each: `iterator` (an error where the kernel cannot) or `pidfd`.
/// Unset, the iterator is tried first.
const EXISTING_VIA: &str = "KEEPALIVE_EXISTING_VIA";

fn existing_via(value: Option<&std::ffi::OsStr>) -> anyhow::Result<keepalive_bpf::Via> {
    match value.map(|v| v.to_str()) {
        None => Ok(keepalive_bpf::Via::Auto),
        Some(Some("iterator")) => Ok(keepalive_bpf::Via::Iterator),
        Some(Some("pidfd")) => Ok(keepalive_bpf::Via::Pidfd),
        Some(_) => anyhow::bail!("{EXISTING_VIA} takes `iterator` or `pidfd`"),
    }
}

/// `--existing`: the policy now enforced, on the connections that exist.
fn existing(args: &EnforceArgs, enforced: &Enforced, out: &Printer) -> anyhow::Result<()> {
    if !args.existing {
        return Ok(());
    }
    let via = existing_via(std::env::var_os(EXISTING_VIA).as_deref())?;
    let report = keepalive_bpf::apply_existing(&enforced.cgroup, &enforced.policy, via)
        .with_context(|| {
            format!(
                "keepalive is enforced on the new connections of {}, but the existing ones \
                 could not be reached",
                enforced.cgroup.display()
            )
        })?;
    if report.failed > 0 {
        eprintln!(
            "keepalive: warning: setsockopt failed on {} existing connection(s) of {}",
            report.failed,
            enforced.cgroup.display()
        );
    }
    out.existing(&report)
}

/// The policy of the flags: the settings, with --force or --max-idle.
/// With --max-idle, --idle and --interval above it are refused: the
/// kernel would cap them anyway, so they are a mistake.
fn policy(args: &EnforceArgs) -> anyhow::Result<Policy> {
    policy_of(&args.settings, args.force, args.max_idle)
}

/// [`policy`] of the settings flags, `--force` and `--max-idle`, as
/// `enforce` and `run --enforce` take them.
pub(crate) fn policy_of(
    settings: &SettingsArgs,
    force: bool,
    max_idle: Option<keepalive::Seconds>,
) -> anyhow::Result<Policy> {
    let Some(max) = max_idle else {
        return Ok(settings.policy(force));
    };
    for (flag, value) in [("--idle", settings.idle), ("--interval", settings.interval)] {
        if let Some(v) = value
            && v > max
        {
            anyhow::bail!(
                "{flag} {} is above --max-idle {}: give a value at most {}, or leave {flag} out \
                 (it is then capped at {})",
                human::secs(u64::from(v.get())),
                human::secs(u64::from(max.get())),
                human::secs(u64::from(max.get())),
                human::secs(u64::from(max.get())),
            );
        }
    }
    Ok(Policy::with_max_idle(&settings.settings(), max))
}

/// `--cgroup`: an absolute path as it is, a relative one under the
/// cgroup2 mount (said on stderr); the root cgroup is refused, since it is
/// every process on the host: `--all` says that on purpose.
fn resolve_cgroup(given: &Path) -> anyhow::Result<PathBuf> {
    let hierarchy = Hierarchy::find()?;
    let mount = hierarchy.mount_point();
    let path = if given.is_absolute() {
        given.to_path_buf()
    } else {
        mount.join(given)
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(&path, mount) {
        anyhow::bail!(
            "{} is the root cgroup: every process on this host; give --all if that is \
             what you mean",
            path.display()
        );
    }
    if !given.is_absolute() {
        eprintln!(
            "keepalive: cgroup {} is {}",
            given.display(),
            path.display()
        );
    }
    Ok(path)
}

fn report_enforced(enforced: &Enforced, out: &Printer) -> anyhow::Result<Exit> {
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
    out.enforced(enforced)?;
    Ok(Exit::Success)
}

/// Where systemd says `unit`'s cgroup is.
enum UnitCgroup {
    /// Its directory.
    At(PathBuf),
    /// It has none now: why, in a sentence naming the fix, and whether
    /// only because it is not running (a unit --persist may still persist).
    None { why: String, not_running: bool },
}

fn no_cgroup(why: String) -> UnitCgroup {
    UnitCgroup::None {
        why,
        not_running: false,
    }
}

/// Asks systemd (`systemctl show`) for `unit`'s cgroup directory.
fn unit_cgroup(systemctl: &Systemctl, unit: &str) -> UnitCgroup {
    let state = match systemctl.show(unit) {
        Ok(state) => state,
        Err(e) => {
            return no_cgroup(format!(
                "cannot ask systemd where {unit} is ({e:#}); without systemd, give its cgroup \
                 with --cgroup PATH"
            ));
        }
    };
    if state.load_state != "loaded" {
        return no_cgroup(format!(
            "{unit} is not loaded (LoadState={}): check its name with `systemctl list-units \
             --all {unit}`",
            state.load_state
        ));
    }
    let Some(group) = state.control_group else {
        return UnitCgroup::None {
            why: format!(
                "{unit} is not running (ActiveState={}), so it has no cgroup: start it \
                 (`systemctl start {unit}`), or add --persist to enforce at its every start",
                state.active_state
            ),
            not_running: true,
        };
    };
    let hierarchy = match Hierarchy::find() {
        Ok(h) => h,
        Err(e) => return no_cgroup(e.to_string()),
    };
    match hierarchy.directory(Path::new(&group)) {
        Some(dir) => UnitCgroup::At(dir),
        None => no_cgroup(format!(
            "{unit}'s cgroup {group} is outside the cgroup v2 mount at {}: run keepalive \
             from the host",
            hierarchy.mount_point().display()
        )),
    }
}

/// `enforce --unit NAME [--persist] [--remove]`.
fn enforce_unit(
    args: &EnforceArgs,
    unit: &str,
    root: &Path,
    out: &Printer,
) -> anyhow::Result<Exit> {
    let kind = host::unit_kind(unit)?;
    let systemctl = Systemctl::default();
    // With --root the files are not the running systemd's.
    let reload = args.root.is_none();
    let cgroup = unit_cgroup(&systemctl, unit);
    if args.remove {
        let unpersisted = host::unpersist_unit(root, unit, kind)?;
        let reloaded = reload && !unpersisted.is_empty();
        if reloaded {
            systemctl.daemon_reload().with_context(|| {
                format!("removed keepalive's drop-in for {unit}, but systemd was not reloaded")
            })?;
        }
        // A slice's instance of ours stays "active" (RemainAfterExit)
        // after its files are gone: stop it, so that systemd no longer
        // lists an enforcement that is not there.
        if reloaded && kind == host::UnitKind::Slice {
            let instance = host::slice_instance(unit);
            if let Err(e) = systemctl.stop(&instance) {
                eprintln!("keepalive: warning: cannot stop {instance}: {e}");
            }
        }
        let path = match &cgroup {
            UnitCgroup::At(dir) => Some(dir.as_path()),
            UnitCgroup::None { .. } => None,
        };
        let removed = keepalive_bpf::remove_for(path, Some(unit))
            .with_context(|| format!("cannot remove the enforcement on {unit}"))?;
        out.removed(&removed, &unpersisted, reloaded)?;
        return Ok(Exit::Success);
    }
    let policy = policy(args)?;
    if args.persist {
        // Not loaded, or no systemd to ask: a typo, unless the files are
        // for another root (an image).
        if let UnitCgroup::None {
            why,
            not_running: false,
        } = &cgroup
            && reload
        {
            anyhow::bail!("{why}");
        }
        let command = persisted_command(unit, kind, args)?;
        let persisted = host::persist_unit(root, unit, kind, &command)?;
        if reload && persisted.changed {
            systemctl.daemon_reload().with_context(|| {
                format!(
                    "wrote {}, but systemd was not reloaded: run `systemctl daemon-reload`",
                    persisted.dropin.display()
                )
            })?;
        }
        out.persisted(&persisted)?;
    }
    let dir = match cgroup {
        UnitCgroup::At(dir) => dir,
        UnitCgroup::None { .. } if args.persist => {
            out.note(&format!(
                "{unit} has no cgroup now: keepalive is enforced on it at its next start"
            ))?;
            return Ok(Exit::Success);
        }
        UnitCgroup::None { why, .. } => anyhow::bail!("{why}"),
    };
    let persisted = args.persist || host::unit_is_persisted(root, unit, kind);
    let enforced = keepalive_bpf::enforce_for(&Origin::unit(unit, &dir, persisted), &policy)
        .with_context(|| format!("cannot enforce keepalive on {unit} ({})", dir.display()))?;
    let exit = report_enforced(&enforced, out)?;
    existing(args, &enforced, out)?;
    Ok(exit)
}

/// The command systemd runs at every start of the unit: this program
/// with the same unit and settings (no --persist, no --root). A slice's
/// instance runs beside the slice's first services, not before them: it
/// takes `--existing`, so the connections they made meanwhile get the
/// settings too. A service's `ExecStartPre` runs before its program: it
/// has none to reach.
fn persisted_command(
    unit: &str,
    kind: host::UnitKind,
    args: &EnforceArgs,
) -> anyhow::Result<Vec<OsString>> {
    let exe = std::env::current_exe().context("cannot find the path of this program")?;
    let mut command: Vec<OsString> =
        vec![exe.into(), "enforce".into(), "--unit".into(), unit.into()];
    command.extend(settings_args(args).into_iter().map(OsString::from));
    if kind == host::UnitKind::Slice {
        command.push("--existing".into());
    }
    Ok(command)
}

/// The settings flags as they would be typed: what was given, nothing else.
fn settings_args(args: &EnforceArgs) -> Vec<String> {
    let s = &args.settings;
    let mut out = Vec::new();
    if let Some(v) = s.idle {
        out.extend(["--idle".to_owned(), v.get().to_string()]);
    }
    if let Some(v) = s.interval {
        out.extend(["--interval".to_owned(), v.get().to_string()]);
    }
    if let Some(v) = s.count {
        out.extend(["--count".to_owned(), v.get().to_string()]);
    }
    match s.user_timeout {
        None => {}
        Some(UserTimeout::Auto) => out.extend(["--user-timeout".to_owned(), "auto".to_owned()]),
        Some(UserTimeout::Millis(ms)) => {
            out.extend(["--user-timeout".to_owned(), format!("{}ms", ms.get())]);
        }
    }
    if args.force {
        out.push("--force".to_owned());
    }
    if let Some(v) = args.max_idle {
        out.extend(["--max-idle".to_owned(), v.get().to_string()]);
    }
    out
}

fn status(root: &Path, out: &Printer) -> anyhow::Result<Exit> {
    let all = keepalive_bpf::status().context("cannot list the enforced cgroups")?;
    for e in &all {
        out.enforcement(e)?;
    }
    out.status_summary(&all, &host::persisted_units(root))?;
    Ok(Exit::Success)
}

fn policy_json(p: &Policy) -> PolicyJson {
    PolicyJson {
        settings: SettingsJson::from(&p.settings()),
        force: p.force,
        mode: mode_name(p),
        max_idle_secs: p.max_idle.map(|s| u32::from(s.get())),
    }
}

/// `default`, `force` or `max_idle`, as JSON says it.
fn mode_name(p: &Policy) -> &'static str {
    match p.mode() {
        Mode::Default => "default",
        Mode::Force => "force",
        Mode::MaxIdle(_) => "max_idle",
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

/// The mode line: `mode: default (...)`, `mode: force (...)`,
/// `mode: max-idle 30s (...)`.
fn mode(p: &Policy) -> String {
    let capped = |what: &str| match p.max_idle {
        Some(d) if p.force => format!(
            "{what}; idle and interval capped at {}",
            human::secs(u64::from(d.get()))
        ),
        _ => what.to_owned(),
    };
    match p.mode() {
        Mode::Default => "mode: default (programs that switch keepalive on themselves, or set \
                          values after connecting, keep their own settings)"
            .to_owned(),
        Mode::Force => format!(
            "mode: force ({})",
            capped("our values on every connection, held against the program's setsockopt")
        ),
        Mode::MaxIdle(d) => format!(
            "mode: max-idle {} (keepalive always on, idle and interval at most that whatever \
             the program sets; shorter values stand)",
            human::secs(u64::from(d.get()))
        ),
    }
}

/// Writes text or JSON lines (`{"type":...,"data":...}`) to stdout.
struct Printer {
    json: bool,
    /// `--existing`: the existing connections are reported after.
    existing: bool,
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
                unit: e.origin.unit.as_deref(),
                persisted: e.origin.persisted,
                change,
                settings: policy_json(&e.policy),
                previous: e.previous.as_ref().map(policy_json),
                pin_dir: &e.pin_dir,
                prog_id: e.attachment.prog_id,
                link_id: e.attachment.link_id,
                setsockopt_prog_id: e.setsockopt.map(|a| a.prog_id),
                setsockopt_link_id: e.setsockopt.map(|a| a.link_id),
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let unit = e
            .origin
            .unit
            .as_deref()
            .map_or_else(String::new, |u| format!("{u}, "));
        writeln!(
            out,
            "keepalive enforced on {} ({unit}cgroup id {}): {change}",
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
        let setsockopt = e.setsockopt.map_or_else(String::new, |a| {
            format!("; setsockopt program {}, link {}", a.prog_id, a.link_id)
        });
        let scope = if self.existing {
            "new connections, and the existing ones below"
        } else {
            "new connections only"
        };
        writeln!(
            out,
            "  {scope}; pinned in {} (program {}, link {}{setsockopt})",
            e.pin_dir.display(),
            e.attachment.prog_id,
            e.attachment.link_id
        )?;
        match (&e.origin.unit, e.origin.persisted) {
            (Some(unit), true) => writeln!(
                out,
                "  persisted: systemd enforces it again at every start of {unit}"
            )?,
            (Some(unit), false) => writeln!(
                out,
                "  until {unit} stops or restarts (--persist makes it last)"
            )?,
            (None, _) => writeln!(out, "  until the cgroup is removed")?,
        }
        Ok(())
    }

    /// What `--existing` did.
    fn existing(&self, r: &Existing) -> anyhow::Result<()> {
        if self.json {
            json::print(&Message::Existing(json::ExistingJson {
                cgroup: &r.cgroup,
                way: r.way.code(),
                fallback: r.fallback.as_deref(),
                namespaces: r.namespaces,
                processes: r.processes,
                changed: r.changed,
                listening: r.listening,
                left_alone: r.left_alone,
                failed: r.failed,
                unreachable: r.unreachable,
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let namespaces = plural(
            r.namespaces as u64,
            "network namespace",
            "network namespaces",
        );
        let processes = plural(r.processes as u64, "process", "processes");
        let way = match r.way {
            Way::Iterator => format!("BPF iterator over TCP sockets, {namespaces}"),
            Way::Pidfd => format!("pidfd_getfd over {processes}, {namespaces}"),
        };
        writeln!(
            out,
            "existing connections of {} ({way}):",
            r.cgroup.display()
        )?;
        if let Some(why) = &r.fallback {
            writeln!(out, "  the BPF iterator could not be used: {why}")?;
        }
        writeln!(
            out,
            "  {} changed ({} listening), {} left alone, {} failed",
            r.changed, r.listening, r.left_alone, r.failed
        )?;
        if r.left_alone > 0 {
            writeln!(
                out,
                "  left alone: their program had switched keepalive on itself (--force sets ours)"
            )?;
        }
        if r.unreachable > 0 {
            writeln!(
                out,
                "  {} could not be reached (process gone, no right to duplicate its sockets)",
                plural(r.unreachable, "socket", "sockets")
            )?;
        }
        Ok(())
    }

    /// The drop-in `--persist` wrote.
    fn persisted(&self, p: &UnitPersisted) -> anyhow::Result<()> {
        if self.json {
            json::print(&Message::Persisted(json::Persisted {
                path: &p.dropin,
                changed: p.changed,
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let verb = if p.changed { "wrote" } else { "unchanged:" };
        writeln!(out, "{verb} {}", p.dropin.display())?;
        if let Some(t) = &p.template_written {
            writeln!(
                out,
                "wrote {} (no packaged copy was installed)",
                t.display()
            )?;
        }
        Ok(())
    }

    /// A sentence for the reader; nothing in JSON.
    fn note(&self, text: &str) -> anyhow::Result<()> {
        if !self.json {
            writeln!(std::io::stdout(), "{text}")?;
        }
        Ok(())
    }

    fn enforcement(&self, e: &Enforcement) -> anyhow::Result<()> {
        if self.json {
            let origin = e.origin.as_ref();
            json::print(&Message::Enforcement(json::Enforcement {
                cgroup: e.cgroup.as_deref(),
                cgroup_id: e.cgroup_id,
                path: origin.map(|o| o.path.as_path()),
                unit: origin.and_then(|o| o.unit.as_deref()),
                persisted: origin.is_some_and(|o| o.persisted),
                attached: e.attachment.is_some(),
                prog_id: e.attachment.map(|a| a.prog_id),
                link_id: e.attachment.map(|a| a.link_id),
                setsockopt_prog_id: e.setsockopt.map(|a| a.prog_id),
                setsockopt_link_id: e.setsockopt.map(|a| a.link_id),
                link_pinned: e.link_pinned,
                settings: e.policy.as_ref().map(policy_json),
                pin_dir: &e.pin_dir,
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let cgroup = match (&e.cgroup, &e.origin) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(o)) => format!("{} (cgroup removed)", o.path.display()),
            (None, None) => "(cgroup removed)".to_owned(),
        };
        let state = match (e.attachment, e.link_pinned) {
            (Some(a), true) => format!(
                "attached (program {}, link {}, pinned)",
                a.prog_id, a.link_id
            ),
            (Some(a), false) => format!(
                "attached (program {}, link {}, held by a running keepalive run --enforce)",
                a.prog_id, a.link_id
            ),
            (None, _) if e.cgroup.is_none() => "not attached: its cgroup is gone; the next \
                enforce, or --remove of its path or unit, clears the pins"
                .to_owned(),
            (None, _) => {
                "not attached any more: left-over pins, cleared by the next enforce".to_owned()
            }
        };
        writeln!(out, "{cgroup} (cgroup id {}): {state}", e.cgroup_id)?;
        match &e.origin {
            Some(Origin {
                unit: Some(unit),
                persisted: true,
                ..
            }) => writeln!(
                out,
                "  for {unit}, persisted: systemd enforces it again at every start"
            )?,
            Some(Origin {
                unit: Some(unit), ..
            }) => writeln!(out, "  for {unit}, not persisted")?,
            Some(o) => writeln!(out, "  for the cgroup {}", o.path.display())?,
            None => {}
        }
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
    fn status_summary(&self, all: &[Enforcement], units: &[String]) -> anyhow::Result<()> {
        let enforcements = all.len() as u64;
        let attached = all.iter().filter(|e| e.attachment.is_some()).count() as u64;
        if self.json {
            json::print(&Message::EnforceSummary(EnforceSummary {
                enforcements,
                attached,
                persisted_units: units.to_vec(),
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        if enforcements == 0 {
            writeln!(out, "keepalive is not enforced on any cgroup")?;
        }
        if !units.is_empty() {
            writeln!(
                out,
                "persisted (enforced at every start): {}",
                units.join(", ")
            )?;
        }
        Ok(())
    }

    fn removed(&self, r: &Removed, unpersisted: &[PathBuf], reloaded: bool) -> anyhow::Result<()> {
        if self.json {
            json::print(&Message::Removed(json::Removed {
                cgroup: r.cgroup.as_deref(),
                cgroup_id: r.cgroup_id,
                unit: r.unit.as_deref(),
                detached: r
                    .detached
                    .iter()
                    .map(|a: &Attachment| Detached {
                        prog_id: a.prog_id,
                        link_id: a.link_id,
                    })
                    .collect(),
                setsockopt_detached: r
                    .detached_setsockopt
                    .iter()
                    .map(|a| Detached {
                        prog_id: a.prog_id,
                        link_id: a.link_id,
                    })
                    .collect(),
                unpinned: r.unpinned.as_deref(),
                left_over: r.left_over.iter().map(PathBuf::as_path).collect(),
                unpersisted: unpersisted.iter().map(PathBuf::as_path).collect(),
                reloaded,
            }))?;
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let what = match (&r.unit, &r.cgroup) {
            (Some(unit), _) => unit.clone(),
            (None, Some(cgroup)) => cgroup.display().to_string(),
            (None, None) => "it".to_owned(),
        };
        if r.is_empty() && unpersisted.is_empty() {
            writeln!(
                out,
                "keepalive is not enforced on {what}: nothing to remove"
            )?;
            return Ok(());
        }
        let from = r
            .cgroup
            .as_deref()
            .map_or_else(|| what.clone(), |c| c.display().to_string());
        for a in &r.detached {
            writeln!(
                out,
                "detached program {} (link {}) from {from}",
                a.prog_id, a.link_id,
            )?;
        }
        for a in &r.detached_setsockopt {
            writeln!(
                out,
                "detached setsockopt program {} (link {}) from {from}",
                a.prog_id, a.link_id,
            )?;
        }
        if let Some(dir) = &r.unpinned {
            writeln!(out, "removed the pins in {}", dir.display())?;
        }
        for dir in &r.left_over {
            writeln!(
                out,
                "removed the pins in {} (their cgroup is gone)",
                dir.display()
            )?;
        }
        for file in unpersisted {
            writeln!(out, "removed {}", file.display())?;
        }
        if reloaded {
            writeln!(out, "reloaded systemd (systemctl daemon-reload)")?;
        }
        writeln!(
            out,
            "new connections of {what} no longer get keepalive from the kernel; existing ones keep theirs"
        )?;
        Ok(())
    }
}

/// `1 process`, `2 processes`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_idle, parse_probes, parse_user_timeout_arg};

    #[test]
    fn existing_via_the_variable() {
        use std::ffi::OsStr;
        assert_eq!(existing_via(None).unwrap(), keepalive_bpf::Via::Auto);
        assert_eq!(
            existing_via(Some(OsStr::new("pidfd"))).unwrap(),
            keepalive_bpf::Via::Pidfd
        );
        assert_eq!(
            existing_via(Some(OsStr::new("iterator"))).unwrap(),
            keepalive_bpf::Via::Iterator
        );
        let err = existing_via(Some(OsStr::new("ptrace"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KEEPALIVE_EXISTING_VIA takes `iterator` or `pidfd`"
        );
    }

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
