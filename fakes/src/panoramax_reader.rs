//! What the fake Panoramax finds missing in an uploaded JPEG, by the acceptance rules of the reader
//! geovisio 2.15.1 runs on every picture: geopic-tag-reader 1.10.1 (PyPI), `geopic_tag_reader/reader.py`,
//! `readPictureMetadata` and `getPictureMetadata`. Written from that code, independently of mtp's own
//! reader, so that the fake judges mtp's files rather than agreeing with them:
//!
//! - location (`decodeLatLon` for `Exif.GPSInfo`, then `Xmp.exif`, then `MAPLatitude`/`MAPLongitude` from
//!   the `ImageDescription` JSON merged into the tags): EXIF `GPSLatitude`/`GPSLongitude` of three
//!   rationals; XMP `exif:GPSLatitude`/`exif:GPSLongitude` as three space-separated fractions or one number
//!   (Adobe's `51,30.5N` form is not read); `MAPLatitude`/`MAPLongitude` numbers. (0, 0) is "no location"
//!   (the `lat == 0 and lon == 0` test before `PartialExifException`).
//! - datetime: `GPSDateStamp` with `GPSTimeStamp` (`decodeGPSDateTime`, EXIF group; the XMP group would need
//!   an `Xmp.exif.GPSDateStamp`, which XMP does not have), `MAPGpsTime` (seven `_`-separated integers), or a
//!   camera time `DateTimeOriginal`, IFD0 `DateTime`, `GPano:SourceImageCreateTime`, XMP
//!   `exif:DateTimeOriginal` (`decodeDateTimeOriginal`: `YYYY:MM:DD HH:MM[:SS]`, dashes allowed in the date).
//!
//! Assumption: the EXIF is read leniently (kamadak-exif with `continue_on_error`), as exiv2 (under
//! pyexiv2) reads files with an odd IFD1 or a bad tag; exiv2's exact tolerance is not modelled.

use exif::{In, Tag, Value};

const EXIF_ID: &[u8] = b"Exif\0\0";
const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// The fields geovisio would report in `details.missing_fields` (`datetime`, `location`), empty when it
/// takes the picture.
pub fn missing_fields(jpeg: &[u8]) -> Vec<&'static str> {
    let (exif_raw, xmp_raw) = app1_segments(jpeg);
    let exif = exif_raw.and_then(lenient_exif);
    let xmp = xmp_raw.map(String::from_utf8_lossy).unwrap_or_default();
    let description: serde_json::Value = exif
        .as_ref()
        .and_then(|e| ascii(e, Tag::ImageDescription))
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default();

    let exif_position = exif.as_ref().and_then(|e| {
        let lat = rationals(e, Tag::GPSLatitude)?;
        let lon = rationals(e, Tag::GPSLongitude)?;
        let dms = |v: &[f64]| v[0] + v[1] / 60.0 + v[2] / 3600.0;
        (lat.len() == 3 && lon.len() == 3).then(|| (dms(&lat), dms(&lon)))
    });
    let xmp_position = xmp_property(&xmp, "GPSLatitude")
        .zip(xmp_property(&xmp, "GPSLongitude"))
        .and_then(|(a, b)| Some((xmp_coordinate(a)?, xmp_coordinate(b)?)));
    let map_position = description["MAPLatitude"]
        .as_f64()
        .zip(description["MAPLongitude"].as_f64());
    let position = exif_position.or(xmp_position).or(map_position);

    let gps_time = exif.as_ref().is_some_and(|e| {
        ascii(e, Tag::GPSDateStamp).is_some_and(|d| date_ok(&d.replace(['/', '\0'], ":")))
            && rationals(e, Tag::GPSTimeStamp).is_some_and(|t| t.len() == 3)
    });
    let map_gps_time = description["MAPGpsTime"].as_str().is_some_and(|t| {
        let parts: Vec<&str> = t.split('_').collect();
        parts.len() == 7 && parts.iter().all(|p| p.parse::<i64>().is_ok())
    });
    let camera_time = exif.as_ref().is_some_and(|e| {
        [Tag::DateTimeOriginal, Tag::DateTime]
            .into_iter()
            .any(|t| ascii(e, t).is_some_and(|v| camera_time_ok(&v)))
    }) || ["SourceImageCreateTime", "DateTimeOriginal"]
        .into_iter()
        .any(|p| xmp_property(&xmp, p).is_some_and(camera_time_ok));

    let mut missing = Vec::new();
    if !(gps_time || map_gps_time || camera_time) {
        missing.push("datetime");
    }
    if position.is_none_or(|(lat, lon)| lat == 0.0 && lon == 0.0) {
        missing.push("location");
    }
    missing
}

