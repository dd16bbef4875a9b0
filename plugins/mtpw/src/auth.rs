//! Logging in to MTPW: the OAuth implicit grant MTPDU used, or a token the user already has; either way
//! the token is checked with MTPW before it is stored as working.
//!
//! The real MTPW allows redirects only to MTPDU's `app.mtp.desktop` scheme and only to a `redirect_uri`
//! registered for the app (trek-view/mtp-web `config/settings/base.py`, django-oauth-toolkit), so a
//! loopback listener can never receive the token: the user pastes the URL the browser was sent to, or
//! passes a token with `mtp auth mtpw --token`.

use std::time::{SystemTime, UNIX_EPOCH};

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, random_state, redirect_params, with_query};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, MtpwApi};

/// What the host waits for when `MTP_WEB_REDIRECT_URI` is not set: any URL of MTPDU's scheme, where MTPW
/// sends the browser back to the app's registered redirect URI.
const MTPDU_SCHEME_PREFIX: &str = "app.mtp.desktop:";

/// What is known about the stored token (state key `login`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    /// MTPW accepted the token when it was stored.
    #[serde(default)]
    pub verified: bool,
    /// Why it could not be checked, when it could not.
    #[serde(default)]
    pub unverified_because: Option<String>,
    /// When it expires (Unix seconds), from the login's `expires_in`; `None` when MTPW did not say.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// When MTPW refused it in a run (Unix seconds), and what it said.
    #[serde(default)]
    pub refused: Option<(u64, String)>,
}

/// Records that MTPW refused the stored token (a new login replaces the record).
pub fn mark_refused(ctx: &Context, why: &str) -> Result<(), PluginError> {
    let mut login = ctx
        .state()
        .get("login")?
        .and_then(|text| serde_json::from_str::<Login>(&text).ok())
        .unwrap_or_default();
    login.refused = Some((now_secs(), why.to_string()));
    ctx.state().put_json("login", &login)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn human_expiry(expires_at: u64) -> String {
    let left = expires_at.saturating_sub(now_secs());
    if left == 0 {
        return "expired".to_string();
    }
    let days = left / 86_400;
    if days >= 2 {
        format!("expires in {days} days")
    } else {
        format!("expires in {} hours", left.div_ceil(3600))
    }
}

impl Login {
    /// A sentence for `mtp auth` and `mtp auth status`.
    pub fn describe(&self) -> String {
        let expiry = match self.expires_at {
            Some(at) => human_expiry(at),
            None => "expiry unknown".to_string(),
        };
        format!("{}; {expiry}", self.verification())
    }

    /// Whether MTPW accepted the token when it was stored, and if not, why not.
    pub fn verification(&self) -> String {
        if self.verified {
            "token verified with MTPW".to_string()
        } else {
            format!(
                "token stored but NOT verified ({})",
                self.unverified_because.as_deref().unwrap_or("not checked")
            )
        }
    }
}

/// The implicit-grant consent page for `client_id`; `redirect_uri` only when one is configured.
fn consent_url(auth_url: &str, client_id: &str, redirect_uri: Option<&str>, state: &str) -> String {
    let mut query = vec![("client_id", client_id), ("response_type", "token")];
    query.extend(redirect_uri.map(|r| ("redirect_uri", r)));
    query.push(("state", state));
    with_query(auth_url, &query)
}

/// The token and its `expires_in` from the URL MTPW redirected to (implicit grant: in the fragment).
fn token_from_redirect(
    redirected: &str,
    state: &str,
) -> Result<(String, Option<u64>), PluginError> {
    let params = redirect_params(redirected);
    let get = |name: &str| param(&params, name).map(str::to_string);
    if let Some(error) = get("error") {
        return Err(PluginError::auth(format!(
            "MTPW refused the login: {error}"
        )));
    }
    if get("state").as_deref() != Some(state) {
        return Err(PluginError::auth(
            "the login answer does not match the request (OAuth state mismatch); try mtp auth mtpw again",
        ));
    }
    let token = get("access_token").ok_or_else(|| {
        PluginError::auth("the redirect URL carries no access_token; try mtp auth mtpw again")
    })?;
    let expires_in = get("expires_in").and_then(|v| v.trim().parse::<u64>().ok());
    Ok((token, expires_in))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `mtp auth mtpw`.
pub async fn authorize(
    ctx: &Context,
    client: &plugin_api::http::reqwest::Client,
    request: AuthRequest,
) -> Result<AuthOutcome, PluginError> {
    let mut expires_in = None;
    let token = match request.token {
        Some(token) if !token.trim().is_empty() => token.trim().to_string(),
        Some(_) => return Err(PluginError::invalid_input("--token is empty")),
        None => {
            let settings = crate::config::settings();
            let auth_url = settings.required_text(ctx, crate::config::AUTH_URL)?;
            let client_id = settings.required_text(ctx, crate::config::APP_ID)?;
            // Sent only when configured: MTPW then uses the app's registered one, and refuses any other.
            let configured = settings.text(ctx, crate::config::REDIRECT_URI)?;
            let state = random_state();
            let url = consent_url(&auth_url, &client_id, configured.as_deref(), &state);
            let redirected = ctx
                .authorize(&AuthorizePrompt {
                    url,
                    redirect_uri: configured.unwrap_or_else(|| MTPDU_SCHEME_PREFIX.to_string()),
                    provider: "Map the Paths Web".into(),
                })
                .await?;
            let (token, expires) = token_from_redirect(&redirected, &state)?;
            expires_in = expires;
            token
        }
    };
    let mut login = Login {
        expires_at: expires_in.map(|s| now_secs().saturating_add(s)),
        ..Login::default()
    };
    let base = crate::config::base(ctx)?;
    let api =
        MtpwApi::new(client, &base, &token, crate::config::retry_base(ctx)?).with_max_attempts(2);
    match api.check_login(ctx).await {
        Ok(()) => login.verified = true,
        Err(ApiError::Plugin(err)) if err.kind == ErrorKind::Auth => {
            return Err(PluginError::auth(format!(
                "MTPW at {base} does not accept this token (HTTP 403); nothing was stored. Log in again with `mtp auth mtpw`, or pass a working token with --token"
            )));
        }
        Err(ApiError::NotFound) => {
            login.unverified_because = Some(format!(
                "{base} has neither MTPW API endpoint; is MTP_WEB_URL right?"
            ))
        }
        Err(ApiError::Refused(why) | ApiError::OutcomeUnknown(why)) => {
            login.unverified_because = Some(format!("MTPW answered: {why}"))
        }
        Err(ApiError::Plugin(err)) => {
            login.unverified_because = Some(format!("MTPW could not be reached: {}", err.message))
        }
    }
    ctx.set_secret("token", &token)?;
    ctx.state().put_json("login", &login)?;
    if !login.verified {
        ctx.warn(format!(
            "MTPW token stored but not verified: {}",
            login.describe()
        ));
    }
    Ok(AuthOutcome {
        account: format!("Map the Paths Web user ({})", login.describe()),
    })
}

/// What status says about a token expiring at `expires_at` (Unix ms), at `now`; and whether it is usable.
fn lifetime(expires_at: Option<i64>, now: i64) -> (bool, String) {
    let format = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| ms.to_string())
    };
    match expires_at {
        None => (
            true,
            "expiry unknown (MTPW did not say, e.g. a token given with --token)".into(),
        ),
        Some(at) if at > now => {
            let left = std::time::Duration::from_millis((at - now).unsigned_abs());
            (
                true,
                format!(
                    "expires {} (in {})",
                    format(at),
                    plugin_api::time::human_span(left)
                ),
            )
        }
        Some(at) => (
            false,
            format!(
                "token expired {}: log in again with `mtp auth mtpw`",
                format(at)
            ),
        ),
    }
}

