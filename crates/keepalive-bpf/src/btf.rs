//! A small reader of BTF, the kernel's type information
//! (`/sys/kernel/btf/vmlinux`): enough to find a function's type id (the
//! `attach_btf_id` of a tracing program) and the byte offsets of struct
//! members (for programs that read kernel structs, which differ between
//! kernel builds).
//!
//! The format is described in the kernel's
//! [Documentation/bpf/btf.rst](https://github.com/torvalds/linux/blob/v6.18/Documentation/bpf/btf.rst)
//! and [include/uapi/linux/btf.h](https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/btf.h):
//!
//! ```text
//! struct btf_header (24 bytes)  magic 0xeB9F (u16), version 1 (u8), flags (u8),
//!                               hdr_len, type_off, type_len, str_off, str_len (u32)
//! type section                  at hdr_len + type_off: struct btf_type records,
//!                               ids 1, 2, ... in order (0 is void)
//! string section                at hdr_len + str_off: NUL-terminated names
//!
//! struct btf_type (12 bytes)    name_off (u32), info (u32), size_or_type (u32),
//!                               then data whose length depends on the kind
//!   info: bits 0-15 vlen, bits 24-28 kind, bit 31 kind_flag
//! ```
//!
//! Only the native byte order is read (the kernel's own BTF always is).
//! Nothing here touches the kernel: [`Btf::parse`] takes bytes.

use std::collections::HashMap;
use std::path::Path;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;

/// The kind of a BTF type (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `BTF_KIND_INT`, 1.
    Int,
    /// `BTF_KIND_PTR`, 2.
    Ptr,
    /// `BTF_KIND_ARRAY`, 3.
    Array,
    /// `BTF_KIND_STRUCT`, 4.
    Struct,
    /// `BTF_KIND_UNION`, 5.
    Union,
    /// `BTF_KIND_ENUM`, 6.
    Enum,
    /// `BTF_KIND_FWD`, 7.
    Fwd,
    /// `BTF_KIND_TYPEDEF`, 8.
    Typedef,
    /// `BTF_KIND_VOLATILE`, 9.
    Volatile,
    /// `BTF_KIND_CONST`, 10.
    Const,
    /// `BTF_KIND_RESTRICT`, 11.
    Restrict,
    /// `BTF_KIND_FUNC`, 12.
    Func,
    /// `BTF_KIND_FUNC_PROTO`, 13.
    FuncProto,
    /// `BTF_KIND_VAR`, 14.
    Var,
    /// `BTF_KIND_DATASEC`, 15.
    Datasec,
    /// `BTF_KIND_FLOAT`, 16.
    Float,
    /// `BTF_KIND_DECL_TAG`, 17.
    DeclTag,
    /// `BTF_KIND_TYPE_TAG`, 18.
    TypeTag,
    /// `BTF_KIND_ENUM64`, 19.
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// The bytes that follow the 12-byte `struct btf_type`, for `vlen`.
    fn extra_len(self, vlen: usize) -> usize {
        match self {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            // struct btf_member, struct btf_var_secinfo, struct btf_enum64
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * vlen,
            // struct btf_enum, struct btf_param
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            Kind::Ptr
            | Kind::Fwd
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::Float
            | Kind::TypeTag => 0,
        }
    }

    /// Kinds whose third word is a size (the others' is a type id).
    fn has_size(self) -> bool {
        matches!(
            self,
            Kind::Int | Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Float
        ) || self == Kind::Datasec
    }
}

