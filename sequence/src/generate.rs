//! Synthetic sequences for tests, benchmarks and demos: real, decodable JPEGs (small noisy gradients, encoded
//! with `jpeg-encoder`) carrying EXIF written by kamadak-exif's writer, optional XMP GPano packets, optional
//! padding up to a target file size, and optionally the MTPDU directory layout with its sequence log.
//!
//! ```
//! use mtp_sequence::generate::{generate_sequence, GenerateOptions};
//! use mtp_sequence::{read_sequence, Overrides};
//!
//! let dir = tempfile::tempdir()?;
//! let opts = GenerateOptions { count: 5, mtpdu: true, ..GenerateOptions::default() };
//! let generated = generate_sequence(&dir.path().join("ride"), &opts)?;
//! let scanned = read_sequence(&generated.root, &Overrides::default())?;
//! assert!(scanned.is_valid());
//! assert_eq!(scanned.images.len(), 5);
//! assert_eq!(scanned.id, generated.sequence_uuid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike};
use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use plugin_api::sequence::{haversine_m, Projection};
use plugin_api::transport::TransportType;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::mtpdu::{format_map_capture_time, MtpImageDescription};
use crate::read::{FolderMetadata, FOLDER_METADATA_FILE};
use plugin_api::jpeg::{self, marker};

/// What to generate. `Default` gives ten 64×32 flat images, one second and two metres apart, heading east.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of images.
    pub count: usize,
    /// Position of the first image, `(latitude, longitude)` in degrees.
    pub start: (f64, f64),
    /// Altitude of the first image, metres; each image is 0.1 m higher than the previous one.
    pub start_altitude: f64,
    /// Capture time of the first image, Unix ms UTC.
    pub start_time_ms: i64,
    /// Camera clock offset written as `OffsetTimeOriginal` (`DateTimeOriginal` is then local time).
    pub utc_offset_minutes: i16,
    /// Time between images, ms.
    pub interval_ms: i64,
    /// Distance between images, metres (see [`GenerateOptions::with_speed_kmh`]).
    pub step_m: f64,
    /// Direction of travel and camera heading, degrees.
    pub heading_deg: f64,
    /// Write the MTPDU layout: `<dir>/<dir name>.json` sequence log, `final_raw/`, `originals/`, a GPX track.
    pub mtpdu: bool,
    /// With `mtpdu`, also write a `final_nadir/` copy (what MTPDU uploads when it exists).
    pub mtpdu_nadir: bool,
    /// Write MTPDU's `ImageDescription` JSON into each image.
    pub image_description: bool,
    /// Without `mtpdu`, write a `sequence.toml` with name, description, transport and tags.
    pub sequence_toml: bool,
    /// 360° images: an XMP GPano packet with `ProjectionType="equirectangular"`, and a 2:1 aspect
    /// (`height` is derived from `width`).
    pub equirectangular: bool,
    /// Pixel width (at most 65535).
    pub width: u32,
    /// Pixel height (at most 65535; ignored with `equirectangular`).
    pub height: u32,
    /// Pad each file to about this many bytes with APP15 segments of random bytes, so large files cost
    /// no encoding time.
    pub target_bytes: Option<u64>,
    /// Where the padding goes.
    pub padding: Padding,
    /// Sequence name.
    pub name: String,
    /// Sequence description.
    pub description: String,
    /// Transport type.
    pub transport: Option<TransportType>,
    /// Tags.
    pub tags: Vec<String>,
    /// Seed for pixels, padding and UUIDs: the same options give the same files.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            count: 10,
            start: (52.255262, 6.7798662),
            start_altitude: 14.0,
            start_time_ms: 1_589_093_103_000, // 2020-05-10T06:45:03Z
            utc_offset_minutes: 0,
            interval_ms: 1000,
            step_m: 2.0,
            heading_deg: 90.0,
            mtpdu: false,
            mtpdu_nadir: false,
            image_description: true,
            sequence_toml: false,
            equirectangular: false,
            width: 64,
            height: 32,
            target_bytes: None,
            padding: Padding::AfterScan,
            name: "Generated sequence".to_string(),
            description: "A synthetic sequence".to_string(),
            transport: TransportType::parse("Earth/Walk").ok(),
            tags: vec!["generated".to_string()],
            seed: 1,
        }
    }
}

