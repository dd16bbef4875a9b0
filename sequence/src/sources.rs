//! Which tags of a file hold a usable position and capture time ([`MetadataSources`]), recorded during the
//! one reading of the file so that an integration whose server reads the file itself (Panoramax) can
//! predict what it will find without reading the file again.

use exif::{Exif, Tag};
use plugin_api::sequence::{
    MetadataSources, POSITION_EXIF, POSITION_MAP, POSITION_XMP, TIME_DIGITIZED, TIME_GPANO_CREATE,
    TIME_GPS_EXIF, TIME_GPS_XMP, TIME_IFD0, TIME_MAP_CAPTURE, TIME_MAP_GPS, TIME_ORIGINAL,
    TIME_XMP_DIGITIZED, TIME_XMP_ORIGINAL,
};

use crate::capture_time::{exif_time_parses, gps_datetime, xmp_gps_datetime, TimeSource};
use crate::exif_values::{ascii, exif_position, xmp_position};
use crate::model::PositionSource;
use crate::mtpdu::MtpImageDescription;
use crate::xmp::{self, Xmp};

/// What one file holds.
pub(crate) struct FileMetadata<'a> {
    pub exif: Option<&'a Exif>,
    pub xmp: Option<&'a Xmp>,
    /// The XMP packet as text (for GPano properties).
    pub xmp_text: Option<&'a str>,
    pub description: Option<&'a MtpImageDescription>,
}

pub(crate) fn metadata_sources(
    m: &FileMetadata<'_>,
    position_used: Option<PositionSource>,
    time_used: Option<&TimeSource>,
) -> MetadataSources {
    let mut positions = Vec::new();
    if m.exif
        .is_some_and(|e| matches!(exif_position(e), Ok(Some(_))))
    {
        positions.push(POSITION_EXIF);
    }
    if m.xmp.is_some_and(|x| {
        matches!(xmp_position(x), Ok(Some(_)))
            && ["GPSLatitude", "GPSLongitude"]
                .iter()
                .all(|k| x.exif(k).is_some_and(plain_xmp_coordinate))
    }) {
        positions.push(POSITION_XMP);
    }
    if m.description
        .is_some_and(|d| d.latitude.is_some() && d.longitude.is_some())
    {
        positions.push(POSITION_MAP);
    }
    let mut times = Vec::new();
    if let Some(e) = m.exif {
        if gps_datetime(e).is_some() {
            times.push(TIME_GPS_EXIF);
        }
    }
    if m.xmp.and_then(xmp_gps_datetime).is_some() {
        times.push(TIME_GPS_XMP);
    }
    let raw_description = m.exif.and_then(|e| ascii(e, Tag::ImageDescription));
    if raw_description.as_deref().is_some_and(has_map_gps_time) {
        times.push(TIME_MAP_GPS);
    }
    if m.description
        .and_then(MtpImageDescription::capture_time_ms)
        .is_some()
    {
        times.push(TIME_MAP_CAPTURE);
    }
    if let Some(e) = m.exif {
        for (tag, name) in [
            (Tag::DateTimeOriginal, TIME_ORIGINAL),
            (Tag::DateTimeDigitized, TIME_DIGITIZED),
            (Tag::DateTime, TIME_IFD0),
        ] {
            if exif_time_parses(e, tag) {
                times.push(name);
            }
        }
    }
    if let Some(x) = m.xmp {
        for (prop, name) in [
            ("DateTimeOriginal", TIME_XMP_ORIGINAL),
            ("DateTimeDigitized", TIME_XMP_DIGITIZED),
        ] {
            if x.exif(prop).and_then(xmp::date_time).is_some() {
                times.push(name);
            }
        }
    }
    if m.xmp_text
        .and_then(|t| crate::read::xmp_property(t, "SourceImageCreateTime"))
        .is_some_and(|v| !v.is_empty())
    {
        times.push(TIME_GPANO_CREATE);
    }
    MetadataSources {
        positions: positions.into_iter().map(str::to_string).collect(),
        times: times.into_iter().map(str::to_string).collect(),
        position_used: position_used.map(|p| {
            match p {
                PositionSource::Exif => POSITION_EXIF,
                PositionSource::Xmp => POSITION_XMP,
                PositionSource::Mtpdu => POSITION_MAP,
            }
            .to_string()
        }),
        time_used: time_used.map(|t| {
            match t {
                TimeSource::Mtpdu => TIME_MAP_CAPTURE,
                TimeSource::Gps { field, .. } if field.starts_with("XMP") => TIME_GPS_XMP,
                TimeSource::Gps { .. } => TIME_GPS_EXIF,
                TimeSource::Local { field, .. } => match *field {
                    "DateTimeDigitized" => TIME_DIGITIZED,
                    "XMP exif:DateTimeOriginal" => TIME_XMP_ORIGINAL,
                    "XMP exif:DateTimeDigitized" => TIME_XMP_DIGITIZED,
                    _ => TIME_ORIGINAL,
                },
            }
            .to_string()
        }),
    }
}

/// An XMP coordinate written as a number or as three space-separated fractions (`51/1 30/1 0/1`): the
/// forms Panoramax's reader takes (geopic-tag-reader 1.10.1 `reader.py`, `decodeLatLon` with
/// `isValidManyFractions`, then `float`/`Fraction`). Adobe's `51,30.5N`, which mtp and mapillary_tools
/// read, is not one of them: Panoramax finds no position in such a file.
fn plain_xmp_coordinate(v: &str) -> bool {
    let v = v.trim();
    let number = |p: &str| match p.split_once('/') {
        Some((a, b)) => {
            a.trim().parse::<f64>().is_ok() && b.trim().parse::<f64>().is_ok_and(|d| d != 0.0)
        }
        None => p.parse::<f64>().is_ok(),
    };
    let parts: Vec<&str> = v.split(' ').collect();
    (parts.len() == 1 || parts.len() == 3) && parts.iter().all(|p| number(p))
}

/// `MAPGpsTime` as Panoramax's reader parses it: seven integers joined by `_` (geopic-tag-reader 1.10.1,
/// `reader.py`, `getPictureMetadata`).
fn has_map_gps_time(description: &str) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(description) else {
        return false;
    };
    map.get("MAPGpsTime")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| {
            let parts: Vec<&str> = t.split('_').collect();
            parts.len() == 7 && parts.iter().all(|p| p.parse::<i64>().is_ok())
        })
}
