//! Everything the integration reads from its `.env` keys and the run options, parsed once per call.

use std::time::Duration;

use plugin_api::prelude::*;

use crate::settings::{
    settings, AUTHORIZE_URL, GRAPH_URL, JOBS, NO_PUBLISH, ORGANIZATION_ID, REPUBLISH, UPLOAD_URL,
};

/// Mapillary's real graph API.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.mapillary.com";
/// Mapillary's real upload service.
pub const DEFAULT_UPLOAD_URL: &str = "https://rupload.facebook.com/mapillary_public_uploads";
/// Mapillary's real OAuth consent page.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://www.mapillary.com/connect";

/// How long Mapillary may take to show a published sequence before we call it failed (72 h: see
/// `docs/providers/mapillary.md`, "Finding the sequence key").
pub const DEFAULT_PUBLISH_DEADLINE: Duration = Duration::from_secs(72 * 3600);
/// First retry delay; doubles up to [`RETRY_CAP_FACTOR`] × this (1 s → 16 s, as mapillary_tools).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// The backoff cap as a multiple of the base delay.
pub const RETRY_CAP_FACTOR: u32 = 16;
/// Retries in a row without progress before a request gives up: mapillary_tools' `MAX_UPLOAD_RETRIES`
/// (`constants.py`), enough to ride out a long outage or a run of rate limits.
pub const RETRY_MAX_ATTEMPTS: u32 = 200;
/// The time bound on those retries, as a multiple of the base delay: 2 h without progress with the
/// defaults, after which the run stops (keeping what was acknowledged) instead of waiting on.
pub const RETRY_WINDOW_FACTOR: u32 = 7200;
/// Files uploaded in parallel unless `--jobs` says otherwise (mapillary_tools uses 4 too).
pub const DEFAULT_JOBS: usize = 4;

/// The optional `.env` key overriding the first retry delay (milliseconds); for tests and slow links.
pub const ENV_RETRY_BASE_MS: &str = "MAPILLARY_RETRY_BASE_MS";
/// The optional `.env` key overriding the publication deadline (seconds); for tests.
pub const ENV_PUBLISH_DEADLINE_SECS: &str = "MAPILLARY_PUBLISH_DEADLINE_SECS";
/// The optional `.env` key that fixes "now" (Unix ms, or RFC 3339 such as `2026-05-04T10:00:00Z`): the one
/// clock behind token expiry, handle age, the publication deadline and lookup backoff, so tests prove
/// day-scale behaviour without waiting. Never set it outside tests.
pub const ENV_TEST_NOW: &str = "MTP_TEST_NOW";

/// Endpoints and tuning for one call.
#[derive(Debug, Clone)]
pub struct Config {
    /// Graph API root, without a trailing slash.
    pub graph_url: String,
    /// Upload service root, without a trailing slash.
    pub upload_url: String,
    /// OAuth consent page.
    pub authorize_url: String,
    /// `organization_id` sent with `finish_upload`, if any.
    pub organization_id: Option<String>,
    /// First retry delay.
    pub retry_base: Duration,
    /// How long Mapillary usually takes to show a published sequence; after it the part is overdue.
    pub publish_deadline: Duration,
    /// [`ENV_TEST_NOW`], when set.
    pub test_now_ms: Option<i64>,
    /// A re-check (`mtp status`, the look before `mtp upload`): retried requests get
    /// [`RECHECK_BUDGET`] instead of the upload's hours, so an unreachable Mapillary is said at once.
    pub recheck: bool,
}

/// The retry budget of a re-check's requests: a few quick tries, then the re-check gives up and the
/// record stays as it was (the host says "not re-checked"). The next `mtp status` tries again.
pub const RECHECK_BUDGET: Duration = Duration::from_secs(2);

/// Parses an [`ENV_TEST_NOW`] value: Unix milliseconds or an RFC 3339 time.
pub fn parse_test_now(value: &str) -> Result<i64, PluginError> {
    let value = value.trim();
    value
        .parse::<i64>()
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|t| t.timestamp_millis())
        })
        .ok_or_else(|| {
            PluginError::invalid_input(format!(
                "{ENV_TEST_NOW} must be Unix milliseconds or an RFC 3339 time, not {value:?}"
            ))
        })
}