impl GenerateOptions {
    /// Sets `step_m` so that consecutive images are `kmh` apart at `interval_ms`.
    pub fn with_speed_kmh(mut self, kmh: f64) -> Self {
        self.step_m = kmh / 3.6 * self.interval_ms as f64 / 1000.0;
        self
    }

    fn pixel_size(&self) -> (u32, u32) {
        if self.equirectangular {
            (self.width, (self.width / 2).max(1))
        } else {
            (self.width, self.height)
        }
    }
}

/// One generated image and the metadata written into it.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedImage {
    /// Path of the file.
    pub path: PathBuf,
    /// File name.
    pub file_name: String,
    /// Latitude written.
    pub latitude: f64,
    /// Longitude written.
    pub longitude: f64,
    /// Altitude written.
    pub altitude: f64,
    /// Capture time written, Unix ms UTC.
    pub captured_at_ms: i64,
    /// Heading written.
    pub heading: f64,
    /// Projection.
    pub projection: Projection,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// `MTPUploaderPhotoUUID` written (if `image_description`).
    pub photo_uuid: Option<String>,
    /// File size.
    pub size_bytes: u64,
}

/// What [`generate_sequence`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSequence {
    /// The sequence directory (as given).
    pub root: PathBuf,
    /// Where the images are (`root`, or `root/final_raw` / `root/final_nadir` in the MTPDU layout — the one
    /// a reader should pick).
    pub image_dir: PathBuf,
    /// The sequence UUID (written to the log and `ImageDescription`).
    pub sequence_uuid: String,
    /// Sequence name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Transport type.
    pub transport: Option<TransportType>,
    /// Tags.
    pub tags: Vec<String>,
    /// The images, in capture order.
    pub images: Vec<GeneratedImage>,
}

/// Where [`write_image`] puts the padding that brings a file up to its target size. Either way the padding is
/// APP15 segments (`MTPPAD\0` + random bytes), written from one reused buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Between the image data and the end-of-image marker: the header stays small, as in a real camera file,
    /// so reading headers costs the same as for a real file of that size. (Strictly, T.81 allows no segments
    /// after the last scan; libjpeg, jpeg-decoder and other common decoders skip them.)
    #[default]
    AfterScan,
    /// Before the image data: every header read has to skip over the padding segments (a stress test for
    /// the segment walker).
    BeforeScan,
}

/// How to damage a file written by [`write_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Cut the file in the middle of its image data (header intact, no end-of-image marker).
    TruncatedFile,
    /// Cut the file inside its EXIF segment.
    TruncatedHeader,
    /// Replace the EXIF data with random bytes (the APP1 segment itself is well-formed).
    GarbageExif,
    /// Keep only the first half of valid EXIF data.
    TruncatedExif,
    /// Write random bytes instead of a JPEG.
    NotAJpeg,
}

/// One image to write with [`write_image`]; `None` fields are left out of the EXIF.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Latitude (GPS tags are written only with both coordinates).
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Altitude, metres (negative: below sea level).
    pub altitude: Option<f64>,
    /// Capture time, Unix ms UTC (written as `DateTimeOriginal` etc. and GPS date/time).
    pub captured_at_ms: Option<i64>,
    /// `OffsetTimeOriginal`, minutes; `None` writes no offset (readers then assume UTC).
    pub utc_offset_minutes: Option<i16>,
    /// `GPSImgDirection`.
    pub heading: Option<f64>,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Write an XMP GPano packet declaring this projection.
    pub xmp_projection: Option<String>,
    /// MTPDU `ImageDescription` JSON to write.
    pub description: Option<MtpImageDescription>,
    /// Pad the file to about this size.
    pub target_bytes: Option<u64>,
    /// Where the padding goes.
    pub padding: Padding,
    /// Seed for pixels and padding.
    pub seed: u64,
    /// Damage to apply.
    pub corruption: Option<Corruption>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            latitude: Some(52.255262),
            longitude: Some(6.7798662),
            altitude: Some(14.0),
            captured_at_ms: Some(1_589_093_103_000),
            utc_offset_minutes: None,
            heading: Some(90.0),
            width: 64,
            height: 32,
            xmp_projection: None,
            description: None,
            target_bytes: None,
            padding: Padding::AfterScan,
            seed: 1,
            corruption: None,
        }
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn ascii(tag: Tag, s: &str) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![s.as_bytes().to_vec()]),
    }
}

