//! What `--json` prints, decoded into the tests' own types: a mirror of
//! the schema in `src/json.rs`, written from its documentation, not shared
//! with it, so that a change of the wire format fails here. Every struct
//! denies unknown fields: a field added, renamed or removed is a failure.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::Output;

/// One line of `--json` output: `{"type": TYPE, "data": DATA}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Message {
    Socket(CheckedSocket),
    Connection(Connection),
    LsSummary(LsSummary),
    Attached(Attached),
    #[allow(dead_code, reason = "no test makes attach skip a descriptor")]
    Skipped(Skipped),
    AttachSummary(AttachSummary),
    Sysctl(SysctlValues),
    Change(SysctlChange),
    Persisted(Persisted),
    Override(Override),
    Enforced(Enforced),
    Enforcement(Enforcement),
    EnforceSummary(EnforceSummary),
    Removed(Removed),
    Finding(Finding),
    DoctorSummary(DoctorSummary),
}

/// Every stdout line of `out` decoded; panics, showing the output, on a
/// line that is not a [`Message`].
pub fn messages(out: &Output) -> Vec<Message> {
    out.stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a message ({e}): {line}\n{out}"))
        })
        .collect()
}

/// The one line of `out`, decoded; panics unless there is exactly one.
pub fn only_message(out: &Output) -> Message {
    let mut all = messages(out);
    assert_eq!(all.len(), 1, "want one JSON line\n{out}");
    all.remove(0)
}

/// A socket's options, as getsockopt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub keepalive: bool,
    pub idle: u32,
    pub interval: u32,
    pub count: u32,
    /// `None`: unset.
    pub user_timeout_ms: Option<u32>,
}

/// `keepalive check`: the options' fields, flat, and the addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedSocket {
    pub keepalive: bool,
    pub idle: u32,
    pub interval: u32,
    pub count: u32,
    pub user_timeout_ms: Option<u32>,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
}

/// A network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Netns {
    pub inode: u64,
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    pub pid: Option<u32>,
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    pub command: String,
    pub fd: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    /// `keepalive`, `retransmit`, `time-wait`, `zero-window-probe`, `other`.
    pub kind: String,
    pub left_ms: u64,
    pub count: u8,
}

/// `keepalive ls`: one socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub family: String,
    pub state: String,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub inode: u64,
    pub uid: u32,
    pub processes: Option<Vec<Process>>,
    pub timer: Option<Timer>,
    pub keepalive: Option<bool>,
    /// `SO_KEEPALIVE` or `timer`.
    pub keepalive_from: Option<String>,
    pub options: Option<Options>,
    pub recv_queue: u32,
    pub send_queue: u32,
}

/// `keepalive ls`: the last line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LsSummary {
    pub netns: Netns,
    pub connections: u64,
    pub without_keepalive: u64,
    pub keepalive_unknown: u64,
    pub listening: u64,
    pub listening_without_keepalive: Option<u64>,
}

/// One option an attach changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// `keepalive`, `idle`, `interval`, `count` or `user_timeout_ms`.
    pub setting: String,
    pub old: u32,
    pub new: u32,
}

/// `keepalive attach`: one socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attached {
    pub fds: Vec<i32>,
    pub inode: u64,
    pub state: String,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub before: Option<Options>,
    pub after: Option<Options>,
    pub changes: Vec<Change>,
    pub dry_run: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub fd: i32,
    pub inode: u64,
    pub reason: String,
}

/// `keepalive attach`: the last line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSummary {
    pub pid: u32,
    pub command: String,
    pub sockets: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub dry_run: bool,
}

/// `keepalive sysctl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlValues {
    pub netns: Netns,
    pub idle: u64,
    pub interval: u64,
    pub count: u64,
    pub detection_secs: u64,
}

