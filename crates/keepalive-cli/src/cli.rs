//! The command line: clap definitions and the parsers that turn arguments
//! into checked keepalive values.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use keepalive::parse::{BareUnit, ErrorKind, parse_count, parse_seconds, parse_user_timeout};
use keepalive::{ProbeCount, Seconds, Settings, UserTimeout};
use keepalive_bpf::Policy;

mod observe;

pub use observe::{DoctorArgs, MetricsArgs, StatusArgs, TimeoutArgs};

/// TCP keepalive for programs that don't ask for it.
///
/// Idle TCP connections die silently behind NATs, firewalls and load
/// balancers, and a peer that lost power is never noticed. `keepalive`
/// switches TCP keepalive on for programs you cannot change, and shows
/// what the kernel ended up with.
#[derive(Debug, Parser)]
#[command(name = "keepalive", version, max_term_width = 100)]
#[command(after_help = "\
Examples:
  keepalive run --idle 60 --interval 10 --count 6 -- ssh host
  keepalive run --idle 5m --user-timeout auto -- python3 client.py
  keepalive check
  keepalive run --idle 180 -- keepalive check --connect example.org:443
  sudo keepalive doctor --behind aws-nlb

Exit status: 0 when done; 1 only when a check found a problem (`check`:
keepalive is off; `doctor`: something is at risk); 2 on an error or a
wrong command line. `run` exits with its command's status (126: cannot
execute it, 127: not found). A closed stdout (`| head`) ends quietly
with 0.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Check(CheckArgs),
    Sysctl(SysctlArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Ls(LsArgs),
    Attach(AttachArgs),
    Enforce(EnforceArgs),
    Doctor(DoctorArgs),
    Metrics(MetricsArgs),
    #[command(hide = true)]
    Generate(crate::generate::GenerateArgs),
    Status(StatusArgs),
}

/// Which connections `ls` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum StateFilter {
    /// Established connections (the default).
    #[default]
    Established,
    /// Listening sockets.
    Listen,
    /// Every TCP socket.
    All,
}

/// List TCP connections and their keepalive state (sock_diag).
///
/// Every TCP socket (IPv4 and IPv6) of the host, or of one network
/// namespace, with its addresses, state, owning process and keepalive
/// timer: armed or not, time left, probes sent. With --pid, also each
/// socket's own SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and
/// TCP_USER_TIMEOUT, read on a duplicate of the process's descriptor.

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive ls
  keepalive ls --pid 4242
  keepalive ls --netns blue --state all
  keepalive ls --dport 5432 --without-keepalive
  keepalive ls --json")]
pub struct LsArgs {
    /// Only the sockets of process PID, with their socket options.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// List inside this network namespace (/run/netns/NAME or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    /// Which sockets to list.
    #[arg(long, value_enum, default_value_t)]
    pub state: StateFilter,

    /// Only sockets with PORT as their local or remote port.
    #[arg(long, value_name = "PORT", conflicts_with_all = ["sport", "dport"])]
    pub port: Option<u16>,

    /// Only sockets whose local (source) port is PORT.
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,

    /// Only sockets whose remote (destination) port is PORT.
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,

    /// Only connections whose keepalive is known to be off.
    #[arg(long)]
    pub without_keepalive: bool,

    /// Print JSON lines ({"type":"connection","data":{...}}) instead.
    #[arg(long)]
    pub json: bool,
}

/// Switch keepalive on in a running process (pidfd_getfd).
///
/// For every TCP socket of the process, established ones and listening ones
/// (so that connections accepted later inherit the settings), a duplicate
/// of its descriptor is taken with pidfd_getfd(2), checked to still be the
/// same socket, set, read back and reported. The process is not stopped
/// and its sockets are never closed. Needs the right to ptrace it (same
/// user and not protected, or CAP_SYS_PTRACE) and Linux >= 5.6.
///
/// A value left out keeps each socket's current value (what its program
/// set, or the kernel default); --user-timeout auto is computed for each
/// socket from the values it ends up with.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive ls --pid 4242                  # before
  sudo keepalive attach --pid 4242 --idle 60 --interval 10 --count 6
  keepalive attach --pid 4242 --idle 5m --dry-run")]
