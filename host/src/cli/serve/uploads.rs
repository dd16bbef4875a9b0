//! Uploads and re-checks, run one at a time on the runner (as the CLI runs them): a queue of uploads,
//! each a list of checked sequences; cancelling one stops it at the plugins' next safe point. Every
//! progress event is tagged with the upload and sequence being run, which is why runs never overlap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mtp_host::services::ProgressOrigin;
use mtp_host::upload::{self as use_case, PreparedSequence, UploadRequest};
use plugin_api::protocol::ProgressEvent;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::events::Hub;
use super::host_adapter::{self, Host, SequenceLock};

/// The run under way: its upload (`None` for a re-check) and sequence.
type Run = Option<(Option<String>, String)>;

/// What the progress sink tags events with: the run under way.
#[derive(Clone, Default)]
pub(crate) struct Current {
    inner: Arc<Mutex<Run>>,
}

impl Current {
    fn set(&self, upload: Option<&str>, sequence: &str) {
        *self.lock() = Some((upload.map(str::to_string), sequence.to_string()));
    }

    fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> MutexGuard<'_, Run> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sink handed to the runner: each event as `mtp upload --json` prints it, plus its upload.
    pub(crate) fn sink(&self, hub: Arc<Hub>) -> mtp_host::services::ProgressSink {
        let current = self.clone();
        Arc::new(move |origin: ProgressOrigin<'_>, event: ProgressEvent| {
            // The runner names the sequence of every event; this server adds which upload it belongs to.
            let (upload, _) = current.lock().clone().unwrap_or_default();
            let mut value =
                host_adapter::progress_event(origin.integration, origin.sequence, &event);
            value["upload"] = upload.map_or(Value::Null, Value::String);
            hub.publish(&value);
        })
    }
}

/// An upload's options, as `POST /api/uploads` takes them: every option of `mtp upload`, under the same
/// names (docs/api.md).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadOptions {
    /// Files uploaded in parallel (1 to 32; `--jobs`).
    #[serde(default)]
    pub(crate) jobs: Option<u64>,
    /// Publish again a sequence whose publish outcome is unknown (`--republish`).
    #[serde(default)]
    pub(crate) republish: bool,
    /// Everything except publishing (`--dry-run`).
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// Leave out (and name) images with problems (`--skip-invalid`).
    #[serde(default)]
    pub(crate) skip_invalid: bool,
    /// Send even where the MTPDU sequence log says it is already published (`--force`).
    #[serde(default)]
    pub(crate) force: bool,
    /// Send the images added to a published sequence since (`--add-new-images`).
    #[serde(default)]
    pub(crate) add_new_images: bool,
    /// Upload everything but publish nothing (`--no-publish`).
    #[serde(default)]
    pub(crate) no_publish: bool,
    /// Bandwidth cap shared by the parallel jobs, `500K`, `2M` (`--bwlimit`).
    #[serde(default)]
    pub(crate) bwlimit: Option<String>,
    /// Options of single integrations, `mapillary.jobs=8` (`--option`, repeatable).
    #[serde(default)]
    pub(crate) integration_options: Vec<String>,
    /// Sequence name (`--name`).
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Sequence description (`--description`).
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// Transport type, `Earth/Walk`, `Walk`... (`--transport`).
    #[serde(default)]
    pub(crate) transport: Option<String>,
    /// Tags, replacing the metadata's (`--tag`, repeatable).
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// UTC offset of the camera clock, `+02:00`, `UTC` (`--time-offset`).
    #[serde(default)]
    pub(crate) time_offset: Option<String>,
    /// The integrations to send to, with what they need (`--to`); absent: every ready one.
    #[serde(default)]
    pub(crate) destinations: Option<Vec<String>>,
}

