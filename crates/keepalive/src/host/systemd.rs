//! systemd units, for `keepalive enforce --unit`: where a unit's cgroup is,
//! and the files that make systemd re-enforce keepalive at every start of a
//! unit (its restarts and the host's reboots).
//!
//! A BPF link dies with its cgroup, and systemd makes a new cgroup at every
//! start of a unit, so an enforcement must be made again at every start,
//! by systemd itself:
//!
//! - a **service** gets the drop-in `/etc/systemd/system/NAME.d/50-keepalive.conf`
//!   with `ExecStartPre=-+KEEPALIVE enforce --unit NAME SETTINGS`. systemd
//!   runs it inside the unit's new cgroup before the main process starts,
//!   so the program's first connection already has keepalive. `+`: with
//!   full privileges whatever `User=` and the sandboxing say; `-`: a
//!   failure (keepalive uninstalled, a kernel without BPF) is logged but
//!   never stops the service from starting.
//! - a **slice** runs nothing of its own: our template unit
//!   [`SLICE_TEMPLATE`] is instantiated for it (`keepalive-enforce@NAME.service`,
//!   bound to the slice and started after it), enabled for
//!   `multi-user.target` (reboots) and for the slice itself (the slice's
//!   own restarts), with a drop-in that sets its `ExecStart=` to the same
//!   command line.
//!
//! Every file is written atomically ([`write_atomic`]) under a root
//! directory (`/` on a host; an image or a test directory otherwise).
//! Enabling creates the symlinks `systemctl enable` would; reloading
//! systemd and asking it about units is [`Systemctl`]'s business (the
//! `systemctl` found on `PATH`, so that a test may put its own first).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::write_atomic;

/// Where the administrator's unit files and drop-ins live, under the root.
pub const SYSTEM_UNIT_DIR: &str = "etc/systemd/system";
/// Where packages ship unit files, under the root, searched in this order
/// after [`SYSTEM_UNIT_DIR`].
pub const VENDOR_UNIT_DIRS: [&str; 2] = ["usr/lib/systemd/system", "lib/systemd/system"];
/// The name of our drop-in in `NAME.d/`.
pub const UNIT_DROPIN: &str = "50-keepalive.conf";
/// Our template unit for slices, shipped in the package (and written to
/// [`SYSTEM_UNIT_DIR`] by [`persist_unit`] when no copy is installed).
pub const SLICE_TEMPLATE: &str = "keepalive-enforce@.service";
/// The text of [`SLICE_TEMPLATE`], as `packaging/systemd/` ships it.
pub const SLICE_TEMPLATE_TEXT: &str = "\
[Unit]
Description=TCP keepalive enforced on %i
Documentation=man:keepalive-enforce(1)
# The slice's cgroup must exist; when the slice stops, so does this unit,
# and the slice's next start starts it again (WantedBy=%i).
BindsTo=%i
After=%i

[Service]
Type=oneshot
RemainAfterExit=yes
# The settings come from the drop-in `keepalive enforce --unit NAME
# --persist` writes beside this instance, which replaces this line.
ExecStart=/usr/bin/keepalive enforce --unit %i

[Install]
WantedBy=multi-user.target %i
";

/// The first line of every file we write: how to tell ours from others.
const MARK: &str = "# Written by `keepalive enforce --persist`";

/// What kind of unit a name is, by its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// `*.service`: persisted by an `ExecStartPre=` drop-in.
    Service,
    /// `*.slice`: persisted by an instance of [`SLICE_TEMPLATE`].
    Slice,
    /// `*.scope`: made at run time by whoever starts it; cannot be persisted.
    Scope,
}

/// Why a unit name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNameError {
    /// Not a unit with a cgroup of its own we may enforce on.
    #[error(
        "{name:?} is not a service, slice or scope unit: give the full name, e.g. `app.service`, \
         `system.slice` (`systemctl list-units --type=service,slice` lists them)"
    )]
    Kind {
        /// The name given.
        name: String,
    },
    /// Characters systemd does not allow in a unit name.
    #[error(
        "{name:?} is not a valid unit name (letters, digits and `:-_.\\@` only; \
         `systemd-escape` makes one)"
    )]
    Invalid {
        /// The name given.
        name: String,
    },
}

