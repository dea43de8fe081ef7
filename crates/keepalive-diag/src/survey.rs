//! A survey of the TCP sockets of a network namespace: for each connection
//! and listener, the processes holding it, their cgroup and systemd unit,
//! its keepalive options when they can be read, and how idle it is. What
//! `keepalive doctor` judges and `keepalive metrics` counts, gathered once
//! by joining what `ls` already knows: one sock_diag dump (with
//! `tcp_info`), one scan of `/proc`, one `/proc/PID/cgroup` read per
//! process that holds a socket, and, when asked, the options read with
//! pidfd_getfd(2) process by process. Nothing is done per socket beyond
//! those option reads.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keepalive::{KeepaliveState, KernelDefaults};

use crate::held::{Listed, listed_sockets};
use crate::options::keepalive_options;
use crate::pidfd::PidFdErrorKind;
use crate::procfs::{Owner, Owners, cgroup, unit_of};
use crate::seen::{Evidence, KeepaliveSeen, keepalive_seen};
use crate::sock_diag::{DiagError, tcp_sockets};
use crate::tcp::{StateSet, TcpSocket, TcpState};

/// What to survey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurveyOptions {
    /// The states to dump: [`StateSet::ESTABLISHED`] for connections only,
    /// with [`StateSet::LISTEN`] for listeners too.
    pub states: StateSet,
    /// Read each socket's own keepalive options (`SO_KEEPALIVE` and the
    /// values) on a duplicate of its descriptor: exact, but one
    /// pidfd_getfd(2) and five getsockopt(2) per socket, and it needs the
    /// right to ptrace each process. Without it, keepalive on or off is
    /// seen from the dump's timer, and the values are unknown.
    pub read_options: bool,
}

/// The TCP sockets of a network namespace that programs hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survey {
    /// The connections: the sockets of the states asked for, other than
    /// listeners, that a program may hold (with an inode; not TIME_WAIT,
    /// nor request sockets). By the pid of their first holder, those whose
    /// holders are unknown or none (a kernel socket) last, then in dump
    /// order.
    pub connections: Vec<Surveyed>,
    /// The listening sockets, when [`StateSet::LISTEN`] was asked for, in
    /// the same order.
    pub listeners: Vec<Surveyed>,
    /// Processes whose descriptors could not be read (no right to): when
    /// not 0, a socket's holders may be unknown (`processes: None`).
    pub owners_denied: usize,
    /// [`SurveyOptions::read_options`] was asked for: a socket's
    /// `options: None` then means they could not be read.
    pub options_read: bool,
    /// Processes whose sockets' options could not be read (no right to
    /// ptrace them); their sockets have `options: None`.
    pub options_denied: usize,
}

/// One socket of a [`Survey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surveyed {
    /// The socket, with its idle times ([`TcpSocket::idle`]).
    pub socket: TcpSocket,
    /// The processes holding it, by pid then descriptor: empty when none
    /// does (a kernel socket), `None` when that could not be seen (as in
    /// [`Listed`]).
    pub processes: Option<Vec<Owner>>,
    /// The cgroup v2 path of its first holder ([`cgroup`]), when known.
    pub cgroup: Option<String>,
    /// The systemd unit of that cgroup ([`unit_of`]).
    pub unit: Option<String>,
    /// Its own keepalive options, when read.
    pub options: Option<KeepaliveState>,
    /// Keepalive on or off, and what shows it ([`keepalive_seen`]).
    pub seen: KeepaliveSeen,
}

/// A connection's keepalive as the kernel will apply it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Effective {
    /// `SO_KEEPALIVE`.
    pub on: bool,
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Probes before giving up (`TCP_KEEPCNT`).
    pub count: u32,
}

impl Surveyed {
    /// Keepalive on (`Some(true)`) or off, when it can be seen.
    pub fn keepalive_on(&self) -> Option<bool> {
        match self.seen {
            KeepaliveSeen::Known { on, .. } => Some(on),
            KeepaliveSeen::Unknown | KeepaliveSeen::NotApplicable => None,
        }
    }

