//! A BPF iterator over the TCP sockets of a network namespace that
//! applies a [`Policy`] to the ones a cgroup subtree created: how
//! `enforce --existing` reaches connections established before the
//! sock_ops program was attached.
//!
//! The program is `BPF_PROG_TYPE_TRACING` with `BPF_TRACE_ITER`, for the
//! kernel function `bpf_iter_tcp` (its BTF type id is the program's
//! `attach_btf_id`). The kernel runs it once per socket, holding the
//! socket's lock, with `struct bpf_iter__tcp { meta; sk_common; uid; }`,
//! and lets it call `bpf_setsockopt` and `bpf_getsockopt` on the socket
//! (Linux 5.15, `bpf_iter_tcp_get_func_proto()` in
//! [net/ipv4/tcp_ipv4.c](https://github.com/torvalds/linux/blob/v6.18/net/ipv4/tcp_ipv4.c)).
//! A link (`BPF_LINK_CREATE`) and an iterator (`BPF_ITER_CREATE`) are
//! made for each run; reading the iterator runs the program over every
//! TCP socket of the network namespace of the thread that created it.
//!
//! Which sockets: those whose own cgroup (`sk->sk_cgrp_data.cgroup`, set
//! when the socket is created and inherited by accepted connections) is
//! the cgroup or one below it: the cgroups sock_ops enforcement acts for.
//! The program reads the socket's cgroup id (`cgroup->kn->id`, the inode
//! number of the cgroup's directory) through the struct offsets of this
//! kernel's BTF, and looks it up in a hash map of the subtree's ids.
//!
//! For each such socket that is established or listening it does what the
//! sock_ops program does for a new connection, reading and writing the
//! same claims ([`crate::claim`], `bpf_sk_storage_get`, allowed in TCP
//! iterators since Linux 5.11):
//!
//! - a socket a deeper cgroup's enforcement claimed is left alone (that
//!   enforcement decides); else the iterator claims it with its depth;
//! - unless `FLAG_FORCE`, a socket whose `SO_KEEPALIVE` is on already is
//!   left alone when its program switched it on; when one of our programs
//!   did (the claim's [`CLAIM_BY_US`]: the sock_ops program at
//!   establishment, the setsockopt companion, an earlier `--existing`), it
//!   gets the values, so that running `--existing` again with new values
//!   reaches it;
//! - otherwise the values given, `SO_KEEPALIVE = 1` (recorded in the
//!   claim as ours), then `TCP_USER_TIMEOUT`.
//!
//! It counts what it did in a second map.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use libc::{
    SO_KEEPALIVE, SOL_SOCKET, SOL_TCP, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_USER_TIMEOUT,
};

use crate::btf::{Btf, BtfError, Kind};
use crate::claim::{self, CLAIM_BY_US, CLAIM_FLAGS, Claims};
use crate::insn::{self, Asm, Cond, Helper, Insn, Reg, Size};
use crate::program::{FLAG_FORCE, FLAG_USER_TIMEOUT_AUTO, Policy, auto_user_timeout, sockopt};
use crate::sys::{self, MapFd, ProgFd, Syscall};

