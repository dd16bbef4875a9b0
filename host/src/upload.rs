//! The upload use case, one for every face of the host (`mtp upload` and `mtp serve`): read and validate
//! each sequence, plan the chain on it, re-check the others left waiting, lock the sequence, run it, and
//! describe each integration's result. The faces only gather an [`UploadRequest`] and render what comes
//! back, so an option one face accepts means the same in the other.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mtp_sequence::{read_sequence, Overrides};
use plugin_api::protocol::RunMode;
use plugin_api::sequence::SequenceDescriptor;
use serde_json::{Map, Value};

use crate::chain_check::{blocking_exit, blocking_message, PlanEntry};
use crate::destinations::{self, UnknownDestination};
use crate::exit::Exit;
use crate::lock::{LockError, SequenceLock};
use crate::options::{OptionError, RunOptions};
use crate::packed_images::{PackedSequence, ScanError};
use crate::registry::Registry;
use crate::runner::{IntegrationRun, Runner};
use crate::state::StateError;

/// What plugins that declare no options receive for `jobs`: the number, 4 when not given (as every
/// plugin received before plugin API 1.2).
const UNDECLARED_DEFAULT_JOBS: u64 = 4;

/// One upload as a user asks for it, whichever face they use: `mtp upload`'s arguments, or the body of
/// `POST /api/uploads`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadRequest {
    /// Sequence directories (MTPDU sequences or folders of geotagged JPEGs).
    pub dirs: Vec<PathBuf>,
    /// Send nothing: prepare every file as an upload would and say what would have been published.
    pub dry_run: bool,
    /// Upload a sequence with problems, leaving out (and naming) every image that has one.
    pub skip_invalid: bool,
    /// Options of single integrations, `<integration>.<name>=<value>` (`mapillary.jobs=8`).
    pub options: Vec<String>,
    /// Files uploaded in parallel (every option declared with the flag `jobs`).
    pub jobs: Option<u64>,
    /// Publish again a sequence whose publish outcome is unknown (flag `republish`).
    pub republish: bool,
    /// Send a sequence even where its MTPDU sequence log says it is already published.
    pub force: bool,
    /// Send the images added to a published sequence's folder since (flag `add_new_images`).
    pub add_new_images: bool,
    /// Upload bandwidth cap shared by all parallel jobs, `500K`, `2M` (flag `bwlimit`).
    pub bwlimit: Option<String>,
    /// Upload everything but publish nothing (flag `no_publish`).
    pub no_publish: bool,
    /// Values that beat the sequence's own metadata (name, description, transport, tags, time offset).
    pub overrides: Overrides,
    /// The integrations to send to (with what they need); `None`: every one that is ready.
    pub destinations: Option<Vec<String>>,
}

