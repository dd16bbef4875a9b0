//! One `run`: send the photos Google does not hold yet, connect them, look at their publication; or,
//! in a re-check, only look. A run that meets the day's quota stops cleanly and says when it can go on.

use plugin_api::prelude::*;

use crate::api::Api;
use crate::config::Config;
use crate::eligibility::{self, name_of};
use crate::outcome;
use crate::publication::{self, PUBLISHED, REJECTED};
use crate::publish::{self, Sent};
use crate::quota::Halt;
use crate::session::Session;
use crate::state::{PhotoRecord, SequenceStore};
use crate::tokens;

type Photos = Vec<(String, PhotoRecord)>;

fn records(
    store: &SequenceStore<'_>,
    sequence: &SequenceDescriptor,
) -> Result<Photos, PluginError> {
    let mut seen = std::collections::HashSet::new();
    let mut photos = Vec::with_capacity(sequence.images.len());
    for image in &sequence.images {
        let name = name_of(image).to_string();
        if !seen.insert(name.clone()) {
            return Err(PluginError::invalid_input(format!(
                "two photos of the sequence are named {name}; mtp tells a sequence's Street View \
                 photos apart by name: rename one"
            )));
        }
        let record = store.photo(&name)?.unwrap_or_default();
        photos.push((name, record));
    }
    Ok(photos)
}

/// Nothing is left to ask Google: every photo settled and the held ones connected.
fn finished(store: &SequenceStore<'_>, photos: &Photos) -> Result<bool, PluginError> {
    let settled = photos.iter().all(|(_, r)| {
        r.refused.is_some()
            || r.deleted
            || matches!(r.publish_status.as_deref(), Some(PUBLISHED | REJECTED))
    });
    if !settled {
        return Ok(false);
    }
    let held: Vec<String> = photos
        .iter()
        .filter(|(_, r)| !r.deleted)
        .filter_map(|(_, r)| r.photo_id.clone())
        .collect();
    Ok(held.len() < 2 || store.connected()? == held)
}

/// Runs the integration on one sequence.
pub async fn run(ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
    let config = Config::from_context(ctx)?;
    let (sequence, left_out) =
        eligibility::accepted_part(&request.sequence).map_err(PluginError::invalid_input)?;
    let store = SequenceStore::new(ctx, &request.sequence.id);
    let mut photos = records(&store, &sequence)?;
    if finished(&store, &photos)? {
        return Ok(outcome::from_records(&photos));
    }
    if request.mode == RunMode::Recheck {
        return recheck(ctx, config, &store, photos).await;
    }
    if let Some(message) = left_out {
        ctx.progress(ProgressEvent::Note { message });
    }
    let api = Api::new(config)?;
    if request.dry_run {
        return dry_run(ctx, &api, &sequence, &photos);
    }
    let mut session = Session::start(&api, ctx).await?;
    let result = async {
        upload_all(ctx, &mut session, &store, &sequence, &mut photos).await?;
        let held: Photos = photos
            .iter()
            .filter(|(_, r)| r.photo_id.is_some() && !r.deleted)
            .cloned()
            .collect();
        publication::connect(ctx, &mut session, &store, &held).await?;
        publication::poll(ctx, &mut session, &store, &mut photos, true).await
    }
    .await;
    settle(&store, &sequence, result)
}

fn settle(
    store: &SequenceStore<'_>,
    sequence: &SequenceDescriptor,
    result: Result<(), Halt>,
) -> Result<RunOutcome, PluginError> {
    let photos = records(store, sequence)?;
    match result {
        Ok(()) => Ok(outcome::from_records(&photos)),
        Err(Halt::Quota { resume_at_ms, why }) => {
            Ok(outcome::quota_stop(&photos, resume_at_ms, &why))
        }
        Err(Halt::Error(err)) => Err(err),
    }
}

async fn upload_all(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    sequence: &SequenceDescriptor,
    photos: &mut Photos,
) -> Result<(), Halt> {
    let held = |p: &Photos| p.iter().filter(|(_, r)| r.photo_id.is_some()).count();
    let bytes_total: u64 = sequence.images.iter().map(|i| i.size_bytes).sum();
    let (files_done, bytes_done) = sequence
        .images
        .iter()
        .zip(photos.iter())
        .filter(|(_, (_, r))| r.photo_id.is_some() || r.refused.is_some())
        .fold((0u64, 0u64), |(f, b), (i, _)| (f + 1, b + i.size_bytes));
    ctx.progress(ProgressEvent::Totals {
        files_total: sequence.images.len() as u64,
        bytes_total,
        files_done,
        bytes_done,
    });
    let todo = sequence.images.len() - files_done as usize;
    if todo > 0 {
        ctx.progress(ProgressEvent::Step {
            step: "upload".into(),
            message: Some(format!(
                "{todo} photo(s) to Google Street View, one at a time ({} of today's {} requests used)",
                session.api.quota.used(ctx)?,
                session.api.quota.limit()
            )),
        });
    }
    for (index, image) in sequence.images.iter().enumerate() {
        ctx.check_cancelled()?;
        let (name, record) = &photos[index];
        if record.photo_id.is_some() || record.refused.is_some() {
            continue;
        }
        let name = name.clone();
        let taken: Vec<String> = photos
            .iter()
            .filter_map(|(_, r)| r.photo_id.clone())
            .collect();
        let sent = publish::send(ctx, session, store, &name, image, &taken).await?;
        photos[index].1 = store.photo(&name)?.unwrap_or_default();
        if sent != Sent::Unknown {
            ctx.progress(ProgressEvent::Advance {
                bytes: image.size_bytes,
                files: 1,
            });
        }
    }
    ctx.debug(format!(
        "{} of {} photos held by Google",
        held(photos),
        photos.len()
    ));
    Ok(())
}

fn dry_run(
    ctx: &Context,
    api: &Api,
    sequence: &SequenceDescriptor,
    photos: &Photos,
) -> Result<RunOutcome, PluginError> {
    if tokens::load(ctx)?.is_none() {
        return Err(PluginError::auth(
            "not authorised with Google Street View: run `mtp auth streetview`",
        ));
    }
    let todo = photos
        .iter()
        .filter(|(_, r)| r.photo_id.is_none() && r.refused.is_none())
        .count();
    let used = api.quota.used(ctx)?;
    let needed = todo as u64 * 3 + (todo as u64).div_ceil(20) * 2;
    Ok(RunOutcome::new(
        SequenceState::DryRun,
        format!(
            "would upload {todo} of {} 360° photos to Google Street View one by one (about {needed} \
             requests; {used} of today's {} used), then connect them",
            sequence.images.len(),
            api.quota.limit()
        ),
    ))
}

async fn recheck(
    ctx: &Context,
    config: Config,
    store: &SequenceStore<'_>,
    mut photos: Photos,
) -> Result<RunOutcome, PluginError> {
    if photos.iter().all(|(_, r)| r.photo_id.is_none()) {
        return Ok(outcome::from_records(&photos));
    }
    let api = Api::new(config)?;
    let mut session = Session::start(&api, ctx).await?;
    match publication::poll(ctx, &mut session, store, &mut photos, false).await {
        Ok(()) => Ok(outcome::from_records(&photos)),
        // A re-check that meets the quota keeps what is known.
        Err(Halt::Quota { .. }) => Ok(outcome::from_records(&photos)),
        Err(Halt::Error(err)) => Err(err),
    }
}
