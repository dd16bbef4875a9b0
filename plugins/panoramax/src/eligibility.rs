//! Which pictures Panoramax takes, predicted from the host's one reading of each file.
//!
//! The server reads position and capture time from the picture's own metadata with geopic-tag-reader
//! (geovisio `geovisio/utils/pictures.py`), not from what mtp knows about the sequence, and refuses a
//! picture it finds no position or date in with HTTP 400 and `details.missing_fields`, per file: the rest of
//! the upload set is kept (geovisio `geovisio/web/upload_set.py`, `addFilesToUploadSet`). So the files it
//! would refuse are left out here with a note, and the sequence goes on without them.
//!
//! The rules are geopic-tag-reader 1.10.1's (`geopic_tag_reader/reader.py`, `getPictureMetadata`), applied
//! to [`MetadataSources`](plugin_api::sequence::MetadataSources) (which tags of the file the host's reader found usable) instead of reading the
//! file again:
//! - position: EXIF `GPSLatitude`/`GPSLongitude`, else XMP `exif:GPSLatitude`/`exif:GPSLongitude`, else
//!   `MAPLatitude`/`MAPLongitude` from the `ImageDescription` JSON (`decodeLatLon`, then the `MAPLatitude`
//!   branch); (0, 0) counts as none;
//! - date: the GPS date/time from EXIF or `MAPGpsTime` (`decodeGPSDateTime`, then the `MAPGpsTime`
//!   branch), else `DateTimeOriginal`, IFD0 `DateTime`, `GPano:SourceImageCreateTime` or XMP
//!   `exif:DateTimeOriginal` (the `cameraTs` loop of `decodeDateTimeOriginal` calls). Not
//!   `DateTimeDigitized` and not MTPDU's `MAPCaptureTime`, which mtp reads.
//!
//! Projections: flat or 360° equirectangular only.

use plugin_api::prelude::*;
use plugin_api::sdk::refusals::Refusals;
use plugin_api::sequence::{
    SourceName, POSITION_EXIF, POSITION_MAP, POSITION_XMP, TIME_GPANO_CREATE, TIME_GPS_EXIF,
    TIME_IFD0, TIME_MAP_GPS, TIME_ORIGINAL, TIME_XMP_ORIGINAL,
};

/// At most this many files are named in a note or refusal.
const NAMED_FILES: usize = 3;

/// The position tags geopic-tag-reader reads (see the module docs).
const POSITIONS: [&str; 3] = [POSITION_EXIF, POSITION_XMP, POSITION_MAP];

/// The date tags geopic-tag-reader reads (see the module docs). Not XMP's `exif:GPSTimeStamp`: its
/// `decodeGPSDateTime(data, "Xmp.exif")` wants an `Xmp.exif.GPSDateStamp`, which XMP does not have (the date
/// is inside `exif:GPSTimeStamp`).
const TIMES: [&str; 6] = [
    TIME_GPS_EXIF,
    TIME_MAP_GPS,
    TIME_ORIGINAL,
    TIME_IFD0,
    TIME_GPANO_CREATE,
    TIME_XMP_ORIGINAL,
];

/// The fields the server would report missing for `image` (`location`, `datetime`); empty when it would
/// take it, or when the host did not say where its values came from (the server then decides).
pub fn missing_fields(image: &ImageInfo) -> Vec<&'static str> {
    let Some(sources) = &image.sources else {
        return Vec::new();
    };
    let has =
        |names: &[&str], found: &[SourceName]| found.iter().any(|f| names.contains(&f.as_str()));
    let mut missing = Vec::new();
    if !has(&TIMES, &sources.times) {
        missing.push("datetime");
    }
    let null_island = image.latitude == 0.0 && image.longitude == 0.0;
    if !has(&POSITIONS, &sources.positions) || null_island {
        missing.push("location");
    }
    missing
}

fn is_jpeg_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

fn name_of(image: &ImageInfo) -> &str {
    if image.file_name.is_empty() {
        image.path.as_str()
    } else {
        image.file_name.as_str()
    }
}

