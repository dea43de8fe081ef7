//! `--json` output: every wire type of every command, in one place, as one
//! tagged message enum (the shape of ripgrep's `--json`).
//!
//! # Format
//!
//! JSON Lines: each line is one object `{"type": TYPE, "data": DATA}`, so a
//! script can dispatch on `type`. With `--json`, stdout carries nothing
//! else; warnings and errors go to stderr.
//!
//! One vocabulary across commands: the names of the command-line flags and
//! of the preload's variables.
//!
//! | field | meaning |
//! | --- | --- |
//! | `keepalive` | `SO_KEEPALIVE` on (`true`/`false`) |
//! | `idle` | `TCP_KEEPIDLE`, whole seconds |
//! | `interval` | `TCP_KEEPINTVL`, whole seconds |
//! | `count` | `TCP_KEEPCNT`, probes |
//! | `user_timeout_ms` | `TCP_USER_TIMEOUT`, milliseconds |
//! | `*_ms`, `*_secs` | other durations, with their unit in the name |
//!
//! In *options* (what a socket has, as getsockopt reports it) a
//! `user_timeout_ms` of `null` is unset. In *settings* (what is set) a
//! `null` value is left alone: the kernel default, or with `attach` the
//! socket's current value. Addresses are strings (`"127.0.0.1:80"`,
//! `"[::1]:80"`); paths are strings.
//!
//! | type | command | data |
//! | --- | --- | --- |
//! | `socket` | check | *options* fields, `local`, `peer` |
//! | `connection` | ls | `family`, `state`, `local`, `remote`, `inode`, `uid`, `processes`, `timer`, `keepalive`, `keepalive_from`, `options`, `recv_queue`, `send_queue` |
//! | `ls_summary` | ls | `netns`, `connections`, `without_keepalive`, `keepalive_unknown`, `listening`, `listening_without_keepalive` |
//! | `attached` | attach | `fds`, `inode`, `state`, `local`, `remote`, `before`, `after`, `changes`, `dry_run`, `error` |
//! | `skipped` | attach | `fd`, `inode`, `reason` |
//! | `attach_summary` | attach | `pid`, `command`, `sockets`, `changed`, `unchanged`, `skipped`, `failed`, `dry_run` |
//! | `sysctl` | sysctl | `netns`, `idle`, `interval`, `count`, `detection_secs` |
//! | `change` | sysctl set | `setting`, `key`, `old`, `new` |
//! | `persisted` | sysctl, enforce --persist | `path`, `changed` |
//! | `override` | sysctl | `path`, `line`, `key`, `value` |
//! | `enforced` | enforce | `cgroup`, `cgroup_id`, `unit`, `persisted`, `change`, `settings`, `previous`, `pin_dir`, `prog_id`, `link_id`, `setsockopt_prog_id`, `setsockopt_link_id` |
//! | `enforcement` | enforce --status | `cgroup`, `cgroup_id`, `path`, `unit`, `persisted`, `attached`, `prog_id`, `link_id`, `setsockopt_prog_id`, `setsockopt_link_id`, `link_pinned`, `settings`, `pin_dir` |
//! | `enforce_summary` | enforce --status | `enforcements`, `attached`, `persisted_units` |
//! | `removed` | enforce --remove | `cgroup`, `cgroup_id`, `unit`, `detached`, `setsockopt_detached`, `unpinned`, `left_over`, `unpersisted`, `reloaded` |
//! | `existing` | enforce --existing | `cgroup`, `way`, `fallback`, `namespaces`, `processes`, `changed`, `listening`, `left_alone`, `failed`, `unreachable` |
//! | `finding` | doctor | `severity`, `kind`, `message`, `pid`, `command`, `unit`, `cgroup`, `connections`, `oldest_idle_secs`, `fixes` |
//! | `host_status` | status | `netns`, `defaults`, `persisted`, `overrides`, `global_preload`, `enforcements` |
//! | `doctor_summary` | doctor | `netns`, `idle_timeout_secs`, `timeout_source`, `connections`, `options_read`, `at_risk`, `critical`, `warning`, `info` |
//!
//! Nested objects: `netns` is `{"inode", "name", "path", "pid", "current"}`
//! (`name` for `/run/netns/NAME`, `pid` for `--pid`, `path` the file it was
//! opened from, all `null` for the caller's own); `changes` is `[{"setting", "old", "new"}]`; `timer`
//! is `{"kind", "left_ms", "count"}`; `processes` is `[{"pid", "command",
//! "fd"}]`; an enforcement's `settings` adds `user_timeout_auto`,
//! `force`, `mode` (`default`, `force`, `max_idle`) and `max_idle_secs`
//! to the settings fields. Each struct below documents its fields.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keepalive::host::{NetNs, SysctlKey};
use keepalive::{KeepaliveOption, KeepaliveState, Settings, UserTimeout};
use serde::Serialize;

