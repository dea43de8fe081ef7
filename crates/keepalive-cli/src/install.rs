//! `keepalive install` and `keepalive uninstall`: the library in
//! [`LIBDIR`] and, with `--global`, its entry in /etc/ld.so.preload, which
//! makes the loader preload it into every dynamically linked program.
//!
//! A global preload reaches every program on the host, so nothing is
//! written before it is known to work: the library is test-loaded into
//! `keepalive check` first (ld.so only prints an error and runs the program
//! anyway when a preload does not load, so the exit status alone proves
//! nothing). Every file is replaced atomically, so a program starting
//! meanwhile sees the old file or the new one; in particular a running
//! program that has the library mapped keeps the old copy.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keepalive::{LD_SO_PRELOAD, LdSoPreload, write_atomic};

use crate::cli::{InstallArgs, UninstallArgs};
use crate::exit::Exit;
use crate::library::{self, FILE_NAME, LIBDIR};

/// Mode of the files we create.
const MODE: u32 = 0o644;

/// How long the test-load may take: `keepalive check` runs in milliseconds,
/// so only a library that hangs in its constructor reaches this.
const TEST_LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What `keepalive check` prints first when the socket has keepalive on.
const KEEPALIVE_ON: &str = "SO_KEEPALIVE is ON";

/// The installed library as the loader sees it from inside the root:
/// the entry written to /etc/ld.so.preload.
fn installed_library() -> PathBuf {
    Path::new(LIBDIR).join(FILE_NAME)
}

pub fn install(args: &InstallArgs) -> anyhow::Result<Exit> {
    let action = if args.global {
        "install --global"
    } else {
        "install"
    };
    let root = Root::new(args.root.as_deref(), action)?;
    let source = match &args.library {
        Some(path) => std::path::absolute(path)
            .with_context(|| format!("--library {}: bad path", path.display()))?,
        None => library::find()?,
    };
    let entry = installed_library();
    let target = root.host(&entry);
    let mut out = io::stdout().lock();

    // Nothing is written before the library is known to load.
    if args.global {
        test_load(&source)?;
    }
    let copied = copy_library(&source, &target)?;
    if args.global
        && let Err(err) = test_load(&target)
    {
        // It loaded from where it was but not from where it went (a noexec
        // mount?): put the target back, so that "not installed" is true.
        copied.undo(&target)?;
        return Err(err);
    }
    match copied {
        Copied::Unchanged => writeln!(out, "{} is up to date", target.display())?,
        Copied::Replaced { .. } => {
            writeln!(out, "copied {} to {}", source.display(), target.display())?
        }
    }
    if !args.global {
        return Ok(Exit::Success);
    }

    let file = root.host(Path::new(LD_SO_PRELOAD));
    let existing = read_if_exists(&file)?;
    let mode = existing.as_ref().map_or(MODE, |e| e.mode);
    let mut preload = LdSoPreload::new(existing.map(|e| e.bytes).unwrap_or_default());
    for other in preload.entries() {
        if other != entry && other.file_name() == Some(OsStr::new(FILE_NAME)) {
            writeln!(
                out,
                "warning: {} also preloads {}: remove one of the two, or both will act on \
                 every socket",
                file.display(),
                other.display()
            )?;
        }
    }
    if preload.add(&entry)? {
        write_atomic(&file, preload.as_bytes(), mode)?;
        writeln!(out, "added {} to {}", entry.display(), file.display())?;
    } else {
        writeln!(
            out,
            "already installed: {} preloads {}",
            file.display(),
            entry.display()
        )?;
    }
    write!(out, "{}", global_note())?;
    Ok(Exit::Success)
}

pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<Exit> {
    let root = Root::new(args.root.as_deref(), "uninstall --global")?;
    let entry = installed_library();
    let file = root.host(Path::new(LD_SO_PRELOAD));
    let mut out = io::stdout().lock();
    let Some(existing) = read_if_exists(&file)? else {
        writeln!(out, "not installed: {} does not exist", file.display())?;
        return Ok(Exit::Success);
    };
    let mut preload = LdSoPreload::new(existing.bytes);
    if !preload.remove(&entry) {
        writeln!(
            out,
            "not installed: {} does not preload {}",
            file.display(),
            entry.display()
        )?;
        return Ok(Exit::Success);
    }
    if preload.is_blank() {
        remove_file(&file)?;
        writeln!(
            out,
            "removed {} (it preloaded nothing else)",
            file.display()
        )?;
    } else {
        write_atomic(&file, preload.as_bytes(), existing.mode)?;
        writeln!(out, "removed {} from {}", entry.display(), file.display())?;
    }
    writeln!(
        out,
        "Programs started from now on are not preloaded; running ones keep the library \
         until they restart. {} stays in place for `keepalive run`.",
        root.host(&entry).display()
    )?;
    Ok(Exit::Success)
}

/// What a global preload means, printed after `install --global`.
fn global_note() -> String {
    "Every dynamically linked program started from now on gets TCP keepalive \
     (running ones once they restart).\n\
     Values a program's environment does not set (KEEPIDLE, KEEPINTVL, KEEPCNT) \
     come from the kernel defaults: see `keepalive sysctl`.\n\
     Opt one program out with KEEPALIVE=off; undo with `keepalive uninstall --global`.\n"
        .to_owned()
}

/// The directory tree to act in: `/`, or `--root DIR`.
struct Root {
    dir: Option<PathBuf>,
}

impl Root {
    /// Without `dir` (the live system) this needs root: refused before
    /// anything is written, naming the fix.
    fn new(dir: Option<&Path>, action: &str) -> anyhow::Result<Root> {
        match dir {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!(
                        "--root {} is not a directory: create it first, or fix the path",
                        dir.display()
                    );
                }
                Ok(Root {
                    dir: Some(dir.to_owned()),
                })
            }
            None => {
                let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
                // Unknown (no /proc): let the writes themselves fail.
                if effective_uid(&status).is_some_and(|uid| uid != 0) {
                    bail!(
                        "`keepalive {action}` changes system files and needs root: run it \
                         with sudo (`sudo keepalive {action}`), or pass --root DIR to act on \
                         a directory tree"
                    );
                }
                Ok(Root { dir: None })
            }
        }
    }

    /// Where the absolute `path` of the tree is on this host.
    fn host(&self, path: &Path) -> PathBuf {
        match &self.dir {
            None => path.to_owned(),
            Some(dir) => dir.join(path.strip_prefix("/").unwrap_or(path)),
        }
    }
}

/// The effective uid from the text of /proc/self/status
/// (`Uid:  real  effective  saved  fs`).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What [`copy_library`] did.
enum Copied {
    /// The target already held the same bytes.
    Unchanged,
    /// The target was written; it held `previous` before (`None`: absent).
    Replaced { previous: Option<Existing> },
}

impl Copied {
    /// Puts the target back as it was.
    fn undo(self, target: &Path) -> anyhow::Result<()> {
        match self {
            Copied::Unchanged => Ok(()),
            Copied::Replaced { previous: None } => remove_file(target),
            Copied::Replaced {
                previous: Some(previous),
            } => Ok(write_atomic(target, &previous.bytes, previous.mode)?),
        }
    }
}

/// Copies `source` to `target` (mode 0644, atomically), unless `target`
/// already holds the same bytes.
fn copy_library(source: &Path, target: &Path) -> anyhow::Result<Copied> {
    let bytes = fs::read(source)
        .with_context(|| format!("cannot read the library {}", source.display()))?;
    let previous = read_if_exists(target)?;
    if previous.as_ref().is_some_and(|p| p.bytes == bytes) {
        return Ok(Copied::Unchanged);
    }
    write_atomic(target, &bytes, MODE)?;
    Ok(Copied::Replaced { previous })
}

