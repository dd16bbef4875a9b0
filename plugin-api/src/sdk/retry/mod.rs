//! The one retry layer: a loop that runs an attempt until it succeeds, a provider's classifier says
//! retrying cannot help, the budget ([`Backoff`]: retries and time since the last progress) runs out, or
//! the user cancels. It waits as the classifier or the backoff says, reports each wait as a progress note,
//! and wakes early on cancellation.
//!
//! The loop knows no provider: each provider passes a classifier ([`Classify`], or any
//! `Fn(&E) -> Verdict`) that reads its own error grammar — as rclone pairs one pacer with a per-backend
//! `shouldRetry`. `plugin_api::http::send` (feature `http`) runs HTTP requests through this loop.
//!
//! ```
//! # async fn demo(ctx: &plugin_api::sdk::Context) -> Result<(), plugin_api::PluginError> {
//! use std::time::Duration;
//! use plugin_api::sdk::retry::{retry, Backoff, Verdict};
//!
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 5)
//!     .within(Duration::from_secs(60));
//! let mut calls = 0;
//! let classify = |status: &u16| match status {
//!     500..=599 => Verdict::Retry { after: None },
//!     _ => Verdict::Fail,
//! };
//! let answer = retry(ctx, &mut backoff, "the status call", classify, |_headway| {
//!     calls += 1;
//!     let n = calls;
//!     async move { if n < 3 { Err(503u16) } else { Ok(n) } }
//! })
//! .await
//! .map_err(|stop| stop.into_plugin_error("the status call"))?;
//! assert_eq!(answer, 3);
//! # Ok(()) }
//! ```

mod backoff;
mod retry_after;

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use backoff::Backoff;
pub use retry_after::parse_retry_after;

use super::Context;
use crate::error::{ErrorKind, PluginError};
use crate::protocol::ProgressEvent;

/// A classifier's judgement of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the backoff's wait, or after `after` when the server said how long to wait.
    Retry {
        /// The server's own wait (`Retry-After`, a body field).
        after: Option<Duration>,
    },
    /// The client's view is stale (an offset mismatch): re-query and try again — at once the first time
    /// after progress, then with the backoff. Counts against the budget like any retry.
    Requery,
    /// The credentials are not accepted: stop; the user must authorise again.
    Auth,
    /// Retrying cannot help.
    Fail,
}

/// A provider's reading of its own failures.
pub trait Classify<E> {
    /// What to do about `failure`.
    fn classify(&self, failure: &E) -> Verdict;
}

impl<E, F: Fn(&E) -> Verdict> Classify<E> for F {
    fn classify(&self, failure: &E) -> Verdict {
        self(failure)
    }
}

/// Handed to every attempt: it calls [`Headway::made`] when it moved forward (the server holds more
/// bytes than before), and the loop then starts the budget over, as mapillary_tools resets its retry
/// counter after progress.
#[derive(Debug, Clone, Default)]
pub struct Headway(Arc<AtomicBool>);

impl Headway {
    /// Records that this attempt made progress.
    pub fn made(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// Why the loop stopped without a success.
#[derive(Debug)]
pub enum Stop<E> {
    /// The classifier said [`Verdict::Fail`] or [`Verdict::Auth`] about `failure`.
    Final {
        /// The last failure, as the attempt returned it.
        failure: E,
        /// What the classifier said.
        verdict: Verdict,
    },
    /// The failure was worth retrying but the budget is used up.
    GaveUp {
        /// The last failure.
        failure: E,
        /// Retries made since the last progress.
        retries: u32,
        /// Time since the last progress.
        waited: Duration,
    },
    /// The user cancelled.
    Cancelled,
}

impl<E: Display> Stop<E> {
    /// A plugin error saying what failed: `Auth`, `Rejected`, `Transient` (the budget ran out: progress is
    /// kept and the command can be run again) or `Cancelled`.
    pub fn into_plugin_error(self, what: &str) -> PluginError {
        match self {
            Stop::Final {
                failure,
                verdict: Verdict::Auth,
            } => PluginError::auth(format!("{what}: {failure}: authorise again")),
            Stop::Final { failure, .. } => {
                PluginError::new(ErrorKind::Rejected, format!("{what}: {failure}"))
            }
            Stop::GaveUp {
                failure,
                retries,
                waited,
            } => PluginError::transient(format!(
                "{what}: {failure} (gave up after {retries} retries in {}; the progress made so far \
                 is kept: run the command again later)",
                human_wait(waited)
            )),
            Stop::Cancelled => PluginError::new(ErrorKind::Cancelled, "cancelled by the user"),
        }
    }
}

/// `3.2 s`, `14 min`, `2.0 h`: a wait for messages.
pub fn human_wait(wait: Duration) -> String {
    let secs = wait.as_secs_f64();
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// Runs `attempt` until it succeeds or the loop stops ([`Stop`]). Failures go to `classify`; waits come
/// from the verdict or `backoff`, are announced as [`ProgressEvent::Note`]s naming `what`, and end early
/// when the user cancels. An attempt that calls [`Headway::made`] resets the budget.
pub async fn retry<T, E, C, F, Fut>(
    ctx: &Context,
    backoff: &mut Backoff,
    what: &str,
    classify: C,
    mut attempt: F,
) -> Result<T, Stop<E>>
where
    E: Display,
    C: Classify<E>,
    F: FnMut(Headway) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let headway = Headway::default();
    loop {
        if ctx.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let result = attempt(headway.clone()).await;
        if headway.take() {
            backoff.reset();
        }
        let failure = match result {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        if ctx.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let verdict = classify.classify(&failure);
        let server_wait = match verdict {
            Verdict::Retry { after } => after,
            Verdict::Requery if backoff.attempts() == 0 => Some(Duration::ZERO),
            Verdict::Requery => None,
            Verdict::Auth | Verdict::Fail => return Err(Stop::Final { failure, verdict }),
        };
        let Some(delay) = backoff.next_delay(server_wait) else {
            return Err(Stop::GaveUp {
                failure,
                retries: backoff.attempts(),
                waited: backoff.elapsed(),
            });
        };
        if !delay.is_zero() {
            ctx.progress(ProgressEvent::Note {
                message: format!("{what}: {failure}; retrying in {}", human_wait(delay)),
            });
        }
        if !sleep_unless_cancelled(ctx, delay).await {
            return Err(Stop::Cancelled);
        }
    }
}

/// Sleeps `delay` on tokio's clock, looking at the cancellation flag every 200 ms; `false` when the user
/// cancelled.
pub async fn sleep_unless_cancelled(ctx: &Context, delay: Duration) -> bool {
    let until = tokio::time::Instant::now() + delay;
    loop {
        if ctx.is_cancelled() {
            return false;
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(Duration::from_millis(200))).await;
    }
}

#[cfg(test)]
mod tests;
