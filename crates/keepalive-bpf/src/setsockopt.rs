//! The cgroup/setsockopt program: what holds the policy against the
//! program's own setsockopt calls.
//!
//! The kernel runs a `BPF_PROG_TYPE_CGROUP_SOCKOPT` program attached to a
//! cgroup with `BPF_CGROUP_SETSOCKOPT` at every setsockopt(2) of a process
//! of that cgroup, *before* the kernel acts on it, with a writable context
//! (`struct bpf_sockopt`: `sk`, `optval`, `optval_end`, `level`, `optname`,
//! `optlen`, `retval`; the kernel's
//! [Documentation/bpf/prog_cgroup_sockopt.rst](https://github.com/torvalds/linux/blob/v6.18/Documentation/bpf/prog_cgroup_sockopt.rst)).
//! Returning 1 lets the call go on, with the option value as the programs
//! left it in the kernel's copy (`optval` up to `optval_end`, which the
//! verifier makes the program check before it reads or writes); the
//! caller's setsockopt then returns what the kernel's own handler returns.
//!
//! This one reads the same settings map as the sock_ops program and acts
//! only on TCP (and MPTCP) sockets, for `SO_KEEPALIVE`, `TCP_KEEPIDLE`,
//! `TCP_KEEPINTVL`, `TCP_KEEPCNT` and `TCP_USER_TIMEOUT`; every other call
//! returns at once, untouched:
//!
//! - it claims the socket ([`crate::claim`]), stepping back when a deeper
//!   cgroup's enforcement claimed it;
//! - in every mode, when the program sets `SO_KEEPALIVE` on or its own
//!   `TCP_KEEPIDLE`, `TCP_KEEPINTVL` or `TCP_KEEPCNT`, it clears the
//!   claim's [`crate::claim::CLAIM_BY_US`] (the sock_ops program may have
//!   switched keepalive on at establishment): the values are the
//!   program's choice now, and a later `--existing` in the default mode
//!   leaves them alone;
//! - default mode: nothing else (the program's values stand);
//! - `--force`: `SO_KEEPALIVE` 0 becomes 1, and each of our values given
//!   replaces the program's;
//! - `--max-idle D`: `SO_KEEPALIVE` 0 becomes 1, `TCP_KEEPIDLE` and
//!   `TCP_KEEPINTVL` above D become D.
//!
//! It always returns 1: the program's call succeeds (with the value the
//! kernel applies being ours).

use libc::{
    SO_KEEPALIVE, SOL_SOCKET, SOL_TCP, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_USER_TIMEOUT,
};

use crate::insn::{Asm, Cond, Helper, Insn, Reg, Size};
use crate::program::{FLAG_FORCE, field};

/// `struct bpf_sockopt` offsets.
const CTX_SK: i16 = 0;
const CTX_OPTVAL: i16 = 8;
const CTX_OPTVAL_END: i16 = 16;
const CTX_LEVEL: i16 = 24;
const CTX_OPTNAME: i16 = 28;
/// `struct bpf_sock`'s `protocol`.
const SOCK_PROTOCOL: i16 = 12;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_MPTCP: i32 = 262;

const STACK_KEY: i16 = -4;

/// Emits, for the option whose program value is in r5 and map field at
/// `ours`: with `FLAG_FORCE` and our value given, writes ours; else, when
/// `cap` and the map's `max_idle` is given and below r5, writes it. r2 is
/// the (checked) `optval`.
fn hold(asm: &mut Asm, ours: i16, cap: bool, labels: [&'static str; 2]) {
    let [not_forced, forced] = labels;
    asm.jump_if_imm(Cond::Set, Reg::R8, FLAG_FORCE as i32, forced)
        .jump(not_forced)
        .label(forced)
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R7, ours))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, not_forced)
        .push(Insn::stx(Size::W, Reg::R2, 0, Reg::R1))
        .jump("pass")
        .label(not_forced);
    if cap {
        asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R7, field::MAX_IDLE))
            .jump_if_imm(Cond::Eq, Reg::R1, 0, "pass")
            .jump_if_reg(Cond::Le, Reg::R5, Reg::R1, "pass")
            .push(Insn::stx(Size::W, Reg::R2, 0, Reg::R1));
    }
    asm.jump("pass");
}

