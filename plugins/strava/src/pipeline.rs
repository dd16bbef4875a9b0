//! One `run`: send the track once, wait politely for Strava to make it an activity, set its sport type;
//! or, in a re-check, only look at the upload.
//!
//! Exactly once: the record is written (`sent`) before the track leaves and gets the upload id as soon
//! as Strava answers, before any polling. If the answer is lost (a crash, a cut connection), the next
//! run sends the same track again with the same `external_id`; Strava answers it as a duplicate naming
//! the activity the first one made, which is adopted: never a second activity.

use plugin_api::prelude::*;
use plugin_api::sdk::retry::sleep_unless_cancelled;

use crate::api::{Api, NewUpload};
use crate::config::Config;
use crate::outcome;
use crate::session::{Call, Session};
use crate::sport::{self, Sport};
use crate::state::{self, SequenceStore, UploadRecord};
use crate::tokens;
use crate::track;
use crate::upload_status::{self, Upload};

/// Runs the integration on one sequence.
pub async fn run(ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
    let config = Config::from_context(ctx)?;
    let sequence = &request.sequence;
    if let Some(reason) = track::refusal(sequence) {
        return Err(PluginError::invalid_input(format!(
            "the track cannot become a Strava activity: {reason}"
        )));
    }
    let store = SequenceStore::new(ctx, &sequence.id);
    let external_id = track::external_id(sequence);
    let record = store.get()?;
    // Done: the activity exists and is as it should be; a re-run asks Strava nothing.
    if let Some(record) = record.as_ref().filter(|r| r.done) {
        return Ok(outcome::published(&config, record));
    }
    if request.mode == RunMode::Recheck {
        return recheck(ctx, &config, &store, record, sequence).await;
    }
    if request.dry_run {
        return dry_run(ctx, sequence, &external_id);
    }
    // A sequence that changed before its activity existed is a new track.
    let record = record
        .filter(|r| r.external_id == external_id)
        .unwrap_or(UploadRecord {
            external_id,
            ..UploadRecord::default()
        });
    let api = Api::new(config)?;
    let mut session = Session::start(&api, ctx).await?;
    upload(ctx, &mut session, &store, record, sequence).await
}

fn dry_run(
    ctx: &Context,
    sequence: &SequenceDescriptor,
    external_id: &str,
) -> Result<RunOutcome, PluginError> {
    if tokens::load(ctx)?.is_none() {
        return Err(PluginError::auth(
            "not authorised with Strava: run `mtp auth strava`",
        ));
    }
    let gpx = track::gpx(sequence)?;
    let who = state::account(ctx)?
        .map(|a| format!(" as {}", a.name))
        .unwrap_or_default();
    let sport = match sport::for_transport(sequence.transport.as_ref()) {
        Sport::Mapped(s) => format!("sport type {s}"),
        Sport::Unmapped(why) => why.replace("was kept", "would be kept"),
    };
    Ok(RunOutcome::new(
        SequenceState::DryRun,
        format!(
            "would upload a track of {} points ({:.2} km, {} bytes of GPX) to Strava{who} as \
             \"{}\" with external_id {external_id}; {sport}",
            sequence.images.len(),
            sequence.length_m() / 1000.0,
            gpx.len(),
            track::activity_name(sequence)
        ),
    ))
}

async fn upload(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    mut record: UploadRecord,
    sequence: &SequenceDescriptor,
) -> Result<RunOutcome, PluginError> {
    if record.activity_id.is_none() {
        if record.upload_id.is_none() {
            if record.sent {
                ctx.info(
                    "the previous upload to Strava got no answer; sending the track again with the \
                     same external_id, so Strava names the activity if the first one arrived",
                );
            }
            let gpx = track::gpx(sequence)?;
            record.sent = true;
            store.put(&record)?;
            ctx.progress(ProgressEvent::Step {
                step: "upload".into(),
                message: Some(format!(
                    "uploading the track ({} points) to Strava",
                    sequence.images.len()
                )),
            });
            let name = track::activity_name(sequence);
            let new = NewUpload {
                gpx: &gpx,
                name: &name,
                description: &sequence.description,
                external_id: &record.external_id,
            };
            let reply = session.call(Call::Upload(&new)).await?;
            let json = reply.json();
            let id = upload_status::upload_id(&json).filter(|_| reply.is_success());
            let Some(id) = id else {
                // Nothing was created: the next run sends it afresh.
                store.clear()?;
                return Err(PluginError::new(
                    ErrorKind::Rejected,
                    format!("Strava refused the track: {}", reply.fault()),
                ));
            };
            record.upload_id = Some(id);
            store.put(&record)?;
            let first = upload_status::read(&json);
            if !matches!(first, Upload::Processing(_)) {
                if let Some(done) = settle(ctx, store, &mut record, first)? {
                    return Ok(done);
                }
            }
        }
        if record.activity_id.is_none() {
            let deadline = tokio_now() + session.api.config.poll_timeout;
            if let Some(done) = poll(ctx, session, store, &mut record, Some(deadline)).await? {
                return Ok(done);
            }
        }
    }
    finish(ctx, session, store, record, sequence).await
}

