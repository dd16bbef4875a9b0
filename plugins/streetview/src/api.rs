//! The HTTP calls. Each goes through the SDK's retry loop (network failures, 5xx and 408 are retried with
//! backoff; a create is not sent again when its fate is unknown), and each API call is counted against
//! the daily quota ([`crate::quota`]) before it leaves. A 429 is not retried: Google sends it as
//! `RESOURCE_EXHAUSTED`, which the pipeline turns into a clean stop.

use std::time::Duration;

use plugin_api::http::reqwest::{self, RequestBuilder};
use plugin_api::http::{Repeat, SendError};
use plugin_api::prelude::*;
use plugin_api::sdk::retry::{Backoff, Verdict};
use plugin_api::serde_json::{json, Value};

use crate::config::Config;
use crate::quota::{Halt, Quota};
use crate::rpc_error::RpcError;

/// Retries in a row of one request after network failures and 5xx.
const RETRY_MAX_ATTEMPTS: u32 = 8;
/// Photos per `photos:batchUpdate` (reference: "must not exceed 20") and per `photos:batchGet`
/// (assumption: the same bound).
pub const BATCH: usize = 20;

/// An answer Google gave.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        plugin_api::serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `google.rpc` error the answer carries (a non-2xx always has one, made up from the status
    /// when the body is not the envelope).
    pub fn error(&self) -> Option<RpcError> {
        (!self.is_success()).then(|| RpcError::from_answer(self.status, &self.body))
    }
}

/// The client of one call.
pub struct Api {
    /// Endpoints and tuning.
    pub config: Config,
    /// The daily quota.
    pub quota: Quota,
    http: reqwest::Client,
}

fn retry_server_errors(answer: &plugin_api::http::Answer) -> Option<Verdict> {
    (answer.status >= 500 || answer.status == 408).then(|| Verdict::Retry {
        after: answer.retry_after(),
    })
}

impl Api {
    /// A client for `config`.
    pub fn new(config: Config) -> Result<Api, PluginError> {
        Ok(Api {
            quota: Quota::new(&config),
            config,
            http: plugin_api::http::client(concat!("mtp-streetview/", env!("CARGO_PKG_VERSION")))?,
        })
    }

    async fn send<F>(
        &self,
        ctx: &Context,
        what: &str,
        repeat: Repeat,
        counted: bool,
        build: F,
    ) -> Result<Reply, Halt>
    where
        F: Fn() -> Result<RequestBuilder, PluginError>,
    {
        if counted {
            self.quota.take(ctx)?;
        }
        let base = self.config.retry_base;
        let mut backoff = Backoff::new(base, base.saturating_mul(32), RETRY_MAX_ATTEMPTS);
        let build = &build;
        let answer = plugin_api::http::send(
            ctx,
            &mut backoff,
            what,
            repeat,
            retry_server_errors,
            || async move { build() },
        )
        .await;
        match answer {
            Ok(answer) => Ok(Reply {
                status: answer.status,
                body: answer.body,
            }),
            Err(SendError::Refused { answer, .. }) => Ok(Reply {
                status: answer.status,
                body: answer.body,
            }),
            Err(SendError::Failed(err)) => Err(Halt::Error(err)),
        }
    }

