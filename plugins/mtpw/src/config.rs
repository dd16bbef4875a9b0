//! The integration's `.env` keys and run options, each declared once: the manifest's lists and help, and
//! every read, come from here.

use std::sync::LazyLock;
use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::sdk::settings::{EnvKey, RunOption, Settings};

/// The MTPW server.
pub const URL: &str = "MTP_WEB_URL";
/// MTPW's OAuth authorisation page.
pub const AUTH_URL: &str = "MTP_WEB_AUTH_URL";
/// The MTPW application's client id.
pub const APP_ID: &str = "MTP_WEB_APP_ID";
/// Its client secret.
pub const APP_SECRET: &str = "MTP_WEB_APP_SECRET";
/// The redirect URI to send, only when set.
pub const REDIRECT_URI: &str = "MTP_WEB_REDIRECT_URI";
/// First retry delay, in ms (tests shorten it).
pub const RETRY_BASE_MS: &str = "MTP_WEB_RETRY_BASE_MS";
/// Create MTPW sequences on servers that have not shown they can import (until one refuses).
pub const CREATE_SEQUENCES: &str = "MTP_WEB_CREATE_SEQUENCES";
/// Option: send again a create whose answer never came.
pub const REPUBLISH: &str = "republish";
/// Option: create MTPW sequences on this server although it has not shown that it can import (remembered
/// for the server until an import there fails).
pub const CREATE: &str = "create";

/// The declaration.
pub fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(
                EnvKey::required(URL, "The MTPW server.")
                    .url()
                    .example("https://www.mapthepaths.com"),
            )
            .key(
                EnvKey::required(
                    AUTH_URL,
                    "MTPW's OAuth authorisation page (django-oauth-toolkit is mounted under accounts/).",
                )
                // Read as written: Django's URL keeps its trailing slash.
                .example("https://www.mapthepaths.com/accounts/authorize/"),
            )
            .key(
                EnvKey::required(APP_ID, "The client id of your MTPW application.")
                    .example("your-mtpw-client-id"),
            )
            .key(
                EnvKey::required(APP_SECRET, "The application's client secret.")
                    .secret()
                    .example("your-mtpw-client-secret"),
            )
            .key(
                EnvKey::optional(
                    REDIRECT_URI,
                    "The redirect_uri to send, only when set. MTPW accepts only the app.mtp.desktop scheme and \
                     the URI registered for the app, so a loopback URL cannot work: leave it unset and paste \
                     the URL your browser is sent to, or run `mtp auth mtpw --token <token>`.",
                )
                .example("app.mtp.desktop://oauth"),
            )
            .key(
                EnvKey::optional(
                    CREATE_SEQUENCES,
                    "Create MTPW sequences on every MTPW server that has not refused an import, without \
                     waiting for one to show it can import. Against the public mtp-web code no import can \
                     succeed (it checks the Mapillary token with Mapillary's retired API v3), so each \
                     sequence created there stays empty; off, mtp creates only where an import went \
                     through before or where you ran with --option mtpw.create=true.",
                )
                .switch(),
            )
            .key(
                EnvKey::optional(RETRY_BASE_MS, "First retry delay in ms.")
                    .number(0, u64::MAX)
                    .default(1000),
            )
            .option(
                RunOption::switch(
                    REPUBLISH,
                    "Send again a create whose answer never came, after you looked on MTPW and found no sequence.",
                )
                .flag("republish"),
            )
            .option(RunOption::switch(
                CREATE,
                "Create MTPW sequences on this server although it has not shown that it can import (against the public mtp-web code none can, so each would stay empty); remembered for the server until an import there fails.",
            ))
    });
    &SETTINGS
}

/// The server's root, without a trailing slash.
pub fn base(ctx: &Context) -> Result<String, PluginError> {
    settings().url(ctx, URL)
}

/// Whether `.env` chooses to create MTPW sequences on servers that have not shown they can import.
pub fn create_sequences(ctx: &Context) -> Result<bool, PluginError> {
    settings().switch(ctx, CREATE_SEQUENCES)
}

/// The first retry delay.
pub fn retry_base(ctx: &Context) -> Result<Duration, PluginError> {
    Ok(Duration::from_millis(
        settings().number(ctx, RETRY_BASE_MS)?,
    ))
}
