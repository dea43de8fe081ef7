//! Replacing a file atomically: readers see the old content or the new,
//! never a mix, and a crash leaves one of the two.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Mode of the directories [`write_atomic`] creates.
const DIR_MODE: u32 = 0o755;

/// How many temporary names [`write_atomic`] tries before giving up, each
/// time one already exists.
const TRIES: u32 = 16;

/// Writes `contents` to `path` through a temporary file in the same
/// directory: write, fsync, set `mode`, rename over `path`, fsync the
/// directory. Creates the missing parent directories with mode 0755
/// whatever the umask (existing ones are left as they are).
///
/// The temporary file is created with `O_EXCL` under a name that holds the
/// pid, a counter and the time in nanoseconds; when that name exists
/// already, another is tried, and the existing file is left alone.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("etc/example.conf");
/// keepalive::host::write_atomic(&file, b"a = 1\n", 0o644)?;
/// assert_eq!(std::fs::read(&file)?, b"a = 1\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let context =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))
        .map_err(context)?;
    create_dirs(dir).map_err(context)?;
    let mut tries = 0;
    loop {
        let tmp = dir.join(format!(
            ".{}.keepalive-{}",
            name.to_string_lossy(),
            unique()
        ));
        match write_through(&tmp, path, dir, contents, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries + 1 < TRIES => tries += 1,
            result => return result.map_err(context),
        }
    }
}

/// `<pid>-<counter>-<nanoseconds>`: never the same twice in this process,
/// and not known in advance from the pid alone (`O_EXCL` still guards the
/// creation).
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{count}-{nanos}", std::process::id())
}

/// Writes `contents` to the new file `tmp`, then renames it over `path`.
/// `tmp` is removed on failure only when this call created it: an
/// existing `tmp` (AlreadyExists) belongs to someone else.
fn write_through(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    contents: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    let written = (|| {
        f.write_all(contents)?;
        // The umask may have narrowed the mode given to open(2).
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(tmp, path)) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents with mode [`DIR_MODE`] (set
/// explicitly, since the umask narrows the mode given to mkdir(2)); leaves
/// the existing ones as they are.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        missing.push(d.to_owned());
        at = d.parent();
    }
    for d in missing.iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?,
            // Made meanwhile by someone else: theirs, as it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create the directory {}: {e}", d.display()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tempfile::TempDir;

    fn temp_dir() -> TempDir {
        tempfile::tempdir().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_existing_temp_file_is_someone_elses() {
        let dir = temp_dir();
        let file = dir.path().join("ld.so.preload");
        // The name the temporary file had when it held only the pid.
        let planted = dir
            .path()
            .join(format!(".ld.so.preload.keepalive-{}", std::process::id()));
        fs::write(&planted, b"not ours").unwrap();
        write_atomic(&file, b"/x.so\n", 0o644).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"/x.so\n");
        assert_eq!(fs::read(&planted).unwrap(), b"not ours");

        // A collision fails without removing the file it collided with.
        let err = write_through(&planted, &file, dir.path(), b"/y.so\n", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&planted).unwrap(), b"not ours");
        assert_eq!(fs::read(&file).unwrap(), b"/x.so\n");
    }

    #[test]
    fn temp_names_differ() {
        assert_ne!(unique(), unique());
        assert!(unique().starts_with(&format!("{}-", std::process::id())));
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = temp_dir();
        // Renaming a file over a directory fails after the temp file exists.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let err = write_atomic(&target, b"y", 0o644).unwrap_err();
        // rename(2) of a file over a directory: EISDIR.
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write {}: ", target.display())),
            "{err}"
        );
        assert!(target.is_dir(), "the directory was replaced");
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"x");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["taken"]);
    }

    #[test]
    fn missing_directories_are_0755_and_existing_ones_kept() {
        let dir = temp_dir();
        let existing = dir.path().join("a");
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o700)).unwrap();
        let file = existing.join("b/c/file");
        write_atomic(&file, b"x", 0o600).unwrap();
        assert_eq!(mode(&existing), 0o700);
        assert_eq!(mode(&existing.join("b")), 0o755);
        assert_eq!(mode(&existing.join("b/c")), 0o755);
        assert_eq!(mode(&file), 0o600);
    }
}
