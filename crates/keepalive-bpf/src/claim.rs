//! Who decides for a socket when enforcements are nested: a socket-local
//! storage map (`BPF_MAP_TYPE_SK_STORAGE`) shared by every enforcement,
//! pinned once at `/sys/fs/bpf/keepalive/claims`.
//!
//! A socket's cgroup is fixed when it is created, and the kernel runs the
//! programs of that cgroup and of each of its ancestors on it (with
//! `BPF_F_ALLOW_MULTI`, a cgroup's own programs first, then its parent's:
//! `compute_effective_progs()` in kernel/bpf/cgroup.c). Each program knows
//! the depth of its own cgroup (an immediate of the program: 0 for the root
//! cgroup, 1 for `system.slice`, ...). Before it acts on a socket it reads
//! the socket's claim, `struct { u32 depth_plus_one; u32 flags; }`, zero
//! for a socket no enforcement has seen:
//!
//! - a claim deeper than its own depth: a more specific cgroup's
//!   enforcement decides; the program leaves the socket alone;
//! - otherwise it writes its own depth and acts.
//!
//! So the most specific enforcement decides whatever order the programs run
//! in: run first (the kernel's order), it claims the socket and its
//! ancestors step back; run last, it overrides what they set (the last
//! setsockopt wins). `flags` records [`CLAIM_BY_US`] when one of our
//! programs switched `SO_KEEPALIVE` on, so that a later one does not take
//! it for the program's own choice; the setsockopt companion clears it
//! when the program then makes its own choice (`SO_KEEPALIVE` on, or its
//! own idle, interval or count, as Go does after connecting).
//!
//! The programs that read and write claims: the sock_ops program at
//! establishment, the cgroup/setsockopt companion, and the `--existing`
//! iterator ([`crate::iter`]; `bpf_sk_storage_get` is allowed in
//! `BPF_TRACE_ITER` programs since Linux 5.11). So a socket switched on by
//! the sock_ops program, or by an earlier `--existing`, gets the new values
//! of a later `--existing` in the default mode, while a socket whose own
//! program switched keepalive on is still left alone. The pidfd fallback
//! of `--existing` cannot read the claims (they live in the kernel): to it
//! every socket with keepalive on is the program's own.
//!
//! The depth is counted from the cgroup v2 mount that this process sees
//! (the root cgroup is 0): enforcements made from the same mount compare.
//!
//! A socket-local storage map needs BTF describing its key (`int`) and
//! value: [`claim_btf`] writes that blob (format in the kernel's
//! [Documentation/bpf/btf.rst](https://github.com/torvalds/linux/blob/v6.18/Documentation/bpf/btf.rst)).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};

use crate::cgroup::{Cgroup, Hierarchy};
use crate::error::{Error, Result};
use crate::insn::{Asm, Cond, Helper, Insn, Reg, Size};
use crate::sys::{self, MapBtf, MapFd, Syscall};

/// `BPF_MAP_TYPE_SK_STORAGE`.
const MAP_TYPE_SK_STORAGE: u32 = 24;
/// `BPF_F_NO_PREALLOC`, which socket storage requires.
const F_NO_PREALLOC: u32 = 1;
/// `BPF_SK_STORAGE_GET_F_CREATE`.
const F_CREATE: i32 = 1;

/// The map's name.
pub const CLAIMS_NAME: &str = "keepalive_claim";
/// Where it is pinned.
pub const CLAIMS_PIN: &str = "/sys/fs/bpf/keepalive/claims";

/// The size of a claim.
const CLAIM_SIZE: u32 = 8;
/// Offset of `depth_plus_one` in a claim.
const CLAIM_DEPTH: i16 = 0;
/// Offset of `flags` in a claim.
pub(crate) const CLAIM_FLAGS: i16 = 4;
/// `flags` bit: one of our programs switched `SO_KEEPALIVE` on.
pub const CLAIM_BY_US: i32 = 1;

// BTF (include/uapi/linux/btf.h).
const BTF_MAGIC: u16 = 0xeb9f;
const BTF_KIND_INT: u32 = 1;
const BTF_KIND_STRUCT: u32 = 4;
const BTF_INT_SIGNED: u32 = 1 << 24;
/// The type ids in [`claim_btf`].
const BTF_ID_INT: u32 = 1;
const BTF_ID_CLAIM: u32 = 3;

