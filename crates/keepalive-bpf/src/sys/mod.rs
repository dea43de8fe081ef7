//! The crate's system calls, and its only unsafe code: bpf(2) ([`bpf()`],
//! which has no safe wrapper anywhere, so it is built here), and the few
//! filesystem calls std does not wrap ([`fs`], through rustix).
//!
//! Processes, signals and exit statuses are none of this crate's business:
//! `keepalive run --enforce` starts its command itself, in the cgroup that
//! [`RunScope`](crate::RunScope) made.

mod bpf;
#[cfg(test)]
mod fake;
mod fs;

pub(crate) use bpf::{MapBtf, MapFd, Object, ProgFd, Syscall, bpf, bpf_fd};
#[cfg(test)]
pub(crate) use fake::with_fake;
pub(crate) use fs::{fstatfs_type, mount_bpffs, statfs_type};
