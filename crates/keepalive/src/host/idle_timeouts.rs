//! What cuts idle connections before keepalive notices: the host's own
//! connection tracking (nf_conntrack), IPVS (kube-proxy's IPVS mode), and
//! the middleboxes in front of the host, whose timeouts no file on the host
//! tells ([`PRESETS`], for `keepalive doctor --behind NAME`).
//!
//! Everything here reads the calling thread's network namespace; run it in
//! another one with [`NetNs::run`](super::NetNs::run).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::sysctl::read_value;

/// `net.netfilter.nf_conntrack_tcp_timeout_established`, relative to `/`:
/// how long nf_conntrack keeps an idle established TCP entry.
pub const CONNTRACK_ESTABLISHED: &str =
    "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";

/// `net.netfilter.nf_conntrack_tcp_loose`, relative to `/`: whether
/// nf_conntrack picks up a connection it has no entry for (the entry it
/// forgot comes back with the next packet) or leaves it INVALID.
pub const CONNTRACK_TCP_LOOSE: &str = "proc/sys/net/netfilter/nf_conntrack_tcp_loose";

/// The IPVS connection table of the calling thread's namespace, relative to
/// `/`; it exists once the `ip_vs` module is loaded. (`/proc/net` is the
/// namespace of the process's main thread, not of the calling thread, so
/// it is not used.)
pub const IPVS_PROC: &str = "proc/thread-self/net/ip_vs";

/// The program [`ipvs_timeouts`] asks for the IPVS timeouts.
pub const IPVSADM: &str = "ipvsadm";

/// Reads nf_conntrack's established TCP timeout; `None` when nf_conntrack
/// is not loaded (the sysctl does not exist).
///
/// A connection idle for longer loses its entry; what happens next depends
/// on the rules: with `nf_conntrack_tcp_loose = 0` and INVALID packets
/// dropped, the connection is dead (see [`conntrack_tcp_loose`]); behind a
/// NAT, the mapping is gone.
#[doc(alias = "nf_conntrack_tcp_timeout_established")]
pub fn conntrack_established_timeout() -> io::Result<Option<Duration>> {
    conntrack_established_timeout_in(Path::new("/"))
}

/// [`conntrack_established_timeout`] under `root` (tests, images).
pub fn conntrack_established_timeout_in(root: &Path) -> io::Result<Option<Duration>> {
    Ok(read_optional(&root.join(CONNTRACK_ESTABLISHED))?.map(Duration::from_secs))
}

/// Reads `nf_conntrack_tcp_loose`: `Some(true)` when nf_conntrack picks up
/// established connections it has no entry for (the kernel default), `None`
/// when nf_conntrack is not loaded.
#[doc(alias = "nf_conntrack_tcp_loose")]
pub fn conntrack_tcp_loose() -> io::Result<Option<bool>> {
    conntrack_tcp_loose_in(Path::new("/"))
}

/// [`conntrack_tcp_loose`] under `root`.
pub fn conntrack_tcp_loose_in(root: &Path) -> io::Result<Option<bool>> {
    Ok(read_optional(&root.join(CONNTRACK_TCP_LOOSE))?.map(|v| v != 0))
}

