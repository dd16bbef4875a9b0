//! Authorisation with Mapillary (`docs/providers/mapillary.md`, "Authorisation"): the OAuth 2.0
//! authorisation-code flow, or a token the user already has; either way the token is verified with `/me`
//! before it is stored.
//!
//! Why not the `oauth2` crate: Mapillary's token endpoint authenticates the app with
//! `Authorization: OAuth <client secret>` and takes a JSON body, while `oauth2`'s code exchange sends a
//! form body authenticated with HTTP Basic (or the secret as a form field). Neither reaches Mapillary's
//! endpoint, so the crate would only contribute the URL building and `state` handling below, at the price
//! of a second HTTP stack. The flow itself is three small, tested functions.

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, redirect_params, with_query};
use rand::RngCore;
use serde_json::{json, Value};

use crate::api::Api;
use crate::config::Config;
use crate::error::{MlyError, Result};
use crate::state::{self, Account, TOKEN_SECRET};
use crate::token;

// No `scope` is sent. `user:email user:read ...` was API v3's vocabulary; Mapillary's v4 documentation
// ("Authentication") lists the scopes `read`, `write` and `upload` and marks the parameter optional, and
// an app's permissions are chosen when it is registered on the developer dashboard. Which scope
// `finish_upload` needs is not documented, so mtp asks for nothing narrower than the app's own.

/// A fresh, unguessable `state` value (128 random bits, hex).
pub fn new_state() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The consent page URL.
pub fn consent_url(
    authorize_url: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    with_query(
        authorize_url,
        &[
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("state", state),
        ],
    )
}

/// Reads the authorisation code out of the URL the provider redirected to, checking `state`.
///
/// Works for any redirect URI, including MTPDU's custom scheme (`app.mtp.desktop//app?code=..`), which is
/// not a URL a parser accepts: the parameters are taken from the query (or the fragment).
pub fn code_from_redirect(redirect: &str, expected_state: &str) -> Result<String> {
    let params = redirect_params(redirect);
    let get = |name: &str| param(&params, name);
    if let Some(error) = get("error") {
        let detail = get("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(MlyError::Authorisation(format!(
            "Mapillary did not authorise the app: {error}{detail}"
        )));
    }
    if get("state") != Some(expected_state) {
        return Err(MlyError::Authorisation(
            "the redirect's state does not match this authorisation request (a stale or forged \
             redirect); run `mtp auth mapillary` again"
                .into(),
        ));
    }
    get("code").map(str::to_string).ok_or_else(|| {
        MlyError::Authorisation("the redirect URL carries no authorisation code".into())
    })
}

/// Exchanges an authorisation code for the user's token and its `expires_in` (`POST {graph}/token`). One
/// attempt: a code is single-use, so a retry after the request left could only fail.
async fn exchange_code(
    api: &Api,
    secret: &str,
    client_id: &str,
    code: &str,
) -> Result<(String, Option<u64>)> {
    let what = "exchanging the authorisation code";
    let body = json!({"grant_type": "authorization_code", "code": code, "client_id": client_id});
    let answer = api
        .post_graph("token", secret, &body)
        .await
        .map_err(|failure| MlyError::Authorisation(format!("{what}: {}", failure.describe())))?;
    Ok((
        token::access_token(&answer, what)?,
        token::expires_in(&answer),
    ))
}

/// Who a token belongs to (`GET {graph}/me?fields=id,username`).
pub async fn whoami(api: &Api, ctx: &Context, token: &str) -> Result<(String, String)> {
    let me = api
        .graph_get(ctx, token, "checking the token", "me?fields=id,username")
        .await?;
    let field = |name: &str| match me.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    match (field("id"), field("username")) {
        (Some(id), Some(username)) => Ok((id, username)),
        _ => Err(MlyError::BadAnswer {
            what: "checking the token".into(),
            why: "/me did not say who the user is".into(),
        }),
    }
}

/// Verifies `token` with `/me` and stores it (valid for `expires_in` seconds, when known) with the
/// account it belongs to.
async fn verify_and_store(
    api: &Api,
    ctx: &Context,
    token: &str,
    expires_in: Option<u64>,
) -> Result<AuthOutcome> {
    let (id, username) = whoami(api, ctx, token).await?;
    let now = api.config.now_ms();
    token::store(ctx, token, expires_in, now)?;
    state::put_account(
        ctx,
        &Account {
            id,
            username: username.clone(),
            authorised_at: now,
            refused_at: None,
            planned_refresh_failed_at: None,
        },
    )?;
    ctx.info(format!("authorised with Mapillary as {username}"));
    Ok(AuthOutcome { account: username })
}