fn lenient_exif(raw: &[u8]) -> Option<exif::Exif> {
    match exif::Reader::new()
        .continue_on_error(true)
        .read_raw(raw.to_vec())
    {
        Ok(e) => Some(e),
        Err(exif::Error::PartialResult(partial)) => Some(partial.into_inner().0),
        Err(_) => None,
    }
}

/// The capture time (Unix ms, UTC) geovisio stores as the picture's `ts`, for the EXIF cases the fake
/// needs: geopic-tag-reader 1.10.1 `reader.py` reads the GPS time (`decodeGPSDateTime`: `GPSDateStamp` and
/// `GPSTimeStamp`, UTC, fractional seconds kept) and the camera time (`decodeDateTimeOriginal`:
/// `DateTimeOriginal` with `SubSecTimeOriginal` and `OffsetTimeOriginal`), and `TimeBySource.getBest`
/// takes the camera time only when it alone has sub-seconds, else the GPS time when there is one.
/// Assumptions: a camera time without an offset is read as UTC (the real reader localises it at the
/// picture's position), and the XMP and `MAPGpsTime` times are not read here.
pub fn capture_time_ms(jpeg: &[u8]) -> Option<i64> {
    let exif = app1_segments(jpeg).0.and_then(lenient_exif)?;
    let gps = (|| {
        let date = ascii(&exif, Tag::GPSDateStamp)?.replace(['/', '\0'], ":");
        let date = chrono::NaiveDate::parse_from_str(date.get(..10)?, "%Y:%m:%d").ok()?;
        let hms = rationals(&exif, Tag::GPSTimeStamp).filter(|t| t.len() == 3)?;
        let ms = ((hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]) * 1000.0).round() as i64;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() + ms)
    })();
    let camera = (|| {
        let v = ascii(&exif, Tag::DateTimeOriginal)?;
        let local =
            chrono::NaiveDateTime::parse_from_str(v.get(..19)?, "%Y:%m:%d %H:%M:%S").ok()?;
        let sub = ascii(&exif, Tag::SubSecTimeOriginal).unwrap_or_default();
        let digits: String = sub
            .chars()
            .take_while(char::is_ascii_digit)
            .take(3)
            .collect();
        let ms = format!("{digits:0<3}").parse::<i64>().unwrap_or(0);
        let offset_s = ascii(&exif, Tag::OffsetTimeOriginal)
            .and_then(|o| {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let (h, m) = o.get(1..)?.split_once(':')?;
                Some(sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
            })
            .unwrap_or(0);
        Some(local.and_utc().timestamp_millis() + ms - offset_s * 1000)
    })();
    match (gps, camera) {
        (Some(g), Some(c)) if c.rem_euclid(1000) > 0 && g.rem_euclid(1000) == 0 => Some(c),
        (Some(g), _) => Some(g),
        (None, c) => c,
    }
}

/// The payloads of the EXIF and XMP APP1 segments, before the image data.
fn app1_segments(jpeg: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let (mut exif, mut xmp) = (None, None);
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        let end = (i + 2 + len).min(jpeg.len());
        let payload = jpeg.get(i + 4..end).unwrap_or_default();
        if marker == 0xE1 {
            if let Some(p) = payload.strip_prefix(EXIF_ID) {
                exif.get_or_insert(p);
            } else if let Some(p) = payload.strip_prefix(XMP_ID) {
                xmp.get_or_insert(p);
            }
        }
        i = end;
    }
    (exif, xmp)
}

