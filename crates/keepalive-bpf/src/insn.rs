//! A small eBPF instruction encoder: named constructors for the
//! instructions the keepalive program uses, and an assembler with labelled
//! jumps, so that the program reads as assembly and needs no clang.
//!
//! The instruction set is described in the kernel's
//! [Documentation/bpf/standardization/instruction-set.rst](https://github.com/torvalds/linux/blob/v6.18/Documentation/bpf/standardization/instruction-set.rst).
//! Every instruction is 8 bytes (the 64-bit immediate load takes two):
//!
//! ```text
//!  byte 0     byte 1          bytes 2-3         bytes 4-7
//! +--------+-------+-------+-----------------+---------------------------+
//! | opcode | src:4 | dst:4 | offset (i16)    | immediate (i32)           |
//! +--------+-------+-------+-----------------+---------------------------+
//! ```
//!
//! (registers: `dst` in the low nibble on little-endian hosts, the high one
//! on big-endian hosts; offset and immediate in host byte order.)
//!
//! The opcode byte is split in two ways. Arithmetic and jumps:
//!
//! ```text
//!   7   6   5   4   3   2   1   0
//! +---------------+---+-----------+
//! |  operation    |src|   class   |    src: 0 = immediate (K), 1 = register (X)
//! +---------------+---+-----------+
//! ```
//!
//! Loads and stores:
//!
//! ```text
//!   7   6   5   4   3   2   1   0
//! +-----------+-------+-----------+
//! |   mode    | size  |   class   |    size: W = 0, H = 1, B = 2, DW = 3
//! +-----------+-------+-----------+
//! ```

use std::collections::HashMap;

// Instruction classes (the low 3 bits of the opcode).
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU64: u8 = 0x07;

// The source bit of arithmetic and jumps.
const SRC_IMM: u8 = 0x00;
const SRC_REG: u8 = 0x08;

// Arithmetic operations (the high 4 bits).
const ALU_ADD: u8 = 0x00;
const ALU_MUL: u8 = 0x20;
const ALU_OR: u8 = 0x40;
const ALU_MOV: u8 = 0xb0;

// Jump operations that are not conditions.
const JMP_JA: u8 = 0x00;
const JMP_CALL: u8 = 0x80;
const JMP_EXIT: u8 = 0x90;

// Load and store modes (the high 3 bits).
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;

/// The `src` of a 64-bit immediate load whose immediate is a map's file
/// descriptor, which the kernel replaces with the map's address.
pub const PSEUDO_MAP_FD: u8 = 1;

/// A register. R0 holds return values, R1-R5 are a helper's arguments (and
/// are clobbered by every call), R6-R9 survive calls, R10 is the read-only
/// frame pointer (the stack grows down from it, 512 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reg {
    /// Return value of helpers and of the program.
    R0 = 0,
    /// First argument; the context pointer when the program starts.
    R1 = 1,
    /// Second argument.
    R2 = 2,
    /// Third argument.
    R3 = 3,
    /// Fourth argument.
    R4 = 4,
    /// Fifth argument.
    R5 = 5,
    /// Callee-saved.
    R6 = 6,
    /// Callee-saved.
    R7 = 7,
    /// Callee-saved.
    R8 = 8,
    /// Callee-saved.
    R9 = 9,
    /// The frame pointer (read-only).
    R10 = 10,
}

/// The width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// 8 bits (`u8`).
    B,
    /// 16 bits (`u16`).
    H,
    /// 32 bits (`u32`).
    W,
    /// 64 bits (`u64`).
    DW,
}

impl Size {
    const fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// The condition of a conditional jump, comparing `dst` with `src` or an
/// immediate. Unsigned unless named signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    /// `==` (`jeq`)
    Eq,
    /// `!=` (`jne`)
    Ne,
    /// `>` unsigned (`jgt`)
    Gt,
    /// `>=` unsigned (`jge`)
    Ge,
    /// `<` unsigned (`jlt`)
    Lt,
    /// `<=` unsigned (`jle`)
    Le,
    /// `dst & src != 0` (`jset`)
    Set,
    /// `>` signed (`jsgt`)
    SGt,
    /// `>=` signed (`jsge`)
    SGe,
    /// `<` signed (`jslt`)
    SLt,
    /// `<=` signed (`jsle`)
    SLe,
}

