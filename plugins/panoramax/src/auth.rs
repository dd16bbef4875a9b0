//! Authorisation: a JWT the user already has (`mtp auth panoramax --token JWT`), or the flow that needs no
//! app registration: ask the instance for a token nobody owns yet (`POST /api/auth/tokens/generate`) and
//! send the user to its claim page, where they log in with the instance's own accounts. panoramax_cli
//! 1.4.1 does the same (`panoramax_cli/auth.py`), but it stores the token at once, prints the claim URL and
//! ends; each later command checks `GET /api/users/me` once and prints the URL again while it is 401/403.
//! mtp instead polls `/api/users/me` until it answers 200 (our choice, so that one `mtp auth panoramax`
//! finishes the login), and stores the token only then. Either way the token is checked with
//! `/api/users/me` before it is stored.

use plugin_api::prelude::*;
use plugin_api::tokio;

use crate::api::{Api, Me};
use crate::state::{self, Account, TOKEN_SECRET};

/// A loopback redirect URI nothing is ever redirected to: it makes the host open the claim page in the
/// browser (and print it) without asking the user to paste anything back; the claim is detected by polling.
const CLAIM_PROMPT_REDIRECT: &str = "http://127.0.0.1:0/mtp-panoramax-claimed";

async fn store(ctx: &Context, api: &Api, token: &str, me: Me) -> Result<AuthOutcome, PluginError> {
    ctx.set_secret(TOKEN_SECRET, token)?;
    state::put_account(
        ctx,
        &Account {
            id: me.id,
            name: me.name.clone(),
            instance: api.config.url.clone(),
        },
    )?;
    ctx.info(format!("authorised with Panoramax as {}", me.name));
    Ok(AuthOutcome { account: me.name })
}

/// `mtp auth panoramax [--token JWT]`.
pub async fn authorize(
    api: &Api,
    ctx: &Context,
    request: AuthRequest,
) -> Result<AuthOutcome, PluginError> {
    if let Some(token) = request
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return match api.with_token(token).me(ctx).await? {
            Some(me) => store(ctx, api, token, me).await,
            None => Err(PluginError::auth(format!(
                "{} does not accept this token (HTTP 401/403 on /api/users/me); copy a token from \
                 your account's settings page, or run `mtp auth panoramax` without --token",
                api.config.url
            ))),
        };
    }
    // Without an OAuth provider nobody can log in on the claim page (`auth.enabled` false in
    // `geovisio/web/configuration.py`): say so instead of waiting for a claim that cannot come.
    let login_enabled = api
        .configuration(ctx)
        .await?
        .and_then(|c| c.auth)
        .map(|a| a.enabled);
    if login_enabled == Some(false) {
        return Err(PluginError::auth(format!(
            "{} has no login (auth.enabled is false in /api/configuration), so its claim page cannot \
             log you in: ask its administrator for a token (on the server: `panoramax_backend \
             default-account-tokens get`) and run `mtp auth panoramax --token JWT`",
            api.config.url
        )));
    }
    let generated = api.generate_token(ctx).await?;
    ctx.progress(ProgressEvent::Step {
        step: "authorise".into(),
        message: Some(format!(
            "open {} and log in to Panoramax to authorise mtp",
            generated.claim_url
        )),
    });
    ctx.warn(format!(
        "to authorise mtp, open {} and log in",
        generated.claim_url
    ));
    let prompt = AuthorizePrompt {
        url: generated.claim_url.clone(),
        redirect_uri: CLAIM_PROMPT_REDIRECT.into(),
        provider: format!("Panoramax ({})", api.config.url),
    };
    let claimed = api.with_token(&generated.jwt);
    let deadline = tokio::time::Instant::now() + api.config.claim_timeout;
    let poll = async {
        loop {
            if let Some(me) = claimed.me(ctx).await? {
                return Ok::<Me, PluginError>(me);
            }
            ctx.check_cancelled()?;
            if tokio::time::Instant::now() >= deadline {
                return Err(PluginError::auth(format!(
                    "the token was not claimed within {} s; run `mtp auth panoramax` again and log in \
                     at the page it opens",
                    api.config.claim_timeout.as_secs()
                )));
            }
            tokio::time::sleep(api.config.claim_poll).await;
        }
    };
    // The host's prompt only opens the page; whatever it returns, the claim is known from polling.
    let open_page = async {
        if let Err(err) = ctx.authorize(&prompt).await {
            ctx.debug(format!("the browser prompt ended: {err}"));
        }
        std::future::pending::<()>().await
    };
    let me = tokio::select! {
        me = poll => me?,
        () = open_page => return Err(PluginError::other("the browser prompt ended unexpectedly")),
    };
    store(ctx, api, &generated.jwt, me).await
}

/// `mtp auth status`, from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus, PluginError> {
    let has_token = ctx.secret(TOKEN_SECRET)?.is_some();
    match state::account(ctx)?.filter(|_| has_token) {
        Some(account) => Ok(AuthStatus {
            authorised: true,
            account: Some(account.name),
            detail: Some(format!("on {}", account.instance)),
        }),
        None => Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: Some("not authorised: run `mtp auth panoramax`".into()),
        }),
    }
}
