//! The persisted state: one SQLite database (`state.db`) in the state directory, holding each plugin's
//! key-value state and secrets and each sequence's record per integration.
//!
//! SQLite in WAL mode with `synchronous=NORMAL`: every write is its own committed transaction, which survives
//! `kill -9` of the process at any moment (power loss may lose the last few commits, never consistency).
//! The database and its directory are readable by the user only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::packed_images::{PackedSequence, PagesError};
use crate::sequence_content::SequenceContent;
use plugin_api::protocol::{RunOutcome, SequenceState, StateWrite};
use plugin_api::sequence::SequenceDescriptor;
use plugin_api::PluginError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

mod alias;
mod descriptor;
mod left_out;
mod listing;
mod open;
mod secrets;
pub use descriptor::Descriptors;
pub use listing::{
    newest_sequence_first, ErrorView, LinkView, Listing, OutcomeView, RecordView, StoredRecord,
    Text,
};

/// The page cache of a store opened for listing ([`StateStore::open_for_listing`]), in pages. A listing
/// reads each page once, in key order, so a few pages per cursor suffice; SQLite's default (2 MB) made
/// `mtp status` take fresh memory, one first touch by the kernel per page, for every page it read.
const LISTING_CACHE_PAGES: i64 = 64;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// A state-store failure, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused an operation.
    #[error("state database {path}: {}", sqlite_cause(cause))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        cause: rusqlite::Error,
    },
    /// The state directory cannot be created or secured.
    #[error("cannot use {path} for the state (it must be a directory and a database you can write): {cause}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The state directory's path names something that is not a directory.
    #[error("state directory {path} is a file, not a directory: pass --state-dir (or set MTP_STATE_DIR) to a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A record could not be encoded (nothing was written).
    #[error("state database {path}: cannot encode {what}: {detail}")]
    Encode {
        /// The database file.
        path: PathBuf,
        /// What was being written.
        what: String,
        /// serde's message.
        detail: String,
    },
    /// The file is not a readable SQLite database (or fails its integrity check).
    #[error("state database {path} is damaged ({detail}); it was left as it is and a copy kept at {backup}; move it away to start with an empty state (uploads then resume from the servers' offsets)")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
        /// Where the copy was kept.
        backup: PathBuf,
    },
    /// A sequence's images could not be packed or read back (the host's scratch file of packed
    /// images, not the database).
    #[error(transparent)]
    Images(#[from] PagesError),
    /// Written by a newer mtp.
    #[error("state database {path} has schema version {found}, newer than this mtp understands ({SCHEMA_VERSION}); upgrade mtp (the file was left untouched)")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
}

/// What the host keeps for one sequence with one integration (the `outcome` column, as JSON).
///
/// Never holds a secret export: the runner removes those before writing (see
/// [`crate::runner::Runner::run_sequence`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrationRecord {
    /// The last outcome the integration reported (or the host's `failed` outcome for a refused run).
    #[serde(default)]
    pub outcome: Option<RunOutcome>,
    /// The error of the last run, if it ended in one (the outcome above still stands).
    #[serde(default)]
    pub last_error: Option<PluginError>,
}

impl IntegrationRecord {
    /// Reads a stored record; one that cannot be read (written by a different version) counts as empty,
    /// so the integration simply runs again.
    pub fn from_json(json: &str) -> IntegrationRecord {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The state of the last outcome, if any.
    pub fn state(&self) -> Option<SequenceState> {
        self.outcome.as_ref().map(|o| o.state)
    }
}

/// An [`IntegrationRecord`] as `mtp status` lists it: with the sequence it belongs to.
#[derive(Debug, Clone)]
pub struct ListedRecord {
    /// The sequence's id.
    pub sequence_id: String,
    /// Where the sequence lives on disk.
    pub root: String,
    /// Its name.
    pub name: String,
    /// The integration.
    pub integration: String,
    /// What is kept.
    pub record: IntegrationRecord,
    /// When it was written (RFC 3339, UTC).
    pub updated_at: String,
}

/// The state store. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct StateStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    read_only: bool,
    /// The descriptor this process last wrote for each sequence, by content hash: writing a record again
    /// for the same photos leaves the (large) descriptor as it is.
    written: Arc<Mutex<std::collections::HashMap<String, u64>>>,
}

