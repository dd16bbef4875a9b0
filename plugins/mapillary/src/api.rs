//! Mapillary's HTTP endpoints (`docs/providers/mapillary.md`): single attempts that report exactly how
//! they failed, and graph reads run through the SDK retry loop with Mapillary's classifier
//! ([`crate::classify`]).
//!
//! Every request authenticates with `Authorization: OAuth <token>`; tokens only ever travel in that header,
//! so no URL, log line or error message can carry one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::prelude::*;
use plugin_api::sdk::retry::{self, Headway, Stop, Verdict};
use serde_json::Value;

use crate::classify;
use crate::config::Config;
use crate::error::{MlyError, Result};

/// Timeout of graph requests and upload offset queries (answers are small).
const SHORT_TIMEOUT: Duration = Duration::from_secs(60);
/// An upload whose body has not moved (and whose answer has not come) for this long is abandoned and retried.
/// A per-request timeout cannot be used: a large file may take any time to send.
pub const UPLOAD_STALL: Duration = Duration::from_secs(120);
/// Longest server text quoted in an error message.
const MAX_QUOTE: usize = 300;

/// How one attempt of one request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// An HTTP answer that is not a success.
    Status {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header.
        retry_after: Option<String>,
        /// The body (error JSON, usually).
        body: String,
    },
    /// No HTTP answer. `maybe_sent` is `false` only when no connection could be made, so the server cannot
    /// have seen the request.
    Network {
        /// What happened (`connection reset`, `timed out`).
        why: String,
        /// Whether the request may have reached the server.
        maybe_sent: bool,
    },
    /// A success whose body we cannot read.
    Decode(String),
}

impl Failure {
    /// What Mapillary's error grammar says about it: the classifier of every retried request.
    pub fn verdict(&self) -> Verdict {
        match self {
            Failure::Status {
                status,
                retry_after,
                body,
            } => classify::verdict(*status, retry_after.as_deref(), body),
            Failure::Network { .. } => Verdict::Retry { after: None },
            Failure::Decode(_) => Verdict::Fail,
        }
    }

