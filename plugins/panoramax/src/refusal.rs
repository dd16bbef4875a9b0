//! What Panoramax's error answers mean, each with what the user can do about it (GeoVisio's
//! `errors.InvalidAPIUsage` bodies: `message`, optional `details`, `status_code`).

use plugin_api::http::Answer;
use plugin_api::prelude::*;
use plugin_api::serde_json::{self, Value};

/// The server's `message`, and `details` when present, from an error body.
pub fn server_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            match v.get("details").filter(|d| !d.is_null()) {
                Some(details) => format!("{message} ({details})"),
                None => message.to_string(),
            }
        }
        Err(_) => body.chars().take(200).collect(),
    }
}

/// The error for an answer we did not expect, saying what to do about it.
pub fn unexpected(what: &str, answer: &Answer) -> PluginError {
    let detail = server_message(&answer.body);
    match answer.status {
        // An account that has not accepted the instance's terms (`API_ENFORCE_TOS_ACCEPTANCE`) gets a
        // 401 naming the page where it can (`geovisio/utils/auth.py`, `details.validation_page`): the
        // token is fine, so logging in again would only loop.
        401 => match terms_page(&answer.body) {
            Some(page) => PluginError::other(format!(
                "{what}: this Panoramax account has not accepted the instance's terms of service: \
                 accept them at {page}, then run `mtp upload` again"
            )),
            None => PluginError::auth(format!(
                "{what}: Panoramax refused the token (HTTP 401: {detail}); run `mtp auth panoramax` \
                 again"
            )),
        },
        // A token deleted (revoked) by its owner, or generated and never claimed, is a 403 "Token not
        // valid" (`geovisio/utils/tokens.py` `InvalidTokenException(..., status_code=403)`); any other
        // 403 on an upload set is the owner check (`addFilesToUploadSet`, `completeUploadSet`).
        403 if is_token_refusal(&answer.body) => PluginError::auth(format!(
            "{what}: Panoramax no longer accepts the stored token (HTTP 403: {detail}); it was \
             revoked or never claimed: run `mtp auth panoramax` again"
        )),
        403 => PluginError::auth(format!(
            "{what}: Panoramax refused this account (HTTP 403: {detail}); the upload set belongs to \
             another account: authorise as its owner with `mtp auth panoramax`"
        )),
        404 => PluginError::invalid_input(format!(
            "{what}: not found on Panoramax (HTTP 404: {detail}); check PANORAMAX_URL in .env"
        )),
        415 => PluginError::other(format!(
            "{what}: Panoramax did not accept the request's format (HTTP 415: {detail}); this is a \
             bug in mtp-panoramax, please report it"
        )),
        status => PluginError::invalid_input(format!("{what}: HTTP {status}: {detail}")),
    }
}

/// The page named by a 401 for terms of service not yet accepted (`details.validation_page`).
pub fn terms_page(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(
        v.get("details")?
            .get("validation_page")?
            .as_str()?
            .to_string(),
    )
}

/// GeoVisio's refusal of the token itself: `message` "Token not valid" (`InvalidTokenException`, never
/// translated), whatever the status.
pub fn is_token_refusal(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|m| m == "Token not valid")
}
