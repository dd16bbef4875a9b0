//! The bytes Mapillary receives for an image: the file with its EXIF APP1 segment replaced by one whose
//! `ImageDescription` holds the JSON mapillary_tools writes (`MAPLatitude`, `MAPLongitude`,
//! `MAPCaptureTime`, ...), everything else unchanged.
//!
//! Only the header is read (the marker walk of [`plugin_api::jpeg`] seeks over everything but the EXIF
//! payload); the result is an [`Outgoing`] plan — file stretches around one new in-memory segment — so the
//! file on disk is never modified and never loaded whole.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use exif::experimental::Writer;
use exif::{Field, In, Tag, Value};
use plugin_api::jpeg::{self, marker, JpegError, SegmentReader};
use plugin_api::sequence::ImageInfo;
use serde_json::{Map, Value as Json};

use crate::error::{MlyError, Result};
use crate::outgoing::{Outgoing, Piece};

/// mapillary_tools' capture-time format: `%Y_%m_%d_%H_%M_%S_%f` with milliseconds, UTC.
pub fn map_capture_time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y_%m_%d_%H_%M_%S_%3f").to_string())
}

/// What the original EXIF says that the description repeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifHints {
    /// `Orientation` (1..=8).
    pub orientation: Option<u32>,
    /// `Make`.
    pub make: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// The existing `ImageDescription` (MTPDU writes its own JSON there).
    pub description: Option<String>,
}

