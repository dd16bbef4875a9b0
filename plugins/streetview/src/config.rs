//! The integration's `.env` keys, read once per call.

use std::sync::LazyLock;
use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::sdk::settings::{EnvKey, Settings};

/// The OAuth client id of the user's own Google Cloud project (a "Desktop app" client): gates the
/// integration.
pub const ENV_CLIENT_ID: &str = "GOOGLE_CLIENT_ID";
/// That client's secret (Google's installed-app clients have one; it is not confidential there, but it
/// is still sent only to the token endpoint).
pub const ENV_CLIENT_SECRET: &str = "GOOGLE_CLIENT_SECRET";
/// The Street View Publish API root (default [`DEFAULT_API_URL`]).
pub const ENV_API_URL: &str = "GOOGLE_STREETVIEW_API_URL";
/// Google's consent page (default [`DEFAULT_AUTH_URL`]).
pub const ENV_AUTH_URL: &str = "GOOGLE_OAUTH_AUTH_URL";
/// Google's token endpoint (default [`DEFAULT_TOKEN_URL`]).
pub const ENV_TOKEN_URL: &str = "GOOGLE_OAUTH_TOKEN_URL";
/// The loopback port the browser is sent back to (default: any free port).
pub const ENV_REDIRECT_PORT: &str = "GOOGLE_REDIRECT_PORT";
/// Requests a day the project may make (default [`DEFAULT_DAILY_QUOTA`]).
pub const ENV_DAILY_QUOTA: &str = "GOOGLE_STREETVIEW_DAILY_QUOTA";
/// Least time between two looks at the photos' publication, in seconds.
pub const ENV_POLL_SECS: &str = "GOOGLE_STREETVIEW_POLL_SECS";
/// How long a photo whose creation got no answer may stay unlisted before it is created again, in s.
pub const ENV_INDEX_WAIT_SECS: &str = "GOOGLE_STREETVIEW_INDEX_WAIT_SECS";
/// First retry delay after a network failure or a 5xx, in ms.
pub const ENV_RETRY_BASE_MS: &str = "GOOGLE_STREETVIEW_RETRY_BASE_MS";
/// Tests and fakes only: the length of the quota day, in ms.
pub const ENV_QUOTA_DAY_MS: &str = "GOOGLE_STREETVIEW_QUOTA_DAY_MS";

/// The API (developers.google.com/streetview/publish, REST reference: `streetviewpublish.googleapis.com`).
pub const DEFAULT_API_URL: &str = "https://streetviewpublish.googleapis.com";
/// Google's OAuth 2.0 consent page for installed apps (developers.google.com/identity/protocols/oauth2/
/// native-app; MTP Desktop Uploader `integrations/index.ts` uses the same).
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint (same page; MTP Desktop Uploader `events_loader.ts`).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The documented default: 2,000 queries per day per project (Street View Publish API "Limits" page).
pub const DEFAULT_DAILY_QUOTA: u64 = 2_000;
/// A look at publication at most every ten minutes (assumption: Google publishes in hours or days).
pub const DEFAULT_POLL: Duration = Duration::from_secs(600);
/// A photo created without an answer and not listed after six hours is taken as not created
/// (assumption: the reference says only that photos being indexed are not listed yet).
pub const DEFAULT_INDEX_WAIT: Duration = Duration::from_secs(6 * 3600);
/// First retry delay (doubles up to 32 times it).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// A day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// Endpoints and tuning.
#[derive(Debug, Clone)]
pub struct Config {
    /// OAuth client id.
    pub client_id: String,
    /// API root, no trailing slash.
    pub api_url: String,
    /// Consent page.
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Loopback port for the redirect (0: pick a free one).
    pub redirect_port: u16,
    /// Requests per quota day.
    pub daily_quota: u64,
    /// Least time between looks at publication.
    pub poll: Duration,
    /// How long an unanswered creation may stay unlisted.
    pub index_wait: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Length of the quota day.
    pub quota_day: Duration,
}

