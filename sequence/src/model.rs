//! The result of scanning a sequence directory: every image with whatever metadata it has, and every problem
//! found. [`ScannedSequence::to_descriptor`] turns it into the validated [`SequenceDescriptor`] integrations
//! receive.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use plugin_api::sequence::{
    ImageInfo, Projection, SequenceDescriptor, SequenceSource, SEQUENCE_SCHEMA_VERSION,
};
use plugin_api::transport::{TransportType, UnknownTransport};
use serde::{Serialize, Serializer};

use crate::capture_time::TimeSource;
use crate::grouped::{describe_skipped, ProblemGroup};
use crate::image_list::ImageList;
use crate::mtpdu::{MtpImageDescription, PriorUpload, SequenceLog};
use crate::sources::SourceSet;

/// One image as read from disk; fields are `None` when the file does not provide them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedImage {
    /// Absolute path. The file name is its last component ([`ScannedImage::file_name`]): not kept
    /// twice, as a scan of 100,000 images holds every image at once (docs/architecture.md, "Memory").
    pub path: PathBuf,
    /// File size in bytes (0 if unreadable).
    pub size_bytes: u64,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// Altitude in metres.
    pub altitude: Option<f64>,
    /// Capture time, Unix ms UTC.
    pub captured_at_ms: Option<i64>,
    /// Compass heading in degrees.
    pub heading: Option<f64>,
    /// Projection (flat unless the image says otherwise).
    pub projection: Projection,
    /// Pixel width.
    pub width: Option<u32>,
    /// Pixel height.
    pub height: Option<u32>,
    /// MTPDU's `MTPUploaderPhotoUUID`.
    pub photo_uuid: Option<crate::photo_uuid::PhotoUuid>,
    /// The sequence-level fields (`MTPSequence*`, `MTPUploaderSequenceUUID`) and `MTPImageCopy` of the
    /// MTPDU `ImageDescription` JSON, if the image has any; its other fields are read into the fields
    /// above ([`MtpImageDescription::sequence_fields`]). Trimmed, and shared by the images whose fields
    /// are the same (every image of an MTPDU sequence), so that a scan of 100,000 images holds them
    /// once, not 100,000 times (docs/architecture.md, "Memory").
    pub description: Option<std::sync::Arc<MtpImageDescription>>,
    /// Where the capture time came from (`None` when there is none).
    pub time_source: Option<TimeSource>,
    /// Where the position came from (`None` when there is none).
    pub position_source: Option<PositionSource>,
    /// The camera (`Make Model`, and the body serial number when recorded): one clock per camera.
    /// Shared by the images of one camera read one after the other, as `description` is.
    pub camera: Option<std::sync::Arc<str>>,
    /// Which tags hold a position and a capture time (handed to integrations as
    /// [`plugin_api::sequence::MetadataSources`]).
    pub sources: Option<SourceSet>,
}

/// Where an image's position came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionSource {
    /// MTPDU's `MAPLatitude`/`MAPLongitude` in the `ImageDescription` JSON.
    Mtpdu,
    /// EXIF `GPSLatitude`/`GPSLongitude`.
    Exif,
    /// XMP `exif:GPSLatitude`/`exif:GPSLongitude`.
    Xmp,
}

impl ScannedImage {
    pub(crate) fn new(path: PathBuf) -> ScannedImage {
        ScannedImage {
            path,
            size_bytes: 0,
            latitude: None,
            longitude: None,
            altitude: None,
            captured_at_ms: None,
            heading: None,
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            description: None,
            time_source: None,
            position_source: None,
            camera: None,
            sources: None,
        }
    }

    /// The file name: the path's last component (lossily UTF-8, as in the descriptor).
    pub fn file_name(&self) -> std::borrow::Cow<'_, str> {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    }

    /// The position, if both coordinates are present.
    pub fn position(&self) -> Option<(f64, f64)> {
        Some((self.latitude?, self.longitude?))
    }

    /// [`ScannedImage::to_image_info`], moving the strings instead of copying them.
    pub fn into_image_info(self) -> Option<ImageInfo> {
        let (latitude, longitude) = self.position()?;
        let file_name = self.file_name().into_owned();
        Some(ImageInfo {
            path: self
                .path
                .into_os_string()
                .into_string()
                .unwrap_or_else(|p| p.to_string_lossy().into_owned()),
            file_name,
            size_bytes: self.size_bytes,
            latitude,
            longitude,
            altitude: self.altitude,
            captured_at_ms: self.captured_at_ms?,
            heading: self.heading,
            projection: self.projection,
            width: self.width,
            height: self.height,
            photo_uuid: self.photo_uuid.map(|uuid| uuid.to_string()),
            sources: self.sources.map(|s| s.to_metadata_sources()),
        })
    }

