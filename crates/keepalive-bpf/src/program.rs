//! The sock_ops program and the settings it reads from its map.
//!
//! The kernel runs a `BPF_PROG_TYPE_SOCK_OPS` program attached to a cgroup
//! at several points of the life of every TCP socket of that cgroup
//! (`tcp_call_bpf()` in include/net/tcp.h). This one acts on two of them,
//! `BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB` (connect() completed) and
//! `BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB` (a connection for a listener
//! completed its handshake, before accept()), and returns 1 (no effect) on
//! all the others. On those two it reads the settings from entry 0 of an
//! array map and calls `bpf_setsockopt()` as the program itself would call
//! setsockopt(2).
//!
//! With `--max-idle D` it also caps idle and interval at D, reading them
//! back with `bpf_getsockopt`. Every enforcement also has a cgroup/setsockopt
//! program ([`crate::setsockopt_program`]) reading the same map, which holds
//! the values against the program's own later setsockopt calls. Both
//! record, in a socket-local storage map shared by every enforcement
//! ([`crate::claim`]), the depth of the cgroup whose enforcement decides for
//! the socket, so that the most specific cgroup's settings win.

use keepalive::{KernelDefaults, Millis, ProbeCount, Seconds, Settings, UserTimeout};
use libc::{
    SO_KEEPALIVE, SOL_SOCKET, SOL_TCP, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_USER_TIMEOUT,
};

use crate::insn::{Asm, Cond, Helper, Insn, Reg, Size};

/// `BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB`: the socket's connect() completed.
pub const ACTIVE_ESTABLISHED_CB: i32 = 4;
/// `BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB`: a listener's connection completed
/// the handshake.
pub const PASSIVE_ESTABLISHED_CB: i32 = 5;

/// `flags` bit: set the values even when the program switched keepalive on
/// itself.
pub const FLAG_FORCE: u32 = 1 << 0;
/// `flags` bit: `TCP_USER_TIMEOUT = idle + intvl x cnt` from the socket's
/// effective values, computed in the kernel for each connection.
pub const FLAG_USER_TIMEOUT_AUTO: u32 = 1 << 1;

/// The size of the map's value, [`Policy::to_bytes`].
pub const VALUE_SIZE: usize = 24;
/// The size of the map's value before `max_idle` (keepalive 0.x): such a
/// map reads as a policy without it.
pub(crate) const LEGACY_VALUE_SIZE: usize = 20;

// Offsets of the fields in the map value (see `Policy`).
const OFF_FLAGS: i16 = 0;
const OFF_IDLE: i16 = 4;
const OFF_INTVL: i16 = 8;
const OFF_CNT: i16 = 12;
const OFF_USER_TIMEOUT: i16 = 16;
const OFF_MAX_IDLE: i16 = 20;

/// The offsets of the fields in the map value, for the setsockopt program.
pub(crate) mod field {
    pub(crate) const FLAGS: i16 = super::OFF_FLAGS;
    pub(crate) const IDLE: i16 = super::OFF_IDLE;
    pub(crate) const INTVL: i16 = super::OFF_INTVL;
    pub(crate) const CNT: i16 = super::OFF_CNT;
    pub(crate) const USER_TIMEOUT: i16 = super::OFF_USER_TIMEOUT;
    pub(crate) const MAX_IDLE: i16 = super::OFF_MAX_IDLE;
}

/// `struct bpf_sock_ops`'s `sk` (a `struct bpf_sock *`, NULL when not a
/// full socket).
const SOCK_OPS_SK: i16 = 184;

// Stack slots (below the frame pointer, r10).
const STACK_KEY: i16 = -4;
const STACK_VAL: i16 = -8;
const STACK_INTVL: i16 = -12;
const STACK_CNT: i16 = -16;
/// 1 once this program set the values (then `TCP_USER_TIMEOUT` follows).
const STACK_APPLIED: i16 = -20;

