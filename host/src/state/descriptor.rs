//! The sequence's descriptor in its row: written as text, or for a long one through SQLite's blob I/O,
//! and read back either way.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use plugin_api::sequence::SequenceDescriptor;

use super::{StateError, StateStore};
use crate::sequence_content::SequenceContent;
use serde::Serialize;

/// A descriptor this long or longer (about 10,000 images) is written through SQLite's incremental blob
/// I/O rather than bound as text: our JSON, the bound copy of it and the row built from it were three
/// copies of 45 MB at 100,000 images. It goes into the row's last column, `long_descriptor`, as
/// `zeroblob(n)`, which SQLite records without writing the zeros out (in the `descriptor` column, which
/// is not last, it built the zeros and then the row: 96 MB at 100,000 images), and the JSON streams into
/// it; `descriptor` then holds `''`. Shorter ones stay text in `descriptor`, which every version of mtp
/// reads.
pub(super) const BLOB_DESCRIPTOR: usize = 4 << 20;

/// `sequence`'s JSON if it is shorter than [`BLOB_DESCRIPTOR`]; `None` for a longer one, whose writing
/// stops at that length (a long one is measured and streamed instead, see
/// [`StateStore::write_descriptor`]).
pub(super) fn short_json(
    sequence: &(impl Serialize + ?Sized),
) -> Result<Option<String>, serde_json::Error> {
    struct Capped {
        bytes: Vec<u8>,
        over: bool,
    }
    impl std::io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.bytes.len() + buf.len() >= BLOB_DESCRIPTOR {
                self.over = true;
                return Err(std::io::Error::other("a long descriptor"));
            }
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Capped {
        bytes: Vec::new(),
        over: false,
    };
    match serde_json::to_writer(&mut out, sequence) {
        // serde_json writes UTF-8 only.
        Ok(()) => Ok(Some(String::from_utf8(out.bytes).unwrap_or_else(|not| {
            String::from_utf8_lossy(not.as_bytes()).into_owned()
        }))),
        Err(_) if out.over => Ok(None),
        Err(err) => Err(err),
    }
}

/// How long `sequence`'s JSON is, without writing it anywhere.
fn json_length(sequence: &(impl Serialize + ?Sized)) -> Result<usize, serde_json::Error> {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, sequence)?;
    Ok(counter.0)
}

impl StateStore {
    /// Writes `sequence`'s row, its descriptor included, inside `tx`. A long descriptor is measured
    /// first, then written straight into a blob of that length: the 35 MB of JSON of 100,000 images are
    /// never one buffer of ours, nor bound (and so copied) as a parameter.
    pub(super) fn write_descriptor(
        &self,
        tx: &rusqlite::Transaction<'_>,
        sequence: &(impl SequenceContent + ?Sized),
        now: &str,
    ) -> Result<(), StateError> {
        let header = sequence.header();
        const UPSERT: &str =
            "INSERT INTO sequence (id, root, name, descriptor, updated_at, long_descriptor)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL)
             ON CONFLICT (id) DO UPDATE SET root = excluded.root, name = excluded.name,
             descriptor = excluded.descriptor, updated_at = excluded.updated_at,
             long_descriptor = excluded.long_descriptor";
        let encode = |detail: String| StateError::Encode {
            path: self.path.clone(),
            what: format!("the descriptor of sequence {}", header.id),
            detail,
        };
        let (id, root, name) = (&header.id, &header.root, &header.name);
        if let Some(json) = short_json(sequence).map_err(|e| encode(e.to_string()))? {
            tx.execute(UPSERT, params![id, root, name, json, now])
                .map_err(|e| self.err(e))?;
            return Ok(());
        }
        let length = json_length(sequence).map_err(|e| encode(e.to_string()))?;
        let blob_length = i64::try_from(length).unwrap_or(i64::MAX);
        tx.execute(
            &UPSERT.replace("?4, ?5, NULL", "'', ?5, zeroblob(?4)"),
            params![id, root, name, blob_length, now],
        )
        .map_err(|e| self.err(e))?;
        let row: i64 = tx
            .query_row(
                "SELECT rowid FROM sequence WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let blob = tx
            .blob_open(
                rusqlite::DatabaseName::Main,
                "sequence",
                "long_descriptor",
                row,
                false,
            )
            .map_err(|e| self.err(e))?;
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, blob);
        serde_json::to_writer(&mut out, sequence).map_err(|e| encode(e.to_string()))?;
        std::io::Write::flush(&mut out).map_err(|e| encode(e.to_string()))?;
        Ok(())
    }
}

/// Reads [`SequenceDescriptor`]s from the store's connection (see [`StateStore::visit_records`]).
pub struct Descriptors<'c>(pub(super) &'c Connection);

impl Descriptors<'_> {
    /// [`StateStore::descriptor`].
    pub fn get(&self, sequence_id: &str) -> rusqlite::Result<Option<SequenceDescriptor>> {
        // Text, or for a long descriptor the same JSON as a blob (`BLOB_DESCRIPTOR`): in its own
        // column, or in `descriptor` as the previous version wrote it. A file of an earlier version
        // opened read-only has no such column.
        let query = if self.has_long_descriptors()? {
            "SELECT coalesce(long_descriptor, descriptor) FROM sequence WHERE id = ?1"
        } else {
            "SELECT descriptor FROM sequence WHERE id = ?1"
        };
        self.0
            .query_row(query, params![sequence_id], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(json) | ValueRef::Blob(json) => {
                        serde_json::from_slice(json).ok()
                    }
                    _ => None,
                })
            })
            .optional()
            .map(Option::flatten)
    }
}

impl Descriptors<'_> {
    fn has_long_descriptors(&self) -> rusqlite::Result<bool> {
        self.0.query_row(
            "SELECT count(*) FROM pragma_table_info('sequence') WHERE name = 'long_descriptor'",
            [],
            |row| Ok(row.get::<_, i64>(0)? > 0),
        )
    }
}
