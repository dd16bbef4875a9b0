//! The one place where `mtp serve` touches the rest of the host: it opens the same registry, state store
//! and runner as the CLI and reuses the builders behind the CLI's `--json` output, so the API's objects are
//! the CLI's objects. Everything else in `serve/` sees only this module's functions and JSON values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use mtp_host::logout::{logout, LoggedOut, LogoutError};
use mtp_host::options::RunOptions;
use mtp_host::registry::{PluginDirs, Registry};
use mtp_host::runner::Runner;
use mtp_host::services::{Authorizer, ProgressSink};
use mtp_host::state::StateStore;
use mtp_host::upload::{result_json, PreparedSequence, Upload, UploadRequest};
use plugin_api::protocol::RunMode;
use serde_json::Value;

use super::super::sequence::{eligibility_of, inspect_json, scan, OverrideArgs};
use super::super::session::state_dir;
use super::super::{auth, load_env, progress, status, GlobalArgs};

/// The host as the server uses it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Host {
    runner: Arc<Runner>,
    locks: Arc<Mutex<BTreeSet<String>>>,
}

/// Held while a sequence is queued or uploading; dropping it frees the sequence.
///
/// Two layers: an in-process set (one upload at a time per sequence within this server) and the
/// cross-process sequence lock the CLI takes too (`mtp_host::lock`), so `mtp serve` and `mtp upload` side by
/// side never work on the same sequence at once.
pub(crate) struct SequenceLock {
    id: String,
    locks: Arc<Mutex<BTreeSet<String>>>,
    held: mtp_host::lock::SequenceLock,
}

impl Drop for SequenceLock {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// One progress event as `mtp upload --json` prints it, for `sequence`.
pub(crate) fn progress_event(
    integration: &str,
    sequence: Option<&str>,
    event: &plugin_api::protocol::ProgressEvent,
) -> Value {
    progress::progress_json(integration, sequence, event)
}

/// Follows a consent page's redirects with the CLI's own code (`MTP_AUTH_BROWSER=fetch`).
pub(crate) fn authorize_by_fetch(
    prompt: &plugin_api::protocol::AuthorizePrompt,
) -> Result<String, String> {
    mtp_host::authorize::authorize(prompt, mtp_host::authorize::AuthorizeMode::Fetch)
}

impl Host {
    /// Opens env, registry, state store and runner exactly as the CLI's commands do.
    pub(crate) fn open(
        global: &GlobalArgs,
        progress: ProgressSink,
        authorizer: Authorizer,
    ) -> Result<Host> {
        let env = load_env(global)?;
        let registry = Registry::discover(
            &PluginDirs::resolve_checked(global.plugins_dir.as_deref())?,
            &env,
        );
        let dir = state_dir(global)?;
        let store = StateStore::open(&dir).context("cannot open the state store")?;
        let runner = Runner::new(registry, env, store)
            .with_progress(progress)
            .with_authorizer(authorizer);
        Ok(Host {
            runner: Arc::new(runner),
            locks: Arc::default(),
        })
    }

    /// The flag that asks running plugins to stop at their next safe point.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.runner.cancel_flag()
    }

    /// `mtp integrations list --json`.
    pub(crate) fn integrations(&self) -> Value {
        serde_json::to_value(self.runner.registry.infos()).unwrap_or_default()
    }

    /// Whether `id` is a loaded integration (enabled or not).
    pub(crate) fn has_integration(&self, id: &str) -> bool {
        self.runner.registry.get(id).is_some()
    }

    /// Whether any integration is enabled.
    pub(crate) fn any_enabled(&self) -> bool {
        self.runner.registry.chain().next().is_some()
    }

    /// `mtp status --json` (without the re-check the CLI runs first: the server re-checks on its own).
    pub(crate) fn sequences(&self) -> Result<Value> {
        status::status_json(&self.runner)
    }

    /// `mtp sequence inspect --json` for `dir`, and its images as (file name, path).
    pub(crate) async fn inspect(
        &self,
        dir: &Path,
        overrides: OverrideArgs,
    ) -> Result<(Value, Vec<(String, PathBuf)>)> {
        let dir = dir.to_path_buf();
        let scanned = tokio::task::spawn_blocking(move || scan(&dir, &overrides))
            .await
            .context("the inspection stopped")??;
        let eligibility = eligibility_of(&self.runner, &scanned).await;
        let mut value = inspect_json(&scanned.summary()?, &eligibility)?;
        value["track"] = track_json(&scanned)?;
        let images = scanned
            .images
            .iter()
            .map(|image| image.map(|image| (image.file_name().into_owned(), image.path)))
            .collect::<Result<_, _>>()?;
        Ok((value, images))
    }

    /// `mtp auth status --json`.
    pub(crate) async fn auth_status(&self) -> Value {
        Value::Array(auth::auth_status_json(&self.runner.auth_statuses().await))
    }

