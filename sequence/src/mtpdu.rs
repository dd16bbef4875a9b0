//! MTP Desktop Uploader (MTPDU) formats: the `ImageDescription` JSON it writes into every final image and the
//! `<name>.json` sequence log in each sequence directory.
//!
//! Both are parsed leniently (a field of an unexpected type is ignored, numbers written as strings are
//! accepted) because they come from several MTPDU releases and may have been edited by hand.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::SequenceError;

/// The JSON object MTPDU writes into the EXIF `ImageDescription` of each final image. Field names are MTPDU's
/// (`MAP*` ones are shared with mapillary_tools); all are optional when reading.
///
/// ```
/// use mtp_sequence::mtpdu::MtpImageDescription;
/// let d = MtpImageDescription::parse(r#"{"MAPLatitude":28.71,"MAPLongitude":"-13.89",
///     "MAPCaptureTime":"2020_08_14_11_43_46_250","MTPSequenceTransport":"Water-Paddleboard"}"#).unwrap();
/// assert_eq!(d.longitude, Some(-13.89));
/// assert_eq!(d.capture_time_ms(), Some(1_597_405_426_250));
/// assert!(MtpImageDescription::parse("OLYMPUS DIGITAL CAMERA").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MtpImageDescription {
    /// `MTPUploaderSequenceUUID`: the sequence's UUID.
    #[serde(
        rename = "MTPUploaderSequenceUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_uuid: Option<String>,
    /// `MTPUploaderPhotoUUID`: this photo's UUID.
    #[serde(
        rename = "MTPUploaderPhotoUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub photo_uuid: Option<String>,
    /// `MAPAltitude`, metres.
    #[serde(
        rename = "MAPAltitude",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub altitude: Option<f64>,
    /// `MAPLatitude`, degrees.
    #[serde(
        rename = "MAPLatitude",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latitude: Option<f64>,
    /// `MAPLongitude`, degrees.
    #[serde(
        rename = "MAPLongitude",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub longitude: Option<f64>,
    /// `MAPCaptureTime`, UTC, `YYYY_MM_DD_HH_mm_ss_SSS`.
    #[serde(
        rename = "MAPCaptureTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub capture_time: Option<String>,
    /// `MTPSequenceName`.
    #[serde(
        rename = "MTPSequenceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_name: Option<String>,
    /// `MTPSequenceDescription`.
    #[serde(
        rename = "MTPSequenceDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_description: Option<String>,
    /// `MTPSequenceTransport`, `Parent-Child` (`Air-Paraglide`).
    #[serde(
        rename = "MTPSequenceTransport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_transport: Option<String>,
    /// `MTPSequenceTags`.
    #[serde(
        rename = "MTPSequenceTags",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_tags: Option<Vec<String>>,
    /// `MTPImageCopy`: `final_raw` or `final_nadir`.
    #[serde(
        rename = "MTPImageCopy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_copy: Option<String>,
    /// `MTPImageProjection`: `flat` or `equirectangular`.
    #[serde(
        rename = "MTPImageProjection",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_projection: Option<String>,
    /// `MAPCompassHeading.TrueHeading` (written by mapillary_tools, not by MTPDU), degrees.
    #[serde(skip)]
    pub compass_true_heading: Option<f64>,
}

impl MtpImageDescription {
    /// Parses an `ImageDescription` value; `None` if it is not a JSON object (cameras write free text there).
    pub fn parse(text: &str) -> Option<MtpImageDescription> {
        let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if !text.starts_with('{') {
            return None;
        }
        let Value::Object(m) = serde_json::from_str::<Value>(text).ok()? else {
            return None;
        };
        Some(MtpImageDescription {
            sequence_uuid: get_string(&m, "MTPUploaderSequenceUUID"),
            photo_uuid: get_string(&m, "MTPUploaderPhotoUUID"),
            altitude: get_f64(&m, "MAPAltitude"),
            latitude: get_f64(&m, "MAPLatitude"),
            longitude: get_f64(&m, "MAPLongitude"),
            capture_time: get_string(&m, "MAPCaptureTime"),
            sequence_name: get_string(&m, "MTPSequenceName"),
            sequence_description: get_string(&m, "MTPSequenceDescription"),
            sequence_transport: get_string(&m, "MTPSequenceTransport"),
            sequence_tags: get_tags(&m, "MTPSequenceTags"),
            image_copy: get_string(&m, "MTPImageCopy"),
            image_projection: get_string(&m, "MTPImageProjection"),
            compass_true_heading: m
                .get("MAPCompassHeading")
                .and_then(Value::as_object)
                .and_then(|h| get_f64(h, "TrueHeading")),
        })
    }

