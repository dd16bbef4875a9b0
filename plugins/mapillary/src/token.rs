//! The token's lifetime (`docs/providers/mapillary.md`, "Authorisation"): when the stored token expires,
//! refreshing it with the refresh grant before it does, and the one refresh after a refusal mid-run.
//!
//! Mapillary's token answer carries `expires_in` (seconds; about two months for a production app). The
//! refresh grant is the token call again with `{"grant_type": "refresh_token", "refresh_token": <current
//! token>, "client_id": <app id>}`, authenticated by the app's secret (`Authorization: OAuth <secret>`).

use std::time::Duration;

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::Api;
use crate::error::{MlyError, Result};
use crate::state::{self, TOKEN_SECRET};
use plugin_api::time::format_utc as format_ms;

/// The state key of [`TokenInfo`].
pub const TOKEN_INFO_KEY: &str = "token";

/// A run that starts this close to the expiry refreshes first: an upload may take days, and a token that
/// runs out half-way costs a refusal and a retry (our decision: one week of a two-month lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// When the stored token was obtained and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// When it was stored (Unix ms).
    pub obtained_at_ms: i64,
    /// When it expires (Unix ms); `None` when Mapillary did not say (a token given with `--token`).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

/// `expires_in` of a token answer: a number of seconds, or a string of digits.
pub fn expires_in(answer: &Value) -> Option<u64> {
    match answer.get("expires_in")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The access token of a token answer.
pub fn access_token(answer: &Value, what: &str) -> Result<String> {
    answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| MlyError::Authorisation(format!("{what}: the answer holds no access token")))
}

/// The stored [`TokenInfo`].
pub fn info(ctx: &Context) -> Result<Option<TokenInfo>> {
    Ok(ctx.state().get_json(TOKEN_INFO_KEY)?)
}