fn ascii(e: &exif::Exif, tag: Tag) -> Option<String> {
    match &e.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(v) => v
            .first()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .trim_end_matches('\0')
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

fn rationals(e: &exif::Exif, tag: Tag) -> Option<Vec<f64>> {
    match &e.get_field(tag, In::PRIMARY)?.value {
        Value::Rational(v) if v.iter().all(|r| r.denom != 0) => {
            Some(v.iter().map(|r| r.to_f64()).collect())
        }
        // Some phones write signed rationals (the Nokia 8.3 in tests/data/real); exiv2 reads them alike.
        Value::SRational(v) if v.iter().all(|r| r.denom != 0) => {
            Some(v.iter().map(|r| r.to_f64()).collect())
        }
        _ => None,
    }
}

/// `YYYY:MM:DD` (or with dashes) as `datetime.date.fromisoformat` takes it after the replacement.
fn date_ok(d: &str) -> bool {
    let d = d.get(..10).unwrap_or_default().replace(':', "-");
    chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").is_ok()
}

/// `decodeDateTimeOriginal`: the date from the first 10 characters, hours and minutes as integers after
/// character 11.
fn camera_time_ok(v: &str) -> bool {
    let time: Vec<&str> = v.get(11..).unwrap_or_default().split(':').collect();
    date_ok(v)
        && time.len() >= 2
        && time[0].trim().parse::<u32>().is_ok_and(|h| h < 24)
        && time[1].trim().parse::<u32>().is_ok_and(|m| m < 60)
}

fn xmp_coordinate(v: &str) -> Option<f64> {
    let parts: Vec<f64> = v
        .trim()
        .split(' ')
        .map(|p| match p.split_once('/') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
                (b != 0.0).then(|| a / b)
            }
            None => p.parse::<f64>().ok(),
        })
        .collect::<Option<_>>()?;
    match parts[..] {
        [x] => Some(x),
        [d, m, s] => Some(d + m / 60.0 + s / 3600.0),
        _ => None,
    }
}

/// An XMP property written as an attribute (`exif:GPSLatitude="..."`) or an element.
fn xmp_property<'a>(xmp: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(":{name}");
    let at = xmp.find(&needle)? + needle.len();
    let rest = xmp[at..].trim_start();
    if let Some(v) = rest.strip_prefix('=') {
        let v = v.trim_start();
        let q = v.chars().next()?;
        let body = &v[1..];
        return body.find(q).map(|end| body[..end].trim());
    }
    rest.strip_prefix('>')
        .and_then(|v| v.find('<').map(|end| v[..end].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_times_and_coordinates_as_geopic_tag_reader_reads_them() {
        assert!(camera_time_ok("2016:09:12 10:05:31"));
        assert!(camera_time_ok("2014-09-21T16:00:56+02:00"));
        assert!(!camera_time_ok("    :  :     :  :  "));
        assert_eq!(xmp_coordinate("51.5"), Some(51.5));
        assert_eq!(xmp_coordinate("51/1 30/1 0/1"), Some(51.5));
        assert_eq!(
            xmp_coordinate("0,4.21601S"),
            None,
            "Adobe's form is not read"
        );
        assert_eq!(
            missing_fields(b"\xFF\xD8\xFF\xD9"),
            ["datetime", "location"]
        );
    }
}

/// The fake agrees with geopic-tag-reader itself on every real camera file of `tests/data/real`
/// (`golden_panoramax.json`, recorded by `scripts/golden/record_panoramax.py`).
#[cfg(test)]
mod real_files {
    #[test]
    fn the_fake_refuses_what_geopic_tag_reader_refuses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/real");
        let golden: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("golden_panoramax.json")).unwrap(),
        )
        .unwrap();
        let mut wrong = Vec::new();
        let files = golden["files"].as_object().unwrap();
        for (name, g) in files {
            let fake = super::missing_fields(&std::fs::read(dir.join(name)).unwrap());
            let accepted = g.get("refused").is_none();
            if fake.is_empty() != accepted {
                wrong.push(format!("{name}: fake {fake:?}, geopic-tag-reader {g}"));
            }
        }
        assert!(files.len() >= 40);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