fn tokio_now() -> plugin_api::tokio::time::Instant {
    plugin_api::tokio::time::Instant::now()
}

/// Looks at the upload until it is processed, or until `deadline` (once when `None`). `Some` is the
/// run's outcome when it ends here; `None` means the record now names the activity.
async fn poll(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    record: &mut UploadRecord,
    deadline: Option<plugin_api::tokio::time::Instant>,
) -> Result<Option<RunOutcome>, PluginError> {
    let Some(id) = record.upload_id else {
        return Ok(Some(outcome::nothing_sent()));
    };
    ctx.progress(ProgressEvent::Step {
        step: "processing".into(),
        message: Some(format!("waiting for Strava to process upload {id}")),
    });
    loop {
        let reply = session.call(Call::UploadStatus(id)).await?;
        let status = match reply.status {
            200..=299 => upload_status::read(&reply.json()),
            404 => Upload::Failed(format!(
                "upload {id} is unknown to Strava ({})",
                reply.fault()
            )),
            _ => {
                return Err(PluginError::transient(format!(
                    "looking at Strava upload {id}: {}",
                    reply.fault()
                )))
            }
        };
        if let Some(done) = settle(ctx, store, record, status.clone())? {
            let waiting = matches!(status, Upload::Processing(_));
            if !waiting || deadline.is_none_or(|d| tokio_now() >= d) {
                return Ok(Some(done));
            }
        } else {
            return Ok(None);
        }
        if !sleep_unless_cancelled(ctx, session.api.config.poll).await {
            ctx.check_cancelled()?;
        }
    }
}

/// Applies one look at the upload to the record: `None` when it names the activity now.
fn settle(
    ctx: &Context,
    store: &SequenceStore<'_>,
    record: &mut UploadRecord,
    status: Upload,
) -> Result<Option<RunOutcome>, PluginError> {
    let id = record.upload_id.unwrap_or_default();
    match status {
        Upload::Processing(text) => Ok(Some(outcome::processing(id, &text))),
        Upload::Ready(activity) => {
            record.activity_id = Some(activity);
            store.put(record)?;
            Ok(None)
        }
        Upload::Duplicate(activity) => {
            ctx.info(format!(
                "Strava already has this track as activity {activity}: adopting it instead of \
                 creating another"
            ));
            record.activity_id = Some(activity);
            record.adopted = true;
            store.put(record)?;
            Ok(None)
        }
        Upload::Failed(text) => {
            store.clear()?;
            Ok(Some(outcome::failed(id, &text)))
        }
        Upload::Deleted => {
            store.clear()?;
            Ok(Some(outcome::deleted(None)))
        }
    }
}

/// Sets the sport type of the activity (unless it is someone else's recording) and reports it.
async fn finish(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    mut record: UploadRecord,
    sequence: &SequenceDescriptor,
) -> Result<RunOutcome, PluginError> {
    let Some(activity) = record.activity_id else {
        return Ok(outcome::nothing_sent());
    };
    let mut ours = true;
    if record.adopted {
        // A duplicate by start time may be the athlete's own recording of the same outing: only an
        // activity carrying our external_id is changed.
        let reply = session.call(Call::Activity(activity)).await?;
        if reply.status == 404 {
            store.clear()?;
            return Ok(outcome::deleted(Some(activity)));
        }
        let theirs = reply.json();
        let external = theirs
            .get("external_id")
            .and_then(plugin_api::serde_json::Value::as_str)
            .unwrap_or("");
        ours = external.starts_with(&record.external_id);
    }
    record.sport = Some(match sport::for_transport(sequence.transport.as_ref()) {
        _ if !ours => {
            "its sport type was left as it is: Strava already had this track from another \
                       recording"
                .to_string()
        }
        Sport::Mapped(sport) => {
            ctx.progress(ProgressEvent::Step {
                step: "publish".into(),
                message: Some(format!(
                    "setting activity {activity}'s sport type to {sport}"
                )),
            });
            let reply = session.call(Call::SetSportType(activity, sport)).await?;
            match reply.status {
                200..=299 => format!("sport type {sport}"),
                404 => {
                    store.clear()?;
                    return Ok(outcome::deleted(Some(activity)));
                }
                _ => format!(
                    "its sport type could not be set to {sport}: {}",
                    reply.fault()
                ),
            }
        }
        Sport::Unmapped(why) => why,
    });
    record.done = true;
    store.put(&record)?;
    Ok(outcome::published(&session.api.config, &record))
}

async fn recheck(
    ctx: &Context,
    config: &Config,
    store: &SequenceStore<'_>,
    record: Option<UploadRecord>,
    sequence: &SequenceDescriptor,
) -> Result<RunOutcome, PluginError> {
    let Some(mut record) = record.filter(|r| r.upload_id.is_some()) else {
        return Ok(outcome::nothing_sent());
    };
    let api = Api::new(config.clone())?;
    let mut session = Session::start(&api, ctx).await?;
    if record.activity_id.is_none() {
        if let Some(done) = poll(ctx, &mut session, store, &mut record, None).await? {
            return Ok(done);
        }
    }
    finish(ctx, &mut session, store, record, sequence).await
}
