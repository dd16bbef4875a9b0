//! Authorisation: OAuth 2.0 authorisation code through the host's prompt (developers.strava.com/docs/
//! authentication, and stravalib `protocol.py` `authorization_url` / `exchange_code_for_token`).
//!
//! `GET {oauth}/authorize?client_id&redirect_uri&response_type=code&approval_prompt=auto&
//! scope=activity:write&state`; Strava sends the browser back with `code`, `state` and `scope` (the
//! scopes the athlete left ticked) or `error=access_denied`; `POST {oauth}/token` with `client_id,
//! client_secret, code, grant_type=authorization_code` answers the tokens and the athlete.
//!
//! Why not the `oauth2` crate: the flow is one URL (the SDK's `with_query`), one `state` comparison and
//! one form POST, which go through this plugin's HTTP loop (rate-limit headers, cancellation); `oauth2`
//! would bring its own HTTP client interface and types for these, and still not know Strava's extra
//! answer fields (`expires_at`, `athlete`) or its `scope` in the redirect without extension types.

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, random_state, redirect_params, with_query};
use plugin_api::serde_json::Value;

use crate::api::Api;
use crate::config::Config;
use crate::state::{self, Account};
use crate::tokens;

/// The scope uploading needs (swagger `createUpload`: "Requires activity:write scope").
pub const SCOPE: &str = "activity:write";

/// The consent page URL.
pub fn consent_url(config: &Config, state: &str) -> String {
    with_query(
        &format!("{}/authorize", config.oauth_url),
        &[
            ("client_id", config.client_id.as_str()),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("response_type", "code"),
            ("approval_prompt", "auto"),
            ("scope", SCOPE),
            ("state", state),
        ],
    )
}

/// The authorisation code the redirect carries, after checking `state` and the scopes granted.
pub fn code_from_redirect(redirect: &str, expected_state: &str) -> Result<String, PluginError> {
    let params = redirect_params(redirect);
    let get = |name: &str| param(&params, name);
    if let Some(error) = get("error") {
        return Err(PluginError::auth(format!(
            "Strava did not authorise mtp ({error}); run `mtp auth strava` again and press Authorize"
        )));
    }
    if get("state") != Some(expected_state) {
        return Err(PluginError::auth(
            "the redirect's state does not match this authorisation request (a stale or forged \
             redirect); run `mtp auth strava` again",
        ));
    }
    // The athlete can untick scopes on the consent page; the redirect lists what was granted.
    if let Some(scope) = get("scope") {
        if !scope.split(',').any(|s| s.trim() == SCOPE) {
            return Err(PluginError::auth(format!(
                "Strava granted only {scope:?}; uploading needs {SCOPE}: run `mtp auth strava` \
                 again and leave \"Upload your activities\" ticked"
            )));
        }
    }
    get("code")
        .map(str::to_string)
        .ok_or_else(|| PluginError::auth("the redirect URL carries no authorisation code"))
}