fn rational(tag: Tag, values: &[f64], denom: u32) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Rational(
            values
                .iter()
                .map(|v| Rational {
                    num: (v.abs() * f64::from(denom)).round() as u32,
                    denom,
                })
                .collect(),
        ),
    }
}

fn dms(v: f64) -> [f64; 3] {
    let a = v.abs();
    let d = a.floor();
    let m = ((a - d) * 60.0).floor();
    let s = ((a - d) * 60.0 - m) * 60.0;
    [d, m, s]
}

/// The TIFF-structured EXIF data for `spec` (always at least a `Software` tag, so there is one IFD).
fn exif_tiff(spec: &ImageSpec) -> io::Result<Vec<u8>> {
    let mut fields = vec![
        ascii(Tag::Software, "mtp-sequence generator"),
        ascii(Tag::Make, "MTP"),
        ascii(Tag::Model, "Synthetic"),
        Field {
            tag: Tag::PixelXDimension,
            ifd_num: In::PRIMARY,
            value: Value::Long(vec![spec.width]),
        },
        Field {
            tag: Tag::PixelYDimension,
            ifd_num: In::PRIMARY,
            value: Value::Long(vec![spec.height]),
        },
    ];
    if let Some(d) = &spec.description {
        fields.push(ascii(Tag::ImageDescription, &d.to_json()));
    }
    if let (Some(lat), Some(lon)) = (spec.latitude, spec.longitude) {
        fields.push(Field {
            tag: Tag::GPSVersionID,
            ifd_num: In::PRIMARY,
            value: Value::Byte(vec![2, 3, 0, 0]),
        });
        fields.push(ascii(
            Tag::GPSLatitudeRef,
            if lat < 0.0 { "S" } else { "N" },
        ));
        fields.push(rational(Tag::GPSLatitude, &dms(lat), 1_000_000));
        fields.push(ascii(
            Tag::GPSLongitudeRef,
            if lon < 0.0 { "W" } else { "E" },
        ));
        fields.push(rational(Tag::GPSLongitude, &dms(lon), 1_000_000));
        if let Some(alt) = spec.altitude {
            fields.push(Field {
                tag: Tag::GPSAltitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Byte(vec![u8::from(alt < 0.0)]),
            });
            fields.push(rational(Tag::GPSAltitude, &[alt], 1000));
        }
    }
    if let Some(h) = spec.heading {
        fields.push(ascii(Tag::GPSImgDirectionRef, "T"));
        fields.push(rational(Tag::GPSImgDirection, &[h.rem_euclid(360.0)], 1000));
    }
    if let Some(ms) = spec.captured_at_ms {
        let utc = DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| other("capture time out of range"))?;
        let offset = spec.utc_offset_minutes.unwrap_or(0);
        let local = utc.naive_utc() + chrono::Duration::minutes(i64::from(offset));
        fields.push(ascii(
            Tag::DateTimeOriginal,
            &local.format("%Y:%m:%d %H:%M:%S").to_string(),
        ));
        fields.push(ascii(
            Tag::SubSecTimeOriginal,
            &format!("{:03}", utc.timestamp_subsec_millis()),
        ));
        if spec.utc_offset_minutes.is_some() {
            let sign = if offset < 0 { '-' } else { '+' };
            let a = offset.unsigned_abs();
            fields.push(ascii(
                Tag::OffsetTimeOriginal,
                &format!("{sign}{:02}:{:02}", a / 60, a % 60),
            ));
        }
        fields.push(ascii(
            Tag::GPSDateStamp,
            &format!("{:04}:{:02}:{:02}", utc.year(), utc.month(), utc.day()),
        ));
        let secs = f64::from(utc.second()) + f64::from(utc.timestamp_subsec_millis()) / 1000.0;
        fields.push(rational(
            Tag::GPSTimeStamp,
            &[f64::from(utc.hour()), f64::from(utc.minute()), secs],
            1000,
        ));
    }
    let mut w = Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut out = Cursor::new(Vec::new());
    w.write(&mut out, false).map_err(other)?;
    Ok(out.into_inner())
}