/// The BTF blob of the claims map: `[1] int`, `[2] unsigned int`,
/// `[3] struct keepalive_claim { unsigned int depth_plus_one; unsigned
/// int flags; }`, in host byte order.
pub fn claim_btf() -> Vec<u8> {
    let strings = b"\0int\0unsigned int\0keepalive_claim\0depth_plus_one\0flags\0";
    let name = |s: &str| {
        let at = strings
            .windows(s.len() + 2)
            .position(|w| w[0] == 0 && &w[1..=s.len()] == s.as_bytes() && w[s.len() + 1] == 0)
            .expect("a name of the string section");
        (at + 1) as u32
    };
    let info = |kind: u32, vlen: u32| kind << 24 | vlen;
    let types: Vec<u32> = vec![
        // [1] int: name, info, size, encoding | offset | bits.
        name("int"),
        info(BTF_KIND_INT, 0),
        4,
        BTF_INT_SIGNED | 32,
        // [2] unsigned int.
        name("unsigned int"),
        info(BTF_KIND_INT, 0),
        4,
        32,
        // [3] struct keepalive_claim, 8 bytes, two members: name, type,
        // bit offset.
        name("keepalive_claim"),
        info(BTF_KIND_STRUCT, 2),
        CLAIM_SIZE,
        name("depth_plus_one"),
        2,
        0,
        name("flags"),
        2,
        32,
    ];
    let type_len = (types.len() * 4) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
    out.push(1); // version
    out.push(0); // flags
    for word in [24, 0, type_len, type_len, strings.len() as u32] {
        // hdr_len, type_off, type_len, str_off, str_len
        out.extend_from_slice(&u32::to_ne_bytes(word));
    }
    for word in types {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(strings);
    out
}

/// The claims map, created and pinned by the first enforcement.
#[derive(Debug)]
pub(crate) struct Claims {
    fd: MapFd,
}

impl Claims {
    /// Opens the pinned map, or creates and pins it. Call it with the pins
    /// locked.
    pub(crate) fn open_or_create() -> Result<Claims> {
        if let Some(claims) = Claims::open_pinned()? {
            return Ok(claims);
        }
        let shown = Path::new(CLAIMS_PIN);
        let path = CString::new(CLAIMS_PIN).expect("no NUL");
        let claims = Claims::create()?;
        sys::bpf(Syscall::ObjPin {
            fd: claims.fd.as_fd(),
            path: &path,
        })
        .map_err(|e| Error::path("pin", shown, e))?;
        Ok(claims)
    }

    /// The pinned map, `None` when there is none (no enforcement made it).
    /// Opening needs no lock: only creating and pinning does.
    pub(crate) fn open_pinned() -> Result<Option<Claims>> {
        let shown = Path::new(CLAIMS_PIN);
        let path = CString::new(CLAIMS_PIN).expect("no NUL");
        match sys::bpf_fd(Syscall::ObjGet { path: &path }) {
            Ok(fd) => {
                let mut info = [0; 64];
                let fd = MapFd::from_fd(fd, &mut info).map_err(|e| Error::Foreign {
                    path: shown.to_path_buf(),
                    why: format!("not a BPF map: {e}"),
                })?;
                let name_end = info[24..40].iter().position(|b| *b == 0).unwrap_or(16);
                if u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) != MAP_TYPE_SK_STORAGE
                    || fd.value_size() != CLAIM_SIZE
                    || &info[24..24 + name_end] != CLAIMS_NAME.as_bytes()
                {
                    return Err(Error::Foreign {
                        path: shown.to_path_buf(),
                        why: "not keepalive's socket storage map".to_owned(),
                    });
                }
                Ok(Some(Claims { fd }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::path("open", shown, e)),
        }
    }

    /// A new map (not pinned).
    pub(crate) fn create() -> Result<Claims> {
        let blob = claim_btf();
        let btf = sys::bpf_fd(Syscall::BtfLoad {
            data: &blob,
            log: None,
        })
        .map_err(|e| Error::Unsupported {
            what: "load BTF (needed by the socket storage map of nested enforcement)",
            needs: "Linux 5.3 or later with CONFIG_BPF_SYSCALL",
            source: e,
        })?;
        let fd = MapFd::create_with(
            MAP_TYPE_SK_STORAGE,
            4,
            CLAIM_SIZE,
            0,
            F_NO_PREALLOC,
            CLAIMS_NAME,
            Some(MapBtf {
                fd: btf.as_fd(),
                key_type_id: BTF_ID_INT,
                value_type_id: BTF_ID_CLAIM,
            }),
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Error::Unsupported {
                what: "create a socket storage map (BPF_MAP_TYPE_SK_STORAGE)",
                needs: "Linux 5.3 or later",
                source: e,
            },
            _ => Error::syscall("BPF_MAP_CREATE", e),
        })?;
        Ok(Claims { fd })
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_fd().as_raw_fd()
    }
}

/// Removes the pin of the claims map (when no enforcement is left).
pub(crate) fn unpin() -> Result<()> {
    match std::fs::remove_file(CLAIMS_PIN) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::path("unpin", CLAIMS_PIN, e)),
    }
}

