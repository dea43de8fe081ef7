//! `keepalive install` and `keepalive uninstall`: the library in
//! [`LIBDIR`] and, with `--global`, its entry in /etc/ld.so.preload, which
//! makes the loader preload it into every dynamically linked program.
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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keepalive::host::{LD_SO_PRELOAD, LdSoPreload, write_atomic};

use crate::cli::{InstallArgs, UninstallArgs};
use crate::exit::Exit;
use crate::library::{self, FILE_NAME, LIBDIR};

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

pub fn install(args: &InstallArgs) -> anyhow::Result<Exit> {
    let mut said = Vec::new();
    let result = install_saying(args, &mut said);
    print_lines(&said);
    result
}

pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<Exit> {
    let mut said = Vec::new();
    let result = uninstall_saying(args, &mut said);
    print_lines(&said);
    result
}

/// Prints what install or uninstall did, once it is done: a closed stdout
/// (`keepalive install --global | true`) must not stop the work halfway,
/// and is no error once the work is done.
fn print_lines(lines: &[String]) {
    let mut out = io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
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
    let entry = installed_library();
    let target = root.host(&entry);
    let preload_path = Path::new(LD_SO_PRELOAD);

    // Nothing is written through a symbolic link, nor before the library
    // is known to load: an earlier `install --global` may have made every
    // program preload the file this replaces.
    root.refuse_symlinks(&library_path())?;
    if args.global {
        root.refuse_symlinks(&preload_path_parts())?;
    }
    test_load(&source)?;
    let copied = copy_library(&source, &target)?;
    if let Err(err) = test_load(&target) {
        // It loaded from where it was but not from where it went (a noexec
        // mount?): put the target back, so that "not installed" is true.
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
    let entry = installed_library();
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
    if !preload.remove(&entry) {
        said.push(format!(
            "not installed: {} does not preload {}",
            file.display(),
            entry.display()
        ));
        return Ok(Exit::Success);
    }
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
            entry.display(),
            file.display()
        ));
    }
    said.push(match &args.root {
        None => format!(
            "Programs started from now on are not preloaded; running ones keep the library \
             until they restart. {} stays in place for `keepalive run`.",
            root.host(&entry).display()
        ),
        Some(dir) => format!(
            "The system in {} no longer preloads it. {} stays in place for `keepalive run`.",
            dir.display(),
            root.host(&entry).display()
        ),
    });
    Ok(Exit::Success)
}

/// The installed library and its directories below `/`, top down:
/// `/usr`, `/usr/local`, ..., `/usr/local/lib/keepalive/libkeepalive.so`.
fn library_path() -> Vec<PathBuf> {
    path_parts(&installed_library())
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
fn shell_word(path: &Path) -> String {
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

    /// The tree, as the user named it.
    fn name(&self) -> String {
        match &self.dir {
            None => "/".to_owned(),
            Some(dir) => format!("--root {}", dir.display()),
        }
    }

    /// Refuses when one of `paths` (absolute, in the tree; those that do
    /// not exist yet are fine) is a symbolic link on the host: writing
    /// through it could change a file outside the tree (`<root>/etc ->
    /// /etc`), or replace a link with a file. On the live system only the
    /// files themselves are checked: linked directories there are the
    /// administrator's (`/usr/local -> /var/usrlocal` on image-based
    /// systems), not a way out of a tree.
    fn refuse_symlinks(&self, paths: &[PathBuf]) -> anyhow::Result<()> {
        let files = [installed_library(), PathBuf::from(LD_SO_PRELOAD)];
        let checked = paths
            .iter()
            .filter(|p| self.dir.is_some() || files.contains(p));
        for path in checked {
            let host = self.host(path);
            match fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let to = fs::read_link(&host)
                        .map(|to| format!(" (-> {})", to.display()))
                        .unwrap_or_default();
                    bail!(
                        "{}{to} is a symbolic link: keepalive does not write through symbolic \
                         links, which could change files outside {}; nothing was written. \
                         Replace it with the directory or file itself",
                        host.display(),
                        self.name()
                    );
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", host.display())),
            }
        }
        Ok(())
    }

    /// Refuses to preload `entry` into every program unless every program
    /// can load it: each of its directories (in the tree) searchable by
    /// others and the file readable by others. Otherwise every program not
    /// run as root would get "cannot be preloaded ... ignored" from the
    /// loader.
    fn refuse_unreadable(&self, entry: &Path, file: &Path) -> anyhow::Result<()> {
        let parts = path_parts(entry);
        let mode = |path: &Path| -> anyhow::Result<u32> {
            Ok(fs::metadata(path)
                .with_context(|| format!("cannot stat {}", path.display()))?
                .permissions()
                .mode())
        };
        let mut closed = Vec::new();
        for dir in &parts[..parts.len() - 1] {
            let host = self.host(dir);
            if mode(&host)? & 0o001 == 0 {
                closed.push(host);
            }
        }
        let (mut why, mut fixes) = (Vec::new(), Vec::new());
        if !closed.is_empty() {
            let names: Vec<String> = closed.iter().map(|d| d.display().to_string()).collect();
            let words: Vec<String> = closed.iter().map(|d| shell_word(d)).collect();
            why.push(format!("others cannot search {}", names.join(", ")));
            fixes.push(format!("chmod o+x {}", words.join(" ")));
        }
        let library = self.host(entry);
        if mode(&library)? & 0o004 == 0 {
            why.push(format!("others cannot read {}", library.display()));
            fixes.push(format!("chmod o+r {}", shell_word(&library)));
        }
        if fixes.is_empty() {
            return Ok(());
        }
        bail!(
            "{} was not added to {}: programs not run as root could not load it, since {}; \
             run `{}` and install again",
            library.display(),
            file.display(),
            why.join(" and "),
            fixes.join(" && ")
        );
    }

    /// Opens `<root>/etc`, creating it (mode 0755) when missing, and takes
    /// an exclusive lock on it, so that two keepalive commands do not
    /// read-modify-write ld.so.preload at once. Released when dropped.
    fn lock_etc(&self) -> anyhow::Result<File> {
        let etc = self.host(Path::new("/etc"));
        match fs::DirBuilder::new().mode(DIR_MODE).create(&etc) {
            // The umask narrowed the mode.
            Ok(()) => fs::set_permissions(&etc, fs::Permissions::from_mode(DIR_MODE))
                .with_context(|| format!("cannot set the mode of {}", etc.display()))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", etc.display()));
            }
        }
        self.lock_existing_etc()?
            .with_context(|| format!("{} vanished", etc.display()))
    }

    /// Like [`lock_etc`](Self::lock_etc), but `None` when `<root>/etc`
    /// does not exist.
    fn lock_existing_etc(&self) -> anyhow::Result<Option<File>> {
        let etc = self.host(Path::new("/etc"));
        let dir = match File::open(&etc) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", etc.display())),
        };
        lock_exclusive(&dir).with_context(|| format!("cannot lock {}", etc.display()))?;
        Ok(Some(dir))
    }
}

/// flock(2) `LOCK_EX` on `file`, waiting for it.
fn lock_exclusive(file: &File) -> io::Result<()> {
    file.lock()
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
}
