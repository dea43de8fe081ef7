//! `keepalive run --enforce`: a cgroup of its own for a command, with the
//! policy enforced there for as long as it runs.
//!
//! A socket's cgroup is fixed when the socket is created, so the command
//! must start inside the cgroup: its starter (the CLI) moves the child
//! there between fork and exec, through [`RunScope::procs_file`]. Starting
//! the command, its signals and its exit status are the starter's
//! business; this module creates, attaches and cleans up. The link is held
//! by this process's fd only (not pinned): if this process dies the link
//! detaches by itself. The settings map is pinned, so that `keepalive
//! enforce --status` lists the cgroup and `keepalive enforce --cgroup` can
//! change the values while it runs.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::cgroup::{Cgroup, Hierarchy};
use crate::claim::{self, Claims};
use crate::enforce::{Attachment, check_privileges};
use crate::error::{Error, Result};
use crate::object::{Hook, Link, Program, SettingsMap};
use crate::pin::{PinDir, Pins};
use crate::program::Policy;

/// A new cgroup with the policy enforced on it, removed (with the pins and
/// the link) when [`RunScope::finish`] is called or it is dropped.
#[derive(Debug)]
pub struct RunScope {
    cgroup: Option<Cgroup>,
    link: Option<Link>,
    setsockopt_link: Option<Link>,
    map: Option<SettingsMap>,
    pin_dir: Option<PinDir>,
    attachment: Attachment,
}

/// What [`RunScope::finish`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The cgroup, the pins and the link are gone.
    Removed,
    /// Processes the command left behind still run in the cgroup: the
    /// link is now pinned so that they stay covered, and the cgroup is
    /// kept. `keepalive enforce --cgroup <cgroup> --remove` and rmdir undo it.
    Left {
        /// The cgroup directory.
        cgroup: std::path::PathBuf,
        /// The processes still in it.
        pids: Vec<u32>,
    },
}

