//! The Map the Paths Web (MTPW) integration: chained after Mapillary, it hands MTPW the Mapillary token and
//! imports the published sequence (key, name, description, transport type, tags).

use plugin_api::prelude::*;

/// The `.env` keys the integration cannot work without.
pub const REQUIRED_ENV: [&str; 4] = [
    "MTP_WEB_URL",
    "MTP_WEB_AUTH_URL",
    "MTP_WEB_APP_ID",
    "MTP_WEB_APP_SECRET",
];

/// The integration.
#[derive(Debug, Default)]
pub struct Mtpw;

#[plugin_api::async_trait]
impl Integration for Mtpw {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "mtpw".into(),
            name: "Map the Paths Web".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Syncs Mapillary sequences to Map the Paths Web".into(),
            api_version: String::new(),
            required_env: REQUIRED_ENV.iter().map(|k| k.to_string()).collect(),
            optional_env: vec!["MTP_WEB_REDIRECT_URI".into()],
            after: vec!["mapillary".into()],
            exports: vec!["unique_id".into()],
            consumes: vec![
                "mapillary.sequence_key".into(),
                "mapillary.user_token".into(),
            ],
        }
    }

    async fn run(&self, _ctx: &Context, _request: RunRequest) -> Result<RunOutcome, PluginError> {
        Err(PluginError::unsupported(
            "the MTPW sync is not implemented yet",
        ))
    }
}

plugin_api::export_plugin!(Mtpw);
