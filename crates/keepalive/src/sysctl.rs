//! Reading the kernel defaults, `net.ipv4.tcp_keepalive_{time,intvl,probes}`.

use std::io;
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
    let read = |i: usize| -> io::Result<u64> {
        let abs = PROC_FILES[i].to_str().expect("the paths are ASCII");
        let path = root.join(abs.trim_start_matches('/'));
        let text = std::fs::read(&path)
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
    };
    Ok(KernelDefaults {
        idle: read(0)?,
        interval: read(1)?,
        count: read(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_under_a_root() {
        let dir = std::env::temp_dir().join(format!("keepalive-sysctl-{}", std::process::id()));
        let ipv4 = dir.join("proc/sys/net/ipv4");
        std::fs::create_dir_all(&ipv4).unwrap();
        std::fs::write(ipv4.join("tcp_keepalive_time"), "600\n").unwrap();
        std::fs::write(ipv4.join("tcp_keepalive_intvl"), "60\n").unwrap();
        std::fs::write(ipv4.join("tcp_keepalive_probes"), "20\n").unwrap();
        let d = kernel_defaults_in(&dir);
        std::fs::write(ipv4.join("tcp_keepalive_probes"), "x\n").unwrap();
        let bad = kernel_defaults_in(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            d.unwrap(),
            KernelDefaults {
                idle: 600,
                interval: 60,
                count: 20
            }
        );
        let err = bad.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("tcp_keepalive_probes"), "{err}");
    }
}
