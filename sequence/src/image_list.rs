//! The images of a scan, kept in an unnamed scratch file rather than in memory: one record an image,
//! written once in capture order and read back in passes (the checks, the summary, the descriptor's
//! pages), or one at a time by index. A scan of 100,000 photos held 37 MB of images, paths and problem
//! lists on the heap until it was judged; in the file they are about 12 MB of the disk's page cache,
//! and what the process holds is one offset an image (docs/architecture.md, "Memory").
//!
//! Written here rather than with a serialisation crate: a record refers to values every image shares
//! (the camera's name, the MTPDU sequence fields, the names of tags and time zones, which are
//! `&'static str`) by their index in a table the list keeps in memory, so that an image read back shares
//! them again; and a record is a few fixed-width fields, read back only by this process.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use plugin_api::sequence::Projection;

use crate::capture_time::{OffsetBasis, TimeSource};
use crate::model::{PositionSource, ScannedImage, SequenceError};
use crate::mtpdu::MtpImageDescription;
use crate::photo_uuid::PhotoUuid;
use crate::scratch;
use crate::sources::SourceSet;

/// The images of a scan, in order, in a scratch file (see the module's docs).
#[derive(Debug)]
pub struct ImageList {
    /// `None` while the list is empty: no file is made for nothing.
    file: Option<File>,
    /// Where each record starts; the last one ends at `end`.
    offsets: Vec<u64>,
    end: u64,
    tables: Tables,
}

/// The values records refer to by index.
#[derive(Debug, Default)]
struct Tables {
    names: Vec<&'static str>,
    descriptions: Vec<Arc<MtpImageDescription>>,
    cameras: Vec<Arc<str>>,
}

impl Tables {
    fn name(&mut self, name: &'static str) -> u32 {
        index_of(&mut self.names, name, |a, b| a == b)
    }

    fn description(&mut self, d: &Arc<MtpImageDescription>) -> u32 {
        index_of(&mut self.descriptions, d.clone(), |a, b| {
            Arc::ptr_eq(a, b) || a == b
        })
    }

    fn camera(&mut self, c: &Arc<str>) -> u32 {
        index_of(&mut self.cameras, c.clone(), |a, b| {
            Arc::ptr_eq(a, b) || a == b
        })
    }
}

/// The index of `value` in `table`, added at the end when it is not there. Only the last few values
/// added are looked at: images of one camera and sequence follow each other, and a folder whose every
/// image has its own (none we know of) then costs a table entry an image, not a search of the table.
fn index_of<T>(table: &mut Vec<T>, value: T, same: impl Fn(&T, &T) -> bool) -> u32 {
    const LOOK_BACK: usize = 16;
    let from = table.len().saturating_sub(LOOK_BACK);
    let found = table[from..]
        .iter()
        .rposition(|t| same(t, &value))
        .map(|at| from + at);
    let at = found.unwrap_or_else(|| {
        table.push(value);
        table.len() - 1
    });
    u32::try_from(at).unwrap_or(u32::MAX)
}

fn scratch_error(cause: io::Error) -> SequenceError {
    SequenceError::Scratch {
        dir: scratch::dir(),
        cause,
    }
}

/// Writes an [`ImageList`] an image at a time.
pub struct ImageListWriter {
    out: Option<BufWriter<File>>,
    offsets: Vec<u64>,
    end: u64,
    tables: Tables,
    record: Vec<u8>,
}

impl ImageListWriter {
    /// An empty list; the scratch file is made with the first image.
    pub fn new() -> ImageListWriter {
        ImageListWriter {
            out: None,
            offsets: Vec::new(),
            end: 0,
            tables: Tables::default(),
            record: Vec::with_capacity(256),
        }
    }

    /// Adds `image` at the end.
    pub fn push(&mut self, image: &ScannedImage) -> Result<(), SequenceError> {
        self.record.clear();
        encode(image, &mut self.tables, &mut self.record);
        let out = match &mut self.out {
            Some(out) => out,
            None => self.out.insert(BufWriter::with_capacity(
                64 * 1024,
                scratch::create().map_err(scratch_error)?,
            )),
        };
        out.write_all(&self.record).map_err(scratch_error)?;
        self.offsets.push(self.end);
        self.end += self.record.len() as u64;
        Ok(())
    }

