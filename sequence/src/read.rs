//! Reading a sequence directory: layout detection, metadata files, and per-image headers.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use exif::Tag;
use plugin_api::sequence::{Projection, SequenceSource};
use plugin_api::transport::TransportType;
use serde::{Deserialize, Serialize};

use crate::capture_time::{capture_time, TimeOffset, TimeSource};
use crate::exif_values::{ascii, exif_position, first_f64, first_u32, xmp_position};
use crate::model::{
    PositionSource, Problem, ProblemKind, ScannedImage, ScannedSequence, SequenceError,
};
use crate::mtpdu::{MtpImageDescription, SequenceLog};
use crate::validate;
use crate::xmp::{self, Xmp};
use plugin_api::jpeg::{self, marker, SegmentReader, EXIF_ID, XMP_ID};

/// Values given on the command line; each one that is set beats every metadata source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Sequence name.
    pub name: Option<String>,
    /// Sequence description.
    pub description: Option<String>,
    /// Transport type, in any spelling [`TransportType::parse`] accepts; an unknown one is an error.
    pub transport: Option<String>,
    /// Tags; when non-empty they replace the metadata's tags.
    pub tags: Vec<String>,
    /// The camera clock's UTC offset, for local capture times the files record without one (see
    /// [`TimeOffset`]); beats `time_offset` in `sequence.toml`.
    pub time_offset: Option<TimeOffset>,
}

/// The optional `sequence.toml` of a plain folder (also honoured in an MTPDU directory, where it beats the
/// sequence log). Unknown keys are rejected so that typos do not pass silently.
///
/// ```toml
/// name = "Morning ride"
/// description = "Along the canal"
/// transport = "Earth/Bicycle"   # or "Bicycle", "Earth-Bicycle"
/// tags = ["canal", "commute"]   # or "canal, commute"
/// time_offset = "+02:00"        # the camera clock's UTC offset, for local times without one
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderMetadata {
    /// Sequence name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sequence description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Transport type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Tags.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "tags_list_or_csv"
    )]
    pub tags: Option<Vec<String>>,
    /// UTC offset of the camera clock (`+02:00`, `-05:30`, `UTC`), for local capture times without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_offset: Option<String>,
}

/// File name of the plain-folder metadata file.
pub const FOLDER_METADATA_FILE: &str = "sequence.toml";

fn tags_list_or_csv<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Csv(String),
    }
    Ok(Some(match Tags::deserialize(d)? {
        Tags::List(v) => v,
        Tags::Csv(s) => s.split(',').map(str::to_string).collect(),
    }))
}