    /// `POST {token_url}` with a form (authorisation code or refresh grant). Not counted: the token
    /// endpoint is not the Street View Publish API.
    pub async fn token(
        &self,
        ctx: &Context,
        what: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, PluginError> {
        let url = self.config.token_url.clone();
        // Once: a code is single-use, so a blind retry could only fail.
        match self
            .send(ctx, what, Repeat::OnlyIfNotApplied, false, || {
                Ok(self
                    .http
                    .post(&url)
                    .form(form)
                    .timeout(Duration::from_secs(60)))
            })
            .await
        {
            Ok(reply) => Ok(reply),
            Err(Halt::Error(err)) => Err(err),
            Err(Halt::Quota { why, .. }) => Err(PluginError::other(why)),
        }
    }

    /// `POST /v1/photo:startUpload` with an empty body (reference `photo.startUpload`; MTP Desktop
    /// Uploader `google.ts` sends `Content-Length: 0`). Safe to repeat: an unused upload URL costs
    /// nothing.
    pub async fn start_upload(&self, ctx: &Context, token: &str) -> Result<Reply, Halt> {
        let url = self.config.api("/v1/photo:startUpload");
        self.send(
            ctx,
            "asking Google for an upload URL",
            Repeat::Safe,
            true,
            || {
                Ok(self
                    .http
                    .post(&url)
                    .bearer_auth(token)
                    .json(&json!({}))
                    .timeout(Duration::from_secs(60)))
            },
        )
        .await
    }

    /// `POST {uploadUrl}` with the JPEG's bytes (MTP Desktop Uploader `google.ts`: `Content-Type:
    /// image/jpeg`, the whole file; gopro2gsv `gsv.py` adds `X-Goog-Upload-Protocol: raw`). Safe to
    /// repeat: the bytes at an upload URL are replaced until a photo is created from it (assumption).
    ///
    /// The file is held in memory, as both clients do: Google takes at most 75 MB a photo (checked by
    /// eligibility), and the retry loop needs a body per attempt.
    pub async fn upload_bytes(
        &self,
        ctx: &Context,
        token: &str,
        upload_url: &str,
        bytes: &[u8],
    ) -> Result<Reply, Halt> {
        self.send(
            ctx,
            "uploading the photo's bytes",
            Repeat::Safe,
            true,
            || {
                Ok(self
                    .http
                    .post(upload_url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
                    .header("X-Goog-Upload-Protocol", "raw")
                    .body(bytes.to_vec())
                    .timeout(Duration::from_secs(600)))
            },
        )
        .await
    }

    /// `POST /v1/photo` with a `Photo` (reference `photo.create`). Not repeated when its fate is
    /// unknown: the next run looks for the photo before creating it again.
    pub async fn create_photo(
        &self,
        ctx: &Context,
        token: &str,
        photo: &Value,
    ) -> Result<Reply, Halt> {
        let url = self.config.api("/v1/photo");
        self.send(
            ctx,
            "creating the photo",
            Repeat::OnlyIfNotApplied,
            true,
            || {
                Ok(self
                    .http
                    .post(&url)
                    .bearer_auth(token)
                    .json(photo)
                    .timeout(Duration::from_secs(120)))
            },
        )
        .await
    }

    /// An authorised read of `url` (safe to repeat), saying `what` it was for when it fails.
    async fn get(&self, ctx: &Context, token: &str, url: &str, what: &str) -> Result<Reply, Halt> {
        self.send(ctx, what, Repeat::Safe, true, || {
            Ok(self
                .http
                .get(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(60)))
        })
        .await
    }

    /// `GET /v1/photos?view=BASIC&filter=...&pageToken=...` (reference `photos.list`: filters
    /// `min_latitude`, `max_latitude`, `min_longitude`, `max_longitude`; pages of 100 by default).
    pub async fn list_photos(
        &self,
        ctx: &Context,
        token: &str,
        filter: &str,
        page_token: Option<&str>,
    ) -> Result<Reply, Halt> {
        let mut query = vec![("view", "BASIC"), ("filter", filter), ("pageSize", "100")];
        if let Some(page) = page_token {
            query.push(("pageToken", page));
        }
        let url = plugin_api::sdk::redirect::with_query(&self.config.api("/v1/photos"), &query);
        self.get(ctx, token, &url, "listing your Street View photos")
            .await
    }

    /// `GET /v1/photos:batchGet?photoIds=..&photoIds=..&view=BASIC` (reference `photos.batchGet`).
    pub async fn batch_get(
        &self,
        ctx: &Context,
        token: &str,
        ids: &[String],
    ) -> Result<Reply, Halt> {
        let mut query: Vec<(&str, &str)> = ids.iter().map(|id| ("photoIds", id.as_str())).collect();
        query.push(("view", "BASIC"));
        let url =
            plugin_api::sdk::redirect::with_query(&self.config.api("/v1/photos:batchGet"), &query);
        self.get(ctx, token, &url, "looking at the photos' publication")
            .await
    }

    /// `POST /v1/photos:batchUpdate` (reference `photos.batchUpdate`). Safe to repeat: it sets fields.
    pub async fn batch_update(
        &self,
        ctx: &Context,
        token: &str,
        body: &Value,
    ) -> Result<Reply, Halt> {
        let url = self.config.api("/v1/photos:batchUpdate");
        self.send(ctx, "connecting the photos", Repeat::Safe, true, || {
            Ok(self
                .http
                .post(&url)
                .bearer_auth(token)
                .json(body)
                .timeout(Duration::from_secs(60)))
        })
        .await
    }
}