    /// The descriptor form, if the required fields (position, capture time) are present. Says nothing about
    /// other problems: use [`ScannedSequence::to_descriptor`] for validated output.
    pub fn to_image_info(&self) -> Option<ImageInfo> {
        self.clone().into_image_info()
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file could not be opened or read.
    Unreadable,
    /// Not a JPEG, or its header is corrupt or truncated, or the file ends before its end-of-image marker.
    CorruptJpeg,
    /// The EXIF segment is present but cannot be parsed.
    CorruptExif,
    /// No GPS position.
    NoGps,
    /// GPS position (0, 0): a camera's placeholder for "no fix".
    ZeroGps,
    /// GPS position out of range or not a number.
    InvalidGps,
    /// No capture time (or one that is not a valid date).
    NoCaptureTime,
    /// A note: the only capture time is a local time without a UTC offset, no GPS time, and no time zone is
    /// known at the position (or there is no position): read as UTC; `--time-offset` gives the offset.
    LocalTimeWithoutOffset,
    /// A note: the local time differs from the GPS time by what looks like a UTC offset other than the one
    /// used; the GPS time is used.
    ClockDiffersFromGps,
    /// A capture time more than a day after now: a wrong camera clock (or a corrupt date).
    FutureCaptureTime,
    /// Within 0.1 m and 5° of the previous image, whatever the times: left out, as mapillary_tools does.
    DuplicatePhoto,
    /// Faster than the speed limit from the previous accepted image.
    ImpossibleSpeed,
    /// The file's path is not valid UTF-8, so integrations (which receive paths as text) could not open it.
    NonUtf8Path,
    /// Sequence-level: images with different projections.
    MixedProjections,
    /// Sequence-level: the metadata names a transport type that does not exist.
    UnknownTransport,
}

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Keeps the image (or the sequence) from uploading until fixed, or until the image is left out with
    /// `--skip-invalid`.
    Blocking,
    /// The image is left out of the upload without asking (a duplicate of the previous photo), as the
    /// official client does; the rest uploads.
    Dropped,
    /// Worth knowing; changes nothing.
    Note,
}

impl ProblemKind {
    /// How much a problem of this kind matters: only blocking problems refuse.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::LocalTimeWithoutOffset | ProblemKind::ClockDiffersFromGps => {
                Severity::Note
            }
            ProblemKind::DuplicatePhoto => Severity::Dropped,
            _ => Severity::Blocking,
        }
    }

    /// The snake_case name (as in `--json`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// `true` for problems of the sequence as a whole rather than of one image.
    pub fn is_sequence_level(self) -> bool {
        matches!(
            self,
            ProblemKind::MixedProjections | ProblemKind::UnknownTransport
        )
    }
}

/// One problem found while scanning a sequence. `Display` names the file and the field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The file concerned: an image, a metadata file, or `None` for the sequence as a whole.
    #[serde(serialize_with = "serialize_opt_path")]
    pub file: Option<PathBuf>,
    /// The field or tag concerned (`GPSLatitude`, `DateTimeOriginal`, `uploader_transport_method`, ...).
    pub field: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Human-readable detail.
    pub message: String,
}

fn serialize_opt_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

