//! `keepalive enforce`: attach (or update) a policy on a cgroup, pinned so
//! that it outlives the command; list the enforced cgroups; remove one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroup::{Cgroup, Hierarchy};
use crate::error::{Error, Result};
use crate::object::{self, Link, SettingsMap};
use crate::pin::{BpfFsMount, PinDir, Pins};
use crate::program::Policy;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The effective capabilities, from `CapEff` in /proc/self/status.
fn effective_caps() -> Option<u64> {
    parse_cap_eff(&fs::read_to_string("/proc/self/status").ok()?)
}

/// The `CapEff:` line of a /proc/PID/status text (hexadecimal, proc(5)).
fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Fails with [`Error::NotPermitted`] unless this process may load and
/// attach a sock_ops program (CAP_SYS_ADMIN, or CAP_BPF with
/// CAP_NET_ADMIN). When that cannot be told, the kernel will say.
pub fn check_privileges() -> Result<()> {
    let Some(caps) = effective_caps() else {
        return Ok(());
    };
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN)) {
        Ok(())
    } else {
        Err(Error::NotPermitted {
            what: "enforcing keepalive in the kernel",
            source: None,
        })
    }
}

/// What [`enforce`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The program was loaded and attached.
    Attached,
    /// It was already attached: only the settings changed (new
    /// connections get them; the program was not reloaded).
    Updated,
}

/// The outcome of [`enforce`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforced {
    /// The cgroup directory.
    pub cgroup: PathBuf,
    /// Its id.
    pub cgroup_id: u64,
    /// Attached now, or updated.
    pub change: Change,
    /// The policy now in force.
    pub policy: Policy,
    /// The policy before, when updated.
    pub previous: Option<Policy>,
    /// The pins' directory.
    pub pin_dir: PathBuf,
    /// The attachment.
    pub attachment: Attachment,
    /// Whether bpffs had to be mounted.
    pub bpffs: BpfFsMount,
}

/// A program attached to a cgroup through a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The link's id (`bpftool link`).
    pub link_id: u32,
    /// The program's id (`bpftool prog`, `bpftool cgroup show`).
    pub prog_id: u32,
}

/// Enforces `policy` on the cgroup `cgroup`: loads the program and attaches
/// it, with its link and settings map pinned under
/// `/sys/fs/bpf/keepalive/cgroup-<id>/` (bpffs is mounted when it is not);
/// or, when it is attached already, replaces the settings in its map.
/// Either way connections established afterwards get `policy`; existing
/// ones keep what they have.
///
/// Also removes the pins of enforcements that no longer act (their cgroup
/// was removed, or the `keepalive run --enforce` that owned them died).
pub fn enforce(cgroup: &Path, policy: &Policy) -> Result<Enforced> {
    check_privileges()?;
    let cg = Cgroup::open(cgroup)?;
    let pins = Pins::lock()?;
    let dir = pins.dir(cg.id());
    prune_stale(&dir)?;
    let enforced = |change, previous, attachment| Enforced {
        cgroup: cg.path().to_path_buf(),
        cgroup_id: cg.id(),
        change,
        policy: *policy,
        previous,
        pin_dir: dir.path().to_path_buf(),
        attachment,
        bpffs: pins.mount,
    };
    if dir.exists() {
        if let Some((map, attachment)) = open_attached(&dir)? {
            let previous = map.read().ok();
            map.write(policy)?;
            return Ok(enforced(Change::Updated, previous, attachment));
        }
        // Left over and no longer acting: start afresh.
        dir.remove()?;
    }
    let map = SettingsMap::create(policy)?;
    let prog = object::Program::load(&map)?;
    let link = Link::attach(&prog, &cg)?;
    let info = link
        .info()
        .map_err(|e| Error::syscall("BPF_OBJ_GET_INFO_BY_FD", e))?;
    let pinned = dir
        .create()
        .and_then(|()| map.pin(&dir.c_settings()?, &dir.settings()))
        .and_then(|()| link.pin(&dir.c_link()?, &dir.link()));
    if let Err(e) = pinned {
        // The link detaches when `link` is dropped: leave nothing behind.
        let _ = dir.remove();
        return Err(e);
    }
    Ok(enforced(
        Change::Attached,
        None,
        Attachment {
            link_id: info.id,
            prog_id: info.prog_id,
        },
    ))
}

