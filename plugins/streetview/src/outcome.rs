//! The records `mtp status` shows.

use std::collections::BTreeMap;

use plugin_api::prelude::*;

use crate::publication::{PUBLISHED, REJECTED};
use crate::state::PhotoRecord;

/// Counts of where the photos stand.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Photos Street View would take.
    pub total: usize,
    /// Held by Google.
    pub held: usize,
    /// Published on Maps.
    pub published: usize,
    /// Rejected by Maps after review.
    pub rejected: usize,
    /// Refused at creation (`INVALID_ARGUMENT`).
    pub refused: usize,
    /// Deleted on Google.
    pub deleted: usize,
    /// Created without an answer, not listed yet.
    pub unknown: usize,
}

/// Counts `photos`.
pub fn tally(photos: &[(String, PhotoRecord)]) -> Tally {
    let mut t = Tally {
        total: photos.len(),
        ..Tally::default()
    };
    for (_, r) in photos {
        if r.refused.is_some() {
            t.refused += 1;
        } else if r.deleted {
            t.deleted += 1;
        } else if r.photo_id.is_some() {
            t.held += 1;
            match r.publish_status.as_deref() {
                Some(PUBLISHED) => t.published += 1,
                Some(REJECTED) => t.rejected += 1,
                _ => {}
            }
        } else if r.create_sent_ms.is_some() {
            t.unknown += 1;
        }
    }
    t
}

/// Google's share link of every photo it holds.
fn links(photos: &[(String, PhotoRecord)]) -> Vec<Link> {
    photos
        .iter()
        .filter(|(_, r)| !r.deleted && r.photo_id.is_some())
        .filter_map(|(name, r)| {
            let url = r.share_link.as_ref()?;
            Some(Link::new(format!("{name} on Google Maps"), url.clone()))
        })
        .collect()
}

fn keys(photos: &[(String, PhotoRecord)]) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for (name, r) in photos {
        if let (Some(id), false) = (&r.photo_id, r.deleted) {
            // The share link names the photo; the id alone when Google gave no link.
            let shown = r.share_link.clone().unwrap_or_else(|| id.clone());
            keys.insert(format!("photo/{name}"), shown);
        }
    }
    keys
}

fn extras(t: &Tally) -> String {
    let mut parts = Vec::new();
    if t.rejected > 0 {
        parts.push(format!(
            "{} rejected by Google's review (REJECTED_UNKNOWN)",
            t.rejected
        ));
    }
    if t.refused > 0 {
        parts.push(format!(
            "{} refused as not 360° (INVALID_ARGUMENT)",
            t.refused
        ));
    }
    if t.deleted > 0 {
        parts.push(format!("{} deleted on Google", t.deleted));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

/// Where the sequence stands, from its records.
pub fn from_records(photos: &[(String, PhotoRecord)]) -> RunOutcome {
    let t = tally(photos);
    let settled = t.held + t.refused + t.deleted;
    let mut outcome = if settled < t.total {
        let mut o = RunOutcome::new(
            SequenceState::Uploading,
            format!(
                "{} of {} photos are on Google Street View{}{}",
                t.held,
                t.total,
                if t.unknown > 0 {
                    format!(
                        "; {} created without an answer, not listed by Google yet",
                        t.unknown
                    )
                } else {
                    String::new()
                },
                extras(&t)
            ),
        );
        o.next_action = Some("run mtp upload again".into());
        o
    } else if t.held == 0 {
        let mut o = RunOutcome::new(
            SequenceState::Failed,
            format!(
                "Google Street View holds none of the {} photos{}",
                t.total,
                extras(&t)
            ),
        );
        o.next_action = Some("check that the photos are 360° equirectangular JPEGs".into());
        o
    } else if t.published + t.rejected < t.held {
        let mut o = RunOutcome::new(
            SequenceState::Unpublished,
            format!(
                "{} photos on Google Street View, {} published on Maps so far, the rest in review{}",
                t.held,
                t.published,
                extras(&t)
            ),
        );
        o.next_action = Some("run mtp status later to see them published".into());
        o
    } else if t.published == 0 {
        RunOutcome::new(
            SequenceState::Failed,
            format!(
                "Google rejected all {} photos after review{}",
                t.held,
                extras(&t)
            ),
        )
    } else {
        RunOutcome::new(
            SequenceState::Published,
            format!(
                "published on Google Street View: {} photos, connected{}",
                t.published,
                extras(&t)
            ),
        )
    };
    outcome.keys = keys(photos);
    outcome.links = links(photos);
    outcome
}

/// The run stopped for the day's quota.
pub fn quota_stop(photos: &[(String, PhotoRecord)], resume_at_ms: i64, why: &str) -> RunOutcome {
    let t = tally(photos);
    let at = plugin_api::time::format_utc(resume_at_ms);
    let mut outcome = RunOutcome::new(
        SequenceState::Uploading,
        format!(
            "stopped for today: {why}; {} of {} photos are on Google Street View; can go on after {at}",
            t.held, t.total
        ),
    );
    outcome.next_action = Some(format!(
        "run mtp upload again after {at}: it sends only what Google does not hold yet"
    ));
    outcome.keys = keys(photos);
    outcome.links = links(photos);
    outcome
}
