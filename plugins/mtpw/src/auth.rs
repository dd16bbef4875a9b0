//! Logging in to MTPW: the OAuth implicit grant MTPDU used, or a token the user already has.

use plugin_api::prelude::*;
use plugin_api::sdk::redirect::{param, random_state, redirect_params, with_query};

/// Where MTPW sends the browser back when `MTP_WEB_REDIRECT_URI` is not set (MTPDU's custom scheme, so
/// the user pastes the URL).
const DEFAULT_REDIRECT: &str = "app.mtp.desktop://app";

/// `mtp auth mtpw`.
pub async fn authorize(ctx: &Context, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
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
            get("access_token").ok_or_else(|| {
                PluginError::auth(
                    "the redirect URL carries no access_token; try mtp auth mtpw again",
                )
            })?
        }
    };
    ctx.set_secret("token", &token)?;
    ctx.state().put("login", "logged in")?;
    Ok(AuthOutcome {
        account: "Map the Paths Web user".into(),
    })
}

/// `mtp auth status` for MTPW: from stored state only.
pub fn status(ctx: &Context) -> Result<AuthStatus, PluginError> {
    let authorised = ctx.secret("token")?.is_some();
    Ok(AuthStatus {
        authorised,
        account: None,
        detail: authorised.then(|| "token stored (MTPW tokens do not expire)".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_from_the_fragment() {
        let params =
            redirect_params("app.mtp.desktop://app#access_token=a%2Bb&token_type=Bearer&state=s1");
        assert_eq!(param(&params, "access_token"), Some("a+b"));
        assert_eq!(param(&params, "state"), Some("s1"));
    }
}
