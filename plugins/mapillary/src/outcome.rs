//! The sequence's record, from the state of its parts: one place that decides what `mtp status` shows.

use std::time::Duration;

use plugin_api::prelude::*;

use crate::overdue::{self, human_span};
use crate::state::{PartState, Publish};
use plugin_api::time::format_utc as format_ms;

/// One part as the summary sees it.
#[derive(Debug, Clone)]
pub struct PartView<'a> {
    /// Index in the plan (0-based).
    pub index: usize,
    /// Images in it.
    pub images: usize,
    /// First capture time (Unix ms).
    pub first_ms: i64,
    /// Last capture time (Unix ms).
    pub last_ms: i64,
    /// Its state.
    pub state: &'a PartState,
}

/// What the summary decided.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The record.
    pub outcome: RunOutcome,
}

/// The next action of a sequence with an overdue part.
pub const OVERDUE_ACTION: &str = "wait: mtp upload and mtp status keep looking for it (hourly, then \
     daily); if it never shows up on Mapillary, run mtp upload --republish (it looks once more, then \
     publishes it again)";

/// `72 h`, `5 min`, `3 s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

impl PartView<'_> {
    fn label(&self, parts: usize) -> String {
        if parts == 1 {
            format!("{} images", self.images)
        } else {
            format!(
                "part {} ({} images, {} – {})",
                self.index + 1,
                self.images,
                format_ms(self.first_ms),
                format_ms(self.last_ms)
            )
        }
    }
}

/// The public page of sequence `key`, in the web app's share-link form (`?pKey=` opens the sequence's
/// first image; the same form mapillary.com's Share button gives).
pub fn share_link(key: &str) -> String {
    format!("https://www.mapillary.com/app/?pKey={key}")
}

/// The next action of a sequence whose publication outcome is unknown.
pub const REPUBLISH_ACTION: &str =
    "check Mapillary, then run mtp upload --republish if it did not go through";

