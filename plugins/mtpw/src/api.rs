//! Map the Paths Web's HTTP API (docs/providers/mtpw.md; source: trek-view/mtp-web `api/views.py`): both
//! generations, its error shapes, and which answers are retried.

use std::time::Duration;

use plugin_api::http::{self, reqwest, Answer, Repeat, SendError};
use plugin_api::sdk::retry::{sleep_unless_cancelled, Backoff, Verdict};
use plugin_api::sdk::Context;
use plugin_api::PluginError;
use serde_json::Value;

/// Which API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiGeneration {
    /// Sept 2020: `mapillary/token/verify` then `sequence/import` (form, idempotent by key).
    TokenVerifyImport,
    /// Later: `sequence/create/` (form, not idempotent) then `PUT sequence/import/<unique_id>/` (JSON).
    CreateThenImport,
}

/// What went wrong talking to MTPW.
#[derive(Debug)]
pub enum ApiError {
    /// The path does not exist on this server (the other API generation).
    NotFound,
    /// MTPW refused (HTTP 200 with `{"error", "status": false}`, or a 4xx): its message.
    Refused(String),
    /// A create may or may not have taken effect (HTTP 5xx, a timeout, an answer cut off): why.
    OutcomeUnknown(String),
    /// Anything else, already a plugin error.
    Plugin(PluginError),
}

impl From<PluginError> for ApiError {
    fn from(err: PluginError) -> ApiError {
        ApiError::Plugin(err)
    }
}

/// A client for one MTPW server and user token.
pub struct MtpwApi<'a> {
    client: &'a reqwest::Client,
    base: String,
    token: String,
    retry_base: Duration,
    max_attempts: u32,
}

enum Body<'a> {
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
}

