//! bpf(2): every command of the crate goes through one function, [`bpf`],
//! that takes a [`Syscall`], so that tests can answer it with a fake
//! ([`super::fake`]). bpf(2) has no wrapper in rustix (nor in std): it is
//! `libc::syscall(SYS_bpf, ...)`, the one `unsafe` block of this file
//! besides taking ownership of the descriptors it returns.
//!
//! `union bpf_attr` is built as a zeroed, 8-byte aligned byte buffer with
//! each field written at its offset from
//! [include/uapi/linux/bpf.h](https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/bpf.h):
//! no padding byte is ever left uninitialised, and every field a command
//! does not use is zero, as the kernel's `CHECK_ATTR` requires. The buffer
//! is larger than the kernel's union, so the fields the kernel writes back
//! (`query.prog_cnt`, `next_id`, `info.info_len`, ...) always land inside it.
//!
//! Every pointer the kernel reads or writes comes from a slice, and its
//! length field from that slice's length, so [`bpf`] is a safe function.
//! Map keys and values are checked against the sizes of the map, which a
//! [`MapFd`] carries (learned when it is created or opened, never given).

use std::ffi::{CStr, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The size of our `union bpf_attr` buffer: the kernel's is 144 bytes in
/// Linux 6.x and only grows at the end; bytes past the kernel's size must be
/// (and are) zero.
const ATTR_SIZE: usize = 256;

// bpf(2) commands, `enum bpf_cmd`.
const BPF_MAP_CREATE: c_int = 0;
const BPF_MAP_LOOKUP_ELEM: c_int = 1;
const BPF_MAP_UPDATE_ELEM: c_int = 2;
const BPF_PROG_LOAD: c_int = 5;
const BPF_OBJ_PIN: c_int = 6;
const BPF_OBJ_GET: c_int = 7;
const BPF_PROG_GET_NEXT_ID: c_int = 11;
const BPF_PROG_GET_FD_BY_ID: c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: c_int = 15;
const BPF_PROG_QUERY: c_int = 16;
const BPF_BTF_LOAD: c_int = 18;
const BPF_LINK_CREATE: c_int = 28;
const BPF_LINK_GET_FD_BY_ID: c_int = 30;
const BPF_LINK_GET_NEXT_ID: c_int = 31;
const BPF_ITER_CREATE: c_int = 33;
const BPF_LINK_DETACH: c_int = 34;

/// `BPF_TRACE_ITER`, the attach type of an iterator program's link.
const BPF_TRACE_ITER: u32 = 28;

/// `BPF_ANY` for `BPF_MAP_UPDATE_ELEM`: create or replace.
const BPF_ANY: u64 = 0;

/// `BPF_OBJ_NAME_LEN`, the NUL included.
const OBJ_NAME_LEN: usize = 16;

// `struct bpf_prog_info` offsets of the map ids (in: capacity and buffer;
// out: how many the program uses).
const PROG_INFO_NR_MAP_IDS: usize = 52;
const PROG_INFO_MAP_IDS: usize = 56;
/// The shortest info buffer that holds the map id fields.
pub(crate) const PROG_INFO_MIN: usize = 64;
// `struct bpf_map_info` offsets.
const MAP_INFO_KEY_SIZE: usize = 8;
const MAP_INFO_VALUE_SIZE: usize = 12;

/// Which kind of object an id names (`BPF_*_GET_FD_BY_ID`, `*_GET_NEXT_ID`);
/// maps are only ever opened through their pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Object {
    Prog,
    Link,
}

