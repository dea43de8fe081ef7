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

/// Where the Debian package puts the library: a directory of its own, so
/// that it installs beside Debian's libkeepalive0 (`/usr/lib/libkeepalive.so`).
/// `/usr/bin/keepalive` finds it as `<exe>/../lib/keepalive/`.
pub const PACKAGED: &str = "/usr/lib/keepalive/libkeepalive.so";

/// The absolute path of the library to preload: `$KEEPALIVE_LIBRARY`, else
/// next to this executable, else `<exe>/../lib/keepalive/`, else [`LIBDIR`],
/// else the packaged one ([`PACKAGED`]).
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
        "cannot find {FILE_NAME}; looked in: {}. {}",
        tried.join(", "),
        how_to_get(&exe)
    )
}

/// How to get the library, for a keepalive at `exe` that found none: what
/// to build and where to put it, for the layout `exe` is in.
fn how_to_get(exe: &Path) -> String {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let prefix = dir.parent();
    match layout(dir) {
        Layout::CargoInstall => {
            let lib_dir = prefix.unwrap_or(dir).join("lib/keepalive");
            format!(
                "`cargo install` installs the keepalive binary only: in the source tree, \
                 build the library with `cargo build --release -p keepalive-preload`, then \
                 copy it where this keepalive looks (`install -D -m 644 \
                 target/release/{FILE_NAME} {}`), or set \
                 {LIBRARY_VAR}=/path/to/target/release/{FILE_NAME}",
                crate::install::shell_word(&lib_dir.join(FILE_NAME))
            )
        }
        Layout::CargoTarget(profile) => {
            let flag = match profile.as_str() {
                "debug" => String::new(),
                "release" => " --release".to_owned(),
                other => format!(" --profile {other}"),
            };
            format!(
                "Build it with `cargo build{flag} -p keepalive-preload` (it lands next to \
                 this keepalive binary, in {}), or set {LIBRARY_VAR}=/path/to/{FILE_NAME}",
                dir.display()
            )
        }
        Layout::Other => format!(
            "Install the keepalive package (it puts the library in {}), or build it from \
             the source tree with `cargo build --release -p keepalive-preload` and install \
             it with `sudo keepalive install --library target/release/{FILE_NAME}` (into \
             {LIBDIR}), or set {LIBRARY_VAR}=/path/to/{FILE_NAME}",
            Path::new(PACKAGED)
                .parent()
                .unwrap_or(Path::new("/"))
                .display()
        ),
    }
}

/// Where a keepalive binary lives, as far as finding its library goes.
#[derive(Debug, PartialEq, Eq)]
enum Layout {
    /// `cargo install`'s root: `<root>/bin/keepalive`, with cargo's
    /// records of what it installed (`.crates.toml`, `.crates2.json`) in
    /// `<root>`.
    CargoInstall,
    /// A cargo target directory, `target/<profile>/keepalive`: cargo marks
    /// `target/` with `CACHEDIR.TAG`.
    CargoTarget(String),
    /// Anything else: a package, a copy.
    Other,
}

fn layout(dir: &Path) -> Layout {
    let Some(prefix) = dir.parent() else {
        return Layout::Other;
    };
    if dir.file_name() == Some(std::ffi::OsStr::new("bin"))
        && (prefix.join(".crates.toml").is_file() || prefix.join(".crates2.json").is_file())
    {
        return Layout::CargoInstall;
    }
    let profile = dir.file_name().and_then(|n| n.to_str());
    // `target/<triple>/<profile>` when cross-compiling.
    let marked = |d: &Path| d.join("CACHEDIR.TAG").is_file();
    if let Some(profile) = profile
        && (marked(prefix) || prefix.parent().is_some_and(marked))
    {
        return Layout::CargoTarget(profile.to_owned());
    }
    Layout::Other
}

/// Whether the loader can preload `path`: an ELF shared object of this
/// machine's architecture and word size. `Err` says what it is instead.
pub fn loadable(path: &Path) -> Result<(), String> {
    let data =
        std::fs::read(path).map_err(|e| crate::exit::without_error_numbers(&e.to_string()))?;
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
    for installed in [Path::new(LIBDIR).join(FILE_NAME), PathBuf::from(PACKAGED)] {
        if !out.contains(&installed) {
            out.push(installed);
        }
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
                PathBuf::from(PACKAGED),
            ]
        );
        // The package's keepalive finds the package's library second, and
        // once only.
        let c = candidates(Path::new("/usr/bin/keepalive"));
        assert_eq!(c[1], Path::new(PACKAGED));
        assert_eq!(c.iter().filter(|p| *p == Path::new(PACKAGED)).count(), 1);
    }

    #[test]
    fn layouts() {
        let dir = tempfile::tempdir().unwrap();
        let cargo = dir.path().join("cargo");
        std::fs::create_dir_all(cargo.join("bin")).unwrap();
        assert_eq!(layout(&cargo.join("bin")), Layout::Other);
        std::fs::write(cargo.join(".crates2.json"), "{}").unwrap();
        assert_eq!(layout(&cargo.join("bin")), Layout::CargoInstall);

        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        std::fs::create_dir_all(target.join("x86_64-unknown-linux-gnu/debug")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "Signature").unwrap();
        assert_eq!(
            layout(&target.join("release")),
            Layout::CargoTarget("release".to_owned())
        );
        assert_eq!(
            layout(&target.join("x86_64-unknown-linux-gnu/debug")),
            Layout::CargoTarget("debug".to_owned())
        );
        assert_eq!(layout(Path::new("/usr/bin")), Layout::Other);
    }

    #[test]
    fn the_hint_fits_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cargo root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join(".crates.toml"), "").unwrap();
        let hint = how_to_get(&root.join("bin/keepalive"));
        let lib = root
            .canonicalize()
            .unwrap()
            .join("lib/keepalive/libkeepalive.so");
        assert!(
            hint.contains("cargo build --release -p keepalive-preload"),
            "{hint}"
        );
        assert!(
            hint.contains(&format!(
                "install -D -m 644 target/release/libkeepalive.so '{}'",
                lib.display()
            )),
            "{hint}"
        );
        assert!(!hint.contains("next to"), "{hint}");

        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("debug")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "Signature").unwrap();
        let hint = how_to_get(&target.join("debug/keepalive"));
        assert!(
            hint.starts_with("Build it with `cargo build -p keepalive-preload` (it lands next to"),
            "{hint}"
        );

        let hint = how_to_get(Path::new("/opt/nowhere/keepalive"));
        assert!(hint.contains("/usr/lib/keepalive"), "{hint}");
        assert!(
            hint.contains("sudo keepalive install --library target/release/libkeepalive.so"),
            "{hint}"
        );
    }
}
