//! What a connection does with data the peer never acknowledges: it
//! retransmits with exponential backoff and gives up after a time the
//! kernel derives from `net.ipv4.tcp_retries2` (HOWTO 2.4: a peer that lost
//! power). Keepalive never fires meanwhile, since the connection is not
//! idle; only `TCP_USER_TIMEOUT` shortens the wait.
//!
//! The kernel does not count retransmissions: it turns `tcp_retries2` into
//! a length of time, as if every retransmission had waited its full
//! backed-off timeout starting from `TCP_RTO_MIN`, and gives up once that
//! much time has passed since the first one (`retransmits_timed_out` and
//! `tcp_model_timeout` in
//! [net/ipv4/tcp_timer.c](https://github.com/torvalds/linux/blob/v6.6/net/ipv4/tcp_timer.c);
//! `TCP_RTO_MIN` and `TCP_RTO_MAX` in
//! [include/net/tcp.h](https://github.com/torvalds/linux/blob/v6.6/include/net/tcp.h)).

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::sysctl::read_value;

/// `net.ipv4.tcp_retries2`, relative to `/`.
pub const TCP_RETRIES2: &str = "proc/sys/net/ipv4/tcp_retries2";

/// `net.ipv4.tcp_rto_max_ms`, relative to `/`: the largest retransmission
/// timeout, where the kernel has the sysctl (older kernels use the
/// constant [`TCP_RTO_MAX`]).
pub const TCP_RTO_MAX_MS: &str = "proc/sys/net/ipv4/tcp_rto_max_ms";

/// `TCP_RTO_MIN` (`HZ / 5`): the retransmission timeout the model starts
/// from for an established connection, whatever the connection's own RTO.
pub const TCP_RTO_MIN: Duration = Duration::from_millis(200);

/// `TCP_RTO_MAX` (`120 * HZ`): the backoff stops doubling here.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);

/// The time after which the kernel gives up on unacknowledged data after
/// `retries` retransmissions (`tcp_model_timeout`): the timeout doubles
/// from `rto_min` for `ilog2(rto_max / rto_min)` rounds, then each further
/// round adds `rto_max`.
///
/// With the defaults (`tcp_retries2 = 15`, 200 ms, 120 s) that is 924.6 s:
/// `(2^10 - 1) x 0.2 s + (15 - 9) x 120 s`.
///
/// ```
/// use std::time::Duration;
/// use keepalive::host::{retransmission_timeout, TCP_RTO_MAX, TCP_RTO_MIN};
/// assert_eq!(
///     retransmission_timeout(15, TCP_RTO_MIN, TCP_RTO_MAX),
///     Duration::from_millis(924_600)
/// );
/// ```
///
/// A zero `rto_min`, or an `rto_max` below it, gives zero; a result too
/// large for a `Duration` saturates.
pub fn retransmission_timeout(retries: u32, rto_min: Duration, rto_max: Duration) -> Duration {
    let (min, max) = (rto_min.as_nanos(), rto_max.as_nanos());
    if min == 0 || max < min {
        return Duration::ZERO;
    }
    let thresh = (max / min).ilog2();
    // (2 << n) - 1 rounds of rto_min: 1 + 2 + 4 + ... + 2^n.
    let doubling = |n: u32| 2u128.checked_shl(n).map_or(u128::MAX, |v| v - 1);
    let nanos = if retries <= thresh {
        doubling(retries).saturating_mul(min)
    } else {
        doubling(thresh)
            .saturating_mul(min)
            .saturating_add(u128::from(retries - thresh).saturating_mul(max))
    };
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9.
    let sub = (nanos % 1_000_000_000) as u32;
    Duration::new(secs, sub)
}

/// What the calling thread's namespace does with unacknowledged data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    /// `net.ipv4.tcp_retries2`.
    pub retries2: u32,
    /// `net.ipv4.tcp_rto_max_ms`, or [`TCP_RTO_MAX`] where the kernel has
    /// no such sysctl.
    pub rto_max: Duration,
    /// When a connection whose peer went away with data in flight gives
    /// up, counted from the first retransmission ([`retransmission_timeout`]
    /// with [`TCP_RTO_MIN`]), unless `TCP_USER_TIMEOUT` is set on it.
    pub give_up_after: Duration,
}

