//! Google's error answers: the `google.rpc.Status` envelope `{"error": {"code", "message", "status"}}`
//! (Google API design guide, "Errors"; `google/rpc/code.proto` for the HTTP status of each code), read
//! into a plain sentence with the next step.

use plugin_api::prelude::*;
use plugin_api::serde_json::Value;

use crate::config::{ENV_CLIENT_ID, ENV_DAILY_QUOTA};

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// HTTP status.
    pub http: u16,
    /// The canonical code's name (`INVALID_ARGUMENT`), from the envelope or, without one, from the HTTP
    /// status as `code.proto` maps them.
    pub status: String,
    /// Google's message (may be empty).
    pub message: String,
}

fn status_of_http(http: u16) -> &'static str {
    match http {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

impl RpcError {
    /// Reads an error answer.
    pub fn from_answer(http: u16, body: &str) -> RpcError {
        let json: Value = plugin_api::serde_json::from_str(body).unwrap_or(Value::Null);
        let error = json.get("error");
        let text = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let message = text("message").unwrap_or_else(|| body.chars().take(200).collect());
        RpcError {
            http,
            status: text("status").unwrap_or_else(|| status_of_http(http).to_string()),
            message: message.trim().to_string(),
        }
    }

    /// From a per-photo `status` of a batch answer (`{"code": 5, "message": ...}`, numeric codes of
    /// `code.proto`).
    pub fn from_status(status: &Value) -> Option<RpcError> {
        let code = status.get("code").and_then(Value::as_i64).unwrap_or(0);
        if code == 0 {
            return None;
        }
        let (name, http) = match code {
            3 => ("INVALID_ARGUMENT", 400),
            5 => ("NOT_FOUND", 404),
            7 => ("PERMISSION_DENIED", 403),
            8 => ("RESOURCE_EXHAUSTED", 429),
            14 => ("UNAVAILABLE", 503),
            16 => ("UNAUTHENTICATED", 401),
            _ => ("UNKNOWN", 500),
        };
        Some(RpcError {
            http,
            status: name.to_string(),
            message: status
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// `INVALID_ARGUMENT: not a 360 photo`.
    pub fn short(&self) -> String {
        if self.message.is_empty() {
            format!("{} (HTTP {})", self.status, self.http)
        } else {
            format!("{}: {}", self.status, self.message)
        }
    }

    /// The error a run ends with when this answer stops it, worded for the user with the next step.
    pub fn to_plugin_error(&self, what: &str) -> PluginError {
        let said = self.short();
        match self.status.as_str() {
            "UNAUTHENTICATED" => PluginError::auth(format!(
                "{what}: Google no longer accepts the login ({said}): run `mtp auth streetview` again"
            )),
            "PERMISSION_DENIED" => PluginError::new(
                ErrorKind::Rejected,
                format!(
                    "{what}: Google refused ({said}). Enable the Street View Publish API in the Google \
                     Cloud project of {ENV_CLIENT_ID} (console.cloud.google.com/apis/library/\
                     streetviewpublish.googleapis.com), check that your account is a test user of its \
                     consent screen, then run `mtp auth streetview` and `mtp upload` again"
                ),
            ),
            "RESOURCE_EXHAUSTED" => PluginError::transient(format!(
                "{what}: Google says the daily quota or your storage is used up ({said}); run mtp \
                 upload again tomorrow, or lower {ENV_DAILY_QUOTA} to the quota your project has"
            )),
            "INVALID_ARGUMENT" => PluginError::new(
                ErrorKind::Rejected,
                format!(
                    "{what}: Google refused it as invalid ({said}); Street View takes 360° \
                     equirectangular JPEGs with Photo Sphere XMP metadata only"
                ),
            ),
            "NOT_FOUND" => PluginError::transient(format!(
                "{what}: Google does not know it ({said}); run mtp upload again to start over"
            )),
            _ => PluginError::transient(format!("{what}: {said}; run mtp upload again later")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_and_bare_statuses_are_read() {
        let e = RpcError::from_answer(
            400,
            r#"{"error":{"code":400,"message":"Photo is not a 360 photo.","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.status, "INVALID_ARGUMENT");
        assert_eq!(e.short(), "INVALID_ARGUMENT: Photo is not a 360 photo.");
        let bare = RpcError::from_answer(403, "<html>Forbidden</html>");
        assert_eq!(bare.status, "PERMISSION_DENIED");
        let err = bare.to_plugin_error("creating the photo");
        assert!(
            err.message.contains("Enable the Street View Publish API"),
            "{err}"
        );
        let auth = RpcError::from_answer(401, "{}").to_plugin_error("x");
        assert_eq!(auth.kind, ErrorKind::Auth);
        let per_photo = plugin_api::serde_json::json!({"code": 5, "message": "gone"});
        assert_eq!(
            RpcError::from_status(&per_photo).unwrap().status,
            "NOT_FOUND"
        );
        assert!(RpcError::from_status(&plugin_api::serde_json::json!({})).is_none());
    }
}