fn account_of(athlete: Option<&Value>) -> Option<Account> {
    let athlete = athlete?;
    let id = athlete.get("id").and_then(Value::as_u64)?;
    let text = |k: &str| athlete.get(k).and_then(Value::as_str).unwrap_or("").trim();
    let full = format!("{} {}", text("firstname"), text("lastname"))
        .trim()
        .to_string();
    let name = match (full.is_empty(), text("username")) {
        (false, "") => full,
        (false, user) => format!("{full} ({user})"),
        (true, "") => format!("athlete {id}"),
        (true, user) => user.to_string(),
    };
    Some(Account {
        id,
        name,
        authorised_at_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// `mtp auth strava`.
pub async fn authorize(
    api: &Api,
    ctx: &Context,
    request: AuthRequest,
) -> Result<AuthOutcome, PluginError> {
    if request
        .token
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
    {
        return Err(PluginError::invalid_input(
            "Strava's access tokens last six hours and need the refresh token that only the login \
             gives: run `mtp auth strava` without --token",
        ));
    }
    let secret = Config::client_secret(ctx)?;
    let state = random_state();
    ctx.progress(ProgressEvent::Step {
        step: "authorise".into(),
        message: Some("waiting for Strava's consent page".into()),
    });
    let redirect = ctx
        .authorize(&AuthorizePrompt {
            url: consent_url(&api.config, &state),
            redirect_uri: api.config.redirect_uri.clone(),
            provider: "Strava".into(),
        })
        .await?;
    let code = code_from_redirect(&redirect, &state)?;
    let what = "exchanging the authorisation code";
    let reply = api
        .token(
            ctx,
            what,
            &[
                ("client_id", api.config.client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("code", code.as_str()),
                ("grant_type", "authorization_code"),
            ],
        )
        .await?;
    if !reply.is_success() {
        return Err(PluginError::auth(format!(
            "{what}: Strava refused it ({}); check {} and {} in .env, then run `mtp auth strava` again",
            reply.fault(),
            crate::config::ENV_CLIENT_ID,
            crate::config::ENV_CLIENT_SECRET
        )));
    }
    let grant = tokens::grant(&reply, what)?;
    let previous = tokens::load(ctx)
        .ok()
        .flatten()
        .map(|t| t.refresh_tokens)
        .unwrap_or_default();
    tokens::store(ctx, &grant, &previous)?;
    let account = match account_of(grant.athlete.as_ref()) {
        Some(account) => account,
        // The athlete in the token answer is undocumented (stravalib: "could change at any time").
        None => account_of(Some(&api.athlete(ctx, &grant.access_token).await?.json()))
            .ok_or_else(|| PluginError::other("Strava did not say who is logged in"))?,
    };
    state::put_account(ctx, &account)?;
    ctx.info(format!("authorised with Strava as {}", account.name));
    Ok(AuthOutcome {
        account: account.name,
    })
}

/// `mtp auth status`, from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus, PluginError> {
    let tokens = tokens::load(ctx)?;
    match (state::account(ctx)?, tokens) {
        (Some(account), Some(tokens)) => Ok(AuthStatus {
            authorised: true,
            account: Some(account.name),
            detail: Some(format!(
                "athlete {}, authorised {}; {}",
                account.id,
                plugin_api::time::format_utc(account.authorised_at_ms),
                tokens::describe(&tokens)
            )),
        }),
        _ => Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: Some("not authorised: run `mtp auth strava`".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> Config {
        Config {
            client_id: "42".into(),
            api_url: "https://www.strava.com/api/v3".into(),
            oauth_url: "https://www.strava.com/oauth".into(),
            redirect_uri: "http://127.0.0.1:8766/strava/callback".into(),
            retry_base: Duration::from_millis(1),
            poll: Duration::from_millis(1),
            poll_timeout: Duration::from_secs(1),
            rate_window: Duration::from_secs(900),
        }
    }

    #[test]
    fn the_consent_url_asks_for_activity_write() {
        assert_eq!(
            consent_url(&config(), "s1"),
            "https://www.strava.com/oauth/authorize?client_id=42&redirect_uri=http%3A%2F%2F127.0.0.1%3A8766%2Fstrava%2Fcallback&response_type=code&approval_prompt=auto&scope=activity%3Awrite&state=s1"
        );
        assert_eq!(
            config().activity_link(7),
            "https://www.strava.com/activities/7"
        );
    }

    #[test]
    fn redirects_are_checked() {
        let ok =
            "http://127.0.0.1:8766/strava/callback?state=s1&code=c0de&scope=read,activity:write";
        assert_eq!(code_from_redirect(ok, "s1").unwrap(), "c0de");
        let denied =
            code_from_redirect("http://x/cb?state=s1&error=access_denied", "s1").unwrap_err();
        assert!(denied.message.contains("access_denied"), "{denied}");
        assert!(code_from_redirect("http://x/cb?state=s2&code=c", "s1").is_err());
        let narrow =
            code_from_redirect("http://x/cb?state=s1&code=c&scope=read", "s1").unwrap_err();
        assert!(narrow.message.contains("activity:write"), "{narrow}");
    }
}
