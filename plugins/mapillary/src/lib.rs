//! The Mapillary integration: uploads a sequence to Mapillary through its v4 API.
//!
//! Steps (the seed's eight, mapped onto v4 in design.md §3): validate, authorise (OAuth 2.0), upload every
//! image and the manifest as resumable entities, publish (`finish_upload`), check for failure, and find the
//! published sequence key. MTPW's sync runs after it as its own plugin.

use plugin_api::prelude::*;
use plugin_api::sequence::Projection;

/// The `.env` keys the integration cannot work without.
pub const REQUIRED_ENV: [&str; 3] = [
    "MAPILLARY_APP_ID",
    "MAPILLARY_SECRET",
    "MAPILLARY_REDIRECT_URI",
];

/// Endpoint overrides (defaults are Mapillary's real services); used to point at the local fake.
pub const OPTIONAL_ENV: [&str; 4] = [
    "MAPILLARY_GRAPH_URL",
    "MAPILLARY_UPLOAD_URL",
    "MAPILLARY_AUTHORIZE_URL",
    "MAPILLARY_ORGANIZATION_ID",
];

/// The integration.
#[derive(Debug, Default)]
pub struct Mapillary;

impl Mapillary {
    /// Why Mapillary cannot take `sequence`, if it cannot.
    pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
        if let Some(transport) = &sequence.transport {
            if transport.is_air() {
                return Some(format!(
                    "transport type {} is not accepted by Mapillary",
                    transport
                ));
            }
        }
        sequence
            .projections()
            .into_iter()
            .find(|p| !matches!(p, Projection::Flat | Projection::Equirectangular))
            .map(|p| {
                format!(
                    "projection {} is not accepted by Mapillary (only flat and equirectangular)",
                    p.as_str()
                )
            })
    }
}

#[plugin_api::async_trait]
impl Integration for Mapillary {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "mapillary".into(),
            name: "Mapillary".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Uploads sequences to Mapillary (API v4) and finds their sequence keys"
                .into(),
            api_version: String::new(),
            required_env: REQUIRED_ENV.iter().map(|k| k.to_string()).collect(),
            optional_env: OPTIONAL_ENV.iter().map(|k| k.to_string()).collect(),
            after: Vec::new(),
            exports: vec!["sequence_key".into(), "user_token".into()],
            consumes: Vec::new(),
        }
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        match Mapillary::refusal(sequence) {
            Some(reason) => Eligibility::not_eligible(reason),
            None => Eligibility::eligible(),
        }
    }

    async fn run(&self, _ctx: &Context, _request: RunRequest) -> Result<RunOutcome, PluginError> {
        Err(PluginError::unsupported(
            "the Mapillary upload pipeline is not implemented yet",
        ))
    }
}

plugin_api::export_plugin!(Mapillary);