fn xmp_packet(projection: &str, width: u32, height: u32, heading: Option<f64>) -> String {
    let heading = heading
        .map(|h| format!(" GPano:PoseHeadingDegrees=\"{:.1}\"", h.rem_euclid(360.0)))
        .unwrap_or_default();
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\
         <rdf:Description rdf:about=\"\" xmlns:GPano=\"http://ns.google.com/photos/1.0/panorama/\" \
         GPano:ProjectionType=\"{projection}\" GPano:UsePanoramaViewer=\"True\" \
         GPano:FullPanoWidthPixels=\"{width}\" GPano:FullPanoHeightPixels=\"{height}\" \
         GPano:CroppedAreaImageWidthPixels=\"{width}\" GPano:CroppedAreaImageHeightPixels=\"{height}\" \
         GPano:CroppedAreaLeftPixels=\"0\" GPano:CroppedAreaTopPixels=\"0\"{heading}/>\
         </rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>"
    )
}

/// A small noisy gradient, encoded as a baseline JPEG.
fn encode_pixels(width: u32, height: u32, rng: &mut SmallRng) -> io::Result<Vec<u8>> {
    let (w16, h16) = (
        u16::try_from(width).map_err(|_| other("width above 65535"))?,
        u16::try_from(height).map_err(|_| other("height above 65535"))?,
    );
    let (w, h) = (width as usize, height as usize);
    let tint: [u8; 3] = [rng.gen(), rng.gen(), rng.gen()];
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let noise: u8 = rng.gen_range(0..24);
            pixels[i] = ((x * 255 / w.max(1)) as u8)
                .wrapping_add(tint[0])
                .wrapping_add(noise);
            pixels[i + 1] = ((y * 255 / h.max(1)) as u8)
                .wrapping_add(tint[1])
                .wrapping_add(noise);
            pixels[i + 2] = tint[2].wrapping_add(noise);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&pixels, w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(other)?;
    Ok(out)
}

const PAD_ID: &[u8] = b"MTPPAD\0";

/// Writes one JPEG as `spec` describes and returns its size in bytes.
pub fn write_image(path: &Path, spec: &ImageSpec) -> io::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    if spec.corruption == Some(Corruption::NotAJpeg) {
        let mut junk = vec![0u8; 2048];
        rng.fill_bytes(&mut junk);
        junk[0] = b'X';
        fs::write(path, &junk)?;
        return Ok(junk.len() as u64);
    }
    let encoded = encode_pixels(spec.width, spec.height, &mut rng)?;
    let segments = jpeg::read_segments(Cursor::new(&encoded)).map_err(other)?;
    let insert_at = match segments.first() {
        Some(s) if s.marker == marker::APP0 => s.end() as usize,
        _ => 2,
    };

    let mut tiff = exif_tiff(spec)?;
    match spec.corruption {
        Some(Corruption::GarbageExif) => rng.fill_bytes(&mut tiff),
        Some(Corruption::TruncatedExif) => tiff.truncate(tiff.len() / 2),
        _ => {}
    }
    let exif_seg = jpeg::exif_segment(&tiff).map_err(other)?;
    let xmp_seg = match &spec.xmp_projection {
        Some(p) => Some(
            jpeg::xmp_segment(&xmp_packet(p, spec.width, spec.height, spec.heading))
                .map_err(other)?,
        ),
        None => None,
    };

    let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
    out.write_all(&encoded[..insert_at])?;
    out.write_all(&exif_seg)?;
    let mut written = (insert_at + exif_seg.len()) as u64;
    if let Some(x) = &xmp_seg {
        out.write_all(x)?;
        written += x.len() as u64;
    }
    let rest = &encoded[insert_at..];
    let Some(body) = rest.strip_suffix(&[0xFF, marker::EOI]) else {
        return Err(other("encoder output does not end with EOI"));
    };
    let sos_end = segments
        .iter()
        .find(|s| s.marker == marker::SOS)
        .map(|s| s.end() as usize)
        .ok_or_else(|| other("encoder output has no SOS"))?;
    let unpadded = written + rest.len() as u64;
    let padding = spec.target_bytes.map_or(0, |t| t.saturating_sub(unpadded));
    if spec.padding == Padding::BeforeScan {
        written += write_padding(&mut out, padding, &mut rng)?;
    }
    let scan_start = written + (sos_end - insert_at) as u64;
    out.write_all(body)?;
    written += body.len() as u64;
    let scan_end = written;
    if spec.padding == Padding::AfterScan {
        written += write_padding(&mut out, padding, &mut rng)?;
    }
    out.write_all(&[0xFF, marker::EOI])?;
    written += 2;
    out.flush()?;
    drop(out);

    let cut = match spec.corruption {
        // Halfway through the scan data, so the header is intact.
        Some(Corruption::TruncatedFile) => Some(scan_start + (scan_end - scan_start) / 2),
        Some(Corruption::TruncatedHeader) => Some((insert_at + exif_seg.len() / 2) as u64),
        _ => None,
    };
    if let Some(len) = cut {
        File::options().write(true).open(path)?.set_len(len)?;
        return Ok(len);
    }
    Ok(written)
}

