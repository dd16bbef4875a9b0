//! The project's daily request quota, counted here so a run stops before Google refuses.
//!
//! The Street View Publish API's "Limits" page gives a default of 2,000 queries per day per Google Cloud
//! project. Google Cloud resets per-day quotas at midnight Pacific Time (Cloud "Quotas" docs); the day
//! here starts at 08:00 UTC, which is that midnight in winter and an hour after it in summer, so a run
//! never starts before the reset. Every request to the API counts, the byte upload included (assumption:
//! the sources do not say whether the media endpoint counts; counting it can only stop early).
//!
//! The count is integration-wide state (one project, every sequence), written before each request.

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Config;

const QUOTA_KEY: &str = "quota";

/// Why a run stopped without failing.
#[derive(Debug)]
pub enum Halt {
    /// The day's requests are used up; the run can go on at `resume_at_ms` (Unix ms).
    Quota {
        /// When the next quota day starts.
        resume_at_ms: i64,
        /// What said so (our count, or Google's answer).
        why: String,
    },
    /// Any other error.
    Error(PluginError),
}

impl From<PluginError> for Halt {
    fn from(err: PluginError) -> Halt {
        Halt::Error(err)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Count {
    day: i64,
    used: u64,
}

/// The counter.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    limit: u64,
    day_ms: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Quota {
    /// From the configuration.
    pub fn new(config: &Config) -> Quota {
        Quota {
            limit: config.daily_quota,
            day_ms: config.quota_day.as_millis().max(1) as i64,
        }
    }

    /// 08:00 UTC of a real day; the same third of a scaled-down one.
    fn offset(&self) -> i64 {
        self.day_ms / 3
    }

    /// The quota day `at_ms` falls in.
    pub fn day_of(&self, at_ms: i64) -> i64 {
        (at_ms - self.offset()).div_euclid(self.day_ms)
    }

    /// When the day after `day` starts (Unix ms).
    pub fn next_day_starts(&self, day: i64) -> i64 {
        (day + 1) * self.day_ms + self.offset()
    }

    fn load(&self, ctx: &Context) -> Result<Count, PluginError> {
        let today = self.day_of(now_ms());
        Ok(ctx
            .state()
            .get_json::<Count>(QUOTA_KEY)?
            .filter(|c| c.day == today)
            .unwrap_or(Count {
                day: today,
                used: 0,
            }))
    }

    /// Requests used today.
    pub fn used(&self, ctx: &Context) -> Result<u64, PluginError> {
        Ok(self.load(ctx)?.used)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn stop(&self, count: Count, why: String) -> Halt {
        Halt::Quota {
            resume_at_ms: self.next_day_starts(count.day),
            why,
        }
    }

    /// Stops unless `n` more requests fit in today's quota (so a photo is never left half-sent).
    pub fn reserve(&self, ctx: &Context, n: u64) -> Result<(), Halt> {
        let count = self.load(ctx)?;
        if count.used + n > self.limit {
            return Err(self.stop(
                count,
                format!(
                    "{} of today's {} requests to the Street View Publish API are used and the next \
                     step needs {n}",
                    count.used, self.limit
                ),
            ));
        }
        Ok(())
    }

    /// Counts one request, before it is sent; stops when none is left.
    pub fn take(&self, ctx: &Context) -> Result<(), Halt> {
        self.reserve(ctx, 1)?;
        let mut count = self.load(ctx)?;
        count.used += 1;
        ctx.state().put_json(QUOTA_KEY, &count)?;
        Ok(())
    }

    /// Google answered RESOURCE_EXHAUSTED: nothing more today, whatever our count says.
    pub fn exhausted(&self, ctx: &Context, what_google_said: &str) -> Halt {
        let mut count = match self.load(ctx) {
            Ok(count) => count,
            Err(err) => return Halt::Error(err),
        };
        count.used = count.used.max(self.limit);
        if let Err(err) = ctx.state().put_json(QUOTA_KEY, &count) {
            return Halt::Error(err);
        }
        self.stop(
            count,
            format!("Google answered RESOURCE_EXHAUSTED ({what_google_said}): the project's daily quota, or your account's storage, is used up"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_day_starts_at_08_utc() {
        let q = Quota {
            limit: 2,
            day_ms: 86_400_000,
        };
        // 2026-12-07T07:59:59Z is still the day that began 2026-12-06T08:00Z.
        let before = 1_796_630_399_000;
        let day = q.day_of(before);
        assert_eq!(q.next_day_starts(day), before + 1000);
        assert_eq!(q.day_of(before + 1000), day + 1);
        assert_eq!(
            plugin_api::time::format_utc(q.next_day_starts(day)),
            "2026-12-07T08:00:00.000Z"
        );
    }

    #[test]
    fn the_count_stops_at_the_limit() {
        let host = plugin_api::sdk::testing::TestHost::new();
        let ctx = host.context();
        let q = Quota {
            limit: 2,
            day_ms: 86_400_000,
        };
        q.take(&ctx).unwrap();
        assert!(q.reserve(&ctx, 2).is_err());
        q.take(&ctx).unwrap();
        assert!(matches!(q.take(&ctx), Err(Halt::Quota { .. })));
        assert_eq!(q.used(&ctx).unwrap(), 2);
    }
}
