//! One `run` on the v4 API (`docs/providers/mapillary.md`), resumable from state at every step.
//!
//! Upload mode: validate → plan the parts → upload every image (parallel) → upload each part's manifest
//! → publish each part once → look each part's key up once. Re-check mode: only the lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;

use plugin_api::prelude::*;
use plugin_api::protocol::Phase;
use plugin_api::sequence::BoundingBox;

use crate::api::Api;
use crate::auth;
use crate::bundle::{legacy_manifest_key, manifest_body, manifest_key};
use crate::config::{Config, RunOptions};
use crate::error::{MlyError, Result};
use crate::exif_rewrite::{map_capture_time, prepare};
use crate::lookup::{self, Choice, Query};
use crate::outcome::{summarize, PartView};
use crate::outgoing::Outgoing;
use crate::progress::EntityProgress;
use crate::publish::{publish_part, Published};
use crate::split::{split, MAPILLARY_LIMITS};
use crate::state::{
    self, handle_is_fresh, HashEntry, ImageEntry, PartState, Plan, PlannedPart, Publish,
    SequenceStore,
};
use crate::upload::{bandwidth_limit, Source, Start, Uploader};
use crate::Mapillary;
use crate::{dry_run, overdue, token};

mod prior;

/// Images prepared by one blocking task (see `Run::upload_images`).
const PREPARE_BATCH: usize = 32;

fn step(ctx: &Context, name: &str, message: impl Into<String>) {
    // The phase is what the host records at once (a run killed now leaves it as the sequence's record).
    let phase = match name {
        "upload" => Some(Phase::Sending),
        "publish" => Some(Phase::Publishing),
        "lookup" => Some(Phase::LookingUp),
        _ => None,
    };
    if let Some(phase) = phase {
        ctx.progress(ProgressEvent::Phase { phase });
    }
    ctx.progress(ProgressEvent::Step {
        step: name.into(),
        message: Some(message.into()),
    });
}

/// Refuses what Mapillary cannot take, before anything is sent.
pub fn validate(sequence: &SequenceDescriptor) -> Result<()> {
    if let Some(reason) = Mapillary::refusal(sequence) {
        return Err(MlyError::Invalid(reason));
    }
    if sequence.images.is_empty() {
        return Err(MlyError::Invalid("the sequence has no images".into()));
    }
    for image in &sequence.images {
        let (lat, lon) = (image.latitude, image.longitude);
        let position_ok = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon)
            && !(lat == 0.0 && lon == 0.0);
        if !position_ok {
            return Err(MlyError::Invalid(format!(
                "{}: Mapillary needs a valid GPS position, not ({lat}, {lon})",
                image.path
            )));
        }
        if map_capture_time(image.captured_at_ms).is_none() {
            return Err(MlyError::Invalid(format!(
                "{}: capture time {} is out of range",
                image.path, image.captured_at_ms
            )));
        }
    }
    Ok(())
}

/// The plan for `sequence` as it is now.
pub fn plan(sequence: &SequenceDescriptor) -> Plan {
    let mut digest = md5::Context::new();
    let parts = split(&sequence.images, &MAPILLARY_LIMITS)
        .into_iter()
        .map(|range| {
            let images = &sequence.images[range];
            digest.consume(b"part\0");
            for i in images {
                // Everything that goes into the outgoing description, so that a change re-plans.
                let line = format!(
                    "{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}\n",
                    i.path,
                    i.file_name,
                    i.captured_at_ms,
                    i.latitude,
                    i.longitude,
                    i.altitude,
                    i.heading,
                    i.size_bytes
                );
                digest.consume(line.as_bytes());
            }
            PlannedPart {
                images: images.iter().map(|i| i.path.clone()).collect(),
                times: images.iter().map(|i| i.captured_at_ms).collect(),
                bbox: BoundingBox::from_points(images.iter().map(|i| (i.latitude, i.longitude)))
                    .unwrap_or(BoundingBox {
                        min_lat: 0.0,
                        min_lon: 0.0,
                        max_lat: 0.0,
                        max_lon: 0.0,
                    }),
            }
        })
        .collect();
    Plan {
        digest: format!("{:x}", digest.compute()),
        parts,
    }
}

