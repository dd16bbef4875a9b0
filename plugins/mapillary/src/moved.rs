//! Photos this state already published, recognised by content wherever they now are (docs/architecture.md,
//! "Identity"). An image's identity is its session key, the BLAKE3 hash of the bytes it sends
//! (`crate::bundle::image_key`): the folder's path is not in those bytes (only the file name, capture time,
//! position and camera are, `crate::exif_rewrite`), so a moved or renamed folder sends the same keys.
//!
//! | key | value |
//! |---|---|
//! | `content/<session key>` | [`PublishedImage`]: the sequence, part and place in the part of a published image |
//!
//! Written when a sequence is published (one batch with the clean-up of its image entries); read once per
//! image of a folder whose first image is found there, else once per new folder.

use std::collections::HashMap;

use futures::StreamExt;
use plugin_api::prelude::*;
use plugin_api::protocol::StateWrite;
use serde::{Deserialize, Serialize};

use crate::error::{MlyError, Result};
use crate::exif_rewrite::prepare;
use crate::outgoing::blake3_hex;
use crate::state::{ImageEntry, PartState, Plan, SequenceStore};

const PREFIX: &str = "content/";

/// Where a published image is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedImage {
    /// The sequence (its id in this state).
    pub sequence: String,
    /// Its part.
    pub part: usize,
    /// Its place in the part's images.
    pub index: usize,
}

fn content_key(session_key: &str) -> String {
    format!("{PREFIX}{session_key}")
}

/// The content entries of sequence `id`'s images, as published in `plan` with the keys `images` holds.
pub fn content_writes(
    id: &str,
    plan: &Plan,
    images: &HashMap<String, ImageEntry>,
) -> Result<Vec<StateWrite>> {
    let mut writes = Vec::new();
    for (part, planned) in plan.parts.iter().enumerate() {
        for (index, path) in planned.images.iter().enumerate() {
            let Some(entry) = images.get(path) else {
                continue;
            };
            let value = PublishedImage {
                sequence: id.to_string(),
                part,
                index,
            };
            writes.push(
                StateWrite::put_json(content_key(&entry.key), &value)
                    .map_err(|err| MlyError::Invalid(format!("cannot encode state: {err}")))?,
            );
        }
    }
    Ok(writes)
}

/// The session key `image` sends under now (its bytes prepared and hashed: one pass over the file).
fn session_key(image: &ImageInfo) -> Result<String> {
    let out = prepare(image)?;
    let hash = blake3_hex(&out).map_err(|cause| MlyError::File {
        path: image.path.clone(),
        cause,
    })?;
    Ok(crate::bundle::image_key(&hash))
}