/// One line of `--json` output.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Message<'a> {
    /// `keepalive check`: the socket it made.
    Socket(CheckedSocket),
    /// `keepalive ls`: one per socket.
    Connection(Connection<'a>),
    /// `keepalive ls`: the last line, always printed.
    LsSummary(LsSummary),
    /// `keepalive attach`: one per socket.
    Attached(Attached<'a>),
    /// `keepalive attach`: a descriptor left alone.
    Skipped(Skipped<'a>),
    /// `keepalive attach`: the last line, always printed.
    AttachSummary(AttachSummary<'a>),
    /// `keepalive sysctl`: the kernel defaults of a namespace.
    Sysctl(SysctlValues),
    /// `keepalive sysctl set`: one per value written.
    Change(SysctlChange),
    /// `keepalive sysctl --persist`/`persist`: the drop-in.
    Persisted(Persisted<'a>),
    /// `keepalive sysctl --persist`/`persist`: a later file overrides one.
    Override(Override<'a>),
    /// `keepalive enforce`: attached or updated.
    Enforced(Enforced<'a>),
    /// `keepalive enforce --status`: one per enforced cgroup.
    Enforcement(Enforcement<'a>),
    /// `keepalive enforce --status`: the last line, always printed.
    EnforceSummary(EnforceSummary),
    /// `keepalive enforce --remove`.
    Removed(Removed<'a>),
    /// `keepalive enforce --existing`: after `enforced`, what was done to
    /// the connections that existed.
    Existing(ExistingJson<'a>),
    /// `keepalive doctor`: one per finding, most severe first.
    Finding(FindingJson),
    /// `keepalive doctor`: the last line, always printed.
    DoctorSummary(DoctorSummary),
    /// `keepalive status`: everything in effect on the host, one line.
    HostStatus(HostStatus),
}

/// Writes `message` as one line. Errors are I/O errors, so that a closed
/// stdout is recognised as such wherever it is reported.
pub fn write(out: &mut impl Write, message: &Message<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, message).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// [`write`] to stdout.
pub fn print(message: &Message<'_>) -> io::Result<()> {
    write(&mut io::stdout().lock(), message)
}

/// The vocabulary's name for a socket option: the flag that sets it.
pub fn option_setting(option: KeepaliveOption) -> &'static str {
    match option {
        KeepaliveOption::Keepalive => "keepalive",
        KeepaliveOption::Idle => "idle",
        KeepaliveOption::Interval => "interval",
        KeepaliveOption::Count => "count",
        KeepaliveOption::UserTimeout => "user_timeout_ms",
    }
}

/// The vocabulary's name for a keepalive sysctl: the flag that sets it.
pub fn sysctl_setting(key: SysctlKey) -> &'static str {
    match key {
        SysctlKey::Time => "idle",
        SysctlKey::Intvl => "interval",
        SysctlKey::Probes => "count",
    }
}

/// A socket's keepalive options, as getsockopt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Options {
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, seconds.
    pub idle: u32,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval: u32,
    /// `TCP_KEEPCNT`.
    pub count: u32,
    /// `TCP_USER_TIMEOUT`, milliseconds; `null` when unset.
    pub user_timeout_ms: Option<u32>,
}

impl From<&KeepaliveState> for Options {
    fn from(s: &KeepaliveState) -> Options {
        Options {
            keepalive: s.enabled,
            idle: s.idle,
            interval: s.interval,
            count: s.count,
            user_timeout_ms: (s.user_timeout_ms != 0).then_some(s.user_timeout_ms),
        }
    }
}

/// What is set; `null` leaves a value alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SettingsJson {
    /// `TCP_KEEPIDLE`, seconds.
    pub idle: Option<u16>,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval: Option<u16>,
    /// `TCP_KEEPCNT`.
    pub count: Option<u8>,
    /// A fixed `TCP_USER_TIMEOUT`, milliseconds.
    pub user_timeout_ms: Option<u32>,
    /// `TCP_USER_TIMEOUT` = idle + interval x count, per connection.
    pub user_timeout_auto: bool,
}

impl From<&Settings> for SettingsJson {
    fn from(s: &Settings) -> SettingsJson {
        SettingsJson {
            idle: s.idle.map(|v| v.get()),
            interval: s.interval.map(|v| v.get()),
            count: s.count.map(|v| v.get()),
            user_timeout_ms: match s.user_timeout {
                Some(UserTimeout::Millis(ms)) => Some(ms.get()),
                _ => None,
            },
            user_timeout_auto: s.user_timeout == Some(UserTimeout::Auto),
        }
    }
}

/// A network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Netns {
    /// The namespace's inode (`net:[INODE]`).
    pub inode: u64,
    /// `NAME` for `/run/netns/NAME`.
    pub name: Option<String>,
    /// The file it was opened from (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub path: Option<PathBuf>,
    /// The process whose namespace it is, for `--pid`.
    pub pid: Option<u32>,
    /// The caller's own namespace.
    pub current: bool,
}

impl From<&NetNs> for Netns {
    fn from(ns: &NetNs) -> Netns {
        Netns {
            inode: ns.inode(),
            name: ns.name().map(str::to_owned),
            path: ns.path().map(Path::to_path_buf),
            pid: ns.pid(),
            current: ns.is_current(),
        }
    }
}

/// `keepalive check`.
#[derive(Debug, Serialize)]
pub struct CheckedSocket {
    #[serde(flatten)]
    pub options: Options,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
}

/// One option that differs, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `keepalive`, `idle`, `interval`, `count` or `user_timeout_ms`; the
    /// values as getsockopt reports them (`keepalive` 0 or 1,
    /// `user_timeout_ms` 0 when unset).
    pub setting: &'static str,
    pub old: u32,
    pub new: u32,
}

/// A process holding a socket.
#[derive(Debug, Serialize)]
pub struct Process<'a> {
    pub pid: u32,
    pub command: &'a str,
    pub fd: i32,
}

/// A socket's pending timer.
#[derive(Debug, Serialize)]
pub struct TimerJson {
    /// `keepalive`, `retransmit`, `time-wait`, `zero-window-probe`, `other`.
    pub kind: &'static str,
    pub left_ms: u64,
    /// Probes sent (keepalive, zero-window probe) or retransmissions.
    pub count: u8,
}

/// `keepalive ls`: one socket.
#[derive(Debug, Serialize)]
pub struct Connection<'a> {
    /// `inet` or `inet6`.
    pub family: &'static str,
    /// `established`, `listen`, `time-wait`, ...
    pub state: &'static str,
    pub local: SocketAddr,
    /// `null` for a listener.
    pub remote: Option<SocketAddr>,
    pub inode: u64,
    pub uid: u32,
    /// `[]` when no process holds it, `null` when that could not be seen.
    pub processes: Option<Vec<Process<'a>>>,
    pub timer: Option<TimerJson>,
    /// `null` when unknown or not applicable (no socket a program holds).
    pub keepalive: Option<bool>,
    /// How `keepalive` is known: `SO_KEEPALIVE` (read with getsockopt) or
    /// `timer` (seen in the dump).
    pub keepalive_from: Option<&'static str>,
    /// With `--pid`: the socket's options.
    pub options: Option<Options>,
    pub recv_queue: u32,
    pub send_queue: u32,
}

/// `keepalive ls`: the counts of the summary line.
#[derive(Debug, Serialize)]
pub struct LsSummary {
    pub netns: Netns,
    /// Sockets that are connections (not listening, not TIME-WAIT).
    pub connections: u64,
    /// Connections with keepalive known to be off.
    pub without_keepalive: u64,
    /// Connections whose keepalive another timer hides.
    pub keepalive_unknown: u64,
    pub listening: u64,
    /// Listeners with `SO_KEEPALIVE` off; `null` without `--pid`.
    pub listening_without_keepalive: Option<u64>,
}

/// `keepalive attach`: one socket.
#[derive(Debug, Serialize)]
pub struct Attached<'a> {
    pub fds: &'a [i32],
    pub inode: u64,
    pub state: &'static str,
    pub local: SocketAddr,
    /// `null` for a listener.
    pub remote: Option<SocketAddr>,
    pub before: Option<Options>,
    /// Read back; with `--dry-run`, what would be set.
    pub after: Option<Options>,
    pub changes: Vec<Change>,
    pub dry_run: bool,
    /// `null`, or what went wrong.
    pub error: Option<&'a str>,
}