/// The kind of the unit `name`, after checking it is a valid unit name
/// (systemd.unit(5): at most 255 bytes of ASCII letters, digits, `:-_.\`,
/// and `@` before the instance).
pub fn unit_kind(name: &str) -> Result<UnitKind, UnitNameError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b));
    if !valid {
        return Err(UnitNameError::Invalid {
            name: name.to_owned(),
        });
    }
    let (stem, suffix) = name.rsplit_once('.').unwrap_or((name, ""));
    if stem.is_empty() {
        return Err(UnitNameError::Invalid {
            name: name.to_owned(),
        });
    }
    match suffix {
        "service" => Ok(UnitKind::Service),
        "slice" => Ok(UnitKind::Slice),
        "scope" => Ok(UnitKind::Scope),
        _ => Err(UnitNameError::Kind {
            name: name.to_owned(),
        }),
    }
}

/// What systemd says about a unit (`systemctl show`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `LoadState`: `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `ActiveState`: `active`, `inactive`, `activating`, `failed`, ...
    pub active_state: String,
    /// `ControlGroup`: its cgroup, as /proc/PID/cgroup writes it
    /// (`/system.slice/app.service`); `None` while it has none (not running).
    pub control_group: Option<String>,
}

impl UnitState {
    /// The properties [`Systemctl::show`] asks for.
    pub const PROPERTIES: [&'static str; 3] = ["LoadState", "ActiveState", "ControlGroup"];

    /// Parses `systemctl show -p LoadState -p ActiveState -p ControlGroup`
    /// output: `KEY=VALUE` lines, in any order.
    pub fn parse(text: &str) -> UnitState {
        let mut state = UnitState::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "LoadState" => state.load_state = value.to_owned(),
                "ActiveState" => state.active_state = value.to_owned(),
                "ControlGroup" if !value.is_empty() => {
                    state.control_group = Some(value.to_owned());
                }
                _ => {}
            }
        }
        state
    }
}

/// Why asking systemd failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemctlError {
    /// `systemctl` could not be run at all.
    #[error("cannot run systemctl (is systemd installed?)")]
    Spawn(#[source] io::Error),
    /// It ran and failed.
    #[error("`systemctl {args}` failed: {message}")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it printed on stderr (its last line), or its exit status.
        message: String,
    },
}

/// Runs `systemctl`, the one found on `PATH` (or another program, for tests).
#[derive(Clone, Debug)]
pub struct Systemctl {
    program: PathBuf,
}

impl Default for Systemctl {
    fn default() -> Systemctl {
        Systemctl::new("systemctl")
    }
}

impl Systemctl {
    /// `program` in place of `systemctl`.
    pub fn new(program: impl Into<PathBuf>) -> Systemctl {
        Systemctl {
            program: program.into(),
        }
    }

    fn run(&self, args: &[&str]) -> Result<String, SystemctlError> {
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(SystemctlError::Spawn)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or_else(|| out.status.to_string(), |l| l.trim().to_owned());
        Err(SystemctlError::Failed {
            args: args.join(" "),
            message,
        })
    }

    /// `systemctl show -p LoadState -p ActiveState -p ControlGroup -- UNIT`.
    pub fn show(&self, unit: &str) -> Result<UnitState, SystemctlError> {
        let mut args = vec!["show"];
        for p in UnitState::PROPERTIES {
            args.extend(["-p", p]);
        }
        args.extend(["--", unit]);
        Ok(UnitState::parse(&self.run(&args)?))
    }

    /// `systemctl daemon-reload`: systemd reads the unit files again.
    pub fn daemon_reload(&self) -> Result<(), SystemctlError> {
        self.run(&["daemon-reload"]).map(drop)
    }

    /// `systemctl stop -- UNIT`.
    pub fn stop(&self, unit: &str) -> Result<(), SystemctlError> {
        self.run(&["stop", "--", unit]).map(drop)
    }
}