/// `keepalive sysctl set`: one value written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlChange {
    pub setting: String,
    pub key: String,
    pub old: u64,
    pub new: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    pub path: PathBuf,
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub path: PathBuf,
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// An enforcement's settings: `None` is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub idle: Option<u16>,
    pub interval: Option<u16>,
    pub count: Option<u8>,
    pub user_timeout_ms: Option<u32>,
    pub user_timeout_auto: bool,
    pub force: bool,
    /// `default`, `force` or `max_idle`.
    pub mode: String,
    pub max_idle_secs: Option<u32>,
}

/// `keepalive enforce`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforced {
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub unit: Option<String>,
    pub persisted: bool,
    /// `attached` or `updated`.
    pub change: String,
    pub settings: Policy,
    pub previous: Option<Policy>,
    pub pin_dir: PathBuf,
    pub prog_id: u32,
    pub link_id: u32,
    pub setsockopt_prog_id: Option<u32>,
    pub setsockopt_link_id: Option<u32>,
}

/// `keepalive enforce --status`: one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    pub cgroup: Option<PathBuf>,
    pub cgroup_id: u64,
    /// The path it was made for.
    pub path: Option<PathBuf>,
    pub unit: Option<String>,
    pub persisted: bool,
    pub attached: bool,
    pub prog_id: Option<u32>,
    pub link_id: Option<u32>,
    pub setsockopt_prog_id: Option<u32>,
    pub setsockopt_link_id: Option<u32>,
    pub link_pinned: bool,
    pub settings: Option<Policy>,
    pub pin_dir: PathBuf,
}

/// `keepalive enforce --status`: the last line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforceSummary {
    pub enforcements: u64,
    pub attached: u64,
    pub persisted_units: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detached {
    pub prog_id: u32,
    pub link_id: u32,
}

/// `keepalive enforce --remove`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removed {
    pub cgroup: Option<PathBuf>,
    pub cgroup_id: Option<u64>,
    pub unit: Option<String>,
    pub detached: Vec<Detached>,
    pub setsockopt_detached: Vec<Detached>,
    pub unpinned: Option<PathBuf>,
    pub left_over: Vec<PathBuf>,
    pub unpersisted: Vec<PathBuf>,
    pub reloaded: bool,
}

/// `keepalive doctor`: one finding.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `no_keepalive`, `too_slow`, `unknown`, `defaults_too_slow`,
    /// `unacknowledged_data`, `all_covered`.
    pub kind: String,
    /// What will happen, in one sentence.
    pub message: String,
    pub pid: Option<u32>,
    pub command: Option<String>,
    pub unit: Option<String>,
    pub cgroup: Option<String>,
    pub connections: Option<u64>,
    pub oldest_idle_secs: Option<u64>,
    /// The commands that fix it, the most direct first.
    pub fixes: Vec<String>,
}

/// `keepalive doctor`: the last line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorSummary {
    pub netns: Netns,
    pub idle_timeout_secs: Option<u64>,
    /// `conntrack`, `ipvs`, `given`, or a preset's name.
    pub timeout_source: Option<String>,
    pub connections: u64,
    pub options_read: bool,
    pub at_risk: bool,
    pub critical: u64,
    pub warning: u64,
    pub info: u64,
}

#[test]
fn a_message_decodes_by_type_and_rejects_unknown_fields() {
    let line =
        r#"{"type":"enforce_summary","data":{"enforcements":2,"attached":1,"persisted_units":[]}}"#;
    let msg: Message = serde_json::from_str(line).unwrap();
    assert!(
        matches!(
            &msg,
            Message::EnforceSummary(EnforceSummary {
                enforcements: 2,
                attached: 1,
                persisted_units,
            }) if persisted_units.is_empty()
        ),
        "{msg:?}"
    );
    let extra = r#"{"type":"enforce_summary","data":{"enforcements":2,"attached":1,"persisted_units":[],"x":0}}"#;
    let err = serde_json::from_str::<Message>(extra).unwrap_err();
    assert!(err.to_string().contains("unknown field `x`"), "{err}");
    let old = r#"{"type":"summary","data":{}}"#;
    let err = serde_json::from_str::<Message>(old).unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `summary`"),
        "{err}"
    );
}
