//! The images a run saw and left out (invalid ones with `--skip-invalid`, duplicates), kept in the
//! sequence's folder summary ([`crate::drift::Folder::left_out`]) so that `mtp status` does not count them
//! as added on every later look.

use rusqlite::{params, OptionalExtension};

use super::{StateError, StateStore};
use crate::drift::{with_left_out, Folder};

impl StateStore {
    /// Records `left_out` (paths) as the images the last run of `sequence_id` left out, in its folder
    /// summary; nothing when the sequence has no summary (its images name no folder). One transaction.
    pub fn put_left_out(&self, sequence_id: &str, left_out: &[String]) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT folders FROM sequence_folders WHERE sequence_id = ?1",
                params![sequence_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        // A summary this version cannot read is as good as none (`mtp status` reads the descriptor).
        let Some(folders) = stored.and_then(|json| serde_json::from_str::<Vec<Folder>>(&json).ok())
        else {
            return Ok(());
        };
        if left_out.is_empty() && folders.iter().all(|f| f.left_out.is_empty()) {
            return Ok(());
        }
        let folders = with_left_out(folders, left_out);
        let json = serde_json::to_string(&folders).map_err(|err| StateError::Encode {
            path: self.path.clone(),
            what: format!("the folder summary of sequence {sequence_id}"),
            detail: err.to_string(),
        })?;
        tx.execute(
            "UPDATE sequence_folders SET folders = ?2 WHERE sequence_id = ?1",
            params![sequence_id, json],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}
