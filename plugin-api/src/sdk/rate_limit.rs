//! A bandwidth cap shared by every parallel upload of a run: one token bucket, paid in bytes before each
//! chunk is handed to the network.
//!
//! The bucket is the "virtual scheduling" form of a token bucket (GCRA): it keeps the time at which the
//! bytes paid so far would have left at exactly the cap, and a caller waits until that time is no more
//! than `burst` ahead of now. Waiters are served in the order they paid, so parallel jobs share the cap
//! fairly, and the long-run rate is the cap plus at most one `burst` in total.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a rate did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bandwidth limit {given:?}: {why} (write e.g. 500K, 2M or 1.5M: bytes per second, K = 1024)"
)]
pub struct RateError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a rate in bytes per second: a number with an optional `K`, `M` or `G` (powers of 1024, as
/// curl's `--limit-rate` and rsync's `--bwlimit` read them), optionally followed by `B`, `iB` or `/s`.
pub fn parse_rate(text: &str) -> Result<u64, RateError> {
    let err = |why| RateError {
        given: text.to_string(),
        why,
    };
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, factor) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1024.0),
        Some('M') => (&t[..t.len() - 1], 1024.0 * 1024.0),
        Some('G') => (&t[..t.len() - 1], 1024.0 * 1024.0 * 1024.0),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| err("not a number with an optional K, M or G"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(err("must be more than zero"));
    }
    let rate = (value * factor).round();
    if rate < 1024.0 {
        return Err(err("below 1K per second"));
    }
    if rate > u64::MAX as f64 / 2.0 {
        return Err(err("too large"));
    }
    Ok(rate as u64)
}

/// A cap of `rate` bytes per second shared by everyone holding the same bucket.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: Duration,
    /// When the bytes paid so far would all have left at exactly `rate`.
    paid_until: Mutex<Option<Instant>>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second that lets `burst` bytes through without waiting.
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        let rate = rate.max(1);
        TokenBucket {
            rate,
            burst: Duration::from_secs_f64(burst as f64 / rate as f64),
            paid_until: Mutex::new(None),
        }
    }

    /// The cap in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// How long the caller must wait before sending `bytes` now, having paid for them.
    pub fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let mut paid = self
            .paid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = paid.map_or(now, |p| p.max(now));
        let until = start + cost;
        *paid = Some(until);
        until.saturating_duration_since(now + self.burst)
    }

    /// Waits until `bytes` may be sent.
    pub async fn take(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_curl() {
        assert_eq!(parse_rate("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_rate("500k"), Ok(500 * 1024));
        assert_eq!(parse_rate("1.5M"), Ok(1_572_864));
        assert_eq!(parse_rate("2MiB/s"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_rate("3000000"), Ok(3_000_000));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["", "M", "fast", "-2M", "0", "10", "2X"] {
            let err = parse_rate(bad).unwrap_err();
            assert_eq!(err.given, bad);
            assert!(err.to_string().contains("bandwidth limit"), "{err}");
        }
    }

    #[test]
    fn parallel_payers_share_the_rate() {
        // 4 jobs paying 256 KiB chunks at the same instants: the n-th chunk waits n × chunk / rate,
        // less the burst, whoever pays it.
        let rate = 1024 * 1024;
        let chunk = 256 * 1024;
        let bucket = TokenBucket::new(rate, chunk);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..16).map(|_| bucket.reserve(chunk, t0)).collect();
        assert_eq!(waits[0], Duration::ZERO, "the burst goes at once");
        for (n, wait) in waits.iter().enumerate() {
            let expected = Duration::from_secs_f64(n as f64 * 0.25);
            let diff = wait.abs_diff(expected);
            assert!(diff < Duration::from_millis(1), "chunk {n}: {wait:?}");
        }
        // 16 chunks (4 MiB) at 1 MiB/s: the last one leaves 3.75 s after the first.
        assert!(waits[15] >= Duration::from_millis(3749));
    }

    #[test]
    fn an_idle_bucket_does_not_save_up_more_than_the_burst() {
        let bucket = TokenBucket::new(1024 * 1024, 256 * 1024);
        let t0 = Instant::now();
        assert_eq!(bucket.reserve(256 * 1024, t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(bucket.reserve(256 * 1024, later), Duration::ZERO);
        let wait = bucket.reserve(256 * 1024, later);
        assert!(wait.abs_diff(Duration::from_millis(250)) < Duration::from_millis(1));
    }
}
