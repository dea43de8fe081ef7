//! The arguments of the commands that observe: `doctor` and `metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use keepalive::parse::{BareUnit, parse_duration_ms};

/// What cuts idle connections, when the host does not say: a timeout, or
/// a known load balancer or NAT by name.
#[derive(Debug, Args, Default, Clone)]
pub struct TimeoutArgs {
    /// The idle timeout of what is in front of this host (a load
    /// balancer, a NAT, a firewall): 350s, 4m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, conflicts_with = "behind")]
    pub idle_timeout: Option<Duration>,

    /// A load balancer or NAT by name, whose idle timeout is known:
    /// aws-nlb, aws-nat, azure-lb, gcp-nat, ipvs, ... (see the README).
    #[arg(long, value_name = "NAME")]
    pub behind: Option<String>,
}

/// Find what will cut idle connections on this host, and how to fix it.
///
/// Puts together what cuts idle connections (the conntrack and IPVS
/// timeouts of the network namespace, or a timeout you name), what the
/// connections will do (the kernel defaults, the worst case with
/// unacknowledged data, each established connection's keepalive, grouped
/// by process and systemd unit, the oldest idle first) and what is in
/// place (the global preload, enforcements, sysctl.d files). Each finding
/// has a severity, one sentence, and the command that fixes it.
///
/// Exit status: 0 when nothing is at risk, 1 when something is, 2 on an
/// error. Reading every connection's options needs root (pidfd_getfd);
/// without it, keepalive is read from the kernel's timers.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sudo keepalive doctor
  sudo keepalive doctor --behind aws-nlb
  sudo keepalive doctor --idle-timeout 350s --json
  sudo keepalive doctor --netns blue")]
pub struct DoctorArgs {
    /// Diagnose inside this network namespace (/run/netns/NAME or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    #[command(flatten)]
    pub timeout: TimeoutArgs,

    /// Print one JSON line per finding ({"type":"finding",...}), then a
    /// `doctor_summary`.
    #[arg(long)]
    pub json: bool,
}

/// Prometheus metrics of keepalive on this host.
///
/// Established TCP connections by keepalive state (on, off, unknown), by
/// process and systemd unit, per network namespace; the connections
/// without keepalive idle longer than a timeout; keepalive probes
/// outstanding; the kernel's counters (TCPKeepAlive, TCPAbortOnTimeout);
/// the kernel defaults; whether the global preload and each enforcement
/// are in place. No label per connection or port.
///
/// Without --listen, prints the metrics once, for node_exporter's textfile
/// collector. With --listen, serves them at http://ADDR/metrics.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sudo keepalive metrics > /var/lib/node_exporter/textfile/keepalive.prom.$$ && \\
    mv /var/lib/node_exporter/textfile/keepalive.prom.$$ /var/lib/node_exporter/textfile/keepalive.prom
  sudo keepalive metrics --listen 127.0.0.1:9977 --behind aws-nlb")]
pub struct MetricsArgs {
    /// Serve the metrics over HTTP at ADDR (/metrics) instead of printing them once.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub timeout: TimeoutArgs,
}

/// Show everything keepalive has put in effect on this host.
///
/// The kernel defaults, the persisted sysctls and any later sysctl.d file
/// that overrides them, the global preload (its entry, its file, and
/// whether it loads), and the enforcements (attached or not). It changes
/// nothing; reading bpffs needs root.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  keepalive status
  sudo keepalive status --json
  keepalive status --root /mnt/image")]
pub struct StatusArgs {
    /// Read /etc/ld.so.preload and the sysctl.d files under DIR (an image)
    /// instead of /.
    #[arg(long, value_name = "DIR")]
    pub root: Option<std::path::PathBuf>,

    /// Print one JSON line ({"type":"host_status",...}) instead.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--idle-timeout`: a duration, a bare number being seconds.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration_ms(s.as_bytes(), BareUnit::Seconds) {
        Ok(0) => Err("zero is not a timeout".to_owned()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(kind) => Err(format!(
            "{}; expected a duration such as 350s, 4m or 1h30m",
            kind.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("350s"), Ok(Duration::from_secs(350)));
        assert_eq!(parse_timeout("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(parse_timeout("350"), Ok(Duration::from_secs(350)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("x").is_err_and(|e| e.contains("350s")));
    }
}
