//! After the photos are on Google: connecting consecutive ones into a walkable sequence
//! (`photos.batchUpdate` with `updateMask=connections`, at most 20 photos a request), and looking,
//! politely, at whether Google published them (`photos.batchGet`, `mapsPublishStatus`: `PUBLISHED`,
//! `REJECTED_UNKNOWN`, or `UNSPECIFIED_MAPS_PUBLISH_STATUS` while undecided).

use plugin_api::prelude::*;
use plugin_api::serde_json::{json, Value};

use crate::api::BATCH;
use crate::quota::Halt;
use crate::rpc_error::RpcError;
use crate::session::{Call, Session};
use crate::state::{PhotoRecord, SequenceStore};

/// `PUBLISHED`.
pub const PUBLISHED: &str = "PUBLISHED";
/// `REJECTED_UNKNOWN`.
pub const REJECTED: &str = "REJECTED_UNKNOWN";

/// Connects each photo to the one before and after it. `photos` are `(file name, record)` in sequence
/// order, those Google holds only. Done once per set of photo ids.
pub async fn connect(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    photos: &[(String, PhotoRecord)],
) -> Result<(), Halt> {
    let ids: Vec<String> = photos
        .iter()
        .filter_map(|(_, r)| r.photo_id.clone())
        .collect();
    if ids.len() < 2 || store.connected()? == ids {
        return Ok(());
    }
    ctx.progress(ProgressEvent::Step {
        step: "connect".into(),
        message: Some(format!(
            "connecting {} photos into a walkable sequence",
            ids.len()
        )),
    });
    let requests: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let neighbours: Vec<Value> = [i.checked_sub(1), Some(i + 1)]
                .into_iter()
                .flatten()
                .filter_map(|j| ids.get(j))
                .map(|target| json!({"target": {"id": target}}))
                .collect();
            json!({"photo": {"photoId": {"id": id}, "connections": neighbours},
                   "updateMask": "connections"})
        })
        .collect();
    let mut failed = Vec::new();
    for chunk in requests.chunks(BATCH) {
        let body = json!({ "updatePhotoRequests": chunk });
        let reply = session.call(Call::BatchUpdate(&body)).await?;
        if let Some(error) = reply.error() {
            return Err(error.to_plugin_error("connecting the photos").into());
        }
        let json = reply.json();
        for (request, result) in chunk.iter().zip(
            json.get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ) {
            if let Some(error) = result.get("status").and_then(RpcError::from_status) {
                let id = request
                    .pointer("/photo/photoId/id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                failed.push(format!("{id}: {}", error.short()));
            }
        }
    }
    if failed.is_empty() {
        store.put_connected(&ids)?;
    } else {
        // Left unrecorded: the next run connects again (it only sets fields).
        ctx.warn(format!(
            "Google did not connect {} photo(s): {}",
            failed.len(),
            failed.join("; ")
        ));
    }
    Ok(())
}

/// Looks at the photos' publication unless it was looked at less than the poll interval ago (`force`:
/// look anyway, right after uploading). Updates the records in place.
pub async fn poll(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    photos: &mut [(String, PhotoRecord)],
    force: bool,
) -> Result<(), Halt> {
    let now = chrono::Utc::now().timestamp_millis();
    let recent = store
        .polled_ms()?
        .is_some_and(|at| now - at < session.api.config.poll.as_millis() as i64);
    if recent && !force {
        ctx.debug("publication was looked at recently; not asking Google again yet");
        return Ok(());
    }
    let pending: Vec<usize> = photos
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| {
            r.photo_id.is_some() && !r.deleted && r.publish_status.as_deref() != Some(PUBLISHED)
        })
        .map(|(i, _)| i)
        .collect();
    for chunk in pending.chunks(BATCH) {
        let ids: Vec<String> = chunk
            .iter()
            .filter_map(|&i| photos[i].1.photo_id.clone())
            .collect();
        let reply = session.call(Call::BatchGet(&ids)).await?;
        if let Some(error) = reply.error() {
            return Err(error
                .to_plugin_error("looking at the photos' publication")
                .into());
        }
        let results = reply
            .json()
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (&i, result) in chunk.iter().zip(results) {
            let (name, record) = &mut photos[i];
            match result.get("status").and_then(RpcError::from_status) {
                Some(error) if error.status == "NOT_FOUND" => {
                    ctx.warn(format!(
                        "{name}: photo {} was deleted on Google",
                        record.photo_id.as_deref().unwrap_or("")
                    ));
                    record.deleted = true;
                }
                // UNAVAILABLE: still being indexed (reference `photo.get`); anything else: look later.
                Some(_) => continue,
                None => {
                    let photo = result.get("photo").cloned().unwrap_or(Value::Null);
                    let text = |k: &str| photo.get(k).and_then(Value::as_str).map(str::to_string);
                    if let Some(status) = text("mapsPublishStatus") {
                        record.publish_status = Some(status);
                    }
                    if let Some(link) = text("shareLink") {
                        record.share_link = Some(link);
                    }
                }
            }
            store.put_photo(name, record)?;
        }
    }
    store.put_polled_ms(now)?;
    Ok(())
}
