//! Strava's rate limits, read from its answers.
//!
//! developers.strava.com/docs/rate-limits: every answer carries `X-RateLimit-Limit` and
//! `X-RateLimit-Usage`, each "15-minute,daily" (e.g. `200,2000` and `31,512`), and for reads also
//! `X-ReadRateLimit-*` (lower limits for non-upload calls); the 15-minute windows start at :00, :15, :30
//! and :45, the daily one at midnight UTC; beyond them the answer is 429. The parsing follows stravalib
//! (`util/limiter.py` `get_rates_from_response_headers`: the read headers for GET, the overall ones
//! otherwise); the waits follow its `SleepingRateLimitRule` (a used-up window waits for the next one,
//! and does not fail).

use std::time::Duration;

use plugin_api::http::reqwest::header::HeaderMap;

/// Usage and limits of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Requests used in this 15-minute window.
    pub short_usage: u64,
    /// Requests used today.
    pub long_usage: u64,
    /// The 15-minute limit.
    pub short_limit: u64,
    /// The daily limit.
    pub long_limit: u64,
}

fn pair(headers: &HeaderMap, name: &str) -> Option<(u64, u64)> {
    let text = headers.get(name)?.to_str().ok()?;
    let mut parts = text.split(',').map(|p| p.trim().parse::<u64>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The rates an answer reports, for a request that was a read (`GET`) or not.
pub fn from_headers(headers: &HeaderMap, read: bool) -> Option<Rates> {
    let (usage, limit) = if read && headers.contains_key("x-readratelimit-usage") {
        (
            pair(headers, "x-readratelimit-usage")?,
            pair(headers, "x-readratelimit-limit")?,
        )
    } else {
        (
            pair(headers, "x-ratelimit-usage")?,
            pair(headers, "x-ratelimit-limit")?,
        )
    };
    Some(Rates {
        short_usage: usage.0,
        long_usage: usage.1,
        short_limit: limit.0,
        long_limit: limit.1,
    })
}

/// Which window is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The 15-minute one.
    Short,
    /// The daily one.
    Daily,
}

impl Rates {
    /// The window that allows no further request, if one is used up.
    pub fn exhausted(&self) -> Option<Exhausted> {
        if self.long_limit > 0 && self.long_usage >= self.long_limit {
            Some(Exhausted::Daily)
        } else if self.short_limit > 0 && self.short_usage >= self.short_limit {
            Some(Exhausted::Short)
        } else {
            None
        }
    }
}

/// The wait from `now_ms` (Unix ms) until the next window of `window` (or of a day made of
/// [`crate::config::WINDOWS_PER_DAY`] windows) opens, plus a margin for clocks that differ a little.
pub fn wait_for_next(now_ms: i64, window: Duration, which: Exhausted) -> Duration {
    let length = match which {
        Exhausted::Short => window,
        Exhausted::Daily => window.saturating_mul(crate::config::WINDOWS_PER_DAY),
    };
    let length_ms = length.as_millis().max(1) as i64;
    let into = now_ms.rem_euclid(length_ms);
    let margin = (window.as_millis() as i64 / 100).clamp(5, 1000);
    Duration::from_millis((length_ms - into + margin) as u64)
}

/// `the 15-minute window (200 requests)` / `the daily window (2000 requests)`.
pub fn describe(which: Exhausted, rates: Option<&Rates>) -> String {
    match (which, rates) {
        (Exhausted::Short, Some(r)) => {
            format!(
                "the 15-minute limit ({} of {} requests used)",
                r.short_usage, r.short_limit
            )
        }
        (Exhausted::Daily, Some(r)) => {
            format!(
                "the daily limit ({} of {} requests used)",
                r.long_usage, r.long_limit
            )
        }
        (Exhausted::Short, None) => "the 15-minute limit".into(),
        (Exhausted::Daily, None) => "the daily limit".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::http::reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn reads_the_headers_as_stravalib_does() {
        // stravalib tests/unit/test_limiter.py: "600,30000" / "4,67", and spaces after the comma.
        let h = headers(&[
            ("x-ratelimit-limit", "600,30000"),
            ("x-ratelimit-usage", "601, 602"),
            ("x-readratelimit-limit", "300,15000"),
            ("x-readratelimit-usage", "4,67"),
        ]);
        let write = from_headers(&h, false).unwrap();
        assert_eq!((write.short_usage, write.long_usage), (601, 602));
        assert_eq!(write.exhausted(), Some(Exhausted::Short));
        let read = from_headers(&h, true).unwrap();
        assert_eq!((read.short_limit, read.short_usage), (300, 4));
        assert_eq!(read.exhausted(), None);
        assert_eq!(from_headers(&HeaderMap::new(), false), None);
        let daily = Rates {
            short_usage: 1,
            long_usage: 2000,
            short_limit: 200,
            long_limit: 2000,
        };
        assert_eq!(daily.exhausted(), Some(Exhausted::Daily));
    }

    #[test]
    fn waits_until_the_next_quarter_hour_or_midnight() {
        let window = Duration::from_secs(900);
        // 10:07:30 UTC → 10:15:00, plus a second's margin.
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-04T10:07:30Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            wait_for_next(now, window, Exhausted::Short),
            Duration::from_secs(7 * 60 + 30 + 1)
        );
        assert_eq!(
            wait_for_next(now, window, Exhausted::Daily),
            Duration::from_secs(13 * 3600 + 52 * 60 + 30 + 1)
        );
        // A scaled window (tests): 1 s windows wait under 1.1 s.
        assert!(
            wait_for_next(now + 250, Duration::from_secs(1), Exhausted::Short)
                <= Duration::from_millis(760)
        );
    }
}
