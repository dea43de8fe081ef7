//! What is at risk: which connections an idle timeout (a NAT, a load
//! balancer, a firewall's conntrack) will cut, what the kernel defaults
//! and unacknowledged data mean against it, and what to set instead.
//!
//! Pure: it reads a [`Survey`](crate::Survey)'s connections and the
//! facts the caller gathered, and returns findings with structured fixes;
//! the `keepalive doctor` command words them.

use std::collections::BTreeMap;
use std::time::Duration;

use keepalive::KernelDefaults;

use crate::survey::Surveyed;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing is at risk.
    Info,
    /// At risk in some cases (a socket that switches keepalive on without
    /// values, a peer that vanishes, values unknown).
    Warning,
    /// Connections that will be cut, or never noticed as dead.
    Critical,
}

/// Where an idle timeout comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutSource {
    /// `nf_conntrack_tcp_timeout_established` of the namespace.
    Conntrack,
    /// The IPVS TCP timeout.
    Ipvs,
    /// Given by the user (`--idle-timeout`).
    Given,
    /// A known load balancer or NAT (`--behind NAME`).
    Preset(String),
}

/// The idle timeout connections are judged against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdleTimeout {
    /// After this long without a packet, the flow is forgotten.
    pub timeout: Duration,
    /// Where the figure comes from.
    pub source: TimeoutSource,
}

/// Keepalive values that keep a connection alive through `timeout`: the
/// first probe and every later one come before it (probes on a live
/// connection come every max(idle, interval)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Recommended {
    /// `TCP_KEEPIDLE`.
    pub idle: Duration,
    /// `TCP_KEEPINTVL`.
    pub interval: Duration,
}

impl Recommended {
    /// What to set when nothing cuts idle connections: a dead peer is
    /// noticed within minutes, at a probe a minute.
    pub const WITHOUT_TIMEOUT: Recommended = Recommended {
        idle: Duration::from_secs(300),
        interval: Duration::from_secs(60),
    };

    /// Half the timeout for idle and a sixth for the interval, in whole
    /// seconds, at least one second each, and never more than
    /// [`WITHOUT_TIMEOUT`](Self::WITHOUT_TIMEOUT)'s (a timeout of days,
    /// conntrack's default, wants no probe every two days).
    pub fn for_timeout(timeout: Duration) -> Recommended {
        let secs = timeout.as_secs();
        let max = Self::WITHOUT_TIMEOUT;
        Recommended {
            idle: Duration::from_secs(secs / 2).clamp(Duration::from_secs(1), max.idle),
            interval: Duration::from_secs(secs / 6).clamp(Duration::from_secs(1), max.interval),
        }
    }
}

/// The processes a finding is about: one process of a unit or cgroup.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    /// The systemd unit, when there is one.
    pub unit: Option<String>,
    /// The cgroup v2 path (`/system.slice/nginx.service`).
    pub cgroup: Option<String>,
    /// The process's command name.
    pub command: String,
    /// The process.
    pub pid: u32,
}

/// What to do about a finding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fix {
    /// `keepalive attach --pid PID --idle .. --interval ..`: the
    /// connections that exist now, without a restart.
    Attach {
        /// The process.
        pid: u32,
        /// The values.
        values: Recommended,
    },
    /// `keepalive enforce --unit UNIT --max-idle .. --existing --persist`
    /// (a service) or `--cgroup CGROUP ...`: every connection of the
    /// cgroup, existing and new, whatever its programs set, for good.
    Enforce {
        /// The systemd unit, when it has one.
        unit: Option<String>,
        /// The cgroup v2 path, relative to the hierarchy's root.
        cgroup: String,
        /// The values.
        values: Recommended,
    },
    /// `keepalive sysctl set --idle .. --interval .. --persist`: the
    /// kernel defaults, for sockets that switch keepalive on without
    /// values.
    Sysctl {
        /// The values.
        values: Recommended,
    },
    /// `--user-timeout auto` with the other fixes (attach, run, enforce).
    UserTimeout,
    /// `keepalive install --global` again (it test-loads the library first).
    Reinstall,
    /// `keepalive enforce --cgroup CGROUP --remove`.
    RemoveEnforcement {
        /// The cgroup, as the enforcement lists it.
        cgroup: String,
    },
    /// Remove line `line` of `file`.
    RemoveLine {
        /// The file.
        file: std::path::PathBuf,
        /// 1-based.
        line: usize,
    },
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is.
    pub kind: FindingKind,
    /// What fixes it, the most direct first.
    pub fixes: Vec<Fix>,
}

