//! The one place this crate touches the SDK's retry API (`plugin_api::sdk::retry`, `plugin_api::http`), so
//! adapting to a change there is a change here only.
//!
//! Policy: connection failures, timeouts, cut answers ("Server disconnected", a reset kept-alive
//! connection), 5xx and 429 are retried with bounded exponential backoff. Every Panoramax call we make may
//! be repeated safely: reads are reads, `complete` is idempotent, and a picture sent twice to the same
//! upload set is answered 409 with the existing item (geovisio `geovisio/web/upload_set.py`
//! `addFilesToUploadSet`), which the uploader counts as accepted. The only create, `POST /api/upload_sets`,
//! is guarded by a marker in our state and a lookup by nonce (see [`crate::upload_set`]), so a repeat after
//! an unknown outcome is found again rather than duplicated.

use std::future::Future;

use plugin_api::http::reqwest::RequestBuilder;
use plugin_api::http::{self, Answer, Repeat};
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
    let mut backoff = backoff(config);
    http::send(ctx, &mut backoff, what, Repeat::Safe, build).await
}
