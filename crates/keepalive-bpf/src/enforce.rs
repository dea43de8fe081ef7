//! `keepalive enforce`: attach (or update) a policy on a cgroup, pinned so
//! that it outlives the command; list the enforced cgroups; remove one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroup::{Cgroup, Hierarchy};
use crate::claim::{self, Claims};
use crate::error::{Error, Result};
use crate::object::{self, Hook, Link, Program, SettingsMap};
use crate::origin::Origin;
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
    /// The sock_ops program's attachment.
    pub attachment: Attachment,
    /// The cgroup/setsockopt program's attachment (its companion, which
    /// holds `--force` and `--max-idle` against the program's setsockopt).
    pub setsockopt: Option<Attachment>,
    /// Whether bpffs had to be mounted.
    pub bpffs: BpfFsMount,
    /// What it was made for, as recorded beside the pins.
    pub origin: Origin,
}

/// A program attached to a cgroup through a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The link's id (`bpftool link`).
    pub link_id: u32,
    /// The program's id (`bpftool prog`, `bpftool cgroup show`).
    pub prog_id: u32,
}

/// Enforces `policy` on the cgroup `cgroup`: loads the two programs
/// (sock_ops and cgroup/setsockopt) and attaches them, with their links
/// and settings map pinned under `/sys/fs/bpf/keepalive/cgroup-<id>/`
/// (bpffs is mounted when it is not), and the claims map shared by every
/// enforcement at `/sys/fs/bpf/keepalive/claims`; or, when they are
/// attached already, replaces the settings in their map. Either way
/// connections established afterwards get `policy`, and the setsockopt
/// calls made afterwards on any connection of the cgroup are held to it;
/// existing connections keep what they have.
///
/// Also removes left-over pins that no longer act: those made for the same
/// path or unit (a unit's earlier starts, a removed cgroup of that path),
/// and those that record nothing (a `keepalive run --enforce` that died).
/// Others stay, listed by [`status`] as gone, until [`remove_for`] of
/// their path or unit.
pub fn enforce(cgroup: &Path, policy: &Policy) -> Result<Enforced> {
    enforce_for(&Origin::path(cgroup), policy)
}

/// [`enforce`] on `origin.path`, recording `origin` (the unit it was made
/// for, whether it is persisted) beside the pins. Updating an enforcement
/// made for a unit by its path keeps the unit in the record.
pub fn enforce_for(origin: &Origin, policy: &Policy) -> Result<Enforced> {
    check_privileges()?;
    let cg = Cgroup::open(&origin.path)?;
    let pins = Pins::lock()?;
    let dir = pins.dir(cg.id());
    let origin = match dir.origin() {
        Some(old) if origin.unit.is_none() && old.path == origin.path => old,
        _ => origin.clone(),
    };
    prune_stale(&dir, &origin)?;
    let enforced = |change, previous, attached: Attached| Enforced {
        cgroup: cg.path().to_path_buf(),
        cgroup_id: cg.id(),
        change,
        policy: *policy,
        previous,
        pin_dir: dir.path().to_path_buf(),
        attachment: attached.sock_ops,
        setsockopt: attached.setsockopt,
        bpffs: pins.mount,
        origin: origin.clone(),
    };
    if dir.exists() {
        match open_attached(&dir)? {
            Some((map, attached)) if !map.is_legacy() && attached.setsockopt.is_some() => {
                let previous = map.read().ok();
                map.write(policy)?;
                dir.write_origin(&origin)?;
                return Ok(enforced(Change::Updated, previous, attached));
            }
            // Made by an older keepalive (no setsockopt companion, no
            // room for max_idle): replaced by ours.
            Some(_) => {
                detach_ours(cg.id())?;
            }
            None => {}
        }
        // Left over and no longer acting: start afresh.
        dir.remove()?;
    }
    let claims = Claims::open_or_create()?;
    let depth = claim::depth(&cg);
    let map = SettingsMap::create(policy)?;
    let sock_ops = Program::load(Hook::SockOps, &map, &claims, depth)?;
    let setsockopt = Program::load(Hook::SetSockopt, &map, &claims, depth)?;
    // The setsockopt program first: once the sock_ops one acts, the
    // policy holds from the first connection.
    let setsockopt_link = Link::attach(&setsockopt, &cg)?;
    let link = Link::attach(&sock_ops, &cg)?;
    let info = |l: &Link| {
        l.info()
            .map(|i| Attachment {
                link_id: i.id,
                prog_id: i.prog_id,
            })
            .map_err(|e| Error::syscall("BPF_OBJ_GET_INFO_BY_FD", e))
    };
    let attached = Attached {
        sock_ops: info(&link)?,
        setsockopt: Some(info(&setsockopt_link)?),
    };
    let pinned = dir
        .create()
        .and_then(|()| dir.write_origin(&origin))
        .and_then(|()| map.pin(&dir.c_settings()?, &dir.settings()))
        .and_then(|()| setsockopt_link.pin(&dir.c_setsockopt_link()?, &dir.setsockopt_link()))
        .and_then(|()| link.pin(&dir.c_link()?, &dir.link()));
    if let Err(e) = pinned {
        // The links detach when dropped: leave nothing behind.
        let _ = dir.remove();
        return Err(e);
    }
    Ok(enforced(Change::Attached, None, attached))
}

