//! The sequence model every integration receives: a validated image sequence, serialised as JSON across the
//! plugin ABI.
//!
//! A [`SequenceDescriptor`] only ever contains images that passed validation, so every [`ImageInfo`] has a
//! position and a capture time. Optional fields carry `#[serde(default)]` and unknown fields are ignored, so a
//! document written by an older or newer host still parses; [`SEQUENCE_SCHEMA_VERSION`] changes only when a
//! field changes meaning.
//!
//! ```
//! use plugin_api::sequence::{ImageInfo, Projection, SequenceDescriptor, SequenceSource};
//!
//! let json = r#"{
//!   "schema": 1, "id": "67dda928-e948-4079-ac03-89288980130e", "root": "/home/me/MTP/sequences/ride",
//!   "name": "Morning ride", "transport": {"parent": "Earth", "child": "Bicycle"}, "source": "mtpdu",
//!   "images": [
//!     {"path": "/home/me/MTP/sequences/ride/final_raw/a.jpg", "latitude": 52.25, "longitude": 6.78,
//!      "captured_at_ms": 1589093103000, "projection": "equirectangular"},
//!     {"path": "/home/me/MTP/sequences/ride/final_raw/b.jpg", "latitude": 52.26, "longitude": 6.79,
//!      "captured_at_ms": 1589093104000, "a_field_from_the_future": true}
//!   ]
//! }"#;
//! let seq: SequenceDescriptor = serde_json::from_str(json)?;
//! assert_eq!(seq.source, SequenceSource::Mtpdu);
//! assert_eq!(seq.images[1].projection, Projection::Flat);
//! assert_eq!(seq.first_capture_ms(), Some(1589093103000));
//! assert_eq!(seq.duration_ms(), Some(1000));
//! assert_eq!(seq.projections(), vec![Projection::Equirectangular, Projection::Flat]);
//! let bbox = seq.bbox().unwrap();
//! assert_eq!((bbox.min_lat, bbox.max_lon), (52.25, 6.79));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::transport::TransportType;

/// The schema version written into [`SequenceDescriptor::schema`] by this version of the crate.
pub const SEQUENCE_SCHEMA_VERSION: u32 = 1;

fn default_schema() -> u32 {
    SEQUENCE_SCHEMA_VERSION
}

/// Where a sequence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SequenceSource {
    /// An MTP Desktop Uploader sequence directory (`<name>/<name>.json` plus `final_raw/` or `final_nadir/`).
    Mtpdu,
    /// A plain folder of JPEGs, optionally with a `sequence.toml`.
    #[default]
    Folder,
    /// A source written by a newer version that this version does not know.
    #[serde(other)]
    Unknown,
}

impl fmt::Display for SequenceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SequenceSource::Mtpdu => "mtpdu",
            SequenceSource::Folder => "folder",
            SequenceSource::Unknown => "unknown",
        })
    }
}

/// An image projection, serialised as a lowercase string (`"flat"`, `"equirectangular"`, or any other
/// GPano projection name such as `"cylindrical"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Projection {
    /// An ordinary (non-360) image.
    #[default]
    Flat,
    /// A 360° equirectangular panorama.
    Equirectangular,
    /// Any other projection, lower-cased (e.g. `cylindrical`).
    Other(String),
}

impl Projection {
    /// Parses a projection name case-insensitively. An empty name means [`Projection::Flat`] (MTPDU writes `""`
    /// for flat images in its sequence log).
    ///
    /// ```
    /// use plugin_api::sequence::Projection;
    /// assert_eq!(Projection::parse("Equirectangular"), Projection::Equirectangular);
    /// assert_eq!(Projection::parse(""), Projection::Flat);
    /// assert_eq!(Projection::parse("cylindrical").as_str(), "cylindrical");
    /// ```
    pub fn parse(s: &str) -> Projection {
        let s = s.trim().to_lowercase();
        match s.as_str() {
            "" | "flat" => Projection::Flat,
            "equirectangular" => Projection::Equirectangular,
            _ => Projection::Other(s),
        }
    }

    /// The lowercase name.
    pub fn as_str(&self) -> &str {
        match self {
            Projection::Flat => "flat",
            Projection::Equirectangular => "equirectangular",
            Projection::Other(s) => s,
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Projection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Projection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Projection::parse(&s))
    }
}

