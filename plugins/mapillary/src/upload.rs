//! Resumable uploads to Mapillary's upload service (`docs/providers/mapillary.md`, "Upload sessions"): one
//! entity per image, named by the md5 of its outgoing bytes; before every attempt the server's offset is
//! asked for and only the remainder is sent. Each acknowledged handle is committed to state at once, so
//! nothing acknowledged is ever sent again. Attempts run through the SDK retry loop with Mapillary's
//! classifier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use plugin_api::prelude::*;

use crate::api::{with_retries, Activity, Api, Failure};
use crate::bundle::image_key;
use crate::error::{MlyError, Result};
use crate::outgoing::{body_stream, md5_hex, Outgoing};
use crate::progress::EntityProgress;
use crate::state::{self, HashEntry, ImageEntry, SequenceStore};

/// The bytes of an entity.
#[derive(Debug, Clone)]
pub enum Source {
    /// An image: the file with its EXIF rewritten.
    File(Arc<Outgoing>),
    /// A small document built in memory (a manifest).
    Memory(Arc<[u8]>),
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
    /// Entities the server already held complete at this run's first look (uploaded before, perhaps by
    /// a run whose state was lost: the keys are content-addressed).
    pub found_complete: AtomicU64,
}

impl Uploader<'_> {
    /// Uploads one entity (resuming from the server's offset) and returns its handle. `what` names it in
    /// messages.
    pub async fn upload_entity(
        &self,
        what: &str,
        key: &str,
        entity_type: &str,
        source: &Source,
        progress: &Arc<EntityProgress>,
    ) -> Result<String> {
        let length = source.len();
        let mut backoff = self.api.config.backoff();
        // The furthest offset the server reported (`u64::MAX`: none yet).
        let furthest = AtomicU64::new(u64::MAX);
        with_retries(self.ctx, &mut backoff, what, |headway| {
            let furthest = &furthest;
            async move {
                let offset = self.api.upload_offset(self.token, key).await?;
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
                if before == u64::MAX && offset == length {
                    self.found_complete.fetch_add(1, Ordering::Relaxed);
                }
                if before == u64::MAX || offset > before {
                    furthest.store(offset, Ordering::Relaxed);
                }
                progress.reach(offset);
                let activity = Activity::new();
                let body = self.body(source, offset, progress, &activity);
                self.api
                    .upload_post(
                        self.token,
                        key,
                        offset,
                        length,
                        entity_type,
                        body,
                        &activity,
                    )
                    .await
            }
        })
        .await
    }

    /// The request body: the entity's bytes from `offset`, reporting progress and activity per chunk.
    fn body(
        &self,
        source: &Source,
        offset: u64,
        progress: &Arc<EntityProgress>,
        activity: &Arc<Activity>,
    ) -> reqwest::Body {
        match source {
            Source::Memory(bytes) => reqwest::Body::from(bytes[offset as usize..].to_vec()),
            Source::File(out) => {
                let ctx = self.ctx.clone();
                let sent = AtomicU64::new(offset);
                let (progress, activity) = (progress.clone(), activity.clone());
                let stream = body_stream(out.clone(), offset, move || ctx.is_cancelled()).inspect(
                    move |chunk| {
                        if let Ok(chunk) = chunk {
                            let n = chunk.len() as u64;
                            progress.reach(sent.fetch_add(n, Ordering::Relaxed) + n);
                            activity.touch();
                        }
                    },
                );
                reqwest::Body::wrap_stream(stream)
            }
        }
    }

    /// The session key of `out`: from the cache when the file and its new EXIF are unchanged, else by
    /// hashing every outgoing byte once (and caching the result).
    async fn session_key(&self, out: &Arc<Outgoing>) -> Result<String> {
        let path = out.path.to_string_lossy().into_owned();
        if let Some(cached) = state::hash_entry(self.ctx, &path)? {
            if cached.describes(out) {
                return Ok(cached.key);
            }
        }
        let hashed = out.clone();
        let md5 = blocking(move || {
            md5_hex(&hashed).map_err(|source| MlyError::File {
                path: hashed.path.to_string_lossy().into_owned(),
                source,
            })
        })
        .await?;
        let key = image_key(&md5);
        state::put_hash_entry(self.ctx, &path, &HashEntry::new(out, key.clone()))?;
        Ok(key)
    }

    /// Uploads one image, whose outgoing bytes `out` describes, and commits its handle.
    pub async fn upload_image(
        &self,
        store: &SequenceStore<'_>,
        image: &ImageInfo,
        out: Arc<Outgoing>,
    ) -> Result<ImageEntry> {
        if self.ctx.is_cancelled() {
            return Err(MlyError::Cancelled);
        }
        let key = self.session_key(&out).await?;
        let progress = Arc::new(EntityProgress::new(self.ctx, out.length));
        let what = format!("upload of {}", display_name(image));
        let handle = match self
            .upload_entity(&what, &key, "image/jpeg", &Source::File(out), &progress)
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
        let entry = ImageEntry {
            key,
            handle,
            acked_at_ms: Some(self.api.config.now_ms()),
        };
        store.put_image(&image.path, &entry)?;
        progress.finish();
        Ok(entry)
    }

    /// Uploads `images` (each with its prepared outgoing bytes), `jobs` at a time. Stops at the first error (in-flight uploads are abandoned; the
    /// server keeps what it received, and the next run resumes from there).
    pub async fn upload_images(
        &self,
        store: &SequenceStore<'_>,
        images: Vec<(ImageInfo, Arc<Outgoing>)>,
        jobs: usize,
    ) -> Result<()> {
        let mut uploads = futures::stream::iter(images)
            .map(|(image, out)| async move { self.upload_image(store, &image, out).await })
            .buffer_unordered(jobs.max(1));
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
