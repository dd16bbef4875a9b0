//! Resumable uploads to Mapillary's upload service (`docs/providers/mapillary.md`, "Upload sessions"): one
//! entity per image, named by the BLAKE3 hash of its outgoing bytes.
//!
//! An image small enough to hold ([`HOLD_LIMIT`]) is read once: hashed and sent from the same bytes; a
//! larger one is hashed in one pass and streamed in a second. An entity this state has never sent starts
//! at offset 0 without asking the server (a 412 sends us back to asking, once); one the server probably
//! holds already (a run whose state was lost, `Start::Held`) is asked for its handle by an empty `POST` at
//! its end, so it costs no body byte and at most one offset request; one this state may have sent before,
//! and any entity after a 412 that follows body bytes we sent, first waits until the server's offset stops
//! moving (a connection that died a moment ago may still be draining into it) and sends only the
//! remainder. Each acknowledged handle is
//! committed to state at once, so nothing acknowledged is ever sent again. Attempts run through the SDK
//! retry loop with Mapillary's classifier; every body chunk pays the run's bandwidth cap first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use plugin_api::http::{reqwest, Activity};
use plugin_api::prelude::*;
use plugin_api::sdk::rate_limit::{parse_rate, TokenBucket};

use crate::api::{with_retries, Api, Failure};
use crate::bundle::image_key;
use crate::error::{MlyError, Result};
use crate::outgoing::{blake3_hex, blake3_of, body_stream, read_all, Outgoing, CHUNK};
use crate::progress::EntityProgress;
use crate::state::{self, HashEntry, ImageEntry, SequenceStore};

/// Entities up to this size are held in memory while they are sent (one read instead of two): with 4
/// jobs at most 16 MiB, within the flat-memory target (README, Performance, row 2).
pub const HOLD_LIMIT: u64 = 4 * 1024 * 1024;

/// The session key of an entity up to this size is recorded together with its handle, in one commit,
/// once the server acknowledged it, instead of in a commit of its own before the first byte is sent: a
/// run of 10,000 small images saved a commit each (README, Performance, row 8). The price, after a kill
/// in the middle of such an entity: the restart does not know it may be on the server, sends it from
/// offset 0, and the server drains at most this much per job before its 412 sends us to ask the offset.
pub const KEY_WITH_HANDLE_LIMIT: u64 = 64 * 1024;

/// Pause between two offset queries when waiting for the offset to stop moving.
const SETTLE_PAUSE: Duration = Duration::from_millis(150);
/// At most this many pauses; then the remainder is sent anyway (the retry loop handles a 412).
const SETTLE_ROUNDS: usize = 40;

/// The bytes of an entity.
#[derive(Debug, Clone)]
pub enum Source {
    /// An image streamed from its file with its EXIF rewritten.
    File(Arc<Outgoing>),
    /// Bytes held in memory (a small image, a manifest).
    Memory(Bytes),
}

impl Source {
    /// Total length.
    pub fn len(&self) -> u64 {
        match self {
            Source::File(out) => out.length,
            Source::Memory(bytes) => bytes.len() as u64,
        }
    }
}

/// Whether this state may have sent bytes of an entity before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Never sent from this state: start at 0 without asking.
    Fresh,
    /// Perhaps sent before: ask the offset, and wait until it stops moving.
    Resumed,
    /// Probably complete on the server, though never sent from this state (its first image was found
    /// complete there: `crate::pipeline`): ask for the handle with an empty `POST` at the entity's end; a
    /// 412 (not held after all) sends us to ask the offset once and send the rest.
    Held,
}

/// Reads the run's bandwidth cap (`bwlimit`, e.g. `"2M"`) from the request's options.
pub fn bandwidth_limit(request: &RunRequest) -> Result<Option<Arc<TokenBucket>>> {
    let Some(value) = request.options.get(crate::settings::BWLIMIT) else {
        return Ok(None);
    };
    let rate = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Number(n) => n
            .as_u64()
            .filter(|&r| r > 0)
            .ok_or_else(|| MlyError::Invalid(format!("option bwlimit: {n} is not a rate")))?,
        serde_json::Value::String(text) => {
            parse_rate(text).map_err(|err| MlyError::Invalid(format!("option bwlimit: {err}")))?
        }
        other => {
            return Err(MlyError::Invalid(format!(
                "option bwlimit: {other} is not a rate"
            )))
        }
    };
    Ok(Some(Arc::new(TokenBucket::new(rate, CHUNK as u64))))
}

