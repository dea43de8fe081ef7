//! `enforce --existing`: the policy, now, on the TCP connections that
//! already exist in a cgroup and its descendants, established and
//! listening (connections accepted later inherit a listener's settings),
//! without stopping, restarting or ptracing anything.
//!
//! Two ways, the first preferred:
//!
//! - [`Way::Iterator`]: a BPF iterator over the TCP sockets of each network
//!   namespace the cgroup's processes are in ([`crate::iter`]), which picks
//!   the sockets whose own cgroup is in the subtree (the sockets the
//!   sock_ops program acts for) and calls `bpf_setsockopt` on them, in the
//!   kernel, each under its socket lock. Needs Linux 5.15 and the kernel's
//!   BTF (`CONFIG_DEBUG_INFO_BTF`).
//! - [`Way::Pidfd`], where the kernel cannot do that: the sockets the
//!   subtree's processes hold (`/proc/PID/fd`, joined with a sock_diag
//!   dump of their namespace), each duplicated with pidfd_getfd(2) (Linux
//!   5.6, ptrace rights over the process), checked to be still that
//!   socket, read, and set with setsockopt(2), as `keepalive attach` does.
//!   It reaches what the processes hold, which is not quite what the
//!   iterator reaches: a socket a process received from elsewhere (its
//!   cgroup is another) is changed, one no process holds is not.
//!
//! In both, the default mode leaves alone a socket whose program switched
//! keepalive on itself, `force` does not, and `max_idle` caps idle and
//! interval on every socket (shorter values stand), as for new connections.
//!
//! Only the iterator reads and writes the claims of nested enforcement
//! ([`crate::claim`]), as the sock_ops program does: it tells a socket
//! whose keepalive one of our programs switched on (the sock_ops program
//! at establishment, an earlier `--existing`) from one whose program did,
//! so that `--existing` run again with new values reaches the first kind;
//! and it leaves alone a socket a deeper cgroup's enforcement claimed. The
//! pidfd fallback sees the sockets from user space and cannot read the
//! claims: to it every socket with keepalive on is its program's own (left
//! alone in the default mode, whoever switched it on), and it sets what a
//! deeper enforcement claimed too.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use keepalive::host::NetNs;
use keepalive::{KeepaliveState, Seconds, Settings};
use keepalive_diag::{Duplicate, PROC, PidFd, PidFdError, StateSet, TcpState};

use crate::btf::Btf;
use crate::cgroup::Cgroup;
use crate::claim::{self, Claims};
use crate::error::Error;
use crate::iter::{Counts, IterError, Layout, TcpIter, max_idle_of};
use crate::program::Policy;

/// Which way [`apply_existing`] may take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Via {
    /// The iterator, or the pidfd fallback where the kernel cannot.
    #[default]
    Auto,
    /// The iterator only: an error where the kernel cannot.
    Iterator,
    /// The pidfd fallback only (tests, comparisons).
    Pidfd,
}

/// The way [`apply_existing`] took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Way {
    /// A BPF iterator over TCP sockets, in the kernel.
    Iterator,
    /// pidfd_getfd(2) over the cgroup's processes.
    Pidfd,
}

impl Way {
    /// `iterator`, `pidfd`: the JSON value.
    pub fn code(self) -> &'static str {
        match self {
            Way::Iterator => "iterator",
            Way::Pidfd => "pidfd",
        }
    }
}

/// What [`apply_existing`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The cgroup directory.
    pub cgroup: PathBuf,
    /// The way taken.
    pub way: Way,
    /// Why the iterator was not used, when [`Via::Auto`] fell back.
    pub fallback: Option<String>,
    /// The network namespaces the subtree's processes are in (each one
    /// searched).
    pub namespaces: usize,
    /// The processes in the subtree.
    pub processes: usize,
    /// Sockets whose settings were set now.
    pub changed: u64,
    /// Of those, listening sockets (their later connections inherit).
    pub listening: u64,
    /// Sockets left alone: their program switched keepalive on itself (in
    /// the default mode), or with `max_idle` already within it, or (the
    /// iterator only) a deeper cgroup's enforcement decides for them.
    pub left_alone: u64,
    /// Sockets where a setsockopt failed.
    pub failed: u64,
    /// Pidfd only: sockets that could not be reached (the process went
    /// away, no right to duplicate its descriptors, closed meanwhile).
    pub unreachable: u64,
}

