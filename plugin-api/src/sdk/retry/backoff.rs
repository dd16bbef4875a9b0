//! The retry budget and pacer: bounded exponential backoff with jitter, limited both in retries and in time
//! since the last progress.

use std::time::Duration;

use tokio::time::Instant;

/// Bounded exponential backoff with jitter: `min(base * 2^n, cap)`, ±25 %, at most `max_retries` retries
/// and (with [`Backoff::within`]) at most a given time since the last progress.
///
/// Time is read from tokio's clock, so a test on a paused runtime (`#[tokio::test(start_paused = true)]`)
/// moves through hours of waits at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_retries: u32,
    window: Duration,
    retries: u32,
    since: Instant,
    seed: u64,
}

impl Backoff {
    /// A policy starting at `base`, doubling up to `cap`, giving up after `max_retries` retries in a row
    /// without progress. No time bound until [`Backoff::within`] sets one.
    pub fn new(base: Duration, cap: Duration, max_retries: u32) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            | 1;
        Backoff {
            base,
            cap,
            max_retries,
            window: Duration::MAX,
            retries: 0,
            since: Instant::now(),
            seed,
        }
    }

    /// Also gives up when the next wait would end more than `window` after the last progress (or the
    /// start): however many retries are left, a run never waits longer than that without moving.
    pub fn within(mut self, window: Duration) -> Backoff {
        self.window = window;
        self
    }

    /// Retries made since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.retries
    }

    /// Time since the last [`Backoff::reset`] (or the start).
    pub fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }

    /// Forgets earlier failures: call it after an attempt made progress.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.since = Instant::now();
    }

    /// The wait before the next retry, or `None` when the budget is used up (retries, or time). A
    /// server-given wait wins over the computed one (but still counts as a retry).
    pub fn next_delay(&mut self, server_wait: Option<Duration>) -> Option<Duration> {
        if self.retries >= self.max_retries {
            return None;
        }
        let exponent = self.retries.min(20);
        let delay = match server_wait {
            Some(wait) => wait,
            None => {
                let raw = self.base.saturating_mul(1u32 << exponent).min(self.cap);
                // xorshift: jitter needs no cryptographic quality, only spread between parallel clients.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                let permille = 750 + (self.seed % 501); // 0.75 ..= 1.25
                raw.mul_f64(permille as f64 / 1000.0)
            }
        };
        if self.elapsed().saturating_add(delay) > self.window {
            return None;
        }
        self.retries += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_capped_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(16), 6);
        let delays: Vec<_> = std::iter::from_fn(|| b.next_delay(None)).collect();
        assert_eq!(delays.len(), 6);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(20)));
        assert!(delays[5] >= Duration::from_secs(12), "{delays:?}");
        b.reset();
        assert!(b
            .next_delay(None)
            .is_some_and(|d| d <= Duration::from_millis(1250)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_window_ends_the_budget_before_the_retries_do() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(16), 200)
            .within(Duration::from_secs(60));
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(50))),
            Some(Duration::from_secs(50))
        );
        tokio::time::sleep(Duration::from_secs(50)).await;
        // 50 s gone: a 20 s wait would end after the window.
        assert_eq!(b.next_delay(Some(Duration::from_secs(20))), None);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
        // Progress opens a new window.
        b.reset();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(20))),
            Some(Duration::from_secs(20))
        );
    }
}