/// Runs blocking work (file reads, hashing) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| MlyError::Invalid(format!("a worker thread failed: {err}")))?
}

/// Uploads entities with the user's token.
pub struct Uploader<'a> {
    /// The endpoints.
    pub api: &'a Api,
    /// The host.
    pub ctx: &'a Context,
    /// The user's token.
    pub token: &'a str,
    /// The bandwidth cap shared by every upload of the run.
    pub limit: Option<Arc<TokenBucket>>,
    /// Whether entities never sent from this state are probably complete on the server already
    /// ([`Start::Held`] instead of [`Start::Fresh`]).
    pub held: bool,
}

impl Uploader<'_> {
    /// The server's offset for `key` once it has stopped moving.
    async fn settled_offset(&self, key: &str) -> std::result::Result<u64, Failure> {
        let mut offset = self.api.upload_offset(self.token, key).await?;
        for _ in 0..SETTLE_ROUNDS {
            if self.ctx.is_cancelled() {
                break;
            }
            tokio::time::sleep(SETTLE_PAUSE).await;
            let again = self.api.upload_offset(self.token, key).await?;
            if again == offset {
                break;
            }
            offset = again;
        }
        Ok(offset)
    }

    /// Uploads one entity (resuming from the server's offset unless it is `Fresh`) and returns its
    /// handle. `what` names it in messages.
    pub async fn upload_entity(
        &self,
        what: &str,
        key: &str,
        entity_type: &str,
        source: &Source,
        start: Start,
        progress: &Arc<EntityProgress>,
    ) -> Result<String> {
        let length = source.len();
        let mut backoff = self.api.config.backoff();
        // The furthest offset the server reported (`u64::MAX`: none yet).
        let furthest = AtomicU64::new(u64::MAX);
        // Whether the next attempt may start at 0 without asking, and whether it must wait for the
        // offset to settle first.
        let ask = AtomicBool::new(start != Start::Fresh);
        let settle = AtomicBool::new(start == Start::Resumed);
        // Whether an attempt of this run sent body bytes: only then may a 412 mean our own dead
        // connection is still draining into the entity, worth waiting out.
        let sent_body = AtomicBool::new(false);
        let held = AtomicBool::new(start == Start::Held);
        with_retries(self.ctx, &mut backoff, what, |headway| {
            let (furthest, ask, settle, sent_body, held) =
                (&furthest, &ask, &settle, &sent_body, &held);
            async move {
                let guessed = held.swap(false, Ordering::Relaxed);
                let offset = if guessed {
                    length
                } else if ask.swap(true, Ordering::Relaxed) {
                    let offset = if settle.swap(false, Ordering::Relaxed) {
                        self.settled_offset(key).await?
                    } else {
                        self.api.upload_offset(self.token, key).await?
                    };
                    if offset > length {
                        return Err(Failure::Decode(format!(
                            "the server holds {offset} bytes of a {length}-byte entity"
                        )));
                    }
                    // The server holds more than at the last attempt: that attempt made progress, so the
                    // retry budget starts over (mapillary_tools does the same).
                    let before = furthest.load(Ordering::Relaxed);
                    if before != u64::MAX && offset > before {
                        headway.made();
                    }
                    if before == u64::MAX || offset > before {
                        furthest.store(offset, Ordering::Relaxed);
                    }
                    offset
                } else {
                    0
                };
                progress.reach(offset);
                if offset < length {
                    sent_body.store(true, Ordering::Relaxed);
                }
                let activity = Activity::new();
                let body = self.body(source, offset, progress, &activity);
                let result = self
                    .api
                    .upload_post(
                        self.token,
                        key,
                        offset,
                        length,
                        entity_type,
                        body,
                        &activity,
                    )
                    .await;
                if matches!(&result, Err(Failure::Status(answer)) if answer.status == 412)
                    && sent_body.load(Ordering::Relaxed)
                {
                    settle.store(true, Ordering::Relaxed);
                }
                result
            }
        })
        .await
    }

    /// The request body: the entity's bytes from `offset`, paying the bandwidth cap and reporting
    /// progress and activity per chunk.
    fn body(
        &self,
        source: &Source,
        offset: u64,
        progress: &Arc<EntityProgress>,
        activity: &Arc<Activity>,
    ) -> reqwest::Body {
        let sent = Arc::new(AtomicU64::new(offset));
        let (progress, activity) = (progress.clone(), activity.clone());
        let report = move |n: u64| {
            progress.reach(sent.fetch_add(n, Ordering::Relaxed) + n);
            activity.touch();
        };
        let chunks: futures::stream::BoxStream<'static, std::io::Result<Bytes>> = match source {
            Source::Memory(bytes) => {
                let rest = bytes.slice((offset as usize).min(bytes.len())..);
                let pieces: Vec<std::io::Result<Bytes>> = (0..rest.len())
                    .step_by(CHUNK)
                    .map(|at| Ok(rest.slice(at..(at + CHUNK).min(rest.len()))))
                    .collect();
                futures::stream::iter(pieces).boxed()
            }
            Source::File(out) => {
                let ctx = self.ctx.clone();
                body_stream(out.clone(), offset, move || ctx.is_cancelled()).boxed()
            }
        };
        let limit = self.limit.clone();
        let paced = chunks.then(move |chunk| {
            let limit = limit.clone();
            let report = report.clone();
            async move {
                if let Ok(bytes) = &chunk {
                    if let Some(limit) = &limit {
                        limit.take(bytes.len() as u64).await;
                    }
                    report(bytes.len() as u64);
                }
                chunk
            }
        });
        reqwest::Body::wrap_stream(paced)
    }

    /// What is sent for `out` and under which key: a held copy of a small entity (hashed from the same
    /// bytes), or the file streamed for a large one; the key from the hash cache (`cached`) when the
    /// file and its new EXIF are unchanged (whatever scheme named it then), else from the hash. A
    /// large entity's new key is cached before anything is sent, so a restart knows the entity may be
    /// on the server; a small one's (up to [`KEY_WITH_HANDLE_LIMIT`]) is returned last, to be carried
    /// by its image entry.
    async fn outgoing(
        &self,
        out: &Arc<Outgoing>,
        cached: Option<HashEntry>,
    ) -> Result<(String, Source, Start, Option<HashEntry>)> {
        let path = out.path.to_string_lossy().into_owned();
        let cached = cached.filter(|c| c.describes(out));
        let file_error = {
            let path = path.clone();
            move |source| MlyError::File {
                path: path.clone(),
                cause: source,
            }
        };
        let need_hash = cached.is_none();
        let small = out.length <= KEY_WITH_HANDLE_LIMIT;
        let (hash, source) = if small {
            // Read and hashed here: for a few dozen KB from the page cache a hand-off to a blocking
            // thread costs more than the read.
            let bytes = read_all(out).map_err(file_error.clone())?;
            let hash = need_hash.then(|| blake3_of(&bytes));
            (hash, Source::Memory(Bytes::from(bytes)))
        } else if out.length <= HOLD_LIMIT {
            let held = out.clone();
            let err = file_error.clone();
            blocking(move || {
                let bytes = read_all(&held).map_err(err)?;
                let hash = need_hash.then(|| blake3_of(&bytes));
                Ok((hash, Source::Memory(Bytes::from(bytes))))
            })
            .await?
        } else if need_hash {
            let hashed = out.clone();
            let err = file_error.clone();
            let hash = blocking(move || blake3_hex(&hashed).map_err(err)).await?;
            (Some(hash), Source::File(out.clone()))
        } else {
            (None, Source::File(out.clone()))
        };
        match (cached, hash) {
            (Some(cached), _) => {
                // A small entity's image entry carries its key's source again when rewritten.
                let carried = small.then(|| cached.clone());
                Ok((cached.key, source, Start::Resumed, carried))
            }
            (None, Some(hash)) => {
                let key = image_key(&hash);
                let entry = HashEntry::new(out, key.clone());
                let start = if self.held { Start::Held } else { Start::Fresh };
                if small {
                    return Ok((key, source, start, Some(entry)));
                }
                state::put_hash_entry(self.ctx, &path, &entry)?;
                Ok((key, source, start, None))
            }
            (None, None) => Err(MlyError::Invalid(format!("{path}: no session key"))),
        }
    }

    /// Uploads one image, whose outgoing bytes `out` describes, and commits its handle; `cached` is
    /// the image's entry in the hash cache ([`state::hash_entries_of`]).
    pub async fn upload_image(
        &self,
        store: &SequenceStore<'_>,
        image: &ImageInfo,
        out: Arc<Outgoing>,
        cached: Option<HashEntry>,
    ) -> Result<ImageEntry> {
        if self.ctx.is_cancelled() {
            return Err(MlyError::Cancelled);
        }
        let (key, source, start, key_source) = self.outgoing(&out, cached).await?;
        let progress = Arc::new(EntityProgress::new(self.ctx, out.length));
        let what = format!("upload of {}", display_name(image));
        let handle = match self
            .upload_entity(&what, &key, "image/jpeg", &source, start, &progress)
            .await
        {
            Ok(handle) => handle,
            Err(err) => {
                if matches!(err, MlyError::Rejected { .. }) {
                    // Perhaps the file changed under us: hash it again next time.
                    state::delete_hash_entry(self.ctx, &image.path)?;
                }
                return Err(err);
            }
        };
        // The handle (and, for a small entity, what its key was derived from) in one row, committed
        // before the next step.
        let entry = ImageEntry {
            key,
            handle,
            acked_at_ms: Some(self.api.config.now_ms()),
            keyed_from: key_source,
        };
        store.put_image(&image.path, &entry)?;
        progress.finish();
        Ok(entry)
    }

    /// Uploads `images` (each with its prepared outgoing bytes, prepared as they are taken), `jobs` at
    /// a time. Stops at the first
    /// error (in-flight uploads are abandoned; the server keeps what it received, and the next run
    /// resumes from there).
    pub async fn upload_images(
        &self,
        store: &SequenceStore<'_>,
        images: impl futures::Stream<Item = Result<(ImageInfo, Arc<Outgoing>, Option<HashEntry>)>>,
        jobs: usize,
    ) -> Result<()> {
        let uploads = images
            .map(|next| async move {
                let (image, out, cached) = next?;
                self.upload_image(store, &image, out, cached).await
            })
            .buffer_unordered(jobs.max(1));
        let mut uploads = std::pin::pin!(uploads);
        while let Some(result) = uploads.next().await {
            result?;
        }
        Ok(())
    }
}

