//! Authorisation: Google's OAuth 2.0 for installed apps, through the host's prompt
//! (developers.google.com/identity/protocols/oauth2/native-app).
//!
//! `GET {auth_url}?client_id&redirect_uri=http://127.0.0.1:<port>/&response_type=code&scope=
//! https://www.googleapis.com/auth/streetviewpublish&code_challenge&code_challenge_method=S256&state&
//! access_type=offline&prompt=consent` (MTP Desktop Uploader `integrations/index.ts` asks for the same
//! scope with `access_type=offline&prompt=consent`, which is what makes Google send a refresh token);
//! the host listens on the loopback redirect; `POST {token_url}` with `code, client_id, client_secret,
//! redirect_uri, grant_type=authorization_code, code_verifier` answers the tokens.
//!
//! Why not the `oauth2` crate: as for Strava, the flow is one URL, one `state` comparison and one form
//! POST through this plugin's HTTP loop; PKCE is [`crate::pkce`].

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, redirect_params, with_query};
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::config::{Config, ENV_CLIENT_ID, ENV_CLIENT_SECRET};
use crate::pkce::{self, Pkce};
use crate::tokens;

/// The one scope the API has (`streetview_publish.proto`, `oauth_scopes`).
pub const SCOPE: &str = "https://www.googleapis.com/auth/streetviewpublish";
const ACCOUNT_KEY: &str = "account";

/// Who is authorised. Google tells the Street View scope nothing about the account, so this names the
/// OAuth client it was granted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The OAuth client id the grant belongs to.
    pub client_id: String,
    /// When (Unix ms).
    pub authorised_at_ms: i64,
}

impl Account {
    /// `Google account (OAuth client 123456789012-…)`.
    pub fn name(&self) -> String {
        let short: String = self.client_id.chars().take(12).collect();
        format!("your Google account (OAuth client {short}…)")
    }
}

/// The stored account.
pub fn account(ctx: &Context) -> Result<Option<Account>, PluginError> {
    ctx.state().get_json(ACCOUNT_KEY)
}

/// The loopback redirect URI: the configured port, else a free one (Desktop app clients accept any
/// port on 127.0.0.1: native-app guide, "Loopback IP address").
pub fn redirect_uri(config: &Config) -> Result<String, PluginError> {
    let port = if config.redirect_port != 0 {
        config.redirect_port
    } else {
        std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|err| {
                PluginError::other(format!("no free loopback port for the redirect: {err}"))
            })?
    };
    Ok(format!("http://127.0.0.1:{port}/"))
}

/// The consent page URL.
pub fn consent_url(config: &Config, redirect_uri: &str, state: &str, pkce: &Pkce) -> String {
    with_query(
        &config.auth_url,
        &[
            ("client_id", config.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("scope", SCOPE),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", state),
            ("access_type", "offline"),
            ("prompt", "consent"),
        ],
    )
}

/// The authorisation code the redirect carries, after checking `state` and the scope granted.
pub fn code_from_redirect(redirect: &str, expected_state: &str) -> Result<String, PluginError> {
    let params = redirect_params(redirect);
    let get = |name: &str| param(&params, name);
    if let Some(error) = get("error") {
        return Err(PluginError::auth(format!(
            "Google did not authorise mtp ({error}); run `mtp auth streetview` again and press Allow \
             (with a consent screen in testing mode, your account must be one of its test users)"
        )));
    }
    if get("state") != Some(expected_state) {
        return Err(PluginError::auth(
            "the redirect's state does not match this authorisation request (a stale or forged \
             redirect); run `mtp auth streetview` again",
        ));
    }
    // Granular consent lets the user untick a scope; the redirect lists what was granted.
    if let Some(scope) = get("scope") {
        if !scope.split(' ').any(|s| s == SCOPE) {
            return Err(PluginError::auth(format!(
                "Google granted only {scope:?}; publishing needs {SCOPE}: run `mtp auth streetview` \
                 again and leave Street View ticked"
            )));
        }
    }
    get("code")
        .map(str::to_string)
        .ok_or_else(|| PluginError::auth("the redirect URL carries no authorisation code"))
}

/// `mtp auth streetview`.
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
            "Google's access tokens last an hour and need the refresh token only the login gives: \
             run `mtp auth streetview` without --token",
        ));
    }
    let secret = Config::client_secret(ctx)?;
    let state = pkce::random_token()?;
    let pkce = Pkce::new()?;
    let redirect_uri = redirect_uri(&api.config)?;
    ctx.progress(ProgressEvent::Step {
        step: "authorise".into(),
        message: Some("waiting for Google's consent page".into()),
    });
    let redirect = ctx
        .authorize(&AuthorizePrompt {
            url: consent_url(&api.config, &redirect_uri, &state, &pkce),
            redirect_uri: redirect_uri.clone(),
            provider: "Google Street View".into(),
        })
        .await?;
    let code = code_from_redirect(&redirect, &state)?;
    let what = "exchanging the authorisation code";
    let reply = api
        .token(
            ctx,
            what,
            &[
                ("code", code.as_str()),
                ("client_id", api.config.client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("redirect_uri", redirect_uri.as_str()),
                ("grant_type", "authorization_code"),
                ("code_verifier", pkce.verifier.as_str()),
            ],
        )
        .await?;
    if !reply.is_success() {
        let body = reply.json();
        let error = body.get("error").and_then(|v| v.as_str()).unwrap_or("");
        return Err(PluginError::auth(format!(
            "{what}: Google refused it (HTTP {}{}); check {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} in \
             .env (a Desktop app client), then run `mtp auth streetview` again",
            reply.status,
            if error.is_empty() { String::new() } else { format!(", {error}") }
        )));
    }
    let tokens = tokens::grant(&reply, what, None)?;
    tokens::store(ctx, &tokens)?;
    let account = Account {
        client_id: api.config.client_id.clone(),
        authorised_at_ms: chrono::Utc::now().timestamp_millis(),
    };
    ctx.state().put_json(ACCOUNT_KEY, &account)?;
    ctx.info(format!(
        "authorised with Google Street View for {}",
        account.name()
    ));
    Ok(AuthOutcome {
        account: account.name(),
    })
}

/// `mtp auth status`, from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus, PluginError> {
    match (account(ctx)?, tokens::load(ctx)?) {
        (Some(account), Some(tokens)) => Ok(AuthStatus {
            authorised: true,
            account: Some(account.name()),
            detail: Some(format!(
                "authorised {}; {}",
                plugin_api::time::format_utc(account.authorised_at_ms),
                tokens::describe(&tokens)
            )),
        }),
        _ => Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: Some("not authorised: run `mtp auth streetview`".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_checked() {
        let ok = format!(
            "http://127.0.0.1:5/?state=s1&code=c0de&scope={}",
            SCOPE.replace(':', "%3A")
        );
        assert_eq!(code_from_redirect(&ok, "s1").unwrap(), "c0de");
        let denied = code_from_redirect("http://127.0.0.1:5/?state=s1&error=access_denied", "s1")
            .unwrap_err();
        assert!(denied.message.contains("access_denied"), "{denied}");
        assert!(code_from_redirect("http://127.0.0.1:5/?state=s2&code=c", "s1").is_err());
        let narrow = code_from_redirect("http://x/?state=s1&code=c&scope=email", "s1").unwrap_err();
        assert!(narrow.message.contains("streetviewpublish"), "{narrow}");
    }
}