pub struct AttachArgs {
    /// The process.
    #[arg(long, value_name = "PID")]
    pub pid: u32,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Enforce keepalive in the kernel for every TCP connection of a cgroup.
///
/// A BPF sock_ops program attached to a cgroup v2 switches keepalive on,
/// with the settings, for every TCP connection its processes establish
/// (both sides): static and Go binaries included, which a preload cannot
/// reach. The settings live in a BPF map: running it again on the same
/// cgroup changes them for new connections, without reloading. A value
/// left out is the kernel default (net.ipv4.tcp_keepalive_*). Needs root.
///
/// What a program sets itself: by default a connection whose program
/// switched keepalive on keeps its own values, and setsockopt calls made
/// after connecting stand. --force sets ours on every connection and holds
/// them: a companion cgroup/setsockopt program rewrites the program's later
/// SO_KEEPALIVE and TCP_KEEP* calls to our values. --max-idle D is the
/// guarantee a NAT or load balancer with an idle timeout needs: keepalive
/// on, idle and interval at most D, whatever the program does before or
/// after connecting (its setsockopt(SO_KEEPALIVE, 0) and values above D are
/// rewritten; shorter values, as Go's 15 s, stand). Either way the
/// program's setsockopt calls still succeed. With enforcements on a cgroup
/// and on one below it, the most specific cgroup's settings win.
///
/// --unit finds the cgroup of a systemd service or slice (`systemctl
/// show -p ControlGroup`). systemd makes a new cgroup at every start of a
/// unit and the enforcement ends with the old one: --persist makes systemd
/// enforce again at every start (restarts and reboots). For a service it
/// writes the drop-in /etc/systemd/system/NAME.d/50-keepalive.conf, whose
/// `ExecStartPre=-+keepalive enforce --unit NAME ...` runs in the new
/// cgroup before the service's program starts; for a slice it enables
/// keepalive-enforce@NAME.service, with the command line in its drop-in.
/// Then it runs `systemctl daemon-reload`. A unit that is not running is
/// enforced at its next start. --remove undoes all of it: the link, the
/// pins (also those of the unit's earlier cgroups) and the drop-in.
///
/// --status lists each enforcement: its cgroup (or that it is gone), the
/// unit or path it was made for, whether it is persisted, whether it is
/// attached now, and its values.
///
/// --existing also applies the settings now to the TCP connections that
/// already exist in the cgroup and below it, established and listening
/// (connections they accept later inherit), with the same rules as for new
/// ones, without stopping or ptracing anything: a BPF iterator over the TCP
/// sockets of each network namespace the cgroup's processes are in picks
/// the sockets made in the cgroup and calls setsockopt on them in the
/// kernel (Linux 5.15 with BTF). Where the kernel cannot, it falls back to
/// duplicating the processes' sockets with pidfd_getfd (Linux 5.6), as
/// `keepalive attach` does, and says so. It reports how many sockets were
/// changed and left alone.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sudo keepalive enforce --unit app.service --idle 60 --persist
  sudo keepalive enforce --unit kubepods.slice --idle 60 --interval 10 --persist
  sudo keepalive enforce --unit app.service --remove
  sudo keepalive enforce --cgroup /sys/fs/cgroup/system.slice/app.service --idle 60
  sudo keepalive enforce --cgroup system.slice/app.service --remove
  sudo keepalive enforce --unit app.service --idle 60 --existing   # also the open connections
  sudo keepalive enforce --all --idle 5m --interval 1m      # every process on the host
  sudo keepalive enforce --status
  sudo keepalive run --enforce --idle 60 -- ./static-binary")]
pub struct EnforceArgs {
    /// The cgroup v2 directory: absolute, or relative to the cgroup2 mount
    /// (system.slice/app.service). Not the root cgroup: that is --all.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present_any = ["status", "unit", "all"],
        conflicts_with_all = ["unit", "all"]
    )]
    pub cgroup: Option<PathBuf>,

    /// The root cgroup: every process on this host (every pod of a
    /// Kubernetes node). Only with this flag, never through a path.
    #[arg(long, conflicts_with = "unit")]
    pub all: bool,

    /// The systemd unit whose cgroup to enforce on: a service or a slice
    /// (app.service, system.slice, kubepods.slice).
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Replace keepalive settings a program makes itself, and hold them
    /// against its later setsockopt (by default a connection whose program
    /// switched keepalive on is left alone).
    #[arg(long)]
    pub force: bool,

    /// Keepalive always on, idle and interval at most DURATION, whatever
    /// the program sets (shorter values stand): 1s..32767s.
    ///
    /// For a NAT, firewall or load balancer that drops connections idle
    /// longer than its timeout: take a DURATION below that timeout. The
    /// program's setsockopt(SO_KEEPALIVE, 0) and TCP_KEEPIDLE/TCP_KEEPINTVL
    /// above DURATION are rewritten in the kernel and still return success.
    /// --idle and --interval, when given, must not exceed it.
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, conflicts_with = "force")]
    pub max_idle: Option<Seconds>,

    /// With --unit: enforce again at every start of the unit (restarts,
    /// reboots), through a systemd drop-in.
    #[arg(long, requires = "unit", conflicts_with = "remove")]
    pub persist: bool,

    /// Write and remove the systemd files under DIR instead of / (an image,
    /// a test); `systemctl daemon-reload` is then not run.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// List where enforcement is attached, what for, and with which values.
    #[arg(long, conflicts_with_all = ["cgroup", "unit", "all", "remove", "persist", "force", "max_idle", "idle", "interval", "count", "user_timeout"])]
    pub status: bool,

    /// Detach, remove the pins, and with --unit the drop-in.
    #[arg(long, conflicts_with_all = ["force", "max_idle", "idle", "interval", "count", "user_timeout"])]
    pub remove: bool,

    /// Also apply the settings now to the connections that already exist
    /// in the cgroup and below it (established and listening).
    #[arg(long, conflicts_with_all = ["status", "remove"])]
    pub existing: bool,

    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The keepalive values, shared by every command that sets them.
