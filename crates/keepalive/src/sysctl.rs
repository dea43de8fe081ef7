//! Reading the kernel defaults, `net.ipv4.tcp_keepalive_{time,intvl,probes}`
//! (HOWTO 3.1): what a socket gets for the values it does not set, and what
//! [`apply`](crate::apply) resolves `TCP_USER_TIMEOUT=auto` against.
//! Changing them is [`host::set_kernel_defaults`](crate::host::set_kernel_defaults).
//!
//! They are per network namespace; read them inside one with
//! [`NetNs::run`](crate::host::NetNs::run).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use keepalive_core::{KernelDefaults, PROC_FILES, parse_sysctl_value};

/// Reads the kernel defaults of the current network namespace from
/// `/proc/sys/net/ipv4`.
///
/// ```
/// let d = keepalive::kernel_defaults()?;
/// assert!(d.idle > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn kernel_defaults() -> io::Result<KernelDefaults> {
    kernel_defaults_in(Path::new("/"))
}

/// Reads the kernel defaults from `root/proc/sys/net/ipv4` (tests, images).
pub fn kernel_defaults_in(root: &Path) -> io::Result<KernelDefaults> {
    let read = |i| read_value(&root.join(proc_path(i)));
    Ok(KernelDefaults {
        idle: read(0)?,
        interval: read(1)?,
        count: read(2)?,
    })
}

/// The `i`-th of [`PROC_FILES`] (time, intvl, probes) relative to `/`,
/// e.g. `proc/sys/net/ipv4/tcp_keepalive_time`.
pub(crate) fn proc_path(i: usize) -> &'static str {
    let abs = PROC_FILES[i].to_str().expect("the paths are ASCII");
    abs.trim_start_matches('/')
}

/// Reads one procfs value; the error names the file.
pub(crate) fn read_value(path: &Path) -> io::Result<u64> {
    let mut text = Vec::new();
    // Bounded: a procfs value is short, and a stray device file is not.
    File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut text))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    parse_sysctl_value(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: not a number: {:?}",
                path.display(),
                String::from_utf8_lossy(&text)
            ),
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `root/proc/sys/net/ipv4/tcp_keepalive_*` holding `values`.
    pub(crate) fn proc_root(values: [&str; 3]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, v) in values.into_iter().enumerate() {
            let path = dir.path().join(proc_path(i));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        }
        dir
    }

    #[test]
    fn reads_under_a_root() {
        let dir = proc_root(["600\n", "60\n", "20\n"]);
        assert_eq!(
            kernel_defaults_in(dir.path()).unwrap(),
            KernelDefaults {
                idle: 600,
                interval: 60,
                count: 20
            }
        );
    }

    #[test]
    fn a_bad_value_names_its_file() {
        let dir = proc_root(["600\n", "60\n", "x\n"]);
        let err = kernel_defaults_in(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("tcp_keepalive_probes"), "{err}");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = kernel_defaults_in(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("tcp_keepalive_time"), "{err}");
    }
}