/// Writes about `amount` bytes of APP15 padding segments (less by up to a minimal segment's size) from one
/// reused buffer, so memory does not grow with the target size. Returns the bytes written.
fn write_padding<W: Write>(out: &mut W, amount: u64, rng: &mut SmallRng) -> io::Result<u64> {
    let min_seg = (4 + PAD_ID.len()) as u64;
    if amount < min_seg {
        return Ok(0);
    }
    let mut payload = vec![0u8; jpeg::MAX_PAYLOAD];
    payload[..PAD_ID.len()].copy_from_slice(PAD_ID);
    let mut left = amount;
    while left >= min_seg {
        let len = ((left - 4) as usize).min(jpeg::MAX_PAYLOAD);
        rng.fill_bytes(&mut payload[PAD_ID.len()..len]);
        out.write_all(&[0xFF, marker::APP15])?;
        out.write_all(&((len + 2) as u16).to_be_bytes())?;
        out.write_all(&payload[..len])?;
        left -= len as u64 + 4;
    }
    Ok(amount - left)
}

fn uuid_v4(rng: &mut SmallRng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The point `distance_m` from `(lat, lon)` along `bearing_deg` (great circle).
pub fn destination(lat: f64, lon: f64, bearing_deg: f64, distance_m: f64) -> (f64, f64) {
    const R: f64 = 6_371_008.8;
    let (p1, l1, b) = (lat.to_radians(), lon.to_radians(), bearing_deg.to_radians());
    let d = distance_m / R;
    let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
    let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
    let lon2 = (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (p2.to_degrees(), lon2)
}

fn local_iso(ms: i64, offset_minutes: i16) -> String {
    DateTime::from_timestamp_millis(ms + i64::from(offset_minutes) * 60_000)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Writes a synthetic sequence into `dir` (created if needed), which becomes the sequence directory: with
/// `mtpdu`, `dir/<dir name>.json`, `dir/final_raw/` (and `dir/final_nadir/`), `dir/originals/`,
/// `dir/<dir name>.gpx`; otherwise the images directly in `dir`, plus `sequence.toml` if asked.
pub fn generate_sequence(dir: &Path, opts: &GenerateOptions) -> io::Result<GeneratedSequence> {
    fs::create_dir_all(dir)?;
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x6d74_7073_6571);
    let sequence_uuid = uuid_v4(&mut rng);
    let (width, height) = opts.pixel_size();
    let projection = if opts.equirectangular {
        Projection::Equirectangular
    } else {
        Projection::Flat
    };
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sequence".to_string());
    let mut copies: Vec<(PathBuf, &str)> = Vec::new();
    if opts.mtpdu {
        fs::create_dir_all(dir.join("originals"))?;
        copies.push((dir.join("final_raw"), "final_raw"));
        if opts.mtpdu_nadir {
            copies.push((dir.join("final_nadir"), "final_nadir"));
        }
    } else {
        copies.push((dir.to_path_buf(), "final_raw"));
    }
    for (d, _) in &copies {
        fs::create_dir_all(d)?;
    }
    let prefix = if opts.mtpdu {
        // MTPDU names final images `<name with spaces as underscores>_<original>`; anything that is not safe
        // in a file name becomes `_` too.
        let safe: String = opts
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}_")
    } else {
        "IMG_".to_string()
    };

    let mut images = Vec::with_capacity(opts.count);
    let (mut lat, mut lon) = opts.start;
    for i in 0..opts.count {
        if i > 0 {
            (lat, lon) = destination(lat, lon, opts.heading_deg, opts.step_m);
        }
        let altitude = opts.start_altitude + i as f64 * 0.1;
        let t = opts.start_time_ms + i as i64 * opts.interval_ms;
        let photo_uuid = uuid_v4(&mut rng);
        let file_name = format!("{prefix}{:06}.jpg", i + 1);
        let mut size = 0;
        for (copy_dir, copy_name) in &copies {
            let description = opts.image_description.then(|| MtpImageDescription {
                sequence_uuid: Some(sequence_uuid.clone()),
                photo_uuid: Some(photo_uuid.clone()),
                altitude: Some(altitude),
                latitude: Some(lat),
                longitude: Some(lon),
                capture_time: format_map_capture_time(t),
                sequence_name: Some(opts.name.clone()),
                sequence_description: Some(opts.description.clone()),
                sequence_transport: opts.transport.as_ref().map(TransportType::mtpdu_string),
                sequence_tags: Some(opts.tags.clone()),
                image_copy: Some(copy_name.to_string()),
                image_projection: Some(projection.to_string()),
                compass_true_heading: None,
            });
            let spec = ImageSpec {
                latitude: Some(lat),
                longitude: Some(lon),
                altitude: Some(altitude),
                captured_at_ms: Some(t),
                utc_offset_minutes: Some(opts.utc_offset_minutes),
                heading: Some(opts.heading_deg),
                width,
                height,
                xmp_projection: opts.equirectangular.then(|| "equirectangular".to_string()),
                description,
                target_bytes: opts.target_bytes,
                padding: opts.padding,
                seed: opts
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64),
                corruption: None,
            };
            size = write_image(&copy_dir.join(&file_name), &spec)?;
        }
        images.push(GeneratedImage {
            path: copies
                .last()
                .map(|(d, _)| d.join(&file_name))
                .unwrap_or_default(),
            file_name,
            latitude: lat,
            longitude: lon,
            altitude,
            captured_at_ms: t,
            heading: opts.heading_deg.rem_euclid(360.0),
            projection: projection.clone(),
            width,
            height,
            photo_uuid: opts.image_description.then_some(photo_uuid),
            size_bytes: size,
        });
    }

    if opts.mtpdu {
        write_sequence_log(
            &dir.join(format!("{dir_name}.json")),
            &sequence_uuid,
            opts,
            &images,
        )?;
        write_gpx(&dir.join(format!("{dir_name}.gpx")), &images)?;
    } else if opts.sequence_toml {
        let meta = FolderMetadata {
            name: Some(opts.name.clone()),
            description: Some(opts.description.clone()),
            transport: opts.transport.as_ref().map(|t| t.to_string()),
            tags: Some(opts.tags.clone()),
            time_offset: None,
        };
        fs::write(
            dir.join(FOLDER_METADATA_FILE),
            toml::to_string(&meta).map_err(other)?,
        )?;
    }

    Ok(GeneratedSequence {
        root: dir.to_path_buf(),
        image_dir: copies.last().map(|(d, _)| d.clone()).unwrap_or_default(),
        sequence_uuid,
        name: opts.name.clone(),
        description: opts.description.clone(),
        transport: opts.transport.clone(),
        tags: opts.tags.clone(),
        images,
    })
}