#[derive(Debug, Args, Default)]
pub struct SettingsArgs {
    /// Idle time before the first probe (TCP_KEEPIDLE): 1s..32767s.
    ///
    /// A bare number is seconds; units as systemd writes them are accepted
    /// (90, 90s, 10m, 1h30m, 2min).
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, allow_hyphen_values = true)]
    pub idle: Option<Seconds>,

    /// Time between probes (TCP_KEEPINTVL): 1s..32767s.
    ///
    /// A bare number is seconds; units as for --idle.
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, allow_hyphen_values = true)]
    pub interval: Option<Seconds>,

    /// Unanswered probes before the connection is dropped (TCP_KEEPCNT): 1..127.
    #[arg(long, value_name = "N", value_parser = parse_probes, allow_hyphen_values = true)]
    pub count: Option<ProbeCount>,

    /// Give up on unacknowledged data after this long (TCP_USER_TIMEOUT).
    ///
    /// Keepalive alone never fires while sent data is unacknowledged; this
    /// bounds that case too. Takes a duration with a unit (1500ms, 30s, 5m,
    /// 1h30m) or `auto` (= idle + interval x count, from the effective values).
    #[arg(long, value_name = "DURATION|auto", value_parser = parse_user_timeout_arg)]
    pub user_timeout: Option<UserTimeout>,
}

impl SettingsArgs {
    /// The one conversion of the settings flags: keepalive on, with the
    /// values given; the others left unset.
    pub fn settings(&self) -> Settings {
        Settings {
            idle: self.idle,
            interval: self.interval,
            count: self.count,
            user_timeout: self.user_timeout,
            ..Settings::new()
        }
    }

    /// The settings as an enforcement policy.
    pub fn policy(&self, force: bool) -> Policy {
        Policy::new(&self.settings(), force)
    }
}

