//! Logging in to MTPW: the OAuth implicit grant MTPDU used, or a token the user already has.

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, random_state, redirect_params, with_query};

/// Where MTPW sends the browser back when `MTP_WEB_REDIRECT_URI` is not set (MTPDU's custom scheme, so
/// the user pastes the URL).
const DEFAULT_REDIRECT: &str = "app.mtp.desktop://app";

/// The state key holding when the stored token expires (Unix ms, as text).
const EXPIRES_AT_KEY: &str = "token_expires_at";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `mtp auth mtpw`.
pub async fn authorize(ctx: &Context, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
    // MTPW's implicit grant answers `expires_in` (seconds) next to the token; a pasted token says nothing.
    let mut expires_in: Option<u64> = None;
    let token = match request.token {
        Some(token) if !token.trim().is_empty() => token.trim().to_string(),
        Some(_) => return Err(PluginError::invalid_input("--token is empty")),
        None => {
            let auth_url = ctx.require_env("MTP_WEB_AUTH_URL")?;
            let client_id = ctx.require_env("MTP_WEB_APP_ID")?;
            let redirect_uri = ctx
                .env("MTP_WEB_REDIRECT_URI")
                .unwrap_or_else(|| DEFAULT_REDIRECT.to_string());
            let state = random_state();
            let url = with_query(
                &auth_url,
                &[
                    ("client_id", &client_id),
                    ("response_type", "token"),
                    ("redirect_uri", &redirect_uri),
                    ("state", &state),
                ],
            );
            let redirected = ctx
                .authorize(&AuthorizePrompt {
                    url,
                    redirect_uri,
                    provider: "Map the Paths Web".into(),
                })
                .await?;
            let params = redirect_params(&redirected);
            let get = |name: &str| param(&params, name).map(str::to_string);
            if let Some(error) = get("error") {
                return Err(PluginError::auth(format!(
                    "MTPW refused the login: {error}"
                )));
            }
            if get("state").as_deref() != Some(state.as_str()) {
                return Err(PluginError::auth(
                    "the login answer does not match the request (OAuth state mismatch); try mtp auth mtpw again",
                ));
            }
            expires_in = get("expires_in").and_then(|s| s.trim().parse().ok());
            get("access_token").ok_or_else(|| {
                PluginError::auth(
                    "the redirect URL carries no access_token; try mtp auth mtpw again",
                )
            })?
        }
    };
    ctx.set_secret("token", &token)?;
    ctx.state().put("login", "logged in")?;
    match expires_in {
        Some(secs) => {
            let at = now_ms().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000);
            ctx.state().put(EXPIRES_AT_KEY, &at.to_string())?
        }
        None => ctx.state().delete(EXPIRES_AT_KEY)?,
    }
    Ok(AuthOutcome {
        account: "Map the Paths Web user".into(),
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
            "token stored (expiry unknown: MTPW did not say, e.g. a token given with --token)"
                .into(),
        ),
        Some(at) if at > now => {
            let mins = (at - now) / 60_000;
            (
                true,
                format!(
                    "token stored; expires {} (in {} h {} min)",
                    format(at),
                    mins / 60,
                    mins % 60
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
    let expires_at = ctx
        .state()
        .get(EXPIRES_AT_KEY)?
        .and_then(|v| v.trim().parse::<i64>().ok());
    let (authorised, detail) = lifetime(expires_at, now_ms());
    Ok(AuthStatus {
        authorised,
        account: None,
        detail: Some(detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_in_status() {
        let (ok, text) = lifetime(Some(36_000_000 + 1000), 1000);
        assert!(ok && text.contains("(in 10 h 0 min)"), "{text}");
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
