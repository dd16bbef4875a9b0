//! Reading and validating image sequences on disk, and generating synthetic ones.
//!
//! - [`read_sequence`] scans an MTPDU sequence directory or a plain folder of JPEGs into a
//!   [`ScannedSequence`]: metadata, every image with whatever it has, and every [`Problem`].
//! - [`ScannedSequence::to_descriptor`] turns it into the validated
//!   [`SequenceDescriptor`](plugin_api::sequence::SequenceDescriptor) that integrations receive.
//! - [`ScannedSequence::summary`] is what `inspect` prints.
//! - [`generate`] writes synthetic sequences (real JPEGs with EXIF/XMP) for tests, benchmarks and demos.
//! - [`jpeg`] is the marker walker used to read headers without reading image data.
//!
//! # Precedence
//! Sequence metadata: command-line [`Overrides`] > `sequence.toml` > MTPDU sequence log (`<name>.json`) > the
//! values in the images' `ImageDescription` JSON when all images agree > defaults (the directory name, no
//! description, no transport, no tags).
//!
//! Per image: position and capture time come from MTPDU's `ImageDescription` JSON (`MAPLatitude`,
//! `MAPLongitude`, `MAPAltitude`, `MAPCaptureTime`) when present, because that is what MTPDU wrote after its
//! processing (GPS edits, GPX matching); otherwise the position from EXIF (`GPSLatitude`/`GPSLongitude`/
//! `GPSAltitude` with their refs), else XMP (`exif:GPSLatitude="51,30.5N"`), and the capture time by the
//! policy of `docs/capture-time.md`: the GPS date/time when plausible, else `DateTimeOriginal` (+
//! `SubSecTimeOriginal`) at `OffsetTimeOriginal`, else at [`Overrides::time_offset`] / `time_offset` in
//! `sequence.toml`, else at the IANA time zone of the position on that date (one offset per camera), else
//! as UTC with a note. Heading: `GPSImgDirection`, else XMP
//! `PoseHeadingDegrees` or `exif:GPSImgDirection`, else MTPDU's, else the direction of travel `GPSTrack`.
//! Projection: XMP `GPano:ProjectionType`, else `MTPImageProjection`, else flat.
//!
//! # Validation
//! Each [`ProblemKind`] has a [`Severity`]. Blocking, per image: unreadable file, corrupt or truncated JPEG,
//! unparseable EXIF, no GPS, GPS (0, 0), GPS out of range, no capture time, a capture time in the future, a
//! speed above [`validate::MAX_SPEED_KMH`] from the previous accepted image (jumps under
//! [`validate::GPS_NOISE_M`] are ignored); per sequence: mixed projections, unknown transport type. Left out
//! without blocking: a duplicate of the previous photo (within 0.1 m and 5°, as mapillary_tools). Notes: a
//! local time read as UTC for want of any offset, a clock that differs from the GPS time by another offset
//! than the one given. [`ProblemGroup`] reports each kind once with a count and a few file names.

mod camera_clock;
mod capture_time;
mod exif_values;
pub mod generate;
mod grouped;
mod image_list;
pub use plugin_api::jpeg;
mod model;
pub mod mtpdu;
mod photo_uuid;
mod read;
mod read_all;
pub mod scratch;
mod sources;
mod summary;
mod time_zone;
mod tree;
pub mod validate;
mod xmp;

pub use capture_time::{OffsetBasis, TimeOffset, TimeSource, OFFSET_TOLERANCE_MS};
pub use grouped::{describe_skipped, ProblemGroup, NAMED_FILES};
pub use image_list::{ImageList, ImageListWriter, Images};
pub use model::{
    PositionSource, Problem, ProblemKind, ScannedImage, ScannedSequence, SequenceError, Severity,
    SkippedImage,
};
pub use photo_uuid::PhotoUuid;
pub use read::{read_sequence, FolderMetadata, Overrides, FOLDER_METADATA_FILE};
pub use sources::SourceSet;
pub use summary::Summary;
pub use tree::{folder_tree, FolderTree};

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds (one definition, in the plugin API).
pub use plugin_api::time::format_utc;
