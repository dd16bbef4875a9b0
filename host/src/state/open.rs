//! Opening the store: the directory and file made private to the user, the schema created or checked,
//! an earlier file migrated, a damaged one kept aside, and a read-only fallback for commands that only
//! read.

use super::*;

impl StateStore {
    /// [`StateStore::open`]; when that fails because the directory or database cannot be written (a
    /// read-only mount, another user's files) and a database is there, opens it read-only instead, for
    /// commands that only read (`mtp status`, `mtp sequence inspect`): writes then fail.
    pub fn open_for_reading(dir: &Path) -> Result<StateStore, StateError> {
        let err = match StateStore::open(dir) {
            Ok(store) => return Ok(store),
            Err(err) => err,
        };
        let path = dir.join("state.db");
        if !path.is_file() || !cannot_write(&err) {
            return Err(err);
        }
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        // `immutable=1` when even the shared-memory file of WAL mode cannot be created beside it.
        let uri = |extra: &str| format!("file:{}?mode=ro{extra}", path.display());
        let readable = |extra: &str| -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(uri(extra), flags)?;
            conn.query_row("SELECT count(*) FROM sequence", [], |_| Ok(()))?;
            Ok(conn)
        };
        let conn = readable("")
            .or_else(|_| readable("&immutable=1"))
            .map_err(|_| err)?;
        tracing::warn!(
            "the state directory {} cannot be written: showing the stored state read-only",
            dir.display()
        );
        Ok(StateStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
            read_only: true,
            written: Arc::default(),
        })
    }

    /// Opened read-only ([`StateStore::open_for_reading`]): nothing can be recorded.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Opens (creating if needed) `state.db` in `dir`, checking the whole file first (`quick_check`).
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        StateStore::open_with(dir, true)
    }

    /// [`StateStore::open`] without the whole-file check, for commands that only list what is stored
    /// (`mtp status`): the check reads every page (about 20 ms for 1,000 sequences), and a command that
    /// writes runs it anyway. A file that is not a database is still refused as damaged here; a damaged
    /// page met while listing is an SQLite error naming the file.
    pub fn open_for_listing(dir: &Path) -> Result<StateStore, StateError> {
        StateStore::open_with(dir, false)
    }

    fn open_with(dir: &Path, full_check: bool) -> Result<StateStore, StateError> {
        create_private_dir(dir)?;
        let path = dir.join("state.db");
        let sqlite = |source: rusqlite::Error| {
            if is_corruption(&source) {
                corrupt(&path, source.to_string())
            } else {
                StateError::Sqlite {
                    path: path.clone(),
                    cause: source,
                }
            }
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        restrict_to_user(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        if !full_check {
            conn.pragma_update(None, "cache_size", LISTING_CACHE_PAGES)
                .map_err(sqlite)?;
        }
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite)?;
        if full_check {
            let check: String = conn
                .pragma_query_value(None, "quick_check", |row| row.get(0))
                .unwrap_or_else(|err| err.to_string());
            if check != "ok" {
                return Err(corrupt(&path, check));
            }
        }
        if found > SCHEMA_VERSION {
            return Err(StateError::TooNew { path, found });
        }
        // The schema is written only when something of it is missing: a write transaction (and its
        // sync) on every open costs an interactive command like `mtp status` most of its time.
        let (present, clustered, long): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(name = 'plugin_state' AND sql LIKE '%WITHOUT ROWID%'), 0),
                 coalesce(sum(name = 'sequence' AND sql LIKE '%long_descriptor%'), 0)
                 FROM sqlite_master WHERE name IN ('plugin_state', 'plugin_secret',
                 'sequence', 'sequence_record', 'sequence_folders', 'sequence_folders_stale',
                 'sequence_listing', 'sequence_alias', 'sequence_long_descriptor_stale')",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(sqlite)?;
        if clustered != 0 {
            StateStore::unclustered_plugin_state(&conn).map_err(sqlite)?;
        }
        if found != SCHEMA_VERSION || present != 9 || long == 0 {
            StateStore::create_schema(&conn).map_err(sqlite)?;
            StateStore::long_descriptor_column(&conn, long != 0).map_err(sqlite)?;
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                restrict_to_user(&side)?;
            }
        }
        Ok(StateStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
            read_only: false,
            written: Arc::default(),
        })
    }

    fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(alias::SCHEMA)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS plugin_state (
                 plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (plugin, key));
             CREATE TABLE IF NOT EXISTS plugin_secret (
                 plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (plugin, key)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS sequence (
                 id TEXT PRIMARY KEY, root TEXT NOT NULL, name TEXT NOT NULL, descriptor TEXT NOT NULL,
                 updated_at TEXT NOT NULL);
             -- What `mtp status` lists of each sequence, so that listing never reads the table's rows,
             -- each a page or more with its descriptor (see `listing`). Added without a schema version:
             -- created on the first open of an earlier file, and kept up by SQLite when an earlier mtp
             -- writes the table.
             CREATE INDEX IF NOT EXISTS sequence_listing ON sequence (id, root, name);
             CREATE TABLE IF NOT EXISTS sequence_record (
                 sequence_id TEXT NOT NULL, integration TEXT NOT NULL, outcome TEXT NOT NULL,
                 updated_at TEXT NOT NULL,
                 PRIMARY KEY (sequence_id, integration)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS sequence_folders (
                 sequence_id TEXT PRIMARY KEY, folders TEXT NOT NULL) WITHOUT ROWID;
             CREATE TRIGGER IF NOT EXISTS sequence_folders_stale
                 AFTER UPDATE OF descriptor ON sequence
                 BEGIN DELETE FROM sequence_folders WHERE sequence_id = old.id; END;
             PRAGMA user_version = 1;",
        )
    }

    /// The `sequence` table's column for a long descriptor ([`super::descriptor::BLOB_DESCRIPTOR`]),
    /// added to a table of an earlier version (where it becomes the last column, which is the point:
    /// SQLite writes a row whose last column is `zeroblob(n)` without the zeros, and a row whose blob
    /// is in the middle with them, 48 MB at 100,000 images, twice). Its trigger forgets a long
    /// descriptor that an earlier mtp replaced by writing the text column alone.
    fn long_descriptor_column(conn: &Connection, present: bool) -> rusqlite::Result<()> {
        if !present {
            conn.execute_batch("ALTER TABLE sequence ADD COLUMN long_descriptor BLOB")?;
        }
        conn.execute_batch(
            "CREATE TRIGGER IF NOT EXISTS sequence_long_descriptor_stale
                 AFTER UPDATE OF descriptor ON sequence
                 WHEN new.descriptor != '' AND new.long_descriptor IS NOT NULL
                 BEGIN UPDATE sequence SET long_descriptor = NULL WHERE id = new.id; END;",
        )
    }

    /// Rewrites a `plugin_state` table of earlier versions, which kept the values inside the key's B-tree
    /// (`WITHOUT ROWID`), as an ordinary table whose index holds the keys alone. There, a large value (a
    /// plan naming 10,000 images is 660 KB) spilled onto overflow pages that SQLite read in full each time
    /// a key search compared against it: per image, in a run of many small images, that was 40 % of the
    /// process (README, Performance). SQLite's docs advise against `WITHOUT ROWID` for rows over 1/20 of
    /// a page (sqlite.org/withoutrowid.html, section 4). The same statements work on either layout, so an
    /// earlier mtp still reads the migrated file. One transaction: a kill leaves the old table.
    fn unclustered_plugin_state(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE plugin_state_migrating (
                 plugin TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (plugin, key));
             INSERT INTO plugin_state_migrating (plugin, key, value)
                 SELECT plugin, key, value FROM plugin_state;
             DROP TABLE plugin_state;
             ALTER TABLE plugin_state_migrating RENAME TO plugin_state;
             COMMIT;",
        )
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })
    }
}

fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Keeps a copy of a damaged database beside it (never deleting or resetting the original) and says so.
fn corrupt(path: &Path, detail: String) -> StateError {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let backup = path.with_file_name(format!("state.db.damaged-{stamp}"));
    let backup = match std::fs::copy(path, &backup) {
        Ok(_) => backup,
        Err(err) => PathBuf::from(format!("(none: copying failed: {err})")),
    };
    StateError::Corrupt {
        path: path.to_path_buf(),
        detail,
        backup,
    }
}

/// The error says the directory or database cannot be written (permissions, a read-only file system).
fn cannot_write(err: &StateError) -> bool {
    match err {
        StateError::Io { cause, .. } => matches!(
            cause.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
        StateError::Sqlite { cause, .. } => matches!(
            cause.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::PermissionDenied
            )
        ),
        _ => false,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: dir.to_path_buf(),
        cause: source,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(StateError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
    }
    Ok(())
}

fn restrict_to_user(path: &Path) -> Result<(), StateError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StateError::Io {
                path: path.to_path_buf(),
                cause: source,
            },
        )?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
