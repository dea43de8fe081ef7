//! Can a preload reach this program? Not when it is statically linked (no
//! dynamic loader), a Go program (it makes its own system calls), or runs
//! in secure-execution mode (setuid/setgid to someone else, or file
//! capabilities: the loader drops LD_PRELOAD).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{Object, ReadCache, ReadRef};

/// Why a preload cannot reach a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    Static,
    Go,
    Setuid,
    Capabilities,
}

/// What to do instead, named in every warning.
const INSTEAD: &str = "run it with `keepalive run --enforce` instead (as root), which sets \
                       keepalive in the kernel for every TCP connection of its cgroup \
                       (cgroup BPF), or use `keepalive enforce --cgroup` on its service's cgroup";

impl Unreachable {
    pub fn warning(self, path: &Path) -> String {
        let why = match self {
            Unreachable::Static => "is statically linked",
            Unreachable::Go => "is a Go program (Go makes its own system calls)",
            Unreachable::Setuid => {
                "is setuid/setgid to another user, so the loader ignores LD_PRELOAD"
            }
            Unreachable::Capabilities => {
                "has file capabilities (see getcap), so the loader ignores LD_PRELOAD"
            }
        };
        format!(
            "warning: {} {why}: a preload cannot reach its sockets and they will not get \
             keepalive; {INSTEAD}",
            path.display()
        )
    }
}

/// The file `execvp` would run for `program`: as given when it holds a
/// slash, else the first executable match in `$PATH`.
pub fn resolve(program: &OsStr) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Checks `path`, or the interpreter of a `#!` script (`#!/usr/bin/env
/// python3` included), and returns the file that cannot be reached.
pub fn check(path: &Path) -> Option<(PathBuf, Unreachable)> {
    let mut path = path.to_path_buf();
    for _ in 0..3 {
        if let Some(u) = setuid(&path) {
            return Some((path, u));
        }
        match interpreter(&path) {
            Some(next) => path = next,
            None => return elf(&path).map(|u| (path, u)),
        }
    }
    None
}

fn setuid(path: &Path) -> Option<Unreachable> {
    let meta = path.metadata().ok()?;
    // /proc/self belongs to this process's user and group.
    let me = Path::new("/proc/self").metadata().ok()?;
    let mode = meta.mode();
    let other_user = mode & 0o4000 != 0 && meta.uid() != me.uid();
    let other_group = mode & 0o2000 != 0 && meta.gid() != me.gid();
    if other_user || other_group {
        return Some(Unreachable::Setuid);
    }
    // File capabilities put the loader in secure-execution mode too.
    xattr::get(path, "security.capability")
        .ok()
        .flatten()
        .map(|_| Unreachable::Capabilities)
}

/// The interpreter named by a `#!` line, resolved through `env`.
fn interpreter(path: &Path) -> Option<PathBuf> {
    let mut first = Vec::new();
    BufReader::new(File::open(path).ok()?)
        .take_until_newline(&mut first)
        .ok()?;
    let line = first.strip_prefix(b"#!")?;
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let interp = Path::new(OsStr::from_bytes(words.next()?));
    if interp.file_name() == Some(OsStr::new("env")) {
        let prog = words.find(|w| !w.starts_with(b"-"))?;
        return resolve(OsStr::from_bytes(prog));
    }
    Some(interp.to_path_buf())
}

trait TakeLine {
    fn take_until_newline(self, out: &mut Vec<u8>) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_until_newline(self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        // A #! line is short; never read a whole binary looking for '\n'.
        self.take(256).read_until(b'\n', out)
    }
}

fn elf(path: &Path) -> Option<Unreachable> {
    let cache = ReadCache::new(File::open(path).ok()?);
    match object::FileKind::parse(&cache).ok()? {
        object::FileKind::Elf64 => {
            elf_kind::<object::elf::FileHeader64<object::Endianness>, _>(&cache)
        }
        object::FileKind::Elf32 => {
            elf_kind::<object::elf::FileHeader32<object::Endianness>, _>(&cache)
        }
        _ => None,
    }
}

fn elf_kind<'data, H: FileHeader<Endian = object::Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Option<Unreachable> {
    let file = ElfFile::<H, R>::parse(data).ok()?;
    let endian = file.endian();
    let go = [".go.buildinfo", ".note.go.buildid"]
        .iter()
        .any(|name| file.section_by_name(name).is_some());
    if go {
        return Some(Unreachable::Go);
    }
    let dynamic = file
        .elf_program_headers()
        .iter()
        .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP);
    (!dynamic).then_some(Unreachable::Static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binary_is_reachable() {
        let sh = resolve(OsStr::new("sh")).expect("sh in PATH");
        assert_eq!(check(&sh), None);
    }

    #[test]
    fn env_script_resolves_its_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/usr/bin/env -S sh -e\necho\n").unwrap();
        assert_eq!(interpreter(&script), resolve(OsStr::new("sh")));
    }

    #[test]
    fn not_an_elf_is_not_flagged() {
        assert_eq!(elf(Path::new("/etc/hostname")), None);
        assert_eq!(elf(Path::new("/nonexistent")), None);
    }
}