/// What a finding is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// Connections of a process with keepalive off.
    NoKeepalive {
        /// Whose.
        group: Group,
        /// How many.
        connections: usize,
        /// The longest idle of them, when the kernel reported it.
        oldest_idle: Option<Duration>,
        /// The timeout that cuts them, when one is known.
        timeout: Option<IdleTimeout>,
    },
    /// Connections with keepalive on whose idle or interval is not below
    /// the timeout: the probe comes after the flow is forgotten.
    TooSlow {
        /// Whose.
        group: Group,
        /// How many.
        connections: usize,
        /// Their largest `TCP_KEEPIDLE`.
        idle: Duration,
        /// Their largest `TCP_KEEPINTVL`.
        interval: Duration,
        /// The timeout.
        timeout: IdleTimeout,
    },
    /// Connections whose keepalive could not be seen (another timer
    /// pending, or no right to read their options).
    Unknown {
        /// Whose.
        group: Group,
        /// How many.
        connections: usize,
    },
    /// The kernel defaults probe later than the timeout: a socket that
    /// switches keepalive on without values of its own is not kept alive.
    DefaultsTooSlow {
        /// `net.ipv4.tcp_keepalive_time`.
        idle: Duration,
        /// `net.ipv4.tcp_keepalive_intvl`.
        interval: Duration,
        /// The timeout.
        timeout: IdleTimeout,
    },
    /// With data unacknowledged, keepalive never fires: a vanished peer
    /// is given up on only after the retransmissions (`tcp_retries2`),
    /// for connections without `TCP_USER_TIMEOUT`.
    UnacknowledgedData {
        /// When the kernel gives up.
        after: Duration,
        /// Connections whose options were read and have no user timeout.
        connections: usize,
    },
    /// `/etc/ld.so.preload` names a keepalive library that is missing or
    /// does not load: every program started prints an ld.so error.
    PreloadBroken {
        /// The entry.
        entry: std::path::PathBuf,
        /// The file exists.
        present: bool,
    },
    /// An enforcement whose cgroup is gone or whose program is detached:
    /// pins left over, nothing enforced there.
    EnforcementDetached {
        /// The cgroup it was made for, or its id when the cgroup is gone.
        cgroup: String,
    },
    /// A later sysctl.d file overrides a value of our drop-in at boot.
    SysctlOverridden {
        /// The sysctl (`net.ipv4.tcp_keepalive_time`).
        key: String,
        /// Our drop-in's value, and its file.
        ours: (std::path::PathBuf, String),
        /// The winner's file, line and value.
        winner: (std::path::PathBuf, usize, String),
    },
    /// Every established connection keeps alive through the timeout.
    AllCovered {
        /// How many connections.
        connections: usize,
        /// The timeout, when one is known.
        timeout: Option<IdleTimeout>,
    },
}

/// What [`assess`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The established connections of the namespace.
    pub connections: &'a [Surveyed],
    /// The namespace's kernel defaults.
    pub defaults: KernelDefaults,
    /// What cuts idle connections, when known.
    pub timeout: Option<&'a IdleTimeout>,
    /// When unacknowledged data is given up on (`tcp_retries2`).
    pub retransmission_timeout: Option<Duration>,
}

/// A sysctl.d setting that overrides our drop-in: the key, ours (file,
/// value), and the winner (file, line, value).
pub type SysctlOverride = (
    String,
    (std::path::PathBuf, String),
    (std::path::PathBuf, usize, String),
);

/// What is in place on the host, as far as it can break something.
#[derive(Clone, Debug, Default)]
pub struct InPlace {
    /// The global preload's entry, whether its file exists, and whether it
    /// loads (`None`: not tried).
    pub preload: Option<(std::path::PathBuf, bool, Option<bool>)>,
    /// Enforcements whose program is not attached (cgroup or id).
    pub detached_enforcements: Vec<String>,
    /// sysctl.d settings that override our drop-in: key, ours (file,
    /// value), winner (file, line, value).
    pub sysctl_overrides: Vec<SysctlOverride>,
}

/// The findings, most severe first, then the most connections first.
pub fn assess(inputs: &Inputs<'_>) -> Vec<Finding> {
    assess_with(inputs, &InPlace::default())
}