/// MTPDU's sequence log, with its real field names (`sequence.uploader_*`, `photo.<uuid>.original/modified`).
fn write_sequence_log(
    path: &Path,
    sequence_uuid: &str,
    opts: &GenerateOptions,
    images: &[GeneratedImage],
) -> io::Result<()> {
    use serde_json::{json, Map, Value};
    let distance_m: f64 = images
        .windows(2)
        .map(|w| haversine_m(w[0].latitude, w[0].longitude, w[1].latitude, w[1].longitude))
        .sum();
    let first = images
        .first()
        .map(|i| i.captured_at_ms)
        .unwrap_or(opts.start_time_ms);
    let last = images
        .last()
        .map(|i| i.captured_at_ms)
        .unwrap_or(opts.start_time_ms);
    let duration_s = (last - first) / 1000;
    let mut photos = Map::new();
    for (i, img) in images.iter().enumerate() {
        let exported = json!({
            "filename": img.file_name,
            "GPSDateTime": local_iso(img.captured_at_ms, 0),
            "originalDateTime": local_iso(img.captured_at_ms, opts.utc_offset_minutes),
            "altitude": img.altitude,
            "latitude": img.latitude,
            "longitude": img.longitude,
            "gps_direction_ref": "T",
            "heading": img.heading,
            "pitch": 0,
            "roll": 0,
            "camera_make": "MTP",
            "camera_model": "Synthetic",
            "projection": if img.projection == Projection::Flat { String::new() } else { img.projection.to_string() },
        });
        let mut connections = Map::new();
        if let Some(next) = images.get(i + 1) {
            let d = haversine_m(img.latitude, img.longitude, next.latitude, next.longitude);
            let dt = (next.captured_at_ms - img.captured_at_ms) as f64 / 1000.0;
            connections.insert(
                next.photo_uuid
                    .clone()
                    .unwrap_or_else(|| next.file_name.clone()),
                json!({
                    "distance_mtrs": d,
                    "heading_deg": opts.heading_deg,
                    "pitch_deg": 0,
                    "time_sec": dt,
                    "speed_kmh": if dt > 0.0 { d * 3.6 / dt } else { 0.0 },
                    "elevation_mtrs": next.altitude - img.altitude,
                }),
            );
        }
        photos.insert(
            img.photo_uuid
                .clone()
                .unwrap_or_else(|| (i + 1).to_string()),
            json!({ "original": exported, "modified": exported, "connections": connections }),
        );
    }
    let log = json!({
        "sequence": {
            "id": sequence_uuid,
            "distance_km": distance_m / 1000.0,
            "earliest_time": local_iso(first, opts.utc_offset_minutes),
            "latest_time": local_iso(last, opts.utc_offset_minutes),
            "durationsec": duration_s,
            "average_speed_kmh": if duration_s > 0 { distance_m / 1000.0 / (duration_s as f64 / 3600.0) } else { 0.0 },
            "uploader_sequence_name": opts.name,
            "uploader_sequence_description": opts.description,
            "uploader_transport_type": opts.transport.as_ref().map(|t| t.parent().to_string()).unwrap_or_default(),
            "uploader_transport_method": opts.transport.as_ref().and_then(|t| t.child().map(str::to_string)).unwrap_or_default(),
            "uploader_tags": opts.tags,
            "created": local_iso(opts.start_time_ms, 0),
            "uploader_camera": "Other camera",
            "destination": Value::Object(Map::new()),
        },
        "photo": photos,
    });
    fs::write(path, serde_json::to_vec(&log).map_err(other)?)
}

fn write_gpx(path: &Path, images: &[GeneratedImage]) -> io::Result<()> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"mtp-sequence\" \
         xmlns=\"http://www.topografix.com/GPX/1/1\"><trk><trkseg>\n",
    );
    for i in images {
        let time = crate::format_utc(i.captured_at_ms);
        s.push_str(&format!(
            "<trkpt lat=\"{}\" lon=\"{}\"><ele>{}</ele><time>{time}</time></trkpt>\n",
            i.latitude, i.longitude, i.altitude
        ));
    }
    s.push_str("</trkseg></trk></gpx>\n");
    fs::write(path, s)
}