/// The settings map of `dir` and its attachment, when its program is
/// still attached to a live cgroup.
fn open_attached(dir: &PinDir) -> Result<Option<(SettingsMap, Attachment)>> {
    let map = match SettingsMap::open_pinned(&dir.c_settings()?, &dir.settings()) {
        Ok(map) => map,
        Err(Error::Path { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let attached = object::link_using_map(map.id())?;
    Ok(attached
        .filter(|(link, _)| link.cgroup_id == dir.cgroup_id())
        .map(|(link, _)| {
            (
                map,
                Attachment {
                    link_id: link.id,
                    prog_id: link.prog_id,
                },
            )
        }))
}

/// Removes the pin directories, other than `keep`, whose program no
/// longer acts on a live cgroup.
fn prune_stale(keep: &PinDir) -> Result<()> {
    for dir in PinDir::list()? {
        if dir != *keep && open_attached(&dir)?.is_none() {
            dir.remove()?;
        }
    }
    Ok(())
}

/// One enforced cgroup, as [`status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// The cgroup's id.
    pub cgroup_id: u64,
    /// Its directory; `None` when it was not found (removed).
    pub cgroup: Option<PathBuf>,
    /// The policy in its map; `None` when it cannot be read.
    pub policy: Option<Policy>,
    /// The attachment; `None` when the program no longer acts (the pins
    /// are left over; the next `enforce` or `--remove` clears them).
    pub attachment: Option<Attachment>,
    /// True when the link is pinned (`keepalive enforce`); false when a
    /// running `keepalive run --enforce` holds it.
    pub link_pinned: bool,
    /// The pins' directory.
    pub pin_dir: PathBuf,
}

/// Every cgroup with pins under `/sys/fs/bpf/keepalive`, with its policy
/// and whether the program is attached (as the kernel reports it). Empty
/// when bpffs is not mounted. Changes nothing.
pub fn status() -> Result<Vec<Enforcement>> {
    check_privileges()?;
    let dirs = PinDir::list()?;
    let hierarchy = Hierarchy::find().ok();
    let mut out = Vec::new();
    for dir in dirs {
        let (policy, attachment) = match open_attached(&dir) {
            Ok(Some((map, attachment))) => (map.read().ok(), Some(attachment)),
            Ok(None) => (
                SettingsMap::open_pinned(&dir.c_settings()?, &dir.settings())
                    .and_then(|m| m.read())
                    .ok(),
                None,
            ),
            Err(e @ Error::NotPermitted { .. }) => return Err(e),
            Err(_) => (None, None),
        };
        out.push(Enforcement {
            cgroup_id: dir.cgroup_id(),
            cgroup: hierarchy
                .as_ref()
                .and_then(|h| h.find_by_id(dir.cgroup_id())),
            policy,
            attachment,
            link_pinned: dir.link().exists(),
            pin_dir: dir.path().to_path_buf(),
        });
    }
    Ok(out)
}

/// The outcome of [`remove`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The cgroup directory.
    pub cgroup: PathBuf,
    /// Its id.
    pub cgroup_id: u64,
    /// The links detached (none when nothing was enforced).
    pub detached: Vec<Attachment>,
    /// The pin directory removed, if there was one.
    pub unpinned: Option<PathBuf>,
}

/// Stops enforcing on `cgroup`: detaches every link of the keepalive
/// program from it (a pinned one, and one a running `keepalive run
/// --enforce` holds), removes the pins, then checks with `BPF_PROG_QUERY`
/// that none of those programs is attached any more.
pub fn remove(cgroup: &Path) -> Result<Removed> {
    check_privileges()?;
    let cg = Cgroup::open(cgroup)?;
    let pins = Pins::lock()?;
    let dir = pins.dir(cg.id());
    let mut detached = Vec::new();
    for (info, _) in object::our_links(cg.id())? {
        let Ok(link) = Link::by_id(info.id) else {
            continue;
        };
        link.detach()?;
        detached.push(Attachment {
            link_id: info.id,
            prog_id: info.prog_id,
        });
    }
    let unpinned = if dir.exists() {
        dir.remove()?;
        Some(dir.path().to_path_buf())
    } else {
        None
    };
    let still = object::query_sock_ops(&cg)?;
    if let Some(a) = detached.iter().find(|a| still.contains(&a.prog_id)) {
        return Err(Error::Syscall {
            call: "BPF_LINK_DETACH",
            source: std::io::Error::other(format!(
                "program {} is still attached to {} after its link {} was detached",
                a.prog_id,
                cg.path().display(),
                a.link_id
            )),
        });
    }
    Ok(Removed {
        cgroup: cg.path().to_path_buf(),
        cgroup_id: cg.id(),
        detached,
        unpinned,
    })
}

/// The ids of the sock_ops programs attached to `cgroup` itself, any
/// program, as `BPF_PROG_QUERY` reports them (what `bpftool cgroup show`
/// lists).
pub fn attached_programs(cgroup: &Path) -> Result<Vec<u32>> {
    let cg = Cgroup::open(cgroup)?;
    object::query_sock_ops(&cg)
}

/// Loads the program, with a fresh settings map, and unloads it: the
/// kernel's verifier must accept it. Returns the id it had.
pub fn verify_program() -> Result<u32> {
    object::load_only()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_line() {
        let status = "Name:\tkeepalive\nCapPrm:\t0000000000000000\n\
                      CapEff:\t000001ffffffffff\nCapBnd:\t0000000000000000\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name:\tx\nCapPrm:\t0000000000000000\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
    }

    #[test]
    fn caps_match_the_kernels() {
        // capget(2), asked independently of /proc, must agree bit for bit.
        let kernel = rustix::thread::capabilities(None).expect("capget");
        assert_eq!(effective_caps(), Some(kernel.effective.bits()));
    }

    #[test]
    fn privileges_follow_the_caps() {
        let caps = rustix::thread::capabilities(None)
            .expect("capget")
            .effective;
        use rustix::thread::CapabilitySet as C;
        let allowed = caps.contains(C::SYS_ADMIN) || caps.contains(C::BPF | C::NET_ADMIN);
        match check_privileges() {
            Ok(()) => assert!(allowed, "caps {caps:?}"),
            Err(e) => {
                assert!(!allowed, "caps {caps:?}: {e}");
                assert!(matches!(e, Error::NotPermitted { source: None, .. }), "{e}");
            }
        }
    }
}
