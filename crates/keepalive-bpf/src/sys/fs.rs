//! The filesystem calls std does not wrap, through rustix (safe wrappers,
//! no `unsafe` here): which filesystem a path or an open file is on, and
//! mounting bpffs.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::mount::MountFlags;

/// `statfs(path).f_type`: which filesystem `path` is on.
#[doc(alias = "statfs")]
pub(crate) fn statfs_type(path: &Path) -> io::Result<i64> {
    Ok(f_type(&rustix::fs::statfs(path)?))
}

/// `fstatfs(fd).f_type`: which filesystem the open file `fd` is on.
#[doc(alias = "fstatfs")]
pub(crate) fn fstatfs_type(fd: impl AsFd) -> io::Result<i64> {
    Ok(f_type(&rustix::fs::fstatfs(fd)?))
}

#[allow(
    clippy::unnecessary_cast,
    reason = "f_type is i64 or u32 depending on the target"
)]
fn f_type(st: &rustix::fs::StatFs) -> i64 {
    st.f_type as i64
}

/// `mount("bpf", target, "bpf", 0, "mode=0700")`: a new bpffs instance.
#[doc(alias = "mount")]
pub(crate) fn mount_bpffs(target: &Path) -> io::Result<()> {
    rustix::mount::mount("bpf", target, "bpf", MountFlags::empty(), c"mode=0700")?;
    Ok(())
}