/// [`assess`], with what is in place on the host.
pub fn assess_with(inputs: &Inputs<'_>, in_place: &InPlace) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some((entry, present, loads)) = &in_place.preload
        && (!present || *loads == Some(false))
    {
        findings.push(Finding {
            severity: Severity::Critical,
            kind: FindingKind::PreloadBroken {
                entry: entry.clone(),
                present: *present,
            },
            fixes: vec![Fix::Reinstall],
        });
    }
    for cgroup in &in_place.detached_enforcements {
        findings.push(Finding {
            severity: Severity::Warning,
            kind: FindingKind::EnforcementDetached {
                cgroup: cgroup.clone(),
            },
            fixes: vec![Fix::RemoveEnforcement {
                cgroup: cgroup.clone(),
            }],
        });
    }
    for (key, ours, winner) in &in_place.sysctl_overrides {
        findings.push(Finding {
            severity: Severity::Warning,
            kind: FindingKind::SysctlOverridden {
                key: key.clone(),
                ours: ours.clone(),
                winner: winner.clone(),
            },
            fixes: vec![Fix::RemoveLine {
                file: winner.0.clone(),
                line: winner.1,
            }],
        });
    }
    let timeout = inputs.timeout;
    let values = timeout.map(|t| Recommended::for_timeout(t.timeout));

    // The connections, by process, in the three ways they can be at risk.
    #[derive(Default)]
    struct Tally {
        off: usize,
        oldest_idle: Option<Duration>,
        slow: usize,
        max_idle: Duration,
        max_interval: Duration,
        unknown: usize,
    }
    let mut by_group: BTreeMap<Group, Tally> = BTreeMap::new();
    let mut covered = 0;
    let mut without_user_timeout = 0;
    for c in inputs.connections {
        let Some(group) = group_of(c) else {
            continue;
        };
        if c.options.is_some_and(|o| o.user_timeout_ms == 0) {
            without_user_timeout += 1;
        }
        let tally = by_group.entry(group).or_default();
        match (c.keepalive_on(), c.options) {
            (Some(false), _) => {
                tally.off += 1;
                let idle = c.socket.idle();
                tally.oldest_idle = tally.oldest_idle.max(idle);
            }
            (Some(true), Some(o)) => {
                let idle = Duration::from_secs(u64::from(o.idle));
                let interval = Duration::from_secs(u64::from(o.interval));
                match timeout {
                    Some(t) if idle >= t.timeout || interval >= t.timeout => {
                        tally.slow += 1;
                        tally.max_idle = tally.max_idle.max(idle);
                        tally.max_interval = tally.max_interval.max(interval);
                    }
                    _ => covered += 1,
                }
            }
            // On, by the timer: the values are unknown; with no timeout
            // to judge them by, on is enough.
            (Some(true), None) if timeout.is_none() => covered += 1,
            (Some(true), None) | (None, _) => tally.unknown += 1,
        }
    }
    for (group, t) in by_group {
        let fixes = |values: Option<Recommended>| -> Vec<Fix> {
            let values = values.unwrap_or(Recommended::WITHOUT_TIMEOUT);
            let mut fixes = vec![Fix::Attach {
                pid: group.pid,
                values,
            }];
            if let Some(cgroup) = group.unit.as_ref().and(group.cgroup.clone()) {
                fixes.push(Fix::Enforce {
                    unit: group.unit.clone(),
                    cgroup,
                    values,
                });
            }
            fixes
        };
        if t.off > 0 {
            findings.push(Finding {
                severity: if timeout.is_some() {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                kind: FindingKind::NoKeepalive {
                    group: group.clone(),
                    connections: t.off,
                    oldest_idle: t.oldest_idle,
                    timeout: timeout.cloned(),
                },
                fixes: fixes(values),
            });
        }
        if let (true, Some(timeout)) = (t.slow > 0, timeout) {
            findings.push(Finding {
                severity: Severity::Critical,
                kind: FindingKind::TooSlow {
                    group: group.clone(),
                    connections: t.slow,
                    idle: t.max_idle,
                    interval: t.max_interval,
                    timeout: timeout.clone(),
                },
                fixes: fixes(values),
            });
        }
        if t.unknown > 0 {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::Unknown {
                    group: group.clone(),
                    connections: t.unknown,
                },
                fixes: fixes(values),
            });
        }
    }

    if let (Some(t), Some(values)) = (timeout, values) {
        let idle = Duration::from_secs(inputs.defaults.idle);
        let interval = Duration::from_secs(inputs.defaults.interval);
        if idle >= t.timeout || interval >= t.timeout {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::DefaultsTooSlow {
                    idle,
                    interval,
                    timeout: t.clone(),
                },
                fixes: vec![Fix::Sysctl { values }],
            });
        }
    }
    if let Some(after) = inputs.retransmission_timeout {
        findings.push(Finding {
            severity: Severity::Info,
            kind: FindingKind::UnacknowledgedData {
                after,
                connections: without_user_timeout,
            },
            fixes: vec![Fix::UserTimeout],
        });
    }
    if !findings.iter().any(|f| f.severity > Severity::Info) {
        findings.push(Finding {
            severity: Severity::Info,
            kind: FindingKind::AllCovered {
                connections: covered,
                timeout: timeout.cloned(),
            },
            fixes: Vec::new(),
        });
    }
    // Most severe first; among equals, the oldest idle connections, then
    // the most connections.
    findings.sort_by_key(|f| {
        std::cmp::Reverse((f.severity, oldest_idle(&f.kind), connections(&f.kind)))
    });
    findings
}

