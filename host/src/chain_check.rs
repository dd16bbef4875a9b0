//! What the chain decides before and between integrations: which integrations will run on a sequence
//! (checked before the first byte is sent, and shown by `mtp sequence inspect`), which are skipped
//! because an integration they need did not deliver, and which are skipped because the sequence is
//! already published there (MTPDU's `destination` block).
//!
//! An integration *needs* another when its manifest consumes one of the other's exports
//! (`consumes: ["mapillary.sequence_key"]`); `after` alone only orders the chain.

use std::collections::BTreeMap;

use plugin_api::manifest::Manifest;
use plugin_api::protocol::{RunOutcome, SequenceState};

/// How an integration this one needs ended in this run (or, in a re-check, its stored record).
#[derive(Debug, Clone)]
pub enum UpstreamResult {
    /// It reported an outcome.
    Outcome(RunOutcome),
    /// It ended in an error (with the outcome it had before, if any).
    Error {
        /// The error message.
        message: String,
        /// The record's outcome after the error.
        outcome: Option<RunOutcome>,
    },
    /// It did not run: why.
    Skipped(String),
}

/// The ids of the integrations `manifest` needs (from `consumes`, `id.value`), in order, without repeats.
pub fn required_upstreams(manifest: &Manifest) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for value in &manifest.consumes {
        if let Some((id, _)) = value.split_once('.') {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// Why an integration that needs `upstream` cannot run after `result`; `None` when it can (the
/// upstream delivered, or may still deliver: it is processing, or its publish outcome is unknown).
fn upstream_blocks(
    upstream: &str,
    result: Option<&UpstreamResult>,
    enabled: bool,
) -> Option<String> {
    let failed = |why: &str| Some(format!("needs {upstream}, which failed: {why}"));
    match result {
        None if enabled => Some(format!(
            "needs {upstream}, which has not run on this sequence; run mtp upload"
        )),
        None => Some(format!(
            "needs {upstream}, which is not enabled (see mtp integrations list)"
        )),
        Some(UpstreamResult::Skipped(reason)) => Some(format!(
            "needs {upstream}, which skipped this sequence ({reason})"
        )),
        Some(UpstreamResult::Error { message, outcome }) => match outcome.as_ref().map(|o| o.state)
        {
            Some(
                SequenceState::Unpublished | SequenceState::Unknown | SequenceState::Published,
            ) => None,
            _ => failed(message),
        },
        Some(UpstreamResult::Outcome(outcome)) => match outcome.state {
            SequenceState::Published
            | SequenceState::Unpublished
            | SequenceState::Unknown
            | SequenceState::Waiting => None,
            SequenceState::DryRun => Some(format!("needs {upstream}, which only did a dry run")),
            SequenceState::Failed => {
                failed(outcome.message.as_deref().unwrap_or("no reason given"))
            }
            SequenceState::Pending | SequenceState::Uploading => Some(format!(
                "needs {upstream}, which has not finished ({}); run mtp upload again",
                outcome.state.as_str()
            )),
        },
    }
}

/// Why the integration of `manifest` is skipped after what its upstreams did (`results`, by id;
/// `enabled`: the ids in the chain).
pub fn upstream_skip(
    manifest: &Manifest,
    results: &BTreeMap<String, UpstreamResult>,
    enabled: &[String],
) -> Option<String> {
    required_upstreams(manifest)
        .iter()
        .find_map(|up| upstream_blocks(up, results.get(up), enabled.iter().any(|e| e == up)))
}

/// Why the integration of `manifest` is skipped because the sequence is already published there: the
/// host passes MTPDU's `destination` block as `options.prior_uploads` (see
/// `mtp_sequence::mtpdu::PriorUpload`); `options.force` sends it anyway. An integration that declares it
/// handles such a sequence itself ([`plugin_api::manifest::HANDLES_PRIOR_UPLOADS`]: Mapillary looks its
/// key up, sending nothing) is never skipped for it.
pub fn already_published(
    manifest: &Manifest,
    options: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    if options.get("force").and_then(serde_json::Value::as_bool) == Some(true)
        || manifest.handles_prior_uploads(options)
    {
        return None;
    }
    let prior = options.get("prior_uploads")?.get(&manifest.id)?;
    if prior.get("published")?.as_bool()? {
        let what = prior
            .get("what")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the sequence log says so");
        Some(format!(
            "already published: {what}; pass --force to send it again"
        ))
    } else {
        None
    }
}

/// What the chain will do with one integration, decided before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanEntry {
    /// The integration.
    pub integration: String,
    /// It does not take the sequence: its reason.
    pub not_eligible: Option<String>,
    /// The chain skips it: why (already published, an integration it needs is skipped or dry-run).
    pub skipped: Option<String>,
    /// It will run once these are fixed (login, required metadata); each names the fix.
    pub needs: Vec<String>,
    /// One of `needs` is a login (`mtp auth <id>`): the upload's exit code is then "not logged in".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_logged_in: bool,
    /// What it will do with the sequence that the user may not expect (never blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PlanEntry {
    /// It will run (once its needs are fixed).
    pub fn runs(&self) -> bool {
        self.not_eligible.is_none() && self.skipped.is_none()
    }

    /// The line `inspect` prints for it.
    pub fn describe(&self) -> String {
        let line = match (&self.not_eligible, &self.skipped, self.needs.is_empty()) {
            (Some(reason), _, _) => format!("not eligible: {reason}"),
            (None, Some(reason), _) => format!("skipped: {reason}"),
            (None, None, true) => "eligible".to_string(),
            (None, None, false) => format!("eligible, but first: {}", self.needs.join("; ")),
        };
        match (self.runs(), self.notes.is_empty()) {
            (true, false) => format!("{line} ({})", self.notes.join("; ")),
            _ => line,
        }
    }
}

/// Why an upload is blocked, for its exit code: a login if any integration that will run needs one,
/// else the sequence's metadata (what eligibility asked for); `None` when nothing blocks.
pub fn blocking_exit(plan: &[PlanEntry]) -> Option<crate::exit::Exit> {
    let blocked: Vec<&PlanEntry> = plan
        .iter()
        .filter(|e| e.runs() && !e.needs.is_empty())
        .collect();
    if blocked.is_empty() {
        None
    } else if blocked.iter().any(|e| e.not_logged_in) {
        Some(crate::exit::Exit::Auth)
    } else {
        Some(crate::exit::Exit::InvalidInput)
    }
}

/// The fixes that block an upload, as one message naming each integration; `None` when nothing blocks.
pub fn blocking_message(plan: &[PlanEntry]) -> Option<String> {
    let lines: Vec<String> = plan
        .iter()
        .filter(|e| e.runs())
        .flat_map(|e| {
            e.needs
                .iter()
                .map(move |n| format!("  - {}: {n}", e.integration))
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "not ready to upload; nothing was sent:\n{}",
            lines.join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(consumes: &[&str]) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "id": "mtpw", "name": "MTPW", "version": "1", "description": "",
            "consumes": consumes,
        }))
        .unwrap()
    }

    #[test]
    fn skips_when_the_needed_upstream_did_not_deliver() {
        let m = manifest(&["mapillary.sequence_key", "mapillary.user_token"]);
        assert_eq!(required_upstreams(&m), ["mapillary"]);
        let mut results = BTreeMap::new();
        let enabled = ["mapillary".to_string(), "mtpw".to_string()];
        assert!(upstream_skip(&m, &results, &[])
            .unwrap()
            .contains("not enabled"));
        for (state, expected) in [
            (
                SequenceState::DryRun,
                Some("needs mapillary, which only did a dry run"),
            ),
            (
                SequenceState::Failed,
                Some("needs mapillary, which failed: boom"),
            ),
            (SequenceState::Published, None),
            (SequenceState::Unpublished, None),
            (SequenceState::Unknown, None),
        ] {
            results.insert(
                "mapillary".to_string(),
                UpstreamResult::Outcome(RunOutcome::new(state, "boom")),
            );
            assert_eq!(
                upstream_skip(&m, &results, &enabled).as_deref(),
                expected,
                "{state:?}"
            );
        }
        results.insert(
            "mapillary".to_string(),
            UpstreamResult::Skipped("not eligible: transport type Air".into()),
        );
        assert_eq!(
            upstream_skip(&m, &results, &enabled).unwrap(),
            "needs mapillary, which skipped this sequence (not eligible: transport type Air)"
        );
        assert_eq!(upstream_skip(&manifest(&[]), &results, &enabled), None);
    }

    #[test]
    fn already_published_unless_forced_or_handled() {
        let mut options = serde_json::Map::new();
        options.insert(
            "prior_uploads".into(),
            serde_json::json!({"mapillary": {"published": true, "what": "MTPDU did"},
                               "mtpw": {"published": false, "id": "u1", "what": "created"}}),
        );
        let named = |id: &str, declared: serde_json::Value| -> Manifest {
            serde_json::from_value(serde_json::json!({
                "id": id, "name": id, "version": "1", "description": "", "options": declared,
            }))
            .unwrap()
        };
        let plain = named("mapillary", serde_json::json!([]));
        assert_eq!(
            already_published(&plain, &options).unwrap(),
            "already published: MTPDU did; pass --force to send it again"
        );
        assert_eq!(
            already_published(&named("mtpw", serde_json::json!([])), &options),
            None
        );
        // Declares that it looks a prior upload up itself (default on): called, not skipped; turned
        // off by the user's option: skipped as before.
        let handles = named(
            "mapillary",
            serde_json::json!([{"name": plugin_api::manifest::HANDLES_PRIOR_UPLOADS,
                                "kind": {"type": "bool"}, "default": "true"}]),
        );
        assert_eq!(already_published(&handles, &options), None);
        let mut off = options.clone();
        off.insert(
            plugin_api::manifest::HANDLES_PRIOR_UPLOADS.into(),
            false.into(),
        );
        assert!(already_published(&handles, &off).is_some());
        options.insert("force".into(), true.into());
        assert_eq!(already_published(&plain, &options), None);
    }
}