/// What the program enforces on the connections of a cgroup.
///
/// It lives in the program's array map as
/// `struct { u32 flags; u32 idle; u32 intvl; u32 cnt; u32 user_timeout_ms; }`
/// in host byte order, where 0 leaves that option to the kernel default
/// (the program then does not call setsockopt for it). `auto` sets
/// [`FLAG_USER_TIMEOUT_AUTO`] in `flags`, and `user_timeout_ms` too when
/// idle, interval and count are all given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    /// `TCP_KEEPIDLE`.
    pub idle: Option<Seconds>,
    /// `TCP_KEEPINTVL`.
    pub interval: Option<Seconds>,
    /// `TCP_KEEPCNT`.
    pub count: Option<ProbeCount>,
    /// `TCP_USER_TIMEOUT`; `Auto` is computed for each connection from the
    /// values it ends up with (kernel defaults of its network namespace
    /// for the ones left unset).
    pub user_timeout: Option<UserTimeout>,
    /// Also on connections whose program switched keepalive on itself
    /// (by default those are left alone), and held against the program's
    /// later setsockopt calls.
    pub force: bool,
    /// `--max-idle`: every connection has keepalive on, with idle and
    /// interval at most this, whatever its program sets before or after
    /// connecting (shorter values stand).
    pub max_idle: Option<Seconds>,
}

/// How a [`Policy`] treats what a program sets itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A connection whose program switched keepalive on keeps its values.
    Default,
    /// Our values, on every connection, held against the program.
    Force,
    /// Keepalive on with idle and interval at most this, whatever the
    /// program does; shorter values the program chooses stand.
    MaxIdle(Seconds),
}

/// A map value that no [`Policy`] encodes to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the settings map holds an invalid {field} ({value})")]
pub struct InvalidValue {
    /// The field's name.
    pub field: &'static str,
    /// Its value.
    pub value: u32,
}

impl Policy {
    /// `settings` enforced, with or without `force`. A `Settings` with
    /// keepalive off has no policy: enforcing means keepalive on.
    pub const fn new(settings: &Settings, force: bool) -> Policy {
        Policy {
            idle: settings.idle,
            interval: settings.interval,
            count: settings.count,
            user_timeout: settings.user_timeout,
            force,
            max_idle: None,
        }
    }

    /// `settings` enforced with idle and interval at most `max_idle`,
    /// whatever the program does (`--max-idle`).
    pub const fn with_max_idle(settings: &Settings, max_idle: Seconds) -> Policy {
        Policy {
            max_idle: Some(max_idle),
            ..Policy::new(settings, false)
        }
    }

    /// How it treats what a program sets itself. A policy with both
    /// `force` and `max_idle` (which the CLI does not make) is `Force`,
    /// capped.
    pub const fn mode(&self) -> Mode {
        match (self.force, self.max_idle) {
            (true, _) => Mode::Force,
            (false, Some(d)) => Mode::MaxIdle(d),
            (false, None) => Mode::Default,
        }
    }

    /// The settings this policy sets: keepalive on, its values.
    pub const fn settings(&self) -> Settings {
        Settings {
            idle: self.idle,
            interval: self.interval,
            count: self.count,
            user_timeout: self.user_timeout,
            ..Settings::new()
        }
    }

