//! Finding `libkeepalive.so`.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

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
        return std::path::absolute(&path)
            .ok()
            .filter(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{LIBRARY_VAR}={} is not a file: point it at libkeepalive.so, or unset it",
                    path.display()
                )
            });
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
