//! A sequence changed after it was published: which images were added, removed or changed against what
//! was sent (the stored plan), and the images to send, on request, as an additional Mapillary sequence.
//!
//! Nothing published is ever sent again: published parts cannot be edited on Mapillary through the
//! upload API (a manifest only ever creates a new sequence: mapillary/mapillary_tools
//! `mapillary_tools/uploader.py` has no update call), so added images can only become a sequence of their
//! own. That is what `mtp upload --add-new-images` does; without it the change is reported and nothing
//! is sent (the sending is `crate::pipeline`'s, which alone starts runs). Paths are a hint only (docs/architecture.md, "Identity"): a photo renamed or moved in the
//! folder takes its old place (`crate::moved::repath`), and an added photo whose content this state
//! already published (a copy from another folder, or this sequence's additional sequence) is not new.
//!
//! | key | value |
//! |---|---|
//! | `seq/<id>/additional` | the ids of sequence `id`'s additional sequences, in the order they were begun |

use std::collections::{BTreeSet, HashMap, HashSet};

use plugin_api::prelude::*;

use crate::error::Result;
use crate::moved::Repathed;
use crate::sequence_images::SequenceImages;
use crate::state::{PartState, Plan, PlannedPart, SequenceStore};

/// The option (`mtp upload --add-new-images`) that sends the added images as an additional sequence.
pub const ADD_NEW_IMAGES: &str = "add_new_images";

/// The export (and key) naming the Mapillary keys of a sequence's additional sequences, comma-separated.
pub const ADDED_SEQUENCE_KEY: &str = "added_sequence_key";

/// What changed since the plan was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Images in the sequence now that were not sent, and whose content is not published here.
    pub added: Vec<String>,
    /// Images sent that are no longer in the sequence.
    pub removed: Vec<String>,
    /// Images sent whose capture time changed since.
    pub changed: Vec<String>,
    /// Images added whose content this state already published as another sequence (copied in), with
    /// that sequence's Mapillary key(s).
    pub copies: Vec<(String, String)>,
}

fn names(paths: &[&str]) -> String {
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
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.copies.is_empty()
    }

    /// A sentence for the user.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, paths) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !paths.is_empty() {
                let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
                parts.push(format!("{} {what} ({})", paths.len(), names(&paths)));
            }
        }
        let mut text = String::new();
        if !parts.is_empty() {
            text = format!(
                "the folder changed since it was published: {}",
                parts.join(", ")
            );
        }
        if !self.copies.is_empty() {
            let keys: BTreeSet<&str> = self.copies.iter().map(|(_, k)| k.as_str()).collect();
            let paths: Vec<&str> = self.copies.iter().map(|(p, _)| p.as_str()).collect();
            let copies = format!(
                "the {} added image(s) ({}) are already published (as sequence {})",
                paths.len(),
                names(&paths),
                keys.into_iter().collect::<Vec<_>>().join(", ")
            );
            text = if text.is_empty() {
                copies
            } else {
                format!("{text}; {copies}")
            };
        }
        text
    }
}

/// The sequence now (`images`, read a page at a time) against `plan`, what was sent, by path (its part
/// `n` being `load(n)`). A part still where it was planned is compared in place, so only the paths of
/// the parts that are not (and of the images added) are held: nothing of an unchanged sequence.
pub fn diff(
    plan: &Plan,
    images: &SequenceImages<'_>,
    mut load: impl FnMut(usize) -> Result<PlannedPart>,
) -> Result<Changes> {
    let mut changed = BTreeSet::new();
    // The ranges of the sequence holding a part where it was planned, in order.
    let mut in_place: Vec<(u64, u64)> = Vec::new();
    // The paths (and times) of the other parts' images, until the sequence shows them.
    let mut elsewhere: HashMap<String, i64> = HashMap::new();
    for index in 0..plan.parts.len() {
        let part = load(index)?;
        match images.times_in_place(&part)? {
            Some(now) => {
                for ((path, sent), now) in part.images.iter().zip(&part.times).zip(now) {
                    if *sent != now {
                        changed.insert(path.clone());
                    }
                }
                in_place.push((part.start, part.start + part.images.len() as u64));
            }
            None => elsewhere.extend(part.images.into_iter().zip(part.times)),
        }
    }
    let planned_here = |at: u64| {
        let after = in_place.partition_point(|&(start, _)| start <= at);
        after > 0 && at < in_place[after - 1].1
    };
    let mut added = BTreeSet::new();
    images.for_each(|at, image| {
        if planned_here(at) {
            return Ok(());
        }
        match elsewhere.remove(image.path.as_str()) {
            Some(sent) if sent != image.captured_at_ms => {
                changed.insert(image.path.clone());
            }
            Some(_) => {}
            None => {
                added.insert(image.path.clone());
            }
        }
        Ok(())
    })?;
    let removed: BTreeSet<String> = elsewhere.into_keys().collect();
    Ok(Changes {
        added: added.into_iter().collect(),
        removed: removed.into_iter().collect(),
        changed: changed.into_iter().collect(),
        copies: Vec::new(),
    })
}