    /// Only the fields that describe the whole sequence (name, description, transport, tags, UUID) and
    /// which copy of the photo this is, or `None` when it has none of them: what a scanned image keeps
    /// once its own position, time, heading, projection and photo UUID are read into its fields.
    pub fn sequence_fields(self) -> Option<MtpImageDescription> {
        let kept = MtpImageDescription {
            sequence_uuid: self.sequence_uuid,
            sequence_name: self.sequence_name,
            sequence_description: self.sequence_description,
            sequence_transport: self.sequence_transport,
            sequence_tags: self.sequence_tags,
            image_copy: self.image_copy,
            ..MtpImageDescription::default()
        };
        (kept != MtpImageDescription::default()).then_some(kept)
    }

    /// `MAPCaptureTime` as Unix milliseconds, if present and well-formed.
    pub fn capture_time_ms(&self) -> Option<i64> {
        parse_map_capture_time(self.capture_time.as_deref()?)
    }

    /// The JSON text, as MTPDU writes it (fields in MTPDU's order, absent ones omitted).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and string arrays cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn get_string(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_f64(m: &Map<String, Value>, key: &str) -> Option<f64> {
    let v = match m.get(key)? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

/// Tags as an array of strings, or (hand-edited files) one comma-separated string.
fn get_tags(m: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    match m.get(key)? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        Value::String(s) => Some(s.split(',').map(|t| t.trim().to_string()).collect()),
        _ => None,
    }
}

/// Parses `YYYY_MM_DD_HH_mm_ss[_fraction]` (UTC) into Unix milliseconds. The fraction may have any number of
/// digits (MTPDU writes milliseconds; Python's `%f` would write microseconds).
pub fn parse_map_capture_time(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.trim().split('_').collect();
    if parts.len() != 6 && parts.len() != 7 {
        return None;
    }
    let num = |i: usize| -> Option<u32> {
        let p = parts[i];
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let year = i32::try_from(num(0)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(1)?, num(2)?)?;
    let mut nanos = 0u32;
    if let Some(frac) = parts.get(6) {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().take(9).collect();
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
    }
    let dt = date.and_hms_nano_opt(num(3)?, num(4)?, num(5)?, nanos)?;
    Some(dt.and_utc().timestamp_millis())
}

/// Formats Unix milliseconds as `MAPCaptureTime` (`YYYY_MM_DD_HH_mm_ss_SSS`, UTC).
pub fn format_map_capture_time(ms: i64) -> Option<String> {
    let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    Some(format!(
        "{:04}_{:02}_{:02}_{:02}_{:02}_{:02}_{:03}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    ))
}

/// The `sequence` object of an MTPDU sequence log (`<name>/<name>.json`), with the fields we use. The log also
/// holds per-photo data (`photo`) that we do not need: images are read from the final image directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceLog {
    /// `sequence.id`: the sequence UUID.
    pub id: Option<String>,
    /// `sequence.uploader_sequence_name`.
    pub name: Option<String>,
    /// `sequence.uploader_sequence_description`.
    pub description: Option<String>,
    /// `sequence.uploader_transport_type`: the parent transport type.
    pub transport_type: Option<String>,
    /// `sequence.uploader_transport_method`: the child transport type.
    pub transport_method: Option<String>,
    /// `sequence.uploader_tags`.
    pub tags: Option<Vec<String>>,
    /// `sequence.earliest_time` as written (local `YYYY-MM-DDTHH:mm:ss`).
    pub earliest_time: Option<String>,
    /// `sequence.latest_time` as written.
    pub latest_time: Option<String>,
    /// `sequence.destination`: what MTPDU already did with the sequence, per destination.
    pub destination: BTreeMap<String, DestinationState>,
}

/// One entry of MTPDU's `sequence.destination` block (trek-view/mtp-desktop-uploader
/// `app/scripts/integrations/index.ts` writes it, `app/scripts/integrations/mtpw.ts` updates it):
/// `mapillary` holds the upload session key after publishing, then `true` once the sequence was found on
/// Mapillary and imported into MTPW, or `"Error: <reason>"`; `mtp` holds MTPW's `unique_id` after the create,
/// then `true`. The `*_user_token` entries MTPDU also writes there are tokens and are never read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum DestinationState {
    /// `true`: done.
    Done,
    /// A string that is not an error: the session key (Mapillary) or `unique_id` (MTPW) of work begun.
    Started(String),
    /// `"Error: <reason>"`.
    Failed(String),
}

/// What MTPDU's `destination` block means for one of our integrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorUpload {
    /// The sequence is already there: sending it again would make a second copy.
    pub published: bool,
    /// An identifier at the provider the integration can reuse (MTPW's `unique_id` of a sequence MTPDU
    /// created but did not import into).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What MTPDU did, for the user.
    pub what: String,
}