/// The depth of `cgroup` below the cgroup v2 mount (the root cgroup is 0).
pub(crate) fn depth(cgroup: &Cgroup) -> u32 {
    let mount = Hierarchy::find()
        .map(|h| h.mount_point().to_path_buf())
        .unwrap_or_default();
    let path = cgroup
        .path()
        .canonicalize()
        .unwrap_or_else(|_| cgroup.path().to_path_buf());
    depth_below(&mount, &path)
}

fn depth_below(mount: &Path, path: &Path) -> u32 {
    let mount: PathBuf = mount.canonicalize().unwrap_or_else(|_| mount.to_path_buf());
    path.strip_prefix(&mount).map_or(0, |rel| {
        rel.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count() as u32
    })
}

/// Emits the claim: with r2 holding the socket (not NULL: a `struct
/// bpf_sock *` in sock_ops and cgroup/setsockopt programs, the `struct
/// tcp_sock *` of `bpf_skc_to_tcp_sock` in the iterator, whose first
/// member is the `struct sock` the tracing helper takes),
/// `r9 = bpf_sk_storage_get(claims, r2, NULL, F_CREATE)`; then,
/// when the claim is deeper than `depth`, jumps to `yield_to`, else writes
/// `depth` into it. r9 is 0 when the kernel gave no storage (out of
/// memory): the program then acts as if unclaimed. Clobbers r0-r5.
pub(crate) fn emit(asm: &mut Asm, claims_fd: i32, depth: u32, yield_to: &'static str) {
    // Depths are small (a cgroup path's length); saturate for the encoding.
    let mine = i32::try_from(depth.saturating_add(1)).unwrap_or(i32::MAX);
    asm.extend(Insn::ld_map_fd(Reg::R1, claims_fd))
        .push(Insn::mov64_imm(Reg::R3, 0))
        .push(Insn::mov64_imm(Reg::R4, F_CREATE))
        .push(Insn::call(Helper::SkStorageGet))
        .push(Insn::mov64_reg(Reg::R9, Reg::R0))
        .jump_if_imm(Cond::Eq, Reg::R9, 0, "claim_done")
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_DEPTH))
        .jump_if_imm(Cond::Gt, Reg::R1, mine, yield_to)
        .push(Insn::st(Size::W, Reg::R9, CLAIM_DEPTH, mine))
        .label("claim_done");
}

/// Emits: when r9 (the claim) is not 0, `flags |= CLAIM_BY_US`. Clobbers r1.
pub(crate) fn emit_by_us(asm: &mut Asm, done: &'static str) {
    asm.jump_if_imm(Cond::Eq, Reg::R9, 0, done)
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_FLAGS))
        .push(Insn::or64_imm(Reg::R1, CLAIM_BY_US))
        .push(Insn::stx(Size::W, Reg::R9, CLAIM_FLAGS, Reg::R1))
        .label(done);
}

