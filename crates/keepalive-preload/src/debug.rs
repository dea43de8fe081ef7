//! The only output of the library: one line per invalid variable at load,
//! and the opt-in per-socket log of `KEEPALIVE_DEBUG`. Lines are formatted
//! on the stack and written with one write(2); nothing is ever written into
//! a socket that carries the program's data.

use core::cell::UnsafeCell;
use core::ffi::{CStr, c_int};
use core::fmt::{self, Write};

use keepalive_core::env::{Debug, Invalid};
use keepalive_core::{Applied, Plan, sys};

/// The longest `KEEPALIVE_DEBUG` path.
const PATH_MAX: usize = 256;

struct PathBuf(UnsafeCell<[u8; PATH_MAX]>);
// SAFETY: written once, by the thread that publishes the configuration,
// before it publishes READY; only read afterwards (see crate::Shared).
unsafe impl Sync for PathBuf {}

/// The `KEEPALIVE_DEBUG` file path, NUL-terminated: a copy, since programs
/// that set their process title overwrite the environment block.
static PATH: PathBuf = PathBuf(UnsafeCell::new([0; PATH_MAX]));

/// Where the per-socket log goes.
#[derive(Clone, Copy)]
pub(crate) enum Sink {
    Off,
    Stderr,
    /// The path, as found in the environment; logging uses the copy in
    /// `PATH` made by [`keep_path`] (and nothing until it is made).
    File(&'static [u8]),
}

impl Sink {
    pub(crate) fn new(debug: Debug<'static>) -> Sink {
        match debug {
            Debug::Off => Sink::Off,
            Debug::Stderr => Sink::Stderr,
            Debug::File(path) if path.len() < PATH_MAX && !path.contains(&0) => Sink::File(path),
            // Too long to log to; keep the host's output clean rather than guess.
            Debug::File(_) => Sink::Off,
        }
    }

    /// Logs what was done to a new socket, when debugging is on.
    pub(crate) fn log(self, call: Call, fd: c_int, plan: &Plan, applied: Applied) {
        if matches!(self, Sink::Off) {
            return;
        }
        let mut line = Line::new();
        // SAFETY: getpid(2) cannot fail.
        let pid = unsafe { libc::getpid() };
        let _ = write!(line, "keepalive[{pid}]: {call} = {fd}:");
        for (i, opt) in plan.opts().iter().enumerate() {
            let _ = write!(line, " {}={}", opt.c_name(), opt.value);
            if applied.failed & (1 << i) != 0 {
                let _ = line.write_str(" (failed)");
            }
        }
        if applied.first_errno != 0 {
            let _ = write!(line, "; first error: errno {}", applied.first_errno);
        }
        match self {
            Sink::Off => {}
            // Never into a socket: stderr may be a service's connection.
            Sink::Stderr if sys::socket_domain(2).is_none() => line.send(2),
            Sink::Stderr => {}
            Sink::File(_) => {
                // SAFETY: PATH is only written before READY (see PathBuf),
                // and a Sink::File is only used after that.
                let buf = unsafe { &*PATH.0.get() };
                if let Ok(path) = CStr::from_bytes_until_nul(buf)
                    && !path.is_empty()
                {
                    line.finish();
                    sys::append_file(path, line.bytes());
                }
            }
        }
    }
}

/// Copies the debug file's path into `PATH`. Called once, by the thread that
/// publishes the configuration, before READY.
pub(crate) fn keep_path(sink: &Sink) {
    if let Sink::File(path) = *sink {
        // SAFETY: only the publishing thread writes, before READY.
        let buf = unsafe { &mut *PATH.0.get() };
        buf[..path.len()].copy_from_slice(path);
        buf[path.len()] = 0;
    }
}

/// Warns, on stderr, about a value that was refused. Skipped when stderr is
/// a TCP/UDP socket (an inetd-style service's stderr is its connection).
pub(crate) fn warn(invalid: &Invalid<'_>) {
    if matches!(sys::socket_domain(2), Some(libc::AF_INET | libc::AF_INET6)) {
        return;
    }
    let mut line = Line::new();
    let _ = write!(line, "{invalid}");
    line.send(2);
}

/// The call a socket came from, for the log.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    Socket {
        domain: c_int,
        ty: c_int,
        protocol: c_int,
    },
    Accept {
        listener: c_int,
        flags: Option<c_int>,
    },
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Call::Socket {
                domain,
                ty,
                protocol,
            } => {
                let d = if domain == libc::AF_INET6 {
                    "AF_INET6"
                } else {
                    "AF_INET"
                };
                f.write_str("socket(")?;
                f.write_str(d)?;
                f.write_str(", SOCK_STREAM")?;
                if ty & libc::SOCK_CLOEXEC != 0 {
                    f.write_str("|SOCK_CLOEXEC")?;
                }
                if ty & libc::SOCK_NONBLOCK != 0 {
                    f.write_str("|SOCK_NONBLOCK")?;
                }
                write!(f, ", {protocol})")
            }
            Call::Accept {
                listener,
                flags: None,
            } => write!(f, "accept({listener})"),
            Call::Accept {
                listener,
                flags: Some(fl),
            } => write!(f, "accept4({listener}, {fl:#x})"),
        }
    }
}

/// A line built on the stack; output past its capacity is dropped, and it
/// always ends with a newline.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    fn finish(&mut self) {
        let end = self.len.min(self.buf.len() - 1);
        self.buf[end] = b'\n';
        self.len = end + 1;
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn send(mut self, fd: c_int) {
        self.finish();
        sys::write_all(fd, self.bytes());
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the newline.
        let room = (self.buf.len() - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
