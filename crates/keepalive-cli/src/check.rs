//! `keepalive check`: the HOWTO's test program (section 4.3). It makes a TCP
//! socket through libc's socket(), so that a preload sees it like any
//! program's, and prints what the kernel reports.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow};
use keepalive::KeepaliveState;
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::CheckArgs;
use crate::exit::Exit;
use crate::human;
use crate::json::{self, CheckedSocket, Message, Options};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn check(args: &CheckArgs) -> anyhow::Result<Exit> {
    let (socket, peer) = match &args.connect {
        Some(target) => {
            let (s, addr) = connect(target)?;
            (s, Some(addr))
        }
        None => {
            let domain = if args.ipv6 {
                Domain::IPV6
            } else {
                Domain::IPV4
            };
            let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
                .context("cannot create a TCP socket")?;
            (s, None)
        }
    };
    let state = KeepaliveState::read(&socket).context("cannot read the socket's options")?;
    let mut out = io::stdout().lock();
    if args.json {
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        let checked = CheckedSocket {
            options: Options::from(&state),
            local,
            peer,
        };
        json::write(&mut out, &Message::Socket(checked))?;
    } else {
        out.write_all(render(&state).as_bytes())?;
    }
    out.flush()?;
    Ok(if state.enabled {
        Exit::Success
    } else {
        Exit::Problem
    })
}

fn connect(target: &str) -> anyhow::Result<(Socket, SocketAddr)> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot resolve {target:?}: expected HOST:PORT, e.g. 127.0.0.1:22")
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .context("cannot create a TCP socket")?;
        match s.connect_timeout(&addr.into(), CONNECT_TIMEOUT) {
            Ok(()) => return Ok((s, addr)),
            Err(e) => last = Some(anyhow!(e).context(format!("cannot connect to {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{target:?} resolves to no address")))
}

/// The HOWTO's output, to the letter (its three values are seconds and
/// counts, printed bare as the HOWTO's program does), plus
/// TCP_USER_TIMEOUT, with its unit, when set.
pub fn render(state: &KeepaliveState) -> String {
    if !state.enabled {
        return "SO_KEEPALIVE is OFF\n".to_owned();
    }
    let mut s = format!(
        "SO_KEEPALIVE is ON\nTCP_KEEPCNT   = {}\nTCP_KEEPIDLE  = {}\nTCP_KEEPINTVL = {}\n",
        state.count, state.idle, state.interval
    );
    if state.user_timeout_ms != 0 {
        s += &format!(
            "TCP_USER_TIMEOUT = {}\n",
            human::millis(u64::from(state.user_timeout_ms))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(enabled: bool, user_timeout_ms: u32) -> KeepaliveState {
        KeepaliveState {
            enabled,
            idle: 180,
            interval: 60,
            count: 20,
            user_timeout_ms,
        }
    }

    #[test]
    fn render_on_is_the_howto_output() {
        assert_eq!(
            render(&state(true, 0)),
            "SO_KEEPALIVE is ON\nTCP_KEEPCNT   = 20\nTCP_KEEPIDLE  = 180\nTCP_KEEPINTVL = 60\n"
        );
    }

    #[test]
    fn render_off_is_one_line() {
        assert_eq!(render(&state(false, 0)), "SO_KEEPALIVE is OFF\n");
    }

    #[test]
    fn render_user_timeout_when_set() {
        assert!(
            render(&state(true, 855_000))
                .ends_with("TCP_KEEPINTVL = 60\nTCP_USER_TIMEOUT = 14m15s\n")
        );
    }
}