/// Emits: when r9 (the claim) is not 0 and its `flags` has
/// [`CLAIM_BY_US`], clears that bit (the socket's program made its own
/// keepalive choice since). Only `flags` is written: the claim's depth
/// stays. Clobbers r1.
pub(crate) fn emit_clear_by_us(asm: &mut Asm, labels: [&'static str; 2]) {
    let [set, done] = labels;
    // The encoder has no `and`: with the bit known set, subtracting it
    // clears it and leaves the other bits.
    asm.jump_if_imm(Cond::Eq, Reg::R9, 0, done)
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_FLAGS))
        .jump_if_imm(Cond::Set, Reg::R1, CLAIM_BY_US, set)
        .jump(done)
        .label(set)
        .push(Insn::add64_imm(Reg::R1, -CLAIM_BY_US))
        .push(Insn::stx(Size::W, Reg::R9, CLAIM_FLAGS, Reg::R1))
        .label(done);
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn btf_blob_golden_bytes() {
        let blob = claim_btf();
        // Header: magic, version 1, flags 0, hdr_len 24, type_off 0,
        // type_len 17 words, str_off = type_len, str_len.
        assert_eq!(&blob[..4], [0x9f, 0xeb, 1, 0]);
        assert_eq!(&blob[4..8], 24u32.to_le_bytes());
        assert_eq!(&blob[8..12], 0u32.to_le_bytes());
        assert_eq!(&blob[12..16], 68u32.to_le_bytes());
        assert_eq!(&blob[16..20], 68u32.to_le_bytes());
        let strings = b"\0int\0unsigned int\0keepalive_claim\0depth_plus_one\0flags\0";
        assert_eq!(&blob[20..24], (strings.len() as u32).to_le_bytes());
        // [1] int: name at 1, INT, 4 bytes, signed 32 bits.
        assert_eq!(
            &blob[24..40],
            [1, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 32, 0, 0, 1]
        );
        // [2] unsigned int: name at 5.
        assert_eq!(
            &blob[40..56],
            [5, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 32, 0, 0, 0]
        );
        // [3] struct, 2 members, 8 bytes; flags at bit 32.
        assert_eq!(&blob[56..68], [18, 0, 0, 0, 2, 0, 0, 4, 8, 0, 0, 0]);
        assert_eq!(&blob[68..80], [34, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&blob[80..92], [49, 0, 0, 0, 2, 0, 0, 0, 32, 0, 0, 0]);
        assert_eq!(&blob[92..], strings);
    }

    #[test]
    fn depth_counts_components_below_the_mount() {
        let m = Path::new("/nonexistent/cgroup");
        assert_eq!(depth_below(m, m), 0);
        assert_eq!(depth_below(m, &m.join("system.slice")), 1);
        assert_eq!(depth_below(m, &m.join("kubepods.slice/pod1/c1")), 3);
        assert_eq!(depth_below(m, Path::new("/elsewhere")), 0);
    }

    #[test]
    fn clearing_by_us_touches_only_the_flag_bit() {
        let mut asm = Asm::new();
        asm.push(Insn::mov64_imm(Reg::R9, 0));
        emit_clear_by_us(&mut asm, ["set", "done"]);
        asm.push(Insn::exit());
        let p = asm.finish().unwrap();
        assert!(p.contains(&Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_FLAGS)));
        assert!(p.contains(&Insn::add64_imm(Reg::R1, -CLAIM_BY_US)));
        assert!(p.contains(&Insn::stx(Size::W, Reg::R9, CLAIM_FLAGS, Reg::R1)));
        // The depth is never written.
        let writes_depth = p.iter().any(|i| {
            let b = i.to_bytes();
            matches!(b[0] & 0x07, 0x02 | 0x03) && i.off() == CLAIM_DEPTH
        });
        assert!(!writes_depth);
    }

    #[test]
    fn claim_yields_to_a_deeper_cgroup() {
        let mut asm = Asm::new();
        emit(&mut asm, 7, 2, "out");
        asm.label("out").push(Insn::exit());
        let p = asm.finish().unwrap();
        // The comparison is with depth + 1, and so is the write.
        assert!(p.contains(&Insn::jmp_imm(Cond::Gt, Reg::R1, 3, 1)));
        assert!(p.contains(&Insn::st(Size::W, Reg::R9, CLAIM_DEPTH, 3)));
    }
}