    /// The map value.
    pub fn to_bytes(&self) -> [u8; VALUE_SIZE] {
        let mut flags = 0;
        if self.force {
            flags |= FLAG_FORCE;
        }
        let user_timeout = match self.user_timeout {
            None => 0,
            Some(UserTimeout::Millis(ms)) => ms.get(),
            Some(UserTimeout::Auto) => {
                flags |= FLAG_USER_TIMEOUT_AUTO;
                self.auto_millis().map_or(0, Millis::get)
            }
        };
        let fields = [
            flags,
            self.idle.map_or(0, |s| u32::from(s.get())),
            self.interval.map_or(0, |s| u32::from(s.get())),
            self.count.map_or(0, |c| u32::from(c.get())),
            user_timeout,
            self.max_idle.map_or(0, |s| u32::from(s.get())),
        ];
        let mut out = [0; VALUE_SIZE];
        for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field.to_ne_bytes());
        }
        out
    }

    /// `auto` computed here when every value is given (no kernel default
    /// enters it): the program then sets it as a fixed value, which spares
    /// it three `bpf_getsockopt` calls per connection.
    fn auto_millis(&self) -> Option<Millis> {
        if self.idle.is_none() || self.interval.is_none() || self.count.is_none() {
            return None;
        }
        let auto = Settings {
            user_timeout: Some(UserTimeout::Auto),
            ..self.settings()
        };
        auto.user_timeout_ms(KernelDefaults::BUILTIN)
    }

    /// Decodes a map value.
    pub fn from_bytes(bytes: &[u8; VALUE_SIZE]) -> Result<Policy, InvalidValue> {
        let field = |i: usize| {
            let mut b = [0; 4];
            b.copy_from_slice(&bytes[i * 4..i * 4 + 4]);
            u32::from_ne_bytes(b)
        };
        let [flags, idle, intvl, cnt, user_timeout, max_idle] = [0, 1, 2, 3, 4, 5].map(field);
        let invalid = |field, value| InvalidValue { field, value };
        if flags & !(FLAG_FORCE | FLAG_USER_TIMEOUT_AUTO) != 0 {
            return Err(invalid("flags", flags));
        }
        let seconds = |name, v: u32| match v {
            0 => Ok(None),
            v => Seconds::new(v.into())
                .map(Some)
                .map_err(|_| invalid(name, v)),
        };
        let count = match cnt {
            0 => None,
            v => Some(ProbeCount::new(v.into()).map_err(|_| invalid("count", v))?),
        };
        let mut policy = Policy {
            idle: seconds("idle", idle)?,
            interval: seconds("interval", intvl)?,
            count,
            user_timeout: None,
            force: flags & FLAG_FORCE != 0,
            max_idle: seconds("max idle", max_idle)?,
        };
        policy.user_timeout = match (flags & FLAG_USER_TIMEOUT_AUTO != 0, user_timeout) {
            (false, 0) => None,
            (false, v) => Some(UserTimeout::Millis(
                Millis::new(v.into()).map_err(|_| invalid("user timeout", v))?,
            )),
            // Computed in the kernel, or here: then it must be what we write.
            (true, v) if v == policy.auto_millis().map_or(0, Millis::get) => {
                Some(UserTimeout::Auto)
            }
            (true, v) => return Err(invalid("user timeout", v)),
        };
        Ok(policy)
    }
}

/// Emits `TCP_USER_TIMEOUT=auto` from the socket's values now, the one
/// in-kernel computation of idle + interval x count (the sock_ops program
/// and the `--existing` iterator both use it): reads `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT` into the stack slots `[val, intvl, cnt]`
/// (r6 holds the socket or the context), then stores at `val`
/// `min((idle + intvl x cnt) x 1000, INT_MAX)`, computed in 64 bits: at
/// most (32767 + 32767 x 127) x 1000, far below overflow. `capped` is a
/// label of the program's own, placed here.
pub(crate) fn auto_user_timeout(asm: &mut Asm, [val, intvl, cnt]: [i16; 3], capped: &'static str) {
    for (name, slot) in [
        (TCP_KEEPIDLE, val),
        (TCP_KEEPINTVL, intvl),
        (TCP_KEEPCNT, cnt),
    ] {
        asm.push(Insn::st(Size::W, Reg::R10, slot, 0));
        sockopt(asm, Helper::GetSockopt, SOL_TCP, name, slot);
    }
    asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R10, intvl))
        .push(Insn::ldx(Size::W, Reg::R2, Reg::R10, cnt))
        .push(Insn::mul64_reg(Reg::R1, Reg::R2))
        .push(Insn::ldx(Size::W, Reg::R2, Reg::R10, val))
        .push(Insn::add64_reg(Reg::R1, Reg::R2))
        .push(Insn::mul64_imm(Reg::R1, 1000))
        .jump_if_imm(Cond::Le, Reg::R1, i32::MAX, capped)
        .push(Insn::mov64_imm(Reg::R1, i32::MAX))
        .label(capped)
        .push(Insn::stx(Size::W, Reg::R10, val, Reg::R1));
}