/// Why Panoramax would refuse `image`, if it would.
fn refusal_of(image: &ImageInfo) -> Option<String> {
    if !is_jpeg_name(name_of(image)) {
        return Some("not a .jpg/.jpeg file".to_string());
    }
    let missing = missing_fields(image);
    (!missing.is_empty()).then(|| {
        format!(
            "no {} Panoramax reads (HTTP 400, missing_fields {missing:?})",
            missing.join(" or ")
        )
    })
}

/// What Panoramax would take of a sequence, from one pass over its images.
#[derive(Debug)]
pub struct Accepted {
    /// Why it would take none of it ([`refusal`]).
    pub refusal: Option<String>,
    /// A note naming the files left out, when some are (and not all).
    pub left_out: Option<String>,
    /// How many files it would take.
    pub count: usize,
}

/// What Panoramax would take of the sequence whose images are `images`, read a page at a time: the
/// run sends only those ([`is_taken`]), without a copy of the sequence.
pub fn accepted(images: &Images<'_>) -> Result<Accepted, PluginError> {
    let mut pass = Pass::new();
    images.for_each(|image| pass.take(image))?;
    let count = pass.total - pass.refused.len();
    let left_out =
        (!pass.refused.is_empty() && count > 0).then(|| describe(&pass.refused, pass.total));
    Ok(Accepted {
        refusal: pass.refusal(),
        left_out,
        count,
    })
}

/// Whether Panoramax would take `image` (the files [`Accepted::left_out`] names are not taken).
pub fn is_taken(image: &ImageInfo) -> bool {
    refusal_of(image).is_none()
}

/// `Panoramax would refuse 2 of 40 files, left out: a.jpg, b.jpg: no datetime Panoramax reads ...`.
fn describe(refused: &Refusals, total: usize) -> String {
    let parts: Vec<String> = refused
        .groups()
        .iter()
        .map(|group| {
            let more = group.unnamed();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "{} ({}{more}): {}",
                group.count,
                group.names.join(", "),
                group.reason
            )
        })
        .collect();
    format!(
        "Panoramax would refuse {} of {total} files, left out: {}; write GPS position and capture time \
         into their EXIF (e.g. with exiftool) to send them",
        refused.len(),
        parts.join("; ")
    )
}

/// Why Panoramax would refuse `sequence` as a whole, if it would: a projection it does not take, or no
/// file it would take.
pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
    // Counted without copying the sequence: eligibility is asked of every plugin on every inspect and
    // upload, and a copy of 100,000 images is tens of MB.
    let mut pass = Pass::new();
    sequence.images.iter().for_each(|image| pass.take(image));
    pass.refusal()
}

/// [`refusal`] for a sequence whose images are read a page at a time.
pub fn refusal_paged(images: &Images<'_>) -> Result<Option<String>, PluginError> {
    let mut pass = Pass::new();
    images.for_each(|image| pass.take(image))?;
    Ok(pass.refusal())
}

/// One pass over a sequence's images: the first projection Panoramax does not take, and the files it
/// would refuse.
struct Pass {
    unsupported: Option<Projection>,
    refused: Refusals,
    total: usize,
}

impl Pass {
    fn new() -> Pass {
        Pass {
            unsupported: None,
            refused: Refusals::naming(NAMED_FILES),
            total: 0,
        }
    }

    fn take(&mut self, image: &ImageInfo) {
        self.total += 1;
        let taken = matches!(
            image.projection,
            Projection::Flat | Projection::Equirectangular
        );
        if !taken && self.unsupported.is_none() {
            self.unsupported = Some(image.projection.clone());
        }
        if let Some(why) = refusal_of(image) {
            self.refused.add(name_of(image), why);
        }
    }