/// One validated image of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Absolute path of the file.
    pub path: String,
    /// The file name (last path component).
    #[serde(default)]
    pub file_name: String,
    /// File size in bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// WGS 84 latitude in degrees.
    pub latitude: f64,
    /// WGS 84 longitude in degrees.
    pub longitude: f64,
    /// Altitude in metres above sea level, if known.
    #[serde(default)]
    pub altitude: Option<f64>,
    /// Capture time, Unix milliseconds, UTC.
    pub captured_at_ms: i64,
    /// Compass heading in degrees (0–360, true north when known), if known.
    #[serde(default)]
    pub heading: Option<f64>,
    /// Image projection.
    #[serde(default)]
    pub projection: Projection,
    /// Pixel width, if known.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixel height, if known.
    #[serde(default)]
    pub height: Option<u32>,
    /// MTPDU's `MTPUploaderPhotoUUID`, if the image has one.
    #[serde(default)]
    pub photo_uuid: Option<String>,
    /// Which tags of the file hold a position and a capture time, as the host's reader found them (`None`
    /// from a host that does not say). A service that reads the file itself (Panoramax) predicts from it
    /// what it will find, without reading the file again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<MetadataSources>,
}

/// Which tags of a file hold a usable (parseable) position and capture time, whichever the host used.
/// Names are stable strings (the `POSITION_*` and `TIME_*` constants) so that a name added later does not
/// break an older plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataSources {
    /// Tags holding a position: [`POSITION_EXIF`], [`POSITION_XMP`], [`POSITION_MAP`].
    #[serde(default)]
    pub positions: Vec<SourceName>,
    /// Tags holding a capture time: the `TIME_*` constants.
    #[serde(default)]
    pub times: Vec<SourceName>,
    /// The one the host used for the position.
    #[serde(default)]
    pub position_used: Option<SourceName>,
    /// The one the host used for the capture time.
    #[serde(default)]
    pub time_used: Option<SourceName>,
    /// The capture time the file itself gives (Unix ms, UTC), set only when the host moved it: equal
    /// whole-second times of neighbours are spread within their second (as mapillary_tools does), so
    /// `captured_at_ms` differs from the file. A service that reads the time from the file (Panoramax)
    /// needs the spread time sent with the file to keep the capture order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_from_ms: Option<i64>,
}

/// EXIF `GPSLatitude`/`GPSLongitude`.
pub const POSITION_EXIF: &str = "exif_gps";
/// XMP `exif:GPSLatitude`/`exif:GPSLongitude`.
pub const POSITION_XMP: &str = "xmp_gps";
/// `MAPLatitude`/`MAPLongitude` in the `ImageDescription` JSON (MTPDU, mapillary_tools).
pub const POSITION_MAP: &str = "map_lat_lon";
/// EXIF `GPSDateStamp` + `GPSTimeStamp` (whether or not plausible).
pub const TIME_GPS_EXIF: &str = "gps_exif";
/// XMP `exif:GPSTimeStamp`.
pub const TIME_GPS_XMP: &str = "gps_xmp";
/// `MAPGpsTime` in the `ImageDescription` JSON.
pub const TIME_MAP_GPS: &str = "map_gps_time";
/// `MAPCaptureTime` in the `ImageDescription` JSON.
pub const TIME_MAP_CAPTURE: &str = "map_capture_time";
/// EXIF `DateTimeOriginal`.
pub const TIME_ORIGINAL: &str = "date_time_original";
/// EXIF `DateTimeDigitized`.
pub const TIME_DIGITIZED: &str = "date_time_digitized";
/// IFD0 `DateTime` (the time of the last edit; mtp does not use it, Panoramax does).
pub const TIME_IFD0: &str = "date_time";
/// XMP `exif:DateTimeOriginal`.
pub const TIME_XMP_ORIGINAL: &str = "xmp_date_time_original";
/// XMP `exif:DateTimeDigitized`.
pub const TIME_XMP_DIGITIZED: &str = "xmp_date_time_digitized";
/// XMP `GPano:SourceImageCreateTime`.
pub const TIME_GPANO_CREATE: &str = "gpano_source_image_create_time";

/// Every position tag name, in the order a host lists them in [`MetadataSources::positions`].
pub const POSITION_SOURCES: [&str; 3] = [POSITION_EXIF, POSITION_XMP, POSITION_MAP];

/// Every capture-time tag name, in the order a host lists them in [`MetadataSources::times`].
pub const TIME_SOURCES: [&str; 10] = [
    TIME_GPS_EXIF,
    TIME_GPS_XMP,
    TIME_MAP_GPS,
    TIME_MAP_CAPTURE,
    TIME_ORIGINAL,
    TIME_DIGITIZED,
    TIME_IFD0,
    TIME_XMP_ORIGINAL,
    TIME_XMP_DIGITIZED,
    TIME_GPANO_CREATE,
];

