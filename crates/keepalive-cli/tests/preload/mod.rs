//! The preload contract (DESIGN.md, "The preload contract"), checked with
//! the C program `tests/c/probe.c` and judged by what the kernel reports:
//! getsockopt in the program, and the setsockopt calls strace sees.

use std::ffi::OsStr;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;

use crate::util::{
    COUNT, IDLE, INTERVAL, Keepalive, Output, Record, SETTINGS, TIMEOUT, bare, commands,
    configured, ctor_lib, inherit_fd, is_root, kernel_defaults, ld_preload, nodelay_lib, preload,
    preloaded, probe, run_ok, set_int_option, skip, spawn, strace_setsockopt, target_tempdir, tool,
    wait,
};

mod chain;
mod debug;
mod kinds;
mod values;

/// The variables that set a socket option.
const TUNABLES: [&str; 4] = ["KEEPCNT", "KEEPIDLE", "KEEPINTVL", "TCP_USER_TIMEOUT"];

/// The `socket` lines of a probe run, each checked to be a created socket.
fn sockets(out: &Output) -> Vec<Record> {
    let found: Vec<Record> = out
        .records()
        .into_iter()
        .filter(|r| r.what == "socket")
        .collect();
    for r in &found {
        assert!(r.get("fd") >= 0, "socket() failed: `{}`\n{out}", r.line);
    }
    found
}

/// The setsockopt calls the preload should make for [`SETTINGS`] on `fd`,
/// in the order of the original libkeepalive.
fn expected_calls(fd: i64) -> Vec<String> {
    [
        "SO_KEEPALIVE=1".to_owned(),
        format!("TCP_KEEPCNT={COUNT}"),
        format!("TCP_KEEPIDLE={IDLE}"),
        format!("TCP_KEEPINTVL={INTERVAL}"),
    ]
    .iter()
    .map(|call| format!("{fd} {call} = 0"))
    .collect()
}
