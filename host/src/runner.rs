//! Running sequences through the chain of enabled integrations, and keeping each one's record.
//!
//! The runner owns the run: it attributes every progress event to its sequence, decides the record
//! after an error ([`failed_outcome`]), and hands secret exports downstream fresh from the secret store
//! without ever persisting them (docs/architecture.md, "Records and secrets").

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::packed_images::PackedSequence;
use plugin_api::protocol::{
    AuthOutcome, AuthRequest, AuthStatus, Eligibility, Exports, Method, RunMode, RunOutcome,
    SequenceState,
};
use plugin_api::{ErrorKind, PluginError};
use serde::Serialize;

use crate::chain_check::{already_published, upstream_skip, PlanEntry, UpstreamResult};
use crate::env::EnvValues;
use crate::options::RunOptions;
use crate::registry::{LoadedPlugin, Registry};
use crate::sequence_payload::{AskedOnce, RunRequestRef};
use crate::services::{Authorizer, PluginServices, ProgressSink};
use crate::state::{IntegrationRecord, StateError, StateStore};

/// How the reason of an upstream that does not take the sequence begins (see `upstream_skip`).
const NOT_ELIGIBLE: &str = "not eligible:";

/// One integration's result for one sequence in this run.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRun {
    /// The integration.
    pub integration: String,
    /// Skipped because the integration does not accept the sequence: why.
    pub not_eligible: Option<String>,
    /// Skipped by the chain (an integration it needs did not deliver, or already published): why.
    pub skipped: Option<String>,
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
    pub(crate) asked: AskedOnce,
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
            asked: AskedOnce::default(),
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
        crate::lock::state_dir_of(&self.store)
    }

    pub(crate) fn services(
        &self,
        integration: &LoadedPlugin,
        sequence_id: Option<&str>,
    ) -> PluginServices {
        let mut services = PluginServices::new(
            integration.id(),
            self.env.for_manifest(&integration.manifest),
        )
        .with_store(self.store.clone())
        .with_cancel_flag(self.cancel.clone());
        if let Some(sequence_id) = sequence_id {
            services = services.for_sequence(sequence_id);
        }
        if let Some(sink) = &self.progress {
            services = services.with_progress(sink.clone());
        }
        if let Some(authorizer) = &self.authorizer {
            services = services.with_authorizer(authorizer.clone());
        }
        services
    }

    /// Whether `integration` takes `sequence`, asked once per descriptor.
    async fn eligibility_of(
        &self,
        integration: &LoadedPlugin,
        sequence: &Arc<PackedSequence>,
    ) -> Result<Eligibility, PluginError> {
        let services = || self.services(integration, Some(sequence.id()));
        self.asked
            .ask_eligibility(integration, services, sequence)
            .await
    }

    /// Asks every loaded integration (enabled or not) whether it accepts `sequence`.
    pub async fn eligibility(
        &self,
        sequence: &Arc<PackedSequence>,
    ) -> Vec<(String, Result<Eligibility, PluginError>)> {
        let mut answers = Vec::new();
        for info in self.registry.infos().iter().filter(|i| i.loaded) {
            let Some(integration) = self.registry.get(&info.id) else {
                continue;
            };
            let answer = self.eligibility_of(integration, sequence).await;
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
                self.services(integration, None).to_ffi(),
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
                    self.services(integration, None).to_ffi(),
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

    fn enabled(&self, id: &str) -> Result<&LoadedPlugin, PluginError> {
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
    ) -> Result<BTreeMap<String, IntegrationRecord>, StateError> {
        Ok(self
            .store
            .records_of(sequence_id)?
            .into_iter()
            .map(|r| (r.integration, r.record))
            .collect())
    }

    /// What `integration` hands downstream: its outcome's exports without the secret ones, which
    /// [`Runner::upstream_for`] reads fresh from the secret store instead.
    pub(crate) fn public_exports(integration: &LoadedPlugin, outcome: &RunOutcome) -> Exports {
        let mut exports = outcome.exports.clone();
        exports.retain(|name, _| !integration.manifest.is_secret_export(name));
        exports
    }

    /// The upstream exports `integration` receives: the public ones its upstream integrations reported,
    /// plus each upstream's secret exports as its secret store holds them now (so a re-authorisation
    /// reaches downstream integrations at once, and no record ever holds a token).
    fn upstream_for(
        &self,
        integration: &LoadedPlugin,
        exported: &BTreeMap<String, Exports>,
    ) -> Result<BTreeMap<String, Exports>, StateError> {
        let mut upstream = BTreeMap::new();
        for up in &integration.manifest.after {
            let Some(public) = exported.get(up) else {
                continue;
            };
            let mut exports = public.clone();
            if let Some(up_plugin) = self.registry.get(up) {
                for name in &up_plugin.manifest.secret_exports {
                    if let Some(secret) = self.store.get(up, name, true)? {
                        exports.insert(name.clone(), secret);
                    }
                }
            }
            upstream.insert(up.clone(), exports);
        }
        Ok(upstream)
    }

    /// Runs `sequence` through every enabled integration that accepts it, upstream first, persisting each
    /// integration's record as soon as it reports.
    pub async fn run_sequence(
        &self,
        sequence: &Arc<PackedSequence>,
        mode: RunMode,
        dry_run: bool,
        options: &RunOptions,
    ) -> Result<Vec<IntegrationRun>, StateError> {
        // Becomes the stored sequence an integration recognises these photos as (`RunOutcome::same_as`).
        let mut sequence = sequence.clone();
        let mut merged = false;
        let mut records = self.records_of(sequence.id())?;
        let mut exported: BTreeMap<String, Exports> = BTreeMap::new();
        // How each integration ended, for the ones chained after it that need it.
        let mut results: BTreeMap<String, UpstreamResult> = BTreeMap::new();
        let enabled: Vec<String> = self.registry.chain().map(|i| i.id().to_string()).collect();
        let mut runs = Vec::new();
        for integration in self.registry.chain().filter(|i| options.includes(i.id())) {
            let id = integration.id().to_string();
            let mut run = IntegrationRun {
                integration: id.clone(),
                not_eligible: None,
                skipped: None,
                outcome: None,
                error: None,
            };
            let previous = records.get(&id).and_then(|r| r.outcome.clone());
            if mode == RunMode::Recheck
                && !previous.as_ref().is_some_and(|p| p.state.needs_recheck())
            {
                // Only sequences left waiting are re-checked; the rest keep what they have.
                if let Some(p) = previous {
                    exported.insert(id.clone(), Self::public_exports(integration, &p));
                    results.insert(id.clone(), UpstreamResult::Outcome(p));
                }
                continue;
            }
            if merged
                && previous
                    .as_ref()
                    .is_some_and(|p| p.state == SequenceState::Published)
            {
                // The photos were recognised as a stored sequence this integration already published.
                if let Some(p) = previous {
                    exported.insert(id.clone(), Self::public_exports(integration, &p));
                    results.insert(id.clone(), UpstreamResult::Outcome(p));
                }
                run.skipped = Some("already published with these photos; nothing sent".into());
                runs.push(run);
                continue;
            }
            if let Some(reason) = already_published(
                &integration.manifest,
                &options.for_integration(&integration.manifest),
            ) {
                results.insert(id.clone(), UpstreamResult::Skipped(reason.clone()));
                run.skipped = Some(reason);
                runs.push(run);
                continue;
            }
            match self.eligibility_of(integration, &sequence).await {
                Ok(e) if !e.eligible => {
                    let reason = e.reason.unwrap_or_else(|| "not eligible".into());
                    results.insert(
                        id.clone(),
                        UpstreamResult::Skipped(format!("{NOT_ELIGIBLE} {reason}")),
                    );
                    run.not_eligible = Some(reason);
                    runs.push(run);
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    results.insert(
                        id.clone(),
                        UpstreamResult::Error {
                            message: err.message.clone(),
                            outcome: previous.clone(),
                        },
                    );
                    run.error = Some(err);
                    runs.push(run);
                    continue;
                }
            }
            if let Some(reason) = upstream_skip(&integration.manifest, &results, &enabled) {
                // An upstream that does not take the sequence (Mapillary and an aerial one) will not
                // take it next time either: running again cannot help.
                let for_good = integration.manifest.after.iter().any(|up| {
                    matches!(results.get(up), Some(UpstreamResult::Skipped(r)) if r.starts_with(NOT_ELIGIBLE))
                });
                self.record_upstream_skip(&sequence, &id, &mut records, &reason, for_good)?;
                results.insert(id.clone(), UpstreamResult::Skipped(reason.clone()));
                run.skipped = Some(reason);
                runs.push(run);
                continue;
            }
            let upstream = self.upstream_for(integration, &exported)?;
            let integration_options = options.for_integration(&integration.manifest);
            let request = RunRequestRef {
                mode,
                dry_run,
                upstream: &upstream,
                previous: &previous,
                options: &integration_options,
            };
            if mode == RunMode::Recheck {
                // A re-check never writes progress into the record, and an error leaves it as it was.
                let services = self.services(integration, Some(sequence.id()));
                let result = integration.run(services, &sequence, request).await;
                let record = records.remove(&id).unwrap_or_default();
                let result =
                    self.recheck_result(&sequence, integration, record, result, &mut run)?;
                if let UpstreamResult::Outcome(p)
                | UpstreamResult::Error {
                    outcome: Some(p), ..
                } = &result
                {
                    exported.insert(id.clone(), Self::public_exports(integration, p));
                }
                results.insert(id.clone(), result);
                runs.push(run);
                continue;
            }
            // Nothing is sent unless the record of the run can be written first.
            // The checkpoint shares the run's one copy of the descriptor.
            let checkpoint = self.checkpoint(sequence.clone(), &id, records.get(&id))?;
            let services = self
                .services(integration, Some(sequence.id()))
                .with_write_failure(checkpoint.write_failure())
                .with_progress(checkpoint.sink(self.progress.clone()));
            let result = integration.run(services, &sequence, request).await;
            let mut record = records.remove(&id).unwrap_or_default();
            if result.is_err() {
                // Interrupted or failed mid-run: keep what the run recorded it had done.
                record.outcome = checkpoint.latest().or(record.outcome);
            }
            match result {
                Ok(mut outcome) => {
                    if let Some(into) = self.same_as(&sequence, mode, dry_run, &mut outcome)? {
                        Arc::make_mut(&mut sequence).set_id(into);
                        records = self.records_of(sequence.id())?;
                        record = records.remove(&id).unwrap_or_default();
                        // Those after it run all the same for what it exports anew (an added sequence).
                        let now = Self::public_exports(integration, &outcome);
                        merged = record.outcome.as_ref().is_none_or(|o| o.exports == now);
                    }
                    outcome.exports = Self::public_exports(integration, &outcome);
                    results.insert(id.clone(), UpstreamResult::Outcome(outcome.clone()));
                    exported.insert(id.clone(), outcome.exports.clone());
                    record.outcome = Some(outcome.clone());
                    record.last_error = None;
                    run.outcome = Some(outcome);
                }
                Err(err) => {
                    if let Some(failed) = failed_outcome(&err) {
                        record.outcome = Some(failed);
                    }
                    if let Some(p) = &record.outcome {
                        exported.insert(id.clone(), Self::public_exports(integration, p));
                    }
                    results.insert(
                        id.clone(),
                        UpstreamResult::Error {
                            message: err.message.clone(),
                            outcome: record.outcome.clone(),
                        },
                    );
                    record.last_error = Some(err.clone());
                    run.error = Some(err);
                }
            }
            if let Some(outcome) = &mut record.outcome {
                // A record written by an older version may still hold a secret: drop it on rewrite.
                outcome.exports = Self::public_exports(integration, outcome);
            }
            let stored = self.store.put_record(&*sequence, &id, &record);
            if let Some(failure) = checkpoint.write_failure().take() {
                // The run was stopped because its record or its plugin's state could not be written:
                // say so, whatever the plugin reported (what it acknowledged is in its own state, or
                // sent again next time).
                return Err(failure);
            }
            stored?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// The stored sequence `outcome` says these photos are (`RunOutcome::same_as`), once the store
    /// keeps them as that one: this folder's id becomes its alias and the message says where the
    /// photos were. `None` when the outcome names none (or in a dry run).
    fn same_as(
        &self,
        sequence: &PackedSequence,
        mode: RunMode,
        dry_run: bool,
        outcome: &mut RunOutcome,
    ) -> Result<Option<String>, StateError> {
        let Some(into) = outcome.same_as.take() else {
            return Ok(None);
        };
        if dry_run || mode != RunMode::Upload {
            return Ok(None);
        }
        if into == sequence.id() {
            // The same sequence, its photos found at new paths: nothing to merge.
            return Ok(Some(into));
        }
        let before = self.store.descriptor(&into)?.map(|d| d.root);
        self.store.merge_into(sequence.id(), &into)?;
        let said = outcome.message.take().unwrap_or_default();
        outcome.message = Some(match before {
            Some(root) if root != sequence.header().root => {
                let gone = !std::path::Path::new(&root).exists();
                let how = if gone { "moved from" } else { "same photos as" };
                format!("{how} {root}: {said}")
            }
            _ => said,
        });
        Ok(Some(into))
    }

    /// Stores that integration `id` was skipped because an integration it needs did not deliver, so its
    /// record says why instead of waiting for ever; a published record is kept as it is.
    fn record_upstream_skip(
        &self,
        sequence: &PackedSequence,
        id: &str,
        records: &mut BTreeMap<String, IntegrationRecord>,
        reason: &str,
        for_good: bool,
    ) -> Result<(), StateError> {
        let mut record = records.remove(id).unwrap_or_default();
        if record.state() == Some(SequenceState::Published) {
            return Ok(());
        }
        let mut outcome = RunOutcome::new(SequenceState::Pending, format!("skipped: {reason}"));
        outcome.next_action = Some(if for_good {
            "nothing to do: this sequence cannot go there".into()
        } else {
            "run mtp upload again once that is resolved".into()
        });
        record.outcome = Some(outcome);
        record.last_error = None;
        self.store.put_record(sequence, id, &record)
    }

    /// What each enabled integration will do with `sequence`, decided before anything is sent: skipped
    /// (already published, not eligible, or an integration it needs will be skipped or only dry-run), or
    /// run once its needs are fixed — its login (`mtp auth status`) and what its eligibility says it
    /// needs. `mtp upload` refuses a sequence while any integration that will run has needs, and
    /// `mtp sequence inspect` shows the same plan.
    pub async fn preflight(
        &self,
        sequence: &Arc<PackedSequence>,
        dry_run: bool,
        options: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<PlanEntry> {
        let enabled: Vec<String> = self.registry.chain().map(|i| i.id().to_string()).collect();
        let mut planned: BTreeMap<String, UpstreamResult> = BTreeMap::new();
        let mut plan = Vec::new();
        for integration in self.registry.chain() {
            let id = integration.id().to_string();
            let mut entry = PlanEntry {
                integration: id.clone(),
                not_eligible: None,
                skipped: already_published(&integration.manifest, options),
                needs: Vec::new(),
                not_logged_in: false,
                notes: Vec::new(),
            };
            if entry.skipped.is_none() {
                match self.eligibility_of(integration, sequence).await {
                    Ok(e) if !e.eligible => {
                        entry.not_eligible =
                            Some(e.reason.unwrap_or_else(|| "no reason given".into()))
                    }
                    Ok(e) => {
                        entry.needs = e.needs;
                        entry.notes = e.notes;
                    }
                    Err(err) => entry.needs.push(format!(
                        "could not ask whether it takes the sequence: {err}"
                    )),
                }
            }
            if entry.runs() {
                entry.skipped = upstream_skip(&integration.manifest, &planned, &enabled);
            }
            // A dry run needs no login: Mapillary's and the archive's send nothing (an integration whose
            // dry run asks its service, as Panoramax's does, says itself that it is not logged in).
            if entry.runs() {
                if !dry_run {
                    let status = integration
                        .call_json::<_, AuthStatus>(
                            self.services(integration, Some(sequence.id())).to_ffi(),
                            Method::AuthStatus,
                            &(),
                        )
                        .await;
                    if let Ok(status) = status {
                        if !status.authorised {
                            entry.not_logged_in = true;
                            entry.needs.insert(
                                0,
                                format!(
                                    "not logged in to {}: run `mtp auth {id}`",
                                    integration.manifest.name
                                ),
                            );
                        }
                    }
                }
            } else {
                entry.needs.clear();
                entry.not_logged_in = false;
            }
            let result = match (&entry.not_eligible, &entry.skipped) {
                (Some(reason), _) => UpstreamResult::Skipped(format!("not eligible: {reason}")),
                (None, Some(reason)) => UpstreamResult::Skipped(reason.clone()),
                (None, None) => UpstreamResult::Outcome(RunOutcome::new(
                    if dry_run {
                        SequenceState::DryRun
                    } else {
                        SequenceState::Published
                    },
                    "planned",
                )),
            };
            planned.insert(id, result);
            plan.push(entry);
        }
        plan
    }
}

/// The one rule for when the host marks a sequence `failed` with an integration: the run ended in an
/// error that says the sequence or its settings are wrong ([`ErrorKind::Rejected`],
/// [`ErrorKind::InvalidInput`]), so retrying as it is cannot help. Other errors (network, server,
/// authorisation, cancellation) leave the previous outcome standing with the error beside it, so the next
/// run resumes. An integration may also report [`SequenceState::Failed`] itself (Mapillary does when its
/// failed-session check says processing failed; a publication later than the deadline is overdue, not
/// failed). Either way the record is kept, so `mtp status` says why, and the next
/// `mtp upload` runs the integration again with that record as `previous` (see
/// [`SequenceState::Failed`]).
pub fn failed_outcome(err: &PluginError) -> Option<RunOutcome> {
    if !matches!(err.kind, ErrorKind::Rejected | ErrorKind::InvalidInput) {
        return None;
    }
    let mut failed = RunOutcome::new(SequenceState::Failed, err.message.clone());
    failed.next_action = Some("fix the cause, then run mtp upload again".into());
    Some(failed)
}
