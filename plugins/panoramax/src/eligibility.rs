//! Which sequences Panoramax takes, predicted from the files themselves.
//!
//! The server reads position and capture time from the picture's own metadata (geopic-tag-reader, used by
//! geovisio `geovisio/utils/pictures.py`), not from what mtp knows about the sequence: a picture whose
//! position or time exists only in MTPDU's `ImageDescription` JSON is refused with HTTP 400 and
//! `details.missing_fields` (`["datetime", "location"]`, geovisio `geovisio/web/upload_set.py`
//! `addFilesToUploadSet`). So each file's EXIF is read here and the refusal is predicted, naming the
//! files and the fields. Accepted: JPEG files (`.jpg`/`.jpeg`), flat or 360° equirectangular.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use exif::{In, Tag};
use plugin_api::prelude::*;

/// At most this many files are named in a refusal.
const NAMED_FILES: usize = 5;

/// The fields the server would report missing for the picture at `path` (`location`, `datetime`), or
/// why the file cannot be read at all.
pub fn missing_fields(path: &Path) -> Result<Vec<&'static str>, String> {
    let file = File::open(path).map_err(|err| format!("cannot open it: {err}"))?;
    let exif = match exif::Reader::new().read_from_container(&mut BufReader::new(file)) {
        Ok(exif) => exif,
        Err(exif::Error::NotFound(_)) => return Ok(vec!["datetime", "location"]),
        Err(err) => return Err(format!("its EXIF is unreadable: {err}")),
    };
    let has = |tag: Tag| exif.get_field(tag, In::PRIMARY).is_some();
    let mut missing = Vec::new();
    if !(has(Tag::DateTimeOriginal) || (has(Tag::GPSDateStamp) && has(Tag::GPSTimeStamp))) {
        missing.push("datetime");
    }
    if !(has(Tag::GPSLatitude) && has(Tag::GPSLongitude)) {
        missing.push("location");
    }
    Ok(missing)
}

fn is_jpeg_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

/// Why Panoramax would refuse `sequence`, if it would.
pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
    if let Some(p) = sequence
        .projections()
        .into_iter()
        .find(|p| !matches!(p, Projection::Flat | Projection::Equirectangular))
    {
        return Some(format!(
            "projection {} is not accepted by Panoramax (only flat and 360° equirectangular)",
            p.as_str()
        ));
    }
    let mut problems = Vec::new();
    for image in &sequence.images {
        let name = if image.file_name.is_empty() {
            image.path.as_str()
        } else {
            image.file_name.as_str()
        };
        if !is_jpeg_name(name) {
            problems.push(format!("{name}: not a .jpg/.jpeg file"));
            continue;
        }
        match missing_fields(Path::new(&image.path)) {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => problems.push(format!(
                "{name}: no {} in its EXIF (HTTP 400, missing_fields {missing:?})",
                missing.join(" and ")
            )),
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
    if problems.is_empty() {
        return None;
    }
    let total = problems.len();
    let shown: Vec<String> = problems.into_iter().take(NAMED_FILES).collect();
    let more = if total > NAMED_FILES {
        format!("; and {} more", total - NAMED_FILES)
    } else {
        String::new()
    };
    Some(format!(
        "Panoramax would refuse {total} of {} files: {}{more}; write GPS position and capture time \
         into the files' EXIF (e.g. with exiftool) or leave them out",
        sequence.images.len(),
        shown.join("; ")
    ))
}