/// One bpf(2) command, with everything the kernel reads and writes.
#[derive(Debug)]
pub(crate) enum Syscall<'a> {
    /// `BPF_MAP_CREATE`: a new map.
    MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        /// `BPF_F_*` (0 for most maps; socket storage needs
        /// `BPF_F_NO_PREALLOC`).
        map_flags: u32,
        name: &'a str,
        /// The BTF describing key and value, for the maps that need one
        /// (socket storage).
        btf: Option<MapBtf<'a>>,
    },
    /// `BPF_MAP_LOOKUP_ELEM`: copies the value of `key` into `value`.
    MapLookupElem {
        map: &'a MapFd,
        key: &'a [u8],
        value: &'a mut [u8],
    },
    /// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`.
    MapUpdateElem {
        map: &'a MapFd,
        key: &'a [u8],
        value: &'a [u8],
    },
    /// `BPF_PROG_LOAD`: runs the verifier; with a log buffer, its log
    /// (level 1) is written there, NUL-terminated.
    ProgLoad {
        prog_type: u32,
        /// `expected_attach_type`: required by some program types (cgroup
        /// sockopt programs), 0 for the others.
        expected_attach_type: u32,
        /// The kernel function a tracing program is for (a type id of the
        /// kernel's BTF: iterators), 0 for the others.
        attach_btf_id: u32,
        insns: &'a [u8],
        license: &'a CStr,
        name: &'a str,
        log: Option<&'a mut [u8]>,
    },
    /// `BPF_BTF_LOAD`: loads type information (`data`, a BTF blob);
    /// with a log buffer, the kernel's BTF verifier writes its log there.
    BtfLoad {
        data: &'a [u8],
        log: Option<&'a mut [u8]>,
    },
    /// `BPF_LINK_CREATE` with `BPF_TRACE_ITER`: a link for iterator
    /// program `prog` (no target fd, no iterator parameters).
    IterLinkCreate { prog: &'a ProgFd },
    /// `BPF_ITER_CREATE`: a new iterator of `link`; each read(2) of it runs
    /// the program on the next objects. It sees the network namespace of
    /// the thread that calls this.
    IterCreate { link: BorrowedFd<'a> },
    /// `BPF_OBJ_PIN`: `fd` gets a name in a bpffs.
    ObjPin { fd: BorrowedFd<'a>, path: &'a CStr },
    /// `BPF_OBJ_GET`: a new fd for a pinned object.
    ObjGet { path: &'a CStr },
    /// `BPF_OBJ_GET_INFO_BY_FD`, every input field zero: `info` gets the
    /// object's `struct bpf_{prog,map,link}_info`, as much as fits.
    ObjGetInfo {
        fd: BorrowedFd<'a>,
        info: &'a mut [u8],
    },
    /// `BPF_OBJ_GET_INFO_BY_FD` on a program, also asking for the ids of the
    /// maps it uses. `info` must hold at least [`PROG_INFO_MIN`] bytes.
    ProgGetInfo {
        prog: &'a ProgFd,
        info: &'a mut [u8],
        map_ids: &'a mut [u32],
    },
    /// `BPF_PROG_QUERY`: the ids of the programs attached to `target`
    /// (directly, not inherited). `count` gets how many there are, which
    /// may exceed `prog_ids.len()` (then the call fails with ENOSPC).
    ProgQuery {
        target: BorrowedFd<'a>,
        attach_type: u32,
        prog_ids: &'a mut [u32],
        count: &'a mut u32,
    },
    /// `BPF_{PROG,LINK}_GET_FD_BY_ID`.
    GetFdById { object: Object, id: u32 },
    /// `BPF_{PROG,LINK}_GET_NEXT_ID`: the first id above `start`.
    GetNextId {
        object: Object,
        start: u32,
        next: &'a mut u32,
    },
    /// `BPF_LINK_CREATE`: attaches `prog` to `target`; the link detaches
    /// when its last reference (fd or pin) goes.
    LinkCreate {
        prog: &'a ProgFd,
        target: BorrowedFd<'a>,
        attach_type: u32,
    },
    /// `BPF_LINK_DETACH`: detaches the link now, whoever holds it.
    LinkDetach { link: BorrowedFd<'a> },
}

impl Syscall<'_> {
    /// True for the commands whose result is a new file descriptor.
    fn returns_fd(&self) -> bool {
        matches!(
            self,
            Syscall::MapCreate { .. }
                | Syscall::ProgLoad { .. }
                | Syscall::BtfLoad { .. }
                | Syscall::ObjGet { .. }
                | Syscall::GetFdById { .. }
                | Syscall::LinkCreate { .. }
                | Syscall::IterLinkCreate { .. }
                | Syscall::IterCreate { .. }
        )
    }
}

/// The BTF of a map: the loaded blob's fd and the type ids of key and
/// value in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapBtf<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) key_type_id: u32,
    pub(crate) value_type_id: u32,
}

/// A zeroed `union bpf_attr`.
#[repr(C, align(8))]
struct Attr([u8; ATTR_SIZE]);

impl Attr {
    fn new() -> Attr {
        Attr([0; ATTR_SIZE])
    }

    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn fd(&mut self, off: usize, fd: BorrowedFd<'_>) -> &mut Attr {
        // A valid fd is never negative.
        self.u32(off, fd.as_raw_fd() as u32)
    }

    fn ptr<T>(&mut self, off: usize, p: *const T) -> &mut Attr {
        self.u64(off, p as usize as u64)
    }

    fn name(&mut self, off: usize, name: &str) -> &mut Attr {
        let n = name.len().min(OBJ_NAME_LEN - 1);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }

    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))
}