/// True when any finding is a risk (a warning or worse).
pub fn at_risk(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity > Severity::Info)
}

fn oldest_idle(kind: &FindingKind) -> Option<Duration> {
    match kind {
        FindingKind::NoKeepalive { oldest_idle, .. } => *oldest_idle,
        _ => None,
    }
}

fn connections(kind: &FindingKind) -> usize {
    match kind {
        FindingKind::NoKeepalive { connections, .. }
        | FindingKind::TooSlow { connections, .. }
        | FindingKind::Unknown { connections, .. }
        | FindingKind::UnacknowledgedData { connections, .. }
        | FindingKind::AllCovered { connections, .. } => *connections,
        FindingKind::DefaultsTooSlow { .. }
        | FindingKind::PreloadBroken { .. }
        | FindingKind::EnforcementDetached { .. }
        | FindingKind::SysctlOverridden { .. } => 0,
    }
}

/// The process a connection belongs to: its first holder. A connection no
/// process holds (orphaned) has no group.
fn group_of(c: &Surveyed) -> Option<Group> {
    let owner = c.processes.as_ref()?.first()?;
    Some(Group {
        unit: c.unit.clone(),
        cgroup: c.cgroup.clone(),
        command: owner.command.clone(),
        pid: owner.pid,
    })
}

#[cfg(test)]
mod tests {
    use keepalive::KeepaliveState;

    use super::*;
    use crate::procfs::Owner;
    use crate::seen::{Evidence, KeepaliveSeen};
    use crate::tcp::{Family, TcpSocket, TcpState};
    use crate::tcp_info::TcpInfo;

    fn conn(pid: u32, on: Option<bool>, options: Option<(u32, u32)>, idle_s: u64) -> Surveyed {
        Surveyed {
            socket: TcpSocket {
                family: Family::Inet,
                state: TcpState::Established,
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:41234".parse().unwrap(),
                timer: None,
                recv_queue: 0,
                send_queue: 0,
                uid: 0,
                inode: 1000 + u64::from(pid),
                cookie: 1,
                interface: 0,
                info: Some(TcpInfo {
                    last_data_sent: Duration::from_secs(idle_s),
                    last_data_recv: Duration::from_secs(idle_s),
                    last_ack_recv: Duration::from_secs(idle_s),
                    probes: 0,
                }),
            },
            processes: Some(vec![Owner {
                pid,
                command: "python3".into(),
                fd: 3,
            }]),
            cgroup: Some("/system.slice/app.service".into()),
            unit: Some("app.service".into()),
            options: options.map(|(idle, interval)| KeepaliveState {
                enabled: on == Some(true),
                idle,
                interval,
                count: 9,
                user_timeout_ms: 0,
            }),
            seen: match on {
                Some(on) => KeepaliveSeen::Known {
                    on,
                    from: Evidence::Timer,
                },
                None => KeepaliveSeen::Unknown,
            },
        }
    }

    fn nat(secs: u64) -> IdleTimeout {
        IdleTimeout {
            timeout: Duration::from_secs(secs),
            source: TimeoutSource::Conntrack,
        }
    }

    fn inputs<'a>(c: &'a [Surveyed], t: Option<&'a IdleTimeout>) -> Inputs<'a> {
        Inputs {
            connections: c,
            defaults: KernelDefaults::BUILTIN,
            timeout: t,
            retransmission_timeout: None,
        }
    }

    #[test]
    fn recommended_values_probe_before_the_timeout() {
        let r = Recommended::for_timeout(Duration::from_secs(350));
        assert_eq!((r.idle.as_secs(), r.interval.as_secs()), (175, 58));
        let r = Recommended::for_timeout(Duration::from_secs(5));
        assert_eq!((r.idle.as_secs(), r.interval.as_secs()), (2, 1));
        let r = Recommended::for_timeout(Duration::from_secs(432_000));
        assert_eq!(r, Recommended::WITHOUT_TIMEOUT);
        for secs in [2, 3, 5, 60, 240, 350, 900, 1200] {
            let r = Recommended::for_timeout(Duration::from_secs(secs));
            assert!(r.idle < Duration::from_secs(secs), "{secs}");
            assert!(r.interval < Duration::from_secs(secs), "{secs}");
        }
    }