/// `ARGS` as one systemd command line (systemd.service(5), "Command
/// lines"): each word quoted when it needs to be, `%` (specifiers) and `$`
/// (variables) doubled so that systemd passes them through.
pub fn command_line<S: AsRef<OsStr>>(words: &[S]) -> String {
    let mut line = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let word = String::from_utf8_lossy(word.as_ref().as_bytes());
        let plain = !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%$".contains(&b));
        let word = word.replace('%', "%%").replace('$', "$$");
        if plain {
            line.push_str(&word);
            continue;
        }
        line.push('"');
        for c in word.chars() {
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                '\t' => line.push_str("\\t"),
                c => line.push(c),
            }
        }
        line.push('"');
    }
    line
}

/// The files that persist an enforcement on `unit`, under `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistPaths {
    /// The drop-in holding the command line.
    pub dropin: PathBuf,
    /// The `.wants/` symlinks that enable our instance (slices only).
    pub wants: Vec<PathBuf>,
    /// Our instance's name (slices only).
    pub instance: Option<String>,
}

impl PersistPaths {
    /// For `unit` of `kind` under `root`; `None` for a scope, which cannot
    /// be persisted.
    pub fn new(root: &Path, unit: &str, kind: UnitKind) -> Option<PersistPaths> {
        let dir = root.join(SYSTEM_UNIT_DIR);
        match kind {
            UnitKind::Service => Some(PersistPaths {
                dropin: dir.join(format!("{unit}.d")).join(UNIT_DROPIN),
                wants: Vec::new(),
                instance: None,
            }),
            UnitKind::Slice => {
                let instance = slice_instance(unit);
                Some(PersistPaths {
                    dropin: dir.join(format!("{instance}.d")).join(UNIT_DROPIN),
                    wants: ["multi-user.target", unit]
                        .iter()
                        .map(|t| dir.join(format!("{t}.wants")).join(&instance))
                        .collect(),
                    instance: Some(instance),
                })
            }
            UnitKind::Scope => None,
        }
    }
}

/// `keepalive-enforce@SLICE.service`.
pub fn slice_instance(slice: &str) -> String {
    format!("{TEMPLATE_PREFIX}{slice}.service")
}

/// [`SLICE_TEMPLATE`]'s name up to its instance.
const TEMPLATE_PREFIX: &str = "keepalive-enforce@";

/// The drop-in's text for `unit`: `command` (program and arguments) run
/// at every start of the service, or as our instance's `ExecStart=`.
pub fn dropin_text<S: AsRef<OsStr>>(unit: &str, kind: UnitKind, command: &[S]) -> String {
    let mut text = format!(
        "{MARK} for {unit};\n# `keepalive enforce --unit {unit} --remove` removes it.\n[Service]\n"
    );
    let line = command_line(command);
    match kind {
        UnitKind::Slice => {
            let _ = write!(text, "ExecStart=\nExecStart={line}\n");
        }
        UnitKind::Service | UnitKind::Scope => {
            let _ = writeln!(text, "ExecStartPre=-+{line}");
        }
    }
    text
}

/// What [`persist_unit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitPersisted {
    /// The drop-in.
    pub dropin: PathBuf,
    /// False when it already held this text (and the unit was enabled).
    pub changed: bool,
    /// [`SLICE_TEMPLATE`], written because no copy was installed.
    pub template_written: Option<PathBuf>,
}

/// Why persisting or unpersisting failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistUnitError {
    /// A scope is made at run time; nothing starts it again.
    #[error(
        "{unit} is a scope, made at run time by whoever starts it: it cannot be persisted; \
         enforce on the slice it runs in (--unit NAME.slice --persist)"
    )]
    Scope {
        /// The unit.
        unit: String,
    },
    /// A file could not be written or removed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PersistUnitError {
    let path = path.to_path_buf();
    move |source| PersistUnitError::Io { what, path, source }
}

