//! The kernel objects of an enforcement: the settings map, the two
//! programs (sock_ops and cgroup/setsockopt) and their cgroup links, with
//! safe operations over [`crate::sys`].

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::cgroup::Cgroup;
use crate::claim::Claims;
use crate::error::{Error, Result};
use crate::insn;
use crate::program::{LEGACY_VALUE_SIZE, Policy, VALUE_SIZE, sock_ops_program};
use crate::setsockopt::setsockopt_program;
use crate::sys::{self, MapFd, Object, ProgFd, Syscall};

/// `BPF_PROG_TYPE_SOCK_OPS`.
const PROG_TYPE_SOCK_OPS: u32 = 13;
/// `BPF_CGROUP_SOCK_OPS`.
pub(crate) const ATTACH_CGROUP_SOCK_OPS: u32 = 3;
/// `BPF_PROG_TYPE_CGROUP_SOCKOPT`.
const PROG_TYPE_CGROUP_SOCKOPT: u32 = 25;
/// `BPF_CGROUP_SETSOCKOPT`.
pub(crate) const ATTACH_CGROUP_SETSOCKOPT: u32 = 22;
/// `BPF_MAP_TYPE_ARRAY`.
const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_LINK_TYPE_CGROUP`.
const LINK_TYPE_CGROUP: u32 = 3;

/// The program's name, as `bpftool prog` shows it.
pub const PROG_NAME: &str = "keepalive";
/// The cgroup/setsockopt program's name.
pub const SETSOCKOPT_PROG_NAME: &str = "keepalive_setso";
/// The map's name.
pub const MAP_NAME: &str = "keepalive_cfg";

const LICENSE: &CStr = c"GPL";
const KEY: [u8; 4] = 0u32.to_ne_bytes();

// `struct bpf_map_info` and `struct bpf_prog_info` / `bpf_link_info` offsets.
const INFO_TYPE: usize = 0;
const INFO_ID: usize = 4;
const MAP_INFO_NAME: usize = 24;
const PROG_INFO_NAME: usize = 64;
const LINK_INFO_PROG_ID: usize = 8;
const LINK_INFO_CGROUP_ID: usize = 16;
const LINK_INFO_ATTACH_TYPE: usize = 24;
const INFO_SIZE: usize = 256;

fn u32_at(info: &[u8], off: usize) -> u32 {
    let mut b = [0; 4];
    if let Some(s) = info.get(off..off + 4) {
        b.copy_from_slice(s);
    }
    u32::from_ne_bytes(b)
}

fn u64_at(info: &[u8], off: usize) -> u64 {
    let mut b = [0; 8];
    if let Some(s) = info.get(off..off + 8) {
        b.copy_from_slice(s);
    }
    u64::from_ne_bytes(b)
}

/// A NUL-padded object name.
fn name_at(info: &[u8], off: usize) -> String {
    let bytes = info.get(off..off + 16).unwrap_or_default();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn pin(fd: impl AsFd, path: &CStr, shown: &Path) -> Result<()> {
    sys::bpf(Syscall::ObjPin {
        fd: fd.as_fd(),
        path,
    })
    .map_err(|e| Error::path("pin", shown, e))?;
    Ok(())
}

/// The array map holding the [`Policy`].
#[derive(Debug)]
pub(crate) struct SettingsMap {
    fd: MapFd,
    id: u32,
}

/// The two programs of an enforcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    /// The sock_ops program (`BPF_CGROUP_SOCK_OPS`).
    SockOps,
    /// The cgroup/setsockopt program (`BPF_CGROUP_SETSOCKOPT`).
    SetSockopt,
}

impl Hook {
    pub(crate) const fn attach_type(self) -> u32 {
        match self {
            Hook::SockOps => ATTACH_CGROUP_SOCK_OPS,
            Hook::SetSockopt => ATTACH_CGROUP_SETSOCKOPT,
        }
    }

    const fn prog_name(self) -> &'static str {
        match self {
            Hook::SockOps => PROG_NAME,
            Hook::SetSockopt => SETSOCKOPT_PROG_NAME,
        }
    }
}

impl SettingsMap {
    /// A new map holding `policy`.
    pub(crate) fn create(policy: &Policy) -> Result<SettingsMap> {
        let fd = MapFd::create(MAP_TYPE_ARRAY, 4, VALUE_SIZE as u32, 1, MAP_NAME)
            .map_err(|e| Error::syscall("BPF_MAP_CREATE", e))?;
        let map = SettingsMap::from_fd_checked(fd)?;
        map.write(policy)?;
        Ok(map)
    }

    fn from_fd_checked(fd: MapFd) -> Result<SettingsMap> {
        let mut info = [0; INFO_SIZE];
        sys::bpf(Syscall::ObjGetInfo {
            fd: fd.as_fd(),
            info: &mut info,
        })
        .map_err(|e| Error::syscall("BPF_OBJ_GET_INFO_BY_FD", e))?;
        Ok(SettingsMap {
            id: u32_at(&info, INFO_ID),
            fd,
        })
    }

    /// Opens the map pinned at `path`, checking it is one of ours.
    pub(crate) fn open_pinned(path: &CStr, shown: &Path) -> Result<SettingsMap> {
        let fd =
            sys::bpf_fd(Syscall::ObjGet { path }).map_err(|e| Error::path("open", shown, e))?;
        let mut info = [0; INFO_SIZE];
        let fd = MapFd::from_fd(fd, &mut info).map_err(|e| Error::Foreign {
            path: shown.to_path_buf(),
            why: format!("not a BPF map: {e}"),
        })?;
        let name = name_at(&info, MAP_INFO_NAME);
        let size = fd.value_size() as usize;
        if u32_at(&info, INFO_TYPE) != MAP_TYPE_ARRAY
            || fd.key_size() != 4
            || (size != VALUE_SIZE && size != LEGACY_VALUE_SIZE)
            || name != MAP_NAME
        {
            return Err(Error::Foreign {
                path: shown.to_path_buf(),
                why: format!("a map named {name:?}, not {MAP_NAME:?}"),
            });
        }
        Ok(SettingsMap {
            id: u32_at(&info, INFO_ID),
            fd,
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// True for the map of an older keepalive, without `max_idle`: its
    /// program has no setsockopt companion and must be replaced.
    pub(crate) fn is_legacy(&self) -> bool {
        self.fd.value_size() as usize == LEGACY_VALUE_SIZE
    }

    /// The policy in the map.
    pub(crate) fn read(&self) -> Result<Policy> {
        let mut value = [0; VALUE_SIZE];
        let size = (self.fd.value_size() as usize).min(VALUE_SIZE);
        sys::bpf(Syscall::MapLookupElem {
            map: &self.fd,
            key: &KEY,
            value: &mut value[..size],
        })
        .map_err(|e| Error::syscall("BPF_MAP_LOOKUP_ELEM", e))?;
        Policy::from_bytes(&value).map_err(|e| Error::Syscall {
            call: "BPF_MAP_LOOKUP_ELEM",
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })
    }

    /// Replaces the policy; connections established afterwards see it.
    pub(crate) fn write(&self, policy: &Policy) -> Result<()> {
        sys::bpf(Syscall::MapUpdateElem {
            map: &self.fd,
            key: &KEY,
            value: &policy.to_bytes(),
        })
        .map_err(|e| Error::syscall("BPF_MAP_UPDATE_ELEM", e))?;
        Ok(())
    }

    pub(crate) fn pin(&self, path: &CStr, shown: &Path) -> Result<()> {
        pin(&self.fd, path, shown)
    }

    fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_fd().as_raw_fd()
    }
}

/// A loaded program: the sock_ops one or the cgroup/setsockopt one.
#[derive(Debug)]
pub(crate) struct Program {
    fd: ProgFd,
    hook: Hook,
}

/// Room for the verifier's log when a load fails (it is short for a
/// program of this size; a longer one is cut, and its end kept).
const LOG_SIZE: usize = 256 * 1024;

impl Program {
    /// Loads the program of `hook` for `map`, a cgroup at `depth`, and the
    /// claims map. When the kernel refuses it, loads it again with a log
    /// buffer, to report what the verifier said.
    pub(crate) fn load(
        hook: Hook,
        map: &SettingsMap,
        claims: &Claims,
        depth: u32,
    ) -> Result<Program> {
        let (prog_type, expected, insns) = match hook {
            Hook::SockOps => (
                PROG_TYPE_SOCK_OPS,
                0,
                sock_ops_program(map.raw_fd(), claims.raw_fd(), depth),
            ),
            Hook::SetSockopt => (
                PROG_TYPE_CGROUP_SOCKOPT,
                ATTACH_CGROUP_SETSOCKOPT,
                setsockopt_program(map.raw_fd(), claims.raw_fd(), depth),
            ),
        };
        let insns = insn::to_bytes(&insns);
        let load = |log: Option<&mut [u8]>| {
            ProgFd::load(
                prog_type,
                expected,
                0,
                &insns,
                LICENSE,
                hook.prog_name(),
                log,
            )
        };
        let err = match load(None) {
            Ok(fd) => return Ok(Program { fd, hook }),
            Err(e) => e,
        };
        match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOSYS) => {
                return Err(Error::syscall("BPF_PROG_LOAD", err));
            }
            _ => {}
        }
        let mut log = vec![0; LOG_SIZE];
        if let Ok(fd) = load(Some(&mut log)) {
            // Accepted the second time (the first failure was transient).
            return Ok(Program { fd, hook });
        }
        let text = verifier_log(&log);
        if text.is_empty() && err.raw_os_error() == Some(libc::EINVAL) {
            // Refused before the verifier ran: the program type is unknown.
            return Err(match hook {
                Hook::SockOps => Error::Unsupported {
                    what: "load BPF_PROG_TYPE_SOCK_OPS programs",
                    needs: "a kernel with CONFIG_CGROUP_BPF (Linux 4.13 or later)",
                    source: err,
                },
                Hook::SetSockopt => Error::Unsupported {
                    what: "load BPF_PROG_TYPE_CGROUP_SOCKOPT programs",
                    needs: "a kernel with CONFIG_CGROUP_BPF (Linux 5.3 or later)",
                    source: err,
                },
            });
        }
        Err(Error::Verifier {
            error: err,
            log: text,
        })
    }

    pub(crate) fn id(&self) -> Result<u32> {
        let mut info = [0; INFO_SIZE];
        sys::bpf(Syscall::ObjGetInfo {
            fd: self.fd.as_fd(),
            info: &mut info,
        })
        .map_err(|e| Error::syscall("BPF_OBJ_GET_INFO_BY_FD", e))?;
        Ok(u32_at(&info, INFO_ID))
    }
}

/// The last 40 lines of a NUL-terminated verifier log.
fn verifier_log(buf: &[u8]) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

/// What the kernel says about a program: id, name and the maps it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) map_ids: Vec<u32>,
}

/// Program `id`'s info.
pub(crate) fn prog_info(id: u32) -> io::Result<ProgInfo> {
    let prog = ProgFd::by_id(id)?;
    let mut info = [0; INFO_SIZE];
    let mut map_ids = [0u32; 16];
    sys::bpf(Syscall::ProgGetInfo {
        prog: &prog,
        info: &mut info,
        map_ids: &mut map_ids,
    })?;
    let n = (u32_at(&info, 52) as usize).min(map_ids.len());
    Ok(ProgInfo {
        id: u32_at(&info, INFO_ID),
        name: name_at(&info, PROG_INFO_NAME),
        map_ids: map_ids[..n].to_vec(),
    })
}

/// A cgroup link.
#[derive(Debug)]
pub(crate) struct Link {
    fd: OwnedFd,
}

/// What the kernel says about a cgroup link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    pub(crate) id: u32,
    pub(crate) prog_id: u32,
    /// 0 once the cgroup was removed (the link is then defunct).
    pub(crate) cgroup_id: u64,
    pub(crate) attach_type: u32,
    pub(crate) link_type: u32,
}

impl LinkInfo {
    /// A link of a `hook` program to a cgroup.
    pub(crate) fn is_cgroup(&self, hook: Hook) -> bool {
        self.link_type == LINK_TYPE_CGROUP && self.attach_type == hook.attach_type()
    }

    /// Which of our hooks it is attached to, if one.
    pub(crate) fn hook(&self) -> Option<Hook> {
        [Hook::SockOps, Hook::SetSockopt]
            .into_iter()
            .find(|h| self.is_cgroup(*h))
    }
}

impl Link {
    /// Attaches `prog` to `cgroup`, at its hook, next to any other
    /// program there (a link is always a multi-attachment).
    pub(crate) fn attach(prog: &Program, cgroup: &Cgroup) -> Result<Link> {
        let fd = sys::bpf_fd(Syscall::LinkCreate {
            prog: &prog.fd,
            target: cgroup.as_fd(),
            attach_type: prog.hook.attach_type(),
        })
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Error::Unsupported {
                what: "attach a BPF link to a cgroup",
                needs: "Linux 5.7 or later (BPF_LINK_CREATE for cgroups)",
                source: e,
            },
            _ => Error::syscall("BPF_LINK_CREATE", e),
        })?;
        Ok(Link { fd })
    }

    pub(crate) fn by_id(id: u32) -> io::Result<Link> {
        let fd = sys::bpf_fd(Syscall::GetFdById {
            object: Object::Link,
            id,
        })?;
        Ok(Link { fd })
    }

    pub(crate) fn info(&self) -> io::Result<LinkInfo> {
        let mut info = [0; INFO_SIZE];
        sys::bpf(Syscall::ObjGetInfo {
            fd: self.fd.as_fd(),
            info: &mut info,
        })?;
        Ok(LinkInfo {
            link_type: u32_at(&info, INFO_TYPE),
            id: u32_at(&info, INFO_ID),
            prog_id: u32_at(&info, LINK_INFO_PROG_ID),
            cgroup_id: u64_at(&info, LINK_INFO_CGROUP_ID),
            attach_type: u32_at(&info, LINK_INFO_ATTACH_TYPE),
        })
    }

    pub(crate) fn pin(&self, path: &CStr, shown: &Path) -> Result<()> {
        pin(&self.fd, path, shown)
    }

    /// Detaches the link now, even while other fds or pins refer to it.
    pub(crate) fn detach(&self) -> Result<()> {
        sys::bpf(Syscall::LinkDetach {
            link: self.fd.as_fd(),
        })
        .map_err(|e| Error::syscall("BPF_LINK_DETACH", e))?;
        Ok(())
    }
}

/// Every link of a sock_ops or cgroup/setsockopt program to a cgroup,
/// system-wide.
pub(crate) fn cgroup_links() -> Result<Vec<LinkInfo>> {
    let mut found = Vec::new();
    let mut id = 0;
    loop {
        let mut next = 0;
        match sys::bpf(Syscall::GetNextId {
            object: Object::Link,
            start: id,
            next: &mut next,
        }) {
            Ok(_) => id = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(found),
            Err(e) => return Err(Error::syscall("BPF_LINK_GET_NEXT_ID", e)),
        }
        // A link can go away between the two calls.
        let Ok(info) = Link::by_id(id).and_then(|l| l.info()) else {
            continue;
        };
        if info.hook().is_some() {
            found.push(info);
        }
    }
}

/// The links of our programs (by name, both hooks) attached to
/// `cgroup_id`, with the programs' map ids.
pub(crate) fn our_links(cgroup_id: u64) -> Result<Vec<(LinkInfo, ProgInfo)>> {
    Ok(cgroup_links()?
        .into_iter()
        .filter(|l| l.cgroup_id == cgroup_id)
        .filter_map(|l| Some((l, prog_info(l.prog_id).ok()?)))
        .filter(|(l, p)| l.hook().is_some_and(|h| p.name == h.prog_name()))
        .collect())
}

/// The links (and programs) whose programs use map `map_id` and are
/// attached to a live cgroup: an enforcement's sock_ops and setsockopt
/// links.
pub(crate) fn links_using_map(map_id: u32) -> Result<Vec<(LinkInfo, ProgInfo)>> {
    Ok(cgroup_links()?
        .into_iter()
        .filter(|l| l.cgroup_id != 0)
        .filter_map(|l| Some((l, prog_info(l.prog_id).ok()?)))
        .filter(|(_, p)| p.map_ids.contains(&map_id))
        .collect())
}

/// The ids of the sock_ops programs attached to `cgroup` itself (not
/// inherited from its ancestors), from `BPF_PROG_QUERY`: what
/// `bpftool cgroup show` lists.
pub(crate) fn query_sock_ops(cgroup: &Cgroup) -> Result<Vec<u32>> {
    query(cgroup, Hook::SockOps)
}

/// The ids of the programs attached to `cgroup` itself at `hook`.
pub(crate) fn query(cgroup: &Cgroup, hook: Hook) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut count = 0;
        match sys::bpf(Syscall::ProgQuery {
            target: cgroup.as_fd(),
            attach_type: hook.attach_type(),
            prog_ids: &mut ids,
            count: &mut count,
        }) {
            Ok(_) => {
                ids.truncate(count as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0; count as usize + 16];
            }
            Err(e) => return Err(Error::syscall("BPF_PROG_QUERY", e)),
        }
    }
}

/// Loads both programs (with a fresh settings map and claims map) without
/// attaching them: the kernel's verifier must accept them. Returns the
/// sock_ops program's id.
pub(crate) fn load_only() -> Result<u32> {
    let map = SettingsMap::create(&Policy::default())?;
    let claims = Claims::create()?;
    Program::load(Hook::SetSockopt, &map, &claims, 1)?;
    let prog = Program::load(Hook::SockOps, &map, &claims, 1)?;
    prog.id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn devnull() -> i64 {
        i64::from(std::fs::File::open("/dev/null").unwrap().into_raw_fd())
    }

    #[test]
    fn verifier_log_keeps_the_end() {
        let mut buf = Vec::new();
        for i in 0..100 {
            buf.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        buf.push(0);
        buf.extend_from_slice(b"garbage after the NUL");
        let log = verifier_log(&buf);
        assert!(log.starts_with("line 60\n"), "{log}");
        assert!(log.ends_with("line 99"), "{log}");
    }

    #[test]
    fn a_refused_program_reports_the_verifier_log() {
        let mut loads = 0;
        let err = sys::with_fake(
            move |call| match call {
                Syscall::MapCreate { .. } | Syscall::BtfLoad { .. } => Ok(devnull()),
                Syscall::ObjGetInfo { info, .. } => {
                    info[4..8].copy_from_slice(&9u32.to_ne_bytes());
                    Ok(0)
                }
                Syscall::MapUpdateElem { .. } => Ok(0),
                Syscall::ProgLoad { log: None, .. } => {
                    loads += 1;
                    Err(io::Error::from_raw_os_error(libc::EACCES))
                }
                Syscall::ProgLoad { log: Some(log), .. } => {
                    loads += 1;
                    assert_eq!(loads, 2, "loaded again, with a log");
                    let text = b"0: (bf) r6 = r1\nunknown func bpf_getsockopt#57\n\0";
                    log[..text.len()].copy_from_slice(text);
                    Err(io::Error::from_raw_os_error(libc::EINVAL))
                }
                other => panic!("unexpected {other:?}"),
            },
            || {
                let map = SettingsMap::create(&Policy::default())?;
                let claims = Claims::create()?;
                Program::load(Hook::SockOps, &map, &claims, 1)
            },
        )
        .unwrap_err();
        let Error::Verifier { error, log } = &err else {
            panic!("{err}");
        };
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        assert_eq!(log, "0: (bf) r6 = r1\nunknown func bpf_getsockopt#57");
        assert!(
            err.to_string().contains("the verifier said:\n0: (bf)"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_program_type_is_reported_as_such() {
        let err = sys::with_fake(
            |call| match call {
                Syscall::MapCreate { .. } | Syscall::BtfLoad { .. } => Ok(devnull()),
                Syscall::ObjGetInfo { .. } | Syscall::MapUpdateElem { .. } => Ok(0),
                Syscall::ProgLoad { .. } => Err(io::Error::from_raw_os_error(libc::EINVAL)),
                other => panic!("unexpected {other:?}"),
            },
            || {
                let map = SettingsMap::create(&Policy::default())?;
                let claims = Claims::create()?;
                Program::load(Hook::SockOps, &map, &claims, 1)
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { what, .. } if what.contains("SOCK_OPS")),
            "{err}"
        );
    }

    #[test]
    fn not_root_is_named() {
        let err = sys::with_fake(
            |_| Err(io::Error::from_raw_os_error(libc::EPERM)),
            || SettingsMap::create(&Policy::default()),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotPermitted { .. }), "{err}");
        assert!(err.to_string().contains("needs root"), "{err}");
    }

    #[test]
    fn the_policy_goes_to_key_zero_of_the_map() {
        let written = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let w = written.clone();
        sys::with_fake(
            move |call| match call {
                Syscall::MapCreate {
                    map_type,
                    key_size,
                    value_size,
                    max_entries,
                    name,
                    ..
                } => {
                    assert_eq!(
                        (*map_type, *key_size, *value_size, *max_entries, *name),
                        (MAP_TYPE_ARRAY, 4, 24, 1, MAP_NAME)
                    );
                    Ok(devnull())
                }
                Syscall::ObjGetInfo { .. } => Ok(0),
                Syscall::MapUpdateElem { key, value, .. } => {
                    assert_eq!(*key, [0; 4]);
                    w.borrow_mut().extend_from_slice(value);
                    Ok(0)
                }
                other => panic!("unexpected {other:?}"),
            },
            || {
                let policy = Policy {
                    idle: Some(keepalive::Seconds::new(11).unwrap()),
                    ..Policy::default()
                };
                SettingsMap::create(&policy).unwrap();
                assert_eq!(*written.borrow(), policy.to_bytes());
            },
        );
    }
}