    /// A short description for messages (`HTTP 503: Service unavailable`).
    pub fn describe(&self) -> String {
        match self {
            Failure::Status { status, body, .. } => {
                let message = server_message(body);
                if message.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {message}")
                }
            }
            Failure::Network { why, .. } => why.clone(),
            Failure::Decode(why) => why.clone(),
        }
    }

    /// Turns a failure that is not retried into the error to report.
    pub fn into_error(self, what: &str) -> MlyError {
        let what = what.to_string();
        match (&self, self.verdict()) {
            (_, Verdict::Auth) => MlyError::TokenRefused {
                what,
                detail: self.describe(),
            },
            (Failure::Status { status, body, .. }, Verdict::Fail) => MlyError::Rejected {
                what,
                status: *status,
                message: {
                    let m = server_message(body);
                    if m.is_empty() {
                        "no details".to_string()
                    } else {
                        m
                    }
                },
            },
            (Failure::Decode(why), _) => MlyError::BadAnswer {
                what,
                why: why.clone(),
            },
            _ => MlyError::Unavailable {
                what,
                why: self.describe(),
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Runs `attempt` through the SDK retry loop with Mapillary's classifier and `backoff`, and words a stop
/// as the integration's error (`what` names the step in messages).
pub async fn with_retries<T, F, Fut>(
    ctx: &Context,
    backoff: &mut retry::Backoff,
    what: &str,
    attempt: F,
) -> Result<T>
where
    F: FnMut(Headway) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Failure>>,
{
    retry::retry(ctx, backoff, what, Failure::verdict, attempt)
        .await
        .map_err(|stop| match stop {
            Stop::Final { failure, .. } => failure.into_error(what),
            Stop::GaveUp {
                failure,
                retries,
                waited,
            } => MlyError::GaveUp {
                what: what.to_string(),
                why: failure.describe(),
                attempts: retries,
                waited: retry::human_wait(waited),
            },
            Stop::Cancelled => MlyError::Cancelled,
        })
}

/// The human part of an error body: the graph API's `error.message`, the upload service's
/// `debug_info.message`, an OAuth `error_description`, or the start of the text.
pub fn server_message(body: &str) -> String {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let pick = |pointer: &str| {
        json.as_ref()
            .and_then(|j| j.pointer(pointer))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let text = pick("/error/message")
        .or_else(|| pick("/debug_info/message"))
        .or_else(|| pick("/error_description"))
        .or_else(|| pick("/error"))
        .or_else(|| pick("/message"))
        .unwrap_or_else(|| body.trim().to_string());
    let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.len() > MAX_QUOTE {
        let mut cut = MAX_QUOTE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The chain of causes of a request error, without its URL (`error sending request: connection refused`).
fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut parts = vec![if err.is_timeout() {
        "timed out".to_string()
    } else {
        err.to_string()
    }];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn network_failure(err: reqwest::Error) -> Failure {
    let err = err.without_url();
    Failure::Network {
        maybe_sent: !err.is_connect(),
        why: describe_reqwest(&err),
    }
}

/// When the body of a streamed request last moved, for the stall watchdog.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// Activity starting now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Records that something moved.
    pub fn touch(&self) {
        let now = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `stall`.
    async fn stalled(&self, stall: Duration) {
        loop {
            let idle = self.idle();
            if idle >= stall {
                return;
            }
            tokio::time::sleep(stall - idle).await;
        }
    }
}

/// The HTTP client and endpoints.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    /// Endpoints and tuning.
    pub config: Config,
}

fn oauth(token: &str) -> String {
    format!("OAuth {token}")
}

async fn read_answer(response: reqwest::Response) -> std::result::Result<Value, Failure> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.text().await.map_err(network_failure)?;
    if !(200..300).contains(&status) {
        return Err(Failure::Status {
            status,
            retry_after,
            body,
        });
    }
    serde_json::from_str(&body)
        .map_err(|err| Failure::Decode(format!("the answer is not JSON ({err})")))
}

impl Api {
    /// A client for the endpoints in `config`.
    pub fn new(config: Config) -> Result<Api> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .user_agent(concat!("mtp-mapillary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| MlyError::Invalid(format!("cannot set up HTTP: {err}")))?;
        Ok(Api { client, config })
    }

    /// `GET url` with the user's token; one attempt.
    pub async fn get_json(&self, url: &str, token: &str) -> std::result::Result<Value, Failure> {
        let response = self
            .client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, oauth(token))
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(network_failure)?;
        read_answer(response).await
    }

    /// `POST {graph}/{path}` with a JSON body and `Authorization: OAuth <credential>`; one attempt.
    pub async fn post_graph(
        &self,
        path: &str,
        credential: &str,
        body: &Value,
    ) -> std::result::Result<Value, Failure> {
        let response = self
            .client
            .post(format!("{}/{path}", self.config.graph_url))
            .header(reqwest::header::AUTHORIZATION, oauth(credential))
            .json(body)
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(network_failure)?;
        read_answer(response).await
    }

    /// `GET {graph}/{path_and_query}`, retried as Mapillary's classifier says.
    pub async fn graph_get(
        &self,
        ctx: &Context,
        token: &str,
        what: &str,
        path_and_query: &str,
    ) -> Result<Value> {
        let url = format!("{}/{path_and_query}", self.config.graph_url);
        self.get_with_retries(ctx, token, what, &url).await
    }

    /// `GET url` (absolute), retried as Mapillary's classifier says.
    pub async fn get_with_retries(
        &self,
        ctx: &Context,
        token: &str,
        what: &str,
        url: &str,
    ) -> Result<Value> {
        let mut backoff = self.config.backoff();
        with_retries(ctx, &mut backoff, what, |_| self.get_json(url, token)).await
    }

    /// `GET {upload}/{key}`: how many bytes of the entity the server holds; one attempt.
    pub async fn upload_offset(&self, token: &str, key: &str) -> std::result::Result<u64, Failure> {
        let url = format!("{}/{key}", self.config.upload_url);
        let answer = self.get_json(&url, token).await?;
        answer
            .get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| Failure::Decode(format!("no offset in {answer}")))
    }

    /// `POST {upload}/{key}` of the entity's bytes from `offset` (the caller's `body` streams exactly
    /// `length - offset` bytes); one attempt. Abandoned when `activity` shows no movement for
    /// [`UPLOAD_STALL`]. Returns the entity's handle.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_post(
        &self,
        token: &str,
        key: &str,
        offset: u64,
        length: u64,
        entity_type: &str,
        body: reqwest::Body,
        activity: &Activity,
    ) -> std::result::Result<String, Failure> {
        let request = self
            .client
            .post(format!("{}/{key}", self.config.upload_url))
            .header(reqwest::header::AUTHORIZATION, oauth(token))
            .header("Offset", offset.to_string())
            .header("X-Entity-Name", key)
            .header("X-Entity-Length", length.to_string())
            .header("X-Entity-Type", entity_type)
            .body(body);
        activity.touch();
        let exchange = async {
            let response = request.send().await.map_err(network_failure)?;
            activity.touch();
            read_answer(response).await
        };
        let answer = tokio::select! {
            answer = exchange => answer?,
            _ = activity.stalled(UPLOAD_STALL) => {
                return Err(Failure::Network {
                    why: format!("nothing moved for {} s", UPLOAD_STALL.as_secs()),
                    maybe_sent: true,
                })
            }
        };
        answer
            .get("h")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Failure::Decode(format!("no handle in {answer}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_every_error_shape() {
        assert_eq!(
            server_message(
                r#"{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190}}"#
            ),
            "Invalid OAuth access token"
        );
        assert_eq!(
            server_message(
                r#"{"debug_info":{"type":"OffsetInvalidError","message":"bad offset","retriable":true}}"#
            ),
            "bad offset"
        );
        assert_eq!(server_message("  plain text\n"), "plain text");
        assert!(server_message(&"x".repeat(1000)).chars().count() <= MAX_QUOTE + 1);
    }

    #[test]
    fn failures_become_errors_of_the_right_kind() {
        let auth = Failure::Status {
            status: 401,
            retry_after: None,
            body:
                r#"{"debug_info":{"type":"NotAuthorizedError","message":"no","retriable":false}}"#
                    .into(),
        };
        assert!(matches!(
            auth.into_error("upload"),
            MlyError::TokenRefused { .. }
        ));
        let rejected = Failure::Status {
            status: 400,
            retry_after: None,
            body:
                r#"{"error":{"message":"Invalid file_handle","type":"OAuthException","code":100}}"#
                    .into(),
        };
        match rejected.into_error("publish") {
            MlyError::Rejected {
                status, message, ..
            } => assert_eq!((status, message.as_str()), (400, "Invalid file_handle")),
            other => panic!("{other:?}"),
        }
        let network = Failure::Network {
            why: "connection reset".into(),
            maybe_sent: true,
        };
        assert_eq!(network.verdict(), Verdict::Retry { after: None });
    }
}
