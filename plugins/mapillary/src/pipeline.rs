//! One `run` on the v4 API (`docs/providers/mapillary.md`), resumable from state at every step.
//!
//! Upload mode: validate → plan the parts → upload every image (parallel) → upload each part's manifest
//! → publish each part once → look each part's key up once. Re-check mode: only the lookups.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;

use plugin_api::prelude::*;
use plugin_api::protocol::Phase;

use crate::api::Api;
use crate::auth;
use crate::bundle::{legacy_manifest_key, manifest_body, manifest_key};
use crate::config::{Config, RunOptions};
use crate::error::{MlyError, Result};
use crate::exif_rewrite::prepare;
use crate::lookup::{self, Choice, Query};
use crate::outcome::{summarize, PartView};
use crate::outgoing::Outgoing;
use crate::plan::checked_plan;
use crate::progress::EntityProgress;
use crate::publish::{publish_part, Published};
use crate::sequence_images::{gone, SequenceImages};
use crate::state::{
    self, handle_is_fresh, HashEntry, ImageEntry, PartState, Plan, PlannedPart, Publish,
    SequenceStore,
};
use crate::upload::{bandwidth_limit, Source, Start, Uploader};
use crate::{dry_run, overdue, token};

mod added;
mod keys;
mod prior;
mod publishing;
mod send;

/// Images prepared by one blocking task (see `Run::upload_images`).
const PREPARE_BATCH: usize = 32;
/// How many images' state one cleaning write batch covers.
const WRITE_BATCH: usize = 1_000;

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

/// One run of the integration on one sequence.
pub struct Run<'a> {
    api: Api,
    ctx: &'a Context,
    request: &'a RunRequest,
    /// The sequence's images, read a page or a part at a time: never all at once.
    images: SequenceImages<'a>,
    options: RunOptions,
    store: SequenceStore<'a>,
    /// The user name image searches filter on, asked from `/me` once per run (`Run::username`).
    username: tokio::sync::OnceCell<String>,
}

