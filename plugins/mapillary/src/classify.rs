//! Mapillary's error grammar, as the SDK retry loop's classifier: which answers are retried, how long to
//! wait, which need a new login (`docs/providers/mapillary.md`, "Errors, retries and rate limits").

use std::time::Duration;

use plugin_api::http::Answer;
use plugin_api::sdk::retry::Verdict;
use serde_json::Value;

/// The wait after a rate-limit answer that names none (mapillary_tools `uploader.py`:
/// `DEFAULT_RETRY_AFTER_RATE_LIMIT_SEC`).
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// What to do about a non-2xx answer of the graph API or the upload service.
///
/// - Rate limits — any 429, or a 4xx whose `debug_info.type` is `RequestRateLimitedError` even when it
///   says `retriable: false` — are retried after the JSON `backoff` (milliseconds, number or string),
///   else `Retry-After` (read by [`Answer::retry_after`]), else [`RATE_LIMIT_WAIT`].
/// - 401/403, `debug_info.type == "NotAuthorizedError"` and OAuth error code 190 need a new login.
/// - 412 and `OffsetInvalidError`: the offset is stale; ask for it again.
/// - 5xx are retried, after `Retry-After` when given.
/// - Other 4xx are retried only when they say `debug_info.retriable: true` (upload service) or
///   `error.is_transient: true` (graph API).
pub fn verdict(answer: &Answer) -> Verdict {
    let status = answer.status;
    let json: Option<Value> = answer.json();
    let pointer = |p: &str| json.as_ref().and_then(|j| j.pointer(p));
    let debug_type = pointer("/debug_info/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let server_wait = || answer.retry_after();
    if status == 429 || ((400..500).contains(&status) && debug_type == "RequestRateLimitedError") {
        let wait = pointer("/backoff")
            .and_then(backoff_ms)
            .map(Duration::from_millis)
            .or_else(server_wait)
            .unwrap_or(RATE_LIMIT_WAIT);
        return Verdict::Retry { after: Some(wait) };
    }
    // Graph API: OAuth error code 190 is an invalid, expired or revoked access token, whatever the status.
    let graph_code = pointer("/error/code").and_then(Value::as_u64);
    if status == 401
        || status == 403
        || debug_type == "NotAuthorizedError"
        || graph_code == Some(190)
    {
        return Verdict::Auth;
    }
    if status == 412 || debug_type == "OffsetInvalidError" {
        return Verdict::Requery;
    }
    if status >= 500 {
        return Verdict::Retry {
            after: server_wait(),
        };
    }
    let retriable = pointer("/debug_info/retriable")
        .or_else(|| pointer("/error/is_transient"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if (400..500).contains(&status) && retriable {
        return Verdict::Retry { after: None };
    }
    Verdict::Fail
}

/// A JSON `backoff` in milliseconds: a number or a string of digits (negative means now).
fn backoff_ms(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|i| i.max(0) as u64))
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse::<i64>().ok().map(|i| i.max(0) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    /// The verdict on an answer of `status` with `Retry-After: retry_after` and `body`.
    fn verdict(status: u16, retry_after: Option<&str>, body: &str) -> Verdict {
        super::verdict(&Answer {
            status,
            body: body.to_string(),
            retry_after: retry_after.map(str::to_string),
        })
    }

    fn after(ms: u64) -> Verdict {
        Verdict::Retry {
            after: Some(Duration::from_millis(ms)),
        }
    }

    const LIMITED_400: &str = r#"{"backoff": 13000, "debug_info": {"retriable": false, "type": "RequestRateLimitedError", "message": "Request rate limit has been exceeded"}}"#;

    #[test]
    fn rate_limits_in_both_shapes() {
        // 400 RequestRateLimitedError with retriable:false is retried, waiting `backoff`.
        assert_eq!(verdict(400, None, LIMITED_400), after(13_000));
        assert_eq!(verdict(429, Some("3"), LIMITED_400), after(13_000));
        // `backoff` as a string; an unreadable one falls back to Retry-After, then to 10 s.
        let text = r#"{"backoff": "1500", "debug_info": {"type": "RequestRateLimitedError", "retriable": false}}"#;
        assert_eq!(verdict(400, None, text), after(1500));
        let junk = r#"{"backoff": "foo", "debug_info": {"type": "RequestRateLimitedError", "retriable": false}}"#;
        assert_eq!(verdict(400, Some("4"), junk), after(4000));
        assert_eq!(verdict(400, None, junk), after(10_000));
        // A 429 of any body: Retry-After, else 10 s.
        assert_eq!(verdict(429, Some("3"), "{}"), after(3000));
        assert_eq!(verdict(429, None, "not json"), after(10_000));
        assert_eq!(verdict(429, Some("3"), r#"{"backoff": 1500}"#), after(1500));
    }

    #[test]
    fn retry_after_on_5xx_is_honoured() {
        assert_eq!(verdict(503, Some("1"), ""), after(1000));
        assert_eq!(verdict(500, None, ""), Verdict::Retry { after: None });
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        match verdict(503, Some(&date), "") {
            Verdict::Retry { after: Some(wait) } => {
                assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_requery_and_the_rest() {
        assert_eq!(verdict(412, None, ""), Verdict::Requery);
        assert_eq!(
            verdict(
                412,
                None,
                r#"{"debug_info":{"retriable":true,"type":"OffsetInvalidError"}}"#
            ),
            Verdict::Requery
        );
        assert_eq!(verdict(401, None, ""), Verdict::Auth);
        assert_eq!(
            verdict(
                400,
                None,
                r#"{"debug_info":{"type":"NotAuthorizedError","retriable":false}}"#
            ),
            Verdict::Auth
        );
        assert_eq!(
            verdict(
                400,
                None,
                r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#
            ),
            Verdict::Auth
        );
        assert_eq!(
            verdict(400, None, r#"{"debug_info":{"type":"X","retriable":true}}"#),
            Verdict::Retry { after: None }
        );
        assert_eq!(
            verdict(
                400,
                None,
                r#"{"error":{"message":"try later","type":"OAuthException","code":2,"is_transient":true}}"#
            ),
            Verdict::Retry { after: None }
        );
        assert_eq!(verdict(400, None, "not json"), Verdict::Fail);
        assert_eq!(
            verdict(
                400,
                None,
                r#"{"error":{"message":"Invalid file_handle","type":"OAuthException","code":100}}"#
            ),
            Verdict::Fail
        );
    }
}
