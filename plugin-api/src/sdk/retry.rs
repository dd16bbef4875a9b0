//! Retry policy shared by every integration: bounded exponential backoff with jitter, reset after progress,
//! and a classifier for HTTP answers.
//!
//! ```
//! use std::time::Duration;
//! use plugin_api::sdk::retry::{Backoff, RetryDecision, classify_http};
//!
//! let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(16), 10);
//! assert!(matches!(classify_http(503, None, ""), RetryDecision::Retry { .. }));
//! assert!(backoff.next_delay(None).is_some()); // first retry
//! backoff.reset(); // progress was made: start counting again
//! assert_eq!(backoff.attempts(), 0);
//! ```

use std::time::Duration;

/// What to do with a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after the backoff, or after `after` when the server said how long to wait.
    Retry {
        /// The server's own wait (`Retry-After`, a `backoff` field).
        after: Option<Duration>,
    },
    /// The client's view is stale (an offset mismatch): re-query and try again at once.
    Requery,
    /// The credentials are not accepted: stop and ask the user to authorise again.
    Auth,
    /// Retrying cannot help.
    Fail,
}

/// Classifies an HTTP answer by status, `Retry-After` header and JSON body.
///
/// Understands the error bodies of Mapillary's upload service (`{"debug_info": {"type", "retriable"}}`) and
/// graph API (`{"error": {"type": "OAuthException", "code"}}`): 5xx and 429 are retried (429 honours a JSON
/// `backoff` in milliseconds, else `Retry-After` in seconds, else 10 s), 412 and `OffsetInvalidError` re-query,
/// 401/403, `NotAuthorizedError` and OAuth error code 190 need re-authorisation, other 4xx are retried only
/// when the body says `retriable: true` (upload service) or `is_transient: true` (graph API).
pub fn classify_http(status: u16, retry_after: Option<&str>, body: &str) -> RetryDecision {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let debug_type = json
        .as_ref()
        .and_then(|j| j.pointer("/debug_info/type"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    // Graph API: OAuth error code 190 is an invalid, expired or revoked access token, whatever the status.
    let graph_code = json
        .as_ref()
        .and_then(|j| j.pointer("/error/code"))
        .and_then(|v| v.as_u64());
    if status == 401
        || status == 403
        || debug_type == "NotAuthorizedError"
        || graph_code == Some(190)
    {
        return RetryDecision::Auth;
    }
    if status == 412 || debug_type == "OffsetInvalidError" {
        return RetryDecision::Requery;
    }
    if status == 429 {
        let from_body = json
            .as_ref()
            .and_then(|j| j.get("backoff"))
            .and_then(|v| v.as_u64())
            .map(Duration::from_millis);
        let from_header = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return RetryDecision::Retry {
            after: Some(from_body.or(from_header).unwrap_or(Duration::from_secs(10))),
        };
    }
    if status >= 500 {
        return RetryDecision::Retry { after: None };
    }
    // The upload service says `debug_info.retriable`, the graph API `error.is_transient`.
    let retriable = json
        .as_ref()
        .and_then(|j| {
            j.pointer("/debug_info/retriable")
                .or_else(|| j.pointer("/error/is_transient"))
        })
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if (400..500).contains(&status) && retriable {
        return RetryDecision::Retry { after: None };
    }
    RetryDecision::Fail
}

/// Bounded exponential backoff with jitter: `min(base * 2^n, cap)`, ±25 %, at most `max_attempts` retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    /// A policy starting at `base`, doubling up to `cap`, giving up after `max_attempts` retries in a row.
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            | 1;
        Backoff {
            base,
            cap,
            max_attempts,
            attempts: 0,
            seed,
        }
    }

    /// Retries made since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Forgets earlier failures: call it after an attempt made progress.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The wait before the next retry, or `None` when the attempts are used up. A server-given wait wins
    /// over the computed one (but still counts as an attempt).
    pub fn next_delay(&mut self, server_wait: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        let exponent = self.attempts.min(20);
        self.attempts += 1;
        if let Some(wait) = server_wait {
            return Some(wait);
        }
        let raw = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        // xorshift: jitter needs no cryptographic quality, only spread between parallel clients.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let permille = 750 + (self.seed % 501); // 0.75 ..= 1.25
        Some(raw.mul_f64(permille as f64 / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_mapillary_answers() {
        assert_eq!(
            classify_http(500, None, ""),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(
            classify_http(429, Some("3"), "{}"),
            RetryDecision::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify_http(429, Some("3"), r#"{"backoff": 1500}"#),
            RetryDecision::Retry {
                after: Some(Duration::from_millis(1500))
            }
        );
        assert_eq!(classify_http(412, None, ""), RetryDecision::Requery);
        assert_eq!(classify_http(401, None, ""), RetryDecision::Auth);
        assert_eq!(
            classify_http(
                400,
                None,
                r#"{"debug_info":{"type":"NotAuthorizedError","retriable":false}}"#
            ),
            RetryDecision::Auth
        );
        assert_eq!(
            classify_http(400, None, r#"{"debug_info":{"type":"X","retriable":true}}"#),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(classify_http(400, None, "not json"), RetryDecision::Fail);
        assert_eq!(
            classify_http(
                400,
                None,
                r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#
            ),
            RetryDecision::Auth
        );
        assert_eq!(
            classify_http(
                400,
                None,
                r#"{"error":{"message":"try later","type":"OAuthException","code":2,"is_transient":true}}"#
            ),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(
            classify_http(
                400,
                None,
                r#"{"error":{"message":"Invalid file_handle","type":"OAuthException","code":100}}"#
            ),
            RetryDecision::Fail
        );
    }

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
}