    #[test]
    fn connections_without_keepalive_behind_a_timeout_are_critical() {
        let c = [
            conn(42, Some(false), None, 10),
            conn(42, Some(false), None, 700),
        ];
        let t = nat(350);
        let f = assess(&inputs(&c, Some(&t)));
        assert_eq!(f[0].severity, Severity::Critical);
        let FindingKind::NoKeepalive {
            group,
            connections,
            oldest_idle,
            ..
        } = &f[0].kind
        else {
            panic!("{f:?}")
        };
        assert_eq!((group.pid, *connections), (42, 2));
        assert_eq!(*oldest_idle, Some(Duration::from_secs(700)));
        let values = Recommended::for_timeout(t.timeout);
        assert_eq!(
            f[0].fixes,
            [
                Fix::Attach { pid: 42, values },
                Fix::Enforce {
                    unit: Some("app.service".into()),
                    cgroup: "/system.slice/app.service".into(),
                    values
                }
            ]
        );
        assert!(at_risk(&f));
    }

    #[test]
    fn slow_keepalive_is_caught_and_fast_keepalive_covered() {
        let t = nat(350);
        let slow = [conn(7, Some(true), Some((7200, 75)), 1)];
        let f = assess(&inputs(&slow, Some(&t)));
        assert!(
            matches!(f[0].kind, FindingKind::TooSlow { connections: 1, .. }),
            "{f:?}"
        );
        let fast = [conn(7, Some(true), Some((60, 10)), 1)];
        let f = assess(&inputs(&fast, Some(&t)));
        // Only the kernel defaults (2h) are too slow for 350 s.
        assert!(
            f.iter()
                .all(|f| !matches!(f.kind, FindingKind::TooSlow { .. }))
        );
        assert!(
            f.iter()
                .any(|f| matches!(f.kind, FindingKind::DefaultsTooSlow { .. }))
        );
    }

    #[test]
    fn nothing_at_risk_without_connections_and_with_fast_defaults() {
        let t = nat(432_000);
        let f = assess(&inputs(&[], Some(&t)));
        assert!(!at_risk(&f), "{f:?}");
        assert!(matches!(
            f[0].kind,
            FindingKind::AllCovered { connections: 0, .. }
        ));
    }

    #[test]
    fn a_broken_preload_is_critical_and_a_working_one_is_not_a_finding() {
        let broken = InPlace {
            preload: Some(("/usr/lib/keepalive/libkeepalive.so".into(), false, None)),
            ..InPlace::default()
        };
        let f = assess_with(&inputs(&[], None), &broken);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].fixes, [Fix::Reinstall]);
        let fine = InPlace {
            preload: Some((
                "/usr/lib/keepalive/libkeepalive.so".into(),
                true,
                Some(true),
            )),
            ..InPlace::default()
        };
        assert!(!at_risk(&assess_with(&inputs(&[], None), &fine)));
    }

    #[test]
    fn an_overriding_sysctl_file_names_its_line() {
        let in_place = InPlace {
            sysctl_overrides: vec![(
                "net.ipv4.tcp_keepalive_time".into(),
                ("/etc/sysctl.d/90-keepalive.conf".into(), "600".into()),
                ("/etc/sysctl.d/99-local.conf".into(), 3, "7200".into()),
            )],
            ..InPlace::default()
        };
        let f = assess_with(&inputs(&[], None), &in_place);
        assert_eq!(
            f[0].fixes,
            [Fix::RemoveLine {
                file: "/etc/sysctl.d/99-local.conf".into(),
                line: 3
            }]
        );
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn without_a_timeout_no_keepalive_is_a_warning() {
        let c = [conn(9, Some(false), None, 1)];
        let f = assess(&inputs(&c, None));
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(at_risk(&f));
    }

    #[test]
    fn unknown_keepalive_is_a_warning_and_the_oldest_idle_comes_first() {
        let t = nat(350);
        let c = [
            conn(1, Some(false), None, 5),
            conn(2, Some(false), None, 900),
            conn(3, None, None, 1),
        ];
        let f = assess(&inputs(&c, Some(&t)));
        let pids: Vec<u32> = f
            .iter()
            .filter_map(|f| match &f.kind {
                FindingKind::NoKeepalive { group, .. } | FindingKind::Unknown { group, .. } => {
                    Some(group.pid)
                }
                _ => None,
            })
            .collect();
        assert_eq!(pids, [2, 1, 3]);
    }
}