impl Problem {
    pub(crate) fn image(
        path: &Path,
        field: &str,
        kind: ProblemKind,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: Some(path.to_path_buf()),
            field: field.to_string(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}: {}: {}", p.display(), self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// An image left out of a descriptor by `skip_invalid`, with the reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedImage {
    /// The image's path.
    pub path: PathBuf,
    /// Why it was skipped.
    pub problems: Vec<Problem>,
}

/// Errors from reading a sequence or building its descriptor. Each names the file (and field) concerned.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// The path is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The scan's scratch file (where it keeps the images it read; `image_list`) could not be
    /// made, written or read.
    #[error("cannot keep the images read in a scratch file in {}: {}", dir.display(), crate::scratch::describe_error(cause))]
    Scratch {
        /// Where scratch files are made (`TMPDIR`).
        dir: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The directory holds no `*.jpg` / `*.jpeg` files.
    #[error("{}: no JPEG images (*.jpg, *.jpeg) found{hint}", dir.display())]
    NoImages {
        /// The directory searched.
        dir: PathBuf,
        /// What to do instead, when the folder is a tree (`; its subfolders ... hold images ...`).
        hint: String,
    },
    /// A metadata file (`sequence.toml`, MTPDU sequence log) is malformed.
    #[error("{}: {field}: {message}", file.display())]
    Metadata {
        /// The metadata file.
        file: PathBuf,
        /// The field or section concerned.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The transport given as an override is not a known transport type.
    #[error("transport override: {0}")]
    UnknownTransport(UnknownTransport),
    /// Validation failed: the blocking problems, grouped by kind when rendered.
    #[error("{}", render_problems(problems))]
    Invalid {
        /// The blocking problems.
        problems: Vec<Problem>,
        /// How many images `skip_invalid` would upload (0: skipping would leave nothing).
        uploadable: usize,
    },
    /// Every image was skipped as invalid.
    #[error("no valid images: all {} were left out ({})", skipped.len(), describe_skipped(skipped).join("; "))]
    NoValidImages {
        /// The skipped images and why.
        skipped: Vec<SkippedImage>,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    let groups = ProblemGroup::group(problems);
    let mut s = format!(
        "{} blocking problem{} ({} kind{}):",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        groups.len(),
        if groups.len() == 1 { "" } else { "s" }
    );
    for g in groups {
        s.push_str("\n  - ");
        s.push_str(&g.to_string());
    }
    s
}

/// A scanned sequence directory: metadata, every image found (sorted by capture time, then file name; images
/// without a time last), and every problem.
#[derive(Debug)]
pub struct ScannedSequence {
    /// Stable identifier (see [`SequenceDescriptor::id`]).
    pub id: String,
    /// The sequence directory (canonical, absolute).
    pub root: PathBuf,
    /// The directory the images were read from (`root` itself, or its `final_nadir/` / `final_raw/`).
    pub image_dir: PathBuf,
    /// MTPDU directory or plain folder.
    pub source: SequenceSource,
    /// The metadata files that were read (MTPDU sequence log, `sequence.toml`).
    pub metadata_files: Vec<PathBuf>,
    /// Sequence name.
    pub name: String,
    /// Sequence description.
    pub description: String,
    /// Transport type, if known and valid.
    pub transport: Option<TransportType>,
    /// Tags.
    pub tags: Vec<String>,
    /// All images found, in the scan's scratch file ([`ImageList`]).
    pub images: ImageList,
    /// All problems: per image (in image order), then sequence-level ones.
    pub problems: Vec<Problem>,
}

impl ScannedSequence {
    /// `true` if there are no blocking problems.
    pub fn is_valid(&self) -> bool {
        !self
            .problems
            .iter()
            .any(|p| p.kind.severity() == Severity::Blocking)
    }

    /// The problems of one image.
    pub fn problems_of<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems
            .iter()
            .filter(move |p| !p.kind.is_sequence_level() && p.file.as_deref() == Some(path))
    }

    /// Images without a per-image problem that keeps them out (blocking, or a dropped duplicate), in order.
    pub fn valid_images(&self) -> impl Iterator<Item = Result<ScannedImage, SequenceError>> + '_ {
        let bad = self.kept_out_paths();
        self.images
            .iter()
            .filter(move |i| i.as_ref().map_or(true, |i| !bad.contains(i.path.as_path())))
    }

    /// The files of the images a per-image problem keeps out (blocking, or a dropped duplicate).
    pub(crate) fn kept_out_paths(&self) -> std::collections::HashSet<&Path> {
        self.keeping_out().map(|(file, _)| file).collect()
    }

    /// The per-image problems that keep their image out (not notes), with its file.
    fn keeping_out(&self) -> impl Iterator<Item = (&Path, &Problem)> {
        self.problems
            .iter()
            .filter(|p| !p.kind.is_sequence_level() && p.kind.severity() != Severity::Note)
            .filter_map(|p| Some((p.file.as_deref()?, p)))
    }

    /// The MTPDU sequence log among [`ScannedSequence::metadata_files`], read again (it is small); `None` for
    /// a plain folder or a log that cannot be read now.
    pub fn mtpdu_log(&self) -> Option<SequenceLog> {
        let path = self.metadata_files.iter().find(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        })?;
        SequenceLog::read(path).ok()
    }

    /// What MTPDU already did with this sequence, per integration id (from its `destination` block).
    pub fn prior_uploads(&self) -> BTreeMap<String, PriorUpload> {
        self.mtpdu_log()
            .map(|log| log.prior_uploads())
            .unwrap_or_default()
    }

