//! MTP Desktop Uploader (MTPDU) formats: the `ImageDescription` JSON it writes into every final image and the
//! `<name>.json` sequence log in each sequence directory.
//!
//! Both are parsed leniently (a field of an unexpected type is ignored, numbers written as strings are
//! accepted) because they come from several MTPDU releases and may have been edited by hand.

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
        })
    }

    /// Reads and parses a sequence log file.
    pub fn read(path: &Path) -> Result<SequenceLog, SequenceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SequenceError::Io {
            path: path.to_path_buf(),
            source,
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
        assert!(SequenceLog::parse("{}").is_err());
        assert!(SequenceLog::parse("{\"sequence\":").is_err());
    }
}