/// A file's content and permission bits.
struct Existing {
    bytes: Vec<u8>,
    mode: u32,
}

fn read_if_exists(path: &Path) -> anyhow::Result<Option<Existing>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut bytes = Vec::new();
    let mode = file
        .metadata()
        .and_then(|m| {
            file.read_to_end(&mut bytes)?;
            Ok(m.permissions().mode() & 0o7777)
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(Existing { bytes, mode }))
}

/// Removes `path` and makes the removal durable, as [`write_atomic`] does
/// for a replacement.
fn remove_file(path: &Path) -> anyhow::Result<()> {
    fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

/// Proves that `lib` loads and switches keepalive on: runs this executable's
/// `check` with `LD_PRELOAD=lib` and none of the preload's variables, and
/// wants `SO_KEEPALIVE is ON`, exit status 0 and no loader error about it.
fn test_load(lib: &Path) -> anyhow::Result<()> {
    let (dir, name) = match (lib.parent(), lib.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => bail!("{} is not a library file", lib.display()),
    };
    // LD_PRELOAD splits on spaces and colons: name the file relative to
    // its directory, so that only the file name has to be free of them.
    if name.as_bytes().iter().any(|b| b" \t\n:".contains(b)) {
        bail!(
            "cannot test-load {}: LD_PRELOAD cannot name a file whose name holds a space, \
             tab or colon; rename it",
            lib.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the keepalive executable's path")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("check")
        .current_dir(dir)
        .env("LD_PRELOAD", Path::new(".").join(name));
    for (var, _) in std::env::vars_os() {
        let bytes = var.as_bytes();
        if bytes.starts_with(b"KEEP") || bytes == b"TCP_USER_TIMEOUT" || bytes == b"LD_DEBUG" {
            cmd.env_remove(&var);
        }
    }
    let out = output_within(&mut cmd, TEST_LOAD_TIMEOUT)
        .with_context(|| format!("cannot test-load {}", lib.display()))?;
    // ld.so(8): "ERROR: ld.so: object './x.so' from LD_PRELOAD cannot be
    // preloaded (invalid ELF header): ignored." Lines about entries of the
    // live /etc/ld.so.preload say "from /etc/ld.so.preload" instead.
    if let Some(line) = out
        .stderr
        .lines()
        .find(|l| l.contains("cannot be preloaded") && l.contains("from LD_PRELOAD"))
    {
        bail!(
            "{} does not load, so it was not installed; the loader said: {}",
            lib.display(),
            line.trim()
        );
    }
    if !out.status.success() || !out.stdout.starts_with(KEEPALIVE_ON) {
        let said = if out.stderr.trim().is_empty() {
            out.stdout.trim()
        } else {
            out.stderr.trim()
        };
        bail!(
            "{} loads but does not give a new socket keepalive, so it was not installed: \
             `{} check` under it ended with {} and printed {:?}; install the libkeepalive.so \
             built with this keepalive",
            lib.display(),
            exe.display(),
            out.status,
            said
        );
    }
    Ok(())
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with stdin closed and its output captured; kills it after
/// `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start it")?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it still ran after {limit:?} (killed); a library that hangs must not be preloaded"
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_field() {
        let status =
            "Name:\tkeepalive\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn root_maps_absolute_paths_inside_it() {
        let root = Root {
            dir: Some(PathBuf::from("/mnt/image")),
        };
        assert_eq!(
            root.host(Path::new("/etc/ld.so.preload")),
            Path::new("/mnt/image/etc/ld.so.preload")
        );
        let live = Root { dir: None };
        assert_eq!(
            live.host(Path::new("/etc/ld.so.preload")),
            Path::new("/etc/ld.so.preload")
        );
    }

    #[test]
    fn the_entry_is_the_installed_library() {
        assert_eq!(
            installed_library(),
            Path::new(LIBDIR).join("libkeepalive.so")
        );
    }
}