    /// Things `inspect` tells the user that are not problems: how an old transport name was read, capture
    /// times spread within their second, what MTPDU already published.
    pub fn notes(&self) -> Result<Vec<String>, SequenceError> {
        let mut notes = Vec::new();
        let log = self.mtpdu_log();
        let written = log
            .as_ref()
            .filter(|l| l.transport_type.is_some() || l.transport_method.is_some())
            .map(|l| {
                (
                    l.transport_type.clone().unwrap_or_default(),
                    l.transport_method.clone(),
                )
            })
            .or_else(|| {
                let t = self
                    .images
                    .iter()
                    .find_map(|i| i.ok()?.description.as_ref()?.sequence_transport.clone())?;
                Some(match t.split_once('-') {
                    Some((p, c)) => (p.to_string(), Some(c.to_string())),
                    None => (t, None),
                })
            });
        if let Some((parent, child)) = written {
            let mapped = TransportType::from_parts(&parent, child.as_deref()).ok();
            if mapped.is_some() && mapped == self.transport {
                notes.extend(plugin_api::transport::legacy_2020_mapping(
                    &parent,
                    child.as_deref(),
                ));
            }
        }
        let (mut failed, mut spread) = (None, crate::validate::SpreadCount::default());
        notes.extend(crate::camera_clock::zone_notes(
            until_error(self.valid_images(), &mut failed)
                .inspect(|image| spread.add(image.captured_at_ms)),
        ));
        if let Some(e) = failed {
            return Err(e);
        }
        let spread = spread.count;
        if spread > 0 {
            notes.push(format!(
                "{spread} images share whole-second capture times with a neighbour (a time-lapse faster than 1 frame/s); their times are spread evenly within the second, as mapillary_tools does"
            ));
        }
        for (id, prior) in self.prior_uploads() {
            let action = if prior.published {
                format!("mtp upload skips {id} for it unless you pass --force")
            } else {
                String::new()
            };
            notes.push(
                format!(
                    "{}{}{action}",
                    prior.what,
                    if action.is_empty() { "" } else { "; " }
                )
                .trim_end()
                .to_string(),
            );
        }
        Ok(notes)
    }

    /// Builds the validated descriptor.
    ///
    /// Notes never keep an image out. Dropped images (duplicates of the previous photo) are always left out
    /// and listed in the returned skipped images. Without `skip_invalid`, any blocking problem is an error
    /// listing them (with how many images skipping would leave). With it, every image that has a blocking
    /// problem is left out too; sequence-level problems are handled so:
    /// - mixed projections: the images of the majority projection among the remaining images are kept (on a
    ///   tie, the projection of the earliest image) and the others are skipped;
    /// - an unknown transport type cannot be fixed by skipping images and stays an error.
    ///
    /// Equal capture times of kept images are spread within their second
    /// ([`crate::validate::spread_equal_times`]), so every image has a distinct time.
    ///
    /// Skipping never creates a new impossible-speed pair (see the crate docs), so the result is consistent.
    pub fn to_descriptor(
        &self,
        skip_invalid: bool,
    ) -> Result<(SequenceDescriptor, Vec<SkippedImage>), SequenceError> {
        let mut images = Vec::new();
        let (header, skipped) =
            self.descriptor_pages(skip_invalid, usize::MAX, |page| images.extend(page))?;
        Ok((SequenceDescriptor { images, ..header }, skipped))
    }

    /// [`ScannedSequence::to_descriptor`] handing the images to `page`, `page_len` at a time in
    /// capture order (the last page may be shorter), instead of in the descriptor, whose `images`
    /// are then empty. The images are read from the scan's file as they go, so a caller that keeps
    /// each page in a smaller form never holds every image (docs/architecture.md, "Memory").
    pub fn descriptor_pages(
        &self,
        skip_invalid: bool,
        page_len: usize,
        mut page: impl FnMut(Vec<ImageInfo>),
    ) -> Result<(SequenceDescriptor, Vec<SkippedImage>), SequenceError> {
        let (keep, skipped) = self.selection(skip_invalid)?;
        let page_len = page_len.max(1);
        let mut failed = None;
        let kept = until_error(self.images.iter(), &mut failed)
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .filter_map(|(image, _)| image.into_image_info())
            .map(|info| {
                let t = info.captured_at_ms;
                (info, Some(t))
            });
        // Equal capture times of kept images are spread within their second, a run at a time.
        let mut current = Vec::new();
        for (info, spread_ms) in crate::validate::Spread::new(kept) {
            current.push(spread_to(info, spread_ms));
            if current.len() == page_len {
                page(std::mem::take(&mut current));
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !current.is_empty() {
            page(current);
        }
        Ok((self.header(), skipped))
    }

    /// The descriptor of this sequence without its images.
    fn header(&self) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: SEQUENCE_SCHEMA_VERSION,
            id: self.id.clone(),
            root: self.root.to_string_lossy().into_owned(),
            name: self.name.clone(),
            description: self.description.clone(),
            transport: self.transport.clone(),
            tags: self.tags.clone(),
            source: self.source,
            images: Vec::new(),
        }
    }

