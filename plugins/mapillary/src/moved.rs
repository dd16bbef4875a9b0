//! Photos this state already published, recognised by content wherever they now are (docs/architecture.md,
//! "Identity"). An image's identity is its session key, the BLAKE3 hash of the bytes it sends
//! (`crate::bundle::image_key`): the folder's path is not in those bytes (only the file name, capture time,
//! position and camera are, `crate::exif_rewrite`), so a moved or renamed folder sends the same keys.
//!
//! | key | value |
//! |---|---|
//! | `content/<session key>` | [`PublishedImage`]: the sequence, part and place in the part of a published image |
//!
//! Written when a sequence is published (one batch with the clean-up of its image entries), and for a
//! photo found renamed (its key under the new name, so later looks find it by one read); read for the
//! first, middle and last photo of a new folder, and for each photo when one of those is found.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures::StreamExt;
use plugin_api::prelude::*;
use plugin_api::protocol::StateWrite;
use serde::{Deserialize, Serialize};

use crate::error::{MlyError, Result};
use crate::exif_rewrite::prepare;
use crate::outgoing::blake3_hex;
use crate::sequence_images::{SequenceImages, Slot};
use crate::state::{ImageEntry, PartState, Plan, PlannedPart, SequenceStore};

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

/// The content entries of part `part` (`planned`) of sequence `id`, with the keys `images` holds.
pub fn content_writes(
    id: &str,
    part: usize,
    planned: &PlannedPart,
    images: &HashMap<String, ImageEntry>,
) -> Result<Vec<StateWrite>> {
    let mut writes = Vec::new();
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

/// Where each of `images` was published by this state, by content (its session key now): one hash
/// and one read per image.
pub async fn published_as(
    ctx: &Context,
    images: Vec<ImageInfo>,
    jobs: usize,
) -> Result<Vec<Option<PublishedImage>>> {
    let keys = session_keys(images, jobs).await?;
    keys.iter()
        .map(|key| Ok(ctx.state().get_json(&content_key(key))?))
        .collect()
}

/// The session keys of the images `wanted` picks, each with its index in the sequence: hashed a page
/// at a time, so that a page of images is held, not the sequence.
async fn keys_of(
    images: &SequenceImages<'_>,
    mut wanted: impl FnMut(&ImageInfo) -> bool + Send,
    jobs: usize,
) -> Result<Vec<(u64, String)>> {
    let mut keys = Vec::new();
    for page in images.pages() {
        let (from, page) = page?;
        let (at, chosen): (Vec<u64>, Vec<ImageInfo>) = page
            .iter()
            .enumerate()
            .filter(|(_, image)| wanted(image))
            .map(|(i, image)| (from + i as u64, image.clone()))
            .unzip();
        keys.extend(at.into_iter().zip(session_keys(chosen, jobs).await?));
    }
    Ok(keys)
}

/// A sequence this state published that holds the photos of the folder being uploaded.
#[derive(Debug)]
pub struct Found {
    /// Its id.
    pub sequence: String,
    /// Its plan; its images' paths, as stored, are now those of the folder being uploaded.
    pub plan: Plan,
    /// Its parts.
    pub parts: Vec<PartState>,
    /// How many of its photos are here under other file names.
    pub renamed: usize,
}

/// The published sequence, other than `sequence` itself, that holds most of `sequence`'s photos
/// (`images`, by content), with its plan pointed at where they are now. Costs a hash and a read of the
/// first, middle and last photo for a folder none of whose photos was published here; otherwise one
/// hash and one read per photo. (Probing three photos, and choosing by the most photos, keeps a photo
/// copied in from another published folder, or a new one, from deciding what the folder is.) `None`
/// unless every part of that sequence has its Mapillary key.
pub async fn find(
    ctx: &Context,
    sequence: &SequenceDescriptor,
    images: &SequenceImages<'_>,
    jobs: usize,
) -> Result<Lookup> {
    let count = images.len();
    if count == 0 {
        return Ok(Lookup::New { first_key: None });
    }
    let mut probes = vec![0, count / 2, count - 1];
    probes.dedup();
    let probed = probes
        .iter()
        .map(|&i| images.at(i))
        .collect::<Result<Vec<_>>>()?;
    let keys = session_keys(probed, jobs).await?;
    let first_key = keys[0].clone();
    for key in &keys {
        if let Some(found) = find_with(ctx, sequence, images, jobs, key).await? {
            return Ok(Lookup::Found(found));
        }
    }
    Ok(Lookup::New {
        first_key: Some(first_key),
    })
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
    images: &SequenceImages<'_>,
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
    let keys = keys_of(images, |_| true, jobs).await?;
    // The sequence most of the photos were published as (the probed one on a tie).
    let mut owners: HashMap<String, usize> = HashMap::new();
    for (_, key) in &keys {
        if let Some(at) = ctx.state().get_json::<PublishedImage>(&content_key(key))? {
            *owners.entry(at.sequence).or_default() += 1;
        }
    }
    let most = owners.get(&seen.sequence).copied().unwrap_or_default();
    let owner = owners
        .into_iter()
        .filter(|(id, n)| *n > most && *id != sequence.id)
        .max_by_key(|(_, n)| *n)
        .map_or(seen.sequence, |(id, _)| id);
    let store = SequenceStore::new(ctx, &owner);
    let Some(plan) = store.plan()? else {
        return Ok(None);
    };
    let parts: Vec<PartState> = (0..plan.parts.len())
        .map(|i| store.part(i))
        .collect::<Result<_>>()?;
    if parts.is_empty() || parts.iter().any(|p| p.sequence_key.is_none()) {
        return Ok(None);
    }
    let mut missing = images.missing(&plan, |i| store.planned(&plan, i))?;
    let mut slots = Slots::new(&store, &plan);
    let placed = Placing {
        ctx,
        owner: &owner,
        root: &sequence.root,
        images,
        jobs,
    }
    .place(&mut slots, &mut missing, &keys)
    .await?;
    // Photos of it missing here, or photos added here, are that sequence's changes, reported as such
    // (`crate::changes`); none of them is sent again.
    if placed.placed == 0 {
        return Ok(None);
    }
    slots.save()?;
    Ok(Some(Found {
        sequence: owner,
        plan,
        parts,
        renamed: placed.renamed,
    }))
}

/// What [`repath`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repathed {
    /// The folder the photos were in before, when the folder moved (or was renamed).
    pub moved_from: Option<String>,
    /// Photos found under another file name than they were sent under (renamed in the folder, e.g. a
    /// generated or camera folder renumbered).
    pub renamed: usize,
    /// Photos found at a new path (renamed or not).
    pub placed: usize,
}

