//! The Mapillary integration: uploads a sequence to Mapillary through its v4 API. The protocol facts the
//! code relies on, with their public sources, are in `docs/providers/mapillary.md`.
//!
//! Steps: validate, authorise (OAuth 2.0), upload every image and the manifest as resumable entities,
//! publish (`finish_upload`), check for failure, and find the published sequence key. MTPW's sync runs
//! after it as its own plugin.
//!
//! Modules (all private: the crate's only public item is [`Mapillary`]), one job each:
//! - `token`: the token's lifetime: expiry, the refresh grant, one refresh after a refusal mid-run;
//! - `overdue`: parts Mapillary has not shown within 72 h, looked for with backoff;
//! - `dry_run`: `--dry-run`, written into a local directory, nothing sent;
//! - `auth`: the OAuth code flow, `/me`, `auth status`. It does not use the `oauth2` crate: Mapillary's
//!   token endpoint wants `Authorization: OAuth <client secret>` and a JSON body, which `oauth2`'s standard
//!   exchange (a form body with HTTP Basic or form-field client authentication) does not speak, so the crate
//!   would add a second HTTP stack for nothing but URL building (details in `auth`);
//! - `exif_rewrite` + `outgoing`: the bytes sent per image — the file with only its EXIF segment
//!   replaced — prepared once, streamed from disk and hashed into the content-addressed session key;
//! - `upload`: resumable entity uploads (server offset first, only the remainder sent);
//! - `split` + `bundle`: parts within Mapillary's limits, their session keys and manifests; `plan`: the
//!   check of a sequence and its parts, in one pass over its images;
//! - `sequence_images`: the run's images, read a page or a part at a time, never all at once;
//! - `publish`: `finish_upload`, at most once per manifest;
//! - `lookup`: finding the sequence key by capture times;
//! - `state`: what is persisted, and where (the table of keys is there); `outcome`: the record
//!   `mtp status` shows;
//! - `classify`: Mapillary's error grammar for the SDK retry loop (`plugin_api::sdk::retry`): what is
//!   retried, how long to wait on a rate limit, what needs a new login;
//! - `api`: the endpoints' requests, sent through the SDK's HTTP layer (`plugin_api::http`: its client,
//!   `exchange`, `Answer`), and how an attempt failed (`Failure`), which `classify` judges;
//! - `pipeline`: the run that ties them together; `config`, `error`, `progress`.
//!
//! # Guarantees
//! - Each acknowledged image handle, manifest handle and publication step is committed to the host's
//!   state store as it happens: after a `kill -9` the next run re-sends nothing acknowledged.
//! - `finish_upload` is sent at most once per manifest; when its outcome is unknown (a crash, a timeout or a
//!   5xx after the request left) the record says so and only `mtp upload --republish` sends it again.
//! - Memory does not depend on file size: files are streamed in `plugin_api::http::CHUNK_SIZE` (256 KiB)
//!   chunks. Between counting and sending, each image still to send is held as its prepared description
//!   (where its bytes come from, and its new EXIF segment: at most 64 KiB, usually a few KiB).
//! - Rate limits and outages are waited out within a budget (200 retries, 2 h without progress); a run
//!   that gives up keeps everything acknowledged, and the next run resumes.
//! - The token is refreshed before it expires and once after a refusal mid-run; a failed refresh stops the
//!   run asking for a new login and keeps everything acknowledged. Handles older than 2 days are checked
//!   with the service again before they are published; a part not shown 72 h after publishing is overdue
//!   (looked for hourly, then daily), never published again without `--republish`.
//! - `--dry-run` contacts no service and writes no state (`dry_run`).
//! - The user's token travels only in `Authorization` headers and the `user_token` export; it is never
//!   logged or put into a message, a progress event or the record's keys.

#![warn(missing_docs)]

mod api;
mod attempts;
mod auth;
mod bundle;
mod changes;
mod classify;
mod config;
mod dry_run;
mod eligibility;
mod error;
mod exif_rewrite;
mod lookup;
mod moved;
mod outcome;
mod outgoing;
mod overdue;
mod pipeline;
mod plan;
mod prepublish;
mod progress;
mod publish;
mod sequence_images;
mod settings;
mod split;
mod state;
mod stored_plan;
mod token;
mod upload;

use plugin_api::prelude::*;

use crate::api::Api;
use crate::config::Config;

/// The integration.
#[derive(Debug, Default)]
pub struct Mapillary;

#[plugin_api::async_trait]
impl Integration for Mapillary {
    fn manifest(&self) -> Manifest {
        settings::settings().declare(Manifest {
            id: "mapillary".into(),
            name: "Mapillary".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Uploads sequences to Mapillary (API v4) and finds their sequence keys"
                .into(),
            api_version: String::new(),
            after: Vec::new(),
            exports: vec![
                "sequence_key".into(),
                "user_token".into(),
                changes::ADDED_SEQUENCE_KEY.into(),
            ],
            consumes: Vec::new(),
            // The token is the secret `user_token` (state::TOKEN_SECRET): the host hands it downstream
            // from the secret store and never keeps it in a record.
            secret_exports: vec![state::TOKEN_SECRET.into()],
            ..Manifest::default()
        })
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        answer(eligibility::refusal(sequence))
    }

    fn eligibility_paged(
        &self,
        sequence: &SequenceDescriptor,
        images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(answer(eligibility::refusal_paged(sequence, images)?))
    }

    async fn authorize(
        &self,
        ctx: &Context,
        request: AuthRequest,
    ) -> Result<AuthOutcome, PluginError> {
        let api = Api::new(Config::from_context(ctx)?)?;
        Ok(auth::authorize(&api, ctx, request).await?)
    }

    async fn auth_status(&self, ctx: &Context) -> Result<AuthStatus, PluginError> {
        Ok(auth::status(ctx)?)
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        self.run_paged(ctx, request, RunImages::carried()).await
    }

    /// The run, reading the images a page or a part at a time (`sequence_images`), never all at once.
    async fn run_paged(
        &self,
        ctx: &Context,
        mut request: RunRequest,
        images: RunImages,
    ) -> Result<RunOutcome, PluginError> {
        // The request keeps only the sequence's header, whether the host lends the images or the
        // request carried them: no step can read them but through `Images`, the same way for both.
        let carried = std::mem::take(&mut request.sequence.images);
        let images = if images.is_lent() {
            images.read(ctx, &request.sequence)
        } else {
            Images::whole(&carried)
        };
        Ok(pipeline::Run::new(ctx, &request, images)?.run().await?)
    }
}

fn answer(refusal: Option<String>) -> Eligibility {
    match refusal {
        Some(reason) => Eligibility::not_eligible(reason),
        None => Eligibility::eligible(),
    }
}

plugin_api::export_plugin!(Mapillary);
