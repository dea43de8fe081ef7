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
//! What it is not for: a program that only wants keepalive on its own
//! sockets needs none of this; [`apply`](crate::apply) and
//! [`kernel_defaults`](crate::kernel_defaults) at the crate root are enough,
//! and need no privilege. Everything here changes the machine (or reads
//! what would) and most of it needs root.

mod atomic_file;
mod ld_so_preload;
mod netns;
mod sysctl;
mod sysctl_d;

pub use atomic_file::write_atomic;
pub use ld_so_preload::{InvalidEntry, LD_SO_PRELOAD, LdSoPreload};
pub use netns::{NETNS_RUN_DIR, NetNs};
pub use sysctl::{
    DefaultsChange, ProcStore, SetError, SysctlKey, SysctlStore, Written, set_kernel_defaults,
    set_kernel_defaults_with,
};
pub use sysctl_d::{DROPIN, PersistError, Persisted, Setting, boot_order, overrides, persist};