    /// Which images the descriptor keeps (one flag an image, in order) and which it leaves out, why.
    fn selection(
        &self,
        skip_invalid: bool,
    ) -> Result<(Vec<bool>, Vec<SkippedImage>), SequenceError> {
        let blocking: Vec<Problem> = self
            .problems
            .iter()
            .filter(|p| p.kind.severity() == Severity::Blocking)
            .cloned()
            .collect();
        let transport: Vec<Problem> = blocking
            .iter()
            .filter(|p| p.kind == ProblemKind::UnknownTransport)
            .cloned()
            .collect();
        if !transport.is_empty() {
            return Err(SequenceError::Invalid {
                problems: transport,
                uploadable: 0,
            });
        }
        let mut kept_out: BTreeMap<&Path, Vec<Problem>> = BTreeMap::new();
        for (file, p) in self.keeping_out() {
            kept_out.entry(file).or_default().push(p.clone());
        }

        let mut skipped = Vec::new();
        let mut keep = Vec::with_capacity(self.images.len());
        let mut projections = crate::validate::ProjectionCount::default();
        for img in self.images.iter() {
            let img = img?;
            let problems = kept_out.get(img.path.as_path());
            if img.position().is_some() && img.captured_at_ms.is_some() && problems.is_none() {
                projections.add(&img.projection);
                keep.push(true);
            } else {
                keep.push(false);
                skipped.push(SkippedImage {
                    problems: problems.cloned().unwrap_or_default(),
                    path: img.path,
                });
            }
        }

        if let Some(majority) = projections.majority() {
            let counts = describe_counts(projections.counts());
            for (img, keep) in self.images.iter().zip(keep.iter_mut()) {
                let img = img?;
                if !*keep || img.projection == majority {
                    continue;
                }
                *keep = false;
                let problem = Problem::image(
                    &img.path,
                    "projection",
                    ProblemKind::MixedProjections,
                    format!(
                        "{} image in a sequence of mostly {} images ({counts})",
                        img.projection, majority,
                    ),
                );
                skipped.push(SkippedImage {
                    path: img.path,
                    problems: vec![problem],
                });
            }
        }
        let uploadable = keep.iter().filter(|k| **k).count();

        if !skip_invalid && !blocking.is_empty() {
            return Err(SequenceError::Invalid {
                problems: blocking,
                uploadable,
            });
        }
        if uploadable == 0 {
            return Err(SequenceError::NoValidImages { skipped });
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((keep, skipped))
    }
}

/// The images of `images` up to the first that could not be read back, whose error is kept in
/// `failed` for the caller to return after the pass.
pub(crate) fn until_error<'a>(
    images: impl Iterator<Item = Result<ScannedImage, SequenceError>> + 'a,
    failed: &'a mut Option<SequenceError>,
) -> impl Iterator<Item = ScannedImage> + 'a {
    images.map_while(move |image| match image {
        Ok(image) => Some(image),
        Err(e) => {
            *failed = Some(e);
            None
        }
    })
}

/// `image` at its spread capture time `spread_ms` (its own when `None`); where that moved it, its
/// sources keep the file's own time.
fn spread_to(mut image: ImageInfo, spread_ms: Option<i64>) -> ImageInfo {
    let spread_ms = spread_ms.unwrap_or(image.captured_at_ms);
    if spread_ms != image.captured_at_ms {
        if let Some(sources) = image.sources.as_mut() {
            sources.spread_from_ms = Some(image.captured_at_ms);
        }
        image.captured_at_ms = spread_ms;
    }
    image
}

pub(crate) fn describe_counts(counts: &BTreeMap<Projection, usize>) -> String {
    let mut v: Vec<(&Projection, &usize)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(p, n)| format!("{n} {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}