/// Why [`apply_existing`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExistingError {
    /// The cgroup could not be opened.
    #[error(transparent)]
    Cgroup(#[from] Error),
    /// Its processes or cgroups could not be listed.
    #[error("cannot list the processes of {}", path.display())]
    Procs {
        /// The cgroup.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The iterator was asked for ([`Via::Iterator`]) and cannot be used.
    #[error("the BPF iterator over TCP sockets cannot be used (it needs Linux 5.15 and BTF)")]
    Iterator(#[source] IterError),
    /// A network namespace could not be entered.
    #[error("cannot enter the network namespace of pid {pid}")]
    Namespace {
        /// The process whose namespace it is.
        pid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The TCP sockets of a namespace could not be listed (fallback).
    #[error("cannot list the TCP sockets of the network namespace of pid {pid}: {why}")]
    Diag {
        /// The process whose namespace it is.
        pid: u32,
        /// The error, as a sentence.
        why: String,
    },
    /// pidfd_getfd is missing or refused (fallback).
    #[error("the pidfd fallback cannot reach the processes' sockets")]
    Pidfd(#[source] PidFdError),
}

/// Applies `policy` now to the established and listening TCP connections
/// that exist in `cgroup` and its descendants; see the module docs.
pub fn apply_existing(cgroup: &Path, policy: &Policy, via: Via) -> Result<Existing, ExistingError> {
    let cg = Cgroup::open(cgroup)?;
    let procs_error = |source| ExistingError::Procs {
        path: cg.path().to_path_buf(),
        source,
    };
    let pids = cg.subtree_procs().map_err(procs_error)?;
    let namespaces = namespaces_of(Path::new(PROC), &pids);
    let mut report = Existing {
        cgroup: cg.path().to_path_buf(),
        way: Way::Iterator,
        fallback: None,
        namespaces: namespaces.len(),
        processes: pids.len(),
        changed: 0,
        listening: 0,
        left_alone: 0,
        failed: 0,
        unreachable: 0,
    };
    if via != Via::Pidfd {
        let ids = subtree_ids(cg.path()).map_err(procs_error)?;
        match load_iterator(policy, &ids, &cg) {
            Ok(iter) => {
                for pids in namespaces.values() {
                    in_namespace(pids, || iter.run())?.map_err(ExistingError::Iterator)?;
                }
                let c = iter.counts().map_err(ExistingError::Iterator)?;
                report.add(c);
                return Ok(report);
            }
            Err(e) if via == Via::Iterator => return Err(ExistingError::Iterator(e)),
            Err(e) => report.fallback = Some(chain(&e)),
        }
    }
    report.way = Way::Pidfd;
    for pids in namespaces.values() {
        pidfd_namespace(pids, policy, &mut report)?;
    }
    Ok(report)
}

impl Existing {
    fn add(&mut self, c: Counts) {
        self.changed += c.changed;
        self.listening += c.listening;
        self.left_alone += c.left_alone;
        self.failed += c.failed;
    }
}

/// An error and its sources on one line, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The iterator for `policy` over the sockets of `cgroup_ids`, acting for
/// `cgroup` in the shared claims map (the pinned one; without an
/// enforcement to have pinned it, a map of its own, which no other program
/// reads).
fn load_iterator(
    policy: &Policy,
    cgroup_ids: &[u64],
    cgroup: &Cgroup,
) -> Result<TcpIter, IterError> {
    let btf = Btf::vmlinux()?;
    let layout = Layout::from_btf(&btf)?;
    let claims = match Claims::open_pinned().map_err(IterError::Claims)? {
        Some(claims) => claims,
        None => Claims::create().map_err(IterError::Claims)?,
    };
    TcpIter::load(&layout, policy, cgroup_ids, &claims, claim::depth(cgroup))
}

/// The processes `pids` grouped by network namespace (its inode); those
/// gone meanwhile are left out.
fn namespaces_of(proc_root: &Path, pids: &[u32]) -> BTreeMap<u64, Vec<u32>> {
    let mut out: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for &pid in pids {
        let path = proc_root.join(pid.to_string()).join("ns/net");
        if let Ok(meta) = std::fs::metadata(&path) {
            out.entry(meta.ino()).or_default().push(pid);
        }
    }
    out
}

/// The ids (directory inodes) of the cgroup at `dir` and of every cgroup
/// below it.
fn subtree_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = vec![std::fs::metadata(dir)?.ino()];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                ids.push(entry.metadata()?.ino());
                dirs.push(entry.path());
            }
        }
    }
    Ok(ids)
}

