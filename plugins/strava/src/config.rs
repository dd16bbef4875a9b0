//! The integration's `.env` keys, read once per call.

use std::sync::LazyLock;
use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::sdk::settings::{EnvKey, Settings};

/// The API application's numeric client id (strava.com/settings/api): gates the integration.
pub const ENV_CLIENT_ID: &str = "STRAVA_CLIENT_ID";
/// The API application's client secret.
pub const ENV_CLIENT_SECRET: &str = "STRAVA_CLIENT_SECRET";
/// Where Strava sends the browser back after the consent page.
pub const ENV_REDIRECT_URI: &str = "STRAVA_REDIRECT_URI";
/// The API root (default [`DEFAULT_API_URL`]).
pub const ENV_API_URL: &str = "STRAVA_API_URL";
/// The OAuth root holding `/authorize` and `/token` (default [`DEFAULT_OAUTH_URL`]).
pub const ENV_OAUTH_URL: &str = "STRAVA_OAUTH_URL";
/// First retry delay after a network failure or a 5xx, in ms.
pub const ENV_RETRY_BASE_MS: &str = "STRAVA_RETRY_BASE_MS";
/// Time between two looks at an upload being processed, in ms.
pub const ENV_POLL_MS: &str = "STRAVA_POLL_MS";
/// How long one `mtp upload` waits for Strava's processing before leaving it to the re-checks, in s.
pub const ENV_POLL_TIMEOUT_SECS: &str = "STRAVA_POLL_TIMEOUT_SECS";
/// The length of Strava's short rate-limit window, in ms: 15 minutes, scaled down by tests and fakes only.
pub const ENV_RATE_WINDOW_MS: &str = "STRAVA_RATE_WINDOW_MS";

/// Strava's API (developers.strava.com, "API Reference": `https://www.strava.com/api/v3`).
pub const DEFAULT_API_URL: &str = "https://www.strava.com/api/v3";
/// Strava's OAuth endpoints (developers.strava.com/docs/authentication).
pub const DEFAULT_OAUTH_URL: &str = "https://www.strava.com/oauth";
/// Strava's short window: 15 minutes, starting at :00, :15, :30 and :45 (developers.strava.com/docs/rate-limits).
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Short windows in a day: the long window resets at midnight UTC.
pub const WINDOWS_PER_DAY: u32 = 96;
/// Strava asks for at most one look a second at an upload (stravalib `ActivityUploader.wait`: "Strava
/// recommends 1s minimum").
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// A small track is usually processed within seconds; past this the run ends and re-checks take over.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// First retry delay (doubles up to 32 times it).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);

/// Endpoints and tuning.
#[derive(Debug, Clone)]
pub struct Config {
    /// Application client id.
    pub client_id: String,
    /// API root, no trailing slash.
    pub api_url: String,
    /// OAuth root, no trailing slash.
    pub oauth_url: String,
    /// Redirect URI registered with the application.
    pub redirect_uri: String,
    /// First retry delay.
    pub retry_base: Duration,
    /// Interval between looks at a processing upload.
    pub poll: Duration,
    /// How long a run polls before leaving the upload to re-checks.
    pub poll_timeout: Duration,
    /// Length of the short rate-limit window.
    pub rate_window: Duration,
}

/// The keys, each declared once: the manifest's lists and help, and every read, come from here.
pub fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(EnvKey::required(
                ENV_CLIENT_ID,
                "The Client ID of your own Strava API application (create one at https://www.strava.com/settings/api; a new application authorises only its owner, which is all mtp needs).",
            )
            .example("123456"))
            .key(EnvKey::required(ENV_CLIENT_SECRET, "The Client Secret of that application.")
                .secret()
                .example("0123456789abcdef0123456789abcdef01234567"))
            .key(EnvKey::required(
                ENV_REDIRECT_URI,
                "Where Strava sends the browser back; its host must be the application's Authorization Callback Domain (localhost and 127.0.0.1 are accepted). A loopback URL lets mtp catch the redirect itself.",
            )
            .example("http://127.0.0.1:8766/strava/callback"))
            .key(EnvKey::optional(ENV_API_URL, "The Strava API root.").url().default(DEFAULT_API_URL))
            .key(EnvKey::optional(ENV_OAUTH_URL, "The Strava OAuth root (holding /authorize and /token).")
                .url().default(DEFAULT_OAUTH_URL))
            .key(EnvKey::optional(ENV_RETRY_BASE_MS, "First retry delay in ms after a network failure or a server error (doubles up to 32 times that).")
                .number(0, u64::MAX).default(DEFAULT_RETRY_BASE.as_millis() as u64))
            .key(EnvKey::optional(ENV_POLL_MS, "Time between two looks at an upload Strava is processing, in ms.")
                .number(10, u64::MAX).default(DEFAULT_POLL.as_millis() as u64))
            .key(EnvKey::optional(ENV_POLL_TIMEOUT_SECS, "How long mtp upload waits for Strava to process the track before leaving it to mtp status, in seconds.")
                .number(0, u64::MAX).default(DEFAULT_POLL_TIMEOUT.as_secs()))
            .key(EnvKey::optional(ENV_RATE_WINDOW_MS, "Tests and fakes only: the length of Strava's 15-minute rate-limit window, in ms. Never set it otherwise.")
                .number(100, u64::MAX).default(DEFAULT_RATE_WINDOW.as_millis() as u64))
    });
    &SETTINGS
}

impl Config {
    /// Reads the keys; the three of the API application are required.
    pub fn from_context(ctx: &Context) -> Result<Config, PluginError> {
        let settings = settings();
        let number = |key: &str| settings.number(ctx, key);
        let client_id = settings.required_text(ctx, ENV_CLIENT_ID)?;
        if !client_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(PluginError::invalid_input(format!(
                "{ENV_CLIENT_ID} in .env must be the numeric Client ID shown at \
                 https://www.strava.com/settings/api, not {client_id:?}"
            )));
        }
        Ok(Config {
            client_id,
            api_url: settings.url(ctx, ENV_API_URL)?,
            oauth_url: settings.url(ctx, ENV_OAUTH_URL)?,
            redirect_uri: settings.required_text(ctx, ENV_REDIRECT_URI)?,
            retry_base: Duration::from_millis(number(ENV_RETRY_BASE_MS)?),
            poll: Duration::from_millis(number(ENV_POLL_MS)?),
            poll_timeout: Duration::from_secs(number(ENV_POLL_TIMEOUT_SECS)?),
            rate_window: Duration::from_millis(number(ENV_RATE_WINDOW_MS)?),
        })
    }

    /// An API path (`/uploads` → `https://www.strava.com/api/v3/uploads`).
    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    /// The activity's page: the site is the API root without `/api/v3`.
    pub fn activity_link(&self, activity_id: u64) -> String {
        let site = self
            .api_url
            .strip_suffix("/api/v3")
            .unwrap_or(&self.api_url);
        format!("{site}/activities/{activity_id}")
    }

    /// The client secret, read only where it is sent.
    pub fn client_secret(ctx: &Context) -> Result<String, PluginError> {
        settings().required_text(ctx, ENV_CLIENT_SECRET)
    }
}
