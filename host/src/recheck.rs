//! Re-checks: `mtp status` and the look before `mtp upload` ask the services about sequences left waiting,
//! within a short budget of their own ([`RECHECK_BUDGET`]), and never let a failed or unanswered re-check
//! touch a record: the user sees the stored state and `not re-checked: <service> unreachable`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::protocol::{RunMode, RunOutcome};
use plugin_api::{ErrorKind, PluginError};

use crate::chain_check::UpstreamResult;
use crate::options::RunOptions;
use crate::packed_images::PackedSequence;
use crate::registry::LoadedPlugin;
use crate::runner::{IntegrationRun, Runner};
use crate::state::{IntegrationRecord, StateError};

/// How long all re-checks of one command may take together: `mtp status` answers within 3 s whatever
/// the network does, and `mtp upload` waits no longer on other sequences. What is not re-checked in
/// time is re-checked by the next command.
pub const RECHECK_BUDGET: Duration = Duration::from_millis(2_500);

impl Runner {
    /// Re-checks every stored sequence that some integration left waiting (unpublished, waiting for
    /// upstream, publish outcome unknown), politely: one sequence at a time, skipping `except` (sequences
    /// about to be uploaded anyway), all within [`RECHECK_BUDGET`]. A sequence the budget did not reach
    /// or finish has one run per integration saying so, and its records are left as they are.
    pub async fn recheck_pending(
        &self,
        except: &[String],
    ) -> Result<Vec<(PackedSequence, Vec<IntegrationRun>)>, StateError> {
        let mut pending: BTreeSet<String> = BTreeSet::new();
        for listed in self.store().records()? {
            let waiting = listed
                .record
                .state()
                .is_some_and(plugin_api::protocol::SequenceState::needs_recheck);
            if waiting && !except.contains(&listed.sequence_id) {
                pending.insert(listed.sequence_id);
            }
        }
        let deadline = Instant::now() + RECHECK_BUDGET;
        let mut results = Vec::new();
        // One descriptor at a time, read when its turn comes.
        for id in pending {
            // Another process working on it (or re-checking it) will do it: skip, never wait.
            let Ok(_lock) = self.lock_sequence(&id, "re-check") else {
                continue;
            };
            let Some(descriptor) = self.store().packed_descriptor(&id)? else {
                continue;
            };
            let descriptor = Arc::new(descriptor);
            let left = deadline.saturating_duration_since(Instant::now());
            let none = RunOptions::none();
            let run = self.run_sequence(&descriptor, RunMode::Recheck, false, &none);
            let runs = match tokio::time::timeout(left, run).await {
                Ok(runs) => runs?,
                Err(_) => self.not_answered(descriptor.id())?,
            };
            results.push((Arc::unwrap_or_clone(descriptor), runs));
        }
        Ok(results)
    }

    /// One run per integration waiting on `sequence`, saying the re-check got no answer in time.
    fn not_answered(&self, sequence_id: &str) -> Result<Vec<IntegrationRun>, StateError> {
        let waiting: Vec<String> = self
            .store()
            .records_of(sequence_id)?
            .into_iter()
            .filter(|r| {
                r.record
                    .state()
                    .is_some_and(plugin_api::protocol::SequenceState::needs_recheck)
            })
            .map(|r| r.integration)
            .collect();
        Ok(waiting
            .into_iter()
            .map(|id| {
                let name = self
                    .registry
                    .get(&id)
                    .map_or(id.clone(), |i| i.manifest.name.clone());
                IntegrationRun {
                    integration: id,
                    not_eligible: None,
                    skipped: None,
                    outcome: None,
                    error: Some(PluginError::new(
                        ErrorKind::Transient,
                        format!(
                            "not re-checked: {name} unreachable (no answer within {:.1} s)",
                            RECHECK_BUDGET.as_secs_f64()
                        ),
                    )),
                }
            })
            .collect())
    }

    /// Keeps what a re-check of `integration` on `sequence` found: an outcome replaces the record's
    /// (`record`); an error leaves the record as it is and is said as `not re-checked: ...`.
    pub(crate) fn recheck_result(
        &self,
        sequence: &PackedSequence,
        integration: &LoadedPlugin,
        mut record: IntegrationRecord,
        result: Result<RunOutcome, PluginError>,
        run: &mut IntegrationRun,
    ) -> Result<UpstreamResult, StateError> {
        match result {
            Ok(mut outcome) => {
                outcome.exports = Self::public_exports(integration, &outcome);
                record.outcome = Some(outcome.clone());
                record.last_error = None;
                self.store()
                    .put_record(sequence, integration.id(), &record)?;
                run.outcome = Some(outcome.clone());
                Ok(UpstreamResult::Outcome(outcome))
            }
            Err(err) => {
                let reason = match err.kind {
                    ErrorKind::Transient => format!("{} unreachable", integration.manifest.name),
                    _ => err.message.clone(),
                };
                let detail = if err.kind == ErrorKind::Transient {
                    format!(" ({})", err.message)
                } else {
                    String::new()
                };
                run.error = Some(PluginError::new(
                    err.kind,
                    format!("not re-checked: {reason}{detail}"),
                ));
                Ok(UpstreamResult::Error {
                    message: err.message,
                    outcome: record.outcome,
                })
            }
        }
    }
}