/// Why an upload request is refused before anything is read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// An option or flag does not fit the integrations' manifests.
    #[error(transparent)]
    Options(#[from] OptionError),
    /// A destination is not an enabled integration.
    #[error(transparent)]
    Destination(#[from] UnknownDestination),
}

/// A `bwlimit` value checked as the plugins read it; the error says why it is refused.
pub fn check_bwlimit(text: &str) -> Result<(), String> {
    plugin_api::sdk::rate_limit::parse_rate(text)
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// A sequence that was read, validated and planned, ready to be locked and run.
#[derive(Debug, Clone)]
pub struct PreparedSequence {
    /// The sequence as the integrations receive it (shared with the run's checkpoints and the
    /// integrations that read its images by range).
    pub descriptor: Arc<PackedSequence>,
    /// One line per image left out by `skip_invalid`, naming it and its problems.
    pub skipped: Vec<String>,
    /// What the chain will do with each enabled integration.
    pub plan: Vec<PlanEntry>,
    /// The enabled integrations this upload leaves out, each with why (not chosen, not ready).
    pub left_out: Vec<(String, String)>,
    /// The folder's images this upload leaves out (invalid ones with `skip_invalid`, duplicates), by
    /// path: remembered with the run as images it saw (`StateStore::put_left_out`).
    pub images_left_out: Vec<String>,
    /// The run's options with the sequence's facts (`prior_uploads`, `force`).
    options: RunOptions,
}

/// Why a sequence is not uploaded: a message for the user (naming every fix) and the exit code it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What is wrong, without the directory (the caller names it).
    pub message: String,
    /// The exit code of `mtp upload` for it.
    pub exit: Exit,
    /// The images `skip_invalid` would have left out, when the sequence was read before it was refused.
    pub skipped: Vec<String>,
}

/// An [`UploadRequest`] whose options were checked against the integrations' manifests.
#[derive(Debug, Clone)]
pub struct Upload {
    request: UploadRequest,
    options: RunOptions,
}

impl Upload {
    /// Checks the request's options against the manifests in `registry` (a typo is refused before
    /// anything is read or sent).
    pub fn new(registry: &Registry, request: UploadRequest) -> Result<Upload, RequestError> {
        if let Some(chosen) = &request.destinations {
            destinations::check(registry, chosen)?;
        }
        let options = run_options(&request, registry)?.with_shared("force", request.force.into());
        Ok(Upload { request, options })
    }

    /// The request.
    pub fn request(&self) -> &UploadRequest {
        &self.request
    }

    /// Reads and validates `dir`, and plans the chain on it: nothing is sent for a sequence that some
    /// integration which will run is not ready for.
    pub async fn prepare(&self, runner: &Runner, dir: &Path) -> Result<PreparedSequence, Refusal> {
        let owned = dir.to_path_buf();
        let overrides = self.request.overrides.clone();
        let skip_invalid = self.request.skip_invalid;
        let read = tokio::task::spawn_blocking(move || read(&owned, &overrides, skip_invalid))
            .await
            .map_err(|err| invalid(format!("the check stopped: {err}")))?;
        let (mut descriptor, mut skipped, prior, images_left_out) = read.map_err(invalid)?;
        // A folder whose photos this state store already holds under another path is that sequence.
        if !self.request.dry_run {
            let note = crate::identity::identify(runner.store(), &mut descriptor)
                .map_err(|err| invalid(err.to_string()))?;
            skipped.extend(note);
        }
        let options = self.options.clone().with_shared("prior_uploads", prior);
        let descriptor = Arc::new(descriptor);
        let plan = runner
            .preflight(&descriptor, self.request.dry_run, options.shared())
            .await;
        let chosen = self.request.destinations.as_deref();
        let selection = destinations::select(&runner.registry, &plan, chosen);
        let taken: Vec<PlanEntry> = plan
            .iter()
            .filter(|e| selection.run.contains(&e.integration))
            .cloned()
            .collect();
        // By default an upload with nothing ready to send says what every integration still needs.
        let nothing_ready = chosen.is_none()
            && !selection.left_out.is_empty()
            && !taken.iter().any(PlanEntry::runs);
        let blocking = if nothing_ready { &plan[..] } else { &taken[..] };
        if let Some(message) = blocking_message(blocking) {
            let exit = blocking_exit(blocking).unwrap_or(Exit::InvalidInput);
            return Err(Refusal {
                message,
                exit,
                skipped,
            });
        }
        Ok(PreparedSequence {
            descriptor,
            skipped,
            plan,
            left_out: selection.left_out,
            images_left_out,
            options: options.only(selection.run),
        })
    }

    /// Re-checks every stored sequence left waiting except `uploading` (about to be uploaded anyway), so
    /// an upload also finishes what earlier ones left to the services.
    pub async fn recheck_others(
        &self,
        runner: &Runner,
        uploading: &[String],
    ) -> Result<Vec<(PackedSequence, Vec<IntegrationRun>)>, StateError> {
        runner.recheck_pending(uploading).await
    }

    /// Takes the cross-process lock of `prepared`'s sequence at once, or says which process holds it.
    pub fn lock(
        &self,
        runner: &Runner,
        prepared: &PreparedSequence,
        purpose: &str,
    ) -> Result<SequenceLock, LockError> {
        runner.lock_sequence(prepared.descriptor.id(), purpose)
    }

    /// Runs `prepared` through the chain while `_lock` (its lock) is held: one run per enabled
    /// integration, in chain order, those left out skipped with their reason.
    pub async fn run(
        &self,
        runner: &Runner,
        prepared: &PreparedSequence,
        _lock: &SequenceLock,
    ) -> Result<Vec<IntegrationRun>, StateError> {
        let mut runs = runner
            .run_sequence(
                &prepared.descriptor,
                RunMode::Upload,
                self.request.dry_run,
                &prepared.options,
            )
            .await?;
        if !self.request.dry_run {
            // Under the stored sequence the photos were recognised as, if they were.
            let id = prepared.descriptor.id();
            let id = runner
                .store()
                .alias_of(id)?
                .unwrap_or_else(|| id.to_string());
            runner
                .store()
                .put_left_out(&id, &prepared.images_left_out)?;
        }
        for (id, reason) in &prepared.left_out {
            let at = prepared
                .plan
                .iter()
                .position(|e| &e.integration == id)
                .map_or(runs.len(), |at| at.min(runs.len()));
            runs.insert(
                at,
                IntegrationRun {
                    integration: id.clone(),
                    not_eligible: None,
                    skipped: Some(format!("left out: {reason}")),
                    outcome: None,
                    error: None,
                },
            );
        }
        Ok(runs)
    }
}

fn invalid(message: String) -> Refusal {
    Refusal {
        message,
        exit: Exit::InvalidInput,
        skipped: Vec::new(),
    }
}

/// The request's options and short flags, checked against the manifests.
fn run_options(request: &UploadRequest, registry: &Registry) -> Result<RunOptions, OptionError> {
    let mut flags = Vec::new();
    if let Some(jobs) = request.jobs {
        flags.push(("jobs", jobs.to_string()));
    }
    if request.republish {
        flags.push(("republish", "true".to_string()));
    }
    if request.add_new_images {
        flags.push(("add_new_images", "true".to_string()));
    }
    if let Some(rate) = &request.bwlimit {
        flags.push(("bwlimit", rate.clone()));
    }
    if request.no_publish {
        flags.push(("no_publish", "true".to_string()));
    }
    let mut undeclared = Map::new();
    undeclared.insert(
        "jobs".into(),
        request.jobs.unwrap_or(UNDECLARED_DEFAULT_JOBS).into(),
    );
    undeclared.insert("republish".into(), request.republish.into());
    undeclared.insert("add_new_images".into(), request.add_new_images.into());
    RunOptions::parse(registry, &request.options, &flags, undeclared)
}

/// Reads and validates one sequence directory: the descriptor, one line per kind of reason for the
/// images left out (duplicates; with `skip_invalid`, invalid ones), what MTPDU already published of it (its sequence log's `destination` block, as
/// JSON for the runner), and the paths of the images left out; the error is a message for the user.
fn read(
    dir: &Path,
    overrides: &Overrides,
    skip_invalid: bool,
) -> Result<(PackedSequence, Vec<String>, Value, Vec<String>), String> {
    let scanned = read_sequence(dir, overrides).map_err(|err| {
        let first: &(dyn StdError + 'static) = &err;
        let causes = std::iter::successors(Some(first), |e| (*e).source());
        format!("cannot read the sequence: {}", without_dir(causes, dir))
    })?;
    let prior = serde_json::to_value(scanned.prior_uploads()).unwrap_or_default();
    let (descriptor, skipped) =
        PackedSequence::from_scan(scanned, skip_invalid).map_err(|err| match err {
            // Not the images' fault: the scan's scratch file (a full disk).
            ScanError::Invalid(err @ mtp_sequence::SequenceError::Scratch { .. }) => {
                format!("{err}\n(nothing was uploaded)")
            }
            ScanError::Invalid(err) => {
                // --skip-invalid is worth suggesting only when it would leave something to upload.
                let hint = match &err {
                    mtp_sequence::SequenceError::Invalid { uploadable, .. } if *uploadable > 0 => {
                        format!(
                            "fix the images, or pass --skip-invalid to upload the {uploadable} \
                             without blocking problems"
                        )
                    }
                    _ => "fix the images".to_string(),
                };
                format!("{err}\n(nothing was uploaded; {hint})")
            }
            ScanError::Pack(_) => format!("{err}\n(nothing was uploaded)"),
        })?;
    // One line per kind of reason, with a count and a few names (not one per image).
    let lines = mtp_sequence::describe_skipped(&skipped);
    if descriptor.image_count() == 0 {
        return Err("no valid images to upload".to_string());
    }
    let left_out = skipped
        .iter()
        .map(|s| s.path.to_string_lossy().into_owned())
        .collect();
    Ok((descriptor, lines, prior, left_out))
}

/// `dirs` with each camera folder tree (`DCIM/100GOPRO, 101GOPRO`) replaced by its folders with images,
/// one sequence each as mapillary_tools groups them, and one line per tree saying how it was grouped.
pub fn expand_trees(dirs: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for dir in dirs {
        match mtp_sequence::folder_tree(dir) {
            Some(tree) => {
                lines.push(tree.describe());
                out.extend(tree.sequences.into_iter().map(|(d, _)| d));
            }
            None => out.push(dir.clone()),
        }
    }
    (out, lines)
}

/// An error's causes joined with `: `, each without a leading `<dir>: ` (for a caller that names `dir`).
pub fn without_dir<'e>(
    causes: impl Iterator<Item = &'e (dyn StdError + 'static)>,
    dir: &Path,
) -> String {
    let names: Vec<String> = [Some(dir.to_path_buf()), dir.canonicalize().ok()]
        .into_iter()
        .flatten()
        .map(|d| format!("{}: ", d.display()))
        .collect();
    causes
        .map(|cause| {
            let text = cause.to_string();
            names
                .iter()
                .find_map(|n| text.strip_prefix(n.as_str()).map(str::to_owned))
                .unwrap_or(text)
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// One integration's result, as `mtp upload --json` prints it and `mtp serve` sends it as an event. Keys,
/// never exports (which may hold tokens).
pub fn result_json(descriptor: &SequenceDescriptor, run: &IntegrationRun) -> Value {
    serde_json::json!({
        "type": "result",
        "sequence": descriptor.id,
        "name": descriptor.name,
        "integration": run.integration,
        "not_eligible": run.not_eligible,
        "skipped": run.skipped,
        "state": run.outcome.as_ref().map(|o| o.state.as_str()),
        "message": run.outcome.as_ref().and_then(|o| o.message.clone()),
        "keys": run.outcome.as_ref().map(|o| o.keys.clone()),
        "links": run.outcome.as_ref().map(|o| o.links.clone()).unwrap_or_default(),
        "error": run.error.as_ref().map(|e| e.message.clone()),
        "error_kind": run.error.as_ref().map(|e| e.kind),
        "waiting": Exit::for_run(run.error.as_ref(), run.outcome.as_ref()) == Exit::Waiting,
    })
}