    /// Authorises with `id` (the plugin asks the authoriser for the consent page, or verifies `token`):
    /// the account, or the error's message.
    pub(crate) async fn authorize(
        &self,
        id: &str,
        token: Option<String>,
    ) -> Result<String, String> {
        self.runner
            .authorize(id, token)
            .await
            .map(|outcome| outcome.account)
            .map_err(|err| err.to_string())
    }

    /// Logs out of `id` (deletes its tokens from the secret store), as `mtp auth logout` does.
    pub(crate) fn logout(&self, id: &str) -> Result<LoggedOut, LogoutError> {
        logout(&self.runner, id)
    }

    /// The upload use case for `request`, its options checked against the manifests; the error is a
    /// message for the user.
    pub(crate) fn upload_use_case(&self, request: UploadRequest) -> Result<Upload, String> {
        Upload::new(&self.runner.registry, request).map_err(|err| err.to_string())
    }

    /// Reads and validates `dir` for upload and checks the chain's plan, as `mtp upload` does (nothing is
    /// sent for a sequence some integration that will run is not ready for); the error is a message for
    /// the user.
    pub(crate) async fn prepare(
        &self,
        upload: &Upload,
        dir: &Path,
    ) -> Result<PreparedSequence, String> {
        upload
            .prepare(&self.runner, dir)
            .await
            .map_err(|refusal| refusal.message)
    }

    /// Reserves `prepared`'s sequence for one upload; `Err` names why it cannot be had now.
    pub(crate) fn lock_sequence(
        &self,
        upload: &Upload,
        prepared: &PreparedSequence,
    ) -> Result<SequenceLock, String> {
        let sequence_id = prepared.descriptor.id();
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if !locks.insert(sequence_id.to_string()) {
            return Err(format!(
                "sequence {sequence_id} is already being uploaded by this server"
            ));
        }
        drop(locks);
        let held = match upload.lock(&self.runner, prepared, "upload (mtp serve)") {
            Ok(held) => held,
            Err(err) => {
                self.locks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(sequence_id);
                return Err(err.to_string());
            }
        };
        Ok(SequenceLock {
            id: sequence_id.to_string(),
            locks: self.locks.clone(),
            held,
        })
    }

    /// The sequences reserved right now (left out of re-checks).
    pub(crate) fn locked_sequences(&self) -> Vec<String> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Runs one prepared sequence through the chain while `lock` holds it (as `mtp upload`); one
    /// `mtp upload --json` result per integration.
    pub(crate) async fn upload(
        &self,
        upload: &Upload,
        prepared: &PreparedSequence,
        lock: &SequenceLock,
    ) -> Result<Vec<Value>> {
        let runs = upload.run(&self.runner, prepared, &lock.held).await?;
        Ok(runs
            .iter()
            .map(|run| result_json(prepared.descriptor.header(), run))
            .collect())
    }

    /// Re-checks every waiting sequence except `except`, as `mtp status` does first; the results.
    pub(crate) async fn recheck_pending(&self, except: &[String]) -> Result<Vec<Value>> {
        let rechecked = self.runner.recheck_pending(except).await?;
        Ok(rechecked
            .iter()
            .flat_map(|(descriptor, runs)| {
                runs.iter().map(|run| result_json(descriptor.header(), run))
            })
            .collect())
    }

    /// Re-checks one stored sequence; `None` when the store does not know it.
    pub(crate) async fn recheck_one(&self, sequence_id: &str) -> Result<Option<Vec<Value>>> {
        let Some(descriptor) = self.runner.store().packed_descriptor(sequence_id)? else {
            return Ok(None);
        };
        let descriptor = std::sync::Arc::new(descriptor);
        let runs = self
            .runner
            .run_sequence(&descriptor, RunMode::Recheck, false, &RunOptions::none())
            .await?;
        Ok(Some(
            runs.iter()
                .map(|run| result_json(descriptor.header(), run))
                .collect(),
        ))
    }
}

/// The images in capture order for the page's map: `[{file, lat, lon, problem}]` (`problem`: the image has
/// one), those without a position left out.
fn track_json(scanned: &mtp_sequence::ScannedSequence) -> Result<Value> {
    let with_problem: BTreeSet<&Path> = scanned
        .problems
        .iter()
        .filter_map(|p| p.file.as_deref())
        .collect();
    let mut track = Vec::new();
    for image in scanned.images.iter() {
        let image = image?;
        if let (Some(lat), Some(lon)) = (image.latitude, image.longitude) {
            track.push(serde_json::json!({
                "file": image.file_name(),
                "lat": lat,
                "lon": lon,
                "problem": with_problem.contains(image.path.as_path()),
            }));
        }
    }
    Ok(Value::Array(track))
}
