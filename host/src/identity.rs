//! Which stored sequence a folder on disk is, before anything runs (docs/architecture.md, "Identity").
//!
//! A sequence's id comes from the folder (MTPDU's sequence UUID, else the folder's path), but the photos
//! are what was published. Two rules follow, each one indexed read:
//! - a folder whose id an integration already recognised, by content, as a stored sequence (a moved or
//!   renamed folder: [`StateStore::merge_into`]) is that sequence;
//! - a folder whose id is stored for another folder holding none of the same photos (a split MTPDU
//!   folder, two generated samples) is a sequence of its own, under an id derived from both.

use plugin_api::sequence::{ImageInfo, SequenceDescriptor};

use crate::packed_images::{PackedSequence, PagesError};
use crate::state::{StateError, StateStore};

/// Gives `sequence` the id it is stored under; returns a line for the user when that is not the id its
/// folder gave it for a reason they should know.
pub fn identify(
    store: &StateStore,
    sequence: &mut PackedSequence,
) -> Result<Option<String>, StateError> {
    if let Some(id) = store.alias_of(sequence.id())? {
        sequence.set_id(id);
        return Ok(None);
    }
    let Some(stored) = store.descriptor(sequence.id())? else {
        return Ok(None);
    };
    let (id, root) = (sequence.id().to_string(), sequence.header().root.clone());
    if stored.root == root || shares_a_photo(&stored, sequence.images().iter())? {
        return Ok(None);
    }
    let own = folder_id(&id, &root);
    let note = format!(
        "{root} holds other photos under the same sequence id {id} as {}: uploaded as a sequence of \
         its own ({own})",
        stored.root
    );
    // The derived id is stable, so a later run lands on the same sequence; it may itself be an alias.
    let own = store.alias_of(&own)?.unwrap_or(own);
    sequence.set_id(own);
    Ok(Some(note))
}

/// Whether the two hold at least one photo in common: the same MTPDU photo UUID, else the same file
/// name, size and capture time (cheap evidence, no file is read: the content itself is compared by the
/// integrations that keep it, e.g. Mapillary's session keys).
fn shares_a_photo(
    a: &SequenceDescriptor,
    b: impl Iterator<Item = Result<ImageInfo, PagesError>>,
) -> Result<bool, PagesError> {
    let photos: std::collections::HashSet<(String, u64, i64)> =
        a.images.iter().map(photo).collect();
    for image in b {
        if photos.contains(&photo(&image?)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn photo(image: &ImageInfo) -> (String, u64, i64) {
    match &image.photo_uuid {
        Some(uuid) => (uuid.clone(), 0, 0),
        None => (
            image.file_name.clone(),
            image.size_bytes,
            image.captured_at_ms,
        ),
    }
}

/// The id of the folder `root` holding sequence `id` beside another folder with the same id: stable
/// (FNV-1a of the path, as the sequence reader derives folder ids) and readable as a child of `id`.
fn folder_id(id: &str, root: &str) -> String {
    let hash = root.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{id}+folder-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IntegrationRecord;

    fn sequence(id: &str, root: &str, photos: &[&str]) -> SequenceDescriptor {
        let images: Vec<serde_json::Value> = photos
            .iter()
            .map(|name| {
                serde_json::json!({
                    "path": format!("{root}/{name}"), "file_name": name, "size_bytes": 10,
                    "latitude": 1.0, "longitude": 2.0, "captured_at_ms": 1000,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schema": 1, "id": id, "root": root, "name": id, "images": images,
        }))
        .unwrap()
    }

    fn packed(id: &str, root: &str, photos: &[&str]) -> PackedSequence {
        PackedSequence::pack(sequence(id, root, photos)).unwrap()
    }

    #[test]
    fn the_same_id_with_other_photos_elsewhere_is_its_own_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sequence("u", "/a", &["1.jpg", "2.jpg"]);
        store
            .put_record(&first, "x", &IntegrationRecord::default())
            .unwrap();
        // The same folder, and the same photos elsewhere (moved): the stored sequence.
        for mut same in [
            packed("u", "/a", &["1.jpg", "3.jpg"]),
            packed("u", "/moved", &["1.jpg", "2.jpg"]),
        ] {
            assert_eq!(identify(&store, &mut same).unwrap(), None);
            assert_eq!(same.id(), "u");
        }
        let mut other = packed("u", "/b", &["3.jpg"]);
        let note = identify(&store, &mut other).unwrap().unwrap();
        assert!(note.contains("/a") && note.contains("/b"), "{note}");
        assert_ne!(other.id(), "u");
        let mut again = packed("u", "/b", &["3.jpg"]);
        identify(&store, &mut again).unwrap();
        assert_eq!(again.id(), other.id(), "stable across runs");
    }

    #[test]
    fn an_alias_leads_to_the_stored_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .put_record(
                &sequence("old", "/a", &["1.jpg"]),
                "x",
                &IntegrationRecord::default(),
            )
            .unwrap();
        store.merge_into("new", "old").unwrap();
        let mut moved = packed("new", "/b", &["1.jpg"]);
        assert_eq!(identify(&store, &mut moved).unwrap(), None);
        assert_eq!(moved.id(), "old");
    }
}
