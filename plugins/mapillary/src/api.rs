//! Mapillary's HTTP endpoints (`docs/providers/mapillary.md`): single attempts over `plugin_api::http`
//! (its client, [`exchange`] and [`Answer`]) that report exactly how they failed, and graph reads run
//! through the SDK retry loop with Mapillary's classifier ([`crate::classify`]).
//!
//! Every request authenticates with `Authorization: OAuth <token>`; tokens only ever travel in that header,
//! so no URL, log line or error message can carry one.

use std::time::Duration;

use plugin_api::http::reqwest::{self, header};
use plugin_api::http::{self, exchange, exchange_watched, Activity, Answer, Transport};
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
#[derive(Debug, Clone)]
pub enum Failure {
    /// An HTTP answer that is not a success.
    Status(Answer),
    /// No HTTP answer.
    Network(Transport),
    /// A success whose body we cannot read.
    Decode(String),
}

impl Failure {
    /// What Mapillary's error grammar says about it: the classifier of every retried request.
    pub fn verdict(&self) -> Verdict {
        match self {
            Failure::Status(answer) => classify::verdict(answer),
            Failure::Network { .. } => Verdict::Retry { after: None },
            Failure::Decode(_) => Verdict::Fail,
        }
    }

    /// A short description for messages (`HTTP 503: Service unavailable`).
    pub fn describe(&self) -> String {
        match self {
            Failure::Status(answer) => {
                let message = server_message(&answer.body);
                if message.is_empty() {
                    format!("HTTP {}", answer.status)
                } else {
                    format!("HTTP {}: {message}", answer.status)
                }
            }
            Failure::Network(transport) => transport.causes.clone(),
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
            (Failure::Status(answer), Verdict::Fail) => MlyError::Rejected {
                what,
                status: answer.status,
                message: {
                    let m = server_message(&answer.body);
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

/// A JSON success, or how the exchange failed.
fn json_of(
    exchanged: std::result::Result<Answer, Transport>,
) -> std::result::Result<Value, Failure> {
    let answer = exchanged.map_err(Failure::Network)?;
    if !answer.is_success() {
        return Err(Failure::Status(answer));
    }
    serde_json::from_str(&answer.body)
        .map_err(|err| Failure::Decode(format!("the answer is not JSON ({err})")))
}

impl Api {
    /// A client for the endpoints in `config`.
    pub fn new(config: Config) -> Result<Api> {
        let client = http::client(concat!("mtp-mapillary/", env!("CARGO_PKG_VERSION")))
            .map_err(|err| MlyError::Invalid(err.message))?;
        Ok(Api { client, config })
    }

    /// `GET url` with the user's token; one attempt.
    pub async fn get_json(&self, url: &str, token: &str) -> std::result::Result<Value, Failure> {
        let request = self
            .client
            .get(url)
            .header(header::AUTHORIZATION, oauth(token))
            .timeout(SHORT_TIMEOUT);
        json_of(exchange(request).await)
    }

    /// `POST {graph}/{path}` with a JSON body and `Authorization: OAuth <credential>`; one attempt.
    pub async fn post_graph(
        &self,
        path: &str,
        credential: &str,
        body: &Value,
    ) -> std::result::Result<Value, Failure> {
        let request = self
            .client
            .post(format!("{}/{path}", self.config.graph_url))
            .header(header::AUTHORIZATION, oauth(credential))
            .json(body)
            .timeout(SHORT_TIMEOUT);
        json_of(exchange(request).await)
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
            .header(header::AUTHORIZATION, oauth(token))
            .header("Offset", offset.to_string())
            .header("X-Entity-Name", key)
            .header("X-Entity-Length", length.to_string())
            .header("X-Entity-Type", entity_type)
            .body(body);
        let answer = json_of(exchange_watched(request, activity, UPLOAD_STALL).await)?;
        answer
            .get("h")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Failure::Decode(format!("no handle in {answer}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A refusal answered with `status` and `body`.
    pub(crate) fn status(status: u16, body: &str) -> Failure {
        Failure::Status(Answer {
            status,
            body: body.into(),
            retry_after: None,
        })
    }

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
        let auth = status(
            401,
            r#"{"debug_info":{"type":"NotAuthorizedError","message":"no","retriable":false}}"#,
        );
        assert!(matches!(
            auth.into_error("upload"),
            MlyError::TokenRefused { .. }
        ));
        let rejected = status(
            400,
            r#"{"error":{"message":"Invalid file_handle","type":"OAuthException","code":100}}"#,
        );
        match rejected.into_error("publish") {
            MlyError::Rejected {
                status, message, ..
            } => assert_eq!((status, message.as_str()), (400, "Invalid file_handle")),
            other => panic!("{other:?}"),
        }
        let network = Failure::Network(Transport {
            summary: "network error".into(),
            causes: "connection reset".into(),
            maybe_sent: true,
            cut: false,
        });
        assert_eq!(network.verdict(), Verdict::Retry { after: None });
        assert_eq!(network.describe(), "connection reset");
    }

    /// The words of a failed connection are reqwest's chain of causes without the URL: the host's page
    /// (`host/ui/app.js`, `NETWORK_ERROR`) recognises them and says "the service cannot be reached".
    #[tokio::test]
    async fn an_unreachable_service_is_described_by_its_causes_and_retried() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let root = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let api = Api::new(Config {
            graph_url: root.clone(),
            upload_url: root.clone(),
            authorize_url: root.clone(),
            organization_id: None,
            retry_base: Duration::from_millis(5),
            publish_deadline: Duration::from_secs(1),
            test_now_ms: None,
            recheck: false,
        })
        .unwrap();
        let failure = api.upload_offset("token", "key").await.unwrap_err();
        let described = failure.describe();
        assert!(
            described.starts_with("error sending request"),
            "{described}"
        );
        assert!(!described.contains(&root), "{described}");
        assert!(matches!(&failure, Failure::Network(t) if !t.maybe_sent));
        assert_eq!(failure.verdict(), Verdict::Retry { after: None });
    }
}