/// The name of a metadata source in [`MetadataSources`] ([`POSITION_EXIF`], [`TIME_ORIGINAL`], ...).
/// A string on the wire; in memory, a name this crate knows costs no allocation (a sequence of 100,000
/// images names four to six per image: as `String`s they were 28 MB on each side of the boundary), and
/// any other is kept as read ([`POSITION_SOURCES`], [`TIME_SOURCES`]). It reads as a `&str`:
///
/// ```
/// use plugin_api::sequence::{SourceName, POSITION_EXIF};
/// let name = SourceName::from("exif_gps");
/// assert_eq!(name, POSITION_EXIF);
/// assert_eq!(name.as_str(), "exif_gps");
/// assert!(name.starts_with("exif"));
/// assert_eq!(serde_json::to_string(&name).unwrap(), "\"exif_gps\"");
/// let newer: SourceName = serde_json::from_str("\"a_name_from_the_future\"").unwrap();
/// assert_eq!(newer, "a_name_from_the_future");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceName(std::borrow::Cow<'static, str>);

impl SourceName {
    /// A name given as a constant.
    pub const fn from_static(name: &'static str) -> SourceName {
        SourceName(std::borrow::Cow::Borrowed(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn known(name: &str) -> Option<SourceName> {
        POSITION_SOURCES
            .iter()
            .chain(&TIME_SOURCES)
            .find(|known| **known == name)
            .map(|known| SourceName::from_static(known))
    }
}

impl std::ops::Deref for SourceName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SourceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SourceName {
    fn from(name: &str) -> SourceName {
        SourceName::known(name)
            .unwrap_or_else(|| SourceName(std::borrow::Cow::Owned(name.to_string())))
    }
}

impl From<String> for SourceName {
    fn from(name: String) -> SourceName {
        SourceName::known(&name).unwrap_or(SourceName(std::borrow::Cow::Owned(name)))
    }
}

impl PartialEq<str> for SourceName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SourceName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SourceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = SourceName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metadata source name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<SourceName, E> {
                Ok(SourceName::from(name))
            }
            fn visit_string<E: serde::de::Error>(self, name: String) -> Result<SourceName, E> {
                Ok(SourceName::from(name))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A latitude/longitude bounding box in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Southern edge.
    pub min_lat: f64,
    /// Western edge.
    pub min_lon: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Eastern edge.
    pub max_lon: f64,
}

impl BoundingBox {
    /// The smallest box containing every `(latitude, longitude)` point, or `None` for no points.
    ///
    /// Does not handle sequences crossing the antimeridian specially (the box then spans the globe's width).
    pub fn from_points(points: impl IntoIterator<Item = (f64, f64)>) -> Option<BoundingBox> {
        let mut it = points.into_iter();
        let (lat, lon) = it.next()?;
        let mut b = BoundingBox {
            min_lat: lat,
            min_lon: lon,
            max_lat: lat,
            max_lon: lon,
        };
        for (lat, lon) in it {
            b.min_lat = b.min_lat.min(lat);
            b.min_lon = b.min_lon.min(lon);
            b.max_lat = b.max_lat.max(lat);
            b.max_lon = b.max_lon.max(lon);
        }
        Some(b)
    }
}

/// Great-circle distance in metres between two points given in degrees (haversine, mean Earth radius).
///
/// ```
/// use plugin_api::sequence::haversine_m;
/// let d = haversine_m(51.5007, -0.1246, 40.6892, -74.0445); // Big Ben to the Statue of Liberty
/// assert!((d - 5_574_840.0).abs() < 5_000.0);
/// ```
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// A validated image sequence, as handed to every integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDescriptor {
    /// Schema version of this document ([`SEQUENCE_SCHEMA_VERSION`] when written by this version).
    #[serde(default = "default_schema")]
    pub schema: u32,
    /// Stable identifier: MTPDU's sequence UUID when there is one, else a stable hash of the directory's
    /// canonical path.
    pub id: String,
    /// The sequence directory (absolute).
    pub root: String,
    /// Sequence name.
    #[serde(default)]
    pub name: String,
    /// Sequence description (may be empty).
    #[serde(default)]
    pub description: String,
    /// Transport type, if known.
    #[serde(default)]
    pub transport: Option<TransportType>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the sequence came from.
    #[serde(default)]
    pub source: SequenceSource,
    /// The images, in capture order (ties broken by file name).
    #[serde(default)]
    pub images: Vec<ImageInfo>,
}

impl SequenceDescriptor {
    /// This descriptor without its images (what a paged request carries; see
    /// [`crate::protocol::PagedSequence`]). Written field by field so that a new field cannot be missed.
    pub fn header(&self) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: self.schema,
            id: self.id.clone(),
            root: self.root.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            transport: self.transport.clone(),
            tags: self.tags.clone(),
            source: self.source,
            images: Vec::new(),
        }
    }

