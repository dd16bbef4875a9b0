//! The runner's side of "one process per sequence" ([`crate::lock`]) and of the in-progress record
//! ([`crate::checkpoint`]), kept apart from the chain logic in [`crate::runner`].

use std::sync::Arc;

use crate::packed_images::PackedSequence;
use plugin_api::protocol::RunMode;

use crate::checkpoint::Checkpoint;
use crate::lock::{LockError, SequenceLock};
use crate::options::RunOptions;
use crate::runner::{IntegrationRun, Runner};
use crate::state::{IntegrationRecord, StateError};

/// Why a locked run did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum LockedRunError {
    /// Another process holds the sequence.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl Runner {
    /// Takes the lock of sequence `id` at once, or says which process holds it.
    pub fn lock_sequence(&self, id: &str, purpose: &str) -> Result<SequenceLock, LockError> {
        SequenceLock::try_acquire(&self.state_dir(), id, purpose)
    }

    /// [`Runner::run_sequence`] holding the sequence's lock for the whole run: a second process on the
    /// same sequence stops at once with [`LockedRunError::Lock`] and does nothing.
    pub async fn run_sequence_locked(
        &self,
        sequence: &Arc<PackedSequence>,
        mode: RunMode,
        dry_run: bool,
        options: &RunOptions,
    ) -> Result<Vec<IntegrationRun>, LockedRunError> {
        let purpose = match mode {
            RunMode::Upload => "upload",
            RunMode::Recheck => "re-check",
        };
        let _lock = self.lock_sequence(sequence.id(), purpose)?;
        Ok(self.run_sequence(sequence, mode, dry_run, options).await?)
    }

    /// The in-progress record of `integration` on `sequence`, starting from `stored`; an error when it
    /// cannot be written (then nothing may be sent).
    pub(crate) fn checkpoint(
        &self,
        sequence: Arc<PackedSequence>,
        integration: &str,
        stored: Option<&IntegrationRecord>,
    ) -> Result<Arc<Checkpoint>, StateError> {
        Checkpoint::begin(
            self.store().clone(),
            sequence,
            integration,
            stored.cloned().unwrap_or_default(),
        )
    }
}