/// Points `plan` (sequence `sequence`'s own, published) at where its photos (`images`) are now, when
/// some of its paths are no longer in the folder (a moved or renamed folder with the same id, e.g. an
/// MTPDU one, or files renamed in it): the photos not in the plan are hashed and looked up, and each
/// found under this sequence takes its old slot. Names are a hint only: a photo sent under another file
/// name has that name in its bytes (`MAPFilename`), so one not found as it is now is hashed again under
/// the old name of a missing slot with its capture time, and takes that slot when the content is the one
/// published there. The plan is stored when anything moved.
pub async fn repath(
    ctx: &Context,
    sequence: &SequenceDescriptor,
    images: &SequenceImages<'_>,
    jobs: usize,
    plan: &Plan,
) -> Result<Repathed> {
    let store = SequenceStore::new(ctx, &sequence.id);
    let mut missing = images.missing(plan, |i| store.planned(plan, i))?;
    if missing.is_empty() {
        return Ok(Repathed::default());
    }
    let keys = {
        // Every planned path, held only when some are missing (a moved or renamed folder).
        let mut planned = HashSet::new();
        for index in 0..plan.parts.len() {
            planned.extend(store.planned(plan, index)?.images);
        }
        keys_of(images, |i| !planned.contains(i.path.as_str()), jobs).await?
    };
    let mut slots = Slots::new(&store, plan);
    let repathed = Placing {
        ctx,
        owner: &sequence.id,
        root: &sequence.root,
        images,
        jobs,
    }
    .place(&mut slots, &mut missing, &keys)
    .await?;
    if repathed.placed > 0 {
        slots.save()?;
    }
    Ok(repathed)
}

