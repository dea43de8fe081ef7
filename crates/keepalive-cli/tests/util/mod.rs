//! Helpers for the integration tests: the preload and the C programs built
//! once per test binary, children run with a deadline, and parsers for what
//! the children, strace and ss print.

mod holder;
mod host;
pub mod json;
mod keepalive;
mod netns;
mod preload;
mod process;
mod ss;
mod strace;

use std::path::{Path, PathBuf};

pub use self::holder::*;
pub use self::host::*;
pub use self::keepalive::*;
pub use self::netns::*;
pub use self::preload::*;
pub use self::process::*;
pub use self::ss::*;
pub use self::strace::*;

/// Prints `skipped: <why>` and returns from the test.
macro_rules! skip {
    ($($why:tt)+) => {{
        eprintln!("skipped: {}", format_args!($($why)+));
        return;
    }};
}
pub(crate) use skip;

/// Held around every `cargo deb` of the tests: two at once in the same
/// target directory share its staging files, and one can remove the
/// other's package (seen when the package and systemd tests overlapped).
pub static CARGO_DEB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A new directory under the cargo target (not /tmp, which may be mounted
/// noexec, and then nothing loads or runs from it), named `<prefix>-XXXXXX`,
/// mode 0755 so that programs a test runs as nobody can reach it; removed
/// with everything in it when dropped, whatever way the test ends.
pub fn target_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("create CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir_in(dir)
        .expect("create a temporary directory")
}