/// The sentence for photos of a published sequence found at new paths (`crate::moved::repath`), or
/// `None` when none moved.
pub fn describe_repathed(repathed: &Repathed, parts: &[PartState]) -> Option<String> {
    let keys = keys_of(parts)?;
    let renamed = repathed.renamed;
    match &repathed.moved_from {
        Some(before) if renamed > 0 => Some(format!(
            "moved from {before} ({renamed} photo(s) under new file names): the same photos, already \
             published as {keys}; nothing sent"
        )),
        Some(before) => Some(format!(
            "moved from {before}: already published as {keys}; nothing sent"
        )),
        None if renamed > 0 => Some(format!(
            "{renamed} photo(s) renamed in the folder since: the same photos, already published as \
             {keys}; nothing sent"
        )),
        None => None,
    }
}

/// The Mapillary keys of `parts`, comma-separated; `None` while one has none.
fn keys_of(parts: &[PartState]) -> Option<String> {
    let keys: Option<Vec<&str>> = parts.iter().map(|p| p.sequence_key.as_deref()).collect();
    keys.filter(|k| !k.is_empty()).map(|k| k.join(", "))
}

/// Whether the user asked to send added images as an additional sequence.
pub fn add_new_images(request: &RunRequest) -> bool {
    request
        .options
        .get(ADD_NEW_IMAGES)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The id of sequence `id`'s additional sequence of `added` images: its own (so its state is its own),
/// derived from the sequence's id and the added images, so a repeated run continues the same one.
pub fn additional_id(id: &str, added: &[String]) -> String {
    let digest = md5::compute(added.join("\n").as_bytes());
    format!("{id}+added-{digest:x}")
}

/// The additional sequence ([`additional_id`]) of the `added` images of `sequence` (whose images are
/// `images`; its id is `id`): its header, with the added images only.
pub fn additional_sequence(
    id: &str,
    sequence: &SequenceDescriptor,
    images: &SequenceImages<'_>,
    added: &[String],
) -> Result<SequenceDescriptor> {
    let wanted: HashSet<&str> = added.iter().map(String::as_str).collect();
    let mut extra = sequence.header();
    extra.id = additional_id(id, added);
    extra.images = images.select(|i| wanted.contains(i.path.as_str()))?;
    Ok(extra)
}

fn additional_key(id: &str) -> String {
    format!("seq/{id}/additional")
}

/// The ids of sequence `id`'s additional sequences.
fn additional_ids(ctx: &Context, id: &str) -> Result<Vec<String>> {
    Ok(ctx
        .state()
        .get_json(&additional_key(id))?
        .unwrap_or_default())
}

/// Remembers `extra` as an additional sequence of `id` (once).
pub fn remember_additional(ctx: &Context, id: &str, extra: &str) -> Result<Vec<String>> {
    let mut ids = additional_ids(ctx, id)?;
    if !ids.iter().any(|i| i == extra) {
        ids.push(extra.to_string());
        ctx.state().put_json(&additional_key(id), &ids)?;
    }
    Ok(ids)
}

/// The Mapillary keys of the published sequence `id` (its parts'), if every part has one.
fn published_keys(ctx: &Context, id: &str) -> Result<Option<String>> {
    let store = SequenceStore::new(ctx, id);
    let Some(plan) = store.plan()? else {
        return Ok(None);
    };
    let parts: Vec<PartState> = (0..plan.parts.len())
        .map(|i| store.part(i))
        .collect::<Result<_>>()?;
    Ok(keys_of(&parts))
}

/// `changes` (by path) with each added image looked up by content: one this state published as one of
/// sequence `id`'s additional sequences is part of it now (its id is remembered, if it was not), one
/// published as another sequence is a copy; the rest are new. One hash and one read per added image.
pub async fn by_content(
    ctx: &Context,
    id: &str,
    mut changes: Changes,
    images: &SequenceImages<'_>,
    jobs: usize,
) -> Result<Changes> {
    if changes.added.is_empty() {
        return Ok(changes);
    }
    let added: BTreeSet<&str> = changes.added.iter().map(String::as_str).collect();
    let images = images.select(|i| added.contains(i.path.as_str()))?;
    let found = crate::moved::published_as(ctx, images.clone(), jobs).await?;
    let own = format!("{id}+added-");
    let mut new = Vec::new();
    for (image, at) in images.into_iter().zip(found) {
        match at {
            Some(at) if at.sequence.starts_with(&own) => {
                // Sent by an earlier `--add-new-images` (also by a version that kept no list of them).
                remember_additional(ctx, id, &at.sequence)?;
            }
            Some(at) => {
                let keys = published_keys(ctx, &at.sequence)?.unwrap_or(at.sequence);
                changes.copies.push((image.path, keys));
            }
            None => new.push(image.path),
        }
    }
    changes.added = new;
    Ok(changes)
}

/// Puts the keys of sequence `id`'s published additional sequences in `outcome` (key and export
/// [`ADDED_SEQUENCE_KEY`]), for the record and for the integrations chained after (MTPW syncs them).
pub fn export_additional(ctx: &Context, id: &str, outcome: &mut RunOutcome) -> Result<()> {
    let mut keys = Vec::new();
    for extra in additional_ids(ctx, id)? {
        keys.extend(published_keys(ctx, &extra)?);
    }
    if !keys.is_empty() {
        let keys = keys.join(",");
        outcome.keys.insert(ADDED_SEQUENCE_KEY.into(), keys.clone());
        outcome.exports.insert(ADDED_SEQUENCE_KEY.into(), keys);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PartPlan;
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
        let planned = PlannedPart {
            start: 0,
            images: vec!["/a".into(), "/b".into(), "/c".into()],
            times: vec![1, 2, 3],
            bbox: BoundingBox {
                min_lat: 0.0,
                min_lon: 0.0,
                max_lat: 0.0,
                max_lon: 0.0,
            },
        };
        let plan = Plan {
            digest: "d".into(),
            parts: vec![PartPlan::of(&planned)],
        };
        let load = |_| Ok(planned.clone());
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
        let images = SequenceImages::new(Images::whole(&sequence.images));
        let c = diff(&plan, &images, load).unwrap();
        assert_eq!(c.added, vec!["/d".to_string()]);
        assert_eq!(c.removed, vec!["/c".to_string()]);
        assert_eq!(c.changed, vec!["/b".to_string()]);
        assert_eq!(
            c.describe(),
            "the folder changed since it was published: 1 added (d), 1 removed (c), 1 changed (b)"
        );
        let extra = additional_sequence("s", &sequence, &images, &c.added).unwrap();
        assert_eq!(extra.images.len(), 1);
        assert_eq!(extra.images[0].path, "/d");
        assert_ne!(extra.id, sequence.id);
        assert_eq!(extra.id, additional_id("s", &c.added));
    }

    /// A part still where it was planned is compared in place; only the others are looked for.
    #[test]
    fn parts_in_place_and_moved_are_compared_alike() {
        let part = |start, images: &[&str], times: &[i64]| PlannedPart {
            start,
            images: images.iter().map(|p| p.to_string()).collect(),
            times: times.to_vec(),
            bbox: BoundingBox {
                min_lat: 0.0,
                min_lon: 0.0,
                max_lat: 0.0,
                max_lon: 0.0,
            },
        };
        let planned = [
            part(0, &["/a", "/b"], &[1, 2]),
            part(2, &["/c", "/d"], &[3, 4]),
        ];
        let plan = Plan {
            digest: "d".into(),
            parts: planned.iter().map(PartPlan::of).collect(),
        };
        let now = [
            image("/a", 1),
            image("/b", 7),
            image("/x", 5),
            image("/c", 3),
        ];
        let images = SequenceImages::new(Images::whole(&now));
        let c = diff(&plan, &images, |i| Ok(planned[i].clone())).unwrap();
        assert_eq!(c.added, ["/x"]);
        assert_eq!(c.removed, ["/d"]);
        assert_eq!(c.changed, ["/b"]);
    }

    #[test]
    fn copies_and_renames_are_said_apart_from_what_is_new() {
        let copies = Changes {
            copies: vec![("/w/IMG_5.jpg".into(), "K1".into())],
            ..Changes::default()
        };
        assert!(!copies.is_empty());
        assert_eq!(
            copies.describe(),
            "the 1 added image(s) (IMG_5.jpg) are already published (as sequence K1)"
        );
        let part = PartState {
            sequence_key: Some("K".into()),
            ..PartState::default()
        };
        let renamed = Repathed {
            renamed: 4,
            placed: 4,
            moved_from: None,
        };
        assert_eq!(
            describe_repathed(&renamed, std::slice::from_ref(&part)).as_deref(),
            Some(
                "4 photo(s) renamed in the folder since: the same photos, already published as K; \
                 nothing sent"
            )
        );
        let moved = Repathed {
            moved_from: Some("/old".into()),
            renamed: 0,
            placed: 4,
        };
        assert_eq!(
            describe_repathed(&moved, &[part]).as_deref(),
            Some("moved from /old: already published as K; nothing sent")
        );
        assert_eq!(describe_repathed(&Repathed::default(), &[]), None);
    }
}