/// `keepalive attach`: a descriptor left alone.
#[derive(Debug, Serialize)]
pub struct Skipped<'a> {
    pub fd: i32,
    pub inode: u64,
    /// `closed` (since it was listed) or `reused` (the number now holds
    /// another file).
    pub reason: &'a str,
}

/// `keepalive attach`: the counts.
#[derive(Debug, Serialize)]
pub struct AttachSummary<'a> {
    pub pid: u32,
    pub command: &'a str,
    pub sockets: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub dry_run: bool,
}

/// `keepalive sysctl`: the kernel defaults of a namespace.
#[derive(Debug, Serialize)]
pub struct SysctlValues {
    pub netns: Netns,
    /// `net.ipv4.tcp_keepalive_time`, seconds.
    pub idle: u64,
    /// `net.ipv4.tcp_keepalive_intvl`, seconds.
    pub interval: u64,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub count: u64,
    /// idle + interval x count: when a dead idle peer is noticed.
    pub detection_secs: u64,
}

/// `keepalive sysctl set`: one value written.
#[derive(Debug, Serialize)]
pub struct SysctlChange {
    /// `idle`, `interval` or `count`.
    pub setting: &'static str,
    /// The sysctl, `net.ipv4.tcp_keepalive_time`.
    pub key: &'static str,
    pub old: u64,
    pub new: u64,
}