impl<'a> MtpwApi<'a> {
    /// A client for `base` (`MTP_WEB_URL`) with the user's MTPW `token`.
    pub fn new(
        client: &'a reqwest::Client,
        base: &str,
        token: &str,
        retry_base: Duration,
    ) -> MtpwApi<'a> {
        MtpwApi {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            retry_base,
            max_attempts: 8,
        }
    }

    /// Gives up after `attempts` retries (a login check should not make the user wait long).
    pub fn with_max_attempts(mut self, attempts: u32) -> MtpwApi<'a> {
        self.max_attempts = attempts;
        self
    }

    /// `POST /api/v1/mapillary/token/verify`: hands MTPW the user's Mapillary token.
    pub async fn verify_mapillary_token(
        &self,
        ctx: &Context,
        mapillary_token: &str,
    ) -> Result<Value, ApiError> {
        let fields = [("mapillary_token", mapillary_token)];
        self.send(
            ctx,
            reqwest::Method::POST,
            "/api/v1/mapillary/token/verify",
            Body::Form(&fields),
        )
        .await
    }

    /// `POST /api/v1/sequence/import` (old API): creates or updates the sequence for `key`.
    pub async fn import_by_key(
        &self,
        ctx: &Context,
        fields: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        self.send(
            ctx,
            reqwest::Method::POST,
            "/api/v1/sequence/import",
            Body::Form(fields),
        )
        .await
    }

    /// `POST /api/v1/sequence/create/` (new API): creates a sequence; not idempotent.
    ///
    /// Sent again only when it surely did not reach the view (no connection could be made). The real view
    /// saves the row before anything that can fail after it (trek-view/mtp-web `api/views.py`
    /// `SequenceCreate`), so a 5xx, a timeout or a cut answer is [`ApiError::OutcomeUnknown`], never a retry.
    /// (Kept apart from [`MtpwApi::send`]'s shared retry loop, which retries 5xx.)
    pub async fn create(&self, ctx: &Context, fields: &[(&str, &str)]) -> Result<Value, ApiError> {
        let url = format!("{}/api/v1/sequence/create/", self.base);
        self.send_unrepeated(ctx, "create", || self.client.post(&url).form(fields))
            .await
    }

    /// Sends a request that must not take effect twice: again only when no connection could be made; a
    /// 5xx, a timeout or a cut answer is [`ApiError::OutcomeUnknown`].
    async fn send_unrepeated(
        &self,
        ctx: &Context,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        let mut backoff = Backoff::new(self.retry_base, Duration::from_secs(16), self.max_attempts);
        loop {
            ctx.check_cancelled()?;
            let sent = build()
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(err) if err.is_connect() => match backoff.next_delay(None) {
                    Some(wait) => {
                        ctx.debug(format!(
                            "MTPW {what}: {}; trying again in {wait:?}",
                            http::describe(&err)
                        ));
                        // Ctrl-C ends the wait; the loop's first line then returns the cancellation.
                        sleep_unless_cancelled(ctx, wait).await;
                        continue;
                    }
                    None => {
                        return Err(ApiError::Plugin(PluginError::transient(format!(
                            "MTPW {what}: {}",
                            http::describe(&err)
                        ))))
                    }
                },
                Err(err) => return Err(ApiError::OutcomeUnknown(http::describe(&err))),
            };
            let status = response.status().as_u16();
            let body = match response.text().await {
                Ok(body) => body,
                Err(err) => {
                    return Err(ApiError::OutcomeUnknown(format!(
                        "the answer was cut off: {}",
                        http::describe(&err)
                    )))
                }
            };
            if status >= 500 {
                return Err(ApiError::OutcomeUnknown(format!("HTTP {status}")));
            }
            return interpret(status, &body);
        }
    }

    /// Checks the user's MTPW token without side effects: a create without a name, which the real view
    /// refuses before touching the database (`Sequence Name is missing`, trek-view/mtp-web `api/views.py`)
    /// while DRF answers 403 to a token it does not accept; on a server of the older API, the same with
    /// an empty `mapillary/token/verify` (`Mapillary token is invalid` before any save).
    pub async fn check_login(&self, ctx: &Context) -> Result<(), ApiError> {
        let probe = |path: &'static str| async move {
            self.send(ctx, reqwest::Method::POST, path, Body::Form(&[]))
                .await
        };
        let answer = match probe("/api/v1/sequence/create/").await {
            Err(ApiError::NotFound) => probe("/api/v1/mapillary/token/verify").await,
            other => other,
        };
        match answer {
            // Refused by the view: the token got past authentication.
            Err(ApiError::Refused(_)) => Ok(()),
            Ok(unexpected) => Err(ApiError::Refused(format!(
                "unexpected answer to an empty request: {unexpected}"
            ))),
            Err(err) => Err(err),
        }
    }

    /// `PUT /api/v1/sequence/import/<unique_id>/` (new API): attaches the Mapillary sequence.
    ///
    /// Repeating it is not harmless: an import of a key MTPW already holds deletes the row holding it, the
    /// sequence's own included, and re-creates it without its tags (trek-view/mtp-web `api/views.py`
    /// `SequenceImport.put`, see docs/providers/mtpw.md). With `repeat_safe` false (the sequence has
    /// tags) it is sent as a create is, never again after a 5xx, a timeout or a cut answer.
    pub async fn import_into(
        &self,
        ctx: &Context,
        unique_id: &str,
        mapillary_token: &str,
        sequence_key: &str,
        repeat_safe: bool,
    ) -> Result<Value, ApiError> {
        let body = serde_json::json!({
            "mapillary_user_token": mapillary_token,
            "mapillary_sequence_key": sequence_key,
        });
        let path = format!("/api/v1/sequence/import/{unique_id}/");
        if repeat_safe {
            return self
                .send(ctx, reqwest::Method::PUT, &path, Body::Json(&body))
                .await;
        }
        let url = format!("{}{path}", self.base);
        self.send_unrepeated(ctx, "import", || self.client.put(&url).json(&body))
            .await
    }

    async fn send(
        &self,
        ctx: &Context,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut backoff = Backoff::new(self.retry_base, Duration::from_secs(16), self.max_attempts);
        let what = format!("MTPW {method} {path}");
        // Only create is not idempotent, and it has its own sender; an empty probe changes nothing.
        let repeat = if path.contains("/create") && !matches!(body, Body::Form([])) {
            Repeat::OnlyIfNotApplied
        } else {
            Repeat::Safe
        };
        let sent = http::send(ctx, &mut backoff, &what, repeat, classify, || {
            let request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(60));
            let request = match &body {
                Body::Form(fields) => request.form(fields),
                Body::Json(value) => request.json(value),
            };
            async move { Ok(request) }
        })
        .await;
        match sent {
            Ok(answer) | Err(SendError::Refused { answer, .. }) => {
                interpret(answer.status, &answer.body)
            }
            Err(SendError::Failed(err)) => Err(ApiError::Plugin(err)),
        }
    }
}