/// A plugin's entries in a key range, in key order ([`StateStore::list_page`]); `$from` compares the
/// key with the range's start.
macro_rules! list_sql {
    ($from:literal) => {
        concat!(
            "SELECT key, value FROM plugin_state WHERE plugin = ?1 AND key ",
            $from,
            " ?2 AND key < ?3 AND substr(key, 1, length(?4)) = ?4 ORDER BY key LIMIT ?5"
        )
    };
}

impl StateStore {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: each statement is atomic.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            cause: source,
        }
    }

    fn table(secret: bool) -> &'static str {
        if secret {
            "plugin_secret"
        } else {
            "plugin_state"
        }
    }

    /// The statement that stores a plugin's value (`secret`: in the secrets table).
    fn put_sql(secret: bool) -> String {
        format!(
            "INSERT INTO {} (plugin, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
            Self::table(secret)
        )
    }

    /// The statement that deletes a plugin's value (`secret`: from the secrets table).
    fn delete_sql(secret: bool) -> String {
        format!(
            "DELETE FROM {} WHERE plugin = ?1 AND key = ?2",
            Self::table(secret)
        )
    }

    /// Caps the database at the pages it has now, so that the next write that needs a page fails as
    /// on a full disk (SQLite's `SQLITE_FULL`): the full disk, for unit tests.
    #[cfg(test)]
    pub(crate) fn fill_up(&self) {
        let conn = self.lock();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .expect("page count");
        let _: i64 = conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                row.get(0)
            })
            .expect("max page count");
    }

    /// A plugin's value (`secret` selects the secrets table).
    pub fn get(&self, plugin: &str, key: &str, secret: bool) -> Result<Option<String>, StateError> {
        let sql = format!(
            "SELECT value FROM {} WHERE plugin = ?1 AND key = ?2",
            Self::table(secret)
        );
        // Cached: plugins read and write state per image, and parsing each statement again was a
        // visible share of a run of many small images (README, Performance).
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        stmt.query_row(params![plugin, key], |row| row.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A plugin's (non-secret) values at `keys`, in the same order (`None` where a key holds
    /// nothing): one lock and one prepared statement for all of them.
    pub fn get_many(
        &self,
        plugin: &str,
        keys: &[String],
    ) -> Result<Vec<Option<String>>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2")
            .map_err(|e| self.err(e))?;
        keys.iter()
            .map(|key| {
                stmt.query_row(params![plugin, key], |row| row.get(0))
                    .optional()
                    .map_err(|e| self.err(e))
            })
            .collect()
    }

    /// Stores a plugin's value.
    pub fn put(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        secret: bool,
    ) -> Result<(), StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&Self::put_sql(secret))
            .map_err(|e| self.err(e))?;
        stmt.execute(params![plugin, key, value])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Deletes a plugin's value.
    pub fn delete(&self, plugin: &str, key: &str, secret: bool) -> Result<(), StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&Self::delete_sql(secret))
            .map_err(|e| self.err(e))?;
        stmt.execute(params![plugin, key])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Applies a plugin's `writes` in order, in one transaction (all or none).
    pub fn write_all(&self, plugin: &str, writes: &[StateWrite]) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut put = tx
                .prepare_cached(&Self::put_sql(false))
                .map_err(|e| self.err(e))?;
            let mut delete = tx
                .prepare_cached(&Self::delete_sql(false))
                .map_err(|e| self.err(e))?;
            for write in writes {
                match write {
                    StateWrite::Put { key, value } => put.execute(params![plugin, key, value]),
                    StateWrite::Delete { key } => delete.execute(params![plugin, key]),
                }
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A plugin's (non-secret) entries whose key starts with `prefix`, by key.
    pub fn list(&self, plugin: &str, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        self.list_page(plugin, prefix, None, usize::MAX, usize::MAX)
    }

    /// Up to `limit` of a plugin's (non-secret) entries whose key starts with `prefix` and comes after
    /// `after` (from the first when `None`), by key, ending after the entry that brings its keys and
    /// values to `max_bytes`: [`StateStore::list`] a page at a time.
    pub fn list_page(
        &self,
        plugin: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(String, String)>, StateError> {
        // A range the key index can seek to, so a listing costs what it finds, not every key of the
        // plugin. Keys compare as UTF-8 bytes; the bound (the prefix followed by the last code point)
        // leaves out only keys with U+10FFFF right after the prefix, which no key of ours has. A later
        // page starts after the previous page's last key: that key is the range's lower bound itself,
        // so each page seeks to it (a filter `key > ?` beside `key >= prefix` made every page walk
        // the prefix from its first key).
        let below = format!("{prefix}\u{10FFFF}");
        let (start, sql) = match after {
            Some(after) => (after, list_sql!(">")),
            None => (prefix, list_sql!(">=")),
        };
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![plugin, start, below, prefix, limit], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        plugin_api::protocol::state_page(rows, usize::MAX, max_bytes).map_err(|e| self.err(e))
    }

    /// Records (or updates) a sequence and its record with one integration, in one transaction.
    pub fn put_record(
        &self,
        sequence: &(impl SequenceContent + ?Sized),
        integration: &str,
        record: &IntegrationRecord,
    ) -> Result<(), StateError> {
        let header = sequence.header();
        let encode = |what: &str, err: serde_json::Error| StateError::Encode {
            path: self.path.clone(),
            what: format!("{what} of sequence {}", header.id),
            detail: err.to_string(),
        };
        let outcome_json = serde_json::to_string(record)
            .map_err(|e| encode(&format!("the {integration} record"), e))?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let fingerprint = sequence.fingerprint();
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        // The descriptor once per run, not after each integration: 35 MB of JSON for 100,000 images;
        // written in full again if its row is gone (merged away meanwhile). Only looked for, not
        // touched: SQLite rewrites a row whole on any update, so setting its `updated_at` read and
        // wrote the 48 MB row each time (96 MB of SQLite's memory at 100,000 images). The records
        // carry their own time, which is what `mtp status` shows.
        let kept = written.get(&header.id) == Some(&fingerprint)
            && tx
                .query_row(
                    "SELECT 1 FROM sequence WHERE id = ?1",
                    params![header.id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(|e| self.err(e))?
                .is_some();
        if !kept {
            self.write_descriptor(&tx, sequence, &now)?;
        }
        tx.execute(
            "INSERT INTO sequence_record (sequence_id, integration, outcome, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (sequence_id, integration) DO UPDATE SET outcome = excluded.outcome,
             updated_at = excluded.updated_at",
            params![header.id, integration, outcome_json, now],
        )
        .map_err(|e| self.err(e))?;
        // The trigger `sequence_folders_stale` dropped the old summary (also when a version without
        // this table rewrote the descriptor); write the new one, if the images have one.
        let folders = if kept {
            None
        } else {
            crate::drift::folders_of(sequence)?
        };
        if let Some(folders) = folders {
            let folders_json =
                serde_json::to_string(&folders).map_err(|e| encode("the folder summary", e))?;
            tx.execute(
                "INSERT OR REPLACE INTO sequence_folders (sequence_id, folders) VALUES (?1, ?2)",
                params![header.id, folders_json],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        written.insert(header.id.clone(), fingerprint);
        Ok(())
    }

    /// Updates the record of a sequence already stored (by [`StateStore::put_record`]) with one
    /// integration, leaving its descriptor as it is: what a run in progress writes every second, without
    /// encoding and writing the descriptor (3 MB for 10,000 images) each time. `false` when the sequence
    /// is not stored (nothing was written).
    pub fn put_outcome(
        &self,
        sequence_id: &str,
        integration: &str,
        record: &IntegrationRecord,
    ) -> Result<bool, StateError> {
        let outcome_json = serde_json::to_string(record).map_err(|err| StateError::Encode {
            path: self.path.clone(),
            what: format!("the {integration} record of sequence {sequence_id}"),
            detail: err.to_string(),
        })?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO sequence_record (sequence_id, integration, outcome, updated_at)
                 SELECT id, ?2, ?3, ?4 FROM sequence WHERE id = ?1
                 ON CONFLICT (sequence_id, integration) DO UPDATE SET outcome = excluded.outcome,
                 updated_at = excluded.updated_at",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![sequence_id, integration, outcome_json, now])
            .map(|changed| changed > 0)
            .map_err(|e| self.err(e))
    }

    /// The folder summary of every sequence that has one (see [`crate::drift::Folder`]), by id: what
    /// `mtp status` needs to tell a vanished folder without reading the (large) descriptors.
    pub fn folder_summaries(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<crate::drift::Folder>>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT sequence_id, folders FROM sequence_folders")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (id, json) = row.map_err(|e| self.err(e))?;
            // One this version cannot read is as good as none: the descriptor is read instead.
            if let Ok(folders) = serde_json::from_str(&json) {
                out.insert(id, folders);
            }
        }
        Ok(out)
    }

    /// The [`SequenceDescriptor`] last uploaded for `sequence_id`; re-checks use it, so they work even
    /// when the files have moved. `None` also for one this version cannot read. Kept out of
    /// [`StateStore::records`], which `mtp status` lists: descriptors are large.
    pub fn descriptor(&self, sequence_id: &str) -> Result<Option<SequenceDescriptor>, StateError> {
        Descriptors(&self.lock())
            .get(sequence_id)
            .map_err(|e| self.err(e))
    }

    /// [`StateStore::descriptor`] with its images packed, as a run holds it.
    pub fn packed_descriptor(
        &self,
        sequence_id: &str,
    ) -> Result<Option<PackedSequence>, StateError> {
        let Some(descriptor) = self.descriptor(sequence_id)? else {
            return Ok(None);
        };
        Ok(Some(PackedSequence::pack(descriptor)?))
    }

    /// Every sequence record, in the order of `mtp status`: the sequences whose latest record was
    /// written last first (ties by id), each one's records by integration.
    pub fn records(&self) -> Result<Vec<ListedRecord>, StateError> {
        Ok(self.listing()?.records().map(ListedRecord::from).collect())
    }

    /// The records of one sequence, by integration.
    pub fn records_of(&self, sequence_id: &str) -> Result<Vec<ListedRecord>, StateError> {
        let listing =
            listing::stored_records(&self.lock(), Some(sequence_id)).map_err(|e| self.err(e))?;
        Ok(listing.records().map(ListedRecord::from).collect())
    }

    /// Calls `visit` with each record and its sequence (with its folder summary), in key order: by
    /// sequence id, then integration (order them as `mtp status` does with [`newest_sequence_first`]).
    /// The strings are valid during the call: what `mtp status` lists, keeping only what it shows.
    /// The callback reads descriptors through its second argument (the store is busy meanwhile).
    pub fn visit_records(
        &self,
        mut visit: impl FnMut(StoredRecord<'_>, &Descriptors<'_>),
    ) -> Result<(), StateError> {
        let conn = self.lock();
        let descriptors = Descriptors(&conn);
        listing::visit_records(&conn, None, |record| visit(record, &descriptors))
            .map_err(|e| self.err(e))
    }

    /// [`StateStore::records`], each record still as stored, with its sequence's folder summary: what
    /// `mtp status` lists, reading only the parts it shows ([`StoredRecord::view`]).
    pub fn listing(&self) -> Result<Listing, StateError> {
        listing::stored_records(&self.lock(), None).map_err(|e| self.err(e))
    }
}

impl From<StoredRecord<'_>> for ListedRecord {
    fn from(stored: StoredRecord<'_>) -> ListedRecord {
        ListedRecord {
            record: stored.record(),
            sequence_id: stored.sequence_id.to_string(),
            root: stored.root.to_string(),
            name: stored.name.to_string(),
            integration: stored.integration.to_string(),
            updated_at: stored.updated_at.to_string(),
        }
    }
}

/// SQLite's error as the user needs it: a full disk said as such, with what to do (SQLite's own text,
/// "database or disk is full", is kept for searching).
fn sqlite_cause(cause: &rusqlite::Error) -> String {
    if cause.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        format!("disk full ({cause}): free some space, then run the command again (everything recorded before is kept)")
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plugins_and_secrets_apart_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put("a", "k1", "v1", false).unwrap();
        store.put("a", "k2", "v2", false).unwrap();
        store.put("b", "k1", "other", false).unwrap();
        store.put("a", "token", "secret", true).unwrap();
        assert_eq!(store.get("a", "token", false).unwrap(), None);
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get("a", "k1", false).unwrap().as_deref(), Some("v1"));
        assert_eq!(
            store.get("a", "token", true).unwrap().as_deref(),
            Some("secret")
        );
        assert_eq!(store.list("a", "k").unwrap().len(), 2);
        assert_eq!(store.list("b", "").unwrap().len(), 1);
        // A prefix is text, not a pattern; neighbours on either side of the range stay out.
        for key in [
            "p%/a",
            "p%/é",
            "p%/\u{10FFFE}",
            "p%0",
            "p%",
            "p_/a",
            "p%./a",
        ] {
            store.put("c", key, "v", false).unwrap();
        }
        let keys: Vec<String> = store
            .list("c", "p%/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["p%/a", "p%/é", "p%/\u{10FFFE}"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "state.db must be private: {mode:o}");
        }
    }

    #[test]
    fn a_damaged_database_is_an_error_naming_it_and_a_copy_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"this was never a database, but it is the user's file".repeat(100);
        std::fs::write(dir.path().join("state.db"), &garbage).unwrap();
        let err = StateStore::open(dir.path()).err().unwrap();
        let message = err.to_string();
        assert!(message.contains("state.db is damaged"), "{message}");
        assert_eq!(std::fs::read(dir.path().join("state.db")).unwrap(), garbage);
        let copies: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.db.damaged-")
            })
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(std::fs::read(copies[0].path()).unwrap(), garbage);
    }

    #[test]
    fn records_are_typed_and_an_unreadable_one_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let sequence: SequenceDescriptor = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": "s1", "root": "/walk", "name": "walk", "images": []
        }))
        .unwrap();
        let record = IntegrationRecord {
            outcome: Some(RunOutcome::new(SequenceState::Unpublished, "processing")),
            last_error: None,
        };
        store.put_record(&sequence, "mapillary", &record).unwrap();
        let listed = store.records_of("s1").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record, record);
        assert_eq!(listed[0].name, "walk");
        assert_eq!(store.descriptor("s1").unwrap().unwrap().id, "s1");
        store
            .lock()
            .execute("UPDATE sequence_record SET outcome = 'not json'", [])
            .unwrap();
        assert_eq!(
            store.records().unwrap()[0].record,
            IntegrationRecord::default()
        );
    }

    #[test]
    fn a_long_descriptor_is_written_as_a_blob_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let images: Vec<serde_json::Value> = (0..15_000)
            .map(|i| {
                serde_json::json!({"path": format!("/walk/{i:06}.jpg"), "file_name": format!("{i:06}.jpg"),
                    "size_bytes": 1, "latitude": 1.0, "longitude": 1.0, "captured_at_ms": i,
                    "sources": {"positions": ["GPSLatitude"], "times": ["DateTimeOriginal"]}})
            })
            .collect();
        let mut sequence: SequenceDescriptor = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": "s1", "root": "/walk", "name": "walk", "images": images
        }))
        .unwrap();
        assert!(descriptor::short_json(&sequence).unwrap().is_none());
        let record = IntegrationRecord::default();
        store.put_record(&sequence, "mapillary", &record).unwrap();
        let kind: String = store
            .lock()
            .query_row(
                "SELECT typeof(long_descriptor) || ' ' || descriptor FROM sequence",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "blob ");
        assert_eq!(store.descriptor("s1").unwrap().unwrap(), sequence);
        // An earlier mtp rewrites the text column alone: its descriptor is the one read.
        let mut earlier = sequence.clone();
        earlier.images.truncate(1);
        store
            .lock()
            .execute(
                "UPDATE sequence SET descriptor = ?1 WHERE id = 's1'",
                [serde_json::to_string(&earlier).unwrap()],
            )
            .unwrap();
        assert_eq!(store.descriptor("s1").unwrap().unwrap(), earlier);
        store.written.lock().unwrap().clear();
        store.put_record(&sequence, "mapillary", &record).unwrap();
        assert_eq!(store.descriptor("s1").unwrap().unwrap(), sequence);
        // Rewritten shorter, it is text again, and the store holds one row.
        sequence.images.truncate(2);
        store.put_record(&sequence, "mapillary", &record).unwrap();
        let kind: String = store
            .lock()
            .query_row(
                "SELECT typeof(descriptor) || ' ' || typeof(long_descriptor) FROM sequence",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "text null");
        assert_eq!(store.descriptor("s1").unwrap().unwrap(), sequence);
    }

    #[test]
    fn the_folder_summary_follows_the_descriptor_and_a_foreign_rewrite_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let image = |path: &str| {
            serde_json::json!({"path": path, "file_name": "", "size_bytes": 1, "latitude": 1.0,
                "longitude": 1.0, "captured_at_ms": 0})
        };
        let sequence: SequenceDescriptor = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": "s1", "root": "/walk", "name": "walk",
            "images": [image("/walk/a/1.jpg"), image("/walk/a/2.jpg"), image("/walk/b/3.jpg")]
        }))
        .unwrap();
        store
            .put_record(&sequence, "mapillary", &IntegrationRecord::default())
            .unwrap();
        let folders = |store: &StateStore| {
            store.folder_summaries().unwrap().get("s1").map(|f| {
                f.iter()
                    .map(|f| (f.dir.clone(), f.images))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            folders(&store),
            Some(vec![("/walk/a".to_string(), 2), ("/walk/b".to_string(), 1)])
        );
        // What a version without the summary table does: rewrite the descriptor alone.
        store
            .lock()
            .execute("UPDATE sequence SET descriptor = '{}' WHERE id = 's1'", [])
            .unwrap();
        assert_eq!(folders(&store), None, "the stale summary was dropped");
        // Reopening (the listing way too) keeps the schema and its trigger.
        drop(store);
        let store = StateStore::open_for_listing(dir.path()).unwrap();
        store
            .put_record(&sequence, "mapillary", &IntegrationRecord::default())
            .unwrap();
        assert_eq!(folders(&store).map(|f| f.len()), Some(2));
    }

    #[test]
    fn the_descriptor_is_written_once_for_the_same_photos() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let stored = |store: &StateStore| -> String {
            store
                .lock()
                .query_row("SELECT descriptor FROM sequence WHERE id = 's1'", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let walk = sequence("s1", "walk");
        store
            .put_record(&walk, "mapillary", &IntegrationRecord::default())
            .unwrap();
        // Marks the row, to tell whether the next record rewrites it.
        store
            .lock()
            .execute(
                "UPDATE sequence SET descriptor = 'marker' WHERE id = 's1'",
                [],
            )
            .unwrap();
        store
            .put_record(&walk, "panoramax", &IntegrationRecord::default())
            .unwrap();
        assert_eq!(
            stored(&store),
            "marker",
            "the same photos: not written again"
        );
        assert_eq!(store.records_of("s1").unwrap().len(), 2);
        let renamed = sequence("s1", "ride");
        store
            .put_record(&renamed, "panoramax", &IntegrationRecord::default())
            .unwrap();
        assert_eq!(store.descriptor("s1").unwrap().unwrap().name, "ride");
        // Gone meanwhile (merged into another sequence): written in full again.
        store.merge_into("s1", "s2").unwrap();
        store
            .put_record(&renamed, "mapillary", &IntegrationRecord::default())
            .unwrap();
        assert_eq!(store.descriptor("s1").unwrap().unwrap().name, "ride");
    }

    #[test]
    fn an_outcome_alone_updates_a_stored_sequence_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let sequence: SequenceDescriptor = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": "s1", "root": "/walk", "name": "walk", "images": []
        }))
        .unwrap();
        let record = |message: &str| IntegrationRecord {
            outcome: Some(RunOutcome::new(SequenceState::Uploading, message)),
            last_error: None,
        };
        assert!(!store.put_outcome("s1", "mapillary", &record("a")).unwrap());
        assert!(
            store.records().unwrap().is_empty(),
            "no record without its sequence"
        );
        store
            .put_record(&sequence, "mapillary", &record("a"))
            .unwrap();
        assert!(store.put_outcome("s1", "mapillary", &record("b")).unwrap());
        assert!(store.put_outcome("s1", "mtpw", &record("c")).unwrap());
        let listed = store.records_of("s1").unwrap();
        let messages: Vec<_> = listed
            .iter()
            .map(|r| r.record.outcome.as_ref().unwrap().message.clone().unwrap())
            .collect();
        assert_eq!(messages, ["b", "c"]);
        assert_eq!(store.descriptor("s1").unwrap().unwrap().name, "walk");
    }

    #[test]
    fn a_batch_of_writes_is_applied_in_order_to_its_plugin_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put("other", "k", "kept", false).unwrap();
        store.put("p", "gone", "x", false).unwrap();
        let writes = [
            StateWrite::Put {
                key: "k".into(),
                value: "1".into(),
            },
            StateWrite::Put {
                key: "k".into(),
                value: "2".into(),
            },
            StateWrite::delete("gone"),
            StateWrite::delete("never there"),
        ];
        store.write_all("p", &writes).unwrap();
        assert_eq!(store.get("p", "k", false).unwrap().as_deref(), Some("2"));
        assert_eq!(store.get("p", "gone", false).unwrap(), None);
        assert_eq!(
            store.get("other", "k", false).unwrap().as_deref(),
            Some("kept")
        );
    }

    #[test]
    fn an_earlier_clustered_plugin_state_is_migrated_with_its_values() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        // The layout of earlier versions, with a value larger than a page.
        conn.execute_batch(
            "DROP TABLE plugin_state;
             CREATE TABLE plugin_state (plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (plugin, key)) WITHOUT ROWID;",
        )
        .unwrap();
        let big = "x".repeat(100_000);
        conn.execute(
            "INSERT INTO plugin_state VALUES ('p', 'plan', ?1), ('p', 'img/a', 'h')",
            [&big],
        )
        .unwrap();
        drop(conn);
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get("p", "plan", false).unwrap(), Some(big));
        assert_eq!(store.get("p", "img/a", false).unwrap(), Some("h".into()));
        let sql: String = store
            .lock()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'plugin_state'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        store.put("p", "img/b", "h2", false).unwrap();
        assert_eq!(store.list("p", "img/").unwrap().len(), 2);
    }

    fn sequence(id: &str, name: &str) -> SequenceDescriptor {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "id": id, "root": format!("/gone/{id}"), "name": name,
            "images": [{"path": format!("/gone/{id}/1.jpg"), "file_name": "1.jpg", "size_bytes": 1,
                "latitude": 1.0, "longitude": 1.0, "captured_at_ms": 0}]
        }))
        .unwrap()
    }

    fn plan_of(store: &StateStore, sql: &str) -> String {
        let conn = store.lock();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn listing_reads_the_sequences_through_their_index_and_an_earlier_file_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let listing_sql = "SELECT id, root, name FROM sequence ORDER BY id";
        let plan = plan_of(&store, listing_sql);
        assert!(plan.contains("COVERING INDEX sequence_listing"), "{plan}");
        store
            .put_record(
                &sequence("s1", "walk"),
                "mapillary",
                &IntegrationRecord::default(),
            )
            .unwrap();
        // A file of an earlier version has no such index; the listing works without it, and the
        // first open that may write adds it (the listing open too), keeping every record.
        store
            .lock()
            .execute_batch("DROP INDEX sequence_listing")
            .unwrap();
        assert_eq!(store.records().unwrap().len(), 1);
        drop(store);
        let store = StateStore::open_for_listing(dir.path()).unwrap();
        let plan = plan_of(&store, listing_sql);
        assert!(plan.contains("COVERING INDEX sequence_listing"), "{plan}");
        assert_eq!(store.records().unwrap()[0].name, "walk");
        let cache: i64 = store
            .lock()
            .pragma_query_value(None, "cache_size", |row| row.get(0))
            .unwrap();
        assert_eq!(cache, LISTING_CACHE_PAGES);
    }

    #[test]
    fn the_listing_merges_sequences_records_and_folder_summaries_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let record = |message: &str| IntegrationRecord {
            outcome: Some(RunOutcome::new(SequenceState::Published, message)),
            last_error: None,
        };
        store
            .put_record(&sequence("b", "second"), "mtpw", &record("b/mtpw"))
            .unwrap();
        store
            .put_record(&sequence("b", "second"), "mapillary", &record("b/mly"))
            .unwrap();
        store
            .put_record(&sequence("a", "first"), "mapillary", &record("a/mly"))
            .unwrap();
        store
            .put_record(&sequence("c", "third"), "mapillary", &record("c/mly"))
            .unwrap();
        {
            let conn = store.lock();
            // Times decide the order (newest sequence first), then the id.
            conn.execute_batch(
                "UPDATE sequence_record SET updated_at = '2026-01-01T00:00:00Z';
                 UPDATE sequence_record SET updated_at = '2026-01-03T00:00:00Z'
                     WHERE sequence_id = 'b' AND integration = 'mtpw';
                 UPDATE sequence_record SET updated_at = '2026-01-02T00:00:00Z' WHERE sequence_id = 'c';
                 INSERT INTO sequence_record VALUES ('orphan', 'mapillary', '{}', '2026-02-01T00:00:00Z');
                 INSERT INTO sequence (id, root, name, descriptor, updated_at)
                     VALUES ('no-records', '/r', 'n', '{}', '2026-02-01T00:00:00Z');
                 DELETE FROM sequence_folders WHERE sequence_id = 'c';",
            )
            .unwrap();
        }
        let listing = store.listing().unwrap();
        let listed: Vec<(&str, &str, &str, bool)> = listing
            .records()
            .map(|r| {
                (
                    r.sequence_id,
                    r.name,
                    r.integration,
                    r.folders_json.is_some(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("b", "second", "mapillary", true),
                ("b", "second", "mtpw", true),
                ("c", "third", "mapillary", false),
                ("a", "first", "mapillary", true),
            ]
        );
        let first = listing.records().next().unwrap();
        assert_eq!(
            first.view().outcome.unwrap().message.unwrap().as_str(),
            "b/mly"
        );
        assert_eq!(first.record(), record("b/mly"));
        assert_eq!(first.root, "/gone/b");
        let one: Vec<String> = store
            .records_of("b")
            .unwrap()
            .into_iter()
            .map(|r| r.integration)
            .collect();
        assert_eq!(one, ["mapillary", "mtpw"]);
        // In key order, and the visitor may read a descriptor meanwhile (same connection).
        let mut visited = Vec::new();
        store
            .visit_records(|record, descriptors| {
                let name = descriptors.get(record.sequence_id).unwrap().unwrap().name;
                visited.push((record.sequence_id.to_string(), name));
            })
            .unwrap();
        let ids: Vec<&str> = visited.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "b", "c"]);
        assert_eq!(visited[0].1, "first");
    }

    #[test]
    fn refuses_a_newer_schema_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = StateStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