/// Emits `bpf_{get,set}sockopt(ctx, level, name, r10 + slot, 4)`; r6 holds
/// the context (or the socket). r0 gets the helper's result, r1-r5 are
/// clobbered.
pub(crate) fn sockopt(asm: &mut Asm, helper: Helper, level: i32, name: i32, slot: i16) {
    asm.push(Insn::mov64_reg(Reg::R1, Reg::R6))
        .push(Insn::mov64_imm(Reg::R2, level))
        .push(Insn::mov64_imm(Reg::R3, name))
        .push(Insn::mov64_reg(Reg::R4, Reg::R10))
        .push(Insn::add64_imm(Reg::R4, slot.into()))
        .push(Insn::mov64_imm(Reg::R5, 4))
        .push(Insn::call(helper));
}

/// Emits: when the map value's field at `off` is not 0, set it as the TCP
/// option `name`.
fn set_tcp_option_if_given(asm: &mut Asm, off: i16, name: i32, skip: &'static str) {
    asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R7, off))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, skip)
        .push(Insn::stx(Size::W, Reg::R10, STACK_VAL, Reg::R1));
    sockopt(asm, Helper::SetSockopt, SOL_TCP, name, STACK_VAL);
    asm.label(skip);
}

/// Emits the cap of `--max-idle`: reads the option `name` back; when it
/// is above the map's `max_idle` (or unreadable, as before Linux 6.1), sets
/// it to `max_idle`.
fn cap_at_max_idle(asm: &mut Asm, name: i32, set: &'static str, done: &'static str) {
    asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, 0));
    sockopt(asm, Helper::GetSockopt, SOL_TCP, name, STACK_VAL);
    asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_VAL))
        .push(Insn::ldx(Size::W, Reg::R2, Reg::R7, OFF_MAX_IDLE))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, set)
        .jump_if_reg(Cond::Le, Reg::R1, Reg::R2, done)
        .label(set)
        .push(Insn::stx(Size::W, Reg::R10, STACK_VAL, Reg::R2));
    sockopt(asm, Helper::SetSockopt, SOL_TCP, name, STACK_VAL);
    asm.label(done);
}

