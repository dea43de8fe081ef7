//! TCP keepalive for Rust programs, the way the TCP Keepalive HOWTO
//! (sections 4.2 and 4.3) describes it, with the values checked before they
//! reach the kernel.
//!
//! - [`Settings`] holds what to set; it can only hold values the kernel
//!   accepts ([`Seconds`] 1..=32767, [`ProbeCount`] 1..=127, [`Millis`]).
//! - [`apply`] sets them on any socket ([`AsFd`](std::os::fd::AsFd):
//!   `TcpStream`, `TcpListener`, socket2, tokio's `as_fd()`), and
//!   [`KeepaliveState::read`] reads a socket's state back.
//! - [`from_env`] parses the environment of `libkeepalive.so` (`KEEPALIVE`,
//!   `KEEPIDLE`, `KEEPINTVL`, `KEEPCNT`, `TCP_USER_TIMEOUT`), and
//!   [`from_vars`] does the same from any list of pairs.
//! - [`kernel_defaults`] reads `net.ipv4.tcp_keepalive_*`, the values a
//!   socket has for the options it does not set.
//! - [`host`] changes a host (the sysctls, `/etc/ld.so.preload`, network
//!   namespaces): for administration tools, not for programs.
//!
//! ```
//! use std::time::Duration;
//! use keepalive::{apply, KeepaliveState, Settings};
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let stream = std::net::TcpStream::connect(listener.local_addr()?)?;
//! let settings = Settings::new()
//!     .with_idle(Duration::from_secs(180))?
//!     .with_interval(Duration::from_secs(60))?
//!     .with_count(20)?;
//! apply(&stream, &settings)?;
//! let state = KeepaliveState::read(&stream)?;
//! assert!(state.enabled);
//! assert_eq!((state.count, state.idle, state.interval), (20, 180, 60));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it won't do: create sockets (use std or socket2), or change a
//! socket behind a program's back (that is `libkeepalive.so` and the
//! `keepalive` command).
#![warn(missing_docs)]

mod env;
pub mod host;
mod sockopt;
mod state;
mod sysctl;

pub use env::{EnvSettings, InvalidVar, from_env, from_vars};
pub use keepalive_core::env::{BareUnit, ErrorKind, Var};
pub use keepalive_core::{
    KernelDefaults, Millis, Plan, ProbeCount, RangeError, Seconds, Settings, SockOpt, UserTimeout,
    is_tcp,
};
/// Parsers for single values, as the environment and the command line take them.
pub mod parse {
    pub use keepalive_core::env::{
        BareUnit, ErrorKind, parse_count, parse_duration_ms, parse_seconds, parse_switch,
        parse_user_timeout,
    };
}
pub use sockopt::{ApplyError, ApplyErrorKind, apply};
pub use state::{KeepaliveOption, KeepaliveState, OptionChange};
pub use sysctl::{kernel_defaults, kernel_defaults_in};