    /// Capture time of the earliest image (Unix ms, UTC).
    pub fn first_capture_ms(&self) -> Option<i64> {
        self.images.iter().map(|i| i.captured_at_ms).min()
    }

    /// Capture time of the latest image (Unix ms, UTC).
    pub fn last_capture_ms(&self) -> Option<i64> {
        self.images.iter().map(|i| i.captured_at_ms).max()
    }

    /// Time between the first and last capture, in milliseconds.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.last_capture_ms()? - self.first_capture_ms()?)
    }

    /// Bounding box of all image positions.
    pub fn bbox(&self) -> Option<BoundingBox> {
        BoundingBox::from_points(self.images.iter().map(|i| (i.latitude, i.longitude)))
    }

    /// Sum of the image file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.images.iter().map(|i| i.size_bytes).sum()
    }

    /// Length of the path through the images in order, in metres (haversine).
    pub fn length_m(&self) -> f64 {
        self.images
            .windows(2)
            .map(|w| haversine_m(w[0].latitude, w[0].longitude, w[1].latitude, w[1].longitude))
            // `sum` of nothing would be -0.0.
            .fold(0.0, |a, b| a + b)
    }

    /// The distinct projections present, in order of first appearance.
    pub fn projections(&self) -> Vec<Projection> {
        let mut out: Vec<Projection> = Vec::new();
        for i in &self.images {
            if !out.contains(&i.projection) {
                out.push(i.projection.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, lat: f64, lon: f64, t: i64) -> ImageInfo {
        ImageInfo {
            path: format!("/seq/{name}"),
            file_name: name.to_string(),
            size_bytes: 10,
            latitude: lat,
            longitude: lon,
            altitude: Some(3.5),
            captured_at_ms: t,
            heading: Some(90.0),
            projection: Projection::Flat,
            width: Some(64),
            height: Some(32),
            photo_uuid: None,
            sources: None,
        }
    }

    #[test]
    fn round_trip_and_helpers() {
        let d = SequenceDescriptor {
            schema: SEQUENCE_SCHEMA_VERSION,
            id: "x".into(),
            root: "/seq".into(),
            name: "n".into(),
            description: String::new(),
            transport: TransportType::parse("Walk").ok(),
            tags: vec!["a".into()],
            source: SequenceSource::Folder,
            images: vec![
                image("a.jpg", 0.0, 1.0, 1000),
                image("b.jpg", 0.0, 1.001, 3000),
            ],
        };
        let j = serde_json::to_string(&d).unwrap();
        let back: SequenceDescriptor = serde_json::from_str(&j).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.total_bytes(), 20);
        assert_eq!(d.duration_ms(), Some(2000));
        assert!((d.length_m() - 111.2).abs() < 0.5, "{}", d.length_m());
        assert_eq!(d.projections(), vec![Projection::Flat]);
    }

    #[test]
    fn projection_serde() {
        for (s, p) in [
            ("\"flat\"", Projection::Flat),
            ("\"EQUIRECTANGULAR\"", Projection::Equirectangular),
            ("\"Cylindrical\"", Projection::Other("cylindrical".into())),
        ] {
            assert_eq!(serde_json::from_str::<Projection>(s).unwrap(), p);
        }
        assert_eq!(
            serde_json::to_string(&Projection::Equirectangular).unwrap(),
            "\"equirectangular\""
        );
        assert_eq!(
            serde_json::to_string(&Projection::Other("cubemap".into())).unwrap(),
            "\"cubemap\""
        );
    }

    #[test]
    fn older_and_newer_documents_parse() {
        let minimal = r#"{"id":"i","root":"/r","images":[{"path":"/r/a.jpg","latitude":1,"longitude":2,"captured_at_ms":3}]}"#;
        let d: SequenceDescriptor = serde_json::from_str(minimal).unwrap();
        assert_eq!(d.schema, SEQUENCE_SCHEMA_VERSION);
        assert_eq!(d.source, SequenceSource::Folder);
        assert_eq!(d.images[0].projection, Projection::Flat);
        let newer =
            r#"{"schema":2,"id":"i","root":"/r","source":"phone-app","new":{"x":1},"images":[]}"#;
        let d: SequenceDescriptor = serde_json::from_str(newer).unwrap();
        assert_eq!(d.source, SequenceSource::Unknown);
        assert_eq!(d.schema, 2);
        assert_eq!(d.bbox(), None);
        assert_eq!(d.first_capture_ms(), None);
    }
}
