//! The sequence's descriptor in its row: written as text, or for a long one through SQLite's blob I/O,
//! and read back either way.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use plugin_api::sequence::SequenceDescriptor;

use super::{StateError, StateStore};

/// A descriptor this long or longer (about 10,000 images) is written through SQLite's incremental blob
/// I/O rather than bound as text: binding copies the text, and building the row copies it again (three
/// copies of 35 MB at 100,000 images). Shorter ones stay text, which every version of mtp reads.
pub(super) const BLOB_DESCRIPTOR: usize = 4 << 20;

/// `sequence` as JSON, in a buffer reserved for its length (one grown by doubling holds the old and the
/// new buffer at each step).
pub(super) fn descriptor_json(sequence: &SequenceDescriptor) -> Result<String, serde_json::Error> {
    const PER_IMAGE: usize = 400;
    let mut buffer = Vec::with_capacity(4096 + sequence.images.len() * PER_IMAGE);
    serde_json::to_writer(&mut buffer, sequence)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(buffer).unwrap_or_default())
}

impl StateStore {
    /// Writes `sequence`'s row with `json` as its descriptor, inside `tx`.
    pub(super) fn write_descriptor(
        &self,
        tx: &rusqlite::Transaction<'_>,
        sequence: &SequenceDescriptor,
        json: &str,
        now: &str,
    ) -> Result<(), StateError> {
        const UPSERT: &str = "INSERT INTO sequence (id, root, name, descriptor, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET root = excluded.root, name = excluded.name,
             descriptor = excluded.descriptor, updated_at = excluded.updated_at";
        let (id, root, name) = (&sequence.id, &sequence.root, &sequence.name);
        if json.len() < BLOB_DESCRIPTOR {
            tx.execute(UPSERT, params![id, root, name, json, now])
                .map_err(|e| self.err(e))?;
            return Ok(());
        }
        let length = i64::try_from(json.len()).unwrap_or(i64::MAX);
        tx.execute(
            &UPSERT.replace("?4", "zeroblob(?4)"),
            params![id, root, name, length, now],
        )
        .map_err(|e| self.err(e))?;
        let row: i64 = tx
            .query_row(
                "SELECT rowid FROM sequence WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut blob = tx
            .blob_open(
                rusqlite::DatabaseName::Main,
                "sequence",
                "descriptor",
                row,
                false,
            )
            .map_err(|e| self.err(e))?;
        blob.write_all_at(json.as_bytes(), 0)
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Reads [`SequenceDescriptor`]s from the store's connection (see [`StateStore::visit_records`]).
pub struct Descriptors<'c>(pub(super) &'c Connection);

impl Descriptors<'_> {
    /// [`StateStore::descriptor`].
    pub fn get(&self, sequence_id: &str) -> rusqlite::Result<Option<SequenceDescriptor>> {
        // Text, or for a long descriptor the same JSON as a blob (`BLOB_DESCRIPTOR`).
        self.0
            .query_row(
                "SELECT descriptor FROM sequence WHERE id = ?1",
                params![sequence_id],
                |row| {
                    Ok(match row.get_ref(0)? {
                        ValueRef::Text(json) | ValueRef::Blob(json) => {
                            serde_json::from_slice(json).ok()
                        }
                        _ => None,
                    })
                },
            )
            .optional()
            .map(Option::flatten)
    }
}
