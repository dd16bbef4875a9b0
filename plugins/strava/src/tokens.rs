//! The user's tokens, and keeping them alive.
//!
//! developers.strava.com/docs/authentication: an access token lives about six hours (`expires_at`, Unix
//! seconds); `POST /oauth/token` with `grant_type=refresh_token` gives a new one and a refresh token that
//! may differ from the one sent, and once a new refresh token is returned the old one stops working
//! (stravalib `protocol.py` `AccessInfo.refresh_token`). So:
//! - the access token, its expiry and the refresh tokens are one secret, written in one atomic write as
//!   soon as Strava answers, before anything else happens: no crash leaves a new refresh token unstored
//!   once the answer has arrived;
//! - refresh tokens are kept newest first (a few of them): when the newest is refused, the store is read
//!   again (another mtp may have just rotated it) and older ones are tried before giving up;
//! - a run refreshes first when the access token expires within [`REFRESH_MARGIN`], and once more after
//!   a 401.

use std::time::Duration;

use plugin_api::prelude::*;
use plugin_api::serde_json::Value;
use serde::{Deserialize, Serialize};

use crate::api::{Api, Reply};
use crate::config::Config;

/// The secret holding [`Tokens`].
pub const TOKENS_SECRET: &str = "tokens";
/// Refresh tokens kept.
const KEPT_REFRESH_TOKENS: usize = 3;
/// A run refreshes first when the access token has less than this left (a run takes minutes; an upload
/// of a track is never long).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30 * 60);

/// What is stored, as one secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The current access token.
    pub access_token: String,
    /// When it expires (Unix seconds, as Strava says).
    pub expires_at: i64,
    /// Refresh tokens, newest first.
    pub refresh_tokens: Vec<String>,
}

/// A token answer (`{access_token, refresh_token, expires_at, expires_in, athlete?}`).
#[derive(Debug, Clone)]
pub struct Grant {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// The athlete, on the code exchange.
    pub athlete: Option<Value>,
}

/// Reads a token answer.
pub fn grant(reply: &Reply, what: &str) -> Result<Grant, PluginError> {
    let json = reply.json();
    let text = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let expires_at = json.get("expires_at").and_then(Value::as_i64).or_else(|| {
        json.get("expires_in")
            .and_then(Value::as_i64)
            .map(|s| chrono::Utc::now().timestamp() + s)
    });
    match (text("access_token"), text("refresh_token"), expires_at) {
        (Some(access_token), Some(refresh_token), Some(expires_at)) => Ok(Grant {
            access_token,
            refresh_token,
            expires_at,
            athlete: json.get("athlete").cloned(),
        }),
        _ => Err(PluginError::other(format!(
            "{what}: Strava's answer lacks access_token, refresh_token or expires_at"
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
                    "the stored Strava tokens are unreadable: run `mtp auth strava` again",
                )
            }),
    }
}

/// Stores `grant` as the newest tokens, keeping the previous refresh tokens behind it.
pub fn store(ctx: &Context, grant: &Grant, previous: &[String]) -> Result<Tokens, PluginError> {
    let mut refresh_tokens = vec![grant.refresh_token.clone()];
    refresh_tokens.extend(
        previous
            .iter()
            .filter(|t| **t != grant.refresh_token)
            .cloned(),
    );
    refresh_tokens.truncate(KEPT_REFRESH_TOKENS);
    let tokens = Tokens {
        access_token: grant.access_token.clone(),
        expires_at: grant.expires_at,
        refresh_tokens,
    };
    let text = plugin_api::serde_json::to_string(&tokens)
        .map_err(|err| PluginError::other(format!("cannot encode the tokens: {err}")))?;
    ctx.set_secret(TOKENS_SECRET, &text)?;
    Ok(tokens)
}

fn not_authorised() -> PluginError {
    PluginError::auth("not authorised with Strava: run `mtp auth strava`")
}

/// Refreshes the access token (after a refusal, or before expiry) and returns the new one.
pub async fn refresh(api: &Api, ctx: &Context) -> Result<String, PluginError> {
    let secret = Config::client_secret(ctx)?;
    let mut tried: Vec<String> = Vec::new();
    let mut last_refusal = String::new();
    loop {
        let tokens = load(ctx)?.ok_or_else(not_authorised)?;
        let Some(candidate) = tokens
            .refresh_tokens
            .iter()
            .find(|t| !tried.contains(t))
            .cloned()
        else {
            return Err(PluginError::auth(format!(
                "Strava refused the stored refresh token{} ({last_refusal}): run `mtp auth strava` again",
                if tried.len() > 1 { "s" } else { "" }
            )));
        };
        tried.push(candidate.clone());
        let reply = api
            .token(
                ctx,
                "refreshing the Strava access token",
                &[
                    ("client_id", api.config.client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("grant_type", "refresh_token"),
                    ("refresh_token", candidate.as_str()),
                ],
            )
            .await?;
        if reply.is_success() {
            let grant = grant(&reply, "refreshing the Strava access token")?;
            // Re-read: keep whatever another process stored meanwhile behind the new token.
            let now = load(ctx)?.map(|t| t.refresh_tokens).unwrap_or_default();
            let stored = store(ctx, &grant, &now)?;
            ctx.info(format!(
                "refreshed the Strava access token (valid until {})",
                plugin_api::time::format_utc(stored.expires_at.saturating_mul(1000))
            ));
            return Ok(stored.access_token);
        }
        if reply.status == 400 || reply.status == 401 {
            last_refusal = reply.fault();
            continue;
        }
        return Err(PluginError::transient(format!(
            "refreshing the Strava access token: {}",
            reply.fault()
        )));
    }
}

/// The access token to use now: the stored one, refreshed first when it expires within
/// [`REFRESH_MARGIN`].
pub async fn usable(api: &Api, ctx: &Context) -> Result<String, PluginError> {
    let tokens = load(ctx)?.ok_or_else(not_authorised)?;
    let now = chrono::Utc::now().timestamp();
    if tokens.expires_at - now > REFRESH_MARGIN.as_secs() as i64 {
        return Ok(tokens.access_token);
    }
    refresh(api, ctx).await
}

/// What `mtp auth status` says about the access token.
pub fn describe(tokens: &Tokens) -> String {
    let now = chrono::Utc::now().timestamp();
    let at = plugin_api::time::format_utc(tokens.expires_at.saturating_mul(1000));
    if tokens.expires_at > now {
        format!("access token valid until {at}, refreshed automatically")
    } else {
        format!("access token expired {at}; the next run refreshes it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    #[test]
    fn the_newest_refresh_token_comes_first_and_a_few_are_kept() {
        let host = TestHost::new();
        let ctx = host.context();
        let grant = |r: &str| Grant {
            access_token: format!("a-{r}"),
            refresh_token: r.into(),
            expires_at: 10,
            athlete: None,
        };
        let t = store(&ctx, &grant("r1"), &[]).unwrap();
        let t = store(&ctx, &grant("r2"), &t.refresh_tokens).unwrap();
        let t = store(&ctx, &grant("r3"), &t.refresh_tokens).unwrap();
        let t = store(&ctx, &grant("r4"), &t.refresh_tokens).unwrap();
        assert_eq!(t.refresh_tokens, ["r4", "r3", "r2"]);
        assert_eq!(load(&ctx).unwrap(), Some(t));
        // The same token answered again is not kept twice.
        let t = store(&ctx, &grant("r4"), &["r4".into(), "r3".into()]).unwrap();
        assert_eq!(t.refresh_tokens, ["r4", "r3"]);
    }
}