impl UploadOptions {
    /// The upload request for `paths` with these options; the error names the option that is wrong.
    pub(crate) fn to_request(&self, paths: Vec<PathBuf>) -> Result<UploadRequest, String> {
        if let Some(jobs) = self.jobs {
            if !(1..=32).contains(&jobs) {
                return Err("options.jobs: must be between 1 and 32".into());
            }
        }
        if let Some(rate) = &self.bwlimit {
            mtp_host::upload::check_bwlimit(rate)
                .map_err(|err| format!("options.bwlimit: {err}"))?;
        }
        let time_offset = self
            .time_offset
            .as_deref()
            .map(str::parse::<mtp_sequence::TimeOffset>)
            .transpose()
            .map_err(|err| format!("options.time_offset: {err}"))?;
        Ok(UploadRequest {
            dirs: paths,
            dry_run: self.dry_run,
            skip_invalid: self.skip_invalid,
            options: self.integration_options.clone(),
            jobs: self.jobs,
            republish: self.republish,
            force: self.force,
            add_new_images: self.add_new_images,
            bwlimit: self.bwlimit.clone(),
            no_publish: self.no_publish,
            overrides: mtp_sequence::Overrides {
                name: self.name.clone(),
                description: self.description.clone(),
                transport: self.transport.clone(),
                tags: self.tags.clone(),
                time_offset,
            },
            destinations: self.destinations.clone(),
        })
    }
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UploadStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// An upload as `GET /api/uploads` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UploadView {
    id: String,
    status: UploadStatus,
    paths: Vec<PathBuf>,
    /// The options as the request gave them.
    options: UploadOptions,
    sequences: Vec<SequenceView>,
    notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct SequenceView {
    id: String,
    name: String,
    root: String,
    images: usize,
    bytes: u64,
    /// What the integrations receive, after the request's metadata overrides.
    description: String,
    transport: Option<plugin_api::transport::TransportType>,
    tags: Vec<String>,
    first_capture_ms: Option<i64>,
}

struct Upload {
    view: UploadView,
    use_case: use_case::Upload,
    prepared: Vec<PreparedSequence>,
    cancel: bool,
    /// One per prepared sequence, in the same order; taken by the run, dropped when it ends.
    locks: Vec<SequenceLock>,
}

/// The uploads of this server and the lane they run on.
pub(crate) struct Uploads {
    host: Host,
    hub: Arc<Hub>,
    current: Current,
    uploads: Mutex<BTreeMap<String, Upload>>,
    queue: mpsc::UnboundedSender<String>,
    next: AtomicU64,
    running: Mutex<Option<String>>,
    /// Held by every run (upload or re-check), so that runs never overlap.
    lane: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
}

/// A refused upload request: the message and, per path, what is wrong with it.
pub(crate) struct Refused {
    pub(crate) conflict: bool,
    pub(crate) message: String,
    pub(crate) problems: Vec<Value>,
}

impl Uploads {
    /// The uploads, and the queue's receiving end for [`Uploads::work`].
    pub(crate) fn new(
        host: Host,
        hub: Arc<Hub>,
        current: Current,
    ) -> (Arc<Uploads>, mpsc::UnboundedReceiver<String>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let uploads = Uploads {
            host,
            hub,
            current,
            uploads: Mutex::default(),
            queue,
            next: AtomicU64::new(1),
            running: Mutex::default(),
            lane: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        };
        (Arc::new(uploads), receiver)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status_event(&self, id: &str, status: UploadStatus) {
        self.hub
            .publish(&serde_json::json!({"type": "upload", "upload": id, "status": status}));
    }

    /// Checks every path (nothing is queued if one has a problem, as with `mtp upload`), reserves the
    /// sequences and queues the upload; its id.
    pub(crate) async fn start(
        &self,
        paths: Vec<PathBuf>,
        options: UploadOptions,
    ) -> Result<String, Refused> {
        let refused = |conflict, message: String, problems| Refused {
            conflict,
            message,
            problems,
        };
        if paths.is_empty() {
            return Err(refused(
                false,
                "paths: give at least one sequence directory".into(),
                vec![],
            ));
        }
        let request = options
            .to_request(paths.clone())
            .map_err(|message| refused(false, message, vec![]))?;
        if self.stopping.load(Ordering::SeqCst) {
            return Err(refused(true, "the server is stopping".into(), vec![]));
        }
        if !self.host.any_enabled() {
            return Err(refused(
                true,
                "no integration is enabled (see the Integrations page)".into(),
                vec![],
            ));
        }
        let use_case = self
            .host
            .upload_use_case(request)
            .map_err(|message| refused(false, message, vec![]))?;
        let mut prepared = Vec::new();
        // A camera folder tree is one sequence per folder with images, as `mtp upload` reads it.
        let (paths, mut notes) = mtp_host::upload::expand_trees(&paths);
        let mut problems = Vec::new();
        for path in &paths {
            match self.host.prepare(&use_case, path).await {
                Ok(sequence) => {
                    notes.extend(sequence.skipped.iter().cloned());
                    prepared.push(sequence);
                }
                Err(error) => problems.push(serde_json::json!({"path": path, "error": error})),
            }
        }
        if !problems.is_empty() {
            return Err(refused(
                false,
                "some sequences have problems; nothing was started".into(),
                problems,
            ));
        }
        let mut locks = Vec::new();
        for sequence in &prepared {
            match self.host.lock_sequence(&use_case, sequence) {
                Ok(lock) => locks.push(lock),
                Err(message) => return Err(refused(true, message, vec![])),
            }
        }
        let mut sequences = Vec::with_capacity(prepared.len());
        for d in prepared.iter().map(|p| &p.descriptor) {
            let (bytes, first_capture_ms) = d
                .bytes_and_first_capture()
                .map_err(|e| refused(true, e.to_string(), vec![]))?;
            sequences.push(SequenceView {
                id: d.id().to_string(),
                name: d.header().name.clone(),
                root: d.header().root.clone(),
                images: d.image_count(),
                bytes,
                description: d.header().description.clone(),
                transport: d.header().transport.clone(),
                tags: d.header().tags.clone(),
                first_capture_ms,
            });
        }
        let id = format!("u{}", self.next.fetch_add(1, Ordering::SeqCst));
        let view = UploadView {
            id: id.clone(),
            status: UploadStatus::Queued,
            paths,
            options,
            sequences,
            notes,
        };
        self.lock().insert(
            id.clone(),
            Upload {
                view,
                use_case,
                prepared,
                cancel: false,
                locks,
            },
        );
        self.status_event(&id, UploadStatus::Queued);
        if self.queue.send(id.clone()).is_err() {
            return Err(refused(true, "the upload queue has stopped".into(), vec![]));
        }
        Ok(id)
    }

    /// Every upload of this server, oldest first.
    pub(crate) fn list(&self) -> Vec<UploadView> {
        self.lock().values().map(|u| u.view.clone()).collect()
    }

    /// Asks upload `id` to stop (at the plugins' next safe point when it is running); `false` when there
    /// is no such upload.
    pub(crate) fn cancel(&self, id: &str) -> Option<UploadStatus> {
        let mut uploads = self.lock();
        let upload = uploads.get_mut(id)?;
        if matches!(
            upload.view.status,
            UploadStatus::Queued | UploadStatus::Running
        ) {
            upload.cancel = true;
            if self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_deref()
                == Some(id)
            {
                self.host.cancel_flag().store(true, Ordering::SeqCst);
            }
        }
        Some(upload.view.status)
    }

    /// Stops taking uploads and asks the running one to stop at its next safe point.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for upload in self.lock().values_mut() {
            upload.cancel = true;
        }
        self.host.cancel_flag().store(true, Ordering::SeqCst);
    }