/// The sysctl.d drop-in.
#[derive(Debug, Serialize)]
pub struct Persisted<'a> {
    pub path: &'a Path,
    /// False when it already held these values.
    pub changed: bool,
}

/// A later sysctl.d line that overrides the drop-in at boot.
#[derive(Debug, Serialize)]
pub struct Override<'a> {
    pub path: &'a Path,
    pub line: usize,
    pub key: &'static str,
    /// As the file writes it.
    pub value: &'a str,
}

/// An enforcement's settings.
#[derive(Debug, Serialize)]
pub struct PolicyJson {
    #[serde(flatten)]
    pub settings: SettingsJson,
    /// Also replaces the settings of programs that switch keepalive on.
    pub force: bool,
    /// `default`, `force` or `max_idle`.
    pub mode: &'static str,
    /// `--max-idle` in seconds, else `null`.
    pub max_idle_secs: Option<u32>,
}

/// `keepalive enforce`.
#[derive(Debug, Serialize)]
pub struct Enforced<'a> {
    pub cgroup: &'a Path,
    pub cgroup_id: u64,
    /// The systemd unit it was made for (`--unit`), else `null`.
    pub unit: Option<&'a str>,
    /// systemd enforces it again at every start of the unit.
    pub persisted: bool,
    /// `attached` or `updated`.
    pub change: &'static str,
    pub settings: PolicyJson,
    pub previous: Option<PolicyJson>,
    pub pin_dir: &'a Path,
    pub prog_id: u32,
    pub link_id: u32,
    /// The cgroup/setsockopt companion (holds --force and --max-idle
    /// against the program's setsockopt), `null` if not attached.
    pub setsockopt_prog_id: Option<u32>,
    pub setsockopt_link_id: Option<u32>,
}

/// `keepalive enforce --status`: one cgroup.
#[derive(Debug, Serialize)]
pub struct Enforcement<'a> {
    /// `null` when the cgroup is gone.
    pub cgroup: Option<&'a Path>,
    pub cgroup_id: u64,
    /// The cgroup path it was made for (kept after the cgroup is gone);
    /// `null` for pins that record nothing.
    pub path: Option<&'a Path>,
    /// The systemd unit it was made for, else `null`.
    pub unit: Option<&'a str>,
    /// systemd enforces it again at every start of the unit.
    pub persisted: bool,
    /// The program acts on the cgroup now.
    pub attached: bool,
    pub prog_id: Option<u32>,
    pub link_id: Option<u32>,
    pub setsockopt_prog_id: Option<u32>,
    pub setsockopt_link_id: Option<u32>,
    pub link_pinned: bool,
    /// `null` when unreadable.
    pub settings: Option<PolicyJson>,
    pub pin_dir: &'a Path,
}