fn ascii_of(field: Option<&Field>) -> Option<String> {
    match field.map(|f| &f.value) {
        Some(Value::Ascii(parts)) => parts
            .first()
            .map(|p| {
                String::from_utf8_lossy(p)
                    .trim_end_matches('\0')
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

impl ExifHints {
    fn from_exif(exif: &exif::Exif) -> ExifHints {
        ExifHints {
            orientation: exif
                .get_field(Tag::Orientation, In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
                .filter(|o| (1..=8).contains(o)),
            make: ascii_of(exif.get_field(Tag::Make, In::PRIMARY)),
            model: ascii_of(exif.get_field(Tag::Model, In::PRIMARY)),
            description: ascii_of(exif.get_field(Tag::ImageDescription, In::PRIMARY)),
        }
    }
}

/// JSON text with every non-ASCII character escaped (`\u00e9`), as Python's `json.dumps` writes it: EXIF
/// ASCII values must be 7-bit.
fn ascii_json(value: &Json) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The `ImageDescription` JSON for `image`: mapillary_tools' `MAP*` keys from the validated sequence (which
/// wins over anything in the file), on top of the keys of an existing JSON description (MTPDU's `MTP*`
/// keys travel along). Keys are sorted, so the same input always gives the same bytes (and session key).
pub fn image_description(image: &ImageInfo, hints: &ExifHints) -> Result<String> {
    let mut map: Map<String, Json> = hints
        .description
        .as_deref()
        .and_then(|d| serde_json::from_str::<Json>(d).ok())
        .and_then(|v| match v {
            Json::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    // Stale MAP* keys from an earlier tool must not survive next to ours.
    map.retain(|k, _| !k.starts_with("MAP"));
    let capture = map_capture_time(image.captured_at_ms).ok_or_else(|| {
        MlyError::Invalid(format!(
            "{}: capture time {} ms is out of range",
            image.path, image.captured_at_ms
        ))
    })?;
    map.insert("MAPLatitude".into(), image.latitude.into());
    map.insert("MAPLongitude".into(), image.longitude.into());
    map.insert("MAPCaptureTime".into(), capture.into());
    if let Some(altitude) = image.altitude.filter(|a| a.is_finite()) {
        map.insert("MAPAltitude".into(), altitude.into());
    }
    if let Some(heading) = image.heading.filter(|h| h.is_finite()) {
        let heading = heading.rem_euclid(360.0);
        map.insert(
            "MAPCompassHeading".into(),
            serde_json::json!({"TrueHeading": heading, "MagneticHeading": heading}),
        );
    }
    map.insert(
        "MAPOrientation".into(),
        hints.orientation.unwrap_or(1).into(),
    );
    if let Some(make) = &hints.make {
        map.insert("MAPDeviceMake".into(), make.clone().into());
    }
    if let Some(model) = &hints.model {
        map.insert("MAPDeviceModel".into(), model.clone().into());
    }
    let file_name = if image.file_name.is_empty() {
        Path::new(&image.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        image.file_name.clone()
    };
    map.insert("MAPFilename".into(), file_name.into());
    Ok(ascii_json(&Json::Object(map)))
}

/// How much of the original EXIF to carry over; each step down is tried when the segment would exceed
/// the 64 KiB a JPEG segment can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every field we can write, and the thumbnail.
    Everything,
    /// Every primary-image field, no thumbnail.
    Primary,
    /// Orientation, camera, times and GPS only.
    Essential,
    /// The new description alone.
    Nothing,
}

fn essential(tag: Tag) -> bool {
    matches!(tag, Tag(exif::Context::Gps, _))
        || [
            Tag::Orientation,
            Tag::Make,
            Tag::Model,
            Tag::DateTime,
            Tag::DateTimeOriginal,
            Tag::DateTimeDigitized,
            Tag::SubSecTimeOriginal,
            Tag::OffsetTimeOriginal,
            Tag::PixelXDimension,
            Tag::PixelYDimension,
        ]
        .contains(&tag)
}

/// The TIFF structure of the new EXIF: the original's fields as far as `keep` says (minus its
/// `ImageDescription` and anything the writer cannot encode), plus `description`.
fn build_tiff(
    old: Option<&exif::Exif>,
    description: &str,
    keep: Keep,
) -> Result<Vec<u8>, exif::Error> {
    let new_description = Field {
        tag: Tag::ImageDescription,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![description.as_bytes().to_vec()]),
    };
    let mut writer = Writer::new();
    writer.push_field(&new_description);
    let mut seen = BTreeSet::new();
    let mut thumbnail: Option<&[u8]> = None;
    if let (Some(old), true) = (old, keep != Keep::Nothing) {
        for field in old.fields() {
            let primary = field.ifd_num == In::PRIMARY;
            let wanted = match keep {
                Keep::Everything => primary || field.ifd_num == In::THUMBNAIL,
                Keep::Primary => primary,
                Keep::Essential => primary && essential(field.tag),
                Keep::Nothing => false,
            };
            let replaced = primary && field.tag == Tag::ImageDescription;
            let writable = !replaced && !matches!(field.value, Value::Unknown(..));
            // The writer refuses duplicates, which a damaged file may have.
            if wanted && writable && seen.insert((field.ifd_num.index(), field.tag)) {
                writer.push_field(field);
            }
        }
        if keep == Keep::Everything {
            let offset = old.get_field(Tag::JPEGInterchangeFormat, In::THUMBNAIL);
            let length = old.get_field(Tag::JPEGInterchangeFormatLength, In::THUMBNAIL);
            if let (Some(o), Some(l)) = (
                offset.and_then(|f| f.value.get_uint(0)),
                length.and_then(|f| f.value.get_uint(0)),
            ) {
                thumbnail = old
                    .buf()
                    .get(o as usize..(o as usize).saturating_add(l as usize));
            }
        }
    }
    if let Some(jpeg) = thumbnail {
        writer.set_jpeg(jpeg, In::THUMBNAIL);
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out, old.is_some_and(|e| e.little_endian()))?;
    Ok(out.into_inner())
}

/// The new EXIF APP1 segment, keeping as much of `old` as fits in one segment.
fn new_exif_segment(old: Option<&exif::Exif>, description: &str) -> Result<Vec<u8>, String> {
    let mut last_error = String::new();
    for keep in [
        Keep::Everything,
        Keep::Primary,
        Keep::Essential,
        Keep::Nothing,
    ] {
        if old.is_none() && keep != Keep::Nothing {
            continue;
        }
        match build_tiff(old, description, keep) {
            Ok(tiff) => match jpeg::exif_segment(&tiff) {
                Ok(segment) => return Ok(segment),
                Err(err) => last_error = err.to_string(),
            },
            Err(err) => last_error = err.to_string(),
        }
    }
    Err(format!("cannot write its EXIF: {last_error}"))
}

/// Where the EXIF segments of a file are, and the first one's payload.
struct HeaderScan {
    /// `(offset, length)` of every EXIF APP1 segment, in file order.
    exif_segments: Vec<(u64, u64)>,
    /// The payload of the first one, after the `Exif\0\0` identifier.
    tiff: Option<Vec<u8>>,
    /// Where a new segment goes when there is none: after SOI and a leading APP0 (JFIF).
    insert_at: u64,
}

fn scan_header(file: &mut File) -> Result<HeaderScan, JpegError> {
    let mut reader = SegmentReader::new(file)?;
    let mut scan = HeaderScan {
        exif_segments: Vec::new(),
        tiff: None,
        insert_at: 2,
    };
    let mut first = true;
    while let Some(segment) = reader.next_segment()? {
        if first && segment.marker == marker::APP0 {
            scan.insert_at = segment.end();
        }
        first = false;
        if segment.marker != marker::APP1 {
            continue;
        }
        let id = reader.read_payload(jpeg::EXIF_ID.len())?;
        if id != jpeg::EXIF_ID {
            continue;
        }
        if scan.tiff.is_none() {
            scan.tiff = Some(reader.read_payload(jpeg::MAX_PAYLOAD)?);
        }
        scan.exif_segments.push((segment.offset, segment.length));
    }
    Ok(scan)
}

/// Plans the bytes sent for `image`: SOI and the segments before the EXIF, the new EXIF segment, and the
/// rest of the file from just after the old EXIF segment, byte for byte. Blocking (reads the header).
pub fn prepare(image: &ImageInfo) -> Result<Outgoing> {
    let path = Path::new(&image.path);
    let file_error = |source| MlyError::File {
        path: image.path.clone(),
        cause: source,
    };
    let jpeg_error = |why: String| MlyError::Jpeg {
        path: image.path.clone(),
        why,
    };
    let mut file = File::open(path).map_err(file_error)?;
    let size = file.metadata().map_err(file_error)?.len();
    let scan = scan_header(&mut file).map_err(|err| match err {
        JpegError::Io(source) => file_error(source),
        other => jpeg_error(other.to_string()),
    })?;
    let old = scan.tiff.and_then(|tiff| {
        exif::Reader::new()
            .continue_on_error(true)
            .read_raw(tiff)
            .or_else(|err| err.distill_partial_result(|_| {}))
            .ok()
    });
    let hints = old.as_ref().map(ExifHints::from_exif).unwrap_or_default();
    let description = image_description(image, &hints)?;
    let segment: Arc<[u8]> = new_exif_segment(old.as_ref(), &description)
        .map_err(jpeg_error)?
        .into();

    let mut pieces = Vec::new();
    let mut cursor = 0u64;
    match scan.exif_segments.first() {
        None => {
            pieces.push(Piece::File {
                start: 0,
                len: scan.insert_at,
            });
            pieces.push(Piece::Bytes(segment));
            cursor = scan.insert_at;
        }
        Some(_) => {
            // The new segment takes the first EXIF segment's place; any further EXIF segments are dropped.
            for (i, (offset, length)) in scan.exif_segments.iter().enumerate() {
                pieces.push(Piece::File {
                    start: cursor,
                    len: offset - cursor,
                });
                if i == 0 {
                    pieces.push(Piece::Bytes(segment.clone()));
                }
                cursor = offset + length;
            }
        }
    }
    pieces.push(Piece::File {
        start: cursor,
        len: size.saturating_sub(cursor),
    });
    Outgoing::new(path, pieces).map_err(file_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outgoing::OutgoingReader;
    use mtp_sequence::generate::{write_image, ImageSpec};
    use plugin_api::sequence::Projection;
    use std::io::Read;

    fn info(path: &Path) -> ImageInfo {
        ImageInfo {
            path: path.to_string_lossy().into_owned(),
            file_name: "IMG_0001.jpg".into(),
            size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            latitude: 52.25,
            longitude: -6.5,
            altitude: Some(12.5),
            captured_at_ms: 1_589_093_103_042,
            heading: Some(370.0),
            projection: Projection::Flat,
            width: Some(64),
            height: Some(32),
            photo_uuid: None,
            sources: None,
        }
    }

    fn sent_bytes(out: &Outgoing) -> Vec<u8> {
        let mut bytes = Vec::new();
        OutgoingReader::open(out, 0)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    fn description_of(bytes: &[u8]) -> (exif::Exif, Json) {
        let exif = exif::Reader::new()
            .read_from_container(&mut Cursor::new(bytes))
            .unwrap();
        let text = ascii_of(exif.get_field(Tag::ImageDescription, In::PRIMARY)).unwrap();
        let json = serde_json::from_str(&text).unwrap();
        (exif, json)
    }

    #[test]
    fn capture_time_format() {
        assert_eq!(
            map_capture_time(1_589_093_103_042).as_deref(),
            Some("2020_05_10_06_45_03_042")
        );
    }

    #[test]
    fn description_keeps_mtpdu_keys_and_escapes_non_ascii() {
        let hints = ExifHints {
            orientation: Some(6),
            make: Some("GoPro".into()),
            model: None,
            description: Some(
                r#"{"MTPSequenceName":"Café ride","MAPLatitude":1.0,"MAPStale":true}"#.into(),
            ),
        };
        let text = image_description(&info(Path::new("/x/IMG_0001.jpg")), &hints).unwrap();
        assert!(text.is_ascii(), "{text}");
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["MTPSequenceName"], "Café ride");
        assert_eq!(json["MAPLatitude"], 52.25);
        assert_eq!(json["MAPCaptureTime"], "2020_05_10_06_45_03_042");
        assert_eq!(json["MAPCompassHeading"]["TrueHeading"], 10.0);
        assert_eq!(json["MAPOrientation"], 6);
        assert_eq!(json["MAPDeviceMake"], "GoPro");
        assert_eq!(json["MAPFilename"], "IMG_0001.jpg");
        assert!(json.get("MAPStale").is_none());
        // Deterministic: the session key depends on it.
        assert_eq!(
            text,
            image_description(&info(Path::new("/x/IMG_0001.jpg")), &hints).unwrap()
        );
    }

    #[test]
    fn rewrites_only_the_exif_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        let spec = ImageSpec {
            target_bytes: Some(300_000),
            ..ImageSpec::default()
        };
        write_image(&path, &spec).unwrap();
        let original = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();

        let out = prepare(&info(&path)).unwrap();
        let sent = sent_bytes(&out);
        assert_eq!(sent.len() as u64, out.length);

        // A valid JPEG whose description kamadak-exif reads back, with the old fields kept.
        let segments = jpeg::read_segments(Cursor::new(&sent)).unwrap();
        assert!(segments.iter().any(|s| s.marker == marker::SOS));
        let (exif, json) = description_of(&sent);
        assert_eq!(json["MAPLongitude"], -6.5);
        assert_eq!(json["MAPAltitude"], 12.5);
        assert_eq!(
            ascii_of(exif.get_field(Tag::Make, In::PRIMARY)).as_deref(),
            Some("MTP")
        );
        assert!(exif.get_field(Tag::GPSLatitude, In::PRIMARY).is_some());

        // Everything after the old EXIF segment is byte-identical.
        let old_exif = jpeg::read_segments(Cursor::new(&original))
            .unwrap()
            .into_iter()
            .find(|s| s.marker == marker::APP1)
            .unwrap();
        let new_exif = segments.iter().find(|s| s.marker == marker::APP1).unwrap();
        assert_eq!(old_exif.offset, new_exif.offset, "same place");
        assert_eq!(
            &sent[new_exif.end() as usize..],
            &original[old_exif.end() as usize..]
        );
        assert_eq!(
            &sent[..new_exif.offset as usize],
            &original[..old_exif.offset as usize]
        );

        // The file on disk is untouched.
        assert_eq!(std::fs::read(&path).unwrap(), original);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

        // Preparing again gives the same plan (so the same session key).
        assert_eq!(prepare(&info(&path)).unwrap(), out);
    }

    #[test]
    fn creates_exif_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.jpg");
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend(jpeg::segment(marker::APP0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0").unwrap());
        bytes.extend(jpeg::segment(marker::SOF0, &[8, 0, 2, 0, 3, 1, 1, 0x11, 0]).unwrap());
        bytes.extend(jpeg::segment(marker::SOS, &[1, 1, 0, 0, 63, 0]).unwrap());
        bytes.extend([0x12, 0x34, 0xFF, 0xD9]);
        std::fs::write(&path, &bytes).unwrap();

        let sent = sent_bytes(&prepare(&info(&path)).unwrap());
        let markers: Vec<u8> = jpeg::read_segments(Cursor::new(&sent))
            .unwrap()
            .iter()
            .map(|s| s.marker)
            .collect();
        assert_eq!(
            markers,
            [marker::APP0, marker::APP1, marker::SOF0, marker::SOS]
        );
        let (_, json) = description_of(&sent);
        assert_eq!(json["MAPCaptureTime"], "2020_05_10_06_45_03_042");
        assert!(sent.ends_with(&bytes[20..]));
    }

    #[test]
    fn refuses_what_is_not_a_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jpg");
        std::fs::write(&path, b"GIF89a not a jpeg").unwrap();
        assert!(matches!(prepare(&info(&path)), Err(MlyError::Jpeg { .. })));
        assert!(matches!(
            prepare(&info(&dir.path().join("missing.jpg"))),
            Err(MlyError::File { .. })
        ));
    }

    #[test]
    fn oversized_exif_falls_back_to_the_essentials() {
        // A maker note that fills the segment leaves no room for the description: it is dropped.
        let note = Field {
            tag: Tag::MakerNote,
            ifd_num: In::PRIMARY,
            value: Value::Undefined(vec![7u8; 65_000], 0),
        };
        let make = Field {
            tag: Tag::Make,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![b"Cam".to_vec()]),
        };
        let mut w = Writer::new();
        w.push_field(&note);
        w.push_field(&make);
        let mut tiff = Cursor::new(Vec::new());
        w.write(&mut tiff, false).unwrap();
        let old = exif::Reader::new().read_raw(tiff.into_inner()).unwrap();
        let segment = new_exif_segment(Some(&old), &"{\"MAPLatitude\":1}".repeat(100)).unwrap();
        assert!(segment.len() <= jpeg::MAX_PAYLOAD + 4);
        let kept = exif::Reader::new()
            .read_raw(segment[10..].to_vec())
            .unwrap();
        assert!(kept.get_field(Tag::MakerNote, In::PRIMARY).is_none());
        assert_eq!(
            ascii_of(kept.get_field(Tag::Make, In::PRIMARY)).as_deref(),
            Some("Cam")
        );
    }
}
