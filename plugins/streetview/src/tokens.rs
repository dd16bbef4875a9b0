//! The user's tokens, and keeping them alive.
//!
//! Google's installed-app flow (developers.google.com/identity/protocols/oauth2/native-app): the code
//! exchange answers `access_token`, `expires_in` (seconds, an hour), `refresh_token` (with
//! `access_type=offline`), `scope`, `token_type`; a refresh (`grant_type=refresh_token`) answers a new
//! access token and usually no refresh token: the one held stays valid until revoked, so a new one is
//! kept only when sent. A refused refresh (`invalid_grant`: revoked, or a testing-mode consent screen's
//! seven-day expiry) asks for a new login.

use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::serde_json::Value;
use serde::{Deserialize, Serialize};

use crate::api::{Api, Reply};
use crate::config::Config;

/// The secret holding [`Tokens`].
pub const TOKENS_SECRET: &str = "tokens";
/// A run refreshes first when the access token expires within this (uploads of big panoramas take
/// minutes each).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(10 * 60);

/// What is stored, as one secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The current access token.
    pub access_token: String,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
    /// The refresh token.
    pub refresh_token: String,
}

/// Reads a token answer; `previous_refresh` is kept when the answer carries none (a refresh).
pub fn grant(
    reply: &Reply,
    what: &str,
    previous_refresh: Option<&str>,
) -> Result<Tokens, PluginError> {
    let json = reply.json();
    let text = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let expires_in = json.get("expires_in").and_then(Value::as_i64);
    let refresh = text("refresh_token").or_else(|| previous_refresh.map(str::to_string));
    match (text("access_token"), refresh, expires_in) {
        (Some(access_token), Some(refresh_token), Some(expires_in)) => Ok(Tokens {
            access_token,
            expires_at: chrono::Utc::now().timestamp() + expires_in,
            refresh_token,
        }),
        (Some(_), None, _) => Err(PluginError::auth(format!(
            "{what}: Google sent no refresh token; remove mtp's access at \
             myaccount.google.com/permissions, then run `mtp auth streetview` again"
        ))),
        _ => Err(PluginError::other(format!(
            "{what}: Google's answer lacks access_token or expires_in"
        ))),
    }
}

/// The stored tokens.
pub fn load(ctx: &Context) -> Result<Option<Tokens>, PluginError> {
    match ctx.secret(TOKENS_SECRET)? {
        None => Ok(None),
        Some(text) => plugin_api::serde_json::from_str(&text)
            .map(Some)
            .map_err(|_| {
                PluginError::auth(
                    "the stored Google tokens are unreadable: run `mtp auth streetview` again",
                )
            }),
    }
}

/// Stores the tokens, in one write.
pub fn store(ctx: &Context, tokens: &Tokens) -> Result<(), PluginError> {
    let text = plugin_api::serde_json::to_string(tokens)
        .map_err(|err| PluginError::other(format!("cannot encode the tokens: {err}")))?;
    ctx.set_secret(TOKENS_SECRET, &text)
}

fn not_authorised() -> PluginError {
    PluginError::auth("not authorised with Google Street View: run `mtp auth streetview`")
}

/// Refreshes the access token and returns the new one.
pub async fn refresh(api: &Api, ctx: &Context) -> Result<String, PluginError> {
    let secret = Config::client_secret(ctx)?;
    let held = load(ctx)?.ok_or_else(not_authorised)?;
    let what = "refreshing the Google access token";
    let reply = api
        .token(
            ctx,
            what,
            &[
                ("client_id", api.config.client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("grant_type", "refresh_token"),
                ("refresh_token", held.refresh_token.as_str()),
            ],
        )
        .await?;
    if reply.is_success() {
        let tokens = grant(&reply, what, Some(&held.refresh_token))?;
        store(ctx, &tokens)?;
        ctx.debug(format!(
            "refreshed the Google access token (valid until {})",
            plugin_api::time::format_utc(tokens.expires_at.saturating_mul(1000))
        ));
        return Ok(tokens.access_token);
    }
    let error = reply
        .json()
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if reply.status == 400 || reply.status == 401 {
        return Err(PluginError::auth(format!(
            "Google refused the stored refresh token (HTTP {}{}): run `mtp auth streetview` again",
            reply.status,
            if error.is_empty() {
                String::new()
            } else {
                format!(", {error}")
            }
        )));
    }
    Err(PluginError::transient(format!(
        "{what}: HTTP {}",
        reply.status
    )))
}

/// The access token to use now, refreshed first when it expires within [`REFRESH_MARGIN`].
pub async fn usable(api: &Api, ctx: &Context) -> Result<String, PluginError> {
    let tokens = load(ctx)?.ok_or_else(not_authorised)?;
    if tokens.expires_at - chrono::Utc::now().timestamp() > REFRESH_MARGIN.as_secs() as i64 {
        return Ok(tokens.access_token);
    }
    refresh(api, ctx).await
}

/// What `mtp auth status` says about the access token.
pub fn describe(tokens: &Tokens) -> String {
    let at = plugin_api::time::format_utc(tokens.expires_at.saturating_mul(1000));
    if tokens.expires_at > chrono::Utc::now().timestamp() {
        format!("access token valid until {at}, refreshed automatically")
    } else {
        format!("access token expired {at}; the next run refreshes it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_answer_keeps_the_refresh_token() {
        let reply = Reply {
            status: 200,
            body: r#"{"access_token":"a2","expires_in":3599,"scope":"s","token_type":"Bearer"}"#
                .into(),
        };
        let t = grant(&reply, "x", Some("r1")).unwrap();
        assert_eq!(
            (t.access_token.as_str(), t.refresh_token.as_str()),
            ("a2", "r1")
        );
        let err = grant(&reply, "x", None).unwrap_err();
        assert!(err.message.contains("no refresh token"), "{err}");
    }
}
