//! A sequence changed after it was published: which images were added, removed or changed against what
//! was sent (the stored plan), and the images to send, on request, as an additional Mapillary sequence.
//!
//! Nothing published is ever sent again: published parts cannot be edited on Mapillary through the
//! upload API (a manifest only ever creates a new sequence: mapillary/mapillary_tools
//! `mapillary_tools/uploader.py` has no update call), so added images can only become a sequence of their
//! own. That is what `mtp upload --add-new-images` does; without it the change is reported and nothing
//! is sent.

use std::collections::BTreeMap;

use plugin_api::prelude::*;

use crate::error::Result;
use crate::state::{Plan, SequenceStore};

/// The option (`mtp upload --add-new-images`) that sends the added images as an additional sequence.
pub const ADD_NEW_IMAGES: &str = "add_new_images";

/// What changed since the plan was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Images in the sequence now that were not sent.
    pub added: Vec<String>,
    /// Images sent that are no longer in the sequence.
    pub removed: Vec<String>,
    /// Images sent whose capture time changed since.
    pub changed: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// A sentence for the user.
    pub fn describe(&self) -> String {
        let names = |paths: &[String]| {
            let shown: Vec<&str> = paths
                .iter()
                .take(3)
                .map(|p| p.rsplit(['/', '\\']).next().unwrap_or(p))
                .collect();
            let more = paths.len().saturating_sub(shown.len());
            if more > 0 {
                format!("{} and {more} more", shown.join(", "))
            } else {
                shown.join(", ")
            }
        };
        let mut parts = Vec::new();
        for (what, paths) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !paths.is_empty() {
                parts.push(format!("{} {what} ({})", paths.len(), names(paths)));
            }
        }
        format!(
            "the folder changed since it was published: {}",
            parts.join(", ")
        )
    }
}

/// `sequence` now against `plan`, what was sent.
pub fn diff(plan: &Plan, sequence: &SequenceDescriptor) -> Changes {
    let sent: BTreeMap<&str, i64> = plan
        .parts
        .iter()
        .flat_map(|p| {
            p.images
                .iter()
                .map(String::as_str)
                .zip(p.times.iter().copied())
        })
        .collect();
    let now: BTreeMap<&str, i64> = sequence
        .images
        .iter()
        .map(|i| (i.path.as_str(), i.captured_at_ms))
        .collect();
    Changes {
        added: now
            .keys()
            .filter(|p| !sent.contains_key(*p))
            .map(|p| p.to_string())
            .collect(),
        removed: sent
            .keys()
            .filter(|p| !now.contains_key(*p))
            .map(|p| p.to_string())
            .collect(),
        changed: sent
            .iter()
            .filter(|(p, t)| now.get(*p).is_some_and(|n| n != *t))
            .map(|(p, _)| p.to_string())
            .collect(),
    }
}

/// Whether the user asked to send added images as an additional sequence.
pub fn add_new_images(request: &RunRequest) -> bool {
    request
        .options
        .get(ADD_NEW_IMAGES)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The additional sequence of `added` images: its own id (so its state is its own), derived from the
/// sequence's id and the added images, so a repeated run continues the same one.
pub fn additional_sequence(sequence: &SequenceDescriptor, added: &[String]) -> SequenceDescriptor {
    let digest = md5::compute(added.join("\n").as_bytes());
    let mut extra = sequence.clone();
    extra.id = format!("{}+added-{:x}", sequence.id, digest);
    extra.images.retain(|i| added.contains(&i.path));
    extra
}

/// Adds to the outcome of a published sequence what changed since, and, when asked (or once begun),
/// sends the added images as an additional sequence: its key is `added_sequence_key`.
pub async fn report_or_send(
    ctx: &Context,
    request: &RunRequest,
    plan: &Plan,
    mut outcome: RunOutcome,
) -> Result<RunOutcome> {
    let changes = diff(plan, &request.sequence);
    if changes.is_empty() {
        return Ok(outcome);
    }
    let description = changes.describe();
    let message = outcome.message.take().unwrap_or_default();
    let extra = additional_sequence(&request.sequence, &changes.added);
    let begun = SequenceStore::new(ctx, &extra.id).plan()?.is_some();
    if changes.added.is_empty() || !(add_new_images(request) || begun) {
        outcome.message = Some(format!("{message}; {description}; nothing was sent"));
        outcome.next_action = Some(if changes.added.is_empty() {
            "nothing to do: what was published stays as it is on Mapillary".into()
        } else {
            "mtp upload --add-new-images DIR sends the added images as an additional Mapillary \
             sequence (nothing published is sent again)"
                .into()
        });
        return Ok(outcome);
    }
    let mut sub = request.clone();
    sub.sequence = extra;
    sub.previous = None;
    sub.options.remove(ADD_NEW_IMAGES);
    let run = crate::pipeline::Run::new(ctx, &sub)?;
    let added = Box::pin(run.run()).await?;
    let detail = added.message.clone().unwrap_or_default();
    outcome.message = Some(format!(
        "{message}; {description}; the {} added image(s) as an additional sequence: {}: {detail}",
        changes.added.len(),
        added.state.as_str()
    ));
    if let Some(key) = added.keys.get("sequence_key") {
        outcome
            .keys
            .insert("added_sequence_key".into(), key.clone());
    }
    if added.state != SequenceState::Published {
        outcome.state = added.state;
        outcome.next_action = added.next_action;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PlannedPart;
    use plugin_api::sequence::{BoundingBox, Projection};

    fn image(path: &str, t: i64) -> ImageInfo {
        ImageInfo {
            path: path.into(),
            file_name: path.trim_start_matches('/').into(),
            size_bytes: 1,
            latitude: 52.0,
            longitude: 6.0,
            altitude: None,
            captured_at_ms: t,
            heading: None,
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            sources: None,
        }
    }

    #[test]
    fn added_removed_changed() {
        let plan = Plan {
            digest: "d".into(),
            parts: vec![PlannedPart {
                images: vec!["/a".into(), "/b".into(), "/c".into()],
                times: vec![1, 2, 3],
                bbox: BoundingBox {
                    min_lat: 0.0,
                    min_lon: 0.0,
                    max_lat: 0.0,
                    max_lon: 0.0,
                },
            }],
        };
        let sequence = SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/".into(),
            name: "s".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: Default::default(),
            images: vec![image("/a", 1), image("/b", 5), image("/d", 4)],
        };
        let c = diff(&plan, &sequence);
        assert_eq!(c.added, vec!["/d".to_string()]);
        assert_eq!(c.removed, vec!["/c".to_string()]);
        assert_eq!(c.changed, vec!["/b".to_string()]);
        assert_eq!(
            c.describe(),
            "the folder changed since it was published: 1 added (d), 1 removed (c), 1 changed (b)"
        );
        let extra = additional_sequence(&sequence, &c.added);
        assert_eq!(extra.images.len(), 1);
        assert_ne!(extra.id, sequence.id);
        assert_eq!(extra.id, additional_sequence(&sequence, &c.added).id);
    }
}