    fn set_status(&self, id: &str, status: UploadStatus) {
        if let Some(upload) = self.lock().get_mut(id) {
            upload.view.status = status;
            if !matches!(status, UploadStatus::Queued | UploadStatus::Running) {
                // The sequences are free again.
                upload.locks.clear();
            }
        }
        self.status_event(id, status);
    }

    /// Runs queued uploads until the queue closes or the server stops.
    pub(crate) async fn work(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let id = tokio::select! {
                id = queue.recv() => match id {
                    Some(id) => id,
                    None => break,
                },
                _ = shutdown.changed() => break,
            };
            let job = {
                let mut uploads = self.lock();
                uploads.get_mut(&id).map(|u| {
                    let locks = std::mem::take(&mut u.locks);
                    (u.use_case.clone(), u.prepared.clone(), locks, u.cancel)
                })
            };
            let Some((use_case, prepared, locks, cancelled)) = job else {
                continue;
            };
            if cancelled || self.stopping.load(Ordering::SeqCst) {
                drop(locks);
                self.set_status(&id, UploadStatus::Cancelled);
                continue;
            }
            let status = self.run_upload(&id, &use_case, &prepared, &locks).await;
            drop(locks);
            self.set_status(&id, status);
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
        }
        // Whatever is still queued when the server stops was never started.
        let left: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, u)| u.view.status == UploadStatus::Queued)
            .map(|(id, _)| id.clone())
            .collect();
        for id in left {
            self.set_status(&id, UploadStatus::Cancelled);
        }
    }

    async fn run_upload(
        &self,
        id: &str,
        use_case: &use_case::Upload,
        prepared: &[PreparedSequence],
        locks: &[SequenceLock],
    ) -> UploadStatus {
        let _lane = self.lane.lock().await;
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(id.to_string());
        self.set_status(id, UploadStatus::Running);
        let mut failed = false;
        let mut cancelled = false;
        for (sequence, lock) in prepared.iter().zip(locks) {
            let descriptor = &sequence.descriptor;
            if self.lock().get(id).is_some_and(|u| u.cancel) {
                cancelled = true;
                break;
            }
            self.current.set(Some(id), descriptor.id());
            match self.host.upload(use_case, sequence, lock).await {
                Ok(results) => {
                    for mut result in results {
                        failed |= !result["error"].is_null();
                        result["upload"] = Value::String(id.to_string());
                        self.hub.publish(&result);
                    }
                }
                Err(err) => {
                    failed = true;
                    self.hub.publish(&serde_json::json!({
                        "type": "error", "upload": id, "sequence": descriptor.id(),
                        "error": format!("{err:#}"),
                    }));
                }
            }
            self.current.clear();
        }
        cancelled |= self.lock().get(id).is_some_and(|u| u.cancel);
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if !self.stopping.load(Ordering::SeqCst) {
            // The flag was for this upload only; the next one starts afresh.
            self.host.cancel_flag().store(false, Ordering::SeqCst);
        }
        match (cancelled, failed) {
            (true, _) => UploadStatus::Cancelled,
            (false, true) => UploadStatus::Failed,
            (false, false) => UploadStatus::Done,
        }
    }

    /// Re-checks waiting sequences (all of them, or `only`), between uploads; the results go to the stream.
    pub(crate) async fn recheck(&self, only: Option<&str>) -> anyhow::Result<Option<usize>> {
        let _lane = self.lane.lock().await;
        if self.stopping.load(Ordering::SeqCst) {
            return Ok(Some(0));
        }
        let results = match only {
            Some(sequence) => {
                self.current.set(None, sequence);
                let results = self.host.recheck_one(sequence).await;
                self.current.clear();
                match results? {
                    Some(results) => results,
                    None => return Ok(None),
                }
            }
            None => {
                self.current.set(None, "");
                let results = self
                    .host
                    .recheck_pending(&self.host.locked_sequences())
                    .await;
                self.current.clear();
                results?
            }
        };
        let count = results.len();
        for mut result in results {
            result["upload"] = Value::Null;
            result["recheck"] = Value::Bool(true);
            self.hub.publish(&result);
        }
        Ok(Some(count))
    }

    /// Re-checks on start, then every `interval`, until `shutdown`.
    pub(crate) async fn recheck_periodically(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if let Err(err) = self.recheck(None).await {
                self.hub.publish(
                    &serde_json::json!({"type": "error", "error": format!("re-check: {err:#}")}),
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
