//! Finding `libkeepalive.so`.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use object::Object;

/// The variable that names the library to preload, overriding the search.
pub const LIBRARY_VAR: &str = "KEEPALIVE_LIBRARY";

/// The installed library directory; set `KEEPALIVE_LIBDIR` when building
/// to change it. Our own subdirectory, so that Debian's original
/// libkeepalive (/usr/lib/libkeepalive.so) is never picked up by mistake.
pub const LIBDIR: &str = match option_env!("KEEPALIVE_LIBDIR") {
    Some(dir) => dir,
    None => "/usr/local/lib/keepalive",
};

pub const FILE_NAME: &str = "libkeepalive.so";

/// The absolute path of the library to preload: `$KEEPALIVE_LIBRARY`, else
/// next to this executable, else `<exe>/../lib/keepalive/`, else [`LIBDIR`].
pub fn find() -> anyhow::Result<PathBuf> {
    if let Some(path) = env::var_os(LIBRARY_VAR) {
        let path = PathBuf::from(path);
        let found = std::path::absolute(&path)
            .ok()
            .filter(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{LIBRARY_VAR}={} is not a file: point it at libkeepalive.so, or unset it",
                    path.display()
                )
            })?;
        // The loader only prints an error for a preload it cannot load and
        // runs the program without it: refuse it here instead.
        if let Err(why) = loadable(&found) {
            bail!(
                "{LIBRARY_VAR}={} is not a library this machine can preload ({why}): \
                 point it at libkeepalive.so, or unset it",
                path.display()
            );
        }
        return Ok(found);
    }
    let exe = env::current_exe().context("cannot find the keepalive executable's path")?;
    let candidates = candidates(&exe);
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "cannot find {FILE_NAME}; looked in: {}. Build it with `cargo build --release` \
         (it lands next to the keepalive binary), install it, or set {LIBRARY_VAR}=/path/to/{FILE_NAME}",
        tried.join(", ")
    )
}

/// Whether the loader can preload `path`: an ELF shared object of this
/// machine's architecture and word size. `Err` says what it is instead.
pub fn loadable(path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| crate::run::reason(&e))?;
    let file = object::File::parse(&*data).map_err(|_| "not an ELF file".to_owned())?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err("not a shared library".to_owned());
    }
    let ours = if cfg!(target_arch = "x86_64") {
        Some(object::Architecture::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(object::Architecture::Aarch64)
    } else {
        None
    };
    if ours.is_some_and(|a| a != file.architecture())
        || file.is_64() != cfg!(target_pointer_width = "64")
    {
        return Err(format!("built for {:?}", file.architecture()));
    }
    if is_pie(&data) {
        return Err("a program, not a shared library".to_owned());
    }
    Ok(())
}

/// True for a position-independent executable (`DF_1_PIE` in its dynamic
/// section): an ELF shared object by its header, which ld.so refuses to
/// preload.
fn is_pie(data: &[u8]) -> bool {
    use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
    let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
        return false;
    };
    let endian = file.endian();
    file.elf_program_headers()
        .iter()
        .filter_map(|ph| ph.dynamic(endian, data).ok().flatten())
        .flatten()
        .any(|d| {
            d.d_tag(endian) == object::elf::DT_FLAGS_1
                && d.d_val(endian) & object::elf::DF_1_PIE.0 != 0
        })
}

fn candidates(exe: &Path) -> Vec<PathBuf> {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let mut out = Vec::new();
    if let Some(dir) = exe.parent() {
        out.push(dir.join(FILE_NAME));
        if let Some(prefix) = dir.parent() {
            out.push(prefix.join("lib/keepalive").join(FILE_NAME));
        }
    }
    let installed = Path::new(LIBDIR).join(FILE_NAME);
    if !out.contains(&installed) {
        out.push(installed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadable_refuses_what_ld_so_cannot_preload() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.so");
        std::fs::write(&text, "not a library\n").unwrap();
        assert_eq!(loadable(&text), Err("not an ELF file".to_owned()));
        // A program is refused, even a PIE one (ld.so would refuse it).
        let exe = std::env::current_exe().unwrap();
        assert!(loadable(&exe).is_err(), "{}", exe.display());
        if Path::new("/bin/true").exists() {
            assert!(loadable(Path::new("/bin/true")).is_err());
        }
        // A real shared object of this machine is accepted.
        let libc_so = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .iter()
        .map(Path::new)
        .find(|p| p.exists());
        if let Some(lib) = libc_so {
            assert_eq!(loadable(lib), Ok(()));
        }
        let missing = loadable(&dir.path().join("missing.so"));
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("No such file")),
            "{missing:?}"
        );
    }

    #[test]
    fn search_order() {
        let c = candidates(Path::new("/opt/ka/bin/keepalive"));
        assert_eq!(
            c,
            [
                PathBuf::from("/opt/ka/bin/libkeepalive.so"),
                PathBuf::from("/opt/ka/lib/keepalive/libkeepalive.so"),
                Path::new(LIBDIR).join(FILE_NAME),
            ]
        );
    }
}