/// A procfs value, or `None` when the file does not exist.
fn read_optional(path: &Path) -> io::Result<Option<u64>> {
    match read_value(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where an [`IpvsTimeouts`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeoutSource {
    /// Read from `ipvsadm -L --timeout`.
    Measured,
    /// The kernel's defaults, since the values could not be read; `reason`
    /// says why (e.g. "ipvsadm is not installed").
    Assumed {
        /// Why the values were not read.
        reason: String,
    },
}

/// IPVS's idle timeouts (ipvsadm(8) `--set tcp tcpfin udp`), per network
/// namespace. Not in /proc: only the `IP_VS_SO_GET_TIMEOUT` socket option
/// (or netlink) returns them, which is what `ipvsadm` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsTimeouts {
    /// An established TCP connection idle this long is dropped from the
    /// IPVS table (kube-proxy in IPVS mode: every Service connection).
    pub tcp: Duration,
    /// TCP after a FIN.
    pub tcp_fin: Duration,
    /// UDP.
    pub udp: Duration,
    /// Read or assumed.
    pub source: TimeoutSource,
}

impl IpvsTimeouts {
    /// The kernel's defaults: 900 s, 120 s, 300 s (`tcp_timeouts[]` in
    /// [net/netfilter/ipvs/ip_vs_proto_tcp.c](https://github.com/torvalds/linux/blob/v6.6/net/netfilter/ipvs/ip_vs_proto_tcp.c),
    /// `IP_VS_TCP_S_ESTABLISHED = 15*60*HZ`, `IP_VS_TCP_S_FIN_WAIT = 2*60*HZ`;
    /// `udp_timeouts[]` in ip_vs_proto_udp.c, `5*60*HZ`).
    pub fn kernel_defaults(reason: impl Into<String>) -> IpvsTimeouts {
        IpvsTimeouts {
            tcp: Duration::from_secs(900),
            tcp_fin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
            source: TimeoutSource::Assumed {
                reason: reason.into(),
            },
        }
    }
}

/// Parses the output of `ipvsadm -L --timeout`:
/// `Timeout (tcp tcpfin udp): 900 120 300`. `None` when no line has that
/// shape.
///
/// ```
/// use std::time::Duration;
/// use keepalive::host::parse_ipvsadm_timeout;
/// let t = parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 3600 120 300\n").unwrap();
/// assert_eq!(t.tcp, Duration::from_secs(3600));
/// ```
pub fn parse_ipvsadm_timeout(text: &str) -> Option<IpvsTimeouts> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Timeout (tcp tcpfin udp):")?;
        let mut values = rest.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (tcp, tcp_fin, udp) = (values.next()??, values.next()??, values.next()??);
        if values.next().is_some() {
            return None;
        }
        Some(IpvsTimeouts {
            tcp: Duration::from_secs(tcp),
            tcp_fin: Duration::from_secs(tcp_fin),
            udp: Duration::from_secs(udp),
            source: TimeoutSource::Measured,
        })
    })
}

/// Reads the IPVS timeouts of the calling thread's namespace; `None` when
/// IPVS is not loaded ([`IPVS_PROC`] does not exist).
///
/// Runs `ipvsadm -L --timeout` (it needs `CAP_NET_ADMIN`; the child runs in
/// the calling thread's namespace). When `ipvsadm` is not installed, fails
/// or prints something else, the kernel's defaults are returned as
/// [`TimeoutSource::Assumed`], with the reason.
pub fn ipvs_timeouts() -> io::Result<Option<IpvsTimeouts>> {
    ipvs_timeouts_in(Path::new("/"), OsStr::new(IPVSADM))
}

/// [`ipvs_timeouts`] under `root`, asking `ipvsadm` (a program name looked
/// up in `PATH`, or a path).
pub fn ipvs_timeouts_in(root: &Path, ipvsadm: &OsStr) -> io::Result<Option<IpvsTimeouts>> {
    let table = root.join(IPVS_PROC);
    match fs::symlink_metadata(&table) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", table.display()),
            ));
        }
    }
    let output = Command::new(ipvsadm)
        .args(["-L", "--timeout"])
        .stdin(Stdio::null())
        .output();
    Ok(Some(from_output(ipvsadm, output)))
}

/// What `ipvsadm -L --timeout` answered, or the defaults and why not.
fn from_output(program: &OsStr, output: io::Result<Output>) -> IpvsTimeouts {
    let program = program.to_string_lossy();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return IpvsTimeouts::kernel_defaults(format!("{program} is not installed"));
        }
        Err(e) => {
            return IpvsTimeouts::kernel_defaults(format!("cannot run {program}: {e}"));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr.lines().next().unwrap_or_default().trim();
        return IpvsTimeouts::kernel_defaults(if said.is_empty() {
            format!("{program} -L --timeout failed ({})", output.status)
        } else {
            format!("{program} -L --timeout failed: {said}")
        });
    }
    parse_ipvsadm_timeout(&String::from_utf8_lossy(&output.stdout)).unwrap_or_else(|| {
        IpvsTimeouts::kernel_defaults(format!(
            "{program} -L --timeout printed no \"Timeout (tcp tcpfin udp):\" line"
        ))
    })
}

