//! One process per sequence: an exclusive advisory file lock per sequence in `<state dir>/locks/`.
//!
//! Why a kernel lock (`flock(2)` on Unix, `LockFileEx` on Windows, through the `fs4` crate) and not a
//! lease row in the database: the kernel releases it when the process holding it dies, however it dies
//! (`kill -9`, a crash, a power cut of the process), and never while that process lives. So a lock left
//! by a killed run is simply free for the next run, and no live run's lock can ever be broken; there is
//! no expiry to tune. Every path that works on a sequence takes it — `mtp upload`, the re-check of
//! waiting sequences (`mtp status`, the start of `mtp upload`) and any later long-running host such as
//! `mtp serve` — by calling [`SequenceLock::try_acquire`] with the same state directory.
//!
//! The lock is per sequence (not per state directory): different sequences upload in parallel. Who holds
//! it is written into the lock file itself once it is held (pid, since when, what it does), so a second
//! run can name the other process; that text is information only, the lock is the kernel's.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

/// Who holds a sequence's lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// What it is doing (`upload`, `re-check`).
    pub purpose: String,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("{}", busy_message(.sequence_id, .holder.as_ref()))]
    Busy {
        /// The sequence.
        sequence_id: String,
        /// Who holds it, when it said so.
        holder: Option<Holder>,
    },
    /// The lock file cannot be opened or locked.
    #[error("lock file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

fn busy_message(sequence_id: &str, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "sequence {sequence_id} is already being worked on by process {} ({} since {}); \
             nothing was done here: wait for it to finish (or stop it), then run this again",
            h.pid, h.purpose, h.since
        ),
        None => format!(
            "sequence {sequence_id} is already being worked on by another mtp process; nothing was \
             done here: wait for it to finish (or stop it), then run this again"
        ),
    }
}

/// A held sequence lock; dropping it (or the process ending in any way) releases it.
#[derive(Debug)]
pub struct SequenceLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `sequence_id`: a readable, collision-free name (the id's safe characters plus a
/// hash of the whole id).
pub fn lock_path(state_dir: &Path, sequence_id: &str) -> PathBuf {
    let safe: String = sequence_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    state_dir.join("locks").join(format!(
        "{safe}-{:016x}.lock",
        fnv1a(sequence_id.as_bytes())
    ))
}

/// Creates `dir` readable by the user only, like the rest of the state directory.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// FNV-1a, 64 bit: a stable hash for file names (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl SequenceLock {
    /// Takes the lock of `sequence_id` in `state_dir` at once, or says who holds it.
    pub fn try_acquire(
        state_dir: &Path,
        sequence_id: &str,
        purpose: &str,
    ) -> Result<SequenceLock, LockError> {
        let path = lock_path(state_dir, sequence_id);
        let io = |source| LockError::Io {
            path: path.clone(),
            cause: source,
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        if !FileExt::try_lock_exclusive(&file).map_err(io)? {
            return Err(LockError::Busy {
                sequence_id: sequence_id.to_string(),
                holder: read_holder(&path),
            });
        }
        let holder = Holder {
            pid: std::process::id(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            purpose: purpose.to_string(),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(SequenceLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SequenceLock {
    fn drop(&mut self) {
        // The holder text is cleared so a stale one is never shown; the kernel drops the lock with the
        // file either way.
        let _ = self.file.set_len(0);
    }
}

/// Who holds the lock at `path`, as written there (`None` when not written yet or unreadable).
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The directory holding `store`'s database, where the sequence locks live (a path only: this module
/// stays a leaf the runner and `exclusive` both use).
pub fn state_dir_of(store: &crate::state::StateStore) -> PathBuf {
    store
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder_then_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = SequenceLock::try_acquire(dir.path(), "seq/1", "upload").unwrap();
        match SequenceLock::try_acquire(dir.path(), "seq/1", "upload") {
            Err(err @ LockError::Busy { .. }) => {
                let text = err.to_string();
                assert!(
                    text.contains(&format!("process {}", std::process::id())),
                    "{text}"
                );
                assert!(text.contains("upload since"), "{text}");
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // Another sequence proceeds.
        let other = SequenceLock::try_acquire(dir.path(), "seq/2", "upload").unwrap();
        assert_ne!(other.path(), held.path());
        drop(held);
        SequenceLock::try_acquire(dir.path(), "seq/1", "re-check").unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn lock_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = SequenceLock::try_acquire(dir.path(), "s", "upload").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o077;
        assert_eq!(mode(lock.path()), 0);
        assert_eq!(mode(lock.path().parent().unwrap()), 0);
    }

    #[test]
    fn names_are_safe_and_distinct() {
        let d = Path::new("/s");
        assert_ne!(lock_path(d, "a/b"), lock_path(d, "a_b"));
        let name = lock_path(d, "../x y").file_name().unwrap().to_owned();
        assert!(name.to_string_lossy().starts_with("___x_y-"));
    }
}