/// The parts of a stored plan that placing photos reads or changes, each read from the state when first
/// needed: a folder that moved whole reads them all, one with a few renamed photos only theirs.
struct Slots<'s, 'c> {
    store: &'s SequenceStore<'c>,
    plan: &'s Plan,
    parts: BTreeMap<usize, PlannedPart>,
    changed: BTreeSet<usize>,
}

impl<'s, 'c> Slots<'s, 'c> {
    fn new(store: &'s SequenceStore<'c>, plan: &'s Plan) -> Slots<'s, 'c> {
        Slots {
            store,
            plan,
            parts: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Part `index`, `None` when the plan has none.
    fn part(&mut self, index: usize) -> Result<Option<&mut PlannedPart>> {
        if index >= self.plan.parts.len() {
            return Ok(None);
        }
        if let std::collections::btree_map::Entry::Vacant(entry) = self.parts.entry(index) {
            entry.insert(self.store.planned(self.plan, index)?);
        }
        Ok(self.parts.get_mut(&index))
    }

    /// Stores the parts whose paths changed.
    fn save(&self) -> Result<()> {
        self.store.put_planned(
            self.changed
                .iter()
                .filter_map(|i| self.parts.get(i).map(|p| (*i, p))),
        )
    }
}

/// Puts photos of a folder (its `images`, under `root`) into the slots of a plan of sequence `owner`.
struct Placing<'p, 'i> {
    ctx: &'p Context,
    owner: &'p str,
    root: &'p str,
    images: &'p SequenceImages<'i>,
    jobs: usize,
}

impl Placing<'_, '_> {
    /// Puts each photo of `keyed` (its index in the folder, its session key) that the owner published
    /// into its slot of `plan`, where that slot is `missing` (its path is not in the folder). Names are a
    /// hint only: a photo sent under another file name has that name in its bytes (`MAPFilename`), so
    /// one not found as it is now is hashed again under the old name of each such slot with its capture
    /// time, and takes the slot whose content that is. The folder is read a page at a time.
    async fn place(
        &self,
        plan: &mut Slots<'_, '_>,
        missing: &mut HashSet<Slot>,
        keyed: &[(u64, String)],
    ) -> Result<Repathed> {
        let mut repathed = Repathed::default();
        let mut unplaced: Vec<(u64, &str)> = Vec::new();
        let mut next = keyed.iter().peekable();
        for page in self.images.pages() {
            if next.peek().is_none() {
                break;
            }
            let (from, page) = page?;
            let end = from + page.len() as u64;
            while let Some((at, key)) = next.next_if(|(at, _)| *at < end) {
                let Some(image) = at.checked_sub(from).and_then(|i| page.get(i as usize)) else {
                    continue;
                };
                let found = self
                    .ctx
                    .state()
                    .get_json::<PublishedImage>(&content_key(key))?;
                let taken = match found.filter(|at| at.sequence == self.owner) {
                    Some(at) => self.take_slot(plan, &at, &image.path, missing, &mut repathed)?,
                    None => false,
                };
                if !taken {
                    unplaced.push((*at, key.as_str()));
                }
            }
        }
        // The slots whose photo is not at its path, by capture time, with the name each was sent
        // under: where a renamed photo was.
        let mut by_time: HashMap<i64, Vec<(Slot, String)>> = HashMap::new();
        let mut slots: Vec<Slot> = missing.iter().copied().collect();
        slots.sort_unstable();
        for (part, index) in slots {
            let Some(planned) = plan.part(part)? else {
                continue;
            };
            if let Some(path) = planned.images.get(index) {
                let time = planned.times.get(index).copied().unwrap_or_default();
                let name = file_name(path).to_string();
                by_time.entry(time).or_default().push(((part, index), name));
            }
        }
        if by_time.is_empty() {
            return Ok(repathed);
        }
        let mut writes = Vec::new();
        let mut next = unplaced.iter().peekable();
        for page in self.images.pages() {
            if next.peek().is_none() {
                break;
            }
            let (from, page) = page?;
            let end = from + page.len() as u64;
            let mut guesses = Vec::new();
            let mut slots = Vec::new();
            while let Some(&(at, now_key)) = next.next_if(|(at, _)| *at < end) {
                let Some(image) = at.checked_sub(from).and_then(|i| page.get(i as usize)) else {
                    continue;
                };
                for ((part, index), name) in
                    by_time.get(&image.captured_at_ms).into_iter().flatten()
                {
                    let mut named = image.clone();
                    named.file_name = name.clone();
                    let slot = PublishedImage {
                        sequence: self.owner.to_string(),
                        part: *part,
                        index: *index,
                    };
                    slots.push((slot, now_key, image.path.clone()));
                    guesses.push(named);
                }
            }
            if guesses.is_empty() {
                continue;
            }
            let keys = session_keys(guesses, self.jobs).await?;
            for ((slot, now_key, path), key) in slots.iter().zip(&keys) {
                let at = self
                    .ctx
                    .state()
                    .get_json::<PublishedImage>(&content_key(key))?;
                if at.as_ref() == Some(slot)
                    && self.take_slot(plan, slot, path, missing, &mut repathed)?
                {
                    // Found under its new name from now on, by one read like any other photo (a later
                    // move that also gives the folder a new id, say).
                    writes.push(
                        StateWrite::put_json(content_key(now_key), slot).map_err(|err| {
                            MlyError::Invalid(format!("cannot encode state: {err}"))
                        })?,
                    );
                }
            }
        }
        if !writes.is_empty() {
            self.ctx.state().write_all(&writes)?;
        }
        Ok(repathed)
    }

    /// Puts `path` in the slot `at` of `plan` when the photo there is no longer at its planned path
    /// (the slot is `missing`), and notes how it moved. `false` when the slot is not there or still
    /// holds a photo of the folder.
    fn take_slot(
        &self,
        plan: &mut Slots<'_, '_>,
        at: &PublishedImage,
        path: &str,
        missing: &mut HashSet<Slot>,
        repathed: &mut Repathed,
    ) -> Result<bool> {
        let Some(slot) = plan.part(at.part)?.and_then(|p| p.images.get_mut(at.index)) else {
            return Ok(false);
        };
        if slot == path {
            // Already there (the folder's id changed, e.g. a photo from elsewhere came in).
            repathed.placed += 1;
            return Ok(true);
        }
        if !missing.remove(&(at.part, at.index)) {
            return Ok(false);
        }
        if file_name(slot) != file_name(path) {
            repathed.renamed += 1;
        }
        let before = old_root(slot, path, self.root);
        if repathed.moved_from.is_none() && before != self.root.trim_end_matches(['/', '\\']) {
            repathed.moved_from = Some(before);
        }
        *slot = path.to_string();
        plan.changed.insert(at.part);
        repathed.placed += 1;
        Ok(true)
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The folder `old` was in, as `new` is in `root`: `old` without the part of `new` below `root` (but for
/// the file name, when it was renamed too).
fn old_root(old: &str, new: &str, root: &str) -> String {
    let root = root.trim_end_matches(['/', '\\']);
    let below = new.strip_prefix(root).unwrap_or("");
    if let Some(folder) = old.strip_suffix(below).filter(|_| !below.is_empty()) {
        return folder.to_string();
    }
    let parent = |p: &str| {
        std::path::Path::new(p)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    };
    let old_dir = parent(old);
    let below_dir = parent(new);
    let below_dir = below_dir.strip_prefix(root).unwrap_or("");
    old_dir
        .strip_suffix(below_dir)
        .map_or_else(|| old_dir.clone(), str::to_string)
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
        // Renamed in place: the folder is the root itself.
        assert_eq!(old_root("/b/y/1.jpg", "/b/y/2.jpg", "/b/y"), "/b/y");
        assert_eq!(
            old_root("/a/x/final_raw/1.jpg", "/b/y/final_raw/2.jpg", "/b/y"),
            "/a/x"
        );
    }
}
