//! Finding mapillary_tools' `ImageDescription` JSON inside the first bytes of an uploaded JPEG.
//!
//! The fake never decodes EXIF: it keeps only a prefix of each entity and looks for a balanced
//! JSON object that holds `MAPCaptureTime`. That is enough to learn each image's capture time and
//! position for `/images`, and costs nothing for the GBs benchmarks push through the fake.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

/// What the fake learned about an uploaded image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageMeta {
    /// Capture time, milliseconds since the Unix epoch (UTC).
    pub captured_at_ms: i64,
    /// `MAPLatitude`.
    pub lat: f64,
    /// `MAPLongitude`.
    pub lon: f64,
}

const NEEDLE: &[u8] = b"\"MAPCaptureTime\"";

/// Search `bytes` for the description JSON and parse it.
pub(crate) fn find_image_meta(bytes: &[u8]) -> Option<ImageMeta> {
    let mut search_from = 0;
    while let Some(rel) = find(&bytes[search_from..], NEEDLE) {
        let at = search_from + rel;
        if let Some(meta) = object_around(bytes, at).and_then(|v| meta_from_json(&v)) {
            return Some(meta);
        }
        search_from = at + NEEDLE.len();
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The innermost balanced JSON object that starts before `at` and ends after it.
fn object_around(bytes: &[u8], at: usize) -> Option<serde_json::Value> {
    // Walk back over candidate '{' positions; nested objects (e.g. MAPCompassHeading) that close
    // before `at` are skipped because their end lies before the needle.
    let mut start = at;
    while start > 0 {
        start -= 1;
        if bytes[start] != b'{' {
            continue;
        }
        if let Some(end) = balanced_end(&bytes[start..]) {
            if start + end > at {
                let slice = &bytes[start..start + end];
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(slice) {
                    if v.get("MAPCaptureTime").is_some() {
                        return Some(v);
                    }
                }
            }
        }
        // Don't scan arbitrarily far back through binary data.
        if at - start > 64 * 1024 {
            return None;
        }
    }
    None
}

/// Length of the balanced `{...}` at the start of `s` (string-aware), if it closes.
fn balanced_end(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            // EXIF ASCII values end in NUL; a NUL inside an object means we started in garbage.
            0 => return None,
            _ => {}
        }
    }
    None
}

fn meta_from_json(v: &serde_json::Value) -> Option<ImageMeta> {
    let captured_at_ms = parse_capture_time(v.get("MAPCaptureTime")?.as_str()?)?;
    let lat = number(v.get("MAPLatitude")?)?;
    let lon = number(v.get("MAPLongitude")?)?;
    Some(ImageMeta {
        captured_at_ms,
        lat,
        lon,
    })
}

fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parse `%Y_%m_%d_%H_%M_%S_%f` (UTC). The fraction may have any number of digits: mapillary_tools
/// writes milliseconds, Python's `%f` would give microseconds.
pub(crate) fn parse_capture_time(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.trim().split('_').collect();
    if parts.len() != 6 && parts.len() != 7 {
        return None;
    }
    let n = |i: usize| parts[i].parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(parts[0].parse().ok()?, n(1)?, n(2)?)?;
    let time = date.and_hms_opt(n(3)?, n(4)?, n(5)?)?;
    let mut ms = time.and_utc().timestamp_millis();
    if let Some(frac) = parts.get(6) {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Scale the fraction to exactly three digits.
        let mut digits: String = frac.chars().take(3).collect();
        while digits.len() < 3 {
            digits.push('0');
        }
        ms += digits.parse::<i64>().ok()?;
    }
    Some(ms)
}

/// Format milliseconds since the epoch as mapillary_tools' capture-time string.
pub fn format_capture_time(ms: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc())
        .unwrap_or(NaiveDateTime::MIN);
    format!(
        "{}_{:03}",
        dt.format("%Y_%m_%d_%H_%M_%S"),
        dt.and_utc().timestamp_subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_time_round_trip() {
        let ms = parse_capture_time("2024_05_01_10_00_00_123").unwrap();
        assert_eq!(ms, 1_714_557_600_123);
        assert_eq!(format_capture_time(ms), "2024_05_01_10_00_00_123");
        assert_eq!(
            parse_capture_time("2024_05_01_10_00_00_123456"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_capture_time("2024_05_01_10_00_00"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_capture_time("2024-05-01"), None);
    }

    #[test]
    fn finds_nested_description_in_binary() {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1, b'{', 0, 7];
        bytes.extend_from_slice(
            br#"{"MAPAltitude":1.0,"MAPCompassHeading":{"TrueHeading":1,"MagneticHeading":1},"MAPCaptureTime":"2024_05_01_10_00_00_123","MAPLatitude":51.5,"MAPLongitude":"-0.1"}"#,
        );
        bytes.extend_from_slice(&[0, 0xFF, 0xD9]);
        let meta = find_image_meta(&bytes).unwrap();
        assert_eq!(meta.captured_at_ms, 1_714_557_600_123);
        assert_eq!(meta.lat, 51.5);
        assert_eq!(meta.lon, -0.1);
        assert_eq!(find_image_meta(b"\xFF\xD8 no json here"), None);
    }
}
