//! The core of the keepalive toolkit: settings that can only hold values the
//! kernel accepts, the preload's environment parser, and the raw
//! `setsockopt` calls that apply them.
//!
//! This crate is `no_std`, allocates nothing and never panics on any input,
//! so that `libkeepalive.so` can run it inside other people's programs, from
//! a signal handler if need be. Programs should use the `keepalive` crate,
//! which re-exports all of this with a safe, descriptor-typed API on top.
//!
//! What it won't do: read the process environment (callers pass the
//! variables), or own a socket.
#![no_std]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod env;
mod settings;
mod sockopt;
pub mod sys;
mod sysctl;
mod value;

pub use settings::{Millis, ProbeCount, RangeError, Seconds, Settings, UserTimeout};
pub use sockopt::{Applied, IPPROTO_MPTCP, Plan, SockOpt, can_listen, is_tcp, is_tcp_protocol};
pub use sysctl::{KernelDefaults, PROC_FILES, parse_value as parse_sysctl_value};
