//! The first write to the state store that failed during a run.
//!
//! A run writes to the store in two ways: the host's record of where it stands ([`crate::checkpoint`])
//! and the plugin's own state through the host services ([`crate::services`]). Which of the two meets a
//! full disk first is a matter of timing, so both report here: the first failure asks the plugin to
//! stop at its next safe point (the services answer "cancelled" from then on) and is the error the run
//! ends with, whatever the plugin made of the failed write it was told about.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::state::StateError;

/// Shared by a run's record and the services lent to its plugin.
#[derive(Debug, Default)]
pub struct WriteFailure {
    failed: AtomicBool,
    first: Mutex<Option<StateError>>,
}

impl WriteFailure {
    /// Notes that a write failed; the first failure is the one kept.
    pub fn record(&self, err: StateError) {
        self.failed.store(true, Ordering::SeqCst);
        self.first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(err);
    }

    /// Whether a write has failed (the run must stop at its next safe point).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The first failure, if any (taken: asked once, after the run).
    pub fn take(&self) -> Option<StateError> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(n: u32) -> StateError {
        StateError::NotADirectory {
            path: format!("/{n}").into(),
        }
    }

    #[test]
    fn the_first_failure_is_kept_and_taken_once() {
        let failures = WriteFailure::default();
        assert!(!failures.has_failed());
        failures.record(failure(1));
        failures.record(failure(2));
        assert!(failures.has_failed());
        assert!(failures
            .take()
            .is_some_and(|e| e.to_string().contains("/1")));
        assert!(failures.take().is_none());
    }
}
