//! HTTP for providers (feature `http`): a client, sending with the shared retry policy, and streaming a
//! file from disk as a request body while reporting progress.
//!
//! ```no_run
//! # async fn demo(ctx: &plugin_api::sdk::Context) -> Result<(), plugin_api::PluginError> {
//! use std::time::Duration;
//! use plugin_api::http::{client, file_body, send_with_retries};
//! use plugin_api::sdk::retry::Backoff;
//!
//! let http = client("my-provider/0.1")?;
//! let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(16), 8);
//! let path = std::path::Path::new("/photos/0001.jpg");
//! let answer = send_with_retries(ctx, &mut backoff, "upload of 0001.jpg", || async {
//!     Ok(http.put("http://127.0.0.1:8080/upload/0001.jpg").body(file_body(ctx, path, 0).await?))
//! })
//! .await?;
//! assert!(answer.is_success());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub use reqwest;

use crate::error::PluginError;
use crate::protocol::ProgressEvent;
use crate::sdk::attempts::{retry, Attempt};
use crate::sdk::retry::{classify_http, Backoff, RetryDecision};
use crate::sdk::Context;

/// Size of the chunks a file body is read and sent in.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// An HTTP client with a connect timeout and a user agent.
///
/// No read or total timeout: reqwest 0.12 arms a read timeout from sending until the response head, so a
/// long upload streaming steadily would be cut off. Set `.timeout(..)` on requests with small bodies, and
/// watch progress for large ones.
pub fn client(user_agent: &str) -> Result<reqwest::Client, PluginError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .user_agent(user_agent)
        .build()
        .map_err(|err| PluginError::other(format!("cannot build an HTTP client: {err}")))
}

/// An answer that was not retried: its status, body and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Whether a request may be sent again when its fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Idempotent (GET, PUT, an upsert): retry after any transport failure.
    Safe,
    /// Not idempotent (a create): retry only when the request surely did not take effect — no connection
    /// could be made, or the server answered with a retriable error — never after a timeout or a cut answer.
    OnlyIfNotApplied,
}

/// [`send`] for an idempotent request.
pub async fn send_with_retries<F, Fut>(
    ctx: &Context,
    backoff: &mut Backoff,
    what: &str,
    build: F,
) -> Result<Answer, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::RequestBuilder, PluginError>>,
{
    send(ctx, backoff, what, Repeat::Safe, build).await
}

/// Sends the request `build` makes (afresh for each attempt) until it gets an answer that retrying cannot
/// change: connection errors, timeouts, 5xx, 429 (honouring `Retry-After` / a JSON `backoff`) and 4xx
/// marked retriable are retried per `backoff` (as `repeat` allows); every other answer — 2xx, 401/403,
/// other 4xx — is returned for the caller to interpret, since only it knows what they mean.
pub async fn send<F, Fut>(
    ctx: &Context,
    backoff: &mut Backoff,
    what: &str,
    repeat: Repeat,
    mut build: F,
) -> Result<Answer, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::RequestBuilder, PluginError>>,
{
    let unknown = |why: String| {
        Attempt::Fail(PluginError::transient(format!(
            "{what}: {why}; whether it took effect is unknown, so it was not sent again"
        )))
    };
    retry(ctx, backoff, what, || {
        let request = build();
        async move {
            let request = match request.await {
                Ok(request) => request,
                Err(err) => return Attempt::Fail(err),
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) if repeat == Repeat::Safe || err.is_connect() => {
                    return Attempt::Retry {
                        after: None,
                        why: describe(&err),
                    }
                }
                Err(err) => return unknown(describe(&err)),
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = match response.text().await {
                Ok(body) => body,
                Err(err) if repeat == Repeat::Safe => {
                    return Attempt::Retry {
                        after: None,
                        why: format!("the answer was cut off: {}", describe(&err)),
                    }
                }
                Err(err) => return unknown(format!("the answer was cut off: {}", describe(&err))),
            };
            if !(200..300).contains(&status) {
                if let RetryDecision::Retry { after } =
                    classify_http(status, retry_after.as_deref(), &body)
                {
                    return Attempt::Retry {
                        after,
                        why: format!("HTTP {status}"),
                    };
                }
            }
            Attempt::Done(Answer { status, body })
        }
    })
    .await
}

/// A human description of a transport failure (it names the URL, never a header such as a token).
pub fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the request timed out".to_string()
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else {
        format!("network error: {err}")
    }
}

/// A request body streaming the file at `path` from byte `offset`, never holding more than one chunk in
/// memory, and reporting each chunk as [`ProgressEvent::Advance`] bytes as it is handed to the network
/// (so a retried body is counted again: report totals afresh after a retry if exact counts matter).
pub async fn file_body(
    ctx: &Context,
    path: &Path,
    offset: u64,
) -> Result<reqwest::Body, PluginError> {
    let io = |err: std::io::Error| PluginError::other(format!("{}: {err}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    let ctx = ctx.clone();
    let stream = futures::stream::unfold(Some(file), move |file| {
        let ctx = ctx.clone();
        async move {
            let mut file = file?;
            let mut chunk = vec![0u8; CHUNK_SIZE];
            match file.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    ctx.progress(ProgressEvent::Advance {
                        bytes: n as u64,
                        files: 0,
                    });
                    Some((Ok::<Vec<u8>, std::io::Error>(chunk), Some(file)))
                }
                Err(err) => Some((Err(err), None)),
            }
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}
