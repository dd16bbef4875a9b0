//! The integration's `.env` keys and run options, each declared once (help, secret, default, range):
//! the manifest's lists and help are made from it, and `crate::config` reads every value through it.

use std::sync::LazyLock;

use plugin_api::sdk::settings::{EnvKey, RunOption, Settings};

use crate::config::{
    DEFAULT_AUTHORIZE_URL, DEFAULT_GRAPH_URL, DEFAULT_JOBS, DEFAULT_PUBLISH_DEADLINE,
    DEFAULT_RETRY_BASE, DEFAULT_UPLOAD_URL, ENV_PUBLISH_DEADLINE_SECS, ENV_RETRY_BASE_MS,
    ENV_TEST_NOW,
};

/// The app's client id: gates the integration.
pub const APP_ID: &str = "MAPILLARY_APP_ID";
/// The app's client secret.
pub const SECRET: &str = "MAPILLARY_SECRET";
/// The callback URL registered with the app.
pub const REDIRECT_URI: &str = "MAPILLARY_REDIRECT_URI";
/// The Graph API root.
pub const GRAPH_URL: &str = "MAPILLARY_GRAPH_URL";
/// The upload service root.
pub const UPLOAD_URL: &str = "MAPILLARY_UPLOAD_URL";
/// The OAuth consent page.
pub const AUTHORIZE_URL: &str = "MAPILLARY_AUTHORIZE_URL";
/// The organisation to publish into.
pub const ORGANIZATION_ID: &str = "MAPILLARY_ORGANIZATION_ID";

/// Option: files uploaded in parallel.
pub const JOBS: &str = "jobs";
/// Option: publish again what may have gone through (after checking).
pub const REPUBLISH: &str = "republish";
/// Option: upload everything, publish nothing.
pub const NO_PUBLISH: &str = "no_publish";
/// Option: the bandwidth cap.
pub const BWLIMIT: &str = "bwlimit";

/// The declaration.
pub fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(
                EnvKey::required(
                    APP_ID,
                    "The client id of your Mapillary app (create one at https://www.mapillary.com/dashboard/developers).",
                )
                .example("1234567890123456"),
            )
            .key(
                EnvKey::required(SECRET, "The app's client secret.")
                    .secret()
                    .example("MLY|1234567890123456|0123456789abcdef0123456789abcdef"),
            )
            .key(
                EnvKey::required(
                    REDIRECT_URI,
                    "The callback URL registered with the app. A loopback URL (http://127.0.0.1:<port>/...) lets mtp catch the redirect itself; anything else (MTPDU's app.mtp.desktop//app) makes mtp ask you to paste the URL.",
                )
                .example("http://127.0.0.1:8765/mapillary/callback"),
            )
            .key(
                EnvKey::optional(GRAPH_URL, "The Graph API endpoint.")
                    .url()
                    .default(DEFAULT_GRAPH_URL),
            )
            .key(
                EnvKey::optional(UPLOAD_URL, "The upload endpoint.")
                    .url()
                    .default(DEFAULT_UPLOAD_URL),
            )
            // Read as written (a consent page's address is used as given).
            .key(
                EnvKey::optional(AUTHORIZE_URL, "The OAuth consent page.")
                    .default(DEFAULT_AUTHORIZE_URL),
            )
            .key(EnvKey::optional(
                ORGANIZATION_ID,
                "Publish into this organisation instead of the user's own account.",
            ))
            .key(
                EnvKey::optional(
                    ENV_RETRY_BASE_MS,
                    "First retry delay in ms (doubles up to 16 times that).",
                )
                .number(0, u64::MAX)
                .default(DEFAULT_RETRY_BASE.as_millis()),
            )
            .key(
                EnvKey::optional(
                    ENV_PUBLISH_DEADLINE_SECS,
                    "How long Mapillary may take to publish an uploaded sequence before it is called overdue (still looked for; republished only with --republish), in seconds.",
                )
                .number(0, u64::MAX)
                .default(DEFAULT_PUBLISH_DEADLINE.as_secs()),
            )
            .key(EnvKey::optional(
                ENV_TEST_NOW,
                "Tests only: fixes the clock behind token expiry, handle age, the publication deadline and lookup backoff (Unix ms, or RFC 3339 such as 2026-05-04T10:00:00Z). Never set it otherwise.",
            ))
            .option(
                RunOption::integer(JOBS, "Files uploaded in parallel.", DEFAULT_JOBS as i64, 1, 32)
                    .flag("jobs"),
            )
            .option(
                RunOption::switch(
                    REPUBLISH,
                    "Publish again a sequence whose publish outcome is unknown (after checking it did not go through), or one overdue on Mapillary (after one more lookup).",
                )
                .flag("republish"),
            )
            .option(
                RunOption::switch(
                    crate::changes::ADD_NEW_IMAGES,
                    "For a sequence already published: send the images added to its folder since, as an additional sequence.",
                )
                .flag("add_new_images"),
            )
            .option(
                RunOption::text(
                    BWLIMIT,
                    "Cap the upload bandwidth, shared by all parallel jobs (bytes per second: 500K, 2M; K = 1024).",
                )
                .flag("bwlimit"),
            )
            .option(
                RunOption::switch(
                    NO_PUBLISH,
                    "Upload the images and manifests but publish nothing (no finish_upload), as mapillary_tools' --nofinish.",
                )
                .flag("no_publish"),
            )
            .option(
                RunOption::switch(
                    plugin_api::manifest::HANDLES_PRIOR_UPLOADS,
                    "For a sequence MTP Desktop Uploader already published to Mapillary (its sequence log says so): look its key up on your account, sending nothing, instead of skipping it (--force publishes it again).",
                )
                .default("true"),
            )
            .option(RunOption::text(
                crate::dry_run::DIR_OPTION,
                "Where --dry-run writes the prepared images and manifests (default: <temp dir>/mtp_dry_run/mapillary/<sequence id>).",
            ))
    });
    &SETTINGS
}