/// The sock_ops program, reading its settings from the array map whose
/// file descriptor is `map_fd` (key 0, value [`Policy::to_bytes`]), for a
/// cgroup at `depth` below the cgroup v2 root, claiming sockets in the
/// socket storage map `claims_fd` (the claims shared by all enforcements).
///
/// Registers: r6 = the context (`struct bpf_sock_ops *`), r7 = the map
/// value, r8 = its flags, r9 = the socket's claim (or 0). In order, for an
/// established connection:
///
/// 1. the claim: when a deeper cgroup's enforcement claimed the socket,
///    stop here (it decides); else claim it;
/// 2. unless `FLAG_FORCE`, `bpf_getsockopt(SO_KEEPALIVE)`; when the
///    program already switched keepalive on itself (not one of our
///    programs: the claim says), go to 6 (an error reads as off: before
///    Linux 6.1 the helper cannot read `SO_KEEPALIVE`, and the connection
///    is then treated as `--force` would);
/// 3. `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT` for the values given;
/// 4. `SO_KEEPALIVE = 1`, which starts the timer with those values; the
///    claim records that we switched it on;
/// 5. (after 6) `TCP_USER_TIMEOUT` when the map holds one (a fixed value,
///    or `auto` computed by [`Policy::to_bytes`] when every value is
///    given); else, with `FLAG_USER_TIMEOUT_AUTO`, `(idle + intvl x cnt)
///    x 1000` from the values read back with `bpf_getsockopt` (the kernel
///    defaults of the socket's network namespace for the ones not given),
///    capped at `i32::MAX`;
/// 6. with `max_idle`, `TCP_KEEPIDLE` and `TCP_KEEPINTVL` read back and
///    set to `max_idle` when above it (or unreadable: before Linux 6.1
///    bpf_getsockopt cannot read them, and they are then set to
///    `max_idle`), keepalive being on.
///
/// A failing setsockopt does not stop the others. The program always
/// returns 1: it never changes the outcome of any other callback.
pub fn sock_ops_program(map_fd: i32, claims_fd: i32, depth: u32) -> Vec<Insn> {
    let mut asm = Asm::new();
    asm.push(Insn::mov64_reg(Reg::R6, Reg::R1))
        // r2 = ctx->op
        .push(Insn::ldx(Size::W, Reg::R2, Reg::R6, 0))
        .jump_if_imm(Cond::Eq, Reg::R2, ACTIVE_ESTABLISHED_CB, "established")
        .jump_if_imm(Cond::Ne, Reg::R2, PASSIVE_ESTABLISHED_CB, "done")
        .label("established")
        .push(Insn::st(Size::W, Reg::R10, STACK_APPLIED, 0))
        // r0 = bpf_map_lookup_elem(map, &(u32){0})
        .push(Insn::st(Size::W, Reg::R10, STACK_KEY, 0))
        .push(Insn::mov64_reg(Reg::R2, Reg::R10))
        .push(Insn::add64_imm(Reg::R2, STACK_KEY.into()))
        .extend(Insn::ld_map_fd(Reg::R1, map_fd))
        .push(Insn::call(Helper::MapLookupElem))
        .jump_if_imm(Cond::Eq, Reg::R0, 0, "done")
        .push(Insn::mov64_reg(Reg::R7, Reg::R0))
        .push(Insn::ldx(Size::W, Reg::R8, Reg::R7, OFF_FLAGS))
        // The claim: r2 = ctx->sk (NULL when not a full socket).
        .push(Insn::mov64_imm(Reg::R9, 0))
        .push(Insn::ldx(Size::DW, Reg::R2, Reg::R6, SOCK_OPS_SK))
        .jump_if_imm(Cond::Eq, Reg::R2, 0, "claimed");
    crate::claim::emit(&mut asm, claims_fd, depth, "done");
    asm.label("claimed")
        .jump_if_imm(Cond::Set, Reg::R8, FLAG_FORCE as i32, "apply")
        // Leave the values alone when its program set SO_KEEPALIVE.
        .push(Insn::st(Size::W, Reg::R10, STACK_VAL, 0));
    sockopt(
        &mut asm,
        Helper::GetSockopt,
        SOL_SOCKET,
        SO_KEEPALIVE,
        STACK_VAL,
    );
    asm.push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_VAL))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "apply")
        // On: the program's, unless one of our programs switched it on.
        .jump_if_imm(Cond::Eq, Reg::R9, 0, "cap")
        .push(Insn::ldx(
            Size::W,
            Reg::R1,
            Reg::R9,
            crate::claim::CLAIM_FLAGS,
        ))
        .jump_if_imm(Cond::Set, Reg::R1, crate::claim::CLAIM_BY_US, "apply")
        .jump("cap")
        .label("apply")
        .push(Insn::st(Size::W, Reg::R10, STACK_APPLIED, 1));
    set_tcp_option_if_given(&mut asm, OFF_IDLE, TCP_KEEPIDLE, "idle_done");
    set_tcp_option_if_given(&mut asm, OFF_INTVL, TCP_KEEPINTVL, "intvl_done");
    set_tcp_option_if_given(&mut asm, OFF_CNT, TCP_KEEPCNT, "cnt_done");
    asm.push(Insn::st(Size::W, Reg::R10, STACK_VAL, 1));
    sockopt(
        &mut asm,
        Helper::SetSockopt,
        SOL_SOCKET,
        SO_KEEPALIVE,
        STACK_VAL,
    );
    crate::claim::emit_by_us(&mut asm, "marked");
    // --max-idle: cap idle and interval, whoever set them.
    asm.label("cap")
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R7, OFF_MAX_IDLE))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "capped");
    cap_at_max_idle(&mut asm, TCP_KEEPIDLE, "idle_cap", "idle_capped");
    cap_at_max_idle(&mut asm, TCP_KEEPINTVL, "intvl_cap", "intvl_capped");
    asm.label("capped")
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R10, STACK_APPLIED))
        .jump_if_imm(Cond::Eq, Reg::R1, 0, "done")
        // TCP_USER_TIMEOUT: a fixed value, auto, or nothing.
        .push(Insn::ldx(Size::W, Reg::R1, Reg::R7, OFF_USER_TIMEOUT))
        .jump_if_imm(Cond::Ne, Reg::R1, 0, "user_timeout")
        .jump_if_imm(Cond::Set, Reg::R8, FLAG_USER_TIMEOUT_AUTO as i32, "auto")
        .jump("done")
        .label("auto");
    auto_user_timeout(
        &mut asm,
        [STACK_VAL, STACK_INTVL, STACK_CNT],
        "user_timeout",
    );
    sockopt(
        &mut asm,
        Helper::SetSockopt,
        SOL_TCP,
        TCP_USER_TIMEOUT,
        STACK_VAL,
    );
    asm.label("done")
        .push(Insn::mov64_imm(Reg::R0, 1))
        .push(Insn::exit());
    asm.finish()
        .expect("the program's labels are placed once and only jumped to forwards")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_a_policy() {
        let p = policy();
        assert_eq!(Policy::new(&p.settings(), p.force), p);
        assert!(p.settings().enabled);
    }

    fn policy() -> Policy {
        Policy {
            idle: Some(Seconds::new(11).unwrap()),
            interval: Some(Seconds::new(7).unwrap()),
            count: Some(ProbeCount::new(3).unwrap()),
            user_timeout: Some(UserTimeout::Millis(Millis::new(15_000).unwrap())),
            force: false,
            max_idle: None,
        }
    }

    #[test]
    fn policy_layout() {
        assert_eq!(words(&policy()), [0, 11, 7, 3, 15_000, 0]);
    }

    #[test]
    fn unset_values_are_zero() {
        assert_eq!(Policy::default().to_bytes(), [0; VALUE_SIZE]);
    }

    fn words(p: &Policy) -> Vec<u32> {
        p.to_bytes()
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn auto_with_a_kernel_default_is_left_to_the_kernel() {
        let p = Policy {
            force: true,
            idle: Some(Seconds::new(11).unwrap()),
            user_timeout: Some(UserTimeout::Auto),
            ..Policy::default()
        };
        assert_eq!(
            words(&p),
            [FLAG_FORCE | FLAG_USER_TIMEOUT_AUTO, 11, 0, 0, 0, 0]
        );
    }

    #[test]
    fn auto_with_every_value_given_is_computed_here() {
        let p = Policy {
            user_timeout: Some(UserTimeout::Auto),
            ..policy()
        };
        // 11 + 7 x 3 = 32 s.
        assert_eq!(words(&p), [FLAG_USER_TIMEOUT_AUTO, 11, 7, 3, 32_000, 0]);
        let max = Policy {
            idle: Some(Seconds::MAX),
            interval: Some(Seconds::MAX),
            count: Some(ProbeCount::MAX),
            ..p
        };
        assert_eq!(words(&max)[4], i32::MAX as u32);
    }

    #[test]
    fn policy_round_trips() {
        for p in [
            policy(),
            Policy::default(),
            Policy {
                force: true,
                user_timeout: Some(UserTimeout::Auto),
                ..policy()
            },
            Policy {
                user_timeout: Some(UserTimeout::Auto),
                count: None,
                ..policy()
            },
            Policy {
                max_idle: Some(Seconds::new(10).unwrap()),
                ..policy()
            },
        ] {
            assert_eq!(Policy::from_bytes(&p.to_bytes()), Ok(p));
        }
    }

    #[test]
    fn max_idle_is_the_sixth_word() {
        let p = Policy::with_max_idle(&Settings::new(), Seconds::new(10).unwrap());
        assert_eq!(words(&p), [0, 0, 0, 0, 0, 10]);
        assert_eq!(p.mode(), Mode::MaxIdle(Seconds::new(10).unwrap()));
        assert_eq!(Policy::default().mode(), Mode::Default);
        assert_eq!(Policy::new(&Settings::new(), true).mode(), Mode::Force);
        let mut bytes = p.to_bytes();
        bytes[20..].copy_from_slice(&40_000u32.to_ne_bytes());
        assert_eq!(
            Policy::from_bytes(&bytes),
            Err(InvalidValue {
                field: "max idle",
                value: 40_000
            })
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut bytes = policy().to_bytes();
        bytes[4..8].copy_from_slice(&40_000u32.to_ne_bytes());
        assert_eq!(
            Policy::from_bytes(&bytes),
            Err(InvalidValue {
                field: "idle",
                value: 40_000
            })
        );
        let mut bytes = policy().to_bytes();
        bytes[..4].copy_from_slice(&0x80u32.to_ne_bytes());
        assert_eq!(Policy::from_bytes(&bytes).unwrap_err().field, "flags");
        // auto with a value that is not idle + interval x count.
        let mut bytes = policy().to_bytes();
        bytes[..4].copy_from_slice(&FLAG_USER_TIMEOUT_AUTO.to_ne_bytes());
        assert_eq!(
            Policy::from_bytes(&bytes),
            Err(InvalidValue {
                field: "user timeout",
                value: 15_000
            })
        );
    }

    #[test]
    fn program_starts_and_ends_as_sock_ops_requires() {
        let p = sock_ops_program(7, 8, 1);
        assert_eq!(p[0], Insn::mov64_reg(Reg::R6, Reg::R1));
        assert_eq!(
            &p[p.len() - 2..],
            [Insn::mov64_imm(Reg::R0, 1), Insn::exit()]
        );
        // 175 instructions, 24 of them for `auto` in the kernel, 32 for
        // --max-idle, 22 for the claim; the verifier's limit is 4096 (1
        // million for privileged loaders).
        assert_eq!(p.len(), 175);
    }

    #[test]
    fn program_loads_the_map_given() {
        let p = sock_ops_program(0x2a, 0x2b, 1);
        let [lo, hi] = Insn::ld_map_fd(Reg::R1, 0x2a);
        let at = p.iter().position(|i| *i == lo).expect("a map load");
        assert_eq!(p[at + 1], hi);
        // The settings map and the claims map.
        assert_eq!(p.iter().filter(|i| i.code() == lo.code()).count(), 2);
        let [claims, _] = Insn::ld_map_fd(Reg::R1, 0x2b);
        assert!(p.contains(&claims));
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let p = sock_ops_program(3, 4, 1);
        for (at, insn) in p.iter().enumerate() {
            let class = insn.code() & 0x07;
            let op = insn.code() & 0xf0;
            if class == 0x05 && op != 0x80 && op != 0x90 {
                let target = at as i64 + 1 + i64::from(insn.off());
                assert!(
                    (0..p.len() as i64).contains(&target) && insn.off() >= 0,
                    "jump at {at} to {target}"
                );
            }
        }
    }

    #[test]
    fn program_sets_every_option() {
        // Each setsockopt call is preceded by `mov r3, optname`.
        let p = sock_ops_program(3, 4, 1);
        let mut set = Vec::new();
        for w in p.windows(5) {
            if w[4] == Insn::call(Helper::SetSockopt) {
                set.push(w[0].imm());
            }
        }
        // (`mov r3, name` comes 4 instructions before the call: r4 = r10,
        // r4 += slot and r5 = 4 sit between.)
        // The values, keepalive on, the caps of --max-idle, the user
        // timeout.
        assert_eq!(
            set,
            [
                TCP_KEEPIDLE,
                TCP_KEEPINTVL,
                TCP_KEEPCNT,
                SO_KEEPALIVE,
                TCP_KEEPIDLE,
                TCP_KEEPINTVL,
                TCP_USER_TIMEOUT
            ]
        );
    }
}