impl SequenceLog {
    /// The `destination` block read for our integrations (`mapillary`, `mtpw`); failed entries (`"Error: .."`)
    /// and destinations we have no integration for are left out, so those simply run.
    ///
    /// MTPDU writes Mapillary's upload session key only after publishing that session
    /// (`app/scripts/integrations/index.ts`), so a session key already means published.
    pub fn prior_uploads(&self) -> BTreeMap<String, PriorUpload> {
        let mut out = BTreeMap::new();
        for (id, state) in &self.destination {
            let prior = match (id.as_str(), state) {
                ("mapillary", DestinationState::Done) => PriorUpload {
                    published: true,
                    id: None,
                    what: "MTP Desktop Uploader published it to Mapillary (destination.mapillary = true)"
                        .into(),
                },
                ("mapillary", DestinationState::Started(session)) => PriorUpload {
                    published: true,
                    id: None,
                    what: format!(
                        "MTP Desktop Uploader published it to Mapillary as upload session {session} (destination.mapillary) before it learnt the sequence key"
                    ),
                },
                ("mtpw", DestinationState::Done) => PriorUpload {
                    published: true,
                    id: None,
                    what: "MTP Desktop Uploader synced it to Map the Paths Web (destination.mtp = true)"
                        .into(),
                },
                ("mtpw", DestinationState::Started(unique_id)) => PriorUpload {
                    published: false,
                    id: Some(unique_id.clone()),
                    what: format!(
                        "MTP Desktop Uploader created MTPW sequence {unique_id} (destination.mtp) and had not imported into it yet; mtp reuses it instead of creating another"
                    ),
                },
                _ => continue,
            };
            out.insert(id.clone(), prior);
        }
        out
    }
}

/// The destinations MTPDU wrote, under our integration ids (`mtp` is MTPW); tokens are skipped.
fn destination_of(seq: &Map<String, Value>) -> BTreeMap<String, DestinationState> {
    let Some(block) = seq.get("destination").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    block
        .iter()
        .filter(|(key, _)| !key.ends_with("_token"))
        .filter_map(|(key, value)| {
            let state = match value {
                Value::Bool(true) => DestinationState::Done,
                Value::String(s) if s.trim().is_empty() => return None,
                Value::String(s) if s.starts_with("Error") => DestinationState::Failed(s.clone()),
                Value::String(s) => DestinationState::Started(s.trim().to_string()),
                // Strava's activity id is a number.
                Value::Number(n) => DestinationState::Started(n.to_string()),
                _ => return None,
            };
            let id = match key.as_str() {
                "mtp" => "mtpw".to_string(),
                other => other.to_string(),
            };
            Some((id, state))
        })
        .collect()
}

impl SequenceLog {
    /// Parses the text of a sequence log.
    pub fn parse(text: &str) -> Result<SequenceLog, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Some(seq) = v.get("sequence").and_then(Value::as_object) else {
            return Err("no \"sequence\" object".to_string());
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(SequenceLog {
            id: nonempty(get_string(seq, "id")),
            name: nonempty(get_string(seq, "uploader_sequence_name")),
            description: get_string(seq, "uploader_sequence_description"),
            transport_type: nonempty(get_string(seq, "uploader_transport_type")),
            transport_method: nonempty(get_string(seq, "uploader_transport_method")),
            tags: get_tags(seq, "uploader_tags"),
            earliest_time: get_string(seq, "earliest_time"),
            latest_time: get_string(seq, "latest_time"),
            destination: destination_of(seq),
        })
    }

