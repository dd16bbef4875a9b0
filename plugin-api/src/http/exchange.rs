//! One exchange: a request sent, its answer read (status, `Retry-After`, body), or why none came. The
//! retry loops ([`super::send`], and providers that run several requests per attempt through
//! [`crate::sdk::retry::retry`]) are built on it, so the answer is read in this one place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{describe, Answer};

/// Why an exchange brought no answer to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// In the words of [`describe`] (`the request timed out`, `cannot connect`, `network error: ...`).
    pub summary: String,
    /// Every cause, outermost first, without the URL (`error sending request: ...: Connection refused (os
    /// error 111)`), or `timed out`: the detail a user or the host's page can recognise.
    pub causes: String,
    /// Whether the request may have reached the server: `false` only when no connection could be made.
    pub maybe_sent: bool,
    /// Whether an answer's head came and its body was cut off.
    pub cut: bool,
}

impl Transport {
    /// A transport failure read from reqwest's error (`cut`: while reading the answer's body).
    pub fn from_reqwest(err: reqwest::Error, cut: bool) -> Transport {
        let summary = describe(&err);
        let err = err.without_url();
        Transport {
            summary,
            causes: causes(&err),
            maybe_sent: !err.is_connect(),
            cut,
        }
    }

    /// A request abandoned by a watchdog after it stopped moving (it may have reached the server).
    pub fn stalled(stall: Duration) -> Transport {
        let why = format!("nothing moved for {} s", stall.as_secs());
        Transport {
            summary: why.clone(),
            causes: why,
            maybe_sent: true,
            cut: false,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.causes)
    }
}

/// The chain of causes of a request error (`timed out` for a timeout).
fn causes(err: &reqwest::Error) -> String {
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

/// Reads an answer's status, `Retry-After` and body.
async fn read(response: reqwest::Response) -> Result<Answer, Transport> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .text()
        .await
        .map_err(|err| Transport::from_reqwest(err, true))?;
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// Sends `request` once and reads its whole answer, whatever its status.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<Answer, Transport> {
    let response = request
        .send()
        .await
        .map_err(|err| Transport::from_reqwest(err, false))?;
    read(response).await
}

/// [`exchange`] for a request whose body may take any time to send (so no total timeout fits): abandoned
/// once `activity` shows nothing moved for `stall`. The body's stream calls [`Activity::touch`] per chunk;
/// sending and the answer's head touch it too.
pub async fn exchange_watched(
    request: reqwest::RequestBuilder,
    activity: &Activity,
    stall: Duration,
) -> Result<Answer, Transport> {
    activity.touch();
    let watched = async {
        let response = request
            .send()
            .await
            .map_err(|err| Transport::from_reqwest(err, false))?;
        activity.touch();
        read(response).await
    };
    tokio::select! {
        answer = watched => answer,
        _ = activity.stalled(stall) => Err(Transport::stalled(stall)),
    }
}

/// When a streamed request last moved, for the stall watchdog of [`exchange_watched`].
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server on 127.0.0.1 that reads a request head and answers `reply` (`None`: never answers).
    async fn server(reply: Option<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            match reply {
                Some(reply) => socket.write_all(reply.as_bytes()).await.unwrap(),
                None => std::future::pending::<()>().await,
            }
        });
        url
    }

    #[tokio::test]
    async fn an_answer_is_read_whatever_its_status() {
        let url = server(Some(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nbusy",
        ))
        .await;
        let answer = exchange(reqwest::Client::new().get(&url)).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_str(), answer.retry_after()),
            (503, "busy", Some(Duration::from_secs(7)))
        );
    }

    #[tokio::test]
    async fn a_refused_connection_was_surely_not_sent() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", closed.local_addr().unwrap());
        drop(closed);
        let failed = exchange(reqwest::Client::new().get(&url))
            .await
            .unwrap_err();
        assert!(!failed.maybe_sent && !failed.cut, "{failed:?}");
        assert_eq!(failed.summary, "cannot connect");
        assert!(failed.causes.contains("error sending request"), "{failed}");
        assert!(!failed.causes.contains(&url), "the URL stays out: {failed}");
    }

    #[tokio::test]
    async fn a_stalled_body_is_abandoned_and_may_have_been_sent() {
        let url = server(None).await;
        let activity = Activity::new();
        // A body that never yields its first chunk: nothing moves after the request leaves.
        let stuck = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        let request = reqwest::Client::new()
            .post(&url)
            .body(reqwest::Body::wrap_stream(stuck));
        let started = Instant::now();
        let failed = exchange_watched(request, &activity, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(failed, Transport::stalled(Duration::from_secs(1)));
        assert!(failed.maybe_sent && failed.causes == "nothing moved for 1 s");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_answer_that_comes_in_time_is_read() {
        let url = server(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")).await;
        let activity = Activity::new();
        let answer = exchange_watched(
            reqwest::Client::new().post(&url).body("x"),
            &activity,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    }
}