/// Runs `f` in the network namespace of the first of `pids` that can be
/// opened (one may have exited meanwhile); when none can, the error of the
/// last (`NotFound` when they all exited).
fn in_namespace<T: Send>(pids: &[u32], f: impl FnOnce() -> T + Send) -> Result<T, ExistingError> {
    let mut last = None;
    for &pid in pids {
        match NetNs::of_pid(pid) {
            Ok(ns) => {
                return ns
                    .run(f)
                    .map_err(|source| ExistingError::Namespace { pid, source });
            }
            Err(e) => last = Some((pid, e)),
        }
    }
    let (pid, source) = last.unwrap_or_else(|| {
        (
            0,
            io::Error::new(io::ErrorKind::NotFound, "no process left"),
        )
    });
    Err(ExistingError::Namespace { pid, source })
}

/// The pidfd fallback over the processes `pids` of one network namespace.
fn pidfd_namespace(
    pids: &[u32],
    policy: &Policy,
    report: &mut Existing,
) -> Result<(), ExistingError> {
    let states = StateSet::ESTABLISHED.union(StateSet::LISTEN);
    let dump = match in_namespace(pids, || keepalive_diag::tcp_sockets(states)) {
        Ok(Ok(dump)) => dump,
        Ok(Err(e)) => {
            return Err(ExistingError::Diag {
                pid: pids[0],
                why: e.to_string(),
            });
        }
        // Every process of the namespace went away: nothing to do there.
        Err(ExistingError::Namespace { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let proc_root = Path::new(PROC);
    let mut seen: HashSet<u64> = HashSet::new();
    for &pid in pids {
        let Ok(fds) = keepalive_diag::process_sockets(proc_root, pid) else {
            // Gone, or not ours to read: its sockets are not reached.
            continue;
        };
        let held = keepalive_diag::held_sockets(&fds, &dump);
        if held.iter().all(|h| seen.contains(&h.socket.inode)) {
            continue;
        }
        let pidfd = match PidFd::open(pid) {
            Ok(p) => p,
            Err(_) => {
                report.unreachable += held.len() as u64;
                continue;
            }
        };
        for h in held {
            if !seen.insert(h.socket.inode) {
                continue;
            }
            let mut dup = None;
            for &fd in &h.fds {
                match pidfd.socket(fd, h.socket.inode) {
                    Ok(Duplicate::Socket(d)) => {
                        dup = Some(d);
                        break;
                    }
                    Ok(Duplicate::Closed | Duplicate::Reused) => {}
                    Err(e) if matches!(e.kind(), keepalive_diag::PidFdErrorKind::Unsupported) => {
                        return Err(ExistingError::Pidfd(e));
                    }
                    Err(_) => {}
                }
            }
            let Some(dup) = dup else {
                report.unreachable += 1;
                continue;
            };
            match apply_one(&dup, policy) {
                Outcome::Changed => {
                    report.changed += 1;
                    if h.socket.state == TcpState::Listen {
                        report.listening += 1;
                    }
                }
                Outcome::LeftAlone => report.left_alone += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
    }
    Ok(())
}

enum Outcome {
    Changed,
    LeftAlone,
    Failed,
}

/// What to set on a socket whose options are `before`, by `policy`
/// (`None`: leave it alone); the rules of the sock_ops program.
fn wanted(before: &KeepaliveState, policy: &Policy) -> Option<Settings> {
    let own = before.enabled && !policy.force;
    let mut settings = if own { None } else { Some(policy.settings()) };
    if let Some(max) = max_idle_of(policy) {
        let after = settings.map_or(*before, |s| before.after(&s));
        let mut capped = settings.unwrap_or_else(Settings::new);
        let cap = |v: u32, mine: &mut Option<Seconds>| {
            if v > u32::from(max.get()) {
                *mine = Some(max);
                true
            } else {
                false
            }
        };
        let idle = cap(after.idle, &mut capped.idle);
        let interval = cap(after.interval, &mut capped.interval);
        if idle || interval || settings.is_some() {
            settings = Some(capped);
        }
    }
    settings
}

fn apply_one(dup: &std::os::fd::OwnedFd, policy: &Policy) -> Outcome {
    let Ok(before) = KeepaliveState::read(dup) else {
        return Outcome::Failed;
    };
    match wanted(&before, policy) {
        None => Outcome::LeftAlone,
        Some(settings) => match keepalive::apply(dup, &settings) {
            Ok(()) => Outcome::Changed,
            Err(_) => Outcome::Failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive::ProbeCount;

    fn state(enabled: bool, idle: u32, interval: u32) -> KeepaliveState {
        KeepaliveState {
            enabled,
            idle,
            interval,
            count: 9,
            user_timeout_ms: 0,
        }
    }

    fn policy(force: bool) -> Policy {
        Policy {
            idle: Some(Seconds::new(60).unwrap()),
            count: Some(ProbeCount::new(4).unwrap()),
            force,
            ..Policy::default()
        }
    }

    #[test]
    fn default_mode_leaves_a_programs_own_keepalive_alone() {
        assert_eq!(wanted(&state(true, 15, 15), &policy(false)), None);
        assert_eq!(
            wanted(&state(false, 7200, 75), &policy(false)),
            Some(policy(false).settings())
        );
    }

    #[test]
    fn force_sets_every_socket() {
        assert_eq!(
            wanted(&state(true, 15, 15), &policy(true)),
            Some(policy(true).settings())
        );
    }

    #[test]
    fn namespaces_group_processes() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // A fake proc root: pid 1 and 2 share a namespace file, 3 has
        // another, 4 is gone.
        for (pid, ns) in [(1, "a"), (2, "a"), (3, "b")] {
            let d = dir.path().join(pid.to_string()).join("ns");
            std::fs::create_dir_all(&d).unwrap();
            let target = dir.path().join(ns);
            if !target.exists() {
                std::fs::write(&target, "").unwrap();
            }
            std::fs::hard_link(&target, d.join("net")).unwrap();
        }
        let got = namespaces_of(dir.path(), &[1, 2, 3, 4]);
        let groups: Vec<Vec<u32>> = got.values().cloned().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(groups.contains(&vec![1, 2]) && groups.contains(&vec![3]));
        // This process's own namespace, through the real /proc.
        assert_eq!(namespaces_of(Path::new(PROC), &[me]).len(), 1);
    }

    #[test]
    fn subtree_ids_walk_every_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        let ids = subtree_ids(dir.path()).unwrap();
        assert_eq!(ids.len(), 4, "itself, a, a/b, c");
        assert_eq!(ids[0], std::fs::metadata(dir.path()).unwrap().ino());
    }
}
