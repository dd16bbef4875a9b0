//! The integration's `.env` keys and command-line options.

use std::time::Duration;

use plugin_api::prelude::*;

/// The instance's root URL (`https://panoramax.openstreetmap.fr`, or a local GeoVisio): the only key
/// Panoramax needs, so it gates the integration.
pub const ENV_URL: &str = "PANORAMAX_URL";
/// First retry delay in milliseconds (default 500).
pub const ENV_RETRY_BASE_MS: &str = "PANORAMAX_RETRY_BASE_MS";
/// How long `mtp auth panoramax` waits for the user to claim the generated token, in seconds (default 600).
pub const ENV_CLAIM_TIMEOUT_SECS: &str = "PANORAMAX_CLAIM_TIMEOUT_SECS";
/// How often the claim is polled, in milliseconds (default 2000; panoramax_cli does not poll, see
/// [`crate::auth`]).
pub const ENV_CLAIM_POLL_MS: &str = "PANORAMAX_CLAIM_POLL_MS";

const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
/// Retries in a row before a request gives up (panoramax_cli retries 3 times; we back off longer).
pub const RETRY_MAX_ATTEMPTS: u32 = 6;
/// The backoff's cap, as a multiple of its base.
pub const RETRY_CAP_FACTOR: u32 = 32;
/// Files uploaded at once unless `--jobs` says otherwise.
pub const DEFAULT_JOBS: usize = 4;

/// Endpoints and tuning.
#[derive(Debug, Clone)]
pub struct Config {
    /// The instance root, without a trailing slash (the API is under `/api`).
    pub url: String,
    /// First retry delay.
    pub retry_base: Duration,
    /// How long the browser flow waits for the claim.
    pub claim_timeout: Duration,
    /// Claim poll interval.
    pub claim_poll: Duration,
}

impl Config {
    /// Reads the integration's keys; `PANORAMAX_URL` must be an `http(s)://` URL.
    pub fn from_context(ctx: &Context) -> Result<Config, PluginError> {
        let url = ctx.require_env(ENV_URL)?;
        let url = url.trim().trim_end_matches('/').to_string();
        let url = url.strip_suffix("/api").unwrap_or(&url).to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PluginError::invalid_input(format!(
                "{ENV_URL} in .env must start with http:// or https://, not {url:?}"
            )));
        }
        let number = |key: &str, default: u64| -> Result<u64, PluginError> {
            match ctx.env(key) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().map_err(|_| {
                    PluginError::invalid_input(format!(
                        "{key} in .env must be a whole number, not {v:?}"
                    ))
                }),
            }
        };
        Ok(Config {
            url,
            retry_base: Duration::from_millis(number(
                ENV_RETRY_BASE_MS,
                DEFAULT_RETRY_BASE.as_millis() as u64,
            )?),
            claim_timeout: Duration::from_secs(number(ENV_CLAIM_TIMEOUT_SECS, 600)?),
            claim_poll: Duration::from_millis(number(ENV_CLAIM_POLL_MS, 2000)?.max(10)),
        })
    }

    /// An API path under the instance (`/api/users/me` → `https://host/api/users/me`).
    pub fn api(&self, path: &str) -> String {
        format!("{}/api{path}", self.url)
    }

    /// The instance's own viewer, focused on a collection (GeoVisio serves it at `/viewer`; the
    /// `seq` hash parameter is the web viewer's).
    pub fn viewer_link(&self, collection_id: &str) -> String {
        format!("{}/viewer#focus=map&seq={collection_id}", self.url)
    }
}

/// Files uploaded at once: `--jobs` from the command line (1..=32), else [`DEFAULT_JOBS`].
pub fn jobs(request: &RunRequest) -> usize {
    request
        .options
        .get("jobs")
        .and_then(|v| v.as_u64())
        .map(|j| j.clamp(1, 32) as usize)
        .unwrap_or(DEFAULT_JOBS)
}