async fn session_keys(images: Vec<ImageInfo>, jobs: usize) -> Result<Vec<String>> {
    futures::stream::iter(images)
        .map(|image| async move {
            tokio::task::spawn_blocking(move || session_key(&image))
                .await
                .map_err(|err| MlyError::Invalid(format!("a worker thread failed: {err}")))?
        })
        .buffered(jobs.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// A sequence this state published that holds the photos of the folder being uploaded.
#[derive(Debug)]
pub struct Found {
    /// Its id.
    pub sequence: String,
    /// Its plan, its images' paths now those of the folder being uploaded.
    pub plan: Plan,
    /// Its parts.
    pub parts: Vec<PartState>,
}

/// The published sequence, other than `sequence` itself, whose images are `sequence`'s photos (by
/// content), with its plan pointed at where they are now. Costs one hash and one read for a folder whose
/// first photo was never published here; otherwise one hash and one read per photo. `None` unless
/// every part of that sequence has its Mapillary key.
pub async fn find(ctx: &Context, sequence: &SequenceDescriptor, jobs: usize) -> Result<Lookup> {
    let Some(first) = sequence.images.first().cloned() else {
        return Ok(Lookup::New { first_key: None });
    };
    let first_key = session_keys(vec![first], 1).await?.remove(0);
    match find_with(ctx, sequence, jobs, &first_key).await? {
        Some(found) => Ok(Lookup::Found(found)),
        None => Ok(Lookup::New {
            first_key: Some(first_key),
        }),
    }
}

/// What [`find`] found.
#[derive(Debug)]
pub enum Lookup {
    /// The photos are those of a published sequence.
    Found(Found),
    /// They are not (as far as this state knows): the first photo's session key, which the upload can
    /// ask the server about (a state lost after an upload: `crate::upload::Start::Held`).
    New {
        /// The session key of the folder's first photo.
        first_key: Option<String>,
    },
}

async fn find_with(
    ctx: &Context,
    sequence: &SequenceDescriptor,
    jobs: usize,
    first_key: &str,
) -> Result<Option<Found>> {
    let Some(seen) = ctx
        .state()
        .get_json::<PublishedImage>(&content_key(first_key))?
    else {
        return Ok(None);
    };
    if seen.sequence == sequence.id {
        return Ok(None);
    }
    let store = SequenceStore::new(ctx, &seen.sequence);
    let Some(mut plan) = store.plan()? else {
        return Ok(None);
    };
    let parts: Vec<PartState> = (0..plan.parts.len())
        .map(|i| store.part(i))
        .collect::<Result<_>>()?;
    if parts.is_empty() || parts.iter().any(|p| p.sequence_key.is_none()) {
        return Ok(None);
    }
    let keys = session_keys(sequence.images.clone(), jobs).await?;
    let mut placed = 0;
    for (image, key) in sequence.images.iter().zip(&keys) {
        let Some(at) = ctx.state().get_json::<PublishedImage>(&content_key(key))? else {
            continue;
        };
        let slot = plan
            .parts
            .get_mut(at.part)
            .and_then(|p| p.images.get_mut(at.index));
        if let (true, Some(slot)) = (at.sequence == seen.sequence, slot) {
            *slot = image.path.clone();
            placed += 1;
        }
    }
    // Photos of it missing here, or photos added here, are that sequence's changes, reported as such
    // (`crate::changes`); none of them is sent again.
    if placed == 0 {
        return Ok(None);
    }
    store.put_plan(&plan)?;
    Ok(Some(Found {
        sequence: seen.sequence,
        plan,
        parts,
    }))
}

/// Points `plan` (sequence `sequence`'s own, published) at where its photos are now, when some of its
/// paths are no longer in the folder (a moved or renamed folder with the same id, e.g. an MTPDU one):
/// the photos not in the plan are hashed and looked up, and each found under this sequence takes its
/// old slot. Returns the folder the photos were in before, when any moved (the plan is then stored).
pub async fn repath(
    ctx: &Context,
    sequence: &SequenceDescriptor,
    jobs: usize,
    plan: &mut Plan,
) -> Result<Option<String>> {
    let planned: std::collections::HashSet<&str> = plan
        .parts
        .iter()
        .flat_map(|p| p.images.iter().map(String::as_str))
        .collect();
    let now: std::collections::HashSet<&str> =
        sequence.images.iter().map(|i| i.path.as_str()).collect();
    if planned.iter().all(|p| now.contains(p)) {
        return Ok(None);
    }
    let unplanned: Vec<ImageInfo> = sequence
        .images
        .iter()
        .filter(|i| !planned.contains(i.path.as_str()))
        .cloned()
        .collect();
    let keys = session_keys(unplanned.clone(), jobs).await?;
    let mut before = None;
    for (image, key) in unplanned.iter().zip(&keys) {
        let Some(at) = ctx.state().get_json::<PublishedImage>(&content_key(key))? else {
            continue;
        };
        if at.sequence != sequence.id {
            continue;
        }
        let Some(slot) = plan
            .parts
            .get_mut(at.part)
            .and_then(|p| p.images.get_mut(at.index))
        else {
            continue;
        };
        if now.contains(slot.as_str()) {
            continue;
        }
        if before.is_none() {
            before = Some(old_root(slot, &image.path, &sequence.root));
        }
        *slot = image.path.clone();
    }
    if before.is_some() {
        SequenceStore::new(ctx, &sequence.id).put_plan(plan)?;
    }
    Ok(before)
}

/// The folder `old` was in, as `new` is in `root`: `old` without the part of `new` below `root`.
fn old_root(old: &str, new: &str, root: &str) -> String {
    let below = new
        .strip_prefix(root.trim_end_matches(['/', '\\']))
        .unwrap_or("");
    match old.strip_suffix(below) {
        Some(folder) if !below.is_empty() => folder.to_string(),
        _ => std::path::Path::new(old)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::old_root;

    #[test]
    fn the_old_folder_is_the_old_path_without_what_lies_below_the_new_root() {
        assert_eq!(
            old_root(
                "/a/ride/final_raw/1.jpg",
                "/b/ride-2/final_raw/1.jpg",
                "/b/ride-2"
            ),
            "/a/ride"
        );
        assert_eq!(old_root("/a/x/1.jpg", "/b/y/2.jpg", "/b/y"), "/a/x");
    }
}
