//! A retry loop over any fallible async attempt, driven by [`super::retry::Backoff`]: the one place where
//! integrations wait, report retries as progress notes, and honour cancellation while retrying.
//!
//! ```
//! # async fn demo(ctx: &plugin_api::sdk::Context) -> Result<(), plugin_api::PluginError> {
//! use std::time::Duration;
//! use plugin_api::sdk::attempts::{retry, Attempt};
//! use plugin_api::sdk::retry::Backoff;
//!
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 5);
//! let mut calls = 0;
//! let answer = retry(ctx, &mut backoff, "the status call", || {
//!     calls += 1;
//!     let n = calls;
//!     async move {
//!         if n < 3 {
//!             Attempt::Retry { after: None, why: "HTTP 503".into() }
//!         } else {
//!             Attempt::Done(n)
//!         }
//!     }
//! })
//! .await?;
//! assert_eq!(answer, 3);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use super::retry::Backoff;
use super::Context;
use crate::error::{ErrorKind, PluginError};
use crate::protocol::ProgressEvent;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// It worked.
    Done(T),
    /// It failed in a way worth retrying, after `after` when the server said so.
    Retry {
        /// The server's requested wait.
        after: Option<Duration>,
        /// Why, for the user (`HTTP 503`, `connection reset`).
        why: String,
    },
    /// It failed for good.
    Fail(PluginError),
}

/// Runs `attempt` until it is done, fails for good, the backoff is used up (a [`ErrorKind::Transient`]
/// error naming `what`), or the user cancels ([`ErrorKind::Cancelled`]).
pub async fn retry<T, F, Fut>(
    ctx: &Context,
    backoff: &mut Backoff,
    what: &str,
    mut attempt: F,
) -> Result<T, PluginError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    loop {
        ctx.check_cancelled()?;
        match attempt().await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(err) => return Err(err),
            Attempt::Retry { after, why } => {
                let Some(delay) = backoff.next_delay(after) else {
                    return Err(PluginError::new(
                        ErrorKind::Transient,
                        format!(
                            "gave up on {what} after {} retries: {why}; run the command again later",
                            backoff.attempts()
                        ),
                    ));
                };
                ctx.progress(ProgressEvent::Note {
                    message: format!("{what}: {why}; retrying in {:.1} s", delay.as_secs_f64()),
                });
                tokio::time::sleep(delay).await;
            }
        }
    }
}
