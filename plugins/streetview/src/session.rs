//! Authorised calls of one run: the access token is refreshed before it expires, and once more when
//! Google answers 401 `UNAUTHENTICATED`; a second 401 asks the user to log in again.

use plugin_api::prelude::*;
use plugin_api::serde_json::Value;

use crate::api::{Api, Reply};
use crate::quota::Halt;
use crate::tokens;

/// One authorised API call.
pub enum Call<'a> {
    /// `POST /v1/photo:startUpload`.
    StartUpload,
    /// `POST {uploadUrl}` with the bytes.
    UploadBytes(&'a str, &'a [u8]),
    /// `POST /v1/photo`.
    Create(&'a Value),
    /// `GET /v1/photos` with a filter and a page token.
    List(&'a str, Option<&'a str>),
    /// `GET /v1/photos:batchGet`.
    BatchGet(&'a [String]),
    /// `POST /v1/photos:batchUpdate`.
    BatchUpdate(&'a Value),
}

/// The calls of one run, with its access token.
pub struct Session<'a> {
    /// The client.
    pub api: &'a Api,
    ctx: &'a Context,
    token: String,
    refreshed: bool,
}

impl<'a> Session<'a> {
    /// Starts with a usable access token.
    pub async fn start(api: &'a Api, ctx: &'a Context) -> Result<Session<'a>, PluginError> {
        let token = tokens::usable(api, ctx).await?;
        Ok(Session {
            api,
            ctx,
            token,
            refreshed: false,
        })
    }

    async fn once(&self, call: &Call<'_>) -> Result<Reply, Halt> {
        let (api, ctx, token) = (self.api, self.ctx, self.token.as_str());
        match call {
            Call::StartUpload => api.start_upload(ctx, token).await,
            Call::UploadBytes(url, bytes) => api.upload_bytes(ctx, token, url, bytes).await,
            Call::Create(photo) => api.create_photo(ctx, token, photo).await,
            Call::List(filter, page) => api.list_photos(ctx, token, filter, *page).await,
            Call::BatchGet(ids) => api.batch_get(ctx, token, ids).await,
            Call::BatchUpdate(body) => api.batch_update(ctx, token, body).await,
        }
    }

    /// Makes `call`; a 401 refreshes the token once per run and makes it again; a 429
    /// (`RESOURCE_EXHAUSTED`) stops the run for the day.
    pub async fn call(&mut self, call: Call<'_>) -> Result<Reply, Halt> {
        let mut reply = self.once(&call).await?;
        if reply.status == 401 && !self.refreshed {
            self.refreshed = true;
            self.ctx
                .debug("Google refused the access token (UNAUTHENTICATED); refreshing it once");
            self.token = tokens::refresh(self.api, self.ctx).await?;
            reply = self.once(&call).await?;
        }
        if let Some(error) = reply.error() {
            match error.status.as_str() {
                "UNAUTHENTICATED" => {
                    return Err(Halt::Error(error.to_plugin_error("calling Google")))
                }
                "RESOURCE_EXHAUSTED" => {
                    return Err(self.api.quota.exhausted(self.ctx, &error.short()))
                }
                _ => {}
            }
        }
        Ok(reply)
    }
}