/// `keepalive enforce --status`: the counts.
#[derive(Debug, Serialize)]
pub struct EnforceSummary {
    pub enforcements: u64,
    pub attached: u64,
    /// The units with our drop-in, running or not, sorted.
    pub persisted_units: Vec<String>,
}

/// A program detached from a cgroup.
#[derive(Debug, Serialize)]
pub struct Detached {
    pub prog_id: u32,
    pub link_id: u32,
}

/// `keepalive enforce --remove`.
#[derive(Debug, Serialize)]
pub struct Removed<'a> {
    /// The cgroup asked for, or found for the unit; `null` when unknown.
    pub cgroup: Option<&'a Path>,
    /// `null` when the cgroup does not exist (any more).
    pub cgroup_id: Option<u64>,
    /// With `--unit`.
    pub unit: Option<&'a str>,
    pub detached: Vec<Detached>,
    /// The cgroup/setsockopt companions of those, detached with them.
    pub setsockopt_detached: Vec<Detached>,
    /// The live cgroup's pin directory.
    pub unpinned: Option<&'a Path>,
    /// Pin directories of gone cgroups made for the same path or unit.
    pub left_over: Vec<&'a Path>,
    /// The systemd files removed (drop-in, our unit's symlinks).
    pub unpersisted: Vec<&'a Path>,
    /// `systemctl daemon-reload` ran.
    pub reloaded: bool,
}

/// `keepalive enforce --existing`: the connections that existed.
#[derive(Debug, Serialize)]
pub struct ExistingJson<'a> {
    pub cgroup: &'a Path,
    /// `iterator` (a BPF iterator over TCP sockets, in the kernel) or
    /// `pidfd` (pidfd_getfd over the cgroup's processes).
    pub way: &'static str,
    /// Why the iterator could not be used, when `way` is `pidfd` by
    /// fallback; else `null`.
    pub fallback: Option<&'a str>,
    /// The network namespaces of the cgroup's processes (each searched).
    pub namespaces: usize,
    /// The processes in the cgroup and below it.
    pub processes: usize,
    /// Sockets whose settings were set now.
    pub changed: u64,
    /// Of those, listening sockets (the connections they accept inherit).
    pub listening: u64,
    /// Sockets left alone: their program switched keepalive on itself
    /// (without --force), or already within --max-idle.
    pub left_alone: u64,
    /// Sockets where a setsockopt failed.
    pub failed: u64,
    /// `pidfd` only: sockets that could not be duplicated (process gone,
    /// no right, closed meanwhile).
    pub unreachable: u64,
}

/// `keepalive doctor`: one finding.
#[derive(Debug, Serialize)]
pub struct FindingJson {
    /// `critical`, `warning` or `info`.
    pub severity: &'static str,
    /// `no_keepalive`, `too_slow`, `unknown`, `defaults_too_slow`,
    /// `unacknowledged_data`, `all_covered`.
    pub kind: &'static str,
    /// What will happen, in one sentence.
    pub message: String,
    /// The process, for findings about one.
    pub pid: Option<u32>,
    pub command: Option<String>,
    /// Its systemd unit, when it has one.
    pub unit: Option<String>,
    /// Its cgroup v2 path.
    pub cgroup: Option<String>,
    /// How many connections the finding is about.
    pub connections: Option<u64>,
    /// The longest idle among them, seconds, when the kernel said.
    pub oldest_idle_secs: Option<u64>,
    /// The commands that fix it, the most direct first.
    pub fixes: Vec<String>,
}

/// `keepalive doctor`: the counts, and what the findings were judged by.
#[derive(Debug, Serialize)]
pub struct DoctorSummary {
    pub netns: Netns,
    /// The idle timeout, seconds; `null` when none is known.
    pub idle_timeout_secs: Option<u64>,
    /// `conntrack`, `ipvs`, `given`, or a preset's name.
    pub timeout_source: Option<String>,
    /// Established connections.
    pub connections: u64,
    /// Whether their options were read (root), or only their timers seen.
    pub options_read: bool,
    /// True when anything is a warning or worse (exit status 1).
    pub at_risk: bool,
    pub critical: u64,
    pub warning: u64,
    pub info: u64,
}

