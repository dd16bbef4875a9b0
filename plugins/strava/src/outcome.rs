//! The records `mtp status` shows.

use std::collections::BTreeMap;

use plugin_api::prelude::*;

use crate::config::Config;
use crate::state::UploadRecord;

/// Nothing has been sent yet.
pub fn nothing_sent() -> RunOutcome {
    let mut outcome = RunOutcome::new(SequenceState::Pending, "nothing sent to Strava yet");
    outcome.next_action = Some("run mtp upload".into());
    outcome
}

/// Strava is still processing the upload.
pub fn processing(upload_id: u64, status: &str) -> RunOutcome {
    let status = if status.is_empty() {
        "no status yet"
    } else {
        status
    };
    let mut outcome = RunOutcome::new(
        SequenceState::Unpublished,
        format!("Strava is processing upload {upload_id}: {status}"),
    );
    outcome
        .keys
        .insert("upload_id".into(), upload_id.to_string());
    outcome.next_action = Some("run mtp status later to see the activity".into());
    outcome
}

/// Strava could not make an activity of the track.
pub fn failed(upload_id: u64, error: &str) -> RunOutcome {
    let mut outcome = RunOutcome::new(
        SequenceState::Failed,
        format!("Strava could not process upload {upload_id}: {error}"),
    );
    outcome.next_action =
        Some("check the sequence's positions and times, then run mtp upload again".into());
    outcome
}

/// The activity was deleted on Strava.
pub fn deleted(activity_id: Option<u64>) -> RunOutcome {
    let which = activity_id
        .map(|id| format!("activity {id}"))
        .unwrap_or_else(|| "the activity".into());
    let mut outcome = RunOutcome::new(
        SequenceState::Failed,
        format!("{which} was deleted on Strava"),
    );
    outcome.next_action = Some("run mtp upload to upload the track again".into());
    outcome
}

/// The activity exists.
pub fn published(config: &Config, record: &UploadRecord) -> RunOutcome {
    let mut keys = BTreeMap::new();
    keys.insert("external_id".to_string(), record.external_id.clone());
    if let Some(id) = record.upload_id {
        keys.insert("upload_id".into(), id.to_string());
    }
    let Some(activity) = record.activity_id else {
        return nothing_sent();
    };
    let link = config.activity_link(activity);
    keys.insert("activity_id".into(), activity.to_string());
    keys.insert("activity_url".into(), link.clone());
    let adopted = if record.adopted {
        " (Strava already had it)"
    } else {
        ""
    };
    let sport = record
        .sport
        .as_deref()
        .map(|s| format!("; {s}"))
        .unwrap_or_default();
    let mut outcome = RunOutcome::new(
        SequenceState::Published,
        format!("published on Strava as activity {activity}{adopted}: {link}{sport}"),
    );
    outcome.keys = keys;
    outcome
        .links
        .push(Link::new(format!("activity {activity} on Strava"), link));
    outcome
}
