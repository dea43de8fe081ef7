//! `keepalive install` and `keepalive uninstall`: the library in
//! [`LIBDIR`] and, with `--global`, its entry in /etc/ld.so.preload, which
//! makes the loader preload it into every dynamically linked program.
//!
//! The Debian package's library ([`PACKAGED`]) is already installed: it is
//! preloaded where it is, and never copied to [`LIBDIR`]. dpkg replaces it
//! atomically on an upgrade, and the package's prerm calls `keepalive
//! uninstall --global` before removing it.
//!
//! A global preload reaches every program on the host, so nothing is
//! written before it is known to work: the library is test-loaded into
//! `keepalive check` first (ld.so only prints an error and runs the program
//! anyway when a preload does not load, so the exit status alone proves
//! nothing), on every install, since an earlier `install --global` may
//! already preload the file being replaced; the installed copy is
//! test-loaded again, and the copy undone if it fails. The entry is only
//! added when programs not run as root can read the library too. Every
//! file is replaced atomically, so a program starting meanwhile sees the
//! old file or the new one; in particular a running program that has the
//! library mapped keeps the old copy. Nothing is written through a
//! symbolic link, ld.so.preload is edited under an exclusive lock on its
//! directory, and what the commands print comes after the work, so a
//! closed stdout cannot stop it halfway.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use keepalive::host::{LD_SO_PRELOAD, LdSoPreload, write_atomic};

use crate::cli::{InstallArgs, UninstallArgs};
use crate::exit::Exit;
use crate::library::{self, FILE_NAME, LIBDIR, PACKAGED};

mod test_load;
mod tree;

pub(crate) use test_load::test_load;
use tree::Root;

/// Mode of the files we create.
const MODE: u32 = 0o644;

/// Mode of the directories we create.
const DIR_MODE: u32 = 0o755;

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

/// Every entry `install --global` may write: the copy in [`LIBDIR`] and
/// the package's library. `uninstall --global` removes them all.
fn our_entries() -> [PathBuf; 2] {
    [installed_library(), PathBuf::from(PACKAGED)]
}

