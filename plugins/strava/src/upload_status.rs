//! What an upload's answer says (`POST /uploads` and `GET /uploads/{id}`: swagger `Upload`, `{id, id_str,
//! external_id, error, status, activity_id}`), read as stravalib's `ActivityUploader` reads it: an
//! `activity_id` means ready, an `error` failed, otherwise still processing, except the status "The
//! created activity has been deleted.".

use plugin_api::serde_json::Value;

/// Strava's status text of an upload whose activity was deleted (stravalib `ActivityUploader.raise_for_error`).
pub const DELETED_STATUS: &str = "The created activity has been deleted.";

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// Still processing; Strava's status text.
    Processing(String),
    /// Processed into this activity.
    Ready(u64),
    /// Strava already has this track: the activity it names.
    Duplicate(u64),
    /// Processing failed; Strava's text.
    Failed(String),
    /// The activity it made was deleted.
    Deleted,
}

fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The upload id of an answer (`id`, or `id_str`).
pub fn upload_id(json: &Value) -> Option<u64> {
    number(json.get("id")).or_else(|| number(json.get("id_str")))
}

/// The activity a duplicate error names. The sources do not settle the wording (assumption, from
/// answers quoted by Strava's users: `"<file> duplicate of activity 123"`, sometimes with a link to
/// `/activities/123`): any error mentioning "duplicate", and the number after "activity"/"activities/".
pub fn duplicate_of(error: &str) -> Option<u64> {
    let lower = error.to_ascii_lowercase();
    if !lower.contains("duplicate") {
        return None;
    }
    ["activities/", "activity "]
        .iter()
        .filter_map(|marker| {
            let at = lower.rfind(marker)? + marker.len();
            let digits: String = lower[at..]
                .chars()
                .skip_while(|c| *c == ' ')
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .next()
}

/// Reads an upload answer.
pub fn read(json: &Value) -> Upload {
    let text = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    if let Some(error) = text("error") {
        return match duplicate_of(&error) {
            Some(id) => Upload::Duplicate(id),
            None => Upload::Failed(error),
        };
    }
    if let Some(id) = number(json.get("activity_id")) {
        return Upload::Ready(id);
    }
    let status = text("status").unwrap_or_default();
    if status == DELETED_STATUS {
        return Upload::Deleted;
    }
    Upload::Processing(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    #[test]
    fn reads_every_state() {
        let processing = json!({"id": 5, "id_str": "5", "external_id": "x", "error": null,
            "status": "Your activity is still being processed.", "activity_id": null});
        assert_eq!(
            read(&processing),
            Upload::Processing("Your activity is still being processed.".into())
        );
        assert_eq!(upload_id(&processing), Some(5));
        assert_eq!(upload_id(&json!({"id_str": "6"})), Some(6));
        let ready =
            json!({"id": 5, "error": null, "status": "Your activity is ready.", "activity_id": 77});
        assert_eq!(read(&ready), Upload::Ready(77));
        let failed = json!({"id": 5, "error": "Error processing your activity", "status": "There was an error processing your activity.", "activity_id": null});
        assert_eq!(
            read(&failed),
            Upload::Failed("Error processing your activity".into())
        );
        let deleted =
            json!({"id": 5, "error": null, "status": DELETED_STATUS, "activity_id": null});
        assert_eq!(read(&deleted), Upload::Deleted);
        let duplicate = json!({"id": 6, "error": "mtp-1.gpx duplicate of activity 1234567890", "activity_id": null});
        assert_eq!(read(&duplicate), Upload::Duplicate(1_234_567_890));
    }

    #[test]
    fn duplicates_are_matched_loosely() {
        assert_eq!(duplicate_of("a.gpx duplicate of activity 42"), Some(42));
        assert_eq!(
            duplicate_of("a.gpx duplicate of <a href='/activities/43'>Morning Walk</a>"),
            Some(43)
        );
        assert_eq!(duplicate_of("Duplicate of Activity 44."), Some(44));
        assert_eq!(duplicate_of("duplicate upload"), None);
        assert_eq!(duplicate_of("error in activity 45"), None);
    }
}