impl RunScope {
    /// Creates `keepalive-run-<pid>` under the cgroup this process is in
    /// (so the command stays under the same resource limits), and attaches
    /// the program with `policy` to it.
    pub fn create(policy: &Policy) -> Result<RunScope> {
        check_privileges()?;
        let parent = Hierarchy::find()?.current()?;
        let name = format!("keepalive-run-{}", std::process::id());
        let cgroup = match Cgroup::create(&parent, &name) {
            // Left by an earlier run that had this pid and was killed.
            Err(Error::Path { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                let stale = Cgroup::open(&parent.join(&name))?;
                // Its pins too, or they would stay in bpffs for good.
                Pins::lock()?.dir(stale.id()).remove()?;
                let _ = stale.remove();
                Cgroup::create(&parent, &name)?
            }
            other => other?,
        };
        let mut scope = RunScope {
            cgroup: Some(cgroup),
            link: None,
            setsockopt_link: None,
            map: None,
            pin_dir: None,
            attachment: Attachment {
                link_id: 0,
                prog_id: 0,
            },
        };
        // From here on, dropping `scope` on an error undoes what was done.
        let cgroup = scope.cgroup.as_ref().expect("set above");
        let claims = {
            let _pins = Pins::lock()?;
            Claims::open_or_create()?
        };
        let depth = claim::depth(cgroup);
        let map = SettingsMap::create(policy)?;
        let prog = Program::load(Hook::SockOps, &map, &claims, depth)?;
        let setsockopt = Program::load(Hook::SetSockopt, &map, &claims, depth)?;
        scope.setsockopt_link = Some(Link::attach(&setsockopt, cgroup)?);
        let link = Link::attach(&prog, cgroup)?;
        let info = link
            .info()
            .map_err(|e| Error::syscall("BPF_OBJ_GET_INFO_BY_FD", e))?;
        scope.attachment = Attachment {
            link_id: info.id,
            prog_id: info.prog_id,
        };
        scope.link = Some(link);
        let pins = Pins::lock()?;
        let dir = pins.dir(cgroup.id());
        // Same cgroup id as a dead run's left-over pins: replace them.
        dir.remove()?;
        dir.create()?;
        scope.pin_dir = Some(dir.clone());
        map.pin(&dir.c_settings()?, &dir.settings())?;
        scope.map = Some(map);
        Ok(scope)
    }

    /// The cgroup directory.
    pub fn cgroup(&self) -> &Path {
        self.cgroup.as_ref().map_or(Path::new(""), |c| c.path())
    }

    /// The program's attachment.
    pub fn attachment(&self) -> Attachment {
        self.attachment
    }

    /// The cgroup's `cgroup.procs`, open for writing: a process that
    /// writes `0` to it moves itself (all its threads) into the cgroup. To
    /// start a command inside, its child writes there between fork and exec
    /// (write(2) is async-signal-safe), so that every socket the command
    /// makes belongs to the cgroup.
    pub fn procs_file(&self) -> io::Result<File> {
        let cgroup = self
            .cgroup
            .as_ref()
            .ok_or_else(|| io::Error::other("the scope is finished"))?;
        cgroup.procs_file()
    }

    /// Removes the cgroup, the pins and the link, unless processes the
    /// command left behind still run in the cgroup: then the link is
    /// pinned, so that they stay covered, and the cgroup is kept.
    pub fn finish(mut self) -> Result<Finished> {
        let Some(cgroup) = self.cgroup.as_ref() else {
            return Ok(Finished::Removed);
        };
        // The command may have made cgroups of its own below ours: their
        // processes count, and empty ones must go before ours can. When
        // that cannot be told, keep everything: enforcement must not end
        // under a process still running.
        let pids = cgroup.subtree_procs();
        if pids.as_ref().is_ok_and(Vec::is_empty) && cgroup.remove_children().is_ok() {
            self.clean_up()?;
            return Ok(Finished::Removed);
        }
        let pids = pids.unwrap_or_default();
        let _pins = Pins::lock()?;
        if let (Some(link), Some(dir)) = (&self.link, &self.pin_dir) {
            link.pin(&dir.c_link()?, &dir.link())?;
        }
        if let (Some(link), Some(dir)) = (&self.setsockopt_link, &self.pin_dir) {
            link.pin(&dir.c_setsockopt_link()?, &dir.setsockopt_link())?;
        }
        let path = cgroup.path().to_path_buf();
        // Keep everything: forget the handles without undoing anything.
        self.cgroup = None;
        self.link = None;
        self.setsockopt_link = None;
        self.pin_dir = None;
        Ok(Finished::Left { cgroup: path, pids })
    }

    /// Detaches the link, removes the pins and the cgroup.
    fn clean_up(&mut self) -> Result<()> {
        let pins = Pins::lock();
        for link in [self.link.take(), self.setsockopt_link.take()]
            .into_iter()
            .flatten()
        {
            // Synchronous, unlike the release of the last reference.
            let _ = link.detach();
        }
        self.map = None;
        if let (Ok(_), Some(dir)) = (&pins, self.pin_dir.take()) {
            dir.remove()?;
        }
        drop(pins);
        if let Some(cgroup) = self.cgroup.take() {
            remove_when_empty(cgroup)?;
        }
        Ok(())
    }
}

/// rmdir, retried for a moment: the last processes of a cgroup (children
/// the command left, reaped by init) may still count for a few
/// milliseconds after they exit.
fn remove_when_empty(cgroup: Cgroup) -> Result<()> {
    let path = cgroup.path().to_path_buf();
    drop(cgroup);
    let mut pause = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(&path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && pause < Duration::from_secs(1) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(e) => return Err(Error::path("remove the cgroup", path, e)),
        }
    }
}

impl Drop for RunScope {
    fn drop(&mut self) {
        let _ = self.clean_up();
    }
}