/// The file name of an image for messages.
pub fn display_name(image: &ImageInfo) -> String {
    if image.file_name.is_empty() {
        image.path.clone()
    } else {
        image.file_name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: serde_json::Value) -> RunRequest {
        let mut request: RunRequest = serde_json::from_value(serde_json::json!({
            "mode": "upload",
            "sequence": {"schema": 1, "id": "s", "root": "/s", "name": "s", "images": []},
        }))
        .unwrap();
        request.options = options.as_object().cloned().unwrap_or_default();
        request
    }

    #[test]
    fn bandwidth_limit_option() {
        assert!(bandwidth_limit(&request(serde_json::json!({})))
            .unwrap()
            .is_none());
        let two = bandwidth_limit(&request(serde_json::json!({"bwlimit": "2M"})))
            .unwrap()
            .unwrap();
        assert_eq!(two.rate(), 2 * 1024 * 1024);
        let bytes = bandwidth_limit(&request(serde_json::json!({"bwlimit": 500000})))
            .unwrap()
            .unwrap();
        assert_eq!(bytes.rate(), 500_000);
        let err = bandwidth_limit(&request(serde_json::json!({"bwlimit": "fast"}))).unwrap_err();
        assert!(err.to_string().contains("bwlimit"), "{err}");
    }
}
