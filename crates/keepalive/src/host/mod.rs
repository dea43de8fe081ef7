//! Changing a host, for the tools that administer one (the `keepalive`
//! command): the kernel defaults (`net.ipv4.tcp_keepalive_*`, now and at
//! boot through `/etc/sysctl.d`), `/etc/ld.so.preload`, and the network
//! namespaces those sysctls live in.
//!
//! - [`set_kernel_defaults`] writes the three sysctls all or nothing;
//!   [`persist`] writes them to the sysctl.d drop-in [`DROPIN`] and
//!   reports the files that override it at boot ([`overrides`],
//!   [`boot_order`]).
//! - [`LdSoPreload`] edits the text of [`LD_SO_PRELOAD`], and
//!   [`write_atomic`] replaces a file so readers never see half of it.
//! - [`NetNs`] opens a network namespace and runs code inside it.
//!
//! And what `keepalive doctor` and `keepalive metrics` report, read from the
//! calling thread's network namespace (wrap the calls in [`NetNs::run`] for
//! another one), with a `*_in(root)` twin reading under a root:
//!
//! - what cuts idle connections: [`conntrack_established_timeout`],
//!   [`ipvs_timeouts`], and the well-known [`PRESETS`] ([`preset`]);
//! - what a connection with unacknowledged data does: [`retransmission`]
//!   (`tcp_retries2`, [`retransmission_timeout`]);
//! - the kernel's counters: [`tcp_ext_counters`], [`netstat`] for all of them;
//! - what is in place: [`global_preload`] and the sysctls set at boot,
//!   [`persisted`].
//!
//! And systemd, for `keepalive enforce --unit`: a unit's cgroup
//! ([`Systemctl::show`]), and the drop-in or our unit that enforces again
//! at every start of a unit ([`persist_unit`], [`unpersist_unit`],
//! [`persisted_units`]).
//!
//! What it is not for: a program that only wants keepalive on its own
//! sockets needs none of this; [`apply`](crate::apply) and
//! [`kernel_defaults`](crate::kernel_defaults) at the crate root are enough,
//! and need no privilege. Everything here changes the machine (or reads
//! what would) and most of it needs root.

mod atomic_file;
mod global_preload;
mod idle_timeouts;
mod ld_so_preload;
mod netns;
mod netstat;
mod persisted;
mod retransmission;
mod sysctl;
mod sysctl_d;
mod systemd;

pub use atomic_file::write_atomic;
pub use global_preload::{GlobalPreload, LIBRARY_FILE_NAME, global_preload, global_preload_in};
pub use idle_timeouts::{
    CONNTRACK_ESTABLISHED, CONNTRACK_TCP_LOOSE, IPVS_PROC, IPVSADM, IpvsTimeouts, PRESETS, Preset,
    TimeoutSource, conntrack_established_timeout, conntrack_established_timeout_in,
    conntrack_tcp_loose, conntrack_tcp_loose_in, ipvs_timeouts, ipvs_timeouts_in,
    parse_ipvsadm_timeout, preset,
};
pub use ld_so_preload::{InvalidEntry, LD_SO_PRELOAD, LdSoPreload};
pub use netns::{NETNS_RUN_DIR, NetNs};
pub use netstat::{
    NETSTAT, Netstat, NetstatError, NetstatErrorKind, TcpExtCounters, netstat, netstat_in,
    parse_netstat, tcp_ext_counters, tcp_ext_counters_in,
};
pub use persisted::{Conflict, PersistedState, persisted, persisted_in};
pub use retransmission::{
    Retransmission, TCP_RETRIES2, TCP_RTO_MAX, TCP_RTO_MAX_MS, TCP_RTO_MIN, retransmission,
    retransmission_in, retransmission_timeout,
};
pub use sysctl::{
    DefaultsChange, ProcStore, SetError, SysctlKey, SysctlStore, Written, set_kernel_defaults,
    set_kernel_defaults_with,
};
pub use sysctl_d::{DROPIN, PersistError, Persisted, Setting, boot_order, overrides, persist};
pub use systemd::{
    PersistPaths, PersistUnitError, SLICE_TEMPLATE, SLICE_TEMPLATE_TEXT, SYSTEM_UNIT_DIR,
    Systemctl, SystemctlError, UNIT_DROPIN, UnitKind, UnitNameError, UnitPersisted, UnitState,
    VENDOR_UNIT_DIRS, command_line, dropin_text, persist_unit, persisted_units, slice_instance,
    unit_is_persisted, unit_kind, unpersist_unit,
};