/// A well-known idle timeout of something in front of a host (a load
/// balancer, a NAT gateway) or on it, for `keepalive doctor --behind NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The name `--behind` takes, e.g. `aws-nlb`.
    pub name: &'static str,
    /// Idle this long, a TCP connection is forgotten (the default where the
    /// value can be changed).
    pub timeout: Duration,
    /// What has this timeout, in a few words.
    pub what: &'static str,
    /// The page that gives the figure.
    pub source: &'static str,
}

/// The well-known idle timeouts, each with the page that gives it. Only
/// defaults that page states are listed; a setting someone changed is what
/// `--idle-timeout` is for.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "aws-nlb",
        timeout: Duration::from_secs(350),
        what: "AWS Network Load Balancer, TCP listener idle timeout (default; 60-6000 s)",
        source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html",
    },
    Preset {
        name: "aws-nat",
        timeout: Duration::from_secs(350),
        what: "AWS NAT gateway, TCP idle timeout",
        source: "https://aws.amazon.com/premiumsupport/knowledge-center/lambda-vpc-timeout/",
    },
    Preset {
        name: "azure-lb",
        timeout: Duration::from_secs(240),
        what: "Azure Load Balancer rule idle timeout (default 4 min; 4-100 min)",
        source: "https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-idle-timeout",
    },
    Preset {
        name: "gcp-nat",
        timeout: Duration::from_secs(1200),
        what: "Google Cloud NAT, TCP established connection idle timeout (default 20 min)",
        source: "https://pub.dev/documentation/googleapis/latest/compute_v1/RouterNat/tcpEstablishedIdleTimeoutSec.html",
    },
    Preset {
        name: "gcp-ilb",
        timeout: Duration::from_secs(600),
        what: "Google Cloud internal passthrough Network Load Balancer, connection \
               tracking idle timeout (default 10 min)",
        source: "https://pub.dev/documentation/googleapis/16.0.0/compute_v1/BackendServiceConnectionTrackingPolicy/idleTimeoutSec.html",
    },
    Preset {
        name: "ipvs",
        timeout: Duration::from_secs(900),
        what: "Linux IPVS (kube-proxy in IPVS mode), TCP timeout (kernel default 15 min)",
        source: "https://github.com/torvalds/linux/blob/v6.6/net/netfilter/ipvs/ip_vs_proto_tcp.c",
    },
    Preset {
        name: "conntrack",
        timeout: Duration::from_secs(432_000),
        what: "Linux nf_conntrack, nf_conntrack_tcp_timeout_established (kernel default 5 days)",
        source: "https://docs.kernel.org/networking/nf_conntrack-sysctl.html",
    },
];