    fn refusal(self) -> Option<String> {
        if let Some(p) = self.unsupported {
            return Some(format!(
                "projection {} is not accepted by Panoramax (only flat and 360° equirectangular)",
                p.as_str()
            ));
        }
        let total = self.total;
        (total > 0 && self.refused.len() == total).then(|| describe(&self.refused, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sequence::MetadataSources;

    fn image(name: &str, positions: &[&str], times: &[&str]) -> ImageInfo {
        ImageInfo {
            path: format!("/seq/{name}"),
            file_name: name.to_string(),
            size_bytes: 10,
            latitude: 48.1,
            longitude: -1.6,
            altitude: None,
            captured_at_ms: 1_467_927_740_683,
            heading: None,
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            sources: Some(MetadataSources {
                positions: positions.iter().map(|s| SourceName::from(*s)).collect(),
                times: times.iter().map(|s| SourceName::from(*s)).collect(),
                position_used: None,
                time_used: None,
                spread_from_ms: None,
            }),
        }
    }

    #[test]
    fn geopic_tag_reader_rules() {
        use plugin_api::sequence::{TIME_DIGITIZED, TIME_MAP_CAPTURE};
        // EXIF GPS and DateTimeOriginal: taken.
        assert!(missing_fields(&image("a.jpg", &[POSITION_EXIF], &[TIME_ORIGINAL])).is_empty());
        // MTPDU's MAPLatitude is read, its MAPCaptureTime is not; MAPGpsTime is.
        let mtpdu = image("b.jpg", &[POSITION_MAP], &[TIME_MAP_CAPTURE]);
        assert_eq!(missing_fields(&mtpdu), ["datetime"]);
        assert!(missing_fields(&image("c.jpg", &[POSITION_MAP], &[TIME_MAP_GPS])).is_empty());
        // DateTimeDigitized is not read; IFD0 DateTime and XMP GPS are.
        assert_eq!(
            missing_fields(&image("d.jpg", &[POSITION_XMP], &[TIME_DIGITIZED])),
            ["datetime"]
        );
        assert!(missing_fields(&image("e.jpg", &[POSITION_XMP], &[TIME_IFD0])).is_empty());
        assert_eq!(
            missing_fields(&image(
                "f.jpg",
                &[POSITION_EXIF],
                &[plugin_api::sequence::TIME_GPS_XMP]
            )),
            ["datetime"]
        );
        // No sources from the host: the server decides.
        let mut unknown = image("g.jpg", &[], &[]);
        unknown.sources = None;
        assert!(missing_fields(&unknown).is_empty());
    }

    #[test]
    fn refused_files_are_left_out_with_a_note_not_the_sequence() {
        use plugin_api::sequence::TIME_MAP_CAPTURE;
        let mut images: Vec<ImageInfo> = (0..5)
            .map(|i| image(&format!("ok_{i}.jpg"), &[POSITION_EXIF], &[TIME_GPS_EXIF]))
            .collect();
        for i in 0..4 {
            images.push(image(
                &format!("mtpdu_{i}.jpg"),
                &[POSITION_MAP],
                &[TIME_MAP_CAPTURE],
            ));
        }
        let sequence = SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/seq".into(),
            name: "n".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: plugin_api::sequence::SequenceSource::Folder,
            images,
        };
        assert_eq!(refusal(&sequence), None, "eligible: five files are taken");
        let accepted = accepted(&Images::whole(&sequence.images)).unwrap();
        assert_eq!(accepted.count, 5);
        assert_eq!(
            accepted.left_out.unwrap(),
            "Panoramax would refuse 4 of 9 files, left out: 4 (mtpdu_0.jpg, mtpdu_1.jpg, mtpdu_2.jpg \
             and 1 more): no datetime Panoramax reads (HTTP 400, missing_fields [\"datetime\"]); write \
             GPS position and capture time into their EXIF (e.g. with exiftool) to send them"
        );
        let mut all_refused = sequence.clone();
        all_refused
            .images
            .retain(|i| i.file_name.starts_with("mtpdu"));
        assert!(refusal(&all_refused)
            .unwrap()
            .starts_with("Panoramax would refuse 4 of 4 files"));
    }
}
