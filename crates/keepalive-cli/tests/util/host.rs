//! What this host offers: root, installed tools, python3, java.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{TIMEOUT, bare, run};

/// True when the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The path of `tool` in `PATH`, if it is installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The real python3 interpreter (`sys.executable`), not a pyenv-style shim
/// script, which would run many processes under the preload.
pub fn python3() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            tool("python3")?;
            let mut cmd = bare("python3");
            cmd.args(["-c", "import sys; print(sys.executable)"]);
            let out = run(&mut cmd, TIMEOUT);
            let path = PathBuf::from(out.stdout.trim());
            (out.status.success() && path.is_absolute()).then_some(path)
        })
        .as_deref()
}

/// True when `java -version` works (a JDK or JRE is installed).
pub fn have_java() -> bool {
    static JAVA: OnceLock<bool> = OnceLock::new();
    *JAVA.get_or_init(|| {
        tool("java").is_some() && run(bare("java").arg("-version"), TIMEOUT).status.success()
    })
}
