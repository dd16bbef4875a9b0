//! Running sequences through the chain of enabled integrations, and keeping each one's record.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use plugin_api::protocol::{
    AuthOutcome, AuthRequest, AuthStatus, Eligibility, Exports, Method, RunMode, RunOutcome,
    RunRequest, SequenceState,
};
use plugin_api::sequence::SequenceDescriptor;
use plugin_api::{ErrorKind, PluginError};
use serde::{Deserialize, Serialize};

use crate::env::EnvValues;
use crate::registry::{Integration, Registry};
use crate::services::{Authorizer, PluginServices, ProgressSink};
use crate::state::{SequenceRow, StateError, StateStore};

/// What the host keeps per sequence per integration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The last outcome the integration reported.
    #[serde(default)]
    pub outcome: Option<RunOutcome>,
    /// The error of the last run, if it ended in one (the outcome above still stands).
    #[serde(default)]
    pub last_error: Option<PluginError>,
}

/// One integration's result for one sequence in this run.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRun {
    /// The integration.
    pub integration: String,
    /// Skipped because the integration does not accept the sequence: why.
    pub not_eligible: Option<String>,
    /// The outcome it reported.
    pub outcome: Option<RunOutcome>,
    /// The error it ended with.
    pub error: Option<PluginError>,
}

/// Runs integrations with the host's services.
pub struct Runner {
    /// The loaded integrations.
    pub registry: Registry,
    env: EnvValues,
    store: StateStore,
    progress: Option<ProgressSink>,
    authorizer: Option<Authorizer>,
    cancel: Arc<AtomicBool>,
}