fn invalid() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// bpf(2): every command of the crate goes through here. Returns the
/// kernel's non-negative result (a new file descriptor for the commands
/// that make one: use [`bpf_fd`] for those).
pub(crate) fn bpf(mut call: Syscall<'_>) -> io::Result<i64> {
    #[cfg(test)]
    if let Some(r) = super::fake::answer(&mut call) {
        return r;
    }
    let mut attr = Attr::new();
    let cmd = match &mut call {
        Syscall::MapCreate {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
            name,
            btf,
        } => {
            attr.u32(0, *map_type)
                .u32(4, *key_size)
                .u32(8, *value_size)
                .u32(12, *max_entries)
                .u32(16, *map_flags)
                .name(28, name);
            if let Some(btf) = btf {
                attr.fd(48, btf.fd)
                    .u32(52, btf.key_type_id)
                    .u32(56, btf.value_type_id);
            }
            BPF_MAP_CREATE
        }
        Syscall::MapLookupElem { map, key, value } => {
            if key.len() != map.key_size as usize || value.len() != map.value_size as usize {
                return Err(invalid());
            }
            attr.fd(0, map.fd.as_fd())
                .ptr(8, key.as_ptr())
                .ptr(16, value.as_mut_ptr());
            BPF_MAP_LOOKUP_ELEM
        }
        Syscall::MapUpdateElem { map, key, value } => {
            if key.len() != map.key_size as usize || value.len() != map.value_size as usize {
                return Err(invalid());
            }
            attr.fd(0, map.fd.as_fd())
                .ptr(8, key.as_ptr())
                .ptr(16, value.as_ptr())
                .u64(24, BPF_ANY);
            BPF_MAP_UPDATE_ELEM
        }
        Syscall::ProgLoad {
            prog_type,
            expected_attach_type,
            attach_btf_id,
            insns,
            license,
            name,
            log,
        } => {
            if insns.len() % 8 != 0 {
                return Err(invalid());
            }
            attr.u32(0, *prog_type)
                .u32(4, len_u32(insns.len() / 8)?)
                .ptr(8, insns.as_ptr())
                .ptr(16, license.as_ptr())
                .name(48, name)
                .u32(68, *expected_attach_type)
                .u32(108, *attach_btf_id);
            if let Some(log) = log {
                // The kernel wants room for at least a few lines.
                if log.len() < 128 {
                    return Err(invalid());
                }
                attr.u32(24, 1)
                    .u32(28, len_u32(log.len())?)
                    .ptr(32, log.as_mut_ptr());
            }
            BPF_PROG_LOAD
        }
        Syscall::IterLinkCreate { prog } => {
            // link_create: prog_fd, target_fd (none), attach_type, flags.
            attr.fd(0, prog.0.as_fd()).u32(8, BPF_TRACE_ITER);
            BPF_LINK_CREATE
        }
        Syscall::IterCreate { link } => {
            // iter_create: link_fd, flags.
            attr.fd(0, *link);
            BPF_ITER_CREATE
        }
        Syscall::BtfLoad { data, log } => {
            attr.ptr(0, data.as_ptr()).u32(16, len_u32(data.len())?);
            if let Some(log) = log {
                if log.len() < 128 {
                    return Err(invalid());
                }
                attr.ptr(8, log.as_mut_ptr())
                    .u32(20, len_u32(log.len())?)
                    .u32(24, 1);
            }
            BPF_BTF_LOAD
        }
        Syscall::ObjPin { fd, path } => {
            attr.ptr(0, path.as_ptr()).fd(8, *fd);
            BPF_OBJ_PIN
        }
        Syscall::ObjGet { path } => {
            attr.ptr(0, path.as_ptr());
            BPF_OBJ_GET
        }
        Syscall::ObjGetInfo { fd, info } => {
            info.fill(0);
            attr.fd(0, *fd)
                .u32(4, len_u32(info.len())?)
                .ptr(8, info.as_mut_ptr());
            BPF_OBJ_GET_INFO_BY_FD
        }
        Syscall::ProgGetInfo {
            prog,
            info,
            map_ids,
        } => {
            if info.len() < PROG_INFO_MIN {
                return Err(invalid());
            }
            info.fill(0);
            let n = len_u32(map_ids.len())?;
            info[PROG_INFO_NR_MAP_IDS..PROG_INFO_NR_MAP_IDS + 4].copy_from_slice(&n.to_ne_bytes());
            let p = map_ids.as_mut_ptr() as usize as u64;
            info[PROG_INFO_MAP_IDS..PROG_INFO_MAP_IDS + 8].copy_from_slice(&p.to_ne_bytes());
            attr.fd(0, prog.0.as_fd())
                .u32(4, len_u32(info.len())?)
                .ptr(8, info.as_mut_ptr());
            BPF_OBJ_GET_INFO_BY_FD
        }
        Syscall::ProgQuery {
            target,
            attach_type,
            prog_ids,
            ..
        } => {
            attr.fd(0, *target)
                .u32(4, *attach_type)
                .ptr(16, prog_ids.as_mut_ptr())
                .u32(24, len_u32(prog_ids.len())?);
            BPF_PROG_QUERY
        }
        Syscall::GetFdById { object, id } => {
            attr.u32(0, *id);
            match object {
                Object::Prog => BPF_PROG_GET_FD_BY_ID,
                Object::Link => BPF_LINK_GET_FD_BY_ID,
            }
        }
        Syscall::GetNextId { object, start, .. } => {
            attr.u32(0, *start);
            match object {
                Object::Prog => BPF_PROG_GET_NEXT_ID,
                Object::Link => BPF_LINK_GET_NEXT_ID,
            }
        }
        Syscall::LinkCreate {
            prog,
            target,
            attach_type,
        } => {
            attr.fd(0, prog.0.as_fd())
                .fd(4, *target)
                .u32(8, *attach_type);
            BPF_LINK_CREATE
        }
        Syscall::LinkDetach { link } => {
            attr.fd(0, *link);
            BPF_LINK_DETACH
        }
    };
    // SAFETY: `attr` is a live, fully initialised buffer of ATTR_SIZE bytes
    // for the call's length. Every pointer written into it comes from a
    // slice or CStr that `call` borrows (so it outlives the call), with the
    // matching length field computed from that slice (map keys and values
    // checked against the map's own sizes above), and the mutable ones from
    // exclusive borrows. Fields the kernel writes back lie inside `attr`.
    // (bpf(2) has no wrapper in rustix or std: this raw call is the only way.)
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            ATTR_SIZE as libc::c_uint,
        )
    };
    match &mut call {
        Syscall::ProgQuery { count, .. } => **count = attr.get_u32(24),
        Syscall::GetNextId { next, .. } => **next = attr.get_u32(4),
        _ => {}
    }
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// [`bpf`] for the commands that return a new file descriptor.
pub(crate) fn bpf_fd(call: Syscall<'_>) -> io::Result<OwnedFd> {
    if !call.returns_fd() {
        return Err(invalid());
    }
    let fd = bpf(call)?;
    let fd = c_int::try_from(fd).map_err(|_| invalid())?;
    // SAFETY: the command returns a new descriptor that nothing else owns
    // (the kernel made it for us; a test fake hands over one it owns).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A loaded program's fd (from `BPF_PROG_LOAD` or `BPF_PROG_GET_FD_BY_ID`).
#[derive(Debug)]
pub(crate) struct ProgFd(OwnedFd);

impl ProgFd {
    /// `BPF_PROG_LOAD`, with an `expected_attach_type` and an
    /// `attach_btf_id` (0 for the program types that need none).
    pub(crate) fn load(
        prog_type: u32,
        expected_attach_type: u32,
        attach_btf_id: u32,
        insns: &[u8],
        license: &CStr,
        name: &str,
        log: Option<&mut [u8]>,
    ) -> io::Result<ProgFd> {
        bpf_fd(Syscall::ProgLoad {
            prog_type,
            expected_attach_type,
            attach_btf_id,
            insns,
            license,
            name,
            log,
        })
        .map(ProgFd)
    }

    pub(crate) fn by_id(id: u32) -> io::Result<ProgFd> {
        bpf_fd(Syscall::GetFdById {
            object: Object::Prog,
            id,
        })
        .map(ProgFd)
    }
}

impl AsFd for ProgFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A map's fd with its key and value sizes, as the kernel reports them.
#[derive(Debug)]
pub(crate) struct MapFd {
    fd: OwnedFd,
    key_size: u32,
    value_size: u32,
}

impl MapFd {
    pub(crate) fn create(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        name: &str,
    ) -> io::Result<MapFd> {
        MapFd::create_with(map_type, key_size, value_size, max_entries, 0, name, None)
    }

    /// [`MapFd::create`] with flags and BTF.
    pub(crate) fn create_with(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        name: &str,
        btf: Option<MapBtf<'_>>,
    ) -> io::Result<MapFd> {
        let fd = bpf_fd(Syscall::MapCreate {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
            name,
            btf,
        })?;
        Ok(MapFd {
            fd,
            key_size,
            value_size,
        })
    }

    /// A map from an fd that may be one (pinned, by id): its sizes come
    /// from the kernel. `info` receives its `struct bpf_map_info`.
    pub(crate) fn from_fd(fd: OwnedFd, info: &mut [u8]) -> io::Result<MapFd> {
        if info.len() < MAP_INFO_VALUE_SIZE + 4 {
            return Err(invalid());
        }
        bpf(Syscall::ObjGetInfo {
            fd: fd.as_fd(),
            info,
        })?;
        let field = |off: usize| {
            let mut b = [0; 4];
            b.copy_from_slice(&info[off..off + 4]);
            u32::from_ne_bytes(b)
        };
        Ok(MapFd {
            key_size: field(MAP_INFO_KEY_SIZE),
            value_size: field(MAP_INFO_VALUE_SIZE),
            fd,
        })
    }

    pub(crate) fn value_size(&self) -> u32 {
        self.value_size
    }

    pub(crate) fn key_size(&self) -> u32 {
        self.key_size
    }
}

impl AsFd for MapFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_fields_land_at_their_offsets() {
        let mut a = Attr::new();
        a.u32(4, 0x0102_0304)
            .u64(8, 7)
            .name(28, "keepalive_sock_ops_long");
        assert_eq!(a.get_u32(4), 0x0102_0304);
        assert_eq!(&a.0[8..16], &7u64.to_ne_bytes());
        // Names are cut to 15 bytes and stay NUL-terminated.
        assert_eq!(&a.0[28..44], b"keepalive_sock_\0");
        assert!(a.0[44..].iter().all(|b| *b == 0));
    }

    #[test]
    fn fd_commands_only() {
        let err = bpf_fd(Syscall::GetNextId {
            object: Object::Link,
            start: 0,
            next: &mut 0,
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn map_values_must_have_the_map_size() {
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let map = MapFd {
            fd: devnull.into(),
            key_size: 4,
            value_size: 20,
        };
        // Refused before any system call: /dev/null is not a map.
        let err = bpf(Syscall::MapUpdateElem {
            map: &map,
            key: &[0; 4],
            value: &[0; 8],
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = bpf(Syscall::MapLookupElem {
            map: &map,
            key: &[0; 2],
            value: &mut [0; 20],
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