/// Run a program with TCP keepalive on its sockets (LD_PRELOAD).
///
/// The command runs with libkeepalive.so prepended to LD_PRELOAD and the
/// settings passed as KEEPIDLE, KEEPINTVL, KEEPCNT and TCP_USER_TIMEOUT
/// (options override those variables when already set; KEEPALIVE is set
/// to `on`, or `off` with --off). Every TCP socket the command and its
/// children create or accept gets SO_KEEPALIVE and those values; sockets
/// whose program sets its own values keep them. A value left out keeps
/// the variable already set, else the kernel default
/// (net.ipv4.tcp_keepalive_*, see `keepalive sysctl`).
///
/// The exit status is the command's. A warning is printed when the command
/// is statically linked, a Go program, setuid/setgid or has file
/// capabilities, since a preload cannot reach those.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive run -- curl -N https://example.org/stream
  keepalive run --idle 60 --interval 10 --count 6 -- ssh host
  keepalive run --idle 2m --user-timeout auto -- python3 client.py
  keepalive run --idle 180 -- keepalive check      # see what a program gets
  keepalive run --debug -- wget https://example.org/   # one stderr line per socket

The library is looked for in $KEEPALIVE_LIBRARY, then next to the keepalive
executable, then in <prefix>/lib/keepalive/ beside its bin/, then
/usr/local/lib/keepalive/, then /usr/lib/keepalive/.")]
pub struct RunArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Switch keepalive off (KEEPALIVE=off): for children of a program that
    /// runs under a global preload.
    #[arg(long, conflicts_with_all = ["idle", "interval", "count", "user_timeout"])]
    pub off: bool,

    /// Log one line per socket to stderr (KEEPALIVE_DEBUG=1).
    #[arg(long)]
    pub debug: bool,

    /// Enforce the settings in the kernel instead (cgroup BPF): reaches
    /// static and Go binaries. Needs root.
    #[arg(long, conflicts_with_all = ["off", "debug"])]
    pub enforce: bool,

    /// With --enforce: replace keepalive settings the program makes itself.
    #[arg(long, requires = "enforce")]
    pub force: bool,

    /// With --enforce: keepalive always on, idle and interval at most
    /// DURATION, whatever the command's programs set (see `enforce --max-idle`).
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, requires = "enforce", conflicts_with = "force")]
    pub max_idle: Option<Seconds>,

    /// The command to run, and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Create a TCP socket and print its keepalive options (the HOWTO's test
/// program).
///
/// Prints `SO_KEEPALIVE is ON` or `OFF` and, when on, TCP_KEEPCNT,
/// TCP_KEEPIDLE, TCP_KEEPINTVL (and TCP_USER_TIMEOUT when set), as the
/// kernel reports them. Run it under `keepalive run` or LD_PRELOAD to see
/// what a program gets. Exits 1 when keepalive is off, 2 on an error.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive check
  keepalive run --idle 180 --interval 60 --count 20 -- keepalive check
  LD_PRELOAD=/usr/local/lib/keepalive/libkeepalive.so KEEPIDLE=180 keepalive check
  keepalive check --connect 127.0.0.1:22 --json")]
pub struct CheckArgs {
    /// Connect the socket to HOST:PORT first (5 s timeout).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,

    /// Use an IPv6 socket (without --connect).
    #[arg(long, conflicts_with = "connect")]
    pub ipv6: bool,

    /// Print one JSON line {"type":"socket","data":{...}} instead.
    #[arg(long)]
    pub json: bool,
}

/// The kernel defaults' values, as `sysctl set` and `sysctl persist` take them.
#[derive(Debug, Args, Default, Clone, Copy)]
pub struct DefaultsArgs {
    /// net.ipv4.tcp_keepalive_time: idle time before the first probe, 1s..32767s.
    ///
    /// A bare number is seconds; units as systemd writes them are accepted (600, 10m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, allow_hyphen_values = true)]
    pub idle: Option<Seconds>,

    /// net.ipv4.tcp_keepalive_intvl: time between probes, 1s..32767s.
    #[arg(long, value_name = "DURATION", value_parser = parse_idle, allow_hyphen_values = true)]
    pub interval: Option<Seconds>,

    /// net.ipv4.tcp_keepalive_probes: unanswered probes before the drop, 1..127.
    #[arg(long, value_name = "N", value_parser = parse_probes, allow_hyphen_values = true)]
    pub count: Option<ProbeCount>,
}