/// Stores `token` as the user's token, valid for `expires_in` seconds from `now_ms` (if known).
pub fn store(ctx: &Context, token: &str, expires_in: Option<u64>, now_ms: i64) -> Result<()> {
    ctx.set_secret(TOKEN_SECRET, token)?;
    let expires_at_ms = expires_in
        .map(|s| now_ms.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    ctx.state().put_json(
        TOKEN_INFO_KEY,
        &TokenInfo {
            obtained_at_ms: now_ms,
            expires_at_ms,
        },
    )?;
    Ok(())
}

/// `in 59 days`, `in 3 h`, `2 days ago`.
fn relative(from_ms: i64, to_ms: i64) -> String {
    let d = to_ms.saturating_sub(from_ms);
    let abs = Duration::from_millis(d.unsigned_abs());
    let text = crate::overdue::human_span(abs);
    if d >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// What `mtp auth status` says about the token's lifetime.
pub fn describe(info: Option<&TokenInfo>, now_ms: i64) -> String {
    match info.and_then(|i| i.expires_at_ms) {
        None => "expiry unknown (Mapillary did not say; it is refreshed if refused)".into(),
        Some(at) if at > now_ms => format!(
            "token expires {} ({}; refreshed automatically from {} before)",
            format_ms(at),
            relative(now_ms, at),
            crate::overdue::human_span(REFRESH_MARGIN)
        ),
        Some(at) => format!(
            "token expired {} ({}): the next mtp upload tries to refresh it; if that fails, log in \
             again with `mtp auth mapillary`",
            format_ms(at),
            relative(now_ms, at)
        ),
    }
}

/// Refreshes the stored token with the refresh grant and stores the new one. `what` names the step that
/// needs it, for the error.
pub async fn refresh(api: &Api, ctx: &Context, what: &str) -> Result<String> {
    let failed = |detail: String| MlyError::RefreshFailed {
        what: what.to_string(),
        detail,
    };
    let current = ctx
        .secret(TOKEN_SECRET)?
        .filter(|t| !t.is_empty())
        .ok_or(MlyError::NotAuthorised)?;
    let client_id = crate::settings::settings().required_text(ctx, crate::settings::APP_ID)?;
    let secret = crate::settings::settings().required_text(ctx, crate::settings::SECRET)?;
    let body = json!({
        "grant_type": "refresh_token",
        "refresh_token": current,
        "client_id": client_id,
    });
    // One attempt: a refresh that went through replaced the old token, so a blind retry could only fail.
    let answer = api
        .post_graph("token", &secret, &body)
        .await
        .map_err(|failure| failed(failure.describe()))?;
    let token = access_token(&answer, "refreshing the token").map_err(|e| failed(e.to_string()))?;
    let now = api.config.now_ms();
    store(ctx, &token, expires_in(&answer), now)?;
    if let Some(mut account) = state::account(ctx)? {
        account.refused_at = None;
        account.planned_refresh_failed_at = None;
        state::put_account(ctx, &account)?;
    }
    let until = info(ctx)?
        .and_then(|i| i.expires_at_ms)
        .map(|at| format!(" (valid until {})", format_ms(at)))
        .unwrap_or_default();
    ctx.info(format!("refreshed the Mapillary token{until}"));
    Ok(token)
}

/// The token to use for this run: the stored one, refreshed first when it expires within
/// [`REFRESH_MARGIN`]. A failed refresh of a token that is still valid only warns.
pub async fn usable(api: &Api, ctx: &Context) -> Result<String> {
    let token = ctx
        .secret(TOKEN_SECRET)?
        .filter(|t| !t.is_empty())
        .ok_or(MlyError::NotAuthorised)?;
    let Some(expires_at) = info(ctx)?.and_then(|i| i.expires_at_ms) else {
        return Ok(token);
    };
    let now = api.config.now_ms();
    let margin = i64::try_from(REFRESH_MARGIN.as_millis()).unwrap_or(i64::MAX);
    if now < expires_at.saturating_sub(margin) {
        return Ok(token);
    }
    if now >= expires_at {
        return refresh(api, ctx, &format!("it expired {}", format_ms(expires_at))).await;
    }
    // Planned: the token still works, so a failed refresh is told once and tried again later,
    // not on every call of this run (nor of the next runs within PLANNED_RETRY).
    let account = state::account(ctx)?;
    let retry_ms = i64::try_from(PLANNED_RETRY.as_millis()).unwrap_or(i64::MAX);
    if account
        .as_ref()
        .and_then(|a| a.planned_refresh_failed_at)
        .is_some_and(|failed| now < failed.saturating_add(retry_ms))
    {
        return Ok(token);
    }
    match refresh(api, ctx, &format!("it expires {}", format_ms(expires_at))).await {
        Ok(fresh) => Ok(fresh),
        Err(err) => {
            let detail = match &err {
                MlyError::RefreshFailed { detail, .. } => detail.clone(),
                other => other.to_string(),
            };
            ctx.warn(format!(
                "the planned refresh of the Mapillary token failed ({detail}); the token still works \
                 until {} ({}), and mtp tries the refresh again on a run after {} h",
                format_ms(expires_at),
                relative(now, expires_at),
                PLANNED_RETRY.as_secs() / 3600
            ));
            if let Some(mut account) = account {
                account.planned_refresh_failed_at = Some(now);
                state::put_account(ctx, &account)?;
            }
            Ok(token)
        }
    }
}

/// How long after a failed planned refresh the next one is tried.
pub const PLANNED_RETRY: Duration = Duration::from_secs(12 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_as_number_or_text() {
        assert_eq!(expires_in(&json!({"expires_in": 5184000})), Some(5_184_000));
        assert_eq!(expires_in(&json!({"expires_in": "3600"})), Some(3600));
        assert_eq!(expires_in(&json!({"access_token": "t"})), None);
    }

    #[test]
    fn describes_the_lifetime() {
        let day = 24 * 3600 * 1000;
        let info = TokenInfo {
            obtained_at_ms: 0,
            expires_at_ms: Some(60 * day),
        };
        let alive = describe(Some(&info), day);
        assert!(alive.contains("in 59 days"), "{alive}");
        let dead = describe(Some(&info), 62 * day);
        assert!(
            dead.contains("2 days ago") && dead.contains("log in again with `mtp auth mapillary`"),
            "{dead}"
        );
        assert!(describe(None, 0).contains("expiry unknown"));
    }
}