/// `mtp auth mapillary [--token T]`.
pub async fn authorize(api: &Api, ctx: &Context, request: AuthRequest) -> Result<AuthOutcome> {
    if let Some(token) = request
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        // A token the user brings says nothing about its expiry: it is refreshed when refused.
        return verify_and_store(api, ctx, token, None).await;
    }
    let client_id = crate::settings::settings().required_text(ctx, crate::settings::APP_ID)?;
    let secret = crate::settings::settings().required_text(ctx, crate::settings::SECRET)?;
    let redirect_uri =
        crate::settings::settings().required_text(ctx, crate::settings::REDIRECT_URI)?;
    let state = new_state();
    let url = consent_url(&api.config.authorize_url, &client_id, &redirect_uri, &state);
    ctx.progress(ProgressEvent::Step {
        step: "authorise".into(),
        message: Some("waiting for Mapillary's consent page".into()),
    });
    let redirect = ctx
        .authorize(&AuthorizePrompt {
            url,
            redirect_uri: redirect_uri.clone(),
            provider: "Mapillary".into(),
        })
        .await?;
    let code = code_from_redirect(&redirect, &state)?;
    let (token, expires_in) = exchange_code(api, &secret, &client_id, &code).await?;
    verify_and_store(api, ctx, &token, expires_in).await
}

/// `mtp auth status`, from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus> {
    let has_token = ctx.secret(TOKEN_SECRET)?.is_some();
    let account = state::account(ctx)?;
    let Some(account) = account.filter(|_| has_token) else {
        return Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: Some("not authorised: run `mtp auth mapillary`".into()),
        });
    };
    let since = plugin_api::time::format_utc(account.authorised_at);
    let now = Config::from_context(ctx)?.now_ms();
    let detail = match account.refused_at {
        Some(at) => format!(
            "Mapillary refused the token on {}: re-authorise with `mtp auth mapillary`",
            plugin_api::time::format_utc(at)
        ),
        None => format!(
            "user id {}, authorised {since}; {}",
            account.id,
            token::describe(token::info(ctx)?.as_ref(), now)
        ),
    };
    Ok(AuthStatus {
        authorised: account.refused_at.is_none(),
        account: Some(account.username),
        detail: Some(detail),
    })
}

/// The user name image searches filter on, asked from `/me` (the caller asks once per run): a Mapillary
/// account can be renamed, and a name cached from the first login would stop matching. A change is
/// stored and reported.
pub async fn username(api: &Api, ctx: &Context, token: &str) -> Result<String> {
    let (id, username) = whoami(api, ctx, token).await?;
    match state::account(ctx)? {
        Some(mut account) => {
            if account.username != username || account.id != id {
                ctx.info(format!(
                    "your Mapillary user name is now {username} (was {}); looking for your \
                     sequences under the new name",
                    account.username
                ));
                account.username = username.clone();
                account.id = id;
                state::put_account(ctx, &account)?;
            }
        }
        None => state::put_account(
            ctx,
            &Account {
                id,
                username: username.clone(),
                authorised_at: api.config.now_ms(),
                refused_at: None,
                planned_refresh_failed_at: None,
            },
        )?,
    }
    Ok(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_url_carries_everything() {
        let url = consent_url(
            "https://www.mapillary.com/connect",
            "123",
            "http://127.0.0.1:8765/callback",
            "s1",
        );
        assert_eq!(
            url,
            "https://www.mapillary.com/connect?client_id=123&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&response_type=code&state=s1"
        );
        assert!(consent_url("http://x/connect?a=1", "1", "r", "s")
            .starts_with("http://x/connect?a=1&client_id=1"));
        assert_ne!(new_state(), new_state());
        assert_eq!(new_state().len(), 32);
    }

    #[test]
    fn redirects() {
        assert_eq!(
            code_from_redirect("http://127.0.0.1:1/cb?code=AQ%2Fx&state=s1", "s1").unwrap(),
            "AQ/x"
        );
        // MTPDU's custom scheme is no URL, but carries the same query.
        assert_eq!(
            code_from_redirect(" app.mtp.desktop//app?state=s1&code=c ", "s1").unwrap(),
            "c"
        );
        assert!(matches!(
            code_from_redirect("http://x/cb?code=c&state=other", "s1"),
            Err(MlyError::Authorisation(m)) if m.contains("state")
        ));
        assert!(matches!(
            code_from_redirect("http://x/cb?code=c", "s1"),
            Err(MlyError::Authorisation(_))
        ));
        let denied = code_from_redirect(
            "http://x/cb?error=user_denied&error_description=The+user+denied&state=s1",
            "s1",
        )
        .unwrap_err()
        .to_string();
        assert!(
            denied.contains("user_denied") && denied.contains("The user denied"),
            "{denied}"
        );
        assert!(code_from_redirect("http://x/cb?state=s1", "s1").is_err());
    }
}
