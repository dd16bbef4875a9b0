//! The Strava integration: uploads a sequence's GPS track as the user's own Strava activity, and sets its
//! sport type from the sequence's transport, as MTP Desktop Uploader's fourth integration did.
//!
//! Modules, one job each:
//! - [`config`]: `.env` keys (the API application's three gate the integration);
//! - [`auth`] + [`tokens`]: the OAuth login, and access tokens kept alive with rotating refresh tokens;
//! - [`track`] + [`eligibility`]: the track checked, identified (`external_id`) and written as GPX 1.1;
//! - [`pipeline`]: the run (upload, polling, sport type) and re-checks; [`outcome`]: what `mtp status`
//!   shows; [`upload_status`]: reading Strava's upload answers; [`sport`]: transport → `sport_type`;
//! - [`api`] + [`session`]: the HTTP calls, rate limits ([`rate_limit`]) and the refresh after a 401;
//!   [`state`]: what is persisted.
//!
//! # Guarantees
//! - A sequence makes at most one activity: the upload id is recorded before polling, and a track sent
//!   again after a lost answer carries the same `external_id` and is answered as a duplicate, whose
//!   activity is adopted.
//! - A used-up rate-limit window is waited out (saying how long), not failed.
//! - Tokens travel only in `Authorization` headers and the token form; they are never logged or shown.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod eligibility;
pub mod outcome;
pub mod pipeline;
pub mod rate_limit;
pub mod session;
pub mod sport;
pub mod state;
pub mod tokens;
pub mod track;
pub mod upload_status;

use plugin_api::prelude::*;

use crate::api::Api;
use crate::config::Config;

/// The integration.
#[derive(Debug, Default)]
pub struct Strava;

#[plugin_api::async_trait]
impl Integration for Strava {
    fn manifest(&self) -> Manifest {
        config::settings().declare(Manifest {
            id: "strava".into(),
            name: "Strava".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Uploads the sequence's GPS track as your Strava activity".into(),
            api_version: String::new(),
            ..Manifest::default()
        })
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        eligibility::eligibility(sequence)
    }

    fn eligibility_paged(
        &self,
        _sequence: &SequenceDescriptor,
        images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(eligibility::answer(crate::track::refusal_paged(images)?))
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
        pipeline::run(ctx, request).await
    }
}

plugin_api::export_plugin!(Strava);