/// Reads `tcp_retries2` (and `tcp_rto_max_ms` where it exists) of the
/// calling thread's network namespace and computes when a connection with
/// unacknowledged data gives up.
#[doc(alias = "tcp_retries2")]
pub fn retransmission() -> io::Result<Retransmission> {
    retransmission_in(Path::new("/"))
}

/// [`retransmission`] under `root` (tests, images).
pub fn retransmission_in(root: &Path) -> io::Result<Retransmission> {
    let path = root.join(TCP_RETRIES2);
    let retries2 = u32::try_from(read_value(&path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: out of range", path.display()),
        )
    })?;
    let rto_max = match read_value(&root.join(TCP_RTO_MAX_MS)) {
        Ok(ms) => Duration::from_millis(ms),
        Err(e) if e.kind() == io::ErrorKind::NotFound => TCP_RTO_MAX,
        Err(e) => return Err(e),
    };
    Ok(Retransmission {
        retries2,
        rto_max,
        give_up_after: retransmission_timeout(retries2, TCP_RTO_MIN, rto_max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    fn model(retries: u32) -> Duration {
        retransmission_timeout(retries, TCP_RTO_MIN, TCP_RTO_MAX)
    }

    #[test]
    fn default_retries2_is_924_6_seconds() {
        assert_eq!(model(15), Duration::from_millis(924_600));
    }

    #[test]
    fn doubling_phase() {
        // 200 ms, then 200 + 400 ms, ...: ((2 << n) - 1) x 200 ms.
        assert_eq!(model(0), Duration::from_millis(200));
        assert_eq!(model(1), Duration::from_millis(600));
        assert_eq!(model(3), Duration::from_millis(3_000));
        // ilog2(120 s / 200 ms) = ilog2(600) = 9: the last doubling round.
        assert_eq!(model(9), Duration::from_millis(204_600));
    }

    #[test]
    fn capped_phase_adds_rto_max() {
        assert_eq!(model(10), Duration::from_millis(324_600));
        // RFC 1122's 100 s lower bound is passed at 8 (102.2 s).
        assert_eq!(model(8), Duration::from_millis(102_200));
    }

    #[test]
    fn a_smaller_rto_max_stops_doubling_earlier() {
        // ilog2(1 s / 200 ms) = 2: 1.4 s, then 1 s per retry.
        assert_eq!(
            retransmission_timeout(5, TCP_RTO_MIN, Duration::from_secs(1)),
            Duration::from_millis(4_400)
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(
            retransmission_timeout(15, Duration::ZERO, TCP_RTO_MAX),
            Duration::ZERO
        );
        assert_eq!(
            retransmission_timeout(15, TCP_RTO_MAX, TCP_RTO_MIN),
            Duration::ZERO
        );
        // Saturates instead of overflowing.
        assert!(model(u32::MAX) > Duration::from_secs(500_000_000_000));
    }

    #[test]
    fn read_under_a_root() {
        let dir = root_with(&[(TCP_RETRIES2, "8\n")]);
        assert_eq!(
            retransmission_in(dir.path()).unwrap(),
            Retransmission {
                retries2: 8,
                rto_max: TCP_RTO_MAX,
                give_up_after: Duration::from_millis(102_200),
            }
        );
    }

    #[test]
    fn rto_max_sysctl_is_used() {
        let dir = root_with(&[(TCP_RETRIES2, "5\n"), (TCP_RTO_MAX_MS, "1000\n")]);
        let got = retransmission_in(dir.path()).unwrap();
        assert_eq!(got.rto_max, Duration::from_secs(1));
        assert_eq!(got.give_up_after, Duration::from_millis(4_400));
    }

    #[test]
    fn missing_retries2_is_not_found() {
        let dir = root_with(&[]);
        let err = retransmission_in(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("tcp_retries2"), "{err}");
    }
}