/// The cgroup/setsockopt program for the settings map `map_fd`, a cgroup
/// at `depth`, and the claims map `claims_fd` (see the module docs).
///
/// Registers: r6 = the context (`struct bpf_sockopt *`), r7 = the map
/// value, r8 = its flags, r9 = the socket's claim (or 0); after the bounds
/// check r2 = `optval`, r5 = the program's value.
pub fn setsockopt_program(map_fd: i32, claims_fd: i32, depth: u32) -> Vec<Insn> {
    let mut asm = Asm::new();
    asm.push(Insn::mov64_reg(Reg::R6, Reg::R1))
        // TCP or MPTCP sockets only: r3 = ctx->sk->protocol.
        .push(Insn::ldx(Size::DW, Reg::R2, Reg::R6, CTX_SK))
        .push(Insn::ldx(Size::W, Reg::R3, Reg::R2, SOCK_PROTOCOL))
        .jump_if_imm(Cond::Eq, Reg::R3, IPPROTO_TCP, "tcp")
        .jump_if_imm(Cond::Ne, Reg::R3, IPPROTO_MPTCP, "pass")
        .label("tcp")
        .push(Insn::ldx(Size::W, Reg::R2, Reg::R6, CTX_LEVEL))
        .push(Insn::ldx(Size::W, Reg::R3, Reg::R6, CTX_OPTNAME))
        .jump_if_imm(Cond::Eq, Reg::R2, SOL_SOCKET, "sol_socket")
        .jump_if_imm(Cond::Ne, Reg::R2, SOL_TCP, "pass")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPIDLE, "relevant")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPINTVL, "relevant")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPCNT, "relevant")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_USER_TIMEOUT, "relevant")
        .jump("pass")
        .label("sol_socket")
        .jump_if_imm(Cond::Ne, Reg::R3, SO_KEEPALIVE, "pass")
        .label("relevant")
        // r7 = bpf_map_lookup_elem(map, &(u32){0}); r8 = its flags.
        .push(Insn::st(Size::W, Reg::R10, STACK_KEY, 0))
        .push(Insn::mov64_reg(Reg::R2, Reg::R10))
        .push(Insn::add64_imm(Reg::R2, STACK_KEY.into()))
        .extend(Insn::ld_map_fd(Reg::R1, map_fd))
        .push(Insn::call(Helper::MapLookupElem))
        .jump_if_imm(Cond::Eq, Reg::R0, 0, "pass")
        .push(Insn::mov64_reg(Reg::R7, Reg::R0))
        .push(Insn::ldx(Size::W, Reg::R8, Reg::R7, field::FLAGS))
        .push(Insn::ldx(Size::DW, Reg::R2, Reg::R6, CTX_SK));
    crate::claim::emit(&mut asm, claims_fd, depth, "pass");
    // r2 = optval, with 4 bytes before optval_end, r5 = its int.
    asm.push(Insn::ldx(Size::DW, Reg::R2, Reg::R6, CTX_OPTVAL))
        .push(Insn::ldx(Size::DW, Reg::R3, Reg::R6, CTX_OPTVAL_END))
        .push(Insn::mov64_reg(Reg::R4, Reg::R2))
        .push(Insn::add64_imm(Reg::R4, 4))
        .jump_if_reg(Cond::Gt, Reg::R4, Reg::R3, "pass")
        .push(Insn::ldx(Size::W, Reg::R5, Reg::R2, 0))
        // The program's own keepalive choice (SO_KEEPALIVE on, or its
        // own idle, interval or count), in every mode: the claim no longer
        // says that one of our programs switched keepalive on, so that a
        // later `--existing` in the default mode leaves its values alone.
        .push(Insn::ldx(Size::W, Reg::R3, Reg::R6, CTX_OPTNAME))
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_USER_TIMEOUT, "mode")
        .jump_if_imm(Cond::Ne, Reg::R3, SO_KEEPALIVE, "own_choice")
        .jump_if_imm(Cond::Eq, Reg::R5, 0, "mode")
        .label("own_choice");
    crate::claim::emit_clear_by_us(&mut asm, ["by_us_set", "mode"]);
    // Default mode: the program's values stand.
    asm.jump_if_imm(Cond::Set, Reg::R8, FLAG_FORCE as i32, "rewrite")
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R7, field::MAX_IDLE))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "pass")
        .label("rewrite")
        // Past the level check, the option name alone tells them apart
        // (SO_KEEPALIVE is 9, no TCP option we let through is).
        .push(Insn::ldx(Size::W, Reg::R3, Reg::R6, CTX_OPTNAME))
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPIDLE, "idle")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPINTVL, "intvl")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_KEEPCNT, "cnt")
        .jump_if_imm(Cond::Eq, Reg::R3, TCP_USER_TIMEOUT, "user_timeout")
        // SO_KEEPALIVE: 0 becomes 1, in both modes.
        .jump_if_imm(Cond::Ne, Reg::R5, 0, "pass")
        .push(Insn::st(Size::W, Reg::R2, 0, 1));
    crate::claim::emit_by_us(&mut asm, "marked");
    asm.jump("pass").label("idle");
    hold(
        &mut asm,
        field::IDLE,
        true,
        ["idle_not_forced", "idle_write"],
    );
    asm.label("intvl");
    hold(
        &mut asm,
        field::INTVL,
        true,
        ["intvl_not_forced", "intvl_write"],
    );
    asm.label("cnt");
    hold(&mut asm, field::CNT, false, ["cnt_not_forced", "cnt_write"]);
    asm.label("user_timeout");
    hold(
        &mut asm,
        field::USER_TIMEOUT,
        false,
        ["ut_not_forced", "ut_write"],
    );
    asm.label("pass")
        .push(Insn::mov64_imm(Reg::R0, 1))
        .push(Insn::exit());
    asm.finish()
        .expect("the program's labels are placed once and only jumped to forwards")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_starts_and_ends_as_cgroup_sockopt_requires() {
        let p = setsockopt_program(7, 8, 1);
        assert_eq!(p[0], Insn::mov64_reg(Reg::R6, Reg::R1));
        assert_eq!(
            &p[p.len() - 2..],
            [Insn::mov64_imm(Reg::R0, 1), Insn::exit()]
        );
        // Never returns anything but 1: the only `mov r0` is the last.
        let sets_r0 = p
            .iter()
            .filter(|i| i.code() == 0xb7 && i.to_bytes()[1] & 0x0f == 0)
            .count();
        assert_eq!(sets_r0, 1);
    }

    #[test]
    fn loads_both_maps() {
        let p = setsockopt_program(0x2a, 0x2b, 1);
        for fd in [0x2a, 0x2b] {
            let [lo, _] = Insn::ld_map_fd(Reg::R1, fd);
            assert_eq!(p.iter().filter(|i| **i == lo).count(), 1, "map {fd}");
        }
    }

    #[test]
    fn every_write_to_optval_follows_the_bounds_check() {
        let p = setsockopt_program(3, 4, 1);
        let check = p
            .iter()
            .position(|i| *i == Insn::jmp_reg(Cond::Gt, Reg::R4, Reg::R3, i.off()))
            .expect("the bounds check");
        let writes: Vec<usize> = p
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                let b = i.to_bytes();
                // stx/st word with dst r2 (optval).
                matches!(b[0], 0x63 | 0x62) && b[1] & 0x0f == 2
            })
            .map(|(at, _)| at)
            .collect();
        assert_eq!(writes.len(), 7, "SO_KEEPALIVE, 4 held values, 2 caps");
        assert!(writes.iter().all(|w| *w > check));
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let p = setsockopt_program(3, 4, 0);
        for (at, insn) in p.iter().enumerate() {
            let class = insn.code() & 0x07;
            let op = insn.code() & 0xf0;
            if class == 0x05 && op != 0x80 && op != 0x90 {
                let target = at as i64 + 1 + i64::from(insn.off());
                assert!((0..p.len() as i64).contains(&target), "jump at {at}");
            }
        }
    }
}
