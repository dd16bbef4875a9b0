//! One photo onto Street View, exactly once: `photo:startUpload` → the bytes to the upload URL →
//! `photo.create` with the upload reference, the position and the capture time (the per-photo path MTP
//! Desktop Uploader's `google.ts` takes).
//!
//! Each step is recorded as it completes ([`crate::state::PhotoRecord`]). The create is recorded as sent
//! before it leaves; when its answer is lost (a crash, a cut connection), the next run does not create
//! again blindly: it lists the user's photos around the position (`photos.list` with a latitude/longitude
//! box) and adopts the one with the same capture time and position. The reference warns that photos
//! still being indexed are not listed, so a photo not found is left alone (and said so) until
//! `GOOGLE_STREETVIEW_INDEX_WAIT_SECS` have passed; only then is it created again.

use plugin_api::prelude::*;
use plugin_api::serde_json::{json, Value};

use crate::quota::Halt;
use crate::session::{Call, Session};
use crate::state::{PhotoRecord, SequenceStore};

/// Half the side of the box listed around a photo, in degrees (about 11 m of latitude).
const LOOKUP_BOX_DEG: f64 = 0.0001;
/// Positions within this many degrees are the same (about 1 m).
const SAME_POSITION_DEG: f64 = 0.00001;
/// Pages of 100 looked at before giving up on a lookup.
const LOOKUP_PAGES: usize = 5;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 UTC, whole seconds (protobuf `Timestamp` in JSON).
pub fn capture_time(image: &ImageInfo) -> String {
    chrono::DateTime::from_timestamp_millis(image.captured_at_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `Photo` sent to `photo.create`. Heading and altitude are sent as MTP Desktop Uploader sends them,
/// although the reference says `CreatePhoto` takes heading, pitch and roll only from the photo's own
/// Photo Sphere XMP and ignores altitude.
pub fn new_photo(upload_url: &str, image: &ImageInfo) -> Value {
    let mut pose =
        json!({"latLngPair": {"latitude": image.latitude, "longitude": image.longitude}});
    if let Some(altitude) = image.altitude.filter(|a| a.is_finite()) {
        pose["altitude"] = json!(altitude);
    }
    if let Some(heading) = image.heading.filter(|h| h.is_finite()) {
        pose["heading"] = json!(heading);
    }
    json!({
        "uploadReference": {"uploadUrl": upload_url},
        "pose": pose,
        "captureTime": capture_time(image),
    })
}

/// Where one photo stands after [`send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Google holds it (now or from before).
    Held,
    /// Google refused it; not sent again.
    Refused,
    /// Its creation got no answer and Google does not list it yet: left for a later run.
    Unknown,
}

fn read_photo(record: &mut PhotoRecord, photo: &Value) -> bool {
    let Some(id) = photo
        .pointer("/photoId/id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    else {
        return false;
    };
    record.photo_id = Some(id.to_string());
    let text = |k: &str| photo.get(k).and_then(Value::as_str).map(str::to_string);
    record.share_link = text("shareLink").or(record.share_link.take());
    record.publish_status = text("mapsPublishStatus").or(record.publish_status.take());
    true
}

/// Sends `image` unless Google already holds it. `taken` are the photo ids of the sequence already
/// recorded, which a lookup must not adopt twice.
pub async fn send(
    ctx: &Context,
    session: &mut Session<'_>,
    store: &SequenceStore<'_>,
    name: &str,
    image: &ImageInfo,
    taken: &[String],
) -> Result<Sent, Halt> {
    let mut record = store.photo(name)?.unwrap_or_default();
    if record.photo_id.is_some() {
        return Ok(Sent::Held);
    }
    if record.refused.is_some() {
        return Ok(Sent::Refused);
    }
    if let Some(sent_ms) = record.create_sent_ms {
        session.api.quota.reserve(ctx, 1)?;
        if let Some(photo) = look_up(session, image, taken).await? {
            read_photo(&mut record, &photo);
            record.adopted = true;
            store.put_photo(name, &record)?;
            ctx.info(format!(
                "{name}: its creation got no answer last time, but Google has it: adopted photo {}",
                record.photo_id.as_deref().unwrap_or("")
            ));
            return Ok(Sent::Held);
        }
        let waited =
            std::time::Duration::from_millis(now_ms().saturating_sub(sent_ms).max(0) as u64);
        if waited < session.api.config.index_wait {
            ctx.warn(format!(
                "{name}: its creation got no answer and Google does not list it yet (new photos are \
                 listed once indexed); not creating it again before {}",
                plugin_api::time::format_utc(
                    sent_ms + session.api.config.index_wait.as_millis() as i64
                )
            ));
            return Ok(Sent::Unknown);
        }
        ctx.warn(format!(
            "{name}: still not listed {} after its unanswered creation: creating it again",
            plugin_api::time::human_span(waited)
        ));
        record = PhotoRecord::default();
        store.put_photo(name, &record)?;
    }
    // A stale upload reference (NOT_FOUND) is replaced once.
    for attempt in 0..2 {
        let steps = 1 + u64::from(!record.bytes_sent) + u64::from(record.upload_url.is_none());
        session.api.quota.reserve(ctx, steps)?;
        let upload_url = match record.upload_url.clone() {
            Some(url) => url,
            None => {
                let reply = session.call(Call::StartUpload).await?;
                if let Some(error) = reply.error() {
                    return Err(error
                        .to_plugin_error("asking Google for an upload URL")
                        .into());
                }
                let url = reply
                    .json()
                    .get("uploadUrl")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        PluginError::other("Google's startUpload answer has no uploadUrl")
                    })?;
                record.upload_url = Some(url.clone());
                record.bytes_sent = false;
                store.put_photo(name, &record)?;
                url
            }
        };
        if !record.bytes_sent {
            let bytes = plugin_api::tokio::fs::read(&image.path)
                .await
                .map_err(|err| {
                    PluginError::invalid_input(format!("{}: cannot read it: {err}", image.path))
                })?;
            let reply = session.call(Call::UploadBytes(&upload_url, &bytes)).await?;
            if let Some(error) = reply.error() {
                if error.status == "NOT_FOUND" && attempt == 0 {
                    record = PhotoRecord::default();
                    store.put_photo(name, &record)?;
                    continue;
                }
                return Err(error.to_plugin_error(&format!("uploading {name}")).into());
            }
            record.bytes_sent = true;
            store.put_photo(name, &record)?;
        }
        record.create_sent_ms = Some(now_ms());
        store.put_photo(name, &record)?;
        let reply = match session
            .call(Call::Create(&new_photo(&upload_url, image)))
            .await
        {
            Ok(reply) => reply,
            // Stopped before sending (quota), or answered with an error (RESOURCE_EXHAUSTED, a refused
            // login): nothing was created, so the next run need not look for it.
            Err(halt) => {
                let answered = match &halt {
                    Halt::Quota { .. } => true,
                    Halt::Error(err) => err.kind == ErrorKind::Auth,
                };
                if answered {
                    record.create_sent_ms = None;
                    store.put_photo(name, &record)?;
                }
                return Err(halt);
            }
        };
        let Some(error) = reply.error() else {
            if !read_photo(&mut record, &reply.json()) {
                return Err(PluginError::other(format!(
                    "{name}: Google's answer to the create names no photo id"
                ))
                .into());
            }
            store.put_photo(name, &record)?;
            return Ok(Sent::Held);
        };
        // An error answer: nothing was created.
        match error.status.as_str() {
            "NOT_FOUND" if attempt == 0 => {
                ctx.info(format!(
                    "{name}: Google no longer knows its upload reference ({}); uploading it again",
                    error.short()
                ));
                record = PhotoRecord::default();
                store.put_photo(name, &record)?;
            }
            "INVALID_ARGUMENT" => {
                let why = error.short();
                ctx.warn(format!(
                    "{name}: refused by Google ({why}); Street View takes 360° equirectangular JPEGs \
                     with Photo Sphere XMP only: not sent again"
                ));
                record = PhotoRecord {
                    refused: Some(why),
                    ..PhotoRecord::default()
                };
                store.put_photo(name, &record)?;
                return Ok(Sent::Refused);
            }
            _ => {
                record.create_sent_ms = None;
                store.put_photo(name, &record)?;
                return Err(error.to_plugin_error(&format!("creating {name}")).into());
            }
        }
    }
    Err(PluginError::transient(format!(
        "{name}: Google refused two fresh upload references in a row; run mtp upload again later"
    ))
    .into())
}