/// Decides the record from the parts, at time `now_ms`.
pub fn summarize(
    parts: &[PartView<'_>],
    now_ms: i64,
    deadline: Duration,
    progress: Option<Progress>,
) -> Summary {
    let n = parts.len();
    let deadline_ms = i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX);
    let within = human_duration(deadline);
    let mut not_sent = Vec::new();
    let mut unknown = Vec::new();
    let mut overdue = Vec::new();
    let mut ambiguous_late = Vec::new();
    let mut waiting = Vec::new();
    let mut found = Vec::new();
    for part in parts {
        match (&part.state.publish, &part.state.sequence_key) {
            (_, Some(key)) => found.push((part, key.clone())),
            (Publish::NotSent, None) => not_sent.push(part),
            (Publish::OutcomeUnknown { why, .. }, None) => unknown.push((part, why.clone())),
            (Publish::Published { at_ms, .. }, None) => {
                let late = now_ms.saturating_sub(*at_ms) > deadline_ms;
                match (late, part.state.ambiguous.is_empty()) {
                    (true, true) => overdue.push((part, now_ms.saturating_sub(*at_ms))),
                    (true, false) => ambiguous_late.push(part),
                    (false, _) => waiting.push(part),
                }
            }
        }
    }
    let found_text = || -> Vec<String> {
        found
            .iter()
            .map(|(p, key)| format!("{}: published as {key}", p.label(n)))
            .collect()
    };
    let ambiguity = |p: &PartView<'_>| {
        format!(
            "{}: several of your Mapillary sequences match it equally well ({}); not guessed",
            p.label(n),
            p.state.ambiguous.join(", ")
        )
    };
    let with_details = |head: String, details: Vec<String>| {
        if details.is_empty() {
            head
        } else {
            format!("{head}; {}", details.join("; "))
        }
    };
    let mut outcome = if !not_sent.is_empty() {
        let mut o = RunOutcome::new(
            SequenceState::Uploading,
            format!("{} of {n} part(s) not published yet", not_sent.len()),
        );
        o.next_action = Some("run mtp upload again".into());
        o
    } else if !unknown.is_empty() {
        let mut details: Vec<String> = unknown
            .iter()
            .map(|(p, why)| {
                format!(
                    "{}: Mapillary may or may not have received it{}",
                    p.label(n),
                    why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
                )
            })
            .collect();
        details.extend(found_text());
        let mut o = RunOutcome::new(
            SequenceState::Unknown,
            with_details("the outcome of publishing is unknown".into(), details),
        );
        o.next_action = Some(REPUBLISH_ACTION.into());
        o
    } else if !overdue.is_empty() {
        // Not a failure: Mapillary accepted it and may still show it (a re-publish could duplicate it).
        let mut details: Vec<String> = overdue
            .iter()
            .map(|(p, waited)| {
                let next = overdue::next_lookup_ms(p.state, now_ms, deadline)
                    .map(|at| format!("; next look after {}", format_ms(at.max(now_ms))))
                    .unwrap_or_default();
                format!(
                    "{}: overdue, waiting {} since it was published (Mapillary usually takes up to \
                     {within}); looked {} time(s){next}",
                    p.label(n),
                    human_span(Duration::from_millis(waited.unsigned_abs())),
                    p.state.lookups
                )
            })
            .collect();
        details.extend(found_text());
        let mut o = RunOutcome::new(
            SequenceState::Unpublished,
            with_details(
                "Mapillary accepted the upload but has not shown it yet".into(),
                details,
            ),
        );
        o.next_action = Some(OVERDUE_ACTION.into());
        o
    } else if !ambiguous_late.is_empty() {
        let mut details: Vec<String> = ambiguous_late.iter().map(|p| ambiguity(p)).collect();
        details.extend(found_text());
        let mut o = RunOutcome::new(
            SequenceState::Unknown,
            with_details(
                "published, but which Mapillary sequence is ours is unclear".into(),
                details,
            ),
        );
        o.next_action = Some("check your sequences on Mapillary".into());
        o
    } else if !waiting.is_empty() {
        let mut details: Vec<String> = waiting
            .iter()
            .filter(|p| !p.state.ambiguous.is_empty())
            .map(|p| ambiguity(p))
            .collect();
        details.extend(found_text());
        // Every waiting part matches several sequences equally well: nothing is being processed that
        // could settle it, the user's copies on Mapillary must (`crate::prepublish`: found twice).
        let only_ambiguous = waiting.iter().all(|p| !p.state.ambiguous.is_empty());
        let head = if only_ambiguous {
            "which of your Mapillary sequences is this one is unclear; re-checked on every mtp upload/status".to_string()
        } else {
            format!(
                "Mapillary is still processing; re-checked on every mtp upload/status, up to {within}"
            )
        };
        let mut o = RunOutcome::new(SequenceState::Unpublished, with_details(head, details));
        o.next_action = Some(if only_ambiguous {
            "check your sequences on Mapillary (delete extra copies of these photos), then run mtp status".into()
        } else {
            "wait: mtp upload and mtp status re-check it".into()
        });
        o
    } else {
        let keys: Vec<String> = found.iter().map(|(_, k)| k.clone()).collect();
        let message = if n == 1 {
            format!("published as Mapillary sequence {}", keys.join(","))
        } else {
            format!(
                "published as {n} Mapillary sequences: {}",
                found_text().join("; ")
            )
        };
        let mut o = RunOutcome::new(SequenceState::Published, message);
        o.keys.insert("sequence_key".into(), keys.join(","));
        o.exports.insert("sequence_key".into(), keys.join(","));
        // The user's token reaches MTPW from the secret store (`secret_exports`), never in an outcome.
        o.links = found
            .iter()
            .map(|(_, key)| Link::new(format!("sequence {key} on Mapillary"), share_link(key)))
            .collect();
        o
    };
    outcome.progress = progress;
    Summary { outcome }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(72 * 3600);

    fn published(at_ms: i64, key: Option<&str>) -> PartState {
        PartState {
            publish: Publish::Published {
                at_ms,
                cluster_id: "c".into(),
            },
            sequence_key: key.map(str::to_string),
            ..PartState::default()
        }
    }

    fn view(index: usize, state: &PartState) -> PartView<'_> {
        PartView {
            index,
            images: 3,
            first_ms: 0,
            last_ms: 2000,
            state,
        }
    }

    #[test]
    fn published_parts_give_comma_separated_keys_and_exports() {
        let (a, b) = (published(0, Some("k1")), published(0, Some("k2")));
        let s = summarize(&[view(0, &a), view(1, &b)], 1, H, None);
        assert_eq!(s.outcome.state, SequenceState::Published);
        assert_eq!(s.outcome.keys["sequence_key"], "k1,k2");
        assert!(!s.outcome.exports.contains_key("user_token"));
        assert_eq!(
            s.outcome.links,
            [
                Link::new(
                    "sequence k1 on Mapillary",
                    "https://www.mapillary.com/app/?pKey=k1"
                ),
                Link::new(
                    "sequence k2 on Mapillary",
                    "https://www.mapillary.com/app/?pKey=k2"
                ),
            ]
        );
        let message = s.outcome.message.unwrap();
        assert!(
            message.contains("part 2") && !message.contains("tok"),
            "{message}"
        );
    }

    #[test]
    fn waiting_then_overdue_after_the_deadline() {
        let mut a = published(1000, None);
        let s = summarize(&[view(0, &a)], 2000, H, None);
        assert_eq!(s.outcome.state, SequenceState::Unpublished);
        assert!(s.outcome.message.unwrap().contains("up to 72 h"));
        assert!(s.outcome.exports.is_empty());
        // 80 h after publishing, looked 3 times, the last one just now.
        let late = 1000 + 80 * 3600 * 1000;
        a.lookups = 3;
        a.last_lookup_ms = Some(late);
        let s = summarize(&[view(0, &a)], late, H, None);
        assert_eq!(s.outcome.state, SequenceState::Unpublished);
        assert_eq!(
            s.outcome.message.as_deref(),
            Some(
                "Mapillary accepted the upload but has not shown it yet; 3 images: overdue, waiting \
                 3 days 8 h since it was published (Mapillary usually takes up to 72 h); looked 3 \
                 time(s); next look after 1970-01-04T09:00:01.000Z"
            )
        );
        assert_eq!(s.outcome.next_action.as_deref(), Some(OVERDUE_ACTION));
    }

    #[test]
    fn unknown_and_ambiguous() {
        let unknown = PartState {
            publish: Publish::OutcomeUnknown {
                since_ms: 0,
                why: Some("HTTP 500".into()),
            },
            ..PartState::default()
        };
        let s = summarize(&[view(0, &unknown)], 1, H, None);
        assert_eq!(s.outcome.state, SequenceState::Unknown);
        assert_eq!(s.outcome.next_action.as_deref(), Some(REPUBLISH_ACTION));
        assert!(s.outcome.message.unwrap().contains("HTTP 500"));

        let mut ambiguous = published(0, None);
        ambiguous.ambiguous = vec!["a".into(), "b".into()];
        let s = summarize(&[view(0, &ambiguous)], 1, H, None);
        assert_eq!(s.outcome.state, SequenceState::Unpublished);
        let message = s.outcome.message.unwrap();
        assert!(message.contains("(a, b)"), "{message}");
        // Not "still processing": only the user's copies on Mapillary can settle it.
        assert!(
            message.starts_with("which of your Mapillary sequences"),
            "{message}"
        );
        assert!(s
            .outcome
            .next_action
            .unwrap()
            .contains("delete extra copies"));
        let s = summarize(&[view(0, &ambiguous)], i64::MAX, H, None);
        assert_eq!(s.outcome.state, SequenceState::Unknown);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(H), "72 h");
        assert_eq!(human_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 s");
    }
}