/// The preset named `name` (exactly, as in [`PRESETS`]).
///
/// ```
/// let nlb = keepalive::host::preset("aws-nlb").unwrap();
/// assert_eq!(nlb.timeout.as_secs(), 350);
/// assert!(keepalive::host::preset("no-such-thing").is_none());
/// ```
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::process::ExitStatusExt;
    use std::path::PathBuf;
    use std::process::ExitStatus;

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path: PathBuf = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> io::Result<Output> {
        Ok(Output {
            // A wait status: the exit code sits in the second byte.
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        })
    }

    #[test]
    fn conntrack_timeout_read() {
        let dir = root_with(&[(CONNTRACK_ESTABLISHED, "5\n"), (CONNTRACK_TCP_LOOSE, "0\n")]);
        assert_eq!(
            conntrack_established_timeout_in(dir.path()).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(conntrack_tcp_loose_in(dir.path()).unwrap(), Some(false));
    }

    #[test]
    fn conntrack_not_loaded_is_none() {
        let dir = root_with(&[]);
        assert_eq!(conntrack_established_timeout_in(dir.path()).unwrap(), None);
        assert_eq!(conntrack_tcp_loose_in(dir.path()).unwrap(), None);
    }

    #[test]
    fn conntrack_bad_value_is_an_error_naming_the_file() {
        let dir = root_with(&[(CONNTRACK_ESTABLISHED, "lots\n")]);
        let err = conntrack_established_timeout_in(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("nf_conntrack_tcp_timeout_established"),
            "{err}"
        );
    }

    #[test]
    fn ipvsadm_output_parsed() {
        let text = "Timeout (tcp tcpfin udp): 900 120 300\n";
        assert_eq!(
            parse_ipvsadm_timeout(text),
            Some(IpvsTimeouts {
                tcp: Duration::from_secs(900),
                tcp_fin: Duration::from_secs(120),
                udp: Duration::from_secs(300),
                source: TimeoutSource::Measured,
            })
        );
    }

    #[test]
    fn ipvsadm_other_output_refused() {
        assert_eq!(parse_ipvsadm_timeout(""), None);
        assert_eq!(
            parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 900 120\n"),
            None
        );
        assert_eq!(
            parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 900 x 300\n"),
            None
        );
        assert_eq!(
            parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 1 2 3 4\n"),
            None
        );
    }

    #[test]
    fn ipvs_not_loaded_is_none() {
        let dir = root_with(&[]);
        // The program is never run when IPVS is not there.
        assert_eq!(
            ipvs_timeouts_in(dir.path(), OsStr::new("/nonexistent/ipvsadm")).unwrap(),
            None
        );
    }

    #[test]
    fn ipvs_without_ipvsadm_assumes_the_defaults() {
        let dir = root_with(&[(IPVS_PROC, "")]);
        let got = ipvs_timeouts_in(dir.path(), OsStr::new("/nonexistent/ipvsadm"))
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            IpvsTimeouts::kernel_defaults("/nonexistent/ipvsadm is not installed")
        );
        assert_eq!(got.tcp, Duration::from_secs(900));
    }

    #[test]
    fn ipvsadm_answer_is_measured() {
        let got = from_output(
            OsStr::new("ipvsadm"),
            output(0, "Timeout (tcp tcpfin udp): 3600 60 300\n", ""),
        );
        assert_eq!(got.tcp, Duration::from_secs(3600));
        assert_eq!(got.tcp_fin, Duration::from_secs(60));
        assert_eq!(got.source, TimeoutSource::Measured);
    }

    #[test]
    fn ipvsadm_failure_says_why() {
        let got = from_output(
            OsStr::new("ipvsadm"),
            output(
                2,
                "",
                "Can't initialize ipvs: Permission denied (you must be root)\n",
            ),
        );
        assert_eq!(
            got,
            IpvsTimeouts::kernel_defaults(
                "ipvsadm -L --timeout failed: Can't initialize ipvs: Permission denied \
                 (you must be root)"
            )
        );
        let got = from_output(OsStr::new("ipvsadm"), output(0, "something else\n", ""));
        assert!(
            matches!(&got.source, TimeoutSource::Assumed { reason } if reason.contains("printed no")),
            "{got:?}"
        );
    }

    #[test]
    fn presets_are_unique_and_sourced() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(
                PRESETS[..i].iter().all(|q| q.name != p.name),
                "{} twice",
                p.name
            );
            assert!(p.source.starts_with("https://"), "{}", p.name);
            assert!(!p.timeout.is_zero(), "{}", p.name);
        }
    }

    #[test]
    fn preset_figures() {
        let secs = |n| preset(n).map(|p| p.timeout.as_secs());
        assert_eq!(secs("aws-nlb"), Some(350));
        assert_eq!(secs("aws-nat"), Some(350));
        assert_eq!(secs("azure-lb"), Some(240));
        assert_eq!(secs("gcp-nat"), Some(1200));
        assert_eq!(secs("gcp-ilb"), Some(600));
        assert_eq!(secs("ipvs"), Some(900));
        assert_eq!(secs("conntrack"), Some(432_000));
        assert_eq!(secs("AWS-NLB"), None);
    }
}
