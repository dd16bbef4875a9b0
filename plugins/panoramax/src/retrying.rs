//! The one place this crate touches the SDK's retry API (`plugin_api::sdk::retry`, `plugin_api::http`), so
//! adapting to a change there is a change here only.
//!
//! Policy: connection failures, timeouts, cut answers ("Server disconnected", a reset kept-alive
//! connection), 5xx and 429 are retried with bounded exponential backoff. Almost every Panoramax call we
//! make may be repeated safely ([`send`]): reads are reads, `complete` is idempotent, and a picture sent
//! twice to the same upload set is answered 409 with the existing item (geovisio
//! `geovisio/web/upload_set.py` `addFilesToUploadSet`), which the uploader counts as accepted. The one
//! create, `POST /api/upload_sets`, goes through [`send_once`]: it is repeated only when it surely did not
//! take effect, and an unknown outcome is resolved by looking the set up by its nonce
//! ([`crate::upload_set`]).

use std::future::Future;

use plugin_api::http::reqwest::RequestBuilder;
use plugin_api::http::{self, Answer, Repeat, SendError};
use plugin_api::prelude::*;
use plugin_api::sdk::retry::Backoff;

use crate::config::{Config, RETRY_CAP_FACTOR, RETRY_MAX_ATTEMPTS};

/// The backoff of one request.
pub fn backoff(config: &Config) -> Backoff {
    Backoff::new(
        config.retry_base,
        config.retry_base.saturating_mul(RETRY_CAP_FACTOR),
        RETRY_MAX_ATTEMPTS,
    )
}

/// Sends the request `build` makes (afresh per attempt) until an answer that retrying cannot change;
/// that answer (2xx or 4xx) is returned for the caller to read.
pub async fn send<F, Fut>(
    ctx: &Context,
    config: &Config,
    what: &str,
    build: F,
) -> Result<Answer, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RequestBuilder, PluginError>>,
{
    send_with(ctx, config, what, Repeat::Safe, build).await
}

/// Like [`send`] for a request that must not take effect twice: after a timeout or a lost answer it
/// returns a [`ErrorKind::Transient`] error instead of sending again.
pub async fn send_once<F, Fut>(
    ctx: &Context,
    config: &Config,
    what: &str,
    build: F,
) -> Result<Answer, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RequestBuilder, PluginError>>,
{
    send_with(ctx, config, what, Repeat::OnlyIfNotApplied, build).await
}

/// The SDK loop with the generic classifier (5xx, 429 and 408 retried, after `Retry-After` when given):
/// Panoramax has no error grammar of its own that changes what is worth retrying, so every other answer
/// is the caller's to read.
async fn send_with<F, Fut>(
    ctx: &Context,
    config: &Config,
    what: &str,
    repeat: Repeat,
    build: F,
) -> Result<Answer, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RequestBuilder, PluginError>>,
{
    let mut backoff = backoff(config);
    match http::send(
        ctx,
        &mut backoff,
        what,
        repeat,
        http::retry_server_errors,
        build,
    )
    .await
    {
        Ok(answer) | Err(SendError::Refused { answer, .. }) => Ok(answer),
        Err(SendError::Failed(err)) => Err(err),
    }
}
