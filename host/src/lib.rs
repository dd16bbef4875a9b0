//! The mtp host: finds integration plugins, loads them through the stable ABI, gates them by `.env`,
//! chains them, and runs sequences through them while persisting state.

pub mod authorize;
pub mod checkpoint;
pub mod drift;
pub mod env;
pub mod exclusive;
pub mod loader;
pub mod lock;
pub mod registry;
pub mod runner;
pub mod services;
pub mod signals;
pub mod state;
pub mod table;

/// Environment variables that configure the bundled integrations; `mtp demo` clears them so that only
/// its own `.env` (pointing at the local fakes) applies.
pub const DEMO_ISOLATED_ENV: [&str; 17] = [
    "MAPILLARY_APP_ID",
    "MAPILLARY_SECRET",
    "MAPILLARY_REDIRECT_URI",
    "MAPILLARY_GRAPH_URL",
    "MAPILLARY_UPLOAD_URL",
    "MAPILLARY_AUTHORIZE_URL",
    "MAPILLARY_ORGANIZATION_ID",
    "MAPILLARY_RETRY_BASE_MS",
    "MAPILLARY_PUBLISH_DEADLINE_SECS",
    "MTP_WEB_URL",
    "MTP_WEB_AUTH_URL",
    "MTP_WEB_APP_ID",
    "MTP_WEB_APP_SECRET",
    "MTP_WEB_REDIRECT_URI",
    "MTP_WEB_RETRY_BASE_MS",
    "MTP_STATE_DIR",
    "MTP_AUTH_BROWSER",
];
