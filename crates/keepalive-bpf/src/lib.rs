//! In-kernel keepalive enforcement: a cgroup BPF sock_ops program,
//! generated in Rust and loaded with bpf(2), that switches TCP keepalive on
//! (with the values given) for every TCP connection a process of a cgroup
//! v2 establishes, on the connecting and on the accepting side. It reaches
//! what `LD_PRELOAD` cannot: statically linked binaries, Go programs,
//! setuid programs. It is Linux's missing `always_keepalive`, per service.
//!
//! - [`Insn`], [`Asm`]: a small eBPF instruction encoder with labelled
//!   jumps; building needs no clang, no nightly, no prebuilt object.
//! - [`sock_ops_program`]: the program; its settings ([`Policy`]) live in
//!   an array map, so they change without a reload.
//!   [`setsockopt_program`]: its companion on the cgroup/setsockopt hook,
//!   which holds `--force` and `--max-idle` against the program's own
//!   later setsockopt calls. Both claim each socket in a socket storage map
//!   shared by every enforcement ([`CLAIMS_PIN`]), so that with nested
//!   enforcements the most specific cgroup's settings win.
//! - [`enforce`], [`status`], [`remove`]: attach to a cgroup with the link
//!   and map pinned in bpffs (`/sys/fs/bpf/keepalive/`), so that it outlives
//!   the command; list; detach. [`enforce_for`] and [`remove_for`] also
//!   record and find what an enforcement was made for ([`Origin`]: a path,
//!   a systemd unit, persisted or not), so that the pins of a cgroup that
//!   is gone are listed and removed by its path or unit. Finding a unit's
//!   cgroup and persisting through systemd is `keepalive::host::systemd`'s
//!   business.
//! - [`RunScope`]: a new cgroup of its own for a command, enforced while it
//!   runs (`keepalive run --enforce`); starting the command in it is the
//!   caller's business.
//!
//! By default a connection whose program switched keepalive on itself is
//! left alone, and a program that sets its own values after the connection
//! is established keeps them. [`Policy::force`] sets ours on every
//! connection and holds them; [`Policy::max_idle`] keeps keepalive on with
//! idle and interval at most that, whatever the program does ([`Mode`]).
//! Connections established before the program was attached (or before the
//! settings changed) keep what they had.
//!
//! What it won't do: anything without root (CAP_BPF and CAP_NET_ADMIN, and
//! CAP_SYS_ADMIN for bpffs and cgroups), cgroup v1, or kernels older than
//! 5.9 (bpf_setsockopt with the keepalive options) and 5.7 (BPF links; the
//! cgroup/setsockopt hook and socket storage are 5.3). On kernels before
//! 6.1, bpf_getsockopt cannot read SO_KEEPALIVE and the default mode acts
//! like `force` at establishment; nor can it read TCP_KEEPIDLE and
//! TCP_KEEPINTVL, and `max_idle` then sets both to its value at
//! establishment (a program's shorter values set after connecting, as
//! Go's, still stand).

mod btf;
mod cgroup;
mod claim;
mod enforce;
mod error;
mod existing;
mod insn;
mod iter;
mod object;
mod origin;
mod pin;
mod program;
mod scope;
mod setsockopt;
#[allow(unsafe_code, reason = "bpf(2), which no safe crate wraps")]
mod sys;

pub use btf::{Btf, BtfError, Field, Kind, Member, TypeId, VMLINUX_BTF};
pub use cgroup::{CGROUP2_SUPER_MAGIC, Cgroup, Hierarchy};
pub use claim::{CLAIM_BY_US, CLAIMS_NAME, CLAIMS_PIN, claim_btf};
pub use enforce::{
    Attachment, Change, Enforced, Enforcement, Removed, attached_programs,
    attached_setsockopt_programs, check_privileges, enforce, enforce_for, remove, remove_for,
    status, verify_program,
};
pub use error::{Error, Result};
pub use existing::{Existing, ExistingError, Via, Way, apply_existing};
pub use insn::{Asm, AsmError, Cond, Helper, Insn, PSEUDO_MAP_FD, Reg, Size, to_bytes};
pub use iter::IterError;
pub use object::{MAP_NAME, PROG_NAME, SETSOCKOPT_PROG_NAME};
pub use origin::Origin;
pub use pin::{BPF_FS_MAGIC, BPFFS, BpfFsMount, PIN_ROOT};
pub use program::{
    ACTIVE_ESTABLISHED_CB, FLAG_FORCE, FLAG_USER_TIMEOUT_AUTO, InvalidValue, Mode,
    PASSIVE_ESTABLISHED_CB, Policy, VALUE_SIZE, sock_ops_program,
};
pub use scope::{Finished, RunScope};
pub use setsockopt::setsockopt_program;