    /// How many images were added.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// `true` before the first image.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The list written.
    pub fn finish(self) -> Result<ImageList, SequenceError> {
        let file = match self.out {
            Some(out) => Some(
                out.into_inner()
                    .map_err(|e| scratch_error(e.into_error()))?,
            ),
            None => None,
        };
        let mut offsets = self.offsets;
        offsets.shrink_to_fit();
        Ok(ImageList {
            file,
            offsets,
            end: self.end,
            tables: self.tables,
        })
    }
}

impl Default for ImageListWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageList {
    /// The list of `images`, in their order.
    pub fn from_images<'a>(
        images: impl IntoIterator<Item = &'a ScannedImage>,
    ) -> Result<ImageList, SequenceError> {
        let mut writer = ImageListWriter::new();
        for image in images {
            writer.push(image)?;
        }
        writer.finish()
    }

    /// How many images there are.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Image `index`.
    pub fn get(&self, index: usize) -> Result<ScannedImage, SequenceError> {
        let (Some(file), Some(&start)) = (&self.file, self.offsets.get(index)) else {
            return Err(scratch_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no image {index} in a list of {}", self.len()),
            )));
        };
        let end = self.offsets.get(index + 1).copied().unwrap_or(self.end);
        let mut record = vec![0; usize::try_from(end - start).unwrap_or(0)];
        scratch::read_exact_at(file, &mut record, start).map_err(scratch_error)?;
        decode(&mut record.as_slice(), &self.tables).map_err(scratch_error)
    }

    /// Every image, in order, read through a buffer.
    pub fn iter(&self) -> Images<'_> {
        Images {
            list: self,
            reader: self.file.as_ref().map(|file| {
                io::BufReader::with_capacity(64 * 1024, PositionedReader { file, at: 0 })
            }),
            next: 0,
        }
    }

    /// Every image, in order, in memory: for tests and small lists.
    pub fn to_vec(&self) -> Result<Vec<ScannedImage>, SequenceError> {
        self.iter().collect()
    }
}

/// The images of an [`ImageList`], in order.
pub struct Images<'a> {
    list: &'a ImageList,
    reader: Option<io::BufReader<PositionedReader<'a>>>,
    next: usize,
}

impl Iterator for Images<'_> {
    type Item = Result<ScannedImage, SequenceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.list.len() {
            return None;
        }
        self.next += 1;
        let reader = self.reader.as_mut()?;
        let image = decode(reader, &self.list.tables).map_err(scratch_error);
        if image.is_err() {
            // Nothing after a record that did not read can be trusted to start where it should.
            self.next = self.list.len();
        }
        Some(image)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.len() - self.next;
        (left, Some(left))
    }
}

/// Reads a file from a position of its own, so that several passes over one list can be open at once.
struct PositionedReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = scratch::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

// Which optional fields a record holds, one bit each.
const LATITUDE: u16 = 1;
const LONGITUDE: u16 = 1 << 1;
const ALTITUDE: u16 = 1 << 2;
const CAPTURED_AT: u16 = 1 << 3;
const HEADING: u16 = 1 << 4;
const WIDTH: u16 = 1 << 5;
const HEIGHT: u16 = 1 << 6;
const PHOTO_UUID: u16 = 1 << 7;
const DESCRIPTION: u16 = 1 << 8;
const TIME_SOURCE: u16 = 1 << 9;
const POSITION_SOURCE: u16 = 1 << 10;
const CAMERA: u16 = 1 << 11;
const SOURCES: u16 = 1 << 12;

