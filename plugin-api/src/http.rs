//! HTTP for providers (feature `http`): a client, one exchange read in one place ([`exchange`], and
//! [`exchange_watched`] for bodies that may take any time), sending through the SDK's retry loop with the
//! provider's own classifier ([`send`]; a provider whose attempt is several requests runs [`exchange`] in
//! `sdk::retry::retry` itself), and streaming a file from disk as a request body while reporting progress.
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

use crate::error::{ErrorKind, PluginError};
use crate::protocol::ProgressEvent;
use crate::sdk::retry::{parse_retry_after, retry, Backoff, Stop, Verdict};
use crate::sdk::Context;

mod exchange;

pub use exchange::{exchange, exchange_watched, Activity, Transport};

/// Size of the chunks a file body is read from disk and handed to the network in. 256 KiB keeps a
/// process's memory flat (a few chunks per parallel upload) while large enough that per-chunk overhead
/// does not show in throughput (the official Mapillary client sends 2 MiB chunks).
pub const CHUNK_SIZE: usize = 256 * 1024;

/// An HTTP client with a connect timeout, TCP keep-alive (a dead uplink under a long upload is noticed)
/// and a user agent.
///
/// No read or total timeout: reqwest 0.12 arms a read timeout from sending until the response head, so a
/// long upload streaming steadily would be cut off. Set `.timeout(..)` on requests with small bodies, and
/// watch progress for large ones.
pub fn client(user_agent: &str) -> Result<reqwest::Client, PluginError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .user_agent(user_agent)
        .build()
        .map_err(|err| PluginError::other(format!("cannot build an HTTP client: {err}")))
}

/// An HTTP answer: its status, body and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
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

    /// The wait `Retry-After` asks for, from now (seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
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

/// The classifier for servers with no error grammar of their own: 5xx, 429 and 408 are retried (after
/// `Retry-After` when given); every other answer is the caller's to read.
pub fn retry_server_errors(answer: &Answer) -> Option<Verdict> {
    (answer.status >= 500 || answer.status == 429 || answer.status == 408).then(|| Verdict::Retry {
        after: answer.retry_after(),
    })
}

/// [`send`] for an idempotent request, retrying what [`retry_server_errors`] says; every other answer
/// (2xx or not) is returned.
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
    send(ctx, backoff, what, Repeat::Safe, retry_server_errors, build)
        .await
        .map_err(PluginError::from)
}

/// Why [`send`] returned no answer to take.
#[derive(Debug)]
pub enum SendError {
    /// The classifier said [`Verdict::Fail`] or [`Verdict::Auth`] about this answer: the caller, who knows
    /// the body's grammar, words the error.
    Refused {
        /// The answer.
        answer: Answer,
        /// What the classifier said.
        verdict: Verdict,
    },
    /// No answer: retries used up, cancelled, an unknown outcome not repeated, or a request not built.
    Failed(PluginError),
}

impl From<SendError> for PluginError {
    fn from(err: SendError) -> PluginError {
        match err {
            SendError::Refused { answer, verdict } => {
                let text: String = answer.body.chars().take(300).collect();
                let message = format!("HTTP {}: {}", answer.status, text.trim());
                match verdict {
                    Verdict::Auth => PluginError::auth(message),
                    _ => PluginError::new(ErrorKind::Rejected, message),
                }
            }
            SendError::Failed(err) => err,
        }
    }
}

/// One failed exchange, as the loop sees it.
enum Exchange {
    /// An answer the classifier judged.
    Judged(Answer, Verdict),
    /// No answer; `repeatable` when [`Repeat`] allows sending it again.
    Transport { why: String, repeatable: bool },
    /// The request could not be built.
    Unbuilt(PluginError),
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exchange::Judged(answer, _) => write!(f, "HTTP {}", answer.status),
            Exchange::Transport { why, .. } => f.write_str(why),
            Exchange::Unbuilt(err) => write!(f, "{err}"),
        }
    }
}

fn judge(exchange: &Exchange) -> Verdict {
    match exchange {
        Exchange::Judged(_, verdict) => verdict.clone(),
        Exchange::Transport {
            repeatable: true, ..
        } => Verdict::Retry { after: None },
        Exchange::Transport { .. } | Exchange::Unbuilt(_) => Verdict::Fail,
    }
}

/// Sends the request `build` makes (afresh for each attempt) through the SDK's retry loop.
///
/// `classify` reads every answer, 2xx included (some servers report errors in a 200): `None` takes it,
/// `Some(Retry | Requery)` sends again per `backoff`, `Some(Auth | Fail)` returns
/// [`SendError::Refused`]. Transport failures (no connection, timeouts, cut answers) are retried as
/// `repeat` allows.
pub async fn send<F, Fut, C>(
    ctx: &Context,
    backoff: &mut Backoff,
    what: &str,
    repeat: Repeat,
    classify: C,
    mut build: F,
) -> Result<Answer, SendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::RequestBuilder, PluginError>>,
    C: Fn(&Answer) -> Option<Verdict>,
{
    let classify = &classify;
    let result = retry(ctx, backoff, what, judge, |_| {
        let request = build();
        async move {
            let request = request.await.map_err(Exchange::Unbuilt)?;
            let answer = exchange(request)
                .await
                .map_err(|failed| Exchange::Transport {
                    why: if failed.cut {
                        format!("the answer was cut off: {}", failed.summary)
                    } else {
                        failed.summary
                    },
                    repeatable: repeat == Repeat::Safe || (!failed.cut && !failed.maybe_sent),
                })?;
            match classify(&answer) {
                None => Ok(answer),
                Some(verdict) => Err(Exchange::Judged(answer, verdict)),
            }
        }
    })
    .await;
    result.map_err(|stop| match stop {
        Stop::Final {
            failure: Exchange::Judged(answer, verdict),
            ..
        } => SendError::Refused { answer, verdict },
        Stop::Final {
            failure: Exchange::Unbuilt(err),
            ..
        } => SendError::Failed(err),
        Stop::Final {
            failure: Exchange::Transport { why, .. },
            ..
        } => SendError::Failed(PluginError::transient(format!(
            "{what}: {why}; whether it took effect is unknown, so it was not sent again"
        ))),
        other => SendError::Failed(other.into_plugin_error(what)),
    })
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