    /// Reads and parses a sequence log file.
    pub fn read(path: &Path) -> Result<SequenceLog, SequenceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SequenceError::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        SequenceLog::parse(&text).map_err(|message| SequenceError::Metadata {
            file: path.to_path_buf(),
            field: "sequence".to_string(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_block_as_mtpdu_writes_it() {
        let text = r#"{"sequence":{"id":"s1","destination":{"mapillary":true,
            "mapillary_user_token":"secret-token","mtp":"0b7d4c3e-1f7a-4e55-9f3b-7f3c6f0f2a11",
            "mtpw_user_token":"secret","strava":4242,"google":"Error: quota"}},"photo":{}}"#;
        let log = SequenceLog::parse(text).unwrap();
        assert_eq!(log.destination["mapillary"], DestinationState::Done);
        assert_eq!(
            log.destination["mtpw"],
            DestinationState::Started("0b7d4c3e-1f7a-4e55-9f3b-7f3c6f0f2a11".into())
        );
        assert_eq!(
            log.destination["strava"],
            DestinationState::Started("4242".into())
        );
        assert_eq!(
            log.destination["google"],
            DestinationState::Failed("Error: quota".into())
        );
        assert!(!log.destination.keys().any(|k| k.contains("token")));
        assert!(!format!("{log:?}").contains("secret"));
    }

    #[test]
    fn capture_time_formats() {
        assert_eq!(
            parse_map_capture_time("2019_12_29_10_25_39_898"),
            Some(1_577_615_139_898)
        );
        assert_eq!(
            parse_map_capture_time("2019_12_29_10_25_39"),
            Some(1_577_615_139_000)
        );
        assert_eq!(
            parse_map_capture_time("2019_12_29_10_25_39_898123"),
            Some(1_577_615_139_898)
        );
        assert_eq!(
            parse_map_capture_time("2019_12_29_10_25_39_5"),
            Some(1_577_615_139_500)
        );
        for bad in [
            "",
            "2019-12-29",
            "2019_13_29_10_25_39",
            "2019_12_29_10_25_39_",
            "2019_12_29_10_25_3x",
        ] {
            assert_eq!(parse_map_capture_time(bad), None, "{bad}");
        }
        assert_eq!(
            format_map_capture_time(1_577_615_139_898).unwrap(),
            "2019_12_29_10_25_39_898"
        );
    }

    #[test]
    fn image_description_round_trip() {
        // The example from MTPDU's developer docs.
        let text = r#"{"MTPUploaderSequenceUUID":"cdc04260-6d8f-4d91-8903-fb79a9197b8a","MTPUploaderPhotoUUID":"a092d009-503c-4e19-9dad-63156f4ff573","MAPAltitude":319.248,"MAPLatitude":28.7151519999722,"MAPLongitude":-13.8921749,"MAPCaptureTime":"2020_08_14_11_43_46_000","MTPSequenceName":"My first sequence","MTPSequenceDescription":"It's description","MTPSequenceTransport":"Water-Paddleboard","MTPSequenceTags":["water","river","lake"],"MTPImageCopy":"final_raw","MTPImageProjection":"flat"}"#;
        let d = MtpImageDescription::parse(text).unwrap();
        assert_eq!(d.latitude, Some(28.7151519999722));
        assert_eq!(
            d.sequence_tags.as_deref().unwrap(),
            ["water", "river", "lake"]
        );
        assert_eq!(d.to_json(), text);
    }

    #[test]
    fn sequence_log_real_field_names() {
        let text = r#"{"sequence":{"id":"67dda928-e948-4079-ac03-89288980130e","distance_km":0.005,
            "earliest_time":"2020-05-10T06:45:03","latest_time":"2020-05-10T06:45:38","durationsec":35,
            "uploader_sequence_name":"My first sequence",
            "uploader_sequence_description":"Just a short sequence whilst snowboarding",
            "uploader_transport_type":"Snow","uploader_transport_method":"Snowboard",
            "uploader_tags":["backflip","Switzerland"],"created":"2021-06-10T20:41:09",
            "uploader_camera":"GoPro MAX","destination":{}},"photo":{}}"#;
        let log = SequenceLog::parse(text).unwrap();
        assert_eq!(
            log.id.as_deref(),
            Some("67dda928-e948-4079-ac03-89288980130e")
        );
        assert_eq!(log.transport_method.as_deref(), Some("Snowboard"));
        assert_eq!(log.tags.unwrap(), ["backflip", "Switzerland"]);
        assert!(log.destination.is_empty());
        assert!(SequenceLog::parse("{}").is_err());
        assert!(SequenceLog::parse("{\"sequence\":").is_err());
    }
}
