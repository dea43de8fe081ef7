//! The crate's error: each variant names what failed and, where one is
//! known, the fix. The kernel's error is the error's `source()`, not part
//! of its message (print the chain, e.g. anyhow's `{:#}`).

use std::io;
use std::path::{Path, PathBuf};

/// Why enforcing keepalive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not root: loading a BPF program needs CAP_BPF and CAP_NET_ADMIN (or
    /// CAP_SYS_ADMIN), mounting bpffs and creating cgroups CAP_SYS_ADMIN.
    #[error(
        "{what} needs root (CAP_BPF and CAP_NET_ADMIN, and CAP_SYS_ADMIN for bpffs and cgroups)"
    )]
    NotPermitted {
        /// What was refused.
        what: &'static str,
        /// The kernel's error, when one was seen.
        #[source]
        source: Option<io::Error>,
    },
    /// No cgroup v2 hierarchy is mounted.
    #[error(
        "no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/self/mountinfo); {}",
        if *private_mounts {
            "this process has a mount namespace of its own, as under `ip netns exec`, which \
             remounts /sys without cgroup2: run keepalive outside it (enforcement follows the \
             cgroup, whatever the network namespace)"
        } else {
            "mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`"
        }
    )]
    NoCgroup2 {
        /// This process's mount namespace is not init's (`ip netns exec`,
        /// `unshare -m`): the host's mount is there, but not here.
        private_mounts: bool,
    },
    /// The path given is not a directory of the cgroup v2 hierarchy.
    #[error(
        "{} is not a cgroup v2 directory{}",
        path.display(),
        match mount {
            Some(m) => format!(" (cgroup v2 is mounted at {})", m.display()),
            None => String::new(),
        }
    )]
    NotCgroup2 {
        /// The path given.
        path: PathBuf,
        /// Where cgroup v2 is mounted, when it is.
        mount: Option<PathBuf>,
    },
    /// The verifier refused the program: the kernel lacks a helper or an
    /// option the program needs.
    #[error(
        "the kernel refused the keepalive sock_ops program ({error}): it needs \
         bpf_setsockopt with SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and \
         TCP_USER_TIMEOUT (Linux 5.9 or later); the verifier said:\n{log}"
    )]
    Verifier {
        /// The kernel's error (shown in the message, before the log).
        error: io::Error,
        /// The end of the verifier's log.
        log: String,
    },
    /// There is no directory to mount bpffs on: `/sys` has no `fs/bpf`,
    /// as in a systemd-nspawn container, whose `/sys` has none.
    #[error(
        "there is no /sys/fs/bpf to mount bpffs on, so nothing can be pinned (the kernel has \
         BPF; this /sys lacks the directory, as a systemd-nspawn container's does): give \
         this system a bpffs at /sys/fs/bpf, e.g. for a container \
         `systemd-nspawn --bind=/sys/fs/bpf`, or on a host `mount -t bpf bpf /sys/fs/bpf`"
    )]
    NoBpfFs,
    /// The kernel lacks a feature.
    #[error("this kernel cannot {what}: {needs}")]
    Unsupported {
        /// What it cannot do.
        what: &'static str,
        /// What it takes.
        needs: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// A bpf(2) command failed.
    #[error("{call} failed")]
    Syscall {
        /// The command.
        call: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// A file operation failed.
    #[error("cannot {what} {}", path.display())]
    Path {
        /// What was being done.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A pin under our directory is not what keepalive pins there.
    #[error("{} is not a keepalive enforcement pin ({why}); remove it by hand", path.display())]
    Foreign {
        /// The pin.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Error {
    /// No cgroup2 mount, and whether a mount namespace of our own hides it:
    /// not init's, or (when init's cannot be read) a named network
    /// namespace of `ip netns`, whose `exec` remounts /sys.
    pub(crate) fn no_cgroup2() -> Error {
        Error::NoCgroup2 {
            private_mounts: !crate::pin::same_mount_namespace_as_init()
                || in_named_netns(Path::new("/run/netns")),
        }
    }

    /// The error for a failed bpf(2) command: permission errors become
    /// [`Error::NotPermitted`], ENOSYS [`Error::Unsupported`].
    pub(crate) fn syscall(call: &'static str, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::NotPermitted {
                what: "enforcing keepalive in the kernel",
                source: Some(source),
            },
            Some(libc::ENOSYS) => Error::Unsupported {
                what: "run BPF programs",
                needs: "a kernel built with CONFIG_BPF_SYSCALL",
                source,
            },
            _ => Error::Syscall { call, source },
        }
    }

    /// The error for a failed file operation on `path`; permission errors
    /// become [`Error::NotPermitted`].
    pub(crate) fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::NotPermitted {
                what: "enforcing keepalive in the kernel",
                source: Some(io::Error::new(
                    source.kind(),
                    format!("cannot {what} {}: {source}", path.into().display()),
                )),
            },
            _ => Error::Path {
                what,
                path: path.into(),
                source,
            },
        }
    }
}

/// `Result<T, Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when this thread's network namespace is one of `dir`'s
/// (`/run/netns/NAME`, as `ip netns add` makes them).
fn in_named_netns(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::metadata("/proc/thread-self/ns/net") else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == own.ino() && m.dev() == own.dev())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_namespace_is_not_a_named_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!in_named_netns(dir.path()));
        // A directory holding a bind of our own namespace's file would say
        // yes; a plain file with another inode says no.
        std::fs::write(dir.path().join("blue"), "").unwrap();
        assert!(!in_named_netns(dir.path()));
    }

    #[test]
    fn no_bpffs_mount_point_names_the_container_fix() {
        let text = Error::NoBpfFs.to_string();
        assert!(text.contains("--bind=/sys/fs/bpf"), "{text}");
        assert!(!text.contains("CONFIG_BPF_SYSCALL"), "{text}");
    }

    #[test]
    fn no_cgroup2_under_ip_netns_exec_names_the_cause() {
        let private = Error::NoCgroup2 {
            private_mounts: true,
        }
        .to_string();
        assert!(private.contains("`ip netns exec`"), "{private}");
        assert!(!private.contains("mount -t cgroup2"), "{private}");
        let host = Error::NoCgroup2 {
            private_mounts: false,
        }
        .to_string();
        assert!(host.contains("mount -t cgroup2"), "{host}");
    }
}