/// `mtp auth status` for MTPW: from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus, PluginError> {
    if ctx.secret("token")?.is_none() {
        return Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: None,
        });
    }
    // A login stored by an earlier version is the plain text "logged in": nothing known about it.
    let login: Login = ctx
        .state()
        .get("login")?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Login {
            unverified_because: Some("stored by an earlier version of mtp".into()),
            ..Login::default()
        });
    let expires_at_ms = login.expires_at.map(|secs| {
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    });
    if let Some((at, why)) = &login.refused {
        let at_ms = i64::try_from(*at).unwrap_or(0).saturating_mul(1000);
        return Ok(AuthStatus {
            authorised: false,
            account: None,
            detail: Some(format!(
                "MTPW refused the token {} ({why}): log in again with mtp auth mtpw",
                plugin_api::time::format_utc(at_ms)
            )),
        });
    }
    let (authorised, lifetime) = lifetime(expires_at_ms, now_ms());
    Ok(AuthStatus {
        authorised,
        account: None,
        detail: Some(format!("{}; {lifetime}", login.verification())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_is_sent_only_when_configured() {
        let bare = consent_url(
            "https://mtpw.example/accounts/authorize/",
            "app",
            None,
            "s1",
        );
        assert_eq!(
            bare,
            "https://mtpw.example/accounts/authorize/?client_id=app&response_type=token&state=s1"
        );
        let with = consent_url(
            "https://mtpw.example/accounts/authorize/",
            "app",
            Some("app.mtp.desktop://oauth"),
            "s1",
        );
        assert!(
            with.contains("redirect_uri=app.mtp.desktop%3A%2F%2Foauth"),
            "{with}"
        );
    }

    #[test]
    fn the_login_records_expires_in() {
        let (token, expires) = token_from_redirect(
            "app.mtp.desktop://oauth#access_token=t1&expires_in=600000000&token_type=Bearer&state=s1",
            "s1",
        )
        .unwrap();
        assert_eq!((token.as_str(), expires), ("t1", Some(600_000_000)));
        let login = Login {
            verified: true,
            unverified_because: None,
            expires_at: expires.map(|s| now_secs() + s),
            refused: None,
        };
        assert!(
            login.describe().contains("expires in 694"),
            "{}",
            login.describe()
        );
        assert!(
            token_from_redirect("app.mtp.desktop://oauth#access_token=t1&state=x", "s1").is_err()
        );
    }

    #[test]
    fn lifetime_in_status() {
        let (ok, text) = lifetime(Some(36_000_000 + 1000), 1000);
        assert!(ok && text.contains("(in 10 h)"), "{text}");
        let (ok, text) = lifetime(Some(1000), 2000);
        assert!(
            !ok && text.contains("log in again with `mtp auth mtpw`"),
            "{text}"
        );
        assert!(lifetime(None, 0).1.contains("expiry unknown"));
    }

    #[test]
    fn reads_the_token_from_the_fragment() {
        let params =
            redirect_params("app.mtp.desktop://app#access_token=a%2Bb&token_type=Bearer&state=s1");
        assert_eq!(param(&params, "access_token"), Some("a+b"));
        assert_eq!(param(&params, "state"), Some("s1"));
    }
}
