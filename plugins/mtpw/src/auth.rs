//! Logging in to MTPW: the OAuth implicit grant MTPDU used, or a token the user already has.

use plugin_api::prelude::*;

/// Where MTPW sends the browser back when `MTP_WEB_REDIRECT_URI` is not set (MTPDU's custom scheme, so
/// the user pastes the URL).
const DEFAULT_REDIRECT: &str = "app.mtp.desktop://app";

fn random_state() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", hasher.finish())
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a redirect URL's fragment (implicit grant) or, failing that, its query.
fn redirect_params(url: &str) -> Vec<(String, String)> {
    let part = match url.split_once('#') {
        Some((_, fragment)) => fragment,
        None => url.split_once('?').map_or("", |(_, q)| q),
    };
    part.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

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
            let separator = if auth_url.contains('?') { '&' } else { '?' };
            let url = format!(
                "{auth_url}{separator}client_id={}&response_type=token&redirect_uri={}&state={state}",
                encode(&client_id),
                encode(&redirect_uri)
            );
            let redirected = ctx
                .authorize(&AuthorizePrompt {
                    url,
                    redirect_uri,
                    provider: "Map the Paths Web".into(),
                })
                .await?;
            let params = redirect_params(&redirected);
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
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
        assert!(params.contains(&("access_token".into(), "a+b".into())));
        assert!(params.contains(&("state".into(), "s1".into())));
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
