//! Which tags of a file hold a usable position and capture time ([`MetadataSources`]), recorded during the
//! one reading of the file so that an integration whose server reads the file itself (Panoramax) can
//! predict what it will find without reading the file again.

use exif::{Exif, Tag};
use plugin_api::sequence::{
    MetadataSources, SourceName, POSITION_EXIF, POSITION_MAP, POSITION_XMP, TIME_DIGITIZED,
    TIME_GPANO_CREATE, TIME_GPS_EXIF, TIME_GPS_XMP, TIME_IFD0, TIME_MAP_CAPTURE, TIME_MAP_GPS,
    TIME_ORIGINAL, TIME_XMP_DIGITIZED, TIME_XMP_ORIGINAL,
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

/// The position tags, in the order [`MetadataSources::positions`] lists them.
const POSITIONS: [&str; 3] = plugin_api::sequence::POSITION_SOURCES;
/// The time tags, in the order [`MetadataSources::times`] lists them.
const TIMES: [&str; 10] = plugin_api::sequence::TIME_SOURCES;

/// [`MetadataSources`] in 6 bytes: every name is one of a few constants, so a scan of 100,000 images
/// keeps bits, not 600,000 small strings; [`SourceSet::to_metadata_sources`] spells them out when the
/// descriptor is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceSet {
    positions: u8,
    times: u16,
    position_used: Option<u8>,
    time_used: Option<u8>,
}

impl SourceSet {
    fn of(
        positions: &[&str],
        times: &[&str],
        position_used: Option<&str>,
        time_used: Option<&str>,
    ) -> SourceSet {
        let bits = |names: &[&str], table: &[&str]| {
            names.iter().fold(0u16, |b, n| {
                b | table.iter().position(|t| t == n).map_or(0, |i| 1 << i)
            })
        };
        let index =
            |name: &str, table: &[&str]| table.iter().position(|t| *t == name).map(|i| i as u8);
        SourceSet {
            positions: bits(positions, &POSITIONS) as u8,
            times: bits(times, &TIMES),
            position_used: position_used.and_then(|n| index(n, &POSITIONS)),
            time_used: time_used.and_then(|n| index(n, &TIMES)),
        }
    }

    /// The set in 5 bytes, for a scan's scratch file ([`SourceSet::from_bits`] reads them back).
    pub(crate) fn to_bits(self) -> [u8; 5] {
        let [t0, t1] = self.times.to_le_bytes();
        let index = |i: Option<u8>| i.unwrap_or(u8::MAX);
        [
            self.positions,
            t0,
            t1,
            index(self.position_used),
            index(self.time_used),
        ]
    }

    /// The set [`SourceSet::to_bits`] wrote.
    pub(crate) fn from_bits(bits: [u8; 5]) -> SourceSet {
        let index = |i: u8| (i != u8::MAX).then_some(i);
        SourceSet {
            positions: bits[0],
            times: u16::from_le_bytes([bits[1], bits[2]]),
            position_used: index(bits[3]),
            time_used: index(bits[4]),
        }
    }

    /// The names, as integrations receive them.
    pub fn to_metadata_sources(&self) -> MetadataSources {
        let names = |bits: u16, table: &[&'static str]| {
            table
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, n)| SourceName::from_static(n))
                .collect()
        };
        let name = |i: Option<u8>, table: &[&'static str]| {
            i.and_then(|i| table.get(usize::from(i)))
                .map(|n| SourceName::from_static(n))
        };
        MetadataSources {
            positions: names(u16::from(self.positions), &POSITIONS),
            times: names(self.times, &TIMES),
            position_used: name(self.position_used, &POSITIONS),
            time_used: name(self.time_used, &TIMES),
            spread_from_ms: None,
        }
    }
}

pub(crate) fn metadata_sources(
    m: &FileMetadata<'_>,
    position_used: Option<PositionSource>,
    time_used: Option<&TimeSource>,
) -> SourceSet {
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
    SourceSet::of(
        &positions,
        &times,
        position_used.map(|p| match p {
            PositionSource::Exif => POSITION_EXIF,
            PositionSource::Xmp => POSITION_XMP,
            PositionSource::Mtpdu => POSITION_MAP,
        }),
        time_used.map(|t| match t {
            TimeSource::Mtpdu => TIME_MAP_CAPTURE,
            TimeSource::Gps { field, .. } if field.starts_with("XMP") => TIME_GPS_XMP,
            TimeSource::Gps { .. } => TIME_GPS_EXIF,
            TimeSource::Local { field, .. } => match *field {
                "DateTimeDigitized" => TIME_DIGITIZED,
                "XMP exif:DateTimeOriginal" => TIME_XMP_ORIGINAL,
                "XMP exif:DateTimeDigitized" => TIME_XMP_DIGITIZED,
                _ => TIME_ORIGINAL,
            },
        }),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_spells_out_the_names_in_their_order() {
        let set = SourceSet::of(
            &[POSITION_EXIF, POSITION_MAP],
            &[TIME_GPS_EXIF, TIME_ORIGINAL, TIME_GPANO_CREATE],
            Some(POSITION_MAP),
            Some(TIME_ORIGINAL),
        );
        assert_eq!(
            set.to_metadata_sources(),
            MetadataSources {
                positions: vec![POSITION_EXIF.into(), POSITION_MAP.into()],
                times: vec![
                    TIME_GPS_EXIF.into(),
                    TIME_ORIGINAL.into(),
                    TIME_GPANO_CREATE.into()
                ],
                position_used: Some(POSITION_MAP.into()),
                time_used: Some(TIME_ORIGINAL.into()),
                spread_from_ms: None,
            }
        );
        assert_eq!(
            SourceSet::default().to_metadata_sources(),
            MetadataSources::default()
        );
    }
}
