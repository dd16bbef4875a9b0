//! Completeness checks over a [`MapillaryStats`] snapshot, shared by the end-to-end tests and the
//! benchmarks. Test instrumentation: they read what the fake recorded and change nothing it does.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{EntityKind, MapillaryStats};

/// What a snapshot shows was received and published.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Received {
    /// Complete image entities.
    pub images: usize,
    /// Image entities that received more body bytes than they hold (some sent twice).
    pub images_with_extra_bytes: usize,
    /// Image entities finished more than once by an empty `POST` at their full offset (a client
    /// fetching the handle of an entity completed just before it was killed; no bytes sent again).
    pub images_refinished: usize,
    /// `finish_upload` calls, over all manifests.
    pub finish_calls: u32,
    /// Distinct manifests published.
    pub manifests_published: usize,
    /// Images in the published (uploaded) sequences.
    pub published_images: usize,
    /// Distinct upload entities among them.
    pub published_distinct: usize,
    /// Largest complete image entity, bytes.
    pub largest_image: u64,
}

/// Why a snapshot is not "everything once".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload(pub String);

impl std::fmt::Display for IncompleteUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IncompleteUpload {}

fn fail<T>(message: String) -> Result<T, IncompleteUpload> {
    Err(IncompleteUpload(message))
}

impl MapillaryStats {
    /// Counts what the snapshot shows.
    pub fn received(&self) -> Received {
        let images: Vec<_> = self
            .entities
            .values()
            .filter(|e| e.kind == EntityKind::Image && e.completions > 0)
            .collect();
        let published: Vec<&str> = self
            .uploaded_sequences()
            .iter()
            .flat_map(|s| s.images.iter())
            .filter_map(|i| i.entity_key.as_deref())
            .collect();
        let distinct: BTreeSet<&str> = published.iter().copied().collect();
        Received {
            images: images.len(),
            images_with_extra_bytes: images
                .iter()
                .filter(|e| e.bytes_received_total > e.offset)
                .count(),
            images_refinished: images.iter().filter(|e| e.completions > 1).count(),
            finish_calls: self.finish_upload_calls.values().sum(),
            manifests_published: self.finish_upload_calls.len(),
            published_images: published.len(),
            published_distinct: distinct.len(),
            largest_image: images.iter().map(|e| e.offset).max().unwrap_or(0),
        }
    }

    /// Fails unless the fake holds exactly `images` complete image entities and (when `published`)
    /// exactly one `finish_upload`, whose sequence has those images, each once.
    pub fn check_complete(
        &self,
        images: usize,
        published: bool,
    ) -> Result<Received, IncompleteUpload> {
        let got = self.received();
        if got.images != images {
            return fail(format!(
                "the fake holds {} complete images, expected {images}",
                got.images
            ));
        }
        if published {
            self.check_published_exactly_once(images, 1)?;
        }
        Ok(got)
    }

    /// Nothing lost, nothing duplicated, nothing left behind, for `sequences` uploaded sequences
    /// holding `images` images in all:
    /// - exactly `sequences` sequences published from uploads, each from its own manifest, each
    ///   manifest given to `finish_upload` exactly once, none still pending;
    /// - each published sequence holds each of its images exactly once, and no image is in two of them;
    /// - every entity on the upload service is complete (no orphaned partial upload), every image
    ///   entity is in a published sequence and every manifest entity was published.
    pub fn check_published_exactly_once(
        &self,
        images: usize,
        sequences: usize,
    ) -> Result<(), IncompleteUpload> {
        let uploaded = self.uploaded_sequences();
        if uploaded.len() != sequences {
            return fail(format!(
                "{} sequences published from uploads, expected {sequences}",
                uploaded.len()
            ));
        }
        if self.pending_publications != 0 {
            return fail(format!(
                "{} publications still pending",
                self.pending_publications
            ));
        }
        if self.finish_upload_calls.len() != sequences
            || self.finish_upload_calls.values().any(|&n| n != 1)
        {
            return fail(format!(
                "expected one finish_upload for each of {sequences} manifests, the fake saw {:?}",
                self.finish_upload_calls
            ));
        }
        let mut sequence_of_image: BTreeMap<&str, &str> = BTreeMap::new();
        let mut manifests = BTreeSet::new();
        for sequence in &uploaded {
            let manifest = sequence.manifest_handle.as_deref().unwrap_or("");
            if !manifests.insert(manifest) {
                return fail(format!("manifest {manifest:?} published as two sequences"));
            }
            for image in &sequence.images {
                let Some(key) = image.entity_key.as_deref() else {
                    return fail(format!(
                        "sequence {} holds an image without an upload entity",
                        sequence.key
                    ));
                };
                if let Some(other) = sequence_of_image.insert(key, &sequence.key) {
                    return fail(if other == sequence.key {
                        format!("sequence {} holds image {key} twice", sequence.key)
                    } else {
                        format!("image {key} is in sequences {other} and {}", sequence.key)
                    });
                }
            }
        }
        if sequence_of_image.len() != images {
            return fail(format!(
                "the published sequences hold {} images, expected {images}",
                sequence_of_image.len()
            ));
        }
        for (key, entity) in &self.entities {
            match entity.kind {
                EntityKind::Image if !sequence_of_image.contains_key(key.as_str()) => {
                    return fail(format!("image entity {key} is in no published sequence"));
                }
                // A complete manifest that was never published is an abandoned publish attempt (killed
                // before `finish_upload`): every attempt uploads a manifest entity of its own, as
                // mapillary_tools does (`uploader.py`), and Mapillary discards unpublished uploads. What
                // counts is checked above: each image in exactly one published sequence.
                EntityKind::Manifest => {}
                // The same for a manifest whose attempt was killed while sending it: the client names
                // each attempt's manifest afresh (`uuid_<random>.json`; mapillary_tools names its
                // uploads by content, `uploader.py`, so an abandoned one is simply never finished), the
                // next attempt sends one of its own, and the unfinished one is never published.
                EntityKind::Incomplete if key.ends_with(".json") => {}
                EntityKind::Incomplete | EntityKind::Other => {
                    return fail(format!(
                        "entity {key} left behind ({:?}, {} bytes held)",
                        entity.kind, entity.offset
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
