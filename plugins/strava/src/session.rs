//! Authorised calls of one run: the access token is refreshed before it expires, and once more when
//! Strava answers 401 (a token revoked or expired early); a second 401 asks the user to log in again.

use plugin_api::prelude::*;

use crate::api::{Api, NewUpload, Reply};
use crate::tokens;

/// One authorised API call.
pub enum Call<'a> {
    /// `POST /uploads`.
    Upload(&'a NewUpload<'a>),
    /// `GET /uploads/{id}`.
    UploadStatus(u64),
    /// `GET /activities/{id}`.
    Activity(u64),
    /// `PUT /activities/{id}` setting `sport_type`.
    SetSportType(u64, &'a str),
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
    /// Starts with a usable access token (refreshed first if it is about to expire).
    pub async fn start(api: &'a Api, ctx: &'a Context) -> Result<Session<'a>, PluginError> {
        let token = tokens::usable(api, ctx).await?;
        Ok(Session {
            api,
            ctx,
            token,
            refreshed: false,
        })
    }

    async fn once(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
        let (api, ctx, token) = (self.api, self.ctx, self.token.as_str());
        match call {
            Call::Upload(upload) => api.create_upload(ctx, token, upload).await,
            Call::UploadStatus(id) => api.upload(ctx, token, *id).await,
            Call::Activity(id) => api.activity(ctx, token, *id).await,
            Call::SetSportType(id, sport) => api.update_activity(ctx, token, *id, sport).await,
        }
    }

    /// Makes `call`; a 401 refreshes the token once per run and makes it again.
    pub async fn call(&mut self, call: Call<'_>) -> Result<Reply, PluginError> {
        let reply = self.once(&call).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        if !self.refreshed {
            self.refreshed = true;
            self.ctx
                .debug("Strava refused the access token (HTTP 401); refreshing it once");
            self.token = tokens::refresh(self.api, self.ctx).await?;
            let reply = self.once(&call).await?;
            if reply.status != 401 {
                return Ok(reply);
            }
        }
        Err(PluginError::auth(format!(
            "Strava refused the access token even after refreshing it ({}): run `mtp auth strava` again",
            reply.fault()
        )))
    }
}