impl Config {
    /// Reads the integration's `.env` keys (missing keys take Mapillary's real endpoints and the defaults).
    pub fn from_context(ctx: &Context) -> Result<Config, PluginError> {
        let settings = settings();
        Ok(Config {
            graph_url: settings.url(ctx, GRAPH_URL)?,
            upload_url: settings.url(ctx, UPLOAD_URL)?,
            authorize_url: settings.required_text(ctx, AUTHORIZE_URL)?,
            organization_id: settings.text(ctx, ORGANIZATION_ID)?,
            retry_base: Duration::from_millis(settings.number(ctx, ENV_RETRY_BASE_MS)?),
            publish_deadline: Duration::from_secs(settings.number(ctx, ENV_PUBLISH_DEADLINE_SECS)?),
            test_now_ms: settings
                .text(ctx, ENV_TEST_NOW)?
                .map(|v| parse_test_now(&v))
                .transpose()?,
            recheck: false,
        })
    }

    /// Now, in Unix milliseconds: the one clock every age and deadline is measured with
    /// ([`ENV_TEST_NOW`] when set, else the system clock).
    pub fn now_ms(&self) -> i64 {
        self.test_now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }

    /// The budget every retried request uses: 1 s doubling to 16 s (as mapillary_tools), at most
    /// [`RETRY_MAX_ATTEMPTS`] retries and [`RETRY_WINDOW_FACTOR`] × the base delay without progress.
    pub fn backoff(&self) -> plugin_api::sdk::retry::Backoff {
        if self.recheck {
            let base = self.retry_base.min(Duration::from_millis(250));
            return plugin_api::sdk::retry::Backoff::new(base, base.saturating_mul(4), 3)
                .within(RECHECK_BUDGET);
        }
        plugin_api::sdk::retry::Backoff::new(
            self.retry_base,
            self.retry_base.saturating_mul(RETRY_CAP_FACTOR),
            RETRY_MAX_ATTEMPTS,
        )
        .within(self.retry_base.saturating_mul(RETRY_WINDOW_FACTOR))
    }
}

/// Options of one `run` call, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Files uploaded in parallel (1..=32).
    pub jobs: usize,
    /// Send `finish_upload` again for a manifest whose publish outcome is unknown, and re-publish an
    /// overdue part after one more lookup.
    pub republish: bool,
    /// Upload everything but send no `finish_upload` (mapillary_tools' `--nofinish`): option `no_publish`.
    pub no_publish: bool,
    /// The sequence's log says MTP Desktop Uploader already published it here
    /// (`prior_uploads.mapillary.published`) and `force` is not given: nothing is sent, its key is looked
    /// up (`crate::pipeline::prior`). With `force` it is published again (`republish` is then set).
    pub prior_published: bool,
}

impl RunOptions {
    /// Reads `jobs`, `republish`, `no_publish` and the shared facts `prior_uploads` and `force` from the
    /// request's options; unknown keys are ignored.
    pub fn from_request(request: &RunRequest) -> RunOptions {
        let options = &request.options;
        let jobs = settings().integer_option(options, JOBS) as usize;
        let republish = settings().switch_option(options, REPUBLISH);
        let no_publish = settings().switch_option(options, NO_PUBLISH);
        let flag = |key: &str| request.options.get(key).and_then(|v| v.as_bool()) == Some(true);
        let prior = request
            .options
            .get("prior_uploads")
            .and_then(|p| p.get("mapillary"))
            .and_then(|m| m.get("published"))
            .and_then(|p| p.as_bool())
            == Some(true);
        let force = flag("force");
        RunOptions {
            jobs,
            // `--force` on a sequence published before: publish it again, adopting nothing.
            republish: republish || (prior && force),
            no_publish,
            prior_published: prior && !force,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_now_takes_ms_or_rfc3339() {
        assert_eq!(parse_test_now("1589093103000").unwrap(), 1_589_093_103_000);
        assert_eq!(
            parse_test_now("2020-05-10T06:45:03Z").unwrap(),
            1_589_093_103_000
        );
        let err = parse_test_now("tomorrow").unwrap_err().to_string();
        assert!(err.contains(ENV_TEST_NOW), "{err}");
    }
}
