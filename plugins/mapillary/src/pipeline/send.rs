//! Sending: every image of the plan (in parallel, resumably, never an acknowledged byte twice), then
//! each part's manifest.

use super::*;
use crate::sequence_images::Slot;

/// An image read for preparing: its slot in the plan, what comes with it, and the image.
type SlotImage<T> = Result<((Slot, T), ImageInfo)>;

/// A part's images still due: the part, and each one's place in it with the session key it had. The
/// key is boxed: most images have none (a new folder), and an entry held inline cost 96 bytes an image
/// between the passes (9.6 MB at 100,000), a boxed one 16.
type DueImages = (usize, Vec<(usize, Option<Box<HashEntry>>)>);

impl Run<'_> {
    /// Uploads the images of the parts in `to_send` that the server has not acknowledged yet.
    ///
    /// Two passes, so that memory does not grow with the sequence: the first prepares each image to
    /// count the bytes to send and to find those already acknowledged, keeping only which ones are
    /// due; the second prepares the due ones again just before they are sent, a few batches ahead of
    /// the network. Holding every prepared image between the two cost about 1.7 KB an image (170 MB
    /// at 100,000) for one EXIF read saved per image. Each pass reads the images a part at a time
    /// ([`SequenceImages::part`]), when the part's turn comes.
    pub(super) async fn upload_images(
        &self,
        uploader: &Uploader<'_>,
        plan: &Plan,
        to_send: &[usize],
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        let mut to_prepare = Vec::new();
        for &index in to_send {
            let part = self.store.part(index)?;
            if part.manifest_handle.is_some()
                && handle_is_fresh(part.manifest_acked_at_ms, self.api.config.now_ms())
            {
                // Its images were all acknowledged before the manifest was.
                let n = plan.parts[index].len as u64;
                progress.files_total += n;
                progress.files_done += n;
                continue;
            }
            to_prepare.push(index);
        }
        // The entries and cached keys of the part being prepared, read when its first image comes (the
        // images come in part order): one read each per part, never the whole sequence's at once.
        let mut acknowledged = HashMap::new();
        let mut cached = HashMap::new();
        let mut current = None;
        // The images still due, by part (their places in it), and the session key each had.
        let mut due: Vec<DueImages> = Vec::new();
        let images = to_prepare.iter().flat_map(|&part| {
            self.part_images(plan, part, (0..plan.parts[part].len).map(|at| (at, ())))
        });
        let mut prepared = std::pin::pin!(self.prepared(images));
        while let Some(next) = prepared.next().await {
            let (((part, at), ()), image, out) = next?;
            if current != Some(part) {
                let paths = self.planned(plan, part)?.images;
                acknowledged = self.store.images_of(&paths)?;
                cached = state::hash_entries_of(self.ctx, &paths)?;
                current = Some(part);
                due.push((part, Vec::new()));
            }
            progress.files_total += 1;
            progress.bytes_total += out.length;
            let entry = acknowledged.get(&image.path);
            let own_key = cached.get(&image.path);
            let key = entry.map_or(own_key, |e| e.key_source(own_key));
            if self.is_acknowledged(entry, key, &out) {
                progress.files_done += 1;
                progress.bytes_done += out.length;
            } else if let Some((_, places)) = due.last_mut() {
                places.push((at, key.cloned().map(Box::new)));
            }
        }
        drop((acknowledged, cached));
        due.retain(|(_, places)| !places.is_empty());
        let count: usize = due.iter().map(|(_, places)| places.len()).sum();
        self.ctx.progress(progress.totals_event());
        step(
            self.ctx,
            "upload",
            format!(
                "uploading {count} of {} images ({} at a time)",
                progress.files_total, self.options.jobs
            ),
        );
        let images = due
            .into_iter()
            .flat_map(|(part, places)| self.part_images(plan, part, places.into_iter()));
        let sends = self
            .prepared(images)
            .map(|next| next.map(|((_, key), image, out)| (image, Arc::new(out), key.map(|k| *k))));
        uploader
            .upload_images(&self.store, sends, self.options.jobs)
            .await?;
        progress.files_done = progress.files_total;
        progress.bytes_done = progress.bytes_total;
        Ok(progress)
    }

    /// The images of part `part` at `places` (each with what comes with it), read when the part's turn
    /// comes: one part's images are held at a time, not the sequence's.
    fn part_images<T>(
        &self,
        plan: &Plan,
        part: usize,
        places: impl Iterator<Item = (usize, T)>,
    ) -> Vec<SlotImage<T>> {
        let read = self
            .planned(plan, part)
            .and_then(|planned| Ok((self.images.part(&planned)?, planned.images)));
        let (mut images, paths) = match read {
            Ok(read) => read,
            Err(err) => return vec![Err(err)],
        };
        places
            .map(
                |(at, with)| match images.get_mut(at).and_then(Option::take) {
                    Some(image) => Ok((((part, at), with), image)),
                    None => Err(gone(paths.get(at).map_or("", String::as_str))),
                },
            )
            .collect()
    }

    /// `images` prepared ([`prepare`]), in order, each with what came with it: in batches on the blocking
    /// threads, `jobs` batches at a time, so thousands of small images neither wait on one thread nor
    /// pay a thread hand-off each, and only those batches are held. An image that could not be read
    /// stays the error it is, in its place.
    fn prepared<'i, T: Send + 'static>(
        &self,
        images: impl Iterator<Item = Result<(T, ImageInfo)>> + 'i,
    ) -> impl futures::Stream<Item = Result<(T, ImageInfo, Outgoing)>> + 'i {
        let mut images = images;
        let batches = std::iter::from_fn(move || {
            let batch: Vec<_> = images.by_ref().take(PREPARE_BATCH).collect();
            (!batch.is_empty()).then_some(batch)
        });
        futures::stream::iter(batches)
            .map(|batch| {
                tokio::task::spawn_blocking(move || {
                    batch
                        .into_iter()
                        .map(|next| {
                            let (with, image) = next?;
                            prepare(&image).map(|out| (with, image, out))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .buffered(self.options.jobs.max(1))
            .flat_map(|batch| {
                let results = match batch {
                    Ok(results) => results,
                    Err(err) => vec![Err(MlyError::Invalid(format!(
                        "a worker thread failed: {err}"
                    )))],
                };
                futures::stream::iter(results)
            })
    }

    /// Whether the server acknowledged `out`, the bytes an image would send now: a handle (`entry`, the
    /// one stored for the image) is stored for the session key that the hash cache holds (`key`) for
    /// exactly these bytes.
    pub(super) fn is_acknowledged(
        &self,
        entry: Option<&ImageEntry>,
        key: Option<&HashEntry>,
        out: &Outgoing,
    ) -> bool {
        let Some(entry) = entry else {
            return false;
        };
        // An old handle is unknown: the service is asked for the entity's offset again.
        if !handle_is_fresh(entry.acked_at_ms, self.api.config.now_ms()) {
            return false;
        }
        key.is_some_and(|hash| hash.describes(out) && hash.key == entry.key)
    }

    /// Uploads part `index`'s manifest unless the same manifest is already acknowledged; the handles
    /// come from its images' entries ([`SequenceStore::images_of`]).
    pub(super) async fn upload_manifest(
        &self,
        uploader: &Uploader<'_>,
        plan: &Plan,
        index: usize,
        part: &mut PartState,
    ) -> Result<()> {
        let paths = self.planned(plan, index)?.images;
        let acknowledged = self.store.images_of(&paths)?;
        let mut handles = Vec::with_capacity(paths.len());
        for path in &paths {
            let entry = acknowledged.get(path).ok_or_else(|| {
                MlyError::Invalid(format!("{path} was not uploaded; run mtp upload again"))
            })?;
            handles.push(entry.handle.clone());
        }
        let body = manifest_body(&handles);
        let content = manifest_key(&body);
        let seq_id = &self.request.sequence.id;
        let uploaded = crate::attempts::uploaded_content(self.ctx, seq_id, index)?;
        // A manifest acknowledged under the identity earlier versions gave it (md5) still fits,
        // but is reused only while its handle is still fresh.
        let fits = |u: &str| u == content || u == legacy_manifest_key(&body);
        if uploaded.as_deref().is_some_and(fits)
            && part.manifest_handle.is_some()
            && handle_is_fresh(part.manifest_acked_at_ms, self.api.config.now_ms())
        {
            return Ok(());
        }
        let key = crate::bundle::fresh_manifest_key();
        let source = Source::Memory(body.into());
        let progress = Arc::new(EntityProgress::new_silent(self.ctx));
        let what = format!("upload of the manifest of part {}", index + 1);
        // Sent from offset 0 without asking: the key is new and random, so no earlier run (nor a
        // cleared state) can have sent bytes under it; a 412 still sends us to ask. One request fewer
        // per part, which a slow link pays in full (README, Performance, row 6).
        let handle = uploader
            .upload_entity(
                &what,
                &key,
                "application/json",
                &source,
                Start::Fresh,
                &progress,
            )
            .await?;
        part.manifest_key = Some(key);
        part.manifest_handle = Some(handle);
        part.manifest_acked_at_ms = Some(self.api.config.now_ms());
        self.store.put_part(index, part)?;
        crate::attempts::put_uploaded_content(self.ctx, seq_id, index, &content)?;
        Ok(())
    }
}