    /// Its keepalive and values: the socket's own options when they were
    /// read (getsockopt gives the namespace's defaults for the values it
    /// did not set); off by its timer, `defaults` for the values it would
    /// use if switched on, assuming it set none of its own. `None` when
    /// the values are unknown: on by its timer without options read, or
    /// keepalive not seen.
    pub fn effective(&self, defaults: &KernelDefaults) -> Option<Effective> {
        let secs = |s: u64| Duration::from_secs(s);
        if let Some(o) = &self.options {
            return Some(Effective {
                on: o.enabled,
                idle: secs(o.idle.into()),
                interval: secs(o.interval.into()),
                count: o.count,
            });
        }
        match self.seen {
            KeepaliveSeen::Known {
                on: false,
                from: Evidence::Timer,
            } => Some(Effective {
                on: false,
                idle: secs(defaults.idle),
                interval: secs(defaults.interval),
                count: u32::try_from(defaults.count).unwrap_or(u32::MAX),
            }),
            _ => None,
        }
    }

    /// The first process holding it, when known.
    pub fn process(&self) -> Option<&Owner> {
        self.processes.as_ref()?.first()
    }
}

/// Why a survey failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SurveyError {
    /// The sockets could not be listed.
    #[error(transparent)]
    Dump(#[from] DiagError),
    /// The processes could not be listed.
    #[error("cannot list the processes in {}", path.display())]
    Proc {
        /// The proc root.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Surveys the TCP sockets of the calling thread's network namespace (run
/// it inside another with `keepalive::host::NetNs::run`), whose processes
/// are found in `proc_root` ([`crate::PROC`]).
///
/// Fails only when the sockets or the processes cannot be listed at all:
/// processes that cannot be read are counted in
/// [`Survey::owners_denied`] and [`Survey::options_denied`], and their
/// sockets are surveyed with what is known.
pub fn survey(proc_root: &Path, opts: &SurveyOptions) -> Result<Survey, SurveyError> {
    let owners = Owners::scan(proc_root).map_err(|source| SurveyError::Proc {
        path: proc_root.to_owned(),
        source,
    })?;
    survey_with(proc_root, &owners, opts)
}

/// [`survey`] with the processes' descriptors already scanned: socket
/// inodes are host-wide, so one [`Owners::scan`] serves every namespace
/// surveyed (as `keepalive metrics` does).
pub fn survey_with(
    proc_root: &Path,
    owners: &Owners,
    opts: &SurveyOptions,
) -> Result<Survey, SurveyError> {
    let dump = tcp_sockets(opts.states)?;
    let mut listed = listed_sockets(dump.into_iter().filter(surveyed), owners, false);
    // By first holder, so that each process's sockets are one slice.
    listed.sort_by_key(|l| first_pid(l).unwrap_or(u32::MAX));

    let mut options = HashMap::new();
    let mut options_denied = 0;
    if opts.read_options {
        for same in listed.chunk_by(|a, b| first_pid(a) == first_pid(b)) {
            let Some(pid) = same.first().and_then(first_pid) else {
                continue;
            };
            match keepalive_options(pid, same) {
                Ok(read) => options.extend(read),
                Err(e) if e.kind() == PidFdErrorKind::NotPermitted => options_denied += 1,
                // Gone meanwhile, or no pidfd_getfd: options unknown.
                Err(_) => {}
            }
        }
    }

    let mut cgroups: HashMap<u32, Option<String>> = HashMap::new();
    let mut survey = Survey {
        connections: Vec::new(),
        listeners: Vec::new(),
        owners_denied: owners.denied(),
        options_read: opts.read_options,
        options_denied,
    };
    for Listed { socket, processes } in listed {
        let pid = processes.as_ref().and_then(|p| p.first()).map(|o| o.pid);
        let cgroup = pid.and_then(|pid| {
            cgroups
                .entry(pid)
                .or_insert_with(|| cgroup(proc_root, pid).ok().flatten())
                .clone()
        });
        let unit = cgroup.as_deref().and_then(unit_of).map(str::to_owned);
        let options = options.get(&socket.inode).copied();
        let s = Surveyed {
            seen: keepalive_seen(&socket, options.as_ref()),
            socket,
            processes,
            cgroup,
            unit,
            options,
        };
        if s.socket.state == TcpState::Listen {
            survey.listeners.push(s);
        } else {
            survey.connections.push(s);
        }
    }
    Ok(survey)
}

/// True for the sockets a program may hold: listeners, and connections
/// with an inode that are not TIME_WAIT or request sockets.
fn surveyed(s: &TcpSocket) -> bool {
    s.state == TcpState::Listen || keepalive_seen(s, None) != KeepaliveSeen::NotApplicable
}

fn first_pid(l: &Listed) -> Option<u32> {
    l.processes.as_ref()?.first().map(|o| o.pid)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::pidfd::socket_inode;
    use crate::seen::tests::socket;
    use crate::tcp::{TcpState, TimerKind};

    const DEFAULTS: KernelDefaults = KernelDefaults {
        idle: 600,
        interval: 30,
        count: 4,
    };

    fn item(s: TcpSocket, options: Option<KeepaliveState>) -> Surveyed {
        Surveyed {
            seen: keepalive_seen(&s, options.as_ref()),
            socket: s,
            processes: Some(vec![]),
            cgroup: None,
            unit: None,
            options,
        }
    }

    const OPTIONS: KeepaliveState = KeepaliveState {
        enabled: true,
        idle: 60,
        interval: 10,
        count: 5,
        user_timeout_ms: 0,
    };

    #[test]
    fn effective_from_the_options() {
        let s = item(socket(TcpState::Established, None), Some(OPTIONS));
        assert_eq!(s.keepalive_on(), Some(true));
        assert_eq!(
            s.effective(&DEFAULTS),
            Some(Effective {
                on: true,
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(10),
                count: 5,
            })
        );
        let off = KeepaliveState {
            enabled: false,
            ..OPTIONS
        };
        let s = item(socket(TcpState::Established, None), Some(off));
        assert_eq!(s.effective(&DEFAULTS).map(|e| e.on), Some(false));
    }

    #[test]
    fn effective_off_by_the_timer_takes_the_defaults() {
        let s = item(socket(TcpState::Established, None), None);
        assert_eq!(s.keepalive_on(), Some(false));
        assert_eq!(
            s.effective(&DEFAULTS),
            Some(Effective {
                on: false,
                idle: Duration::from_secs(600),
                interval: Duration::from_secs(30),
                count: 4,
            })
        );
    }

    #[test]
    fn effective_unknown_values() {
        let on = socket(TcpState::Established, Some((TimerKind::Keepalive, 1000, 0)));
        let s = item(on, None);
        assert_eq!(s.keepalive_on(), Some(true));
        assert_eq!(s.effective(&DEFAULTS), None, "on, values unknown");
        let hidden = socket(TcpState::Established, Some((TimerKind::Retransmit, 200, 1)));
        let s = item(hidden, None);
        assert_eq!(s.keepalive_on(), None);
        assert_eq!(s.effective(&DEFAULTS), None);
    }

    #[test]
    fn only_sockets_a_program_may_hold() {
        assert!(super::surveyed(&socket(TcpState::Established, None)));
        assert!(super::surveyed(&socket(TcpState::CloseWait, None)));
        assert!(super::surveyed(&socket(TcpState::Listen, None)));
        assert!(!super::surveyed(&socket(TcpState::TimeWait, None)));
        assert!(!super::surveyed(&socket(TcpState::NewSynRecv, None)));
        let orphan = TcpSocket {
            inode: 0,
            ..socket(TcpState::FinWait2, None)
        };
        assert!(!super::surveyed(&orphan));
    }

    /// A loopback connection of this process, idle for 1.2 s after one
    /// exchange, the client with keepalive on and its own idle time.
    struct Loopback {
        listener: TcpListener,
        client: TcpStream,
        server: TcpStream,
    }

    fn loopback() -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        rustix::net::sockopt::set_socket_keepalive(&client, true).unwrap();
        rustix::net::sockopt::set_tcp_keepidle(&client, Duration::from_secs(123)).unwrap();
        client.write_all(b"hi").unwrap();
        server.read_exact(&mut [0; 2]).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        Loopback {
            listener,
            client,
            server,
        }
    }

    fn find(list: &[Surveyed], fd: impl std::os::fd::AsFd) -> &Surveyed {
        let inode = socket_inode(fd).unwrap().unwrap();
        list.iter()
            .find(|s| s.socket.inode == inode)
            .unwrap_or_else(|| panic!("socket {inode} surveyed"))
    }

    fn our_cgroup() -> Option<String> {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
    }

    #[test]
    fn our_own_connection_with_options() {
        let lo = loopback();
        let s = survey(
            Path::new(crate::PROC),
            &SurveyOptions {
                states: StateSet::ESTABLISHED.union(StateSet::LISTEN),
                read_options: true,
            },
        )
        .unwrap();
        assert!(s.options_read);
        let me = std::process::id();
        let c = find(&s.connections, &lo.client);
        assert_eq!(c.process().map(|o| o.pid), Some(me), "{c:?}");
        assert_eq!(c.cgroup, our_cgroup());
        assert_eq!(
            c.unit,
            our_cgroup().as_deref().and_then(unit_of).map(str::to_owned)
        );
        let options = c.options.expect("options read");
        assert!(options.enabled);
        assert_eq!(options.idle, 123);
        assert_eq!(
            c.seen,
            KeepaliveSeen::Known {
                on: true,
                from: Evidence::SoKeepalive
            }
        );
        assert_eq!(
            c.effective(&DEFAULTS).map(|e| e.idle),
            Some(Duration::from_secs(123))
        );
        let idle = c.socket.idle().expect("tcp_info");
        assert!(idle >= Duration::from_secs(1), "{idle:?}");
        let server = find(&s.connections, &lo.server);
        assert_eq!(server.options.map(|o| o.enabled), Some(false));
        let l = find(&s.listeners, &lo.listener);
        assert_eq!(l.socket.state, TcpState::Listen);
        assert_eq!(l.options.map(|o| o.enabled), Some(false));
        assert!(
            s.connections
                .iter()
                .all(|c| c.socket.state != TcpState::Listen),
            "listeners apart"
        );
    }

    #[test]
    fn our_own_connection_from_the_dump_only() {
        let lo = loopback();
        let s = survey(
            Path::new(crate::PROC),
            &SurveyOptions {
                states: StateSet::ESTABLISHED,
                read_options: false,
            },
        )
        .unwrap();
        assert!(!s.options_read);
        assert_eq!(s.options_denied, 0);
        assert!(s.listeners.is_empty(), "not asked for");
        let c = find(&s.connections, &lo.client);
        assert_eq!(c.process().map(|o| o.pid), Some(std::process::id()));
        assert_eq!(c.options, None);
        assert_eq!(
            c.seen,
            KeepaliveSeen::Known {
                on: true,
                from: Evidence::Timer
            }
        );
        assert_eq!(c.effective(&DEFAULTS), None, "on, values unknown");
        let server = find(&s.connections, &lo.server);
        assert_eq!(server.keepalive_on(), Some(false));
        assert!(server.socket.idle().unwrap() >= Duration::from_secs(1));
    }

    #[test]
    fn time_wait_is_left_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        let local = c.local_addr().unwrap();
        // The client closes first: its side goes to TIME_WAIT.
        drop(c);
        let mut buf = [0u8; 1];
        assert_eq!((&a).read(&mut buf).unwrap(), 0);
        drop(a);
        let s = survey(
            Path::new(crate::PROC),
            &SurveyOptions {
                states: StateSet::ALL,
                read_options: false,
            },
        )
        .unwrap();
        let all = crate::tcp_sockets(StateSet::ALL).unwrap();
        assert!(
            all.iter()
                .any(|s| s.local == local && s.state == TcpState::TimeWait),
            "the dump has it in TIME_WAIT"
        );
        assert!(
            !s.connections.iter().any(|c| c.socket.local == local),
            "the survey leaves it out"
        );
    }

    #[test]
    fn a_proc_root_that_cannot_be_read() {
        let err = survey(
            Path::new("/nonexistent/proc"),
            &SurveyOptions {
                states: StateSet::ESTABLISHED,
                read_options: false,
            },
        )
        .unwrap_err();
        match &err {
            SurveyError::Proc { path, source } => {
                assert_eq!(path, Path::new("/nonexistent/proc"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("want a proc error, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "cannot list the processes in /nonexistent/proc"
        );
    }
}