impl DefaultsArgs {
    pub fn is_empty(&self) -> bool {
        self.idle.is_none() && self.interval.is_none() && self.count.is_none()
    }
}

/// Which network namespace to act in (the values are per namespace).
#[derive(Debug, Args, Default, Clone)]
pub struct NamespaceArgs {
    /// A named network namespace (/run/netns/NAME, as `ip netns` makes) or
    /// the path of a namespace file (/proc/PID/ns/net, a bind mount).
    #[arg(long, value_name = "NAME|PATH", global = true, conflicts_with = "pid")]
    pub netns: Option<String>,

    /// The network namespace of process PID (a container's process).
    #[arg(long, value_name = "PID", global = true)]
    pub pid: Option<u32>,
}

/// Show or set the kernel defaults, net.ipv4.tcp_keepalive_* (HOWTO 3.1, 3.2).
///
/// These values apply to every socket with keepalive on that does not set
/// its own; they never switch keepalive on by themselves. They are per
/// network namespace: a container has its own, and a new namespace starts
/// at 7200 s / 75 s / 9.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive sysctl                                   # show, with the detection time
  keepalive sysctl set --idle 10m --interval 1m --count 20
  keepalive sysctl set --idle 600 --persist          # and keep it across reboots
  keepalive sysctl persist --idle 10m --root /mnt/image   # write the file only
  keepalive sysctl show --netns blue --json
  keepalive sysctl set --pid 4242 --idle 5m          # inside a container's namespace")]
pub struct SysctlArgs {
    #[command(subcommand)]
    pub action: Option<SysctlAction>,

    #[command(flatten)]
    pub namespace: NamespaceArgs,

    /// Print JSON lines instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SysctlAction {
    /// Show the values and what they mean (the default).
    Show,
    /// Set the values: validated first, only changes written, all or nothing.
    Set(SysctlSetArgs),
    /// Write the values to a sysctl.d drop-in only (images built offline).
    ///
    /// Without values, the current live values are persisted.
    Persist(SysctlPersistArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("values").args(["idle", "interval", "count"]).required(true).multiple(true)))]
pub struct SysctlSetArgs {
    #[command(flatten)]
    pub values: DefaultsArgs,

    /// Also write them to /etc/sysctl.d/90-keepalive.conf, read at boot.
    #[arg(long)]
    pub persist: bool,

    /// Read and write the configuration files under DIR instead of /.
    #[arg(long, value_name = "DIR", requires = "persist")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SysctlPersistArgs {
    #[command(flatten)]
    pub values: DefaultsArgs,

    /// Read and write the configuration files under DIR instead of /.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Install libkeepalive.so; with --global, preload it into every program.
///
/// The library is first test-loaded (`keepalive check` runs under it and
/// must report SO_KEEPALIVE on), then copied to /usr/local/lib/keepalive/
/// (where `keepalive run` finds it), atomically and only when it changed,
/// and the copy is test-loaded too. The keepalive package's library,
/// /usr/lib/keepalive/libkeepalive.so, is used where it is: nothing is
/// copied.
///
/// With --global it is then added to /etc/ld.so.preload, under a lock: the
/// file is replaced atomically, every other entry and comment is kept, and
/// nothing changes when the entry is already there. A library that does
/// not load, or that other users could not read, is refused and nothing is
/// written.
///
/// Every dynamically linked program started afterwards gets keepalive.
/// KEEPIDLE, KEEPINTVL, KEEPCNT and TCP_USER_TIMEOUT still apply where a
/// program's environment sets them; the values it does not set come from
/// the kernel defaults, net.ipv4.tcp_keepalive_* (see `keepalive sysctl`).
/// A program started with KEEPALIVE=off is left alone. Undo with
/// `keepalive uninstall --global`.
///
/// Needs root, unless --root names a directory tree to act on.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sudo keepalive install --global
  sudo keepalive sysctl set --idle 10m --interval 1m --count 5 --persist
  KEEPALIVE=off some-program        # opt one program out
  sudo keepalive install            # only the library, for `keepalive run`
  keepalive install --global --root /mnt/image --library ./libkeepalive.so")]
pub struct InstallArgs {
    /// Also add the library to /etc/ld.so.preload (every program).
    #[arg(long)]
    pub global: bool,