/// `BPF_PROG_TYPE_TRACING`.
const PROG_TYPE_TRACING: u32 = 26;
/// `BPF_TRACE_ITER`.
const ATTACH_TRACE_ITER: u32 = 28;
/// `BPF_MAP_TYPE_HASH`.
const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_ARRAY`.
const MAP_TYPE_ARRAY: u32 = 2;
/// `TCP_ESTABLISHED`, `TCP_LISTEN` (include/net/tcp_states.h).
const TCP_ESTABLISHED: i32 = 1;
const TCP_LISTEN: i32 = 10;

/// The program's name, as `bpftool prog` shows it while it runs.
pub(crate) const ITER_PROG_NAME: &str = "keepalive_iter";
const LICENSE: &CStr = c"GPL";

/// `struct bpf_iter__tcp`: `sk_common` follows the 8-byte `meta` pointer.
const CTX_SK_COMMON: i16 = 8;

// The counters map: one value of `COUNTERS` u64s at key 0.
const COUNT_CHANGED: i16 = 0;
const COUNT_LISTENING: i16 = 8;
const COUNT_LEFT_ALONE: i16 = 16;
const COUNT_FAILED: i16 = 24;
const COUNTERS_SIZE: u32 = 32;

// Stack slots.
const STACK_KEY64: i16 = -8;
const STACK_VAL: i16 = -12;
const STACK_INTVL: i16 = -16;
const STACK_CNT: i16 = -20;
const STACK_KEY32: i16 = -24;
/// The socket's state (r7 holds the count of changes once it is read).
const STACK_STATE: i16 = -28;

/// Where the program finds what it reads in this kernel's structs, from
/// its BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The BTF type id of the function `bpf_iter_tcp`.
    pub(crate) attach_btf_id: u32,
    /// `offsetof(struct tcp_sock, ...sk.__sk_common.skc_state)`, 1 byte.
    pub(crate) state: i16,
    /// `offsetof(struct tcp_sock, ...sk.sk_cgrp_data.cgroup)`, a pointer.
    pub(crate) cgroup: i16,
    /// `offsetof(struct cgroup, kn)`, a pointer.
    pub(crate) kn: i16,
    /// `offsetof(struct kernfs_node, id)`, a u64.
    pub(crate) id: i16,
}

fn unexpected(what: String) -> BtfError {
    BtfError::Unexpected { what }
}

fn offset(off: u32, what: &str) -> Result<i16, BtfError> {
    i16::try_from(off).map_err(|_| unexpected(format!("{what} lies beyond a 16-bit offset")))
}

impl Layout {
    /// The offsets in `btf` (the running kernel's, [`Btf::vmlinux`]).
    pub(crate) fn from_btf(btf: &Btf) -> Result<Layout, BtfError> {
        let func = btf.find(Kind::Func, "bpf_iter_tcp")?;
        let sk = ["inet_conn", "icsk_inet", "sk"];
        let state = btf.field(
            "tcp_sock",
            &[&sk[..], &["__sk_common", "skc_state"]].concat(),
        )?;
        if state.size != 1 {
            return Err(unexpected(format!(
                "sock_common.skc_state has {} bytes, not 1",
                state.size
            )));
        }
        let cgroup = btf.field("tcp_sock", &[&sk[..], &["sk_cgrp_data", "cgroup"]].concat())?;
        if btf.pointee_struct(cgroup.ty, "sock.sk_cgrp_data.cgroup")? != "cgroup" {
            return Err(unexpected(
                "sock.sk_cgrp_data.cgroup is not a struct cgroup pointer".to_owned(),
            ));
        }
        let kn = btf.field("cgroup", &["kn"])?;
        if btf.pointee_struct(kn.ty, "cgroup.kn")? != "kernfs_node" {
            return Err(unexpected(
                "cgroup.kn is not a struct kernfs_node pointer".to_owned(),
            ));
        }
        let id = btf.field("kernfs_node", &["id"])?;
        if id.size != 8 {
            return Err(unexpected(format!(
                "kernfs_node.id has {} bytes, not 8",
                id.size
            )));
        }
        Ok(Layout {
            attach_btf_id: func,
            state: offset(state.offset, "skc_state")?,
            cgroup: offset(cgroup.offset, "sk_cgrp_data.cgroup")?,
            kn: offset(kn.offset, "cgroup.kn")?,
            id: offset(id.offset, "kernfs_node.id")?,
        })
    }
}

/// The words of [`Policy::to_bytes`]: flags, idle, interval, count,
/// user timeout (ms), max idle (0 where absent), baked into the program
/// as immediates.
fn policy_words(policy: &Policy) -> [u32; 6] {
    let bytes = policy.to_bytes();
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    [word(0), word(1), word(2), word(3), word(4), word(5)]
}

/// `--max-idle` of `policy`, read from its map value (the field is the
/// sixth word of [`Policy::to_bytes`]).
pub(crate) fn max_idle_of(policy: &Policy) -> Option<keepalive::Seconds> {
    match policy_words(policy)[5] {
        0 => None,
        v => keepalive::Seconds::new(v.into()).ok(),
    }
}

/// Labels of one [`cap`] block.
struct CapLabels {
    idle_set: &'static str,
    idle_ok: &'static str,
    idle_done: &'static str,
    intvl_set: &'static str,
    intvl_ok: &'static str,
    intvl_done: &'static str,
}

/// Emits `--max-idle`: for idle and interval, when the socket's value
/// cannot be read (before Linux 6.1) or is above `max`, set it to `max`
/// (and r7 = 1: something was set). Shorter values stand.
fn cap(asm: &mut Asm, max: i32, l: &CapLabels) {
    for (name, set, ok, done) in [
        (TCP_KEEPIDLE, l.idle_set, l.idle_ok, l.idle_done),
        (TCP_KEEPINTVL, l.intvl_set, l.intvl_ok, l.intvl_done),
    ] {
        asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, 0));
        sockopt(asm, Helper::GetSockopt, SOL_TCP, name, STACK_VAL);
        asm.jump_if_imm(Cond::Ne, Reg::R0, 0, set)
            .push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_VAL))
            .jump_if_imm(Cond::Le, Reg::R1, max, done)
            .label(set)
            .push(Insn::mov64_imm(Reg::R7, 1));
        self::set(asm, SOL_TCP, name, Some(max), ok);
        asm.label(done);
    }
}

/// Emits a setsockopt of `value` (from the stack slot `STACK_VAL`, stored
/// first when `value` is given) and r8 = 1 when it fails.
fn set(asm: &mut Asm, level: i32, name: i32, value: Option<i32>, ok: &'static str) {
    if let Some(v) = value {
        asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, v));
    }
    sockopt(asm, Helper::SetSockopt, level, name, STACK_VAL);
    asm.jump_if_imm(Cond::Eq, Reg::R0, 0, ok)
        .push(Insn::mov64_imm(Reg::R8, 1))
        .label(ok);
}

/// Emits: r0 = the counters (`bpf_map_lookup_elem(counters, &0)`), or
/// to `out` when NULL.
fn counters(asm: &mut Asm, counters_fd: i32, out: &'static str) {
    asm.push(Insn::st(Size::W, Reg::R10, STACK_KEY32, 0))
        .push(Insn::mov64_reg(Reg::R2, Reg::R10))
        .push(Insn::add64_imm(Reg::R2, STACK_KEY32.into()))
        .extend(Insn::ld_map_fd(Reg::R1, counters_fd))
        .push(Insn::call(Helper::MapLookupElem))
        .jump_if_imm(Cond::Eq, Reg::R0, 0, out);
}

/// Emits `*(u64 *)(r0 + off) += 1` (the iterator runs the program on one
/// socket at a time: no atomic needed).
fn count(asm: &mut Asm, off: i16) {
    asm.push(Insn::ldx(Size::DW, Reg::R1, Reg::R0, off))
        .push(Insn::add64_imm(Reg::R1, 1))
        .push(Insn::stx(Size::DW, Reg::R0, off, Reg::R1));
}

/// The iterator program for `policy`, selecting the sockets whose cgroup
/// id is a key of the hash map `cgroups_fd`, counting into the array map
/// `counters_fd` (key 0: changed, of which listening, left alone, failed;
/// u64 each), claiming sockets for a cgroup at `depth` in the socket
/// storage map `claims_fd` ([`crate::claim`]).
///
/// As the sock_ops program does for a new connection: a socket a deeper
/// cgroup's enforcement claimed is left alone; unless `force`, so is a
/// socket whose `SO_KEEPALIVE` its program switched on (on, and the claim
/// does not say one of our programs did); else the values given,
/// `SO_KEEPALIVE = 1` (then the claim says so), the user timeout. With
/// `max_idle`, a socket whose program switched keepalive on keeps its
/// values, but idle and interval above the maximum (or unreadable) are
/// set to it, on every socket.
///
/// Registers: r6 = the socket (`struct tcp_sock *`), r7 = its state, then
/// (the state kept at `STACK_STATE`) 1 once a setsockopt was made, r8 =
/// 1 once one failed, r9 = the socket's claim (or 0). The program returns
/// 0 (go on) always.
pub(crate) fn iter_program(
    layout: &Layout,
    policy: &Policy,
    cgroups_fd: i32,
    counters_fd: i32,
    claims_fd: i32,
    depth: u32,
) -> Vec<Insn> {
    let [flags, idle, intvl, cnt, user_timeout, max_idle] = policy_words(policy);
    let max_idle = i32::try_from(max_idle).unwrap_or(i32::MAX);
    let mut asm = Asm::new();
    // r1 = ctx->sk_common; NULL at the end of the iteration.
    asm.push(Insn::ldx(Size::DW, Reg::R1, Reg::R1, CTX_SK_COMMON))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "out")
        .push(Insn::call(Helper::SkcToTcpSock))
        .jump_if_imm(Cond::Eq, Reg::R0, 0, "out")
        .push(Insn::mov64_reg(Reg::R6, Reg::R0))
        // Established or listening only.
        .push(Insn::ldx(Size::B, Reg::R7, Reg::R6, layout.state))
        .jump_if_imm(Cond::Eq, Reg::R7, TCP_ESTABLISHED, "state_ok")
        .jump_if_imm(Cond::Ne, Reg::R7, TCP_LISTEN, "out")
        .label("state_ok")
        // r1 = sk->sk_cgrp_data.cgroup->kn->id
        .push(Insn::ldx(Size::DW, Reg::R1, Reg::R6, layout.cgroup))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "out")
        .push(Insn::ldx(Size::DW, Reg::R1, Reg::R1, layout.kn))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "out")
        .push(Insn::ldx(Size::DW, Reg::R1, Reg::R1, layout.id))
        // One of the subtree's cgroups?
        .push(Insn::stx(Size::DW, Reg::R10, STACK_KEY64, Reg::R1))
        .push(Insn::mov64_reg(Reg::R2, Reg::R10))
        .push(Insn::add64_imm(Reg::R2, STACK_KEY64.into()))
        .extend(Insn::ld_map_fd(Reg::R1, cgroups_fd))
        .push(Insn::call(Helper::MapLookupElem))
        .jump_if_imm(Cond::Eq, Reg::R0, 0, "out")
        .push(Insn::stx(Size::W, Reg::R10, STACK_STATE, Reg::R7))
        .push(Insn::mov64_imm(Reg::R7, 0))
        .push(Insn::mov64_imm(Reg::R8, 0))
        // The claim: a deeper cgroup's enforcement decides (counted as
        // left alone: r7 and r8 are 0 at "count"); else ours.
        .push(Insn::mov64_reg(Reg::R2, Reg::R6));
    claim::emit(&mut asm, claims_fd, depth, "count");
    if flags & FLAG_FORCE == 0 {
        // Leave the socket alone when its program set SO_KEEPALIVE (an
        // error, before Linux 6.1, reads as off), not one of ours.
        let own = if max_idle != 0 { "cap_only" } else { "count" };
        asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, 0));
        sockopt(
            &mut asm,
            Helper::GetSockopt,
            SOL_SOCKET,
            SO_KEEPALIVE,
            STACK_VAL,
        );
        asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_VAL))
            .jump_if_imm(Cond::Eq, Reg::R1, 0, "apply")
            .jump_if_imm(Cond::Eq, Reg::R9, 0, own)
            .push(Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_FLAGS))
            .jump_if_imm(Cond::Set, Reg::R1, CLAIM_BY_US, "apply")
            .jump(own)
            .label("apply");
    }
    asm.push(Insn::mov64_imm(Reg::R7, 1));
    let given = |v: u32| (v != 0).then_some(v as i32);
    if let Some(v) = given(idle) {
        set(&mut asm, SOL_TCP, TCP_KEEPIDLE, Some(v), "idle_done");
    }
    if let Some(v) = given(intvl) {
        set(&mut asm, SOL_TCP, TCP_KEEPINTVL, Some(v), "intvl_done");
    }
    if let Some(v) = given(cnt) {
        set(&mut asm, SOL_TCP, TCP_KEEPCNT, Some(v), "cnt_done");
    }
    // SO_KEEPALIVE = 1; once set, the claim records that we switched it on.
    asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, 1));
    sockopt(
        &mut asm,
        Helper::SetSockopt,
        SOL_SOCKET,
        SO_KEEPALIVE,
        STACK_VAL,
    );
    asm.jump_if_imm(Cond::Ne, Reg::R0, 0, "keepalive_failed");
    claim::emit_by_us(&mut asm, "keepalive_marked");
    asm.jump("keepalive_done")
        .label("keepalive_failed")
        .push(Insn::mov64_imm(Reg::R8, 1))
        .label("keepalive_done");
    if max_idle != 0 {
        cap(
            &mut asm,
            max_idle,
            &CapLabels {
                idle_set: "idle_cap_set",
                idle_ok: "idle_cap_ok",
                idle_done: "idle_cap_done",
                intvl_set: "intvl_cap_set",
                intvl_ok: "intvl_cap_ok",
                intvl_done: "intvl_cap_done",
            },
        );
    }
    if user_timeout != 0 {
        let ms = i32::try_from(user_timeout).unwrap_or(i32::MAX);
        set(
            &mut asm,
            SOL_TCP,
            TCP_USER_TIMEOUT,
            Some(ms),
            "user_timeout_done",
        );
    } else if flags & FLAG_USER_TIMEOUT_AUTO != 0 {
        // (idle + intvl x cnt) x 1000 from the socket's values now.
        auto_user_timeout(&mut asm, [STACK_VAL, STACK_INTVL, STACK_CNT], "auto_capped");
        set(
            &mut asm,
            SOL_TCP,
            TCP_USER_TIMEOUT,
            None,
            "user_timeout_done",
        );
    }
    if max_idle != 0 && flags & FLAG_FORCE == 0 {
        // Keepalive on by its program: its values, capped.
        asm.jump("count").label("cap_only");
        cap(
            &mut asm,
            max_idle,
            &CapLabels {
                idle_set: "own_idle_set",
                idle_ok: "own_idle_ok",
                idle_done: "own_idle_done",
                intvl_set: "own_intvl_set",
                intvl_ok: "own_intvl_ok",
                intvl_done: "own_intvl_done",
            },
        );
    }
    asm.label("count");
    counters(&mut asm, counters_fd, "out");
    asm.jump_if_imm(Cond::Eq, Reg::R8, 0, "no_failure");
    count(&mut asm, COUNT_FAILED);
    asm.jump("out")
        .label("no_failure")
        .jump_if_imm(Cond::Ne, Reg::R7, 0, "changed");
    count(&mut asm, COUNT_LEFT_ALONE);
    asm.jump("out").label("changed");
    count(&mut asm, COUNT_CHANGED);
    asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_STATE))
        .jump_if_imm(Cond::Ne, Reg::R1, TCP_LISTEN, "out");
    count(&mut asm, COUNT_LISTENING);
    asm.label("out")
        .push(Insn::mov64_imm(Reg::R0, 0))
        .push(Insn::exit());
    asm.finish()
        .expect("the program's labels are placed once and only jumped to forwards")
}

/// What one or more runs of the iterator did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Sockets whose settings were set.
    pub(crate) changed: u64,
    /// Of those, listening sockets.
    pub(crate) listening: u64,
    /// Sockets left alone: their program switched keepalive on itself, or
    /// a deeper cgroup's enforcement decides for them.
    pub(crate) left_alone: u64,
    /// Sockets where a setsockopt failed.
    pub(crate) failed: u64,
}

impl Counts {
    fn from_bytes(b: &[u8; COUNTERS_SIZE as usize]) -> Counts {
        let field = |off: i16| {
            let off = off as usize;
            let mut w = [0; 8];
            w.copy_from_slice(&b[off..off + 8]);
            u64::from_ne_bytes(w)
        };
        Counts {
            changed: field(COUNT_CHANGED),
            listening: field(COUNT_LISTENING),
            left_alone: field(COUNT_LEFT_ALONE),
            failed: field(COUNT_FAILED),
        }
    }
}

/// Why the iterator could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IterError {
    /// The kernel's BTF is absent or lacks what the program reads.
    #[error("the kernel's BTF cannot place what the iterator reads")]
    Btf(#[from] BtfError),
    /// The verifier refused the program (before Linux 5.15 the TCP
    /// iterator may not call bpf_setsockopt).
    #[error("the kernel refused the TCP iterator program ({error}){}", log_tail(.log))]
    Verifier {
        /// The kernel's error.
        error: io::Error,
        /// The end of the verifier's log.
        log: String,
    },
    /// The claims map of nested enforcement (`/sys/fs/bpf/keepalive/claims`)
    /// could not be opened or made.
    #[error("the claims map of nested enforcement cannot be used")]
    Claims(#[source] crate::error::Error),
    /// A bpf(2) command, or reading the iterator, failed.
    #[error("{call} failed")]
    Syscall {
        /// The command.
        call: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn log_tail(log: &str) -> String {
    match log.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => format!("; the verifier said: {last}"),
        None => String::new(),
    }
}

fn syscall(call: &'static str) -> impl FnOnce(io::Error) -> IterError {
    move |source| IterError::Syscall { call, source }
}

/// Room for the verifier's log when a load fails.
const LOG_SIZE: usize = 64 * 1024;

/// The loaded program and link, with its maps: run it with [`TcpIter::run`]
/// in each network namespace, then read [`TcpIter::counts`].
#[derive(Debug)]
pub(crate) struct TcpIter {
    counters: MapFd,
    _cgroups: MapFd,
    _prog: ProgFd,
    link: OwnedFd,
}

impl TcpIter {
    /// Loads the program for `policy` and the cgroups `cgroup_ids`, which
    /// acts for a cgroup at `depth` in the socket storage map `claims`
    /// (the program holds it from then on), and makes its link.
    pub(crate) fn load(
        layout: &Layout,
        policy: &Policy,
        cgroup_ids: &[u64],
        claims: &Claims,
        depth: u32,
    ) -> Result<TcpIter, IterError> {
        let max = u32::try_from(cgroup_ids.len().max(1)).unwrap_or(u32::MAX);
        let cgroups = MapFd::create(MAP_TYPE_HASH, 8, 4, max, "keepalive_cgids")
            .map_err(syscall("BPF_MAP_CREATE"))?;
        for id in cgroup_ids {
            sys::bpf(Syscall::MapUpdateElem {
                map: &cgroups,
                key: &id.to_ne_bytes(),
                value: &1u32.to_ne_bytes(),
            })
            .map_err(syscall("BPF_MAP_UPDATE_ELEM"))?;
        }
        let counters = MapFd::create(MAP_TYPE_ARRAY, 4, COUNTERS_SIZE, 1, "keepalive_count")
            .map_err(syscall("BPF_MAP_CREATE"))?;
        let insns = insn::to_bytes(&iter_program(
            layout,
            policy,
            cgroups.as_fd().as_raw_fd(),
            counters.as_fd().as_raw_fd(),
            claims.raw_fd(),
            depth,
        ));
        let load = |log: Option<&mut [u8]>| {
            ProgFd::load(
                PROG_TYPE_TRACING,
                ATTACH_TRACE_ITER,
                layout.attach_btf_id,
                &insns,
                LICENSE,
                ITER_PROG_NAME,
                log,
            )
        };
        let prog = match load(None) {
            Ok(prog) => prog,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
                return Err(syscall("BPF_PROG_LOAD")(e));
            }
            Err(error) => {
                let mut log = vec![0; LOG_SIZE];
                match load(Some(&mut log)) {
                    Ok(prog) => prog,
                    Err(_) => {
                        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                        return Err(IterError::Verifier {
                            error,
                            log: String::from_utf8_lossy(&log[..end]).into_owned(),
                        });
                    }
                }
            }
        };
        let link = sys::bpf_fd(Syscall::IterLinkCreate { prog: &prog })
            .map_err(syscall("BPF_LINK_CREATE"))?;
        Ok(TcpIter {
            counters,
            _cgroups: cgroups,
            _prog: prog,
            link,
        })
    }

    /// Runs the program over every TCP socket of the calling thread's
    /// network namespace: `BPF_ITER_CREATE`, then read(2) to the end.
    pub(crate) fn run(&self) -> Result<(), IterError> {
        let fd = sys::bpf_fd(Syscall::IterCreate {
            link: self.link.as_fd(),
        })
        .map_err(syscall("BPF_ITER_CREATE"))?;
        let mut iter = File::from(fd);
        let mut buf = [0u8; 4096];
        loop {
            match iter.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // The kernel stops a read that saw a million objects
                // without output; the next read goes on.
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EAGAIN))
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(syscall("read(BPF iterator)")(e)),
            }
        }
    }

    /// What the runs so far did.
    pub(crate) fn counts(&self) -> Result<Counts, IterError> {
        let mut value = [0u8; COUNTERS_SIZE as usize];
        sys::bpf(Syscall::MapLookupElem {
            map: &self.counters,
            key: &0u32.to_ne_bytes(),
            value: &mut value,
        })
        .map_err(syscall("BPF_MAP_LOOKUP_ELEM"))?;
        Ok(Counts::from_bytes(&value))
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use keepalive::{Millis, ProbeCount, Seconds, UserTimeout};

    const LAYOUT: Layout = Layout {
        attach_btf_id: 4242,
        state: 18,
        cgroup: 680,
        kn: 256,
        id: 112,
    };

    fn policy() -> Policy {
        Policy {
            idle: Some(Seconds::new(11).unwrap()),
            interval: Some(Seconds::new(7).unwrap()),
            count: Some(ProbeCount::new(3).unwrap()),
            user_timeout: Some(UserTimeout::Millis(Millis::new(15_000).unwrap())),
            ..Policy::default()
        }
    }

    /// The layout of `Policy::to_bytes` this program relies on.
    #[test]
    fn policy_words_are_flags_idle_intvl_cnt_user_timeout() {
        assert_eq!(policy_words(&policy()), [0, 11, 7, 3, 15_000, 0]);
        let forced = Policy {
            force: true,
            user_timeout: Some(UserTimeout::Auto),
            ..Policy::default()
        };
        assert_eq!(
            policy_words(&forced),
            [FLAG_FORCE | FLAG_USER_TIMEOUT_AUTO, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn prologue_reads_the_socket_through_the_layout() {
        let p = iter_program(&LAYOUT, &policy(), 5, 6, 7, 1);
        let bytes: Vec<[u8; 8]> = p.iter().map(|i| i.to_bytes()).collect();
        // r1 = *(u64 *)(r1 + 8): ctx->sk_common
        assert_eq!(bytes[0], [0x79, 0x11, 8, 0, 0, 0, 0, 0]);
        // if r1 == 0 goto out
        assert_eq!(bytes[1][..2], [0x15, 0x01]);
        // call bpf_skc_to_tcp_sock
        assert_eq!(bytes[2], [0x85, 0, 0, 0, 137, 0, 0, 0]);
        // r6 = r0; r7 = *(u8 *)(r6 + 18): skc_state
        assert_eq!(bytes[4], [0xbf, 0x06, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[5], [0x71, 0x67, 18, 0, 0, 0, 0, 0]);
        // r1 = *(u64 *)(r6 + 680) (0x2a8): sk_cgrp_data.cgroup
        assert_eq!(bytes[8], [0x79, 0x61, 0xa8, 0x02, 0, 0, 0, 0]);
        // r1 = *(u64 *)(r1 + 256): kn; r1 = *(u64 *)(r1 + 112): id
        assert_eq!(bytes[10], [0x79, 0x11, 0, 1, 0, 0, 0, 0]);
        assert_eq!(bytes[12], [0x79, 0x11, 112, 0, 0, 0, 0, 0]);
        // The cgroup map's fd, 5, in a map load.
        assert_eq!(bytes[16], [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        // Ends with r0 = 0; exit.
        assert_eq!(bytes[bytes.len() - 2], [0xb7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[bytes.len() - 1], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    fn calls(p: &[Insn]) -> Vec<i32> {
        p.iter()
            .filter(|i| i.code() == 0x85)
            .map(|i| i.imm())
            .collect()
    }

    /// The immediates stored before each setsockopt, in order.
    fn set_values(p: &[Insn]) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        for (i, insn) in p.iter().enumerate() {
            if insn.code() == 0x85 && insn.imm() == Helper::SetSockopt as i32 {
                // st [r10 - 12], imm ... 7 instructions before the call;
                // r3 = optname 4 before.
                let name = p[i - 4].imm();
                let value = p[i - 7].imm();
                out.push((name, value));
            }
        }
        out
    }

    #[test]
    fn default_mode_checks_so_keepalive_first() {
        let p = iter_program(&LAYOUT, &policy(), 5, 6, 7, 1);
        assert_eq!(
            calls(&p),
            [
                Helper::SkcToTcpSock as i32,
                Helper::MapLookupElem as i32,
                Helper::SkStorageGet as i32,
                Helper::GetSockopt as i32,
                Helper::SetSockopt as i32,
                Helper::SetSockopt as i32,
                Helper::SetSockopt as i32,
                Helper::SetSockopt as i32,
                Helper::SetSockopt as i32,
                Helper::MapLookupElem as i32,
            ]
        );
        assert_eq!(
            set_values(&p),
            [
                (TCP_KEEPIDLE, 11),
                (TCP_KEEPINTVL, 7),
                (TCP_KEEPCNT, 3),
                (SO_KEEPALIVE, 1),
                (TCP_USER_TIMEOUT, 15_000)
            ]
        );
    }

    /// The claims of the sock_ops program: read (created) before anything
    /// else is decided, a deeper one yields, keepalive switched on by one
    /// of our programs is not the program's own, and switching it on here
    /// says so.
    #[test]
    fn reads_and_writes_the_claim_as_the_sock_ops_program_does() {
        for max_idle in [None, Some(Seconds::new(20).unwrap())] {
            let p = iter_program(
                &LAYOUT,
                &Policy {
                    max_idle,
                    ..policy()
                },
                5,
                6,
                7,
                2,
            );
            let [claims, _] = Insn::ld_map_fd(Reg::R1, 7);
            let at = p.iter().position(|i| *i == claims).expect("the claims map");
            let get = p
                .iter()
                .position(|i| *i == Insn::call(Helper::SkStorageGet))
                .unwrap();
            let first_sockopt = p
                .iter()
                .position(|i| i.code() == 0x85 && i.imm() == Helper::GetSockopt as i32)
                .unwrap();
            assert!(at < get && get < first_sockopt, "claimed first");
            // The socket (r6) is the helper's second argument.
            assert_eq!(p[at - 1], Insn::mov64_reg(Reg::R2, Reg::R6));
            // Depth 2: yields to a claim above 3, writes 3.
            assert!(p.contains(&Insn::jmp_imm(Cond::Gt, Reg::R1, 3, p[get + 4].off())));
            assert!(p.contains(&Insn::st(Size::W, Reg::R9, 0, 3)));
            // Keepalive on: the claim's flag is tested...
            let flags = Insn::ldx(Size::W, Reg::R1, Reg::R9, CLAIM_FLAGS);
            let tested = p.iter().position(|i| *i == flags).expect("flags read");
            assert_eq!(p[tested + 1].code(), 0x45, "jset");
            assert_eq!(p[tested + 1].imm(), CLAIM_BY_US);
            // ...and set after SO_KEEPALIVE = 1.
            let or = Insn::or64_imm(Reg::R1, CLAIM_BY_US);
            let marked = p.iter().position(|i| *i == or).expect("flag set");
            let keepalive_on = p
                .windows(5)
                .position(|w| {
                    w[0] == Insn::mov64_imm(Reg::R3, SO_KEEPALIVE)
                        && w[4] == Insn::call(Helper::SetSockopt)
                })
                .unwrap();
            assert!(marked > keepalive_on && marked > tested);
        }
    }

    #[test]
    fn force_sets_without_asking() {
        let p = iter_program(
            &LAYOUT,
            &Policy {
                force: true,
                ..Policy::default()
            },
            5,
            6,
            7,
            1,
        );
        assert!(!calls(&p).contains(&(Helper::GetSockopt as i32)));
        assert_eq!(set_values(&p), [(SO_KEEPALIVE, 1)], "only keepalive on");
    }

    #[test]
    fn auto_with_a_kernel_default_reads_the_values_back() {
        let p = iter_program(
            &LAYOUT,
            &Policy {
                force: true,
                idle: Some(Seconds::new(30).unwrap()),
                user_timeout: Some(UserTimeout::Auto),
                ..Policy::default()
            },
            5,
            6,
            7,
            1,
        );
        let gets = calls(&p)
            .iter()
            .filter(|c| **c == Helper::GetSockopt as i32)
            .count();
        assert_eq!(gets, 3, "idle, interval and count read back");
        let sets = calls(&p)
            .iter()
            .filter(|c| **c == Helper::SetSockopt as i32)
            .count();
        assert_eq!(sets, 3, "idle, keepalive, user timeout");
    }

    #[test]
    fn counters_decode() {
        let mut b = [0u8; 32];
        for (i, v) in [5u64, 2, 3, 1].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(
            Counts::from_bytes(&b),
            Counts {
                changed: 5,
                listening: 2,
                left_alone: 3,
                failed: 1
            }
        );
    }

    #[test]
    fn layout_of_this_kernel() {
        let btf = match Btf::vmlinux() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let layout = Layout::from_btf(&btf).unwrap();
        assert_eq!(
            btf.find(Kind::Func, "bpf_iter_tcp").unwrap(),
            layout.attach_btf_id
        );
        assert!(layout.cgroup > layout.state, "{layout:?}");
    }

    /// The kernel accepts the program in every mode, and runs it over the
    /// sockets of this namespace; with no cgroup to match it changes none.
    #[test]
    fn the_kernel_runs_it() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root");
            return;
        }
        let btf = match Btf::vmlinux() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let layout = Layout::from_btf(&btf).unwrap();
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let auto = Policy {
            idle: Some(Seconds::new(30).unwrap()),
            user_timeout: Some(UserTimeout::Auto),
            ..Policy::default()
        };
        let claims = Claims::create().unwrap();
        for policy in [
            policy(),
            Policy {
                force: true,
                ..policy()
            },
            Policy {
                max_idle: Some(Seconds::new(20).unwrap()),
                ..policy()
            },
            auto,
        ] {
            let iter = TcpIter::load(&layout, &policy, &[], &claims, 1).unwrap_or_else(|e| {
                panic!("{e}: {:?}", std::error::Error::source(&e));
            });
            iter.run().unwrap();
            iter.run().unwrap();
            assert_eq!(iter.counts().unwrap(), Counts::default());
        }
    }
}
