//! The integration's `.env` keys and command-line options.

use std::sync::LazyLock;
use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::sdk::settings::{EnvKey, RunOption, Settings};

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

/// The keys and options, each declared once: the manifest's lists and help, and every read, come from
/// here.
pub fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(
                EnvKey::required(
                    ENV_URL,
                    "The Panoramax instance to upload to (its root URL; the API is under /api).",
                )
                .url()
                .example("https://panoramax.openstreetmap.fr"),
            )
            .key(
                EnvKey::optional(ENV_RETRY_BASE_MS, "First retry delay in ms.")
                    .number(0, u64::MAX)
                    .default(DEFAULT_RETRY_BASE.as_millis()),
            )
            .key(
                EnvKey::optional(
                    ENV_CLAIM_TIMEOUT_SECS,
                    "How long `mtp auth panoramax` waits for you to claim the generated token, in seconds.",
                )
                .number(0, u64::MAX)
                .default(600),
            )
            .key(
                EnvKey::optional(ENV_CLAIM_POLL_MS, "How often the claim is polled, in ms.")
                    .number(10, u64::MAX)
                    .default(2000),
            )
            .option(
                RunOption::integer("jobs", "Files uploaded in parallel.", DEFAULT_JOBS as i64, 1, 32)
                    .flag("jobs"),
            )
            .option(
                RunOption::switch(
                    crate::upload_set::REPUBLISH,
                    "Upload again, as a new upload set, a published sequence whose upload set no longer exists on the server.",
                )
                .flag("republish"),
            )
            .option(
                RunOption::text(
                    crate::set_options::SPLIT,
                    "How the server may cut the sequence into collections: none (one collection), instance (its defaults, e.g. 300 s / 100 m), or SECONDS,METERS (300s,100m).",
                )
                .default("none"),
            )
            .option(
                RunOption::text(
                    crate::set_options::DEDUP,
                    "Whether the server deletes pictures nearly identical to the previous one: none (keep all), instance (its defaults, e.g. 1 m / 60°), or METERS,DEGREES (1m,60deg).",
                )
                .default("none"),
            )
            .option(RunOption::text(
                crate::set_options::VISIBILITY,
                "Who sees the pictures: anyone, owner-only or logged-only (default: your account's setting, else the instance's).",
            ))
    });
    &SETTINGS
}

impl Config {
    /// Reads the integration's keys; `PANORAMAX_URL` must be an `http(s)://` URL.
    pub fn from_context(ctx: &Context) -> Result<Config, PluginError> {
        let settings = settings();
        let url = settings.url(ctx, ENV_URL)?;
        // The root, also when the user gave the API's address.
        let url = url.strip_suffix("/api").unwrap_or(&url).to_string();
        let number = |key: &str| settings.number(ctx, key);
        Ok(Config {
            url,
            retry_base: Duration::from_millis(number(ENV_RETRY_BASE_MS)?),
            claim_timeout: Duration::from_secs(number(ENV_CLAIM_TIMEOUT_SECS)?),
            claim_poll: Duration::from_millis(number(ENV_CLAIM_POLL_MS)?),
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
    settings().integer_option(&request.options, "jobs") as usize
}