/// Why BTF could not be read, or did not hold what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The file could not be read (absent: the kernel was built without
    /// `CONFIG_DEBUG_INFO_BTF`).
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not BTF, or are cut short.
    #[error("not valid BTF: {0}")]
    Invalid(&'static str),
    /// No type of that kind has that name.
    #[error("BTF has no {kind:?} named {name}")]
    NoType {
        /// The kind looked for.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// The struct or union has no member of that name.
    #[error("BTF: {ty} has no member {member}")]
    NoMember {
        /// The struct's name.
        ty: String,
        /// The member's name.
        member: String,
    },
    /// A member is not of the type a reader expects.
    #[error("BTF: {what}")]
    Unexpected {
        /// What was expected and found.
        what: String,
    },
}

/// A type id: the index of a type in the type section, from 1.
pub type TypeId = u32;

/// A struct or union member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its type.
    pub ty: TypeId,
    /// Its offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Its width in bits when it is a bitfield, else 0.
    pub bitfield_size: u32,
}

/// A member reached through nested structs (see [`Btf::field`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its offset in bytes from the start of the outer struct.
    pub offset: u32,
    /// Its size in bytes.
    pub size: u32,
    /// Its type, with typedefs and qualifiers (const, volatile) removed.
    pub ty: TypeId,
}

/// Parsed BTF: the raw bytes and where each type starts.
#[derive(Debug)]
pub struct Btf {
    data: Vec<u8>,
    /// The string section, as a range of `data`.
    strings: std::ops::Range<usize>,
    /// For type id `n`, `starts[n - 1]` is its offset in `data`.
    starts: Vec<usize>,
    /// (kind, name) to the first type id with them, for named types.
    by_name: HashMap<(Kind, Box<str>), TypeId>,
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    /// Reads and parses the running kernel's BTF ([`VMLINUX_BTF`]).
    pub fn vmlinux() -> Result<Btf, BtfError> {
        Btf::load(Path::new(VMLINUX_BTF))
    }

    /// Reads and parses the BTF in file `path`.
    pub fn load(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Btf::parse(data)
    }