impl StoredRecord {
    /// Reads a stored record; one that cannot be read (written by a different version) counts as empty,
    /// so the integration simply runs again.
    pub fn from_json(json: &str) -> StoredRecord {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The state of the last outcome, if any.
    pub fn state(&self) -> Option<SequenceState> {
        self.outcome.as_ref().map(|o| o.state)
    }
}

impl Runner {
    /// A runner over `registry`, with `env` and `store`.
    pub fn new(registry: Registry, env: EnvValues, store: StateStore) -> Runner {
        Runner {
            registry,
            env,
            store,
            progress: None,
            authorizer: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sends progress events to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Runner {
        self.progress = Some(sink);
        self
    }

    /// Uses `authorizer` for authorisation prompts.
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> Runner {
        self.authorizer = Some(authorizer);
        self
    }

    /// The flag that, once set (Ctrl-C), asks plugins to stop at their next safe point.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The state store.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The state directory (where `state.db` and the sequence locks live).
    pub fn state_dir(&self) -> std::path::PathBuf {
        crate::exclusive::state_dir_of(&self.store)
    }

    fn services(&self, integration: &Integration) -> PluginServices {
        let mut services = PluginServices::new(
            integration.id(),
            self.env.restricted_to(integration.manifest.declared_env()),
        )
        .with_store(self.store.clone())
        .with_cancel_flag(self.cancel.clone());
        if let Some(sink) = &self.progress {
            services = services.with_progress(sink.clone());
        }
        if let Some(authorizer) = &self.authorizer {
            services = services.with_authorizer(authorizer.clone());
        }
        services
    }

    /// Asks every loaded integration (enabled or not) whether it accepts `sequence`.
    pub async fn eligibility(
        &self,
        sequence: &SequenceDescriptor,
    ) -> Vec<(String, Result<Eligibility, PluginError>)> {
        let mut answers = Vec::new();
        for info in self.registry.infos().iter().filter(|i| i.loaded) {
            let Some(integration) = self.registry.get(&info.id) else {
                continue;
            };
            let services = self.services(integration).to_ffi();
            let answer = integration
                .call_json(services, Method::Eligibility, sequence)
                .await;
            answers.push((info.id.clone(), answer));
        }
        answers
    }

    /// Authorises the user with `integration` (`mtp auth <id>`).
    pub async fn authorize(
        &self,
        id: &str,
        token: Option<String>,
    ) -> Result<AuthOutcome, PluginError> {
        let integration = self.enabled(id)?;
        integration
            .call_json(
                self.services(integration).to_ffi(),
                Method::Authorize,
                &AuthRequest { token },
            )
            .await
    }

    /// Who is authorised with each enabled integration; `None` for one that needs no authorisation.
    pub async fn auth_statuses(&self) -> Vec<(String, Result<Option<AuthStatus>, PluginError>)> {
        let mut statuses = Vec::new();
        for integration in self.registry.chain() {
            let answer = integration
                .call_json::<_, AuthStatus>(
                    self.services(integration).to_ffi(),
                    Method::AuthStatus,
                    &(),
                )
                .await;
            let answer = match answer {
                Ok(status) => Ok(Some(status)),
                Err(err) if err.kind == ErrorKind::Unsupported => Ok(None),
                Err(err) => Err(err),
            };
            statuses.push((integration.id().to_string(), answer));
        }
        statuses
    }

    fn enabled(&self, id: &str) -> Result<&Integration, PluginError> {
        match self.registry.chain().find(|i| i.id() == id) {
            Some(integration) => Ok(integration),
            None => Err(PluginError::invalid_input(match self.registry.info(id) {
                Some(info) => format!("integration {id} is {}", info.status_text()),
                None => format!("no integration {id} is installed (see mtp integrations list)"),
            })),
        }
    }

    /// The stored records of `sequence_id`, by integration.
    pub fn records_of(
        &self,
        sequence_id: &str,
    ) -> Result<BTreeMap<String, StoredRecord>, StateError> {
        Ok(self
            .store
            .records_of(sequence_id)?
            .into_iter()
            .map(|r| (r.integration, StoredRecord::from_json(&r.outcome_json)))
            .collect())
    }

    /// Runs `sequence` through every enabled integration that accepts it, upstream first, persisting each
    /// integration's record as soon as it reports.
    pub async fn run_sequence(
        &self,
        sequence: &SequenceDescriptor,
        mode: RunMode,
        dry_run: bool,
        options: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<IntegrationRun>, StateError> {
        let descriptor_json = serde_json::to_string(sequence).unwrap_or_default();
        let row = SequenceRow {
            id: &sequence.id,
            root: &sequence.root,
            name: &sequence.name,
            descriptor_json: &descriptor_json,
        };
        let mut records = self.records_of(&sequence.id)?;
        let mut exported: BTreeMap<String, Exports> = BTreeMap::new();
        let mut runs = Vec::new();
        for integration in self.registry.chain() {
            let id = integration.id().to_string();
            let mut run = IntegrationRun {
                integration: id.clone(),
                not_eligible: None,
                outcome: None,
                error: None,
            };
            let previous = records.get(&id).and_then(|r| r.outcome.clone());
            if mode == RunMode::Recheck
                && !previous.as_ref().is_some_and(|p| p.state.needs_recheck())
            {
                // Only sequences left waiting are re-checked; the rest keep what they have.
                if let Some(p) = previous {
                    exported.insert(id.clone(), p.exports.clone());
                }
                continue;
            }
            let services = self.services(integration).to_ffi();
            match integration
                .call_json::<_, Eligibility>(services, Method::Eligibility, sequence)
                .await
            {
                Ok(e) if !e.eligible => {
                    run.not_eligible = Some(e.reason.unwrap_or_else(|| "not eligible".into()));
                    runs.push(run);
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    run.error = Some(err);
                    runs.push(run);
                    continue;
                }
            }
            let upstream: BTreeMap<String, Exports> = integration
                .manifest
                .after
                .iter()
                .filter_map(|up| exported.get(up).map(|e| (up.clone(), e.clone())))
                .collect();
            let request = RunRequest {
                mode,
                sequence: sequence.clone(),
                dry_run,
                upstream,
                previous: previous.clone(),
                options: options.clone(),
            };
            let checkpoint = self.checkpoint(&row, &id, records.get(&id));
            let result = integration
                .call_json::<_, RunOutcome>(
                    self.services(integration)
                        .with_progress(checkpoint.sink(self.progress.clone()))
                        .to_ffi(),
                    Method::Run,
                    &request,
                )
                .await;
            let mut record = records.remove(&id).unwrap_or_default();
            if result.is_err() {
                // Interrupted or failed mid-run: keep what the run recorded it had done.
                record.outcome = checkpoint.latest().or(record.outcome);
            }
            match result {
                Ok(outcome) => {
                    exported.insert(id.clone(), outcome.exports.clone());
                    record.outcome = Some(outcome.clone());
                    record.last_error = None;
                    run.outcome = Some(outcome);
                }
                Err(err) => {
                    if matches!(err.kind, ErrorKind::Rejected | ErrorKind::InvalidInput) {
                        let mut failed =
                            RunOutcome::new(SequenceState::Failed, err.message.clone());
                        failed.next_action =
                            Some("fix the cause, then run mtp upload again".into());
                        record.outcome = Some(failed);
                    }
                    if let Some(p) = &record.outcome {
                        exported.insert(id.clone(), p.exports.clone());
                    }
                    record.last_error = Some(err.clone());
                    run.error = Some(err);
                }
            }
            let json = serde_json::to_string(&record).unwrap_or_default();
            self.store.put_record(&row, &id, &json)?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// Re-checks every stored sequence that some integration left waiting (unpublished, waiting for
    /// upstream, publish outcome unknown), politely: one sequence at a time, skipping `except` (sequences
    /// about to be uploaded anyway).
    pub async fn recheck_pending(
        &self,
        except: &[String],
    ) -> Result<Vec<(SequenceDescriptor, Vec<IntegrationRun>)>, StateError> {
        let mut pending: BTreeMap<String, SequenceDescriptor> = BTreeMap::new();
        for record in self.store.records()? {
            let waiting = StoredRecord::from_json(&record.outcome_json)
                .state()
                .is_some_and(SequenceState::needs_recheck);
            if waiting && !except.contains(&record.sequence_id) {
                if pending.contains_key(&record.sequence_id) {
                    continue;
                }
                let stored = self.store.descriptor(&record.sequence_id)?;
                if let Some(descriptor) = stored.and_then(|json| serde_json::from_str(&json).ok()) {
                    pending.insert(record.sequence_id.clone(), descriptor);
                }
            }
        }
        let mut results = Vec::new();
        for descriptor in pending.into_values() {
            // Another process working on it (or re-checking it) will do it: skip, never wait.
            let Ok(_lock) = self.lock_sequence(&descriptor.id, "re-check") else {
                continue;
            };
            let runs = self
                .run_sequence(
                    &descriptor,
                    RunMode::Recheck,
                    false,
                    &serde_json::Map::new(),
                )
                .await?;
            results.push((descriptor, runs));
        }
        Ok(results)
    }
}