/// One run of the integration on one sequence.
pub struct Run<'a> {
    api: Api,
    ctx: &'a Context,
    request: &'a RunRequest,
    options: RunOptions,
    store: SequenceStore<'a>,
    /// The user name image searches filter on, asked from `/me` once per run (`Run::username`).
    username: tokio::sync::OnceCell<String>,
}

impl<'a> Run<'a> {
    /// Prepares a run of `request`.
    pub fn new(ctx: &'a Context, request: &'a RunRequest) -> Result<Run<'a>> {
        let mut config = Config::from_context(ctx)?;
        config.recheck = request.mode == RunMode::Recheck;
        let api = Api::new(config)?;
        Ok(Run {
            api,
            ctx,
            request,
            options: RunOptions::from_request(request),
            store: SequenceStore::new(ctx, &request.sequence.id),
            username: tokio::sync::OnceCell::new(),
        })
    }

    /// The user's Mapillary name (`auth::username`), asked once per run: every look for the user's
    /// sequences in this run uses it.
    async fn username(&self, token: &str) -> Result<String> {
        self.username
            .get_or_try_init(|| auth::username(&self.api, self.ctx, token))
            .await
            .cloned()
    }

    /// Does what the request's mode asks. When Mapillary refuses the token mid-run, the token is
    /// refreshed once and the run resumes from the state store (everything acknowledged is kept); if
    /// the refresh fails, the run stops asking for a new login. Auth errors also mark the stored account
    /// as refused.
    pub async fn run(&self) -> Result<RunOutcome> {
        let mut result = self.run_mode().await;
        if let Err(MlyError::TokenRefused { what, .. }) = &result {
            let what = format!("refused during {what}");
            result = match token::refresh(&self.api, self.ctx, &what).await {
                Ok(_) => self.run_mode().await,
                Err(err) => Err(err),
            };
        }
        if let Err(MlyError::TokenRefused { .. } | MlyError::RefreshFailed { .. }) = &result {
            state::mark_token_refused(self.ctx)?;
        }
        result
    }

    async fn run_mode(&self) -> Result<RunOutcome> {
        match self.request.mode {
            RunMode::Upload => self.upload().await,
            RunMode::Recheck => self.recheck().await,
        }
    }

    fn parts(&self, plan: &Plan) -> Result<Vec<PartState>> {
        (0..plan.parts.len()).map(|i| self.store.part(i)).collect()
    }

    /// The outcome from the parts; once published, also drops what will never be sent again (the
    /// per-image records), keeping the plan and the keys.
    fn record_outcome(&self, plan: &Plan, parts: &[PartState]) -> Result<RunOutcome> {
        let outcome = self.summary(plan, parts);
        if outcome.state == SequenceState::Published {
            // Nothing will be sent again: only the plan and the keys stay, and each image's content
            // entry (`crate::moved`). (A no-op once done, so a published sequence costs no writes on
            // later runs.)
            let images = self.store.images()?;
            let mut writes =
                crate::moved::content_writes(&self.request.sequence.id, plan, &images)?;
            writes.extend(self.store.image_paths()?.iter().flat_map(|path| {
                [
                    self.store.image_delete(path),
                    state::hash_entry_delete(path),
                ]
            }));
            self.ctx.state().write_all(&writes)?;
            crate::prepublish::forget_attempts(self.ctx, &self.request.sequence.id)?;
        }
        Ok(outcome)
    }

    /// What the parts add up to (`crate::outcome::summarize`).
    fn summary(&self, plan: &Plan, parts: &[PartState]) -> RunOutcome {
        let views: Vec<PartView<'_>> = plan
            .parts
            .iter()
            .zip(parts)
            .enumerate()
            .map(|(index, (p, state))| PartView {
                index,
                images: p.images.len(),
                first_ms: p.times.iter().min().copied().unwrap_or(0),
                last_ms: p.times.iter().max().copied().unwrap_or(0),
                state,
            })
            .collect();
        let files = plan.parts.iter().map(|p| p.images.len() as u64).sum();
        let progress = self
            .request
            .previous
            .as_ref()
            .and_then(|p| p.progress)
            .filter(|p| p.files_total == files)
            .or(Some(Progress {
                files_done: files,
                files_total: files,
                bytes_done: 0,
                bytes_total: 0,
            }));
        summarize(
            &views,
            self.api.config.now_ms(),
            self.api.config.publish_deadline,
            progress,
        )
        .outcome
    }

    /// The outcome of a folder whose photos are a sequence this state published (`crate::moved`):
    /// nothing is sent; the host keeps the photos as that sequence.
    async fn already_published(&self, found: crate::moved::Found) -> Result<RunOutcome> {
        let mut outcome = self.summary(&found.plan, &found.parts);
        let keys: Vec<&str> = found
            .parts
            .iter()
            .filter_map(|p| p.sequence_key.as_deref())
            .collect();
        let renamed = match found.renamed {
            0 => String::new(),
            n => format!("{n} photo(s) under new file names: the same photos, "),
        };
        outcome.message = Some(format!(
            "{renamed}already published as {}; nothing sent",
            keys.join(", ")
        ));
        outcome.same_as = Some(found.sequence.clone());
        // What changed is reported (and, on request, sent) as a change of that sequence.
        let mut request = self.request.clone();
        request.sequence.id = found.sequence;
        crate::changes::report_or_send(self.ctx, &request, &found.plan, outcome).await
    }

    fn forget_part(&self, plan: &Plan, index: usize) -> Result<()> {
        self.store.delete_part(index)?;
        if let Some(part) = plan.parts.get(index) {
            self.store.forget_images(&part.images)?;
        }
        Ok(())
    }

    /// A refusal from Mapillary while uploading or publishing: the state of every part not (possibly) published yet is
    /// cleared so that a re-upload starts clean — all of the sequence's state when nothing was published;
    /// published parts stay, so they are never published twice — and the record says why.
    fn failed(&self, plan: &Plan, err: &MlyError) -> Result<RunOutcome> {
        let mut started = false;
        for index in 0..plan.parts.len() {
            if self.store.part(index)?.publish == Publish::NotSent {
                self.forget_part(plan, index)?;
            } else {
                started = true;
            }
        }
        if !started {
            self.store.clear()?;
        }
        let mut outcome = RunOutcome::new(SequenceState::Failed, err.to_string());
        outcome.next_action = Some("fix the cause if you can, then run mtp upload again".into());
        Ok(outcome)
    }

    async fn recheck(&self) -> Result<RunOutcome> {
        let Some(plan) = self.store.plan()? else {
            // Nothing of ours to check (the state was reset): keep the record as it is.
            return Ok(self.request.previous.clone().unwrap_or_else(|| {
                RunOutcome::new(SequenceState::Pending, "nothing uploaded yet")
            }));
        };
        let token = token::usable(&self.api, self.ctx).await?;
        let mut parts = self.parts(&plan)?;
        self.find_keys(&plan, &mut parts, &token, false).await?;
        let outcome = self.record_outcome(&plan, &parts)?;
        if outcome.state == SequenceState::Published {
            return crate::changes::report_or_send(self.ctx, self.request, &plan, outcome).await;
        }
        Ok(outcome)
    }

    /// The plan to follow: the stored one once publishing has begun (published parts cannot change),
    /// else the current one (a changed sequence starts over).
    fn resolve_plan(&self) -> Result<Plan> {
        let sequence = &self.request.sequence;
        let current = plan(sequence);
        let stored = self.store.plan()?;
        if let Some(stored) = stored {
            let started = self
                .store
                .stored_parts()?
                .iter()
                .any(|(_, p)| p.publish != Publish::NotSent);
            if started {
                if stored.digest != current.digest {
                    let paths: BTreeSet<&str> =
                        sequence.images.iter().map(|i| i.path.as_str()).collect();
                    if let Some(missing) = stored
                        .parts
                        .iter()
                        .flat_map(|p| &p.images)
                        .find(|p| !paths.contains(p.as_str()))
                    {
                        return Err(MlyError::Invalid(format!(
                            "the sequence changed after it was published to Mapillary: {missing} is \
                             no longer part of it; put it back to finish this upload"
                        )));
                    }
                    self.ctx.warn(
                        "the sequence changed after it was published to Mapillary; \
                         continuing with the images that were published",
                    );
                }
                return Ok(stored);
            }
            if stored.digest == current.digest {
                return Ok(stored);
            }
            self.store.clear()?;
        }
        self.store.put_plan(&current)?;
        Ok(current)
    }

    async fn upload(&self) -> Result<RunOutcome> {
        if self.request.dry_run {
            // Local only: no state is read or written, no service contacted.
            step(self.ctx, "validate", "checking the sequence");
            validate(&self.request.sequence)?;
            return dry_run::run(self.ctx, self.request, &plan(&self.request.sequence)).await;
        }
        // A folder new to this state may hold photos it published as another sequence (moved,
        // renamed, copied): recognised by content, nothing is sent.
        let mut first_key = None;
        if self.store.plan()?.is_none() && !self.options.republish {
            let sequence = &self.request.sequence;
            match crate::moved::find(self.ctx, sequence, self.options.jobs).await? {
                crate::moved::Lookup::Found(found) => return self.already_published(found).await,
                crate::moved::Lookup::New { first_key: key } => first_key = key,
            }
        }
        // A sequence whose every part has its key is done, whatever happened to it on disk since.
        if let Some(mut stored) = self.store.plan()? {
            let parts = self.parts(&stored)?;
            if !parts.is_empty() && parts.iter().all(|p| p.sequence_key.is_some()) {
                let sequence = &self.request.sequence;
                let repathed =
                    crate::moved::repath(self.ctx, sequence, self.options.jobs, &mut stored)
                        .await?;
                let mut outcome = self.record_outcome(&stored, &parts)?;
                if let Some(said) = crate::changes::describe_repathed(&repathed, &parts) {
                    outcome.message = Some(said);
                    // The host then leaves the integrations that published it alone.
                    outcome.same_as = Some(sequence.id.clone());
                }
                return crate::changes::report_or_send(self.ctx, self.request, &stored, outcome)
                    .await;
            }
        }
        // Published by MTPDU before it learnt the key: looked up, nothing sent.
        if self.prior_due()? {
            return self.prior_upload().await;
        }
        step(self.ctx, "validate", "checking the sequence");
        validate(&self.request.sequence)?;
        let plan = self.resolve_plan()?;
        let token = token::usable(&self.api, self.ctx).await?;
        let mut parts = self.parts(&plan)?;
        if self.options.republish {
            self.forget_overdue(&plan, &mut parts, &token).await?;
        }
        let by_path: BTreeMap<&str, &ImageInfo> = self
            .request
            .sequence
            .images
            .iter()
            .map(|i| (i.path.as_str(), i))
            .collect();
        // The look at Mapillary before anything is sent: a part already on the user's account is
        // adopted (or, there twice, reported) and none of its bytes go out (`crate::prepublish`). It
        // goes out beside the first photo's offset request below, so a new folder waits for the longer
        // of the two (`/me` and one search per part) before its first byte, not for both.
        let due = if self.options.no_publish {
            Vec::new()
        } else {
            crate::prepublish::survey_due(&parts, self.options.republish)
        };
        let may_send = parts.iter().any(|p| p.publish == Publish::NotSent);
        // A folder new to this state whose first photo the server already holds was uploaded by a
        // run whose state was lost: each entity is then asked for its handle without sending a body
        // byte (one request; `Start::Held`). One offset request per new folder decides it; if it
        // fails, the entities are sent as new (correct, only slower when they were held).
        let first_held = async {
            match &first_key {
                Some(key) if may_send => self.api.upload_offset(&token, key).await.unwrap_or(0) > 0,
                _ => false,
            }
        };
        let (fetched, first_held) =
            futures::future::join(self.fetch_survey(&plan, &due, &token), first_held).await;
        let notes = self.survey(&plan, &mut parts, fetched?)?;
        // Parts to upload: those never published, and (with --republish) those whose publication is in
        // doubt and whose manifest handle is too old to publish again as it is.
        let now = self.api.config.now_ms();
        let to_send: Vec<usize> = (0..plan.parts.len())
            .filter(|&i| {
                let p = &parts[i];
                p.publish == Publish::NotSent
                    || (self.options.republish
                        && p.sequence_key.is_none()
                        && matches!(p.publish, Publish::OutcomeUnknown { .. })
                        && !handle_is_fresh(p.manifest_acked_at_ms, now))
            })
            .collect();

        let held = first_held && !to_send.is_empty();
        let uploader = Uploader {
            api: &self.api,
            ctx: self.ctx,
            token: &token,
            limit: bandwidth_limit(self.request)?,
            held,
        };
        let mut progress = Progress::default();
        if !to_send.is_empty() {
            progress = match self
                .upload_images(&uploader, &plan, &to_send, &by_path)
                .await
            {
                Ok(progress) => progress,
                Err(err @ MlyError::Rejected { .. }) => return self.failed(&plan, &err),
                Err(err) => return Err(err),
            };
            let acknowledged = self.store.images()?;
            for &index in &to_send {
                match self
                    .upload_manifest(&uploader, &plan, index, &mut parts[index], &acknowledged)
                    .await
                {
                    Ok(()) => {}
                    Err(err @ MlyError::Rejected { .. }) => return self.failed(&plan, &err),
                    Err(err) => return Err(err),
                }
            }
            if self.options.no_publish {
                return Ok(self.no_publish_outcome(&plan, &to_send, progress));
            }
        }

        // `no_publish` publishes nothing, not even a part whose earlier publication is in doubt.
        if !self.options.no_publish {
            match self.publish_parts(&plan, &mut parts, &token).await {
                Ok(()) => {}
                Err(err @ MlyError::Rejected { .. }) => return self.failed(&plan, &err),
                Err(err) => return Err(err),
            }
        }

        self.find_keys(&plan, &mut parts, &token, false).await?;
        let mut outcome = self.record_outcome(&plan, &parts)?;
        if progress.files_total > 0 {
            outcome.progress = Some(progress);
        }
        if !notes.is_empty() {
            let message = outcome.message.take().unwrap_or_default();
            outcome.message = Some(format!("{message} ({})", notes.join("; ")));
        }
        Ok(outcome)
    }

    /// What Mapillary shows for the parts `due` for the look before publishing (`crate::prepublish`).
    async fn fetch_survey(
        &self,
        plan: &Plan,
        due: &[usize],
        token: &str,
    ) -> Result<Vec<(usize, crate::lookup::Candidates)>> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let username = self.username(token).await?;
        crate::prepublish::fetch_survey(&self.api, self.ctx, token, &username, plan, due).await
    }

    /// The look at Mapillary before publishing (`crate::prepublish`), from what it showed (`fetched`).
    fn survey(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        fetched: Vec<(usize, crate::lookup::Candidates)>,
    ) -> Result<Vec<String>> {
        crate::prepublish::apply_survey(
            self.ctx,
            &self.request.sequence,
            plan,
            parts,
            crate::prepublish::SurveyMode {
                may_adopt: !self.options.republish,
            },
            fetched,
        )
    }

    /// Publishes every part not published yet (and, with `--republish`, those whose publication is in
    /// doubt). A refusal fails the sequence.
    async fn publish_parts(&self, plan: &Plan, parts: &mut [PartState], token: &str) -> Result<()> {
        let due: Vec<usize> = (0..plan.parts.len())
            .filter(|&i| {
                parts[i].sequence_key.is_none()
                    && match parts[i].publish {
                        Publish::NotSent => true,
                        Publish::OutcomeUnknown { .. } => self.options.republish,
                        Publish::Published { .. } => false,
                    }
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        step(self.ctx, "publish", "publishing on Mapillary");
        let uploader = Uploader {
            api: &self.api,
            ctx: self.ctx,
            token,
            limit: bandwidth_limit(self.request)?,
            held: false,
        };
        let mut acknowledged = None;
        for index in due {
            if let Publish::OutcomeUnknown { .. } = parts[index].publish {
                // A new attempt gets a new manifest entity, never the handle already sent.
                crate::attempts::forget(self.ctx, &self.request.sequence.id, index)?;
                // Read at the first part that needs them, once.
                if acknowledged.is_none() {
                    acknowledged = Some(self.store.images()?);
                }
                if let Some(acknowledged) = &acknowledged {
                    self.upload_manifest(&uploader, plan, index, &mut parts[index], acknowledged)
                        .await?;
                }
            }
            let part = &mut parts[index];
            match publish_part(&self.api, self.ctx, token, &self.store, index, part).await {
                Ok(Published::Accepted) => self.ctx.info(format!(
                    "part {} of {} published ({} images)",
                    index + 1,
                    plan.parts.len(),
                    plan.parts[index].images.len()
                )),
                Ok(Published::Unknown) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// `--republish` on overdue parts: one more lookup each, and those still not found are forgotten so
    /// that this run uploads and publishes them again.
    async fn forget_overdue(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        token: &str,
    ) -> Result<()> {
        let (now, deadline) = (self.api.config.now_ms(), self.api.config.publish_deadline);
        let late = |p: &PartState| {
            p.ambiguous.is_empty() && overdue::overdue_for(p, now, deadline).is_some()
        };
        if !parts.iter().any(late) {
            return Ok(());
        }
        self.find_keys(plan, parts, token, true).await?;
        for (index, part) in parts.iter_mut().enumerate() {
            if late(part) {
                self.ctx.warn(format!(
                    "part {} is still not on Mapillary after the deadline: publishing it again \
                     (--republish)",
                    index + 1
                ));
                self.forget_part(plan, index)?;
                *part = PartState::default();
            }
        }
        Ok(())
    }

    /// Uploads the images of the parts in `to_send` that the server has not acknowledged yet.
    async fn upload_images(
        &self,
        uploader: &Uploader<'_>,
        plan: &Plan,
        to_send: &[usize],
        by_path: &BTreeMap<&str, &ImageInfo>,
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        let mut pending: Vec<(ImageInfo, Arc<Outgoing>, Option<HashEntry>)> = Vec::new();
        let mut to_prepare: Vec<ImageInfo> = Vec::new();
        for &index in to_send {
            let part = self.store.part(index)?;
            if part.manifest_handle.is_some()
                && handle_is_fresh(part.manifest_acked_at_ms, self.api.config.now_ms())
            {
                // Its images were all acknowledged before the manifest was.
                let n = plan.parts[index].images.len() as u64;
                progress.files_total += n;
                progress.files_done += n;
                continue;
            }
            for path in &plan.parts[index].images {
                let image = by_path.get(path.as_str()).copied().ok_or_else(|| {
                    MlyError::Invalid(format!("{path} is no longer part of the sequence"))
                })?;
                to_prepare.push(image.clone());
            }
        }
        // Read once for the whole sequence, not once per image.
        let acknowledged = self.store.images()?;
        let keys = state::HashCache::load(self.ctx, &self.request.sequence.root)?;
        // Prepared once: counted here, sent from the same description. In batches on the blocking
        // threads, `jobs` batches at a time (in order): thousands of small images neither wait on one
        // thread nor pay a thread hand-off each.
        let mut batches: Vec<Vec<ImageInfo>> = Vec::new();
        let mut rest = to_prepare.into_iter().peekable();
        while rest.peek().is_some() {
            batches.push(rest.by_ref().take(PREPARE_BATCH).collect());
        }
        let mut prepared = futures::stream::iter(batches)
            .map(|batch| {
                tokio::task::spawn_blocking(move || {
                    batch
                        .into_iter()
                        .map(|image| prepare(&image).map(|out| (image, out)))
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
            });
        while let Some(next) = prepared.next().await {
            let (image, out) = next?;
            progress.files_total += 1;
            progress.bytes_total += out.length;
            let entry = acknowledged.get(&image.path);
            let own_key = keys.get(self.ctx, &image.path)?;
            let key = entry.map_or(own_key.as_ref(), |e| e.key_source(own_key.as_ref()));
            if self.is_acknowledged(entry, key, &out) {
                progress.files_done += 1;
                progress.bytes_done += out.length;
            } else {
                let key = key.cloned();
                pending.push((image, Arc::new(out), key));
            }
        }
        self.ctx.progress(progress.totals_event());
        step(
            self.ctx,
            "upload",
            format!(
                "uploading {} of {} images ({} at a time)",
                pending.len(),
                progress.files_total,
                self.options.jobs
            ),
        );
        uploader
            .upload_images(&self.store, pending, self.options.jobs)
            .await?;
        progress.files_done = progress.files_total;
        progress.bytes_done = progress.bytes_total;
        Ok(progress)
    }

    /// Whether the server acknowledged `out`, the bytes an image would send now: a handle (`entry`, the
    /// one stored for the image) is stored for the session key that the hash cache holds (`key`) for
    /// exactly these bytes.
    fn is_acknowledged(
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
    /// come from `acknowledged` ([`SequenceStore::images`]).
    async fn upload_manifest(
        &self,
        uploader: &Uploader<'_>,
        plan: &Plan,
        index: usize,
        part: &mut PartState,
        acknowledged: &HashMap<String, ImageEntry>,
    ) -> Result<()> {
        let mut handles = Vec::with_capacity(plan.parts[index].images.len());
        for path in &plan.parts[index].images {
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

    fn no_publish_outcome(&self, plan: &Plan, to_send: &[usize], progress: Progress) -> RunOutcome {
        let images: usize = to_send.iter().map(|&i| plan.parts[i].images.len()).sum();
        let detail = if plan.parts.len() == 1 {
            String::new()
        } else {
            let parts: Vec<String> = to_send
                .iter()
                .map(|&i| {
                    let p = &plan.parts[i];
                    format!(
                        "part {} ({} images, {} – {})",
                        i + 1,
                        p.images.len(),
                        plugin_api::time::format_utc(p.times.iter().min().copied().unwrap_or(0)),
                        plugin_api::time::format_utc(p.times.iter().max().copied().unwrap_or(0))
                    )
                })
                .collect();
            format!(": {}", parts.join("; "))
        };
        let mut outcome = RunOutcome::new(
            SequenceState::DryRun,
            format!(
                "not published (no_publish): uploaded {images} images and {} manifest(s); would have \
                 published {} Mapillary sequence(s){detail}",
                to_send.len(),
                to_send.len()
            ),
        );
        outcome.progress = Some(progress);
        outcome.next_action = Some(
            "run mtp upload to publish (handles older than 2 days are checked with Mapillary again)"
                .into(),
        );
        outcome
    }

    /// One lookup per part that is (or may be) published and has no key yet; overdue parts only when
    /// their backoff allows (`crate::overdue`) or `force` says so.
    async fn find_keys(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        token: &str,
        force: bool,
    ) -> Result<()> {
        let (now, deadline) = (self.api.config.now_ms(), self.api.config.publish_deadline);
        let wanted: Vec<usize> = (0..parts.len())
            .filter(|&i| {
                parts[i].sequence_key.is_none()
                    && matches!(
                        parts[i].publish,
                        Publish::Published { .. } | Publish::OutcomeUnknown { .. }
                    )
                    && (force || overdue::lookup_due(&parts[i], now, deadline))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        step(
            self.ctx,
            "lookup",
            "looking for the sequence key on Mapillary",
        );
        let username = self.username(token).await?;
        let held_elsewhere = crate::prepublish::local_keys(self.ctx)?;
        // The searches go out `jobs` at a time, ahead of the decisions, which stay in part order (each
        // excludes the keys earlier parts took); a failed search stops at its part, as one at a time did.
        let queries: Vec<Query> = wanted
            .iter()
            .map(|&index| Query::for_part(&username, &plan.parts[index]))
            .collect();
        let (api, ctx) = (&self.api, self.ctx);
        let mut searches = futures::stream::iter(queries)
            .map(move |query| async move { lookup::candidates(api, ctx, token, &query).await })
            .buffered(self.options.jobs.max(1));
        for index in wanted {
            // Never another record's key, nor one Mapillary showed before this part was published.
            let mut taken: BTreeSet<String> = parts
                .iter()
                .filter_map(|p| p.sequence_key.clone())
                .collect();
            taken.extend(held_elsewhere.iter().cloned());
            taken.extend(crate::prepublish::known_before(
                self.ctx,
                &self.request.sequence.id,
                index,
            )?);
            let planned = &plan.parts[index];
            let candidates = searches.next().await.ok_or_else(|| {
                MlyError::Invalid(format!("no search was made for part {}", index + 1))
            })??;
            let ours = crate::prepublish::our_images(planned, &self.request.sequence);
            let part = &mut parts[index];
            part.lookups += 1;
            part.last_lookup_ms = Some(now);
            match lookup::choose(&planned.times, &lookup::times(&candidates), &taken) {
                Choice::Found(key) if !crate::prepublish::verified(&ours, candidates.get(&key)) => {
                    // Close in time, but not our images at our places: recorded, not guessed.
                    self.ctx.warn(format!(
                        "part {}: Mapillary sequence {key} is near in time but does not hold these images at their capture times and places; not assigned (looked at again later)",
                        index + 1
                    ));
                    part.ambiguous = vec![key];
                }
                Choice::Found(key) => {
                    if let Publish::OutcomeUnknown { .. } = part.publish {
                        // It did go through: the lookup settles the unknown outcome.
                        part.publish = Publish::Published {
                            at_ms: now,
                            cluster_id: String::new(),
                        };
                    }
                    self.ctx
                        .info(format!("part {} is Mapillary sequence {key}", index + 1));
                    part.sequence_key = Some(key);
                    part.ambiguous.clear();
                }
                Choice::Ambiguous(keys) => part.ambiguous = keys,
                Choice::NotFound => part.ambiguous.clear(),
            }
            self.store.put_part(index, part)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sequence::Projection;

    fn sequence(n: usize) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/s".into(),
            name: "s".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: Default::default(),
            images: (0..n)
                .map(|i| ImageInfo {
                    path: format!("/s/{i}.jpg"),
                    file_name: format!("{i}.jpg"),
                    size_bytes: 10,
                    latitude: 52.0,
                    longitude: 6.0 + i as f64 * 1e-5,
                    altitude: None,
                    captured_at_ms: 1_000_000 + i as i64 * 1000,
                    heading: None,
                    projection: Projection::Flat,
                    width: None,
                    height: None,
                    photo_uuid: None,
                    sources: None,
                })
                .collect(),
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&sequence(2)).is_ok());
        assert!(validate(&sequence(0)).is_err());
        let mut zero = sequence(2);
        zero.images[1].latitude = 0.0;
        zero.images[1].longitude = 0.0;
        assert!(matches!(validate(&zero), Err(MlyError::Invalid(m)) if m.contains("1.jpg")));
        let mut air = sequence(2);
        air.transport = plugin_api::transport::TransportType::parse("Paraglide").ok();
        assert!(validate(&air).is_err());
    }

    #[test]
    fn plan_digest_follows_what_is_sent() {
        let a = plan(&sequence(3));
        assert_eq!(a, plan(&sequence(3)));
        assert_eq!(a.parts.len(), 1);
        assert_eq!(a.parts[0].times.len(), 3);
        let mut moved = sequence(3);
        moved.images[2].altitude = Some(3.0);
        assert_ne!(plan(&moved).digest, a.digest);
    }
}
