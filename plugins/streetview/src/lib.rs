//! The Google Street View integration: publishes a sequence's 360° photos through the Street View
//! Publish API, one photo at a time, and connects them into a walkable sequence, as MTP Desktop
//! Uploader's third integration did.
//!
//! Modules, one job each:
//! - [`config`]: `.env` keys (the OAuth client's two gate the integration);
//! - [`auth`] + [`pkce`] + [`tokens`]: the installed-app login with PKCE and a loopback redirect, and
//!   access tokens kept alive with the refresh token;
//! - [`eligibility`]: 360° equirectangular photos within Google's limits only;
//! - [`publish`]: one photo, exactly once (upload URL, bytes, create, lookup after a lost answer);
//! - [`publication`]: connections and `mapsPublishStatus`; [`outcome`]: what `mtp status` shows;
//! - [`pipeline`]: the run; [`quota`]: the daily request quota and the clean stop;
//! - [`api`] + [`session`] + [`rpc_error`]: the HTTP calls, the refresh after a 401, Google's error
//!   envelope; [`state`]: what is persisted.
//!
//! # Guarantees
//! - A photo is created at most once: its create is recorded before it leaves, and a create whose
//!   answer was lost is looked up in the user's photos (capture time and position) before anything is
//!   created again.
//! - A run never exceeds the daily quota it is told: it stops before, records progress, says when it
//!   can go on, and the next day's run sends only what Google does not hold.
//! - Tokens travel only in `Authorization` headers and the token form; they are never logged or shown.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod eligibility;
pub mod outcome;
pub mod pipeline;
pub mod pkce;
pub mod publication;
pub mod publish;
pub mod quota;
pub mod rpc_error;
pub mod session;
pub mod state;
pub mod tokens;

use plugin_api::prelude::*;

use crate::api::Api;
use crate::config::Config;

/// The integration.
#[derive(Debug, Default)]
pub struct StreetView;

#[plugin_api::async_trait]
impl Integration for StreetView {
    fn manifest(&self) -> Manifest {
        config::settings().declare(Manifest {
            id: "streetview".into(),
            name: "Google Street View".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Publishes 360° photos to Google Street View, connected as a sequence"
                .into(),
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
        eligibility::eligibility_paged(images)
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

plugin_api::export_plugin!(StreetView);