impl Cond {
    const fn op(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
            Cond::SGt => 0x60,
            Cond::SGe => 0x70,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
            Cond::SLt => 0xc0,
            Cond::SLe => 0xd0,
        }
    }
}

/// A kernel helper function, by its number in `enum bpf_func_id`
/// ([include/uapi/linux/bpf.h](https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/bpf.h)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Helper {
    /// `void *bpf_map_lookup_elem(map, const void *key)`: a pointer to the
    /// value, or NULL.
    MapLookupElem = 1,
    /// `long bpf_setsockopt(ctx, int level, int optname, void *optval, int optlen)`
    SetSockopt = 49,
    /// `long bpf_getsockopt(ctx, int level, int optname, void *optval, int optlen)`
    GetSockopt = 57,
    /// `struct tcp_sock *bpf_skc_to_tcp_sock(void *sk)`: the TCP socket of
    /// a full TCP socket, NULL for others (time-wait, request sockets).
    SkcToTcpSock = 137,
    /// `void *bpf_sk_storage_get(map, struct bpf_sock *sk, void *value, u64 flags)`:
    /// the socket's value in a socket-local storage map (created, zeroed,
    /// with `BPF_SK_STORAGE_GET_F_CREATE` and a NULL `value`), or NULL.
    SkStorageGet = 107,
}

