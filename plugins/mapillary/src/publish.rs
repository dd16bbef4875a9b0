//! Publishing a manifest (`POST {graph}/finish_upload`, `docs/providers/mapillary.md`) exactly once.
//!
//! "Publishing" is committed before the request leaves and "published" after the answer, so a crash or a
//! timeout in between leaves a part whose outcome is unknown. Such a part is never published again
//! automatically (a second `finish_upload` could publish the sequence twice); only an explicit
//! `mtp upload --republish` sends it again. Nor is `finish_upload` retried within a run, for the same reason.

use plugin_api::prelude::*;
use plugin_api::sdk::retry::Verdict;
use serde_json::{json, Value};

use crate::api::{Api, Failure};
use crate::error::{MlyError, Result};
use crate::state::{PartState, Publish, SequenceStore};

/// How one publication went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Mapillary accepted it.
    Accepted,
    /// The request may have reached Mapillary but no usable answer came: the outcome is unknown.
    Unknown,
}

/// What `finish_upload` answered, as a decision about the part.
fn judge(failure: &Failure) -> Judgement {
    match failure {
        // No connection was made: Mapillary never saw it.
        Failure::Network(transport) if !transport.maybe_sent => Judgement::NotPublished,
        // A timeout or a reset after the request left.
        Failure::Network(_) => Judgement::Unknown,
        // A 2xx without a readable body: accepted.
        Failure::Decode(_) => Judgement::Accepted,
        Failure::Status(answer) if answer.status >= 500 => Judgement::Unknown,
        // A 4xx: refused, nothing was published.
        Failure::Status(_) => match failure.verdict() {
            Verdict::Auth => Judgement::NotPublished,
            // A rate limit (even a 400 `RequestRateLimitedError`) published nothing: the part stays as
            // it was and the next run publishes it.
            Verdict::Retry { .. } | Verdict::Requery => Judgement::NotPublished,
            Verdict::Fail => Judgement::Refused,
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Judgement {
    Accepted,
    Unknown,
    NotPublished,
    Refused,
}

/// Publishes part `index` (its manifest handle must be set). `part` is updated and committed.
///
/// Errors: a refusal ([`MlyError::Rejected`]), an auth error, or a failure that certainly did not publish
/// (the part is then as it was before, and the next run tries again).
pub async fn publish_part(
    api: &Api,
    ctx: &Context,
    token: &str,
    store: &SequenceStore<'_>,
    index: usize,
    part: &mut PartState,
) -> Result<Published> {
    let what = format!("publishing part {}", index + 1);
    let Some(handle) = part.manifest_handle.clone() else {
        return Err(MlyError::Invalid(format!(
            "{what}: the manifest was not uploaded"
        )));
    };
    let before = part.publish.clone();
    part.publish = Publish::OutcomeUnknown {
        since_ms: api.config.now_ms(),
        why: None,
    };
    store.put_part(index, part)?;

    let mut body = json!({"file_handle": handle, "file_type": "mly_bundle_manifest"});
    if let Some(org) = &api.config.organization_id {
        body["organization_id"] = Value::String(org.clone());
    }
    let answer = api.post_graph("finish_upload", token, &body).await;
    let (judgement, failure) = match answer {
        Ok(value) => {
            let cluster_id = match value.get("cluster_id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            part.publish = Publish::Published {
                at_ms: api.config.now_ms(),
                cluster_id,
            };
            store.put_part(index, part)?;
            return Ok(Published::Accepted);
        }
        Err(failure) => (judge(&failure), failure),
    };
    match judgement {
        Judgement::Accepted => {
            part.publish = Publish::Published {
                at_ms: api.config.now_ms(),
                cluster_id: String::new(),
            };
            store.put_part(index, part)?;
            Ok(Published::Accepted)
        }
        Judgement::Unknown => {
            part.publish = Publish::OutcomeUnknown {
                since_ms: api.config.now_ms(),
                why: Some(failure.describe()),
            };
            store.put_part(index, part)?;
            ctx.warn(format!("{what}: outcome unknown ({})", failure.describe()));
            Ok(Published::Unknown)
        }
        Judgement::NotPublished | Judgement::Refused => {
            part.publish = before;
            store.put_part(index, part)?;
            Err(failure.into_error(&what))
        }
    }
}

#[cfg(test)]
mod tests {
    use plugin_api::http::Transport;

    use super::*;
    use crate::api::tests::status;

    fn network(why: &str, maybe_sent: bool) -> Failure {
        Failure::Network(Transport {
            summary: why.into(),
            causes: why.into(),
            maybe_sent,
            cut: false,
        })
    }

    #[test]
    fn only_certain_refusals_are_final() {
        assert_eq!(judge(&status(500, "")), Judgement::Unknown);
        assert_eq!(judge(&status(503, "")), Judgement::Unknown);
        assert_eq!(judge(&network("timed out", true)), Judgement::Unknown);
        assert_eq!(
            judge(&network("connection refused", false)),
            Judgement::NotPublished
        );
        assert_eq!(judge(&status(401, "")), Judgement::NotPublished);
        assert_eq!(judge(&status(429, "")), Judgement::NotPublished);
        assert_eq!(
            judge(&status(
                400,
                r#"{"backoff":1000,"debug_info":{"type":"RequestRateLimitedError","retriable":false}}"#
            )),
            Judgement::NotPublished
        );
        assert_eq!(
            judge(&status(
                400,
                r#"{"error":{"message":"Invalid file_handle","type":"OAuthException","code":100}}"#
            )),
            Judgement::Refused
        );
        assert_eq!(judge(&Failure::Decode("x".into())), Judgement::Accepted);
    }
}