/// Writes the drop-in (and for a slice, enables our instance) under
/// `root` so that systemd runs `command` at every start of `unit`. Does
/// not reload systemd ([`Systemctl::daemon_reload`]).
pub fn persist_unit<S: AsRef<OsStr>>(
    root: &Path,
    unit: &str,
    kind: UnitKind,
    command: &[S],
) -> Result<UnitPersisted, PersistUnitError> {
    let scope = || PersistUnitError::Scope {
        unit: unit.to_owned(),
    };
    let paths = PersistPaths::new(root, unit, kind).ok_or_else(scope)?;
    let text = dropin_text(unit, kind, command);
    let mut changed = fs::read_to_string(&paths.dropin).ok().as_deref() != Some(text.as_str());
    if changed {
        write_atomic(&paths.dropin, text.as_bytes(), 0o644)
            .map_err(io_err("write", &paths.dropin))?;
    }
    let mut template_written = None;
    if kind == UnitKind::Slice {
        let template = match installed_template(root) {
            Some(t) => t,
            None => {
                let t = root.join(SYSTEM_UNIT_DIR).join(SLICE_TEMPLATE);
                write_atomic(&t, SLICE_TEMPLATE_TEXT.as_bytes(), 0o644)
                    .map_err(io_err("write", &t))?;
                template_written = Some(t.clone());
                t
            }
        };
        // The target systemctl enable writes: the template's path as seen
        // from the root.
        let target = Path::new("/").join(template.strip_prefix(root).unwrap_or(&template));
        for link in &paths.wants {
            if fs::read_link(link).ok().as_deref() == Some(target.as_path()) {
                continue;
            }
            changed = true;
            let dir = link.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            let tmp = dir.join(format!(".keepalive-{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("create", &tmp))?;
            fs::rename(&tmp, link).map_err(io_err("create", link))?;
        }
    }
    Ok(UnitPersisted {
        dropin: paths.dropin,
        changed,
        template_written,
    })
}

/// [`SLICE_TEMPLATE`] where it is installed under `root`, if it is.
fn installed_template(root: &Path) -> Option<PathBuf> {
    std::iter::once(SYSTEM_UNIT_DIR)
        .chain(VENDOR_UNIT_DIRS)
        .map(|d| root.join(d).join(SLICE_TEMPLATE))
        .find(|p| p.is_file())
}

/// Removes what [`persist_unit`] wrote for `unit` under `root` (the drop-in,
/// its directory when it is left empty, our instance's symlinks; never a
/// template). Returns the files removed, none when it was not persisted.
pub fn unpersist_unit(
    root: &Path,
    unit: &str,
    kind: UnitKind,
) -> Result<Vec<PathBuf>, PersistUnitError> {
    let Some(paths) = PersistPaths::new(root, unit, kind) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for file in std::iter::once(&paths.dropin).chain(&paths.wants) {
        if file == &paths.dropin && !is_ours(file) {
            continue;
        }
        match fs::remove_file(file) {
            Ok(()) => removed.push(file.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", file)(e)),
        }
        // Only when empty: other drop-ins are not ours.
        if let Some(dir) = file.parent() {
            let _ = fs::remove_dir(dir);
        }
    }
    Ok(removed)
}

fn is_ours(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARK))
}

/// True when `unit` has our drop-in under `root`.
pub fn unit_is_persisted(root: &Path, unit: &str, kind: UnitKind) -> bool {
    PersistPaths::new(root, unit, kind).is_some_and(|p| is_ours(&p.dropin))
}

/// Every unit with our drop-in under `root`, sorted: `NAME.service.d/`
/// for services, `keepalive-enforce@NAME.slice.service.d/` for slices.
pub fn persisted_units(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.join(SYSTEM_UNIT_DIR)) else {
        return Vec::new();
    };
    let mut units: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let unit = name.strip_suffix(".d")?;
            if !is_ours(&e.path().join(UNIT_DROPIN)) {
                return None;
            }
            let slice = unit
                .strip_prefix(TEMPLATE_PREFIX)
                .and_then(|u| u.strip_suffix(".service"));
            Some(slice.unwrap_or(unit).to_owned())
        })
        .collect();
    units.sort();
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_kinds_by_suffix() {
        assert_eq!(unit_kind("app.service"), Ok(UnitKind::Service));
        assert_eq!(unit_kind("getty@tty1.service"), Ok(UnitKind::Service));
        assert_eq!(unit_kind("kubepods-burstable.slice"), Ok(UnitKind::Slice));
        assert_eq!(unit_kind("session-4.scope"), Ok(UnitKind::Scope));
        assert!(matches!(unit_kind("app"), Err(UnitNameError::Kind { .. })));
        assert!(matches!(
            unit_kind("app.socket"),
            Err(UnitNameError::Kind { .. })
        ));
        assert!(matches!(
            unit_kind("a b.service"),
            Err(UnitNameError::Invalid { .. })
        ));
        assert!(matches!(
            unit_kind(".service"),
            Err(UnitNameError::Invalid { .. })
        ));
        assert!(matches!(
            unit_kind("../x.service"),
            Err(UnitNameError::Invalid { .. })
        ));
        assert!(matches!(unit_kind(""), Err(UnitNameError::Invalid { .. })));
    }

    #[test]
    fn show_output_in_any_order() {
        let s = UnitState::parse(
            "ControlGroup=/system.slice/app.service\nLoadState=loaded\nActiveState=active\n",
        );
        assert_eq!(
            s,
            UnitState {
                load_state: "loaded".into(),
                active_state: "active".into(),
                control_group: Some("/system.slice/app.service".into()),
            }
        );
        let stopped = UnitState::parse("LoadState=loaded\nActiveState=inactive\nControlGroup=\n");
        assert_eq!(stopped.control_group, None);
        assert_eq!(stopped.active_state, "inactive");
    }

    #[test]
    fn command_lines_quote_what_systemd_would_split_or_expand() {
        assert_eq!(
            command_line(&[
                "/usr/bin/keepalive",
                "enforce",
                "--unit",
                "a@b.service",
                "--idle",
                "60"
            ]),
            "/usr/bin/keepalive enforce --unit a@b.service --idle 60"
        );
        assert_eq!(
            command_line(&[
                "/opt/my tools/keepalive",
                "x\\x2dy.service",
                "",
                "50%",
                "$HOME",
                "a\"b"
            ]),
            "\"/opt/my tools/keepalive\" \"x\\\\x2dy.service\" \"\" 50%% $$HOME \"a\\\"b\""
        );
    }

    #[test]
    fn service_dropin_text() {
        let text = dropin_text(
            "app.service",
            UnitKind::Service,
            &[
                "/usr/bin/keepalive",
                "enforce",
                "--unit",
                "app.service",
                "--idle",
                "60",
            ],
        );
        assert_eq!(
            text,
            "# Written by `keepalive enforce --persist` for app.service;\n\
             # `keepalive enforce --unit app.service --remove` removes it.\n\
             [Service]\n\
             ExecStartPre=-+/usr/bin/keepalive enforce --unit app.service --idle 60\n"
        );
    }

    #[test]
    fn service_persist_and_unpersist() {
        let root = tempfile::tempdir().unwrap();
        let cmd = ["/usr/bin/keepalive", "enforce", "--unit", "app.service"];
        assert!(!unit_is_persisted(
            root.path(),
            "app.service",
            UnitKind::Service
        ));
        let p = persist_unit(root.path(), "app.service", UnitKind::Service, &cmd).unwrap();
        let dropin = root
            .path()
            .join("etc/systemd/system/app.service.d/50-keepalive.conf");
        assert_eq!((p.dropin.as_path(), p.changed), (dropin.as_path(), true));
        assert!(unit_is_persisted(
            root.path(),
            "app.service",
            UnitKind::Service
        ));
        assert_eq!(persisted_units(root.path()), ["app.service"]);
        // Again: nothing to change.
        let again = persist_unit(root.path(), "app.service", UnitKind::Service, &cmd).unwrap();
        assert!(!again.changed);
        // Someone else's drop-in beside ours stays, and so does the directory.
        let theirs = dropin.with_file_name("10-limits.conf");
        fs::write(&theirs, "[Service]\nLimitNOFILE=4096\n").unwrap();
        assert_eq!(
            unpersist_unit(root.path(), "app.service", UnitKind::Service).unwrap(),
            std::slice::from_ref(&dropin)
        );
        assert!(!dropin.exists() && theirs.exists());
        assert!(persisted_units(root.path()).is_empty());
        assert!(
            unpersist_unit(root.path(), "app.service", UnitKind::Service)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_dropin_not_ours_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let paths = PersistPaths::new(root.path(), "app.service", UnitKind::Service).unwrap();
        fs::create_dir_all(paths.dropin.parent().unwrap()).unwrap();
        fs::write(&paths.dropin, "[Service]\nEnvironment=A=1\n").unwrap();
        assert!(!unit_is_persisted(
            root.path(),
            "app.service",
            UnitKind::Service
        ));
        assert!(
            unpersist_unit(root.path(), "app.service", UnitKind::Service)
                .unwrap()
                .is_empty()
        );
        assert!(paths.dropin.exists());
    }

    #[test]
    fn slice_persist_enables_our_instance() {
        let root = tempfile::tempdir().unwrap();
        let cmd = ["/usr/bin/keepalive", "enforce", "--unit", "kubepods.slice"];
        let p = persist_unit(root.path(), "kubepods.slice", UnitKind::Slice, &cmd).unwrap();
        let units = root.path().join("etc/systemd/system");
        assert_eq!(
            p.dropin,
            units.join("keepalive-enforce@kubepods.slice.service.d/50-keepalive.conf")
        );
        assert_eq!(
            fs::read_to_string(&p.dropin).unwrap(),
            "# Written by `keepalive enforce --persist` for kubepods.slice;\n\
             # `keepalive enforce --unit kubepods.slice --remove` removes it.\n\
             [Service]\nExecStart=\n\
             ExecStart=/usr/bin/keepalive enforce --unit kubepods.slice\n"
        );
        // No template installed: ours was written, and the instance enabled.
        let template = units.join("keepalive-enforce@.service");
        assert_eq!(p.template_written.as_deref(), Some(template.as_path()));
        assert_eq!(fs::read_to_string(&template).unwrap(), SLICE_TEMPLATE_TEXT);
        for wants in ["multi-user.target.wants", "kubepods.slice.wants"] {
            assert_eq!(
                fs::read_link(
                    units
                        .join(wants)
                        .join("keepalive-enforce@kubepods.slice.service")
                )
                .unwrap(),
                Path::new("/etc/systemd/system/keepalive-enforce@.service"),
                "{wants}"
            );
        }
        assert_eq!(persisted_units(root.path()), ["kubepods.slice"]);

        let removed = unpersist_unit(root.path(), "kubepods.slice", UnitKind::Slice).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(persisted_units(root.path()).is_empty());
        assert!(!units.join("multi-user.target.wants").exists());
        assert!(template.exists(), "the template stays");
    }

    #[test]
    fn an_installed_template_is_linked_not_written() {
        let root = tempfile::tempdir().unwrap();
        let vendor = root.path().join("usr/lib/systemd/system");
        fs::create_dir_all(&vendor).unwrap();
        fs::write(vendor.join(SLICE_TEMPLATE), SLICE_TEMPLATE_TEXT).unwrap();
        let p = persist_unit(
            root.path(),
            "system.slice",
            UnitKind::Slice,
            &["/bin/keepalive"],
        )
        .unwrap();
        assert_eq!(p.template_written, None);
        assert_eq!(
            fs::read_link(
                root.path()
                    .join("etc/systemd/system/multi-user.target.wants")
                    .join("keepalive-enforce@system.slice.service")
            )
            .unwrap(),
            Path::new("/usr/lib/systemd/system/keepalive-enforce@.service")
        );
    }

    #[test]
    fn a_scope_cannot_be_persisted() {
        let root = tempfile::tempdir().unwrap();
        let err =
            persist_unit(root.path(), "session-4.scope", UnitKind::Scope, &["x"]).unwrap_err();
        assert!(matches!(err, PersistUnitError::Scope { .. }), "{err}");
    }

    #[test]
    fn the_packaged_template_is_this_text() {
        let packaged = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../packaging/systemd")
            .join(SLICE_TEMPLATE);
        assert_eq!(fs::read_to_string(&packaged).unwrap(), SLICE_TEMPLATE_TEXT);
    }

    #[test]
    fn a_missing_systemctl_is_named() {
        let err = Systemctl::new("/nonexistent/systemctl")
            .show("app.service")
            .unwrap_err();
        assert!(matches!(err, SystemctlError::Spawn(_)), "{err}");
    }

    #[test]
    fn systemctl_failure_carries_its_last_stderr_line() {
        let err = Systemctl::new("sh").run(&["-c", "echo one >&2; echo two >&2; exit 1"]);
        match err {
            Err(SystemctlError::Failed { message, .. }) => assert_eq!(message, "two"),
            other => panic!("{other:?}"),
        }
    }
}