impl FolderMetadata {
    /// The parsed `time_offset`; `Err` names the file and key.
    pub fn parsed_time_offset(&self, file: &Path) -> Result<Option<TimeOffset>, SequenceError> {
        self.time_offset
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|message| SequenceError::Metadata {
                file: file.to_path_buf(),
                field: "time_offset".to_string(),
                message,
            })
    }

    /// Reads and parses a `sequence.toml`.
    pub fn read(path: &Path) -> Result<FolderMetadata, SequenceError> {
        let text = fs::read_to_string(path).map_err(|source| SequenceError::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        toml::from_str(&text).map_err(|e| SequenceError::Metadata {
            file: path.to_path_buf(),
            field: "sequence.toml".to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }
}

struct Layout {
    source: SequenceSource,
    image_dir: PathBuf,
    log: Option<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SequenceError + '_ {
    move |source| SequenceError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

pub(crate) fn is_jpeg_name(name: &str) -> bool {
    // Dot files are skipped: `._IMG_0001.jpg` are macOS resource forks, not images.
    if name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

fn contains_jpeg(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| is_jpeg_name(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false)
}

/// `true` if `dir` is a sequence itself: it holds JPEG files, or is an MTPDU sequence directory.
pub(crate) fn is_sequence_dir(dir: &Path) -> bool {
    contains_jpeg(dir) || dir.join("final_raw").is_dir() || dir.join("final_nadir").is_dir()
}

/// MTPDU uploads `final_nadir/` when it exists (its developer docs: "If `final_nadir` directory exists, these
/// images are uploaded to integrations, else upload `final_raw` images"). We follow that, except that an
/// empty `final_nadir/` (an interrupted nadir step) does not hide a populated `final_raw/`.
fn detect_layout(root: &Path) -> Layout {
    let raw = root.join("final_raw");
    let nadir = root.join("final_nadir");
    let (has_raw, has_nadir) = (raw.is_dir(), nadir.is_dir());
    if !has_raw && !has_nadir {
        return Layout {
            source: SequenceSource::Folder,
            image_dir: root.to_path_buf(),
            log: None,
        };
    }
    let image_dir = if has_nadir && (contains_jpeg(&nadir) || !has_raw) {
        nadir
    } else {
        raw
    };
    let dir_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = root.join(format!("{dir_name}.json"));
    let log = if named.is_file() {
        Some(named)
    } else {
        // A renamed directory: accept its only JSON file as the log.
        let jsons: Vec<PathBuf> = fs::read_dir(root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && p.extension()
                                .is_some_and(|x| x.eq_ignore_ascii_case("json"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if jsons.len() == 1 {
            jsons.into_iter().next()
        } else {
            None
        }
    };
    Layout {
        source: SequenceSource::Mtpdu,
        image_dir,
        log,
    }
}

/// Reads a sequence directory: an MTPDU sequence (`<name>/` with `final_raw/` or `final_nadir/` and the
/// `<name>.json` log) or a plain folder of JPEGs with an optional `sequence.toml`. Nothing on disk is modified,
/// and only JPEG headers are read (up to the start of the image data, plus a 4 KiB tail check for
/// truncation), on 2–4 threads.
///
/// Images are the `*.jpg` / `*.jpeg` files (any case) directly in the image directory; subdirectories and
/// dot files (`._IMG_0001.jpg` resource forks) are ignored. In an MTPDU directory the image directory is
/// `final_nadir/` if it holds images (MTPDU uploads it when present), else `final_raw/`; the log is
/// `<dir name>.json`, or the only `*.json` of a renamed directory.
///
/// Returns an error only if the directory, its metadata files or the overrides are unusable (or the scan
/// cannot keep what it read in its scratch file: [`SequenceError::Scratch`]); everything wrong
/// with the images is in [`ScannedSequence::problems`].
///
/// ```no_run
/// use mtp_sequence::{read_sequence, Overrides};
/// let scanned = read_sequence("/home/me/MTP/sequences/ride".as_ref(), &Overrides::default())?;
/// println!("{}", scanned.summary()?.render_text());
/// let (descriptor, skipped) = scanned.to_descriptor(true)?;
/// # Ok::<(), mtp_sequence::SequenceError>(())
/// ```
pub fn read_sequence(dir: &Path, overrides: &Overrides) -> Result<ScannedSequence, SequenceError> {
    let override_transport = overrides
        .transport
        .as_deref()
        .map(TransportType::parse)
        .transpose()
        .map_err(SequenceError::UnknownTransport)?;
    let root = fs::canonicalize(dir).map_err(io_err(dir))?;
    if !root.is_dir() {
        return Err(SequenceError::NotADirectory { path: root });
    }
    let layout = detect_layout(&root);
    let log = layout.log.as_deref().map(SequenceLog::read).transpose()?;
    let toml_path = root.join(FOLDER_METADATA_FILE);
    let folder_meta = if toml_path.is_file() {
        Some(FolderMetadata::read(&toml_path)?)
    } else {
        None
    };

    let time_offset = match overrides.time_offset {
        Some(o) => Some(o),
        None => match &folder_meta {
            Some(m) => m.parsed_time_offset(&toml_path)?,
            None => None,
        },
    };

    let files = crate::read_all::list_jpegs(&layout.image_dir)?;
    if files.is_empty() {
        let hint = crate::tree::folder_tree(&root)
            .map(|tree| {
                let names: Vec<String> = tree
                    .sequences
                    .iter()
                    .map(|(d, _)| d.strip_prefix(&root).unwrap_or(d).display().to_string())
                    .collect();
                format!(
                    "; its subfolders {} hold images: give them (mtp upload and inspect do so \
                     themselves for a folder tree)",
                    names.join(", ")
                )
            })
            .unwrap_or_default();
        return Err(SequenceError::NoImages {
            dir: layout.image_dir,
            hint,
        });
    }
    let mut consensus = Consensus::default();
    let read = crate::read_all::read_all(&layout.image_dir, files, time_offset, |image| {
        consensus.add(image)
    })?;
    let images = read.images;
    let mut per_image = read.per_image;
    let sequence_problems = validate::check_sequence(&images, &mut per_image)?;
    let mut problems: Vec<Problem> = per_image.into_values().flatten().collect();
    problems.extend(sequence_problems);

    let mut metadata_files = Vec::new();
    metadata_files.extend(layout.log.clone());
    if folder_meta.is_some() {
        metadata_files.push(toml_path.clone());
    }
    let folder_meta = folder_meta.unwrap_or_default();
    let log = log.unwrap_or_default();
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());

    let name = nonempty(&overrides.name)
        .or_else(|| nonempty(&folder_meta.name))
        .or_else(|| nonempty(&log.name))
        .or_else(|| nonempty(&consensus.name.value()))
        .unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let description = overrides
        .description
        .clone()
        .or(folder_meta.description.clone())
        .or(log.description.clone())
        .or(consensus.description.value())
        .unwrap_or_default();
    let tags = normalise_tags(if !overrides.tags.is_empty() {
        overrides.tags.clone()
    } else {
        folder_meta
            .tags
            .clone()
            .or(log.tags.clone())
            .or(consensus.tags.value())
            .unwrap_or_default()
    });

    let transport = match override_transport {
        Some(t) => Some(t),
        None => {
            let candidate = if let Some(t) = nonempty(&folder_meta.transport) {
                Some((TransportType::parse(&t), toml_path.clone(), "transport"))
            } else if log.transport_type.is_some() || log.transport_method.is_some() {
                Some((
                    TransportType::from_parts(
                        log.transport_type.as_deref().unwrap_or(""),
                        log.transport_method.as_deref(),
                    ),
                    layout.log.clone().unwrap_or_default(),
                    "uploader_transport_method",
                ))
            } else {
                consensus
                    .transport
                    .with_file()
                    .map(|(t, file)| (TransportType::parse(&t), file, "MTPSequenceTransport"))
            };
            match candidate {
                Some((Ok(t), _, _)) => Some(t),
                Some((Err(e), file, field)) => {
                    problems.push(Problem {
                        file: Some(file),
                        field: field.to_string(),
                        kind: ProblemKind::UnknownTransport,
                        message: format!("{e}. Fix it there, or override the transport."),
                    });
                    None
                }
                None => None,
            }
        }
    };

    let id = log
        .id
        .clone()
        .or(consensus.sequence_uuid.value())
        .unwrap_or_else(|| path_id(&root));

    Ok(ScannedSequence {
        id,
        root,
        image_dir: layout.image_dir,
        source: layout.source,
        metadata_files,
        name,
        description,
        transport,
        tags,
        images,
        problems,
    })
}

fn normalise_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    tags.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect()
}

/// A UUID-shaped identifier derived from the path with FNV-1a (128-bit), so it is stable across runs,
/// platforms and Rust versions (unlike `std`'s hasher). The version nibble is 8 ("custom", RFC 9562), so it
/// cannot be mistaken for MTPDU's random (version 4) UUIDs.
pub(crate) fn path_id(path: &Path) -> String {
    let mut bytes = fnv1a_128(path.to_string_lossy().as_bytes()).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0F) | 0x80;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn fnv1a_128(data: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    data.iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// Sequence metadata embedded in the images' `ImageDescription`, used only when every image that has a value
/// agrees on it.
#[derive(Default)]
struct Consensus {
    name: Agreement<String>,
    description: Agreement<String>,
    transport: Agreement<String>,
    tags: Agreement<Vec<String>>,
    sequence_uuid: Agreement<String>,
}

impl Consensus {
    /// Counts `img`'s values in (the images come in capture order).
    fn add(&mut self, img: &ScannedImage) {
        let Some(d) = img.description.as_deref() else {
            return;
        };
        self.name.add(d.sequence_name.as_ref(), &img.path);
        self.description
            .add(d.sequence_description.as_ref(), &img.path);
        self.transport.add(d.sequence_transport.as_ref(), &img.path);
        self.tags.add(d.sequence_tags.as_ref(), &img.path);
        self.sequence_uuid.add(d.sequence_uuid.as_ref(), &img.path);
    }
}

/// One value the images agree on, with the first file that has it.
#[derive(Default)]
enum Agreement<T> {
    #[default]
    None,
    One(T, PathBuf),
    Differ,
}

impl<T: PartialEq + Clone> Agreement<T> {
    fn add(&mut self, value: Option<&T>, file: &Path) {
        let Some(value) = value else {
            return;
        };
        match self {
            Agreement::None => *self = Agreement::One(value.clone(), file.to_path_buf()),
            Agreement::One(v, _) if v == value => {}
            Agreement::One(..) => *self = Agreement::Differ,
            Agreement::Differ => {}
        }
    }

    fn with_file(&self) -> Option<(T, PathBuf)> {
        match self {
            Agreement::One(v, file) => Some((v.clone(), file.clone())),
            _ => None,
        }
    }

    fn value(&self) -> Option<T> {
        self.with_file().map(|(v, _)| v)
    }
}

/// The header segments we care about.
#[derive(Default)]
struct Header {
    exif: Option<Vec<u8>>,
    xmp: Option<Vec<u8>>,
    dims: Option<(u32, u32)>,
    /// Offset just past the SOS segment header, if one was found.
    scan_start: Option<u64>,
}

fn read_header<R: Read + Seek>(file: R) -> Result<Header, jpeg::JpegError> {
    let mut r = SegmentReader::new(file)?;
    let mut h = Header::default();
    while let Some(seg) = r.next_segment()? {
        if seg.marker == marker::APP1 && (h.exif.is_none() || h.xmp.is_none()) {
            let mut payload = r.read_payload(XMP_ID.len())?;
            if h.exif.is_none() && payload.starts_with(EXIF_ID) {
                payload.extend(r.read_payload(usize::MAX)?);
                payload.drain(..EXIF_ID.len());
                h.exif = Some(payload);
            } else if h.xmp.is_none() && payload == XMP_ID {
                h.xmp = Some(r.read_payload(usize::MAX)?);
            }
        } else if jpeg::is_sof(seg.marker) && h.dims.is_none() {
            h.dims = jpeg::sof_dimensions(&r.read_payload(16)?);
        } else if seg.marker == marker::SOS {
            h.scan_start = Some(seg.end());
        }
    }
    Ok(h)
}

/// Looks for the end-of-image marker in the last 4 KiB after the scan starts. A file cut short after its
/// header is otherwise indistinguishable from a good one without reading it all; a few KiB of trailer
/// after EOI (some cameras add one) are tolerated.
fn has_end_marker<R: Read + Seek>(
    mut file: R,
    size: u64,
    scan_start: u64,
) -> std::io::Result<bool> {
    const TAIL: u64 = 4096;
    if size < scan_start + 2 {
        return Ok(false);
    }
    let from = scan_start.max(size.saturating_sub(TAIL));
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::with_capacity((size - from) as usize);
    file.take(size - from).read_to_end(&mut tail)?;
    Ok(tail.windows(2).any(|w| w == [0xFF, marker::EOI]))
}

pub(crate) fn read_image(img: &mut ScannedImage, time_offset: Option<TimeOffset>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if img.path.to_str().is_none() {
        problems.push(Problem::image(
            &img.path,
            "file name",
            ProblemKind::NonUtf8Path,
            "the path is not valid UTF-8 and cannot be passed to integrations; rename the file"
                .to_string(),
        ));
    }
    let unreadable = |img: &ScannedImage, e: &dyn std::fmt::Display| {
        Problem::image(
            &img.path,
            "file",
            ProblemKind::Unreadable,
            format!("cannot read: {e}"),
        )
    };
    let file = match File::open(&img.path) {
        Ok(f) => f,
        Err(e) => {
            problems.push(unreadable(img, &e));
            return problems;
        }
    };
    img.size_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let header = match read_header(&file) {
        Ok(h) => h,
        Err(jpeg::JpegError::Io(e)) => {
            problems.push(unreadable(img, &e));
            return problems;
        }
        Err(e) => {
            problems.push(Problem::image(
                &img.path,
                "JPEG",
                ProblemKind::CorruptJpeg,
                e.to_string(),
            ));
            return problems;
        }
    };
    match header.scan_start {
        None => {
            problems.push(Problem::image(
                &img.path,
                "JPEG",
                ProblemKind::CorruptJpeg,
                "no image data (end-of-image marker before any scan)",
            ));
            return problems;
        }
        Some(start) => match has_end_marker(&file, img.size_bytes, start) {
            Ok(true) => {}
            Ok(false) => {
                problems.push(Problem::image(
                    &img.path,
                    "JPEG",
                    ProblemKind::CorruptJpeg,
                    "truncated: no end-of-image marker (FFD9) at the end of the file",
                ));
                return problems;
            }
            Err(e) => {
                problems.push(unreadable(img, &e));
                return problems;
            }
        },
    }
    if let Some((w, h)) = header.dims {
        img.width = Some(w);
        img.height = Some(h);
    }
    let xmp_props = header.xmp.as_deref().and_then(Xmp::parse);
    let xmp = header.xmp.as_deref().map(String::from_utf8_lossy);
    let xmp_projection = xmp
        .as_deref()
        .and_then(|x| xmp_property(x, "ProjectionType"));
    let xmp_heading = xmp
        .as_deref()
        .and_then(|x| xmp_property(x, "PoseHeadingDegrees"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite());

    let mut exif_note = String::new();
    let exif = match header.exif {
        None => None,
        Some(tiff) => match exif::Reader::new().continue_on_error(true).read_raw(tiff) {
            Ok(e) => Some(e),
            Err(exif::Error::PartialResult(partial)) => {
                let (e, errors) = partial.into_inner();
                if let Some(first) = errors.first() {
                    exif_note = format!(" (EXIF partly unreadable: {first})");
                }
                Some(e)
            }
            Err(e) => {
                problems.push(Problem::image(
                    &img.path,
                    "EXIF",
                    ProblemKind::CorruptExif,
                    format!("unreadable EXIF: {e}"),
                ));
                return problems;
            }
        },
    };

    let description = exif
        .as_ref()
        .and_then(|e| ascii(e, Tag::ImageDescription))
        .and_then(|t| MtpImageDescription::parse(&t));

    // Position: MTPDU's ImageDescription is what it wrote after processing (GPS edits, GPX matching), so it
    // wins over the standard GPS tags.
    // EXIF GPS, else XMP's `exif:GPSLatitude`/`exif:GPSLongitude` (what the official Mapillary client does:
    // mapillary_tools `exif_read.py`, `ExifRead.extract_lon_lat`).
    let exif_gps = match (exif.as_ref().map(exif_position), &xmp_props) {
        (Some(Ok(Some(fix))), _) => Ok(Some(fix)),
        (exif_result, Some(x)) => match (xmp_position(x), exif_result) {
            (Ok(Some(fix)), _) => Ok(Some(fix)),
            (_, Some(Err(e))) => Err(e),
            (xmp_result, _) => xmp_result,
        },
        (exif_result, None) => exif_result.unwrap_or(Ok(None)),
    };
    let desc_pos = description
        .as_ref()
        .and_then(|d| Some((d.latitude?, d.longitude?, d.altitude)));
    let exif_has_position = exif
        .as_ref()
        .is_some_and(|e| matches!(exif_position(e), Ok(Some(_))));
    match (desc_pos, exif_gps) {
        (Some((lat, lon, alt)), gps) => {
            img.latitude = Some(lat);
            img.longitude = Some(lon);
            img.altitude = alt.or_else(|| gps.ok().flatten().and_then(|g| g.2));
            img.position_source = Some(PositionSource::Mtpdu);
        }
        (None, Ok(Some((lat, lon, alt)))) => {
            img.latitude = Some(lat);
            img.longitude = Some(lon);
            img.altitude = alt;
            img.position_source = Some(if exif_has_position {
                PositionSource::Exif
            } else {
                PositionSource::Xmp
            });
        }
        (None, Ok(None)) => problems.push(Problem::image(
            &img.path,
            "GPSLatitude/GPSLongitude",
            ProblemKind::NoGps,
            format!("no GPS position (no MAPLatitude/MAPLongitude, EXIF GPS tags or XMP exif:GPSLatitude){exif_note}"),
        )),
        (None, Err(msg)) => problems.push(Problem::image(
            &img.path,
            "GPSLatitude/GPSLongitude",
            ProblemKind::InvalidGps,
            msg,
        )),
    }
    if let Some((lat, lon)) = img.position() {
        if !(lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon))
        {
            problems.push(Problem::image(
                &img.path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::InvalidGps,
                format!("GPS position ({lat}, {lon}) is out of range"),
            ));
        } else if lat.abs() < 1e-9 && lon.abs() < 1e-9 {
            problems.push(Problem::image(
                &img.path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::ZeroGps,
                "GPS position is (0, 0), a placeholder for \"no fix\"",
            ));
        }
    }

    // Capture time: MAPCaptureTime (UTC) first, for the same reason.
    let desc_time = description
        .as_ref()
        .and_then(MtpImageDescription::capture_time_ms);
    img.camera = exif.as_ref().and_then(camera_name);
    let position = img.position().filter(|_| img.position_source.is_some());
    match desc_time {
        Some(t) => {
            img.captured_at_ms = Some(t);
            img.time_source = Some(TimeSource::Mtpdu);
        }
        None if exif.is_none() && xmp_props.is_none() => problems.push(Problem::image(
            &img.path,
            "DateTimeOriginal",
            ProblemKind::NoCaptureTime,
            "no capture time (the file has no EXIF)",
        )),
        None => match capture_time(exif.as_ref(), xmp_props.as_ref(), time_offset, position) {
            Ok(t) => {
                img.captured_at_ms = Some(t.ms);
                img.time_source = Some(t.source);
                if let Some((kind, field, message)) = t.problem {
                    problems.push(Problem::image(&img.path, field, kind, message));
                }
            }
            Err(msg) => problems.push(Problem::image(
                &img.path,
                "DateTimeOriginal",
                ProblemKind::NoCaptureTime,
                format!("{msg}{exif_note}"),
            )),
        },
    }

    // Heading: the camera's direction (EXIF, then GPano's pose, then XMP's EXIF copy, then MTPDU's), and
    // only then the direction of travel `GPSTrack`, which the official Mapillary client also takes as the
    // heading (mapillary_tools `exif_read.py`, `extract_direction`): right for a forward-facing camera.
    let xmp_exif_f64 = |name: &str| {
        xmp_props
            .as_ref()
            .and_then(|x| x.exif(name))
            .and_then(xmp::number)
    };
    img.heading = exif
        .as_ref()
        .and_then(|e| first_f64(e, Tag::GPSImgDirection))
        .or(xmp_heading)
        .or_else(|| xmp_exif_f64("GPSImgDirection"))
        .or_else(|| description.as_ref().and_then(|d| d.compass_true_heading))
        .or_else(|| exif.as_ref().and_then(|e| first_f64(e, Tag::GPSTrack)))
        .or_else(|| xmp_exif_f64("GPSTrack"))
        .filter(|h| h.is_finite())
        .map(|h| h.rem_euclid(360.0));

    // Projection: the XMP tag describes the pixels; MTPDU's field is only a fallback (one MTPDU release wrote
    // "equirectangular" into every image regardless).
    img.projection = match (
        xmp_projection,
        description
            .as_ref()
            .and_then(|d| d.image_projection.as_deref()),
    ) {
        (Some(p), _) => Projection::parse(p),
        (None, Some(p)) => Projection::parse(p),
        (None, None) => Projection::Flat,
    };
    if img.width.is_none() {
        if let Some(e) = &exif {
            img.width = first_u32(e, Tag::PixelXDimension);
            img.height = first_u32(e, Tag::PixelYDimension);
        }
    }
    img.photo_uuid = description
        .as_ref()
        .and_then(|d| d.photo_uuid.as_deref())
        .map(crate::photo_uuid::PhotoUuid::new);
    img.sources = Some(crate::sources::metadata_sources(
        &crate::sources::FileMetadata {
            exif: exif.as_ref(),
            xmp: xmp_props.as_ref(),
            xmp_text: xmp.as_deref(),
            description: description.as_ref(),
        },
        img.position_source,
        img.time_source.as_ref(),
    ));
    img.description = description
        .and_then(MtpImageDescription::sequence_fields)
        .map(Arc::new);
    problems
}

/// `Make Model` (and the body serial number when recorded), to tell cameras apart within a folder.
fn camera_name(exif: &exif::Exif) -> Option<Arc<str>> {
    let parts: Vec<String> = [Tag::Make, Tag::Model, Tag::BodySerialNumber]
        .into_iter()
        .filter_map(|t| ascii(exif, t))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" ").into())
}

/// The value of an XMP property written either as an attribute (`GPano:ProjectionType="equirectangular"`) or
/// as an element (`<GPano:ProjectionType>equirectangular</GPano:ProjectionType>`), whatever its prefix.
pub(crate) fn xmp_property<'a>(xmp: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(":{name}");
    let mut from = 0;
    while let Some(i) = xmp[from..].find(&needle) {
        let after = from + i + needle.len();
        from = after;
        let rest = xmp[after..].trim_start();
        if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start();
            let quote = v.chars().next()?;
            if quote == '"' || quote == '\'' {
                let body = &v[1..];
                return body.find(quote).map(|end| body[..end].trim());
            }
        } else if let Some(v) = rest.strip_prefix('>') {
            return v.find('<').map(|end| v[..end].trim());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmp_properties() {
        let attr = r#"<rdf:Description GPano:ProjectionType = "equirectangular" GPano:PoseHeadingDegrees='12.5'/>"#;
        assert_eq!(
            xmp_property(attr, "ProjectionType"),
            Some("equirectangular")
        );
        assert_eq!(xmp_property(attr, "PoseHeadingDegrees"), Some("12.5"));
        let elem = "<GPano:ProjectionType>cylindrical</GPano:ProjectionType>";
        assert_eq!(xmp_property(elem, "ProjectionType"), Some("cylindrical"));
        assert_eq!(xmp_property("<x:ProjectionType", "ProjectionType"), None);
        assert_eq!(
            xmp_property("GPano:ProjectionType=\"unterminated", "ProjectionType"),
            None
        );
        assert_eq!(xmp_property("", "ProjectionType"), None);
    }

    #[test]
    fn path_ids_are_stable_and_uuid_shaped() {
        let a = path_id(Path::new("/home/me/MTP/sequences/ride"));
        assert_eq!(a, path_id(Path::new("/home/me/MTP/sequences/ride")));
        assert_ne!(a, path_id(Path::new("/home/me/MTP/sequences/ride2")));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        // Pinned: changing the hash would change every stored folder sequence's id.
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(
            path_id(Path::new("/a")),
            "0880948e-deab-8be9-9aa0-73305546ddad"
        );
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let t = normalise_tags(vec![
            " a".into(),
            "b".into(),
            "a".into(),
            "".into(),
            "  ".into(),
        ]);
        assert_eq!(t, ["a", "b"]);
    }
}