    /// Act under DIR instead of / (an image being built); the entry
    /// written is still /usr/local/lib/keepalive/libkeepalive.so.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The library to install (default: the one `keepalive run` uses).
    #[arg(long, value_name = "PATH")]
    pub library: Option<PathBuf>,
}

/// Remove libkeepalive.so from /etc/ld.so.preload (--global).
///
/// The file is replaced atomically with every other entry and comment
/// kept, or removed when nothing else is left in it; nothing changes when
/// the entry is not there; either entry, /usr/local/lib/keepalive/ or the
/// package's /usr/lib/keepalive/, is removed. The library itself stays
/// for `keepalive run`. Programs already running keep it until they
/// restart.
///
/// Needs root, unless --root names a directory tree to act on.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sudo keepalive uninstall --global
  keepalive uninstall --global --root /mnt/image")]
pub struct UninstallArgs {
    /// Remove the library from /etc/ld.so.preload.
    #[arg(long, required = true)]
    pub global: bool,

    /// Act under DIR instead of / (an image being built).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

fn explain(kind: ErrorKind, expected: &str) -> String {
    format!("{}; expected {expected}", kind.as_str())
}

/// Parses `--idle` and `--interval`.
pub fn parse_idle(s: &str) -> Result<Seconds, String> {
    parse_seconds(s.as_bytes()).map_err(|k| {
        explain(
            k,
            "whole seconds 1..=32767, optionally with a unit (90, 90s, 10m, 1h30m)",
        )
    })
}

/// Parses `--count`.
pub fn parse_probes(s: &str) -> Result<ProbeCount, String> {
    parse_count(s.as_bytes()).map_err(|k| explain(k, "a probe count 1..=127"))
}

/// Parses `--user-timeout`; unlike the `TCP_USER_TIMEOUT` variable, a bare
/// number is refused, since seconds and milliseconds are both plausible.
pub fn parse_user_timeout_arg(s: &str) -> Result<UserTimeout, String> {
    let bare = !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit());
    if bare {
        return Err(format!(
            "a bare number is ambiguous here: add a unit ({s}ms or {s}s) or use auto"
        ));
    }
    parse_user_timeout(s.as_bytes(), BareUnit::Required).map_err(|k| {
        explain(
            k,
            "a duration with a unit, 1ms..=2147483647ms (1500ms, 30s, 5m, 1h30m), or auto",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn idle_units() {
        assert_eq!(parse_idle("10m").map(Seconds::get), Ok(600));
        assert_eq!(parse_idle("45").map(Seconds::get), Ok(45));
        let err = parse_idle("40000").unwrap_err();
        assert!(
            err.starts_with("too large; expected whole seconds 1..=32767"),
            "{err}"
        );
    }

    #[test]
    fn user_timeout_refuses_bare_numbers() {
        let err = parse_user_timeout_arg("15").unwrap_err();
        assert!(err.contains("15ms or 15s"), "{err}");
        assert!(matches!(
            parse_user_timeout_arg("auto"),
            Ok(UserTimeout::Auto)
        ));
        assert_eq!(
            parse_user_timeout_arg("1500ms"),
            Ok(UserTimeout::Millis(keepalive::Millis::new(1500).unwrap()))
        );
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = Cli::try_parse_from([
            "keepalive",
            "run",
            "--idle",
            "5",
            "--",
            "ls",
            "-l",
            "--idle",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.command, ["ls", "-l", "--idle"]);
        assert_eq!(args.settings.idle.map(Seconds::get), Some(5));
    }

    #[test]
    fn run_without_dashes() {
        let cli = Cli::try_parse_from(["keepalive", "run", "curl", "-s", "x"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.command, ["curl", "-s", "x"]);
    }

    #[test]
    fn off_conflicts_with_values() {
        let err = Cli::try_parse_from(["keepalive", "run", "--off", "--idle", "5", "--", "true"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
