//! Which stored sequence a folder's id stands for, once an integration recognised the folder's photos by
//! content as a sequence already stored (a moved, renamed or copied folder: docs/architecture.md,
//! "Identity"). One indexed read per upload.

use rusqlite::{params, OptionalExtension};

use super::{StateError, StateStore};

/// The table, created with the rest of the schema (no schema version: an earlier `mtp` ignores it).
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sequence_alias (
         alias TEXT PRIMARY KEY, id TEXT NOT NULL) WITHOUT ROWID;";

impl StateStore {
    /// The stored sequence `id` was found to be (by [`StateStore::merge_into`]), if any.
    pub fn alias_of(&self, id: &str) -> Result<Option<String>, StateError> {
        let conn = self.lock();
        let found = conn
            .query_row(
                "SELECT id FROM sequence_alias WHERE alias = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional();
        match found {
            Ok(found) => Ok(found),
            // A store opened for reading from an earlier version has no such table: no alias.
            Err(rusqlite::Error::SqliteFailure(_, Some(message)))
                if message.contains("no such table") =>
            {
                Ok(None)
            }
            Err(err) => Err(self.err(err)),
        }
    }

    /// Makes sequence `from` the stored sequence `into`: later uploads of `from` are uploads of `into`,
    /// and `from`'s own rows (a sequence and records written before it was recognised) are dropped, so
    /// `mtp status` lists the photos once. One transaction.
    pub fn merge_into(&self, from: &str, into: &str) -> Result<(), StateError> {
        if from == into {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO sequence_alias (alias, id) VALUES (?1, ?2)",
            params![from, into],
        )
        .map_err(|e| self.err(e))?;
        // An alias of `from` now stands for `into`; and `into` is nobody's alias any more.
        tx.execute(
            "UPDATE sequence_alias SET id = ?2 WHERE id = ?1",
            params![from, into],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM sequence_alias WHERE alias = ?1", params![into])
            .map_err(|e| self.err(e))?;
        for sql in [
            "DELETE FROM sequence_record WHERE sequence_id = ?1",
            "DELETE FROM sequence_folders WHERE sequence_id = ?1",
            "DELETE FROM sequence WHERE id = ?1",
        ] {
            tx.execute(sql, params![from]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IntegrationRecord;
    use plugin_api::sequence::SequenceDescriptor;

    fn sequence(id: &str, root: &str) -> SequenceDescriptor {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "id": id, "root": root, "name": id, "images": [],
        }))
        .unwrap()
    }

    #[test]
    fn a_merged_sequence_is_listed_once_and_its_id_leads_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let record = IntegrationRecord::default();
        store
            .put_record(&sequence("old", "/a"), "mapillary", &record)
            .unwrap();
        store
            .put_record(&sequence("new", "/b"), "mapillary", &record)
            .unwrap();
        assert_eq!(store.alias_of("new").unwrap(), None);
        store.merge_into("new", "old").unwrap();
        assert_eq!(store.alias_of("new").unwrap().as_deref(), Some("old"));
        let ids: Vec<String> = store
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.sequence_id)
            .collect();
        assert_eq!(ids, ["old"]);
        // Merging onward keeps every earlier alias pointing at the sequence that is kept.
        store.merge_into("old", "third").unwrap();
        assert_eq!(store.alias_of("new").unwrap().as_deref(), Some("third"));
        assert_eq!(store.alias_of("third").unwrap(), None);
    }
}