    /// Parses BTF bytes: checks the header and the bounds of every type.
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        let short = BtfError::Invalid("cut short");
        let magic = data.get(0..2).ok_or(BtfError::Invalid("cut short"))?;
        match u16::from_ne_bytes([magic[0], magic[1]]) {
            MAGIC => {}
            m if m.swap_bytes() == MAGIC => {
                return Err(BtfError::Invalid("in the other byte order"));
            }
            _ => return Err(BtfError::Invalid("bad magic number")),
        }
        if data.get(2) != Some(&1) {
            return Err(BtfError::Invalid("unknown version"));
        }
        let word = |i: usize| u32_at(&data, 4 + 4 * i).map(|w| w as usize);
        let (Some(hdr_len), Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (word(0), word(1), word(2), word(3), word(4))
        else {
            return Err(short);
        };
        if hdr_len < HEADER_LEN {
            return Err(BtfError::Invalid("header too short"));
        }
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let end = start.checked_add(len)?;
            (end <= data.len()).then_some(start..end)
        };
        let types = section(type_off, type_len).ok_or(BtfError::Invalid("type section"))?;
        let strings = section(str_off, str_len).ok_or(BtfError::Invalid("string section"))?;
        let mut btf = Btf {
            strings,
            starts: Vec::new(),
            by_name: HashMap::new(),
            data: Vec::new(),
        };
        let mut at = types.start;
        while at < types.end {
            let (Some(name_off), Some(info)) = (u32_at(&data, at), u32_at(&data, at + 4)) else {
                return Err(BtfError::Invalid("type cut short"));
            };
            let kind = Kind::from_raw((info >> 24) & 0x1f)
                .ok_or(BtfError::Invalid("unknown type kind"))?;
            let vlen = (info & 0xffff) as usize;
            let end = at + TYPE_LEN + kind.extra_len(vlen);
            if end > types.end {
                return Err(BtfError::Invalid("type cut short"));
            }
            btf.starts.push(at);
            let id = btf.starts.len() as TypeId;
            if name_off != 0 {
                let name = btf
                    .string_in(&data, name_off)
                    .ok_or(BtfError::Invalid("name outside the string section"))?;
                btf.by_name.entry((kind, name.into())).or_insert(id);
            }
            at = end;
        }
        btf.data = data;
        Ok(btf)
    }

    fn string_in<'a>(&self, data: &'a [u8], off: u32) -> Option<&'a str> {
        let start = self.strings.start.checked_add(off as usize)?;
        let bytes = data.get(start..self.strings.end)?;
        let end = bytes.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok()
    }

    fn string(&self, off: u32) -> &str {
        self.string_in(&self.data, off).unwrap_or("")
    }

    /// How many types there are (the largest id).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when there is no type.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The id of the first type of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Result<TypeId, BtfError> {
        self.by_name
            .get(&(kind, name.into()))
            .copied()
            .ok_or_else(|| BtfError::NoType {
                kind,
                name: name.to_owned(),
            })
    }

    /// (name_off, info, size_or_type, start of the data after it).
    fn raw(&self, id: TypeId) -> Option<(u32, u32, u32, usize)> {
        let at = *self.starts.get((id as usize).checked_sub(1)?)?;
        Some((
            u32_at(&self.data, at)?,
            u32_at(&self.data, at + 4)?,
            u32_at(&self.data, at + 8)?,
            at + TYPE_LEN,
        ))
    }

    /// The kind of type `id` (`None` for void, 0, and unknown ids).
    pub fn kind(&self, id: TypeId) -> Option<Kind> {
        let (_, info, _, _) = self.raw(id)?;
        Kind::from_raw((info >> 24) & 0x1f)
    }

    /// The name of type `id` (empty for anonymous types).
    pub fn name(&self, id: TypeId) -> &str {
        self.raw(id).map_or("", |(name, ..)| self.string(name))
    }

    /// The type a pointer, typedef, qualifier, function, or variable
    /// refers to.
    pub fn referenced(&self, id: TypeId) -> Option<TypeId> {
        let kind = self.kind(id)?;
        if kind.has_size() {
            return None;
        }
        self.raw(id).map(|(_, _, ty, _)| ty)
    }

    /// `id` with typedefs and qualifiers (const, volatile, restrict, type
    /// tags) removed.
    pub fn resolve(&self, mut id: TypeId) -> TypeId {
        // A loop of typedefs is malformed BTF; stop after a bound.
        for _ in 0..32 {
            match self.kind(id) {
                Some(
                    Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag,
                ) => match self.referenced(id) {
                    Some(next) => id = next,
                    None => return id,
                },
                _ => return id,
            }
        }
        id
    }

    /// The size in bytes of type `id`; `None` for types without one
    /// (void, functions, forward declarations).
    pub fn size(&self, id: TypeId) -> Option<u32> {
        let id = self.resolve(id);
        let kind = self.kind(id)?;
        let (_, _, size_or_type, data) = self.raw(id)?;
        match kind {
            Kind::Ptr => Some(std::mem::size_of::<usize>() as u32),
            Kind::Array => {
                let elem = u32_at(&self.data, data)?;
                let n = u32_at(&self.data, data + 8)?;
                self.size(elem)?.checked_mul(n)
            }
            k if k.has_size() => Some(size_or_type),
            _ => None,
        }
    }

    /// The members of struct or union `id` (empty for other kinds).
    pub fn members(&self, id: TypeId) -> Vec<(&str, Member)> {
        let Some((_, info, _, data)) = self.raw(id) else {
            return Vec::new();
        };
        if !matches!(self.kind(id), Some(Kind::Struct | Kind::Union)) {
            return Vec::new();
        }
        let kind_flag = info >> 31 == 1;
        let vlen = (info & 0xffff) as usize;
        (0..vlen)
            .filter_map(|i| {
                let at = data + 12 * i;
                let name = u32_at(&self.data, at)?;
                let ty = u32_at(&self.data, at + 4)?;
                let offset = u32_at(&self.data, at + 8)?;
                let (bit_offset, bitfield_size) = if kind_flag {
                    (offset & 0x00ff_ffff, offset >> 24)
                } else {
                    (offset, 0)
                };
                Some((
                    self.string(name),
                    Member {
                        ty,
                        bit_offset,
                        bitfield_size,
                    },
                ))
            })
            .collect()
    }

    /// Member `name` of struct or union `id`, looked for in its anonymous
    /// struct and union members too (as C finds them); its offset counts
    /// from the start of `id`.
    pub fn member(&self, id: TypeId, name: &str) -> Result<Member, BtfError> {
        self.member_in(self.resolve(id), name, 0)
            .ok_or_else(|| BtfError::NoMember {
                ty: self.name(id).to_owned(),
                member: name.to_owned(),
            })
    }

    fn member_in(&self, id: TypeId, name: &str, depth: u32) -> Option<Member> {
        if depth > 8 {
            return None;
        }
        let members = self.members(id);
        if let Some((_, m)) = members.iter().find(|(n, _)| *n == name) {
            return Some(*m);
        }
        members
            .iter()
            .filter(|(n, _)| n.is_empty())
            .find_map(|(_, anon)| {
                let inner = self.member_in(self.resolve(anon.ty), name, depth + 1)?;
                Some(Member {
                    bit_offset: anon.bit_offset + inner.bit_offset,
                    ..inner
                })
            })
    }

    /// The member at `path` inside struct `outer` (by name): each name but
    /// the last must be a struct or union member (not a pointer), as in
    /// `offsetof(struct tcp_sock, inet_conn.icsk_inet.sk.sk_cgrp_data)`.
    /// Bitfields are refused.
    pub fn field(&self, outer: &str, path: &[&str]) -> Result<Field, BtfError> {
        let mut ty = self.find(Kind::Struct, outer)?;
        let mut offset_bits = 0u32;
        let mut shown = format!("struct {outer}");
        for name in path {
            let m = self.member(ty, name)?;
            if m.bitfield_size != 0 || m.bit_offset % 8 != 0 {
                return Err(BtfError::Unexpected {
                    what: format!("{shown}.{name} is a bitfield"),
                });
            }
            offset_bits += m.bit_offset;
            ty = self.resolve(m.ty);
            shown = format!("{shown}.{name}");
        }
        let size = self.size(ty).ok_or_else(|| BtfError::Unexpected {
            what: format!("{shown} has no size"),
        })?;
        Ok(Field {
            offset: offset_bits / 8,
            size,
            ty,
        })
    }

    /// The struct that pointer type `ptr` points to, by name; an error
    /// naming `what` when it is not a pointer to a struct.
    pub fn pointee_struct(&self, ptr: TypeId, what: &str) -> Result<&str, BtfError> {
        let ptr = self.resolve(ptr);
        let target = (self.kind(ptr) == Some(Kind::Ptr))
            .then(|| self.referenced(ptr))
            .flatten()
            .map(|t| self.resolve(t))
            .filter(|t| self.kind(*t) == Some(Kind::Struct));
        match target {
            Some(t) => Ok(self.name(t)),
            None => Err(BtfError::Unexpected {
                what: format!("{what} is not a pointer to a struct"),
            }),
        }
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    /// A hand-made BTF blob:
    ///
    /// ```c
    /// typedef unsigned long long u64;      // [1] INT, [2] TYPEDEF
    /// struct kernfs_node { int flags; u64 id; };            // [3]
    /// struct cgroup { int refs; struct kernfs_node *kn; };  // [4], [5] PTR
    /// struct sock_common { int a; volatile unsigned char skc_state; }; // [6],[7] VOLATILE,[8] INT
    /// struct sock { struct sock_common __sk_common;
    ///               union { int u; struct { int x; struct cgroup *cg; }; }; }; // [9],[10],[11],[12] PTR
    /// int bpf_iter_tcp(int);                 // [13] FUNC_PROTO, [14] FUNC
    /// struct bits { int a:3; int b:5; };     // [15], kind_flag bitfields
    /// ```
    #[rustfmt::skip]
    const GOLDEN: &[u8] = &[
        // header: magic 0xeb9f, version 1, flags 0, hdr_len 24,
        // type_off 0, type_len 368, str_off 368, str_len 118
        0x9f, 0xeb, 1, 0,   24, 0, 0, 0,
        0, 0, 0, 0,         0x70, 1, 0, 0,
        0x70, 1, 0, 0,      118, 0, 0, 0,
        // [1] INT "unsigned long long" (name 1) size 8, encoding: 64 bits
        1, 0, 0, 0,  0, 0, 0, 1,  8, 0, 0, 0,  64, 0, 0, 0,
        // [2] TYPEDEF "u64" (name 20) -> 1
        20, 0, 0, 0,  0, 0, 0, 8,  1, 0, 0, 0,
        // [3] STRUCT "kernfs_node" (name 24) vlen 2, size 16
        24, 0, 0, 0,  2, 0, 0, 4,  16, 0, 0, 0,
        //   "flags" (36) type 8 at bit 0; "id" (42) type 2 at bit 64
        36, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,
        42, 0, 0, 0,  2, 0, 0, 0,  64, 0, 0, 0,
        // [4] STRUCT "cgroup" (name 45) vlen 2, size 16
        45, 0, 0, 0,  2, 0, 0, 4,  16, 0, 0, 0,
        //   "refs" (52) type 8 at 0; "kn" (57) type 5 at bit 64
        52, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,
        57, 0, 0, 0,  5, 0, 0, 0,  64, 0, 0, 0,
        // [5] PTR -> 3
        0, 0, 0, 0,  0, 0, 0, 2,  3, 0, 0, 0,
        // [6] STRUCT "sock_common" (name 60) vlen 2, size 8
        60, 0, 0, 0,  2, 0, 0, 4,  8, 0, 0, 0,
        //   "a" (72) type 8 at 0; "skc_state" (74) type 7 at bit 32
        72, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,
        74, 0, 0, 0,  7, 0, 0, 0,  32, 0, 0, 0,
        // [7] VOLATILE -> 16 (unsigned char)
        0, 0, 0, 0,  0, 0, 0, 9,  16, 0, 0, 0,
        // [8] INT "int" (name 84) size 4, signed 32 bits
        84, 0, 0, 0,  0, 0, 0, 1,  4, 0, 0, 0,  32, 0, 0, 1,
        // [9] STRUCT "sock" (name 88) vlen 2, size 24
        88, 0, 0, 0,  2, 0, 0, 4,  24, 0, 0, 0,
        //   "__sk_common" (93) type 6 at 0; anonymous type 10 at bit 64
        93, 0, 0, 0,  6, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  10, 0, 0, 0,  64, 0, 0, 0,
        // [10] UNION anonymous vlen 2, size 16: "a" (72) type 8; anonymous type 11
        0, 0, 0, 0,  2, 0, 0, 5,  16, 0, 0, 0,
        72, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  11, 0, 0, 0,  0, 0, 0, 0,
        // [11] STRUCT anonymous vlen 2, size 16: "refs" (52) type 8 at 0; "kn" (57) type 12 at 64
        0, 0, 0, 0,  2, 0, 0, 4,  16, 0, 0, 0,
        52, 0, 0, 0,  8, 0, 0, 0,  0, 0, 0, 0,
        57, 0, 0, 0,  12, 0, 0, 0,  64, 0, 0, 0,
        // [12] PTR -> 4 (struct cgroup)
        0, 0, 0, 0,  0, 0, 0, 2,  4, 0, 0, 0,
        // [13] FUNC_PROTO vlen 1 returns 8: param (name 0) type 8
        0, 0, 0, 0,  1, 0, 0, 13,  8, 0, 0, 0,
        0, 0, 0, 0,  8, 0, 0, 0,
        // [14] FUNC "bpf_iter_tcp" (name 105) -> 13
        105, 0, 0, 0,  0, 0, 0, 12,  13, 0, 0, 0,
        // [15] STRUCT "bits" (name 0) kind_flag, vlen 1, size 4:
        //   "a" (72) type 8, bitfield of 3 bits at bit 5
        0, 0, 0, 0,  1, 0, 0, 0x84,  4, 0, 0, 0,
        72, 0, 0, 0,  8, 0, 0, 0,  5, 0, 0, 3,
        // [16] INT "unsigned char" (name 0: anonymous here) size 1
        0, 0, 0, 0,  0, 0, 0, 1,  1, 0, 0, 0,  8, 0, 0, 0,
        // strings (118 bytes)
        0,
        b'u', b'n', b's', b'i', b'g', b'n', b'e', b'd', b' ', b'l', b'o', b'n', b'g', b' ',
        b'l', b'o', b'n', b'g', 0,                                              // 1
        b'u', b'6', b'4', 0,                                                    // 20
        b'k', b'e', b'r', b'n', b'f', b's', b'_', b'n', b'o', b'd', b'e', 0,    // 24
        b'f', b'l', b'a', b'g', b's', 0,                                        // 36
        b'i', b'd', 0,                                                          // 42
        b'c', b'g', b'r', b'o', b'u', b'p', 0,                                  // 45
        b'r', b'e', b'f', b's', 0,                                              // 52
        b'k', b'n', 0,                                                          // 57
        b's', b'o', b'c', b'k', b'_', b'c', b'o', b'm', b'm', b'o', b'n', 0,    // 60
        b'a', 0,                                                                // 72
        b's', b'k', b'c', b'_', b's', b't', b'a', b't', b'e', 0,                // 74
        b'i', b'n', b't', 0,                                                    // 84
        b's', b'o', b'c', b'k', 0,                                              // 88
        b'_', b'_', b's', b'k', b'_', b'c', b'o', b'm', b'm', b'o', b'n', 0,    // 93
        b'b', b'p', b'f', b'_', b'i', b't', b'e', b'r', b'_', b't', b'c', b'p', 0, // 105
    ];

    fn golden() -> Vec<u8> {
        GOLDEN.to_vec()
    }

    #[test]
    fn header_and_types() {
        let btf = Btf::parse(GOLDEN.to_vec()).unwrap();
        assert_eq!(btf.len(), 16);
        assert_eq!(btf.kind(1), Some(Kind::Int));
        assert_eq!(btf.name(1), "unsigned long long");
        assert_eq!(btf.kind(0), None, "0 is void");
        assert_eq!(btf.kind(17), None);
        assert_eq!(btf.find(Kind::Typedef, "u64").unwrap(), 2);
        assert_eq!(btf.resolve(2), 1);
        assert_eq!(btf.size(2), Some(8));
        assert_eq!(btf.size(5), Some(8), "a pointer");
        assert_eq!(btf.size(7), Some(1), "volatile unsigned char");
        assert!(matches!(
            btf.find(Kind::Struct, "u64"),
            Err(BtfError::NoType {
                kind: Kind::Struct,
                ..
            })
        ));
    }

    #[test]
    fn function_by_name() {
        let btf = Btf::parse(golden()).unwrap();
        assert_eq!(btf.find(Kind::Func, "bpf_iter_tcp").unwrap(), 14);
        assert_eq!(btf.referenced(14), Some(13));
        assert_eq!(btf.kind(13), Some(Kind::FuncProto));
    }

    #[test]
    fn members_and_offsets() {
        let btf = Btf::parse(golden()).unwrap();
        let kn = btf.field("cgroup", &["kn"]).unwrap();
        assert_eq!((kn.offset, kn.size), (8, 8));
        assert_eq!(
            btf.pointee_struct(kn.ty, "cgroup.kn").unwrap(),
            "kernfs_node"
        );
        let id = btf.field("kernfs_node", &["id"]).unwrap();
        assert_eq!((id.offset, id.size, id.ty), (8, 8, 1), "typedef resolved");
        let state = btf.field("sock", &["__sk_common", "skc_state"]).unwrap();
        assert_eq!((state.offset, state.size, state.ty), (4, 1, 16));
    }

    #[test]
    fn anonymous_members_are_searched() {
        let btf = Btf::parse(golden()).unwrap();
        // sock -> anonymous union at 8 -> anonymous struct at 0 -> kn at 8.
        let cg = btf.field("sock", &["kn"]).unwrap();
        assert_eq!(cg.offset, 16);
        assert_eq!(btf.pointee_struct(cg.ty, "sock.kn").unwrap(), "cgroup");
        // The first match wins: "a" of sock_common is not sock's.
        assert!(matches!(
            btf.field("sock", &["skc_state"]),
            Err(BtfError::NoMember { .. })
        ));
    }

    #[test]
    fn bitfields_are_refused() {
        let btf = Btf::parse(GOLDEN.to_vec()).unwrap();
        let m = btf.members(15);
        assert_eq!(
            m,
            [(
                "a",
                Member {
                    ty: 8,
                    bit_offset: 5,
                    bitfield_size: 3
                }
            )]
        );
    }

    #[test]
    fn a_member_that_is_not_a_pointer() {
        let btf = Btf::parse(golden()).unwrap();
        let refs = btf.field("cgroup", &["refs"]).unwrap();
        let err = btf.pointee_struct(refs.ty, "cgroup.refs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "BTF: cgroup.refs is not a pointer to a struct"
        );
    }

    #[test]
    fn bad_input() {
        let err = |b: &[u8]| Btf::parse(b.to_vec()).unwrap_err().to_string();
        assert_eq!(err(&[]), "not valid BTF: cut short");
        assert_eq!(err(&[0x9f, 0xea, 1, 0]), "not valid BTF: bad magic number");
        assert_eq!(
            err(&[0xeb, 0x9f, 1, 0]),
            "not valid BTF: in the other byte order"
        );
        let mut v2 = GOLDEN.to_vec();
        v2[2] = 2;
        assert_eq!(err(&v2), "not valid BTF: unknown version");
        // The type section reaching past the end.
        let mut long = GOLDEN.to_vec();
        long[12..16].copy_from_slice(&10_000u32.to_ne_bytes());
        assert_eq!(err(&long), "not valid BTF: type section");
        // A struct whose members go past the type section.
        let mut cut = GOLDEN.to_vec();
        cut[12..16].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(err(&cut), "not valid BTF: type cut short");
        // An unknown kind.
        let mut kind = GOLDEN.to_vec();
        kind[24 + 7] = 31;
        assert_eq!(err(&kind), "not valid BTF: unknown type kind");
    }

    /// The running kernel's BTF: what the iterator program needs is there.
    #[test]
    fn this_machines_vmlinux() {
        let btf = match Btf::vmlinux() {
            Ok(btf) => btf,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        assert!(btf.len() > 1000, "{} types", btf.len());
        let func = btf.find(Kind::Func, "bpf_iter_tcp").unwrap();
        assert_eq!(
            btf.kind(btf.referenced(func).unwrap()),
            Some(Kind::FuncProto)
        );
        let sk = btf
            .field("tcp_sock", &["inet_conn", "icsk_inet", "sk"])
            .unwrap();
        assert_eq!(sk.offset, 0, "struct sock starts a tcp_sock");
        let state = btf.field("sock", &["__sk_common", "skc_state"]).unwrap();
        assert_eq!(state.size, 1);
        let kn = btf.field("cgroup", &["kn"]).unwrap();
        assert_eq!(
            btf.pointee_struct(kn.ty, "cgroup.kn").unwrap(),
            "kernfs_node"
        );
        assert_eq!(btf.field("kernfs_node", &["id"]).unwrap().size, 8);
    }
}