fn same_second(a: &str, b: &str) -> bool {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.timestamp())
    };
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

/// The user's photo with `image`'s capture time and position, not among `taken`.
async fn look_up(
    session: &mut Session<'_>,
    image: &ImageInfo,
    taken: &[String],
) -> Result<Option<Value>, Halt> {
    let (lat, lon) = (image.latitude, image.longitude);
    let filter = format!(
        "min_latitude={:.7} AND max_latitude={:.7} AND min_longitude={:.7} AND max_longitude={:.7}",
        lat - LOOKUP_BOX_DEG,
        lat + LOOKUP_BOX_DEG,
        lon - LOOKUP_BOX_DEG,
        lon + LOOKUP_BOX_DEG
    );
    let wanted = capture_time(image);
    let mut page: Option<String> = None;
    for _ in 0..LOOKUP_PAGES {
        let reply = session.call(Call::List(&filter, page.as_deref())).await?;
        if let Some(error) = reply.error() {
            return Err(error
                .to_plugin_error("listing your Street View photos")
                .into());
        }
        let json = reply.json();
        let photos = json
            .get("photos")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let found = photos.into_iter().find(|p| {
            let id = p
                .pointer("/photoId/id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let at = |k: &str| p.pointer(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            !id.is_empty()
                && !taken.iter().any(|t| t == id)
                && p.get("captureTime")
                    .and_then(Value::as_str)
                    .is_some_and(|t| same_second(t, &wanted))
                && (at("/pose/latLngPair/latitude") - lat).abs() <= SAME_POSITION_DEG
                && (at("/pose/latLngPair/longitude") - lon).abs() <= SAME_POSITION_DEG
        });
        if found.is_some() {
            return Ok(found);
        }
        page = json
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if page.is_none() {
            break;
        }
    }
    Ok(None)
}