/// True when `source` is the package's library in the tree: the same file
/// as `<root>/usr/lib/keepalive/libkeepalive.so`. It is then preloaded in
/// place, not copied.
fn is_packaged(root: &Root, source: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let packaged = root.host(Path::new(PACKAGED));
    match (fs::metadata(source), fs::metadata(&packaged)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

pub fn install(args: &InstallArgs) -> anyhow::Result<Exit> {
    let mut said = Vec::new();
    let result = install_saying(args, &mut said);
    let printed = print_lines(&said);
    result.and_then(|exit| printed.map(|()| exit))
}

pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<Exit> {
    let mut said = Vec::new();
    let result = uninstall_saying(args, &mut said);
    let printed = print_lines(&said);
    result.and_then(|exit| printed.map(|()| exit))
}

/// Prints what install or uninstall did, once it is done: a closed stdout
/// (`keepalive install --global | true`) must not stop the work halfway,
/// and is no error once the work is done.
fn print_lines(lines: &[String]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let written = lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        // The work is done; a full disk under `> file` is still an error.
        Err(e) => Err(anyhow::Error::from(e).context("the work was done, but not reported")),
        Ok(()) => Ok(()),
    }
}

/// [`install`], with what it has to say pushed to `said`.
fn install_saying(args: &InstallArgs, said: &mut Vec<String>) -> anyhow::Result<Exit> {
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
    let packaged = is_packaged(&root, &source);
    let entry = if packaged {
        PathBuf::from(PACKAGED)
    } else {
        installed_library()
    };
    let target = root.host(&entry);
    let preload_path = Path::new(LD_SO_PRELOAD);

    // Nothing is written through a symbolic link, nor before the library
    // is known to load: an earlier `install --global` may have made every
    // program preload the file this replaces.
    root.refuse_symlinks(&path_parts(&entry))?;
    if args.global {
        root.refuse_symlinks(&preload_path_parts())?;
    }
    test_load(&source)?;
    if packaged {
        // dpkg owns the file: nothing to copy, and the test-load above was
        // of the very file the entry names.
        said.push(format!(
            "{} is the keepalive package's library: used where it is",
            target.display()
        ));
    } else {
        let copied = copy_library(&source, &target)?;
        if let Err(err) = test_load(&target) {
            // It loaded from where it was but not from where it went (a
            // noexec mount?): put the target back, so that "not installed"
            // is true.
            copied.undo(&target)?;
            return Err(err);
        }
        said.push(match copied {
            Copied::Unchanged { mode: None } => format!("{} is up to date", target.display()),
            Copied::Unchanged { mode: Some(mode) } => format!(
                "{} is up to date; its mode was {mode:04o}, now {MODE:04o}",
                target.display()
            ),
            Copied::Replaced { .. } => {
                format!("copied {} to {}", source.display(), target.display())
            }
        });
    }
    if !args.global {
        return Ok(Exit::Success);
    }

    let file = root.host(preload_path);
    root.refuse_unreadable(&entry, &file)?;
    let _lock = root.lock_etc()?;
    // Checked again now that no other keepalive can change it.
    root.refuse_symlinks(&preload_path_parts())?;
    let existing = read_if_exists(&file)?;
    let mode = existing.as_ref().map_or(MODE, |e| e.mode);
    let mut preload = LdSoPreload::new(existing.map(|e| e.bytes).unwrap_or_default());
    for other in preload.entries() {
        if other != entry && other.file_name() == Some(OsStr::new(FILE_NAME)) {
            said.push(format!(
                "warning: {} also preloads {}: remove one of the two, or both will act on \
                 every socket",
                file.display(),
                other.display()
            ));
        }
    }
    if preload.add(&entry)? {
        write_atomic(&file, preload.as_bytes(), mode)?;
        said.push(format!("added {} to {}", entry.display(), file.display()));
    } else {
        said.push(format!(
            "already installed: {} preloads {}",
            file.display(),
            entry.display()
        ));
    }
    said.push(global_note(args.root.as_deref()));
    Ok(Exit::Success)
}

/// [`uninstall`], with what it has to say pushed to `said`.
fn uninstall_saying(args: &UninstallArgs, said: &mut Vec<String>) -> anyhow::Result<Exit> {
    let root = Root::new(args.root.as_deref(), "uninstall --global")?;
    let file = root.host(Path::new(LD_SO_PRELOAD));
    root.refuse_symlinks(&preload_path_parts())?;
    let Some(_lock) = root.lock_existing_etc()? else {
        said.push(format!("not installed: {} does not exist", file.display()));
        return Ok(Exit::Success);
    };
    root.refuse_symlinks(&preload_path_parts())?;
    let Some(existing) = read_if_exists(&file)? else {
        said.push(format!("not installed: {} does not exist", file.display()));
        return Ok(Exit::Success);
    };
    let mut preload = LdSoPreload::new(existing.bytes);
    let removed: Vec<PathBuf> = our_entries()
        .into_iter()
        .filter(|entry| preload.remove(entry))
        .collect();
    if removed.is_empty() {
        let ours: Vec<String> = our_entries()
            .iter()
            .map(|e| e.display().to_string())
            .collect();
        said.push(format!(
            "not installed: {} does not preload {}",
            file.display(),
            ours.join(" nor ")
        ));
        return Ok(Exit::Success);
    }
    let names: Vec<String> = removed.iter().map(|e| e.display().to_string()).collect();
    if preload.is_blank() {
        remove_file(&file)?;
        said.push(format!(
            "removed {} (it preloaded nothing else)",
            file.display()
        ));
    } else {
        write_atomic(&file, preload.as_bytes(), existing.mode)?;
        said.push(format!(
            "removed {} from {}",
            names.join(" and "),
            file.display()
        ));
    }
    let kept: Vec<String> = removed
        .iter()
        .map(|e| root.host(e).display().to_string())
        .collect();
    let stay = if kept.len() == 1 { "stays" } else { "stay" };
    let kept = kept.join(" and ");
    said.push(match &args.root {
        None => format!(
            "Programs started from now on are not preloaded; running ones keep the library \
             until they restart. {kept} {stay} in place for `keepalive run`."
        ),
        Some(dir) => format!(
            "The system in {} no longer preloads it. {kept} {stay} in place for `keepalive run`.",
            dir.display()
        ),
    });
    Ok(Exit::Success)
}

/// `/etc` and `/etc/ld.so.preload`.
fn preload_path_parts() -> Vec<PathBuf> {
    path_parts(Path::new(LD_SO_PRELOAD))
}

/// The ancestors of the absolute `path` below `/`, top down, then `path`.
fn path_parts(path: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = path
        .ancestors()
        .filter(|p| p.parent().is_some())
        .map(Path::to_owned)
        .collect();
    parts.reverse();
    parts
}

/// `path` as a shell word.
pub(crate) fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b))
    {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What a global preload means, printed after `install --global`: on
/// this host, or (`--root`) on the system whose tree was changed.
fn global_note(root: Option<&Path>) -> String {
    let who = match root {
        None => "Every dynamically linked program started from now on gets TCP keepalive \
                 (running ones once they restart)."
            .to_owned(),
        Some(dir) => format!(
            "Every dynamically linked program of the system in {} gets TCP keepalive \
             once that system runs; this host's programs are not affected.",
            dir.display()
        ),
    };
    let undo = match root {
        None => "`keepalive uninstall --global`".to_owned(),
        Some(dir) => format!("`keepalive uninstall --global --root {}`", shell_word(dir)),
    };
    format!(
        "{who}\n\
         Values a program's environment does not set (KEEPIDLE, KEEPINTVL, KEEPCNT) \
         come from the kernel defaults: see `keepalive sysctl`.\n\
         Opt one program out with KEEPALIVE=off; undo with {undo}."
    )
}

/// What [`copy_library`] did.
enum Copied {
    /// The target already held the same bytes; `mode`: its mode before,
    /// when it was not [`MODE`] (it is now).
    Unchanged { mode: Option<u32> },
    /// The target was written; it held `previous` before (`None`: absent).
    Replaced { previous: Option<Existing> },
}

impl Copied {
    /// Puts the target back as it was.
    fn undo(self, target: &Path) -> anyhow::Result<()> {
        match self {
            Copied::Unchanged { .. } => Ok(()),
            Copied::Replaced { previous: None } => remove_file(target),
            Copied::Replaced {
                previous: Some(previous),
            } => Ok(write_atomic(target, &previous.bytes, previous.mode)?),
        }
    }
}

/// Copies `source` to `target` (mode 0644, atomically), unless `target`
/// already holds the same bytes; then only its mode is made 0644.
fn copy_library(source: &Path, target: &Path) -> anyhow::Result<Copied> {
    let bytes = fs::read(source)
        .with_context(|| format!("cannot read the library {}", source.display()))?;
    let previous = read_if_exists(target)?;
    if let Some(previous) = previous.as_ref().filter(|p| p.bytes == bytes) {
        if previous.mode == MODE {
            return Ok(Copied::Unchanged { mode: None });
        }
        fs::set_permissions(target, fs::Permissions::from_mode(MODE))
            .with_context(|| format!("cannot set the mode of {}", target.display()))?;
        return Ok(Copied::Unchanged {
            mode: Some(previous.mode),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_note_under_root_speaks_of_that_system() {
        let live = global_note(None);
        assert!(live.contains("started from now on"), "{live}");
        let image = global_note(Some(Path::new("/mnt/image")));
        assert!(!image.contains("from now on"), "{image}");
        assert!(image.contains("the system in /mnt/image"), "{image}");
        assert!(
            image.contains("`keepalive uninstall --global --root /mnt/image`"),
            "{image}"
        );
    }

    #[test]
    fn the_entry_is_the_installed_library() {
        assert_eq!(
            installed_library(),
            Path::new(LIBDIR).join("libkeepalive.so")
        );
    }

    #[test]
    fn the_packaged_library_is_recognised_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(Some(dir.path()), "install").unwrap();
        let packaged = dir.path().join("usr/lib/keepalive/libkeepalive.so");
        fs::create_dir_all(packaged.parent().unwrap()).unwrap();
        fs::write(&packaged, b"library").unwrap();
        let copy = dir.path().join("libkeepalive.so");
        fs::write(&copy, b"library").unwrap();
        assert!(is_packaged(&root, &packaged));
        // Through another path to the same file, too.
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&packaged, &link).unwrap();
        assert!(is_packaged(&root, &link));
        // Same bytes elsewhere: a copy, not the package's.
        assert!(!is_packaged(&root, &copy));
    }
}
