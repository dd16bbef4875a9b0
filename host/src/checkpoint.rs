//! The host's record of a run in progress, so that `mtp status` after a `kill -9`, a crash or Ctrl-C shows
//! where the sequence stands (`uploading 36/60 files`, `publishing: outcome unknown`) and what to do next.
//!
//! The record is written before the plugin is called (so it exists before the first byte leaves) and
//! then from the plugin's progress events: at once when it enters a phase ([`Phase`]: sending, publishing,
//! looking up; typed, so the host reads no step names, which are words for the user), and
//! for acknowledged files at most once per [`MIN_INTERVAL`] (one small SQLite transaction; no write per
//! image). The plugin's own state stays the authority for what is acknowledged; this record is what the
//! user reads, and the plugin's final outcome replaces it when the run ends.
//!
//! When the record cannot be written (a full disk), nothing is sent: [`Checkpoint::begin`] fails and the
//! plugin is not called. When a later write fails, the run is asked to stop at its next safe point and
//! ends with that error ([`Checkpoint::write_failure`], shared with the plugin's state services); what
//! was written before stays (every write is its own transaction).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::packed_images::PackedSequence;
use plugin_api::protocol::{Phase, Progress, ProgressEvent, RunOutcome, SequenceState};

use crate::services::{ProgressOrigin, ProgressSink};
use crate::state::{IntegrationRecord, StateError, StateStore};
use crate::write_failure::WriteFailure;

/// At most one progress write per this interval (phase changes are written at once).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1000);

struct Inner {
    progress: Progress,
    phase: Option<Phase>,
    last_write: Option<Instant>,
    latest: Option<RunOutcome>,
}

/// The running record of one integration's run on one sequence.
pub struct Checkpoint {
    store: StateStore,
    sequence: Arc<PackedSequence>,
    integration: String,
    base: IntegrationRecord,
    inner: Mutex<Inner>,
    descriptor_written: AtomicBool,
    /// The first write of the run that failed: the run stops at its next safe point.
    failure: Arc<WriteFailure>,
}

impl Checkpoint {
    /// Starts the record of `integration` on `sequence`. A sequence without a record gets one now, saying the
    /// run has started; an existing record is written again as it is (so a store that cannot be written
    /// is found before anything is sent). An error here means the plugin must not be called.
    pub fn begin(
        store: StateStore,
        sequence: Arc<PackedSequence>,
        integration: &str,
        base: IntegrationRecord,
    ) -> Result<Arc<Checkpoint>, StateError> {
        let checkpoint = Arc::new(Checkpoint {
            store,
            sequence,
            integration: integration.to_string(),
            base,
            inner: Mutex::new(Inner {
                progress: Progress::default(),
                phase: None,
                last_write: None,
                latest: None,
            }),
            descriptor_written: AtomicBool::new(false),
            failure: Arc::default(),
        });
        match &checkpoint.base.outcome {
            None => {
                let mut started = RunOutcome::new(
                    SequenceState::Pending,
                    "started; nothing acknowledged yet (if this run was stopped, nothing was sent)",
                );
                started.next_action = Some("run mtp upload again".into());
                checkpoint.write(started)?;
            }
            Some(_) => {
                let stored = checkpoint.store.put_outcome(
                    checkpoint.sequence.id(),
                    &checkpoint.integration,
                    &checkpoint.base,
                )?;
                if !stored {
                    checkpoint.store.put_record(
                        &*checkpoint.sequence,
                        &checkpoint.integration,
                        &checkpoint.base,
                    )?;
                }
            }
        }
        Ok(checkpoint)
    }

    /// Where a failed write of this run is noted, by the record or by the plugin's state services:
    /// the services report the run as cancelled from then on, so the plugin stops at its next safe
    /// point, and the run ends with the first failure.
    pub fn write_failure(&self) -> Arc<WriteFailure> {
        self.failure.clone()
    }