/// `keepalive status`: everything in effect on this host.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    /// The namespace the defaults are read in (the caller's).
    pub netns: Netns,
    /// The kernel defaults: `{idle, interval, count, detection_secs}`.
    pub defaults: DefaultsJson,
    /// The keepalive sysctls set at boot, the winner of each key.
    pub persisted: Vec<PersistedSetting>,
    /// Later files that override our drop-in.
    pub overrides: Vec<PersistedSetting>,
    /// `/etc/ld.so.preload`.
    pub global_preload: GlobalPreloadJson,
    /// Each enforcement: `{cgroup, cgroup_id, attached}`.
    pub enforcements: Vec<StatusEnforcement>,
}

/// Kernel defaults, seconds and a count.
#[derive(Debug, Serialize)]
pub struct DefaultsJson {
    pub idle: u64,
    pub interval: u64,
    pub count: u64,
    /// idle + interval x count.
    pub detection_secs: u64,
}

/// A keepalive sysctl in a configuration file.
#[derive(Debug, Serialize)]
pub struct PersistedSetting {
    /// `idle`, `interval` or `count`.
    pub setting: &'static str,
    /// `net.ipv4.tcp_keepalive_time`.
    pub key: &'static str,
    /// As written.
    pub value: String,
    pub path: PathBuf,
    pub line: usize,
}

/// The global preload.
#[derive(Debug, Serialize)]
pub struct GlobalPreloadJson {
    /// The file read, `/etc/ld.so.preload`.
    pub file: PathBuf,
    /// The entry naming libkeepalive.so; `null`: not preloaded.
    pub entry: Option<PathBuf>,
    /// The entry's file exists.
    pub library_present: bool,
    /// It loads (test-loaded into `keepalive check`); `null` when there is
    /// nothing to load.
    pub loads: Option<bool>,
}

/// An enforcement, as `status` lists it.
#[derive(Debug, Serialize)]
pub struct StatusEnforcement {
    /// `null` when the cgroup is gone.
    pub cgroup: Option<PathBuf>,
    pub cgroup_id: u64,
    pub attached: bool,
}

#[cfg(test)]
mod tests {
    use keepalive::{Millis, Seconds};

    use super::*;

    #[test]
    fn a_message_is_type_and_data() {
        let state = KeepaliveState {
            enabled: true,
            idle: 60,
            interval: 10,
            count: 6,
            user_timeout_ms: 0,
        };
        let mut out = Vec::new();
        let msg = Message::Socket(CheckedSocket {
            options: Options::from(&state),
            local: None,
            peer: "127.0.0.1:22".parse().ok(),
        });
        write(&mut out, &msg).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"socket\",\"data\":{\"keepalive\":true,\"idle\":60,\"interval\":10,\
             \"count\":6,\"user_timeout_ms\":null,\"local\":null,\"peer\":\"127.0.0.1:22\"}}\n"
        );
    }

    #[test]
    fn settings_leave_unset_values_null() {
        let s = Settings {
            idle: Some(Seconds::new(60).unwrap()),
            user_timeout: Some(UserTimeout::Auto),
            ..Settings::new()
        };
        let json = serde_json::to_value(SettingsJson::from(&s)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"idle": 60, "interval": null, "count": null,
                "user_timeout_ms": null, "user_timeout_auto": true})
        );
        let fixed = Settings {
            user_timeout: Some(UserTimeout::Millis(Millis::new(1500).unwrap())),
            ..Settings::new()
        };
        assert_eq!(SettingsJson::from(&fixed).user_timeout_ms, Some(1500));
    }

    #[test]
    fn type_names_are_snake_case() {
        let msg = Message::EnforceSummary(EnforceSummary {
            enforcements: 0,
            attached: 0,
            persisted_units: vec!["app.service".to_owned()],
        });
        let mut out = Vec::new();
        write(&mut out, &msg).unwrap();
        assert_eq!(
            out,
            b"{\"type\":\"enforce_summary\",\"data\":{\"enforcements\":0,\"attached\":0,\
              \"persisted_units\":[\"app.service\"]}}\n"
        );
    }
}
