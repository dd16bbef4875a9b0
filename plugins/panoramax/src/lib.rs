//! The Panoramax integration: uploads a sequence to a Panoramax instance (its API server is GeoVisio) as
//! one upload set, which the server dispatches into one or more collections.
//!
//! Modules, one job each:
//! - [`config`]: `.env` keys (`PANORAMAX_URL` gates the integration) and options;
//! - [`auth`]: a token the user has, or the claim flow that needs no app registration;
//! - [`eligibility`]: the server's own acceptance rules, predicted per file;
//! - [`upload_set`]: the one upload set of a sequence, found again after any crash;
//! - [`set_options`]: what the set is created with (no server split or deduplication unless asked);
//! - [`upload`] + [`multipart`]: pictures sent in parallel, streamed from disk;
//! - [`pipeline`]: the run, completion, and the record `mtp status` shows;
//! - [`api`]: the HTTP calls; [`retrying`]: the only use of the SDK's retry API; [`state`]: what is
//!   persisted.
//!
//! # Guarantees
//! - A sequence has one upload set: its id is committed before the first picture is sent, and a creation
//!   whose answer was lost is found again by the nonce written before it was sent.
//! - A picture is never stored twice: the server's file list says what it holds, and a picture sent again
//!   after a lost answer is answered 409 for the same upload set, which counts as accepted.
//! - Memory does not depend on file or sequence size: pictures are streamed in 256 KiB chunks.
//! - The token travels only in `Authorization` headers; it is never logged or shown.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod eligibility;
pub mod multipart;
pub mod pipeline;
pub mod refusal;
pub mod resend;
pub mod retrying;
pub mod set_options;
pub mod state;
pub mod upload;
pub mod upload_set;

use plugin_api::prelude::*;

use crate::api::Api;
use crate::config::Config;

/// The integration.
#[derive(Debug, Default)]
pub struct Panoramax;

#[plugin_api::async_trait]
impl Integration for Panoramax {
    fn manifest(&self) -> Manifest {
        config::settings().declare(Manifest {
            id: "panoramax".into(),
            name: "Panoramax".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Uploads sequences to a Panoramax instance as upload sets".into(),
            api_version: String::new(),
            ..Manifest::default()
        })
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        answer(eligibility::refusal(sequence))
    }

    fn eligibility_paged(
        &self,
        _sequence: &SequenceDescriptor,
        images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(answer(eligibility::refusal_paged(images)?))
    }

    async fn authorize(
        &self,
        ctx: &Context,
        request: AuthRequest,
    ) -> Result<AuthOutcome, PluginError> {
        let api = Api::new(Config::from_context(ctx)?)?;
        auth::authorize(&api, ctx, request).await
    }

    async fn auth_status(&self, ctx: &Context) -> Result<AuthStatus, PluginError> {
        auth::status(ctx)
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        pipeline::run(ctx, request, RunImages::carried()).await
    }

    async fn run_paged(
        &self,
        ctx: &Context,
        request: RunRequest,
        images: RunImages,
    ) -> Result<RunOutcome, PluginError> {
        pipeline::run(ctx, request, images).await
    }
}

plugin_api::export_plugin!(Panoramax);

/// The eligibility answer for `refusal`.
fn answer(refusal: Option<String>) -> Eligibility {
    match refusal {
        Some(reason) => Eligibility::not_eligible(reason),
        None => Eligibility::eligible().with_note(
            "one collection, every picture kept: mtp asks the instance not to split or \
                 deduplicate (--option panoramax.split=instance and panoramax.dedup=instance apply \
                 its defaults; `mtp upload --dry-run` shows them)",
        ),
    }
}