impl<'a> Run<'a> {
    /// Prepares a run of `request`, whose sequence's images are `images` (the request's sequence may
    /// carry none).
    pub fn new(ctx: &'a Context, request: &'a RunRequest, images: Images<'a>) -> Result<Run<'a>> {
        let mut config = Config::from_context(ctx)?;
        config.recheck = request.mode == RunMode::Recheck;
        let api = Api::new(config)?;
        Ok(Run {
            api,
            ctx,
            request,
            images: SequenceImages::new(images),
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

    /// The uploader of this run, sending with `token` (`held`: see [`Uploader::held`]).
    fn uploader<'t>(&'t self, token: &'t str, held: bool) -> Result<Uploader<'t>> {
        Ok(Uploader {
            api: &self.api,
            ctx: self.ctx,
            token,
            limit: bandwidth_limit(self.request)?,
            held,
        })
    }

    /// Part `index` of the stored `plan` with its images, read from the state when its turn comes.
    fn planned(&self, plan: &Plan, index: usize) -> Result<PlannedPart> {
        self.store.planned(plan, index)
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
            // A part at a time, so that neither the records read nor a write is the whole sequence:
            // each part's content entries and the removal of its records are one batch, committed
            // whole, so an image's record goes only once its content entry is written.
            for part in 0..plan.parts.len() {
                let planned = self.planned(plan, part)?;
                let images = self.store.images_of(&planned.images)?;
                let mut writes = crate::moved::content_writes(
                    &self.request.sequence.id,
                    part,
                    &planned,
                    &images,
                )?;
                for path in planned.images.iter().filter(|p| images.contains_key(*p)) {
                    writes.push(self.store.image_delete(path));
                    writes.push(state::hash_entry_delete(path));
                }
                self.ctx.state().write_all(&writes)?;
            }
            // What is left: records the plan does not name, or that cannot be read (none, normally).
            for paths in self.store.image_paths()?.chunks(WRITE_BATCH) {
                let writes: Vec<plugin_api::protocol::StateWrite> = paths
                    .iter()
                    .flat_map(|path| {
                        [
                            self.store.image_delete(path),
                            state::hash_entry_delete(path),
                        ]
                    })
                    .collect();
                self.ctx.state().write_all(&writes)?;
            }
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
                images: p.len,
                first_ms: p.first_ms,
                last_ms: p.last_ms,
                state,
            })
            .collect();
        let files = plan.image_count();
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
        self.report_or_send(&found.sequence, &found.plan, outcome)
            .await
    }

    fn forget_part(&self, plan: &Plan, index: usize) -> Result<()> {
        self.store.delete_part(index)?;
        if index < plan.parts.len() {
            self.store
                .forget_images(&self.planned(plan, index)?.images)?;
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
            return self
                .report_or_send(&self.request.sequence.id, &plan, outcome)
                .await;
        }
        Ok(outcome)
    }

    /// The plan to follow, once the sequence is checked ([`checked_plan`]): the stored one once
    /// publishing has begun (published parts cannot change), else the current one (a changed sequence
    /// starts over).
    fn resolve_plan(&self) -> Result<Plan> {
        let current = checked_plan(&self.request.sequence, &self.images)?;
        let stored = self.store.plan()?;
        if let Some(stored) = stored {
            let started = self
                .store
                .stored_parts()?
                .iter()
                .any(|(_, p)| p.publish != Publish::NotSent);
            if started {
                if stored.digest != current.digest {
                    let load = |i| self.planned(&stored, i);
                    if let Some(missing) = self.images.first_missing(&stored, load)? {
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
        self.store
            .put_plan(&current, |i| self.images.planned(&current, i))?;
        Ok(current)
    }

    async fn upload(&self) -> Result<RunOutcome> {
        if self.request.dry_run {
            // Local only: no state is read or written, no service contacted.
            step(self.ctx, "validate", "checking the sequence");
            let plan = checked_plan(&self.request.sequence, &self.images)?;
            return dry_run::run(self.ctx, self.request, &self.images, &plan).await;
        }
        // A folder new to this state may hold photos it published as another sequence (moved,
        // renamed, copied): recognised by content, nothing is sent.
        let mut first_key = None;
        if self.store.plan()?.is_none() && !self.options.republish {
            let sequence = &self.request.sequence;
            match crate::moved::find(self.ctx, sequence, &self.images, self.options.jobs).await? {
                crate::moved::Lookup::Found(found) => return self.already_published(found).await,
                crate::moved::Lookup::New { first_key: key } => first_key = key,
            }
        }
        // A sequence whose every part has its key is done, whatever happened to it on disk since.
        if let Some(stored) = self.store.plan()? {
            let parts = self.parts(&stored)?;
            if !parts.is_empty() && parts.iter().all(|p| p.sequence_key.is_some()) {
                let sequence = &self.request.sequence;
                let repathed = crate::moved::repath(
                    self.ctx,
                    sequence,
                    &self.images,
                    self.options.jobs,
                    &stored,
                )
                .await?;
                let mut outcome = self.record_outcome(&stored, &parts)?;
                if let Some(said) = crate::changes::describe_repathed(&repathed, &parts) {
                    outcome.message = Some(said);
                    // The host then leaves the integrations that published it alone.
                    outcome.same_as = Some(sequence.id.clone());
                }
                return self.report_or_send(&sequence.id, &stored, outcome).await;
            }
        }
        // Published by MTPDU before it learnt the key: looked up, nothing sent.
        if self.prior_due()? {
            return self.prior_upload().await;
        }
        step(self.ctx, "validate", "checking the sequence");
        let plan = self.resolve_plan()?;
        let token = token::usable(&self.api, self.ctx).await?;
        let mut parts = self.parts(&plan)?;
        if self.options.republish {
            self.forget_overdue(&plan, &mut parts, &token).await?;
        }
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
        let uploader = self.uploader(&token, held)?;
        let mut progress = Progress::default();
        if !to_send.is_empty() {
            progress = match self.upload_images(&uploader, &plan, &to_send).await {
                Ok(progress) => progress,
                Err(err @ MlyError::Rejected { .. }) => return self.failed(&plan, &err),
                Err(err) => return Err(err),
            };
            for &index in &to_send {
                match self
                    .upload_manifest(&uploader, &plan, index, &mut parts[index])
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
}