/// The keys, each declared once: the manifest's lists and help, and every read, come from here.
pub fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(EnvKey::required(
                ENV_CLIENT_ID,
                "The Client ID of an OAuth client in your own Google Cloud project: enable the Street View Publish API (console.cloud.google.com/apis/library/streetviewpublish.googleapis.com), set up the OAuth consent screen (add yourself as a test user), then Credentials > Create credentials > OAuth client ID > Desktop app.",
            )
            .example("123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com"))
            .key(EnvKey::required(ENV_CLIENT_SECRET, "The Client secret of that OAuth client.")
                .secret()
                .example("GOCSPX-0123456789abcdefghijklmnop"))
            .key(EnvKey::optional(ENV_API_URL, "The Street View Publish API root.").url().default(DEFAULT_API_URL))
            .key(EnvKey::optional(ENV_AUTH_URL, "Google's OAuth consent page.").url().default(DEFAULT_AUTH_URL))
            .key(EnvKey::optional(ENV_TOKEN_URL, "Google's OAuth token endpoint.").url().default(DEFAULT_TOKEN_URL))
            .key(EnvKey::optional(ENV_REDIRECT_PORT, "The loopback port your browser is sent back to after Google's consent page (0: any free port; Desktop app clients accept any).")
                .number(0, u16::MAX.into()).default(0))
            .key(EnvKey::optional(ENV_DAILY_QUOTA, "Requests a day your project may make to the Street View Publish API (Google's default: 2000; raise it here if Google raised your quota). A run stops cleanly when the day's requests are used up and says when it can go on.")
                .number(1, u64::MAX).default(DEFAULT_DAILY_QUOTA))
            .key(EnvKey::optional(ENV_POLL_SECS, "Least time between two looks at whether Google published the photos, in seconds.")
                .number(0, u64::MAX).default(DEFAULT_POLL.as_secs()))
            .key(EnvKey::optional(ENV_INDEX_WAIT_SECS, "How long a photo whose creation got no answer may stay missing from your photo list before mtp creates it again, in seconds (Google lists new photos only once indexed).")
                .number(0, u64::MAX).default(DEFAULT_INDEX_WAIT.as_secs()))
            .key(EnvKey::optional(ENV_RETRY_BASE_MS, "First retry delay in ms after a network failure or a server error (doubles up to 32 times that).")
                .number(0, u64::MAX).default(DEFAULT_RETRY_BASE.as_millis() as u64))
            .key(EnvKey::optional(ENV_QUOTA_DAY_MS, "Tests and fakes only: the length of the quota day, in ms. Never set it otherwise.")
                .number(1000, u64::MAX).default(DAY.as_millis() as u64))
    });
    &SETTINGS
}

impl Config {
    /// Reads the keys; the OAuth client's two are required.
    pub fn from_context(ctx: &Context) -> Result<Config, PluginError> {
        let settings = settings();
        let number = |key: &str| settings.number(ctx, key);
        let client_id = settings.required_text(ctx, ENV_CLIENT_ID)?;
        if client_id.contains(char::is_whitespace) {
            return Err(PluginError::invalid_input(format!(
                "{ENV_CLIENT_ID} in .env must be the Client ID of your OAuth client \
                 (…apps.googleusercontent.com), not {client_id:?}"
            )));
        }
        settings.required_text(ctx, ENV_CLIENT_SECRET)?;
        Ok(Config {
            client_id,
            api_url: settings.url(ctx, ENV_API_URL)?,
            auth_url: settings.url(ctx, ENV_AUTH_URL)?,
            token_url: settings.url(ctx, ENV_TOKEN_URL)?,
            // Declared within 0..=65535.
            redirect_port: u16::try_from(number(ENV_REDIRECT_PORT)?).unwrap_or(0),
            daily_quota: number(ENV_DAILY_QUOTA)?,
            poll: Duration::from_secs(number(ENV_POLL_SECS)?),
            index_wait: Duration::from_secs(number(ENV_INDEX_WAIT_SECS)?),
            retry_base: Duration::from_millis(number(ENV_RETRY_BASE_MS)?),
            quota_day: Duration::from_millis(number(ENV_QUOTA_DAY_MS)?),
        })
    }

    /// An API path (`/v1/photo` → `https://streetviewpublish.googleapis.com/v1/photo`).
    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    /// The client secret, read only where it is sent.
    pub fn client_secret(ctx: &Context) -> Result<String, PluginError> {
        settings().required_text(ctx, ENV_CLIENT_SECRET)
    }
}