/// The attachments of an enforcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attached {
    sock_ops: Attachment,
    setsockopt: Option<Attachment>,
}

/// The settings map of `dir` and its attachments, when its sock_ops
/// program is still attached to a live cgroup.
fn open_attached(dir: &PinDir) -> Result<Option<(SettingsMap, Attached)>> {
    let map = match SettingsMap::open_pinned(&dir.c_settings()?, &dir.settings()) {
        Ok(map) => map,
        Err(Error::Path { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let links: Vec<_> = object::links_using_map(map.id())?
        .into_iter()
        .filter(|(link, _)| link.cgroup_id == dir.cgroup_id())
        .collect();
    let find = |hook| {
        links
            .iter()
            .find(|(link, _)| link.is_cgroup(hook))
            .map(|(link, _)| Attachment {
                link_id: link.id,
                prog_id: link.prog_id,
            })
    };
    Ok(find(Hook::SockOps).map(|sock_ops| {
        (
            map,
            Attached {
                sock_ops,
                setsockopt: find(Hook::SetSockopt),
            },
        )
    }))
}

/// Removes the pin directories, other than `keep`, made for the same
/// path or unit as `origin` or recording nothing, whose program no longer
/// acts on a live cgroup.
fn prune_stale(keep: &PinDir, origin: &Origin) -> Result<()> {
    let hierarchy = Hierarchy::find().ok();
    for dir in PinDir::list()? {
        if dir == *keep {
            continue;
        }
        let record = dir.origin();
        let related = record.as_ref().is_none_or(|r| {
            r.matches(Some(&origin.path), None)
                || origin
                    .unit
                    .as_deref()
                    .is_some_and(|u| r.matches(None, Some(u)))
        });
        if !related {
            continue;
        }
        let gone = matches!(
            locate(&dir, record.as_ref(), hierarchy.as_ref()),
            Located::Gone
        );
        if gone || open_attached(&dir)?.is_none() {
            dir.remove()?;
        }
    }
    Ok(())
}

/// Where the cgroup of a pin directory is.
enum Located {
    /// Its directory.
    At(PathBuf),
    /// Removed. The kernel releases a removed cgroup's links a moment after
    /// rmdir (an RCU grace period and a work item later): until then they
    /// still show its id, so this is the only sure sign.
    Gone,
    /// Cannot be told (no record, no cgroup v2 mount here).
    Unknown,
}

/// Finds the cgroup of `dir`: at the path recorded in `origin` when that
/// directory still has the cgroup's id (a unit's new start makes a new
/// cgroup at the same path), else by walking the hierarchy.
fn locate(dir: &PinDir, origin: Option<&Origin>, hierarchy: Option<&Hierarchy>) -> Located {
    use std::os::unix::fs::MetadataExt;
    if let Some(o) = origin {
        match fs::metadata(&o.path) {
            Ok(m) if m.ino() == dir.cgroup_id() => return Located::At(o.path.clone()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Located::Unknown,
        }
    }
    match hierarchy {
        Some(h) => h
            .find_by_id(dir.cgroup_id())
            .map_or(Located::Gone, Located::At),
        None => Located::Unknown,
    }
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
    /// The sock_ops program's attachment; `None` when the program no
    /// longer acts (the pins are left over; the next `enforce` or
    /// `--remove` clears them).
    pub attachment: Option<Attachment>,
    /// The cgroup/setsockopt program's attachment; `None` when it is not
    /// attached (pins of an older keepalive, or left over).
    pub setsockopt: Option<Attachment>,
    /// True when the link is pinned (`keepalive enforce`); false when a
    /// running `keepalive run --enforce` holds it.
    pub link_pinned: bool,
    /// The pins' directory.
    pub pin_dir: PathBuf,
    /// What it was made for; `None` for pins that record nothing (made by
    /// an older keepalive).
    pub origin: Option<Origin>,
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
        let origin = dir.origin();
        let located = locate(&dir, origin.as_ref(), hierarchy.as_ref());
        let (policy, attached) = match open_attached(&dir) {
            Ok(Some((map, attached))) => (map.read().ok(), Some(attached)),
            Ok(None) => (
                SettingsMap::open_pinned(&dir.c_settings()?, &dir.settings())
                    .and_then(|m| m.read())
                    .ok(),
                None,
            ),
            Err(e @ Error::NotPermitted { .. }) => return Err(e),
            Err(_) => (None, None),
        };
        let (cgroup, attached) = match located {
            Located::At(path) => (Some(path), attached),
            // Its links go a moment after rmdir: not acting any more.
            Located::Gone => (None, None),
            Located::Unknown => (None, attached),
        };
        out.push(Enforcement {
            cgroup_id: dir.cgroup_id(),
            cgroup,
            policy,
            attachment: attached.map(|a| a.sock_ops),
            setsockopt: attached.and_then(|a| a.setsockopt),
            link_pinned: dir.link().exists(),
            pin_dir: dir.path().to_path_buf(),
            origin,
        });
    }
    Ok(out)
}

/// The outcome of [`remove`] and [`remove_for`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The cgroup directory: the one asked for, or the one a unit's pins
    /// recorded; `None` when neither is known.
    pub cgroup: Option<PathBuf>,
    /// Its id; `None` when the cgroup does not exist (any more).
    pub cgroup_id: Option<u64>,
    /// The unit asked for, with [`remove_for`].
    pub unit: Option<String>,
    /// The sock_ops links detached (none when nothing was attached): one
    /// per enforcement.
    pub detached: Vec<Attachment>,
    /// Their cgroup/setsockopt companions, detached with them.
    pub detached_setsockopt: Vec<Attachment>,
    /// The live cgroup's pin directory, removed, if there was one.
    pub unpinned: Option<PathBuf>,
    /// The pin directories of cgroups that are gone (a removed cgroup, a
    /// unit's earlier starts) made for the same path or unit, removed.
    pub left_over: Vec<PathBuf>,
}

impl Removed {
    /// True when nothing was enforced: nothing detached, nothing unpinned.
    pub fn is_empty(&self) -> bool {
        self.detached.is_empty()
            && self.detached_setsockopt.is_empty()
            && self.unpinned.is_none()
            && self.left_over.is_empty()
    }
}

/// Stops enforcing on `cgroup`: detaches every link of the keepalive
/// programs from it, sock_ops and cgroup/setsockopt (pinned ones, and those
/// a running `keepalive run --enforce` holds), removes the pins, then checks
/// with `BPF_PROG_QUERY` on both hooks that none of those programs is
/// attached any more. The claims map's pin goes with the last enforcement. When the cgroup was
/// removed, removes the pins recorded as made for its path (an error when
/// there are none: the path is then neither a cgroup nor enforced).
pub fn remove(cgroup: &Path) -> Result<Removed> {
    remove_for(Some(cgroup), None)
}

/// [`remove`] for the cgroup `cgroup` (when given and it exists), and for
/// every pin directory recorded as made for that path or for `unit`: a
/// unit's earlier cgroups included, whose pins outlive them.
pub fn remove_for(cgroup: Option<&Path>, unit: Option<&str>) -> Result<Removed> {
    check_privileges()?;
    let live = match cgroup.map(Cgroup::open) {
        None => None,
        Some(Ok(cg)) => Some(cg),
        Some(Err(Error::Path { source, .. })) if source.kind() == std::io::ErrorKind::NotFound => {
            None
        }
        Some(Err(e)) => return Err(e),
    };
    let pins = Pins::lock()?;
    let mut removed = Removed {
        cgroup: live
            .as_ref()
            .map(|cg| cg.path().to_path_buf())
            .or(cgroup.map(Path::to_path_buf)),
        cgroup_id: live.as_ref().map(Cgroup::id),
        unit: unit.map(str::to_owned),
        detached: Vec::new(),
        detached_setsockopt: Vec::new(),
        unpinned: None,
        left_over: Vec::new(),
    };
    let live_dir = live.as_ref().map(|cg| pins.dir(cg.id()));
    if let Some(cg) = &live {
        (removed.detached, removed.detached_setsockopt) = detach_ours(cg.id())?;
        let dir = pins.dir(cg.id());
        if dir.exists() {
            dir.remove()?;
            removed.unpinned = Some(dir.path().to_path_buf());
        }
    }
    for dir in PinDir::list()? {
        if Some(&dir) == live_dir.as_ref() {
            continue;
        }
        let Some(origin) = dir.origin() else { continue };
        if !origin.matches(cgroup, unit) {
            continue;
        }
        // Gone, or a cgroup the unit had before: nothing may stay attached.
        let (sock_ops, setsockopt) = detach_ours(dir.cgroup_id())?;
        removed.detached.extend(sock_ops);
        removed.detached_setsockopt.extend(setsockopt);
        dir.remove()?;
        removed.left_over.push(dir.path().to_path_buf());
        if removed.cgroup.is_none() {
            removed.cgroup = Some(origin.path);
        }
    }
    if let (Some(path), None, true) = (cgroup, &live, removed.left_over.is_empty()) {
        // Neither a cgroup nor the path of an enforcement: say why.
        return Err(Cgroup::open(path).err().unwrap_or_else(|| Error::Path {
            what: "open the cgroup",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }));
    }
    if PinDir::list()?.is_empty() {
        claim::unpin()?;
    }
    if let Some(cg) = &live {
        let mut still = object::query(cg, Hook::SockOps)?;
        still.extend(object::query(cg, Hook::SetSockopt)?);
        if let Some(a) = removed
            .detached
            .iter()
            .chain(&removed.detached_setsockopt)
            .find(|a| still.contains(&a.prog_id))
        {
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
    }
    Ok(removed)
}

/// Detaches every link of the keepalive programs (both hooks) from the
/// cgroup `id`: the sock_ops ones, and the cgroup/setsockopt ones.
fn detach_ours(cgroup_id: u64) -> Result<(Vec<Attachment>, Vec<Attachment>)> {
    let (mut sock_ops, mut setsockopt) = (Vec::new(), Vec::new());
    for (info, _) in object::our_links(cgroup_id)? {
        let Ok(link) = Link::by_id(info.id) else {
            continue;
        };
        link.detach()?;
        let a = Attachment {
            link_id: info.id,
            prog_id: info.prog_id,
        };
        match info.hook() {
            Some(Hook::SetSockopt) => setsockopt.push(a),
            _ => sock_ops.push(a),
        }
    }
    Ok((sock_ops, setsockopt))
}

/// The ids of the sock_ops programs attached to `cgroup` itself, any
/// program, as `BPF_PROG_QUERY` reports them (what `bpftool cgroup show`
/// lists).
pub fn attached_programs(cgroup: &Path) -> Result<Vec<u32>> {
    let cg = Cgroup::open(cgroup)?;
    object::query_sock_ops(&cg)
}

/// The ids of the cgroup/setsockopt programs attached to `cgroup` itself,
/// any program, as `BPF_PROG_QUERY` reports them.
pub fn attached_setsockopt_programs(cgroup: &Path) -> Result<Vec<u32>> {
    let cg = Cgroup::open(cgroup)?;
    object::query(&cg, Hook::SetSockopt)
}

/// Loads both programs, with fresh maps, and unloads them: the kernel's
/// verifier must accept them. Returns the sock_ops program's id.
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