/// MTPW's classifier for the SDK retry loop: 5xx and 429 are retried (after `Retry-After` when given), a
/// refused login (401/403) stops for re-login, a refusal reported as HTTP 200 with
/// `{"error": .., "status": false}` stops; everything else is [`interpret`]ed as it is. Transport
/// failures are retried by the loop as the request's [`Repeat`] allows (never blindly for a create).
fn classify(answer: &Answer) -> Option<Verdict> {
    match answer.status {
        500..=599 | 429 => Some(Verdict::Retry {
            after: answer.retry_after(),
        }),
        401 | 403 => Some(Verdict::Auth),
        200..=299 if refusal_in_200(answer.json().as_ref()) => Some(Verdict::Fail),
        _ => None,
    }
}

/// MTPW reports failures as HTTP 200 with `{"error": .., "status": false}`.
fn refusal_in_200(json: Option<&Value>) -> bool {
    json.is_some_and(|json| {
        json.get("status") == Some(&Value::Bool(false))
            || json.get("error").is_some_and(|e| !e.is_null())
    })
}

/// Turns an MTPW answer (retriable ones were already retried) into its JSON or an error.
fn interpret(status: u16, text: &str) -> Result<Value, ApiError> {
    if status == 404 {
        return Err(ApiError::NotFound);
    }
    if status == 401 || status == 403 {
        return Err(ApiError::Plugin(PluginError::auth(
            "MTPW did not accept the login: log in again with `mtp auth mtpw`",
        )));
    }
    let json: Option<Value> = serde_json::from_str(text).ok();
    if !(200..300).contains(&status) {
        let message = json
            .as_ref()
            .and_then(|j| j.get("error").or_else(|| j.get("detail")))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(ApiError::Refused(message));
    }
    let Some(json) = json else {
        return Err(ApiError::Plugin(PluginError::transient(format!(
            "MTPW answered HTTP {status} with something that is not JSON"
        ))));
    };
    if refusal_in_200(Some(&json)) {
        let message = json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("MTPW refused the request without a message")
            .to_string();
        return Err(ApiError::Refused(message));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A create that cannot connect waits between tries, and Ctrl-C ends that wait at once (it slept the
    /// whole backoff before).
    #[test]
    fn a_create_waiting_to_connect_again_stops_at_ctrl_c() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A port nothing listens on: the connection is refused, which is the one failure create retries.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let host = plugin_api::sdk::testing::TestHost::new();
        let ctx = host.context();
        let client = reqwest::Client::new();
        let api = MtpwApi::new(&client, &base, "t", Duration::from_secs(30));
        let started = std::time::Instant::now();
        let result = runtime.block_on(async {
            let cancel = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                host.cancel();
                std::future::pending::<()>().await
            };
            tokio::select! {
                result = api.create(&ctx, &[("name", "x")]) => result,
                () = cancel => unreachable!(),
            }
        });
        let took = started.elapsed();
        assert!(
            matches!(&result, Err(ApiError::Plugin(e)) if e.kind == plugin_api::ErrorKind::Cancelled),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    }

    #[test]
    fn errors_in_a_200_are_failures() {
        let err = interpret(
            200,
            r#"{"error":"Transport type is invalid","status":false}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ApiError::Refused(m) if m == "Transport type is invalid"));
        assert!(interpret(200, r#"{"status":"success","unique_id":"u1"}"#).is_ok());
        assert!(matches!(interpret(404, "nope"), Err(ApiError::NotFound)));
        assert!(matches!(
            interpret(403, r#"{"detail":"Authentication credentials were not provided."}"#),
            Err(ApiError::Plugin(e)) if e.kind == plugin_api::ErrorKind::Auth
        ));
        assert!(matches!(interpret(400, ""), Err(ApiError::Refused(m)) if m == "HTTP 400"));
    }

    fn answer(status: u16, body: &str, retry_after: Option<&str>) -> Answer {
        Answer {
            status,
            body: body.into(),
            retry_after: retry_after.map(str::to_string),
        }
    }

    #[test]
    fn the_classifier_retries_server_errors_and_stops_on_refusals() {
        assert_eq!(
            classify(&answer(503, "", Some("7"))),
            Some(Verdict::Retry {
                after: Some(Duration::from_secs(7))
            })
        );
        assert_eq!(
            classify(&answer(500, "", None)),
            Some(Verdict::Retry { after: None })
        );
        assert_eq!(classify(&answer(403, "", None)), Some(Verdict::Auth));
        assert_eq!(
            classify(&answer(
                200,
                r#"{"error":"Sequence is empty","status":false}"#,
                None
            )),
            Some(Verdict::Fail)
        );
        assert_eq!(
            classify(&answer(
                200,
                r#"{"status":"success","unique_id":"u1"}"#,
                None
            )),
            None
        );
        // 404 means the other API generation: the caller decides.
        assert_eq!(classify(&answer(404, "nope", None)), None);
    }
}