    /// What the record says now, when the run changed it.
    pub fn latest(&self) -> Option<RunOutcome> {
        self.lock().latest.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A progress sink that records and then forwards to `next`.
    pub fn sink(self: &Arc<Checkpoint>, next: Option<ProgressSink>) -> ProgressSink {
        let me = self.clone();
        Arc::new(move |origin: ProgressOrigin<'_>, event: ProgressEvent| {
            me.observe(&event);
            if let Some(next) = &next {
                next(origin, event);
            }
        })
    }

    fn observe(&self, event: &ProgressEvent) {
        let outcome = {
            let mut inner = self.lock();
            let phase_changed = match event {
                ProgressEvent::Phase { phase } => {
                    let changed = inner.phase != Some(*phase);
                    inner.phase = Some(*phase);
                    changed
                }
                ProgressEvent::Step { .. } => return,
                ProgressEvent::Totals {
                    files_total,
                    bytes_total,
                    files_done,
                    bytes_done,
                } => {
                    inner.progress = Progress {
                        files_done: *files_done,
                        files_total: *files_total,
                        bytes_done: *bytes_done,
                        bytes_total: *bytes_total,
                    };
                    false
                }
                ProgressEvent::Advance { bytes, files } => {
                    inner.progress.files_done += files;
                    inner.progress.bytes_done += bytes;
                    false
                }
                ProgressEvent::Note { .. } => return,
            };
            let due = inner
                .last_write
                .is_none_or(|at| at.elapsed() >= MIN_INTERVAL);
            if !(phase_changed || due) {
                return;
            }
            let Some(outcome) = self.describe(&inner) else {
                return;
            };
            inner.last_write = Some(Instant::now());
            inner.latest = Some(outcome.clone());
            outcome
        };
        if let Err(err) = self.write(outcome) {
            tracing::debug!(
                "cannot record the progress of {}: {err}",
                self.sequence.id()
            );
            self.failure.record(err);
        }
        // At most once a second, while a long run frees what each image needed on the plugin's
        // threads: glibc keeps that in their arenas unless asked (docs/architecture.md, "Memory").
        crate::allocator::release_freed_memory();
    }

    /// The record for where the run stands, or `None` before a phase that says something about it.
    fn describe(&self, inner: &Inner) -> Option<RunOutcome> {
        let p = inner.progress;
        let (state, message, next) = match inner.phase? {
            Phase::Sending => (
                SequenceState::Uploading,
                format!("uploading {}/{} files", p.files_done, p.files_total),
                "run mtp upload again to resume (acknowledged files are not sent again)"
                    .to_string(),
            ),
            Phase::Publishing => (
                SequenceState::Unknown,
                "publishing: outcome unknown (the run did not record an answer)".to_string(),
                format!(
                    "run mtp status or mtp upload: it looks at {} before publishing again",
                    self.integration
                ),
            ),
            Phase::LookingUp => (
                SequenceState::Unpublished,
                "published; looking for the sequence key".to_string(),
                "run mtp status later: the key is looked up again".to_string(),
            ),
            Phase::Other => return None,
        };
        let mut outcome = self
            .base
            .outcome
            .clone()
            .unwrap_or_else(|| RunOutcome::new(state, ""));
        outcome.state = state;
        outcome.message = Some(message);
        outcome.next_action = Some(next);
        if p.files_total > 0 {
            outcome.progress = Some(p);
        }
        Some(outcome)
    }

    fn write(&self, outcome: RunOutcome) -> Result<(), StateError> {
        let record = IntegrationRecord {
            outcome: Some(outcome),
            last_error: self.base.last_error.clone(),
        };
        // The descriptor once (the first write of this run), then the record alone: a descriptor of
        // thousands of images is megabytes, and progress is written every second. A sequence that is
        // no longer stored gets its descriptor again.
        let whole = || {
            self.store
                .put_record(&*self.sequence, &self.integration, &record)
                .map(|()| self.descriptor_written.store(true, Ordering::Relaxed))
        };
        if self.descriptor_written.load(Ordering::Relaxed) {
            self.store
                .put_outcome(self.sequence.id(), &self.integration, &record)
                .and_then(|stored| if stored { Ok(()) } else { whole() })
        } else {
            whole()
        }
    }
}