fn encode(image: &ScannedImage, tables: &mut Tables, out: &mut Vec<u8>) {
    let present = [
        (image.latitude.is_some(), LATITUDE),
        (image.longitude.is_some(), LONGITUDE),
        (image.altitude.is_some(), ALTITUDE),
        (image.captured_at_ms.is_some(), CAPTURED_AT),
        (image.heading.is_some(), HEADING),
        (image.width.is_some(), WIDTH),
        (image.height.is_some(), HEIGHT),
        (image.photo_uuid.is_some(), PHOTO_UUID),
        (image.description.is_some(), DESCRIPTION),
        (image.time_source.is_some(), TIME_SOURCE),
        (image.position_source.is_some(), POSITION_SOURCE),
        (image.camera.is_some(), CAMERA),
        (image.sources.is_some(), SOURCES),
    ]
    .iter()
    .filter(|(is, _)| *is)
    .fold(0u16, |bits, (_, bit)| bits | bit);
    out.extend_from_slice(&present.to_le_bytes());
    put_bytes(out, image.path.as_os_str().as_encoded_bytes());
    out.extend_from_slice(&image.size_bytes.to_le_bytes());
    for value in [
        image.latitude,
        image.longitude,
        image.altitude,
        image.captured_at_ms.map(|t| f64::from_bits(t as u64)),
        image.heading,
    ]
    .into_iter()
    .flatten()
    {
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    for value in [image.width, image.height].into_iter().flatten() {
        out.extend_from_slice(&value.to_le_bytes());
    }
    match &image.projection {
        Projection::Flat => out.push(0),
        Projection::Equirectangular => out.push(1),
        Projection::Other(name) => {
            out.push(2);
            put_bytes(out, name.as_bytes());
        }
    }
    match &image.photo_uuid {
        Some(PhotoUuid::Bytes(bytes)) => {
            out.push(0);
            out.extend_from_slice(bytes);
        }
        Some(PhotoUuid::Text(text)) => {
            out.push(1);
            put_bytes(out, text.as_bytes());
        }
        None => {}
    }
    if let Some(d) = &image.description {
        out.extend_from_slice(&tables.description(d).to_le_bytes());
    }
    if let Some(source) = &image.time_source {
        encode_time_source(source, tables, out);
    }
    if let Some(source) = image.position_source {
        out.push(match source {
            PositionSource::Mtpdu => 0,
            PositionSource::Exif => 1,
            PositionSource::Xmp => 2,
        });
    }
    if let Some(camera) = &image.camera {
        out.extend_from_slice(&tables.camera(camera).to_le_bytes());
    }
    if let Some(sources) = image.sources {
        out.extend_from_slice(&sources.to_bits());
    }
}

fn encode_time_source(source: &TimeSource, tables: &mut Tables, out: &mut Vec<u8>) {
    match source {
        TimeSource::Mtpdu => out.push(0),
        TimeSource::Gps {
            field,
            clock_minutes,
        } => {
            out.push(1);
            out.extend_from_slice(&tables.name(field).to_le_bytes());
            put_minutes(out, *clock_minutes);
        }
        TimeSource::Local {
            field,
            wall_ms,
            offset_minutes,
            offset,
        } => {
            out.push(2);
            out.extend_from_slice(&tables.name(field).to_le_bytes());
            out.extend_from_slice(&wall_ms.to_le_bytes());
            out.extend_from_slice(&offset_minutes.to_le_bytes());
            match offset {
                OffsetBasis::File => out.push(0),
                OffsetBasis::User => out.push(1),
                OffsetBasis::Zone {
                    zone,
                    summer,
                    zone_minutes,
                } => {
                    out.push(2);
                    out.extend_from_slice(&tables.name(zone).to_le_bytes());
                    out.push(u8::from(*summer));
                    out.extend_from_slice(&zone_minutes.to_le_bytes());
                }
                OffsetBasis::None => out.push(3),
            }
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_minutes(out: &mut Vec<u8>, minutes: Option<i32>) {
    match minutes {
        Some(m) => {
            out.push(1);
            out.extend_from_slice(&m.to_le_bytes());
        }
        None => out.push(0),
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a record of the scan does not read back ({what})"),
    )
}

fn take<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn take_u8(r: &mut impl Read) -> io::Result<u8> {
    Ok(take::<1>(r)?[0])
}

fn take_u32(r: &mut impl Read) -> io::Result<u32> {
    take(r).map(u32::from_le_bytes)
}

fn take_i32(r: &mut impl Read) -> io::Result<i32> {
    take(r).map(i32::from_le_bytes)
}

fn take_u64(r: &mut impl Read) -> io::Result<u64> {
    take(r).map(u64::from_le_bytes)
}

fn take_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = take_u32(r)? as usize;
    let mut bytes = vec![0; len];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn take_string(r: &mut impl Read) -> io::Result<String> {
    String::from_utf8(take_bytes(r)?).map_err(|_| bad("text"))
}

fn from_table<T: Clone>(table: &[T], r: &mut impl Read, what: &str) -> io::Result<T> {
    let at = take_u32(r)? as usize;
    table.get(at).cloned().ok_or_else(|| bad(what))
}

fn decode(r: &mut impl Read, tables: &Tables) -> io::Result<ScannedImage> {
    let present = u16::from_le_bytes(take(r)?);
    let has = |bit: u16| present & bit != 0;
    let path = path_from(take_bytes(r)?);
    let mut image = ScannedImage::new(path);
    image.size_bytes = take_u64(r)?;
    let mut float = |bit: u16| -> io::Result<Option<f64>> {
        has(bit)
            .then(|| take_u64(&mut *r).map(f64::from_bits))
            .transpose()
    };
    image.latitude = float(LATITUDE)?;
    image.longitude = float(LONGITUDE)?;
    image.altitude = float(ALTITUDE)?;
    image.captured_at_ms = float(CAPTURED_AT)?.map(|t| t.to_bits() as i64);
    image.heading = float(HEADING)?;
    image.width = has(WIDTH).then(|| take_u32(r)).transpose()?;
    image.height = has(HEIGHT).then(|| take_u32(r)).transpose()?;
    image.projection = match take_u8(r)? {
        0 => Projection::Flat,
        1 => Projection::Equirectangular,
        2 => Projection::Other(take_string(r)?),
        _ => return Err(bad("projection")),
    };
    if has(PHOTO_UUID) {
        image.photo_uuid = Some(match take_u8(r)? {
            0 => PhotoUuid::Bytes(take(r)?),
            1 => PhotoUuid::Text(take_string(r)?.into()),
            _ => return Err(bad("photo UUID")),
        });
    }
    if has(DESCRIPTION) {
        image.description = Some(from_table(&tables.descriptions, r, "description")?);
    }
    if has(TIME_SOURCE) {
        image.time_source = Some(decode_time_source(r, tables)?);
    }
    if has(POSITION_SOURCE) {
        image.position_source = Some(match take_u8(r)? {
            0 => PositionSource::Mtpdu,
            1 => PositionSource::Exif,
            2 => PositionSource::Xmp,
            _ => return Err(bad("position source")),
        });
    }
    if has(CAMERA) {
        image.camera = Some(from_table(&tables.cameras, r, "camera")?);
    }
    if has(SOURCES) {
        image.sources = Some(SourceSet::from_bits(take(r)?));
    }
    Ok(image)
}

fn decode_time_source(r: &mut impl Read, tables: &Tables) -> io::Result<TimeSource> {
    Ok(match take_u8(r)? {
        0 => TimeSource::Mtpdu,
        1 => TimeSource::Gps {
            field: from_table(&tables.names, r, "tag")?,
            clock_minutes: match take_u8(r)? {
                0 => None,
                _ => Some(take_i32(r)?),
            },
        },
        2 => TimeSource::Local {
            field: from_table(&tables.names, r, "tag")?,
            wall_ms: take_u64(r)? as i64,
            offset_minutes: take_i32(r)?,
            offset: match take_u8(r)? {
                0 => OffsetBasis::File,
                1 => OffsetBasis::User,
                2 => OffsetBasis::Zone {
                    zone: from_table(&tables.names, r, "time zone")?,
                    summer: take_u8(r)? != 0,
                    zone_minutes: take_i32(r)?,
                },
                3 => OffsetBasis::None,
                _ => return Err(bad("offset")),
            },
        },
        _ => return Err(bad("time source")),
    })
}

#[cfg(unix)]
fn path_from(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from(bytes: Vec<u8>) -> PathBuf {
    // The bytes are this process's own `as_encoded_bytes` of a path; elsewhere than Unix they are
    // read back through UTF-8, which every path a Windows folder listing gives is.
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, at: i64) -> ScannedImage {
        let mut image = ScannedImage::new(PathBuf::from(format!("/seq/{name}")));
        image.size_bytes = 2_700;
        image.latitude = Some(51.5 + at as f64 * 1e-6);
        image.longitude = Some(-0.12);
        image.captured_at_ms = Some(1_700_000_000_000 + at);
        image
    }

    #[test]
    fn every_field_reads_back_and_shared_values_stay_shared() {
        let camera: Arc<str> = Arc::from("GoPro MAX");
        let description = Arc::new(MtpImageDescription {
            sequence_name: Some("ride".into()),
            ..Default::default()
        });
        let mut full = image("a.jpg", 1);
        full.altitude = Some(-3.25);
        full.heading = Some(359.5);
        full.width = Some(5760);
        full.height = Some(2880);
        full.projection = Projection::Other("cylindrical".into());
        full.photo_uuid = Some(PhotoUuid::new("0f8fad5b-d9cb-469f-a165-70867728950e"));
        full.description = Some(description.clone());
        full.camera = Some(camera.clone());
        full.position_source = Some(PositionSource::Xmp);
        full.time_source = Some(TimeSource::Local {
            field: "DateTimeOriginal",
            wall_ms: 1_700_000_000_000,
            offset_minutes: 120,
            offset: OffsetBasis::Zone {
                zone: "Europe/Paris",
                summer: true,
                zone_minutes: 60,
            },
        });
        let mut second = image("b.jpg", -5);
        second.camera = Some(Arc::from("GoPro MAX"));
        second.photo_uuid = Some(PhotoUuid::new("photo-1"));
        second.time_source = Some(TimeSource::Gps {
            field: "GPSDateStamp/GPSTimeStamp",
            clock_minutes: Some(-90),
        });
        second.projection = Projection::Equirectangular;
        let bare = ScannedImage::new(PathBuf::from("/seq/c.jpg"));
        let images = vec![full, second, bare];

        let list = ImageList::from_images(&images).unwrap();
        assert_eq!(list.len(), 3);
        let back = list.to_vec().unwrap();
        assert_eq!(back, images);
        assert_eq!(list.get(1).unwrap(), images[1]);
        assert!(list.get(3).is_err());
        let cameras: Vec<_> = back.iter().filter_map(|i| i.camera.clone()).collect();
        assert!(Arc::ptr_eq(&cameras[0], &cameras[1]));
    }

    #[test]
    fn an_empty_list_makes_no_file_and_reads_nothing() {
        let list = ImageListWriter::new().finish().unwrap();
        assert!(list.is_empty() && list.file.is_none());
        assert_eq!(list.iter().count(), 0);
    }

    #[test]
    fn the_images_are_in_the_file_and_the_process_holds_an_offset_each() {
        let images: Vec<_> = (0..2_000)
            .map(|i| image(&format!("{i:06}.jpg"), i))
            .collect();
        let list = ImageList::from_images(&images).unwrap();
        assert_eq!(list.offsets.capacity(), 2_000);
        let file_len = list.file.as_ref().unwrap().metadata().unwrap().len();
        assert_eq!(file_len, list.end);
        assert!(file_len > 2_000 * 50, "{file_len}");
        // Two passes open at once each read from their own position.
        let (mut a, mut b) = (list.iter(), list.iter().skip(1000));
        assert_eq!(a.next().unwrap().unwrap(), images[0]);
        assert_eq!(b.next().unwrap().unwrap(), images[1000]);
        assert_eq!(a.next().unwrap().unwrap(), images[1]);
    }
}