/// One 8-byte instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst as u8,
            src: src as u8,
            off,
            imm,
        }
    }

    /// `mov64 dst, imm`: dst = imm (sign-extended to 64 bits).
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_IMM | ALU_MOV, dst, Reg::R0, 0, imm)
    }

    /// `mov64 dst, src`: dst = src.
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_REG | ALU_MOV, dst, src, 0, 0)
    }

    /// `add64 dst, imm`: dst += imm (sign-extended).
    pub const fn add64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_IMM | ALU_ADD, dst, Reg::R0, 0, imm)
    }

    /// `add64 dst, src`: dst += src.
    pub const fn add64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_REG | ALU_ADD, dst, src, 0, 0)
    }

    /// `mul64 dst, imm`: dst *= imm.
    pub const fn mul64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_IMM | ALU_MUL, dst, Reg::R0, 0, imm)
    }

    /// `mul64 dst, src`: dst *= src.
    pub const fn mul64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_REG | ALU_MUL, dst, src, 0, 0)
    }

    /// `or64 dst, imm`: dst |= imm (sign-extended).
    pub const fn or64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(CLASS_ALU64 | SRC_IMM | ALU_OR, dst, Reg::R0, 0, imm)
    }

    /// `ldx{size} dst, [src + off]`: dst = *(size *)(src + off), zero-extended.
    pub const fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(CLASS_LDX | MODE_MEM | size.bits(), dst, src, off, 0)
    }

    /// `st{size} [dst + off], imm`: *(size *)(dst + off) = imm.
    pub const fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(CLASS_ST | MODE_MEM | size.bits(), dst, Reg::R0, off, imm)
    }

    /// `stx{size} [dst + off], src`: *(size *)(dst + off) = src.
    pub const fn stx(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(CLASS_STX | MODE_MEM | size.bits(), dst, src, off, 0)
    }

    /// `lddw dst, map_fd`: dst = the address of the map whose file
    /// descriptor is `fd` (the kernel resolves it at load time). Two
    /// instruction slots; the second holds the upper 32 bits (zero).
    pub const fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
        [
            Insn {
                code: CLASS_LD | MODE_IMM | Size::DW.bits(),
                dst: dst as u8,
                src: PSEUDO_MAP_FD,
                off: 0,
                imm: fd,
            },
            Insn {
                code: 0,
                dst: 0,
                src: 0,
                off: 0,
                imm: 0,
            },
        ]
    }

    /// `call helper`: r0 = helper(r1, r2, r3, r4, r5); r1-r5 are clobbered.
    pub const fn call(helper: Helper) -> Insn {
        Insn::new(CLASS_JMP | JMP_CALL, Reg::R0, Reg::R0, 0, helper as i32)
    }

    /// `exit`: returns r0.
    pub const fn exit() -> Insn {
        Insn::new(CLASS_JMP | JMP_EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    /// `ja +off`: jumps `off` instructions forward from the next one.
    /// Prefer [`Asm::jump`], which takes a label.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(CLASS_JMP | JMP_JA, Reg::R0, Reg::R0, off, 0)
    }

    /// `j{cond} dst, imm, +off`: if dst `cond` imm, jumps `off` instructions
    /// forward from the next one. Prefer [`Asm::jump_if_imm`].
    pub const fn jmp_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(CLASS_JMP | SRC_IMM | cond.op(), dst, Reg::R0, off, imm)
    }

    /// `j{cond} dst, src, +off`: if dst `cond` src, jumps `off` instructions
    /// forward from the next one. Prefer [`Asm::jump_if_reg`].
    pub const fn jmp_reg(cond: Cond, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(CLASS_JMP | SRC_REG | cond.op(), dst, src, off, 0)
    }

    /// The opcode byte.
    pub const fn code(self) -> u8 {
        self.code
    }

    /// The offset field.
    pub const fn off(self) -> i16 {
        self.off
    }

    /// The immediate field.
    pub const fn imm(self) -> i32 {
        self.imm
    }

    /// True for a jump that has an offset to resolve (not `call`, `exit`).
    const fn is_jump(self) -> bool {
        self.code & 0x07 == CLASS_JMP && !matches!(self.code & 0xf0, JMP_CALL | JMP_EXIT)
    }

    const fn with_off(self, off: i16) -> Insn {
        Insn { off, ..self }
    }

    /// The 8 bytes the kernel reads (`struct bpf_insn`), in host byte order.
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            self.dst | self.src << 4
        } else {
            self.dst << 4 | self.src
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// The bytes of a whole program, as `BPF_PROG_LOAD` takes them.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Why [`Asm::finish`] failed: a mistake in the program's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsmError {
    /// A jump names a label that was never placed.
    #[error("jump to unknown label `{0}`")]
    UnknownLabel(&'static str),
    /// A label was placed twice.
    #[error("label `{0}` placed twice")]
    DuplicateLabel(&'static str),
    /// A jump goes backwards (the kernel allows it in bounded loops; this
    /// program never needs it) or farther than an `i16` offset reaches.
    #[error("jump to `{0}` is backwards or out of range")]
    BadJump(&'static str),
}

/// An assembler: instructions in order, with jumps to named labels that
/// [`Asm::finish`] turns into offsets.
///
/// ```
/// use keepalive_bpf::{Asm, Cond, Insn, Reg};
/// let mut asm = Asm::new();
/// asm.push(Insn::mov64_imm(Reg::R0, 0))
///     .jump_if_imm(Cond::Eq, Reg::R1, 0, "out")
///     .push(Insn::mov64_imm(Reg::R0, 1))
///     .label("out")
///     .push(Insn::exit());
/// let insns = asm.finish()?;
/// assert_eq!(insns[1], Insn::jmp_imm(Cond::Eq, Reg::R1, 0, 1));
/// # Ok::<(), keepalive_bpf::AsmError>(())
/// ```
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// (instruction index, label) of every jump to resolve.
    jumps: Vec<(usize, &'static str)>,
    labels: HashMap<&'static str, usize>,
    duplicate: Option<&'static str>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// Appends one instruction.
    pub fn push(&mut self, insn: Insn) -> &mut Asm {
        self.insns.push(insn);
        self
    }

    /// Appends several instructions (e.g. [`Insn::ld_map_fd`]).
    pub fn extend(&mut self, insns: impl IntoIterator<Item = Insn>) -> &mut Asm {
        self.insns.extend(insns);
        self
    }

    /// Places `name` at the next instruction.
    pub fn label(&mut self, name: &'static str) -> &mut Asm {
        if self.labels.insert(name, self.insns.len()).is_some() {
            self.duplicate.get_or_insert(name);
        }
        self
    }

    /// `ja target`: always jumps to `target`.
    pub fn jump(&mut self, target: &'static str) -> &mut Asm {
        self.jump_to(Insn::ja(0), target)
    }

    /// `j{cond} dst, imm, target`: jumps to `target` if dst `cond` imm.
    pub fn jump_if_imm(
        &mut self,
        cond: Cond,
        dst: Reg,
        imm: i32,
        target: &'static str,
    ) -> &mut Asm {
        self.jump_to(Insn::jmp_imm(cond, dst, imm, 0), target)
    }

    /// `j{cond} dst, src, target`: jumps to `target` if dst `cond` src.
    pub fn jump_if_reg(
        &mut self,
        cond: Cond,
        dst: Reg,
        src: Reg,
        target: &'static str,
    ) -> &mut Asm {
        self.jump_to(Insn::jmp_reg(cond, dst, src, 0), target)
    }

    fn jump_to(&mut self, insn: Insn, target: &'static str) -> &mut Asm {
        debug_assert!(insn.is_jump());
        self.jumps.push((self.insns.len(), target));
        self.insns.push(insn);
        self
    }

    /// The instructions placed so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// True when no instruction was placed.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Resolves every jump: its offset counts the instructions between the
    /// one after the jump and the label.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(name) = self.duplicate {
            return Err(AsmError::DuplicateLabel(name));
        }
        for (at, name) in self.jumps {
            let target = *self.labels.get(name).ok_or(AsmError::UnknownLabel(name))?;
            let off = target
                .checked_sub(at + 1)
                .and_then(|d| i16::try_from(d).ok())
                .ok_or(AsmError::BadJump(name))?;
            self.insns[at] = self.insns[at].with_off(off);
        }
        Ok(self.insns)
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn exit() {
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn mov64_imm() {
        assert_eq!(
            Insn::mov64_imm(Reg::R0, 1).to_bytes(),
            [0xb7, 0x00, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            Insn::mov64_imm(Reg::R1, 0x7fff_ffff).to_bytes(),
            [0xb7, 0x01, 0, 0, 0xff, 0xff, 0xff, 0x7f]
        );
    }

    #[test]
    fn mov64_reg() {
        // r6 = r1: dst 6 in the low nibble, src 1 in the high one.
        assert_eq!(
            Insn::mov64_reg(Reg::R6, Reg::R1).to_bytes(),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn add64_negative_imm() {
        assert_eq!(
            Insn::add64_imm(Reg::R2, -4).to_bytes(),
            [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            Insn::add64_reg(Reg::R1, Reg::R2).to_bytes(),
            [0x0f, 0x21, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn mul64() {
        assert_eq!(
            Insn::mul64_imm(Reg::R1, 1000).to_bytes(),
            [0x27, 0x01, 0, 0, 0xe8, 0x03, 0, 0]
        );
        assert_eq!(
            Insn::mul64_reg(Reg::R1, Reg::R2).to_bytes(),
            [0x2f, 0x21, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn ldx_word() {
        // r2 = *(u32 *)(r6 + 0): ldxw is 0x61.
        assert_eq!(
            Insn::ldx(Size::W, Reg::R2, Reg::R6, 0).to_bytes(),
            [0x61, 0x62, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Insn::ldx(Size::DW, Reg::R0, Reg::R1, 8).code(), 0x79);
        assert_eq!(Insn::ldx(Size::H, Reg::R0, Reg::R1, 8).code(), 0x69);
        assert_eq!(Insn::ldx(Size::B, Reg::R0, Reg::R1, 8).code(), 0x71);
    }

    #[test]
    fn st_imm_on_the_stack() {
        // *(u32 *)(r10 - 4) = 0
        assert_eq!(
            Insn::st(Size::W, Reg::R10, -4, 0).to_bytes(),
            [0x62, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn stx_word() {
        // *(u32 *)(r10 - 8) = r1
        assert_eq!(
            Insn::stx(Size::W, Reg::R10, -8, Reg::R1).to_bytes(),
            [0x63, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn ld_map_fd_takes_two_slots() {
        let [lo, hi] = Insn::ld_map_fd(Reg::R1, 0x42);
        assert_eq!(lo.to_bytes(), [0x18, 0x11, 0, 0, 0x42, 0, 0, 0]);
        assert_eq!(hi.to_bytes(), [0; 8]);
    }

    #[test]
    fn call_helpers() {
        assert_eq!(
            Insn::call(Helper::MapLookupElem).to_bytes(),
            [0x85, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            Insn::call(Helper::SetSockopt).to_bytes(),
            [0x85, 0, 0, 0, 49, 0, 0, 0]
        );
        assert_eq!(
            Insn::call(Helper::GetSockopt).to_bytes(),
            [0x85, 0, 0, 0, 57, 0, 0, 0]
        );
        assert_eq!(
            Insn::call(Helper::SkStorageGet).to_bytes(),
            [0x85, 0, 0, 0, 107, 0, 0, 0]
        );
    }

    #[test]
    fn or64_imm() {
        // r1 |= 1: alu64 | K | or = 0x47.
        assert_eq!(
            Insn::or64_imm(Reg::R1, 1).to_bytes(),
            [0x47, 0x01, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn conditional_jumps() {
        assert_eq!(
            Insn::jmp_imm(Cond::Eq, Reg::R2, 4, 3).to_bytes(),
            [0x15, 0x02, 3, 0, 4, 0, 0, 0]
        );
        assert_eq!(
            Insn::jmp_imm(Cond::Ne, Reg::R2, 5, 0x102).to_bytes(),
            [0x55, 0x02, 0x02, 0x01, 5, 0, 0, 0]
        );
        assert_eq!(Insn::jmp_imm(Cond::Set, Reg::R8, 1, 0).code(), 0x45);
        assert_eq!(Insn::jmp_imm(Cond::Le, Reg::R1, 1, 0).code(), 0xb5);
        assert_eq!(
            Insn::jmp_reg(Cond::Gt, Reg::R1, Reg::R2, 1).to_bytes(),
            [0x2d, 0x21, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(Insn::ja(2).to_bytes(), [0x05, 0, 2, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn labels_resolve_forward() {
        let mut asm = Asm::new();
        asm.jump_if_imm(Cond::Eq, Reg::R1, 0, "end")
            .extend(Insn::ld_map_fd(Reg::R1, 3))
            .jump("end")
            .push(Insn::mov64_imm(Reg::R0, 0))
            .label("end")
            .push(Insn::exit());
        let insns = asm.finish().unwrap();
        // The map load counts as two instructions.
        assert_eq!(insns[0].off(), 4);
        assert_eq!(insns[3].off(), 1);
        assert_eq!(insns.len(), 6);
    }

    #[test]
    fn jump_to_the_next_instruction_has_offset_zero() {
        let mut asm = Asm::new();
        asm.jump("next").label("next").push(Insn::exit());
        assert_eq!(asm.finish().unwrap()[0], Insn::ja(0));
    }

    #[test]
    fn unknown_label() {
        let mut asm = Asm::new();
        asm.jump("nowhere").push(Insn::exit());
        assert_eq!(asm.finish(), Err(AsmError::UnknownLabel("nowhere")));
    }

    #[test]
    fn duplicate_label() {
        let mut asm = Asm::new();
        asm.label("a").push(Insn::exit()).label("a");
        assert_eq!(asm.finish(), Err(AsmError::DuplicateLabel("a")));
    }

    #[test]
    fn backward_jump_is_refused() {
        let mut asm = Asm::new();
        asm.label("top").jump("top");
        assert_eq!(asm.finish(), Err(AsmError::BadJump("top")));
    }
}
