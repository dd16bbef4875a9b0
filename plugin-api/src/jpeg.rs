//! A small JPEG marker walker: iterates the segments of a JPEG stream from SOI up to and including SOS (the
//! start of the entropy-coded image data), reporting each segment's offset and length and reading only the
//! payloads the caller asks for. Everything else is skipped with a seek, so the cost and memory of a walk
//! do not depend on the size of the image (or of large APPn segments).
//!
//! It also builds segments and can stream a JPEG with its EXIF APP1 segment replaced, which is what an
//! uploader needs to rewrite metadata without loading or re-encoding the image.
//!
//! ```
//! use std::io::Cursor;
//! use plugin_api::jpeg::{self, marker, SegmentReader};
//!
//! // SOI, APP1 "Exif", SOF0 (8x16 pixels, 1 component), SOS, a byte of scan data, EOI.
//! let mut bytes = vec![0xFF, 0xD8];
//! bytes.extend(jpeg::exif_segment(b"MM\0\x2a\0\0\0\x08")?);
//! bytes.extend(jpeg::segment(marker::SOF0, &[8, 0, 16, 0, 8, 1, 1, 0x11, 0])?);
//! bytes.extend(jpeg::segment(marker::SOS, &[1, 1, 0, 0, 63, 0])?);
//! bytes.extend([0x00, 0xFF, 0xD9]);
//!
//! let mut reader = SegmentReader::new(Cursor::new(&bytes))?;
//! let mut markers = Vec::new();
//! while let Some(seg) = reader.next_segment()? {
//!     if jpeg::is_sof(seg.marker) {
//!         let payload = reader.read_payload(16)?;
//!         assert_eq!(jpeg::sof_dimensions(&payload), Some((8, 16)));
//!     }
//!     markers.push(seg.marker);
//! }
//! assert_eq!(markers, [marker::APP1, marker::SOF0, marker::SOS]);
//! # Ok::<(), plugin_api::jpeg::JpegError>(())
//! ```

use std::io::{self, Read, Seek, SeekFrom, Write};

/// JPEG marker codes (the byte after `0xFF`).
pub mod marker {
    /// Start of image.
    pub const SOI: u8 = 0xD8;
    /// End of image.
    pub const EOI: u8 = 0xD9;
    /// Start of scan: entropy-coded data follows its header.
    pub const SOS: u8 = 0xDA;
    /// Baseline DCT frame header.
    pub const SOF0: u8 = 0xC0;
    /// Huffman tables.
    pub const DHT: u8 = 0xC4;
    /// Quantisation tables.
    pub const DQT: u8 = 0xDB;
    /// Restart interval.
    pub const DRI: u8 = 0xDD;
    /// APP0 (JFIF).
    pub const APP0: u8 = 0xE0;
    /// APP1 (EXIF, XMP).
    pub const APP1: u8 = 0xE1;
    /// APP15, the last application segment.
    pub const APP15: u8 = 0xEF;
    /// Comment.
    pub const COM: u8 = 0xFE;
    /// Temporary private use (stand-alone).
    pub const TEM: u8 = 0x01;
    /// First restart marker (stand-alone; RST0..RST7 are 0xD0..0xD7).
    pub const RST0: u8 = 0xD0;
    /// Last restart marker.
    pub const RST7: u8 = 0xD7;
}

/// Identifier that starts the payload of an EXIF APP1 segment.
pub const EXIF_ID: &[u8] = b"Exif\0\0";
/// Identifier that starts the payload of a standard XMP APP1 segment.
pub const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// Largest payload a segment can hold (its 16-bit length field counts itself).
pub const MAX_PAYLOAD: usize = 65533;

/// Junk tolerated between segments before a stream is declared corrupt. Some writers leave a few stray
/// bytes (libjpeg accepts them with a warning); scanning further would mean reading a garbage file to its end.
const MAX_JUNK: u64 = 4096;
const BUF_SIZE: usize = 16 * 1024;

/// Errors from walking or writing JPEG segments.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The stream does not start with an SOI marker.
    #[error("not a JPEG file (no SOI marker at the start)")]
    NotJpeg,
    /// The stream ended inside the header (before SOS).
    #[error("truncated JPEG: the file ends at byte {offset}, inside the header")]
    Truncated {
        /// Offset where data ran out.
        offset: u64,
    },
    /// A byte sequence that is not a valid marker where one was expected.
    #[error("corrupt JPEG: invalid marker 0x{marker:02X} at byte {offset}")]
    InvalidMarker {
        /// The marker code found.
        marker: u8,
        /// Offset of its `0xFF`.
        offset: u64,
    },
    /// More than a few bytes of junk where a marker was expected.
    #[error("corrupt JPEG: no marker found after byte {offset}")]
    MarkerNotFound {
        /// Offset where the search started.
        offset: u64,
    },
    /// A segment length field smaller than 2.
    #[error("corrupt JPEG: invalid segment length {length} at byte {offset}")]
    InvalidLength {
        /// The length field's value.
        length: u16,
        /// Offset of the segment's marker.
        offset: u64,
    },
    /// A payload too large for one segment.
    #[error("segment payload of {len} bytes exceeds the JPEG limit of {MAX_PAYLOAD}")]
    TooLarge {
        /// The payload length asked for.
        len: usize,
    },
}

/// One marker segment: where it is and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The marker code (`0xE1` for APP1).
    pub marker: u8,
    /// Offset of the segment's `0xFF` marker byte in the stream.
    pub offset: u64,
    /// Total length in bytes: 2 for a stand-alone marker, else 4 + the payload length.
    pub length: u64,
}

impl Segment {
    /// `true` for markers that carry a length and payload (everything except SOI, EOI, RSTn and TEM).
    pub fn has_payload(&self) -> bool {
        has_length(self.marker)
    }

    /// Offset of the first payload byte.
    pub fn payload_offset(&self) -> u64 {
        self.offset + if self.has_payload() { 4 } else { 2 }
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> u64 {
        self.length
            .saturating_sub(if self.has_payload() { 4 } else { 2 })
    }

    /// Offset just past the segment.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

fn has_length(m: u8) -> bool {
    !matches!(
        m,
        marker::SOI | marker::EOI | marker::TEM | marker::RST0..=marker::RST7
    )
}

/// `true` for the start-of-frame markers (SOF0..SOF15 except DHT, JPG and DAC), whose payload holds the
/// image size.
pub fn is_sof(m: u8) -> bool {
    (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// The `(width, height)` in a start-of-frame payload, if it is long enough and non-zero.
pub fn sof_dimensions(payload: &[u8]) -> Option<(u32, u32)> {
    if payload.len() < 5 {
        return None;
    }
    let height = u32::from(u16::from_be_bytes([payload[1], payload[2]]));
    let width = u32::from(u16::from_be_bytes([payload[3], payload[4]]));
    (width > 0 && height > 0).then_some((width, height))
}

/// Walks the segments of a JPEG stream up to and including SOS. See the [module docs](self).
///
/// The reader keeps a small internal buffer (16 KiB), so `inner` need not be buffered.
#[derive(Debug)]
pub struct SegmentReader<R> {
    inner: R,
    buf: Vec<u8>,
    buf_pos: usize,
    buf_len: usize,
    /// Absolute offset of the next unread byte.
    pos: u64,
    /// Payload bytes of the current segment not yet consumed.
    payload_left: u64,
    done: bool,
}

impl<R: Read + Seek> SegmentReader<R> {
    /// Starts a walk at the current position of `inner`, which must be the SOI marker (offsets reported are
    /// relative to it).
    pub fn new(inner: R) -> Result<Self, JpegError> {
        let mut r = SegmentReader {
            inner,
            buf: vec![0; BUF_SIZE],
            buf_pos: 0,
            buf_len: 0,
            pos: 0,
            payload_left: 0,
            done: false,
        };
        let mut soi = [0u8; 2];
        match r.read_exact_buf(&mut soi) {
            Ok(()) if soi == [0xFF, marker::SOI] => Ok(r),
            Ok(()) | Err(JpegError::Truncated { .. }) => Err(JpegError::NotJpeg),
            Err(e) => Err(e),
        }
    }

    /// Gives back the underlying reader (its position is unspecified).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fill(&mut self) -> Result<bool, JpegError> {
        if self.buf_pos < self.buf_len {
            return Ok(true);
        }
        let n = loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.buf_pos = 0;
        self.buf_len = n;
        Ok(n > 0)
    }

    fn read_u8(&mut self) -> Result<u8, JpegError> {
        if !self.fill()? {
            return Err(JpegError::Truncated { offset: self.pos });
        }
        let b = self.buf[self.buf_pos];
        self.buf_pos += 1;
        self.pos += 1;
        Ok(b)
    }

    fn read_exact_buf(&mut self, out: &mut [u8]) -> Result<(), JpegError> {
        let mut done = 0;
        // Large reads bypass the buffer once it is drained.
        while done < out.len() {
            if self.buf_pos < self.buf_len {
                let n = (self.buf_len - self.buf_pos).min(out.len() - done);
                out[done..done + n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
                self.buf_pos += n;
                done += n;
                self.pos += n as u64;
            } else if out.len() - done >= BUF_SIZE {
                match self.inner.read(&mut out[done..]) {
                    Ok(0) => return Err(JpegError::Truncated { offset: self.pos }),
                    Ok(n) => {
                        done += n;
                        self.pos += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            } else if !self.fill()? {
                return Err(JpegError::Truncated { offset: self.pos });
            }
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), JpegError> {
        let buffered = (self.buf_len - self.buf_pos) as u64;
        if n <= buffered {
            self.buf_pos += n as usize;
        } else {
            let beyond = n - buffered;
            self.buf_pos = 0;
            self.buf_len = 0;
            let step =
                i64::try_from(beyond).map_err(|_| JpegError::Truncated { offset: self.pos })?;
            self.inner.seek(SeekFrom::Current(step))?;
        }
        self.pos += n;
        Ok(())
    }

    /// The next segment, or `None` after SOS (or a premature EOI) has been returned. The payload of the
    /// returned segment can be read with [`read_payload`](Self::read_payload) before the next call; whatever
    /// is not read is skipped.
    pub fn next_segment(&mut self) -> Result<Option<Segment>, JpegError> {
        if self.done {
            return Ok(None);
        }
        if self.payload_left > 0 {
            let left = self.payload_left;
            self.payload_left = 0;
            self.skip(left)?;
        }
        let search_start = self.pos;
        // Tolerate a little junk before the marker, then any number of 0xFF fill bytes.
        loop {
            let b = self.read_u8()?;
            if b == 0xFF {
                break;
            }
            if self.pos - search_start > MAX_JUNK {
                return Err(JpegError::MarkerNotFound {
                    offset: search_start,
                });
            }
        }
        let mut code = self.read_u8()?;
        while code == 0xFF {
            code = self.read_u8()?;
        }
        let offset = self.pos - 2;
        match code {
            0x00 | marker::SOI => {
                return Err(JpegError::InvalidMarker {
                    marker: code,
                    offset,
                })
            }
            marker::EOI => {
                self.done = true;
                return Ok(Some(Segment {
                    marker: code,
                    offset,
                    length: 2,
                }));
            }
            c if !has_length(c) => {
                return Ok(Some(Segment {
                    marker: code,
                    offset,
                    length: 2,
                }))
            }
            _ => {}
        }
        let mut len = [0u8; 2];
        self.read_exact_buf(&mut len)?;
        let length = u16::from_be_bytes(len);
        if length < 2 {
            return Err(JpegError::InvalidLength { length, offset });
        }
        self.payload_left = u64::from(length) - 2;
        if code == marker::SOS {
            self.done = true;
        }
        Ok(Some(Segment {
            marker: code,
            offset,
            length: u64::from(length) + 2,
        }))
    }

    /// Reads up to `limit` further payload bytes of the segment last returned by
    /// [`next_segment`](Self::next_segment). Repeated calls continue where the previous one stopped.
    pub fn read_payload(&mut self, limit: usize) -> Result<Vec<u8>, JpegError> {
        let n = usize::try_from(self.payload_left)
            .unwrap_or(usize::MAX)
            .min(limit);
        let mut out = vec![0; n];
        self.read_exact_buf(&mut out)?;
        self.payload_left -= n as u64;
        Ok(out)
    }
}

/// Every segment of a JPEG stream from just after SOI up to and including SOS (or a premature EOI).
pub fn read_segments<R: Read + Seek>(inner: R) -> Result<Vec<Segment>, JpegError> {
    let mut r = SegmentReader::new(inner)?;
    let mut out = Vec::new();
    while let Some(s) = r.next_segment()? {
        out.push(s);
    }
    Ok(out)
}

/// A complete segment (`0xFF`, marker, length, payload).
pub fn segment(marker: u8, payload: &[u8]) -> Result<Vec<u8>, JpegError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(JpegError::TooLarge { len: payload.len() });
    }
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend([0xFF, marker]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// An EXIF APP1 segment holding `tiff` (TIFF-structured EXIF data, as written by
/// `exif::experimental::Writer`).
pub fn exif_segment(tiff: &[u8]) -> Result<Vec<u8>, JpegError> {
    let mut payload = Vec::with_capacity(tiff.len() + EXIF_ID.len());
    payload.extend_from_slice(EXIF_ID);
    payload.extend_from_slice(tiff);
    segment(marker::APP1, &payload)
}

/// A standard XMP APP1 segment holding the packet `xmp`.
pub fn xmp_segment(xmp: &str) -> Result<Vec<u8>, JpegError> {
    let mut payload = Vec::with_capacity(xmp.len() + XMP_ID.len());
    payload.extend_from_slice(XMP_ID);
    payload.extend_from_slice(xmp.as_bytes());
    segment(marker::APP1, &payload)
}

/// Streams the JPEG in `src` to `dst` with its EXIF replaced by `new_exif_segment` (a complete segment, e.g.
/// from [`exif_segment`]), returning the number of bytes written.
///
/// Existing EXIF APP1 segments are dropped; the new one goes where the first was, or else right after SOI
/// and a leading APP0 (JFIF). Everything else, including the image data, is copied unchanged. Memory use is
/// independent of the image size.
pub fn replace_exif<R: Read + Seek, W: Write>(
    mut src: R,
    mut dst: W,
    new_exif_segment: &[u8],
) -> Result<u64, JpegError> {
    let start = src.stream_position()?;
    // First pass: find the segments and which of them are EXIF.
    let mut plan: Vec<(Segment, bool)> = Vec::new();
    {
        let mut r = SegmentReader::new(&mut src)?;
        while let Some(seg) = r.next_segment()? {
            let is_exif = seg.marker == marker::APP1 && r.read_payload(EXIF_ID.len())? == EXIF_ID;
            plan.push((seg, is_exif));
        }
    }
    let insert_after = match plan.iter().position(|(_, exif)| *exif) {
        Some(i) => i, // replaces segment i
        None => match plan.first() {
            Some((s, _)) if s.marker == marker::APP0 => 1,
            _ => 0,
        },
    };
    src.seek(SeekFrom::Start(start))?;
    let mut written = 0u64;
    let copy_range = |src: &mut R, dst: &mut W, from: u64, len: u64| -> Result<u64, JpegError> {
        src.seek(SeekFrom::Start(start + from))?;
        let n = io::copy(&mut src.by_ref().take(len), dst)?;
        if n != len {
            return Err(JpegError::Truncated { offset: from + n });
        }
        Ok(n)
    };
    written += copy_range(&mut src, &mut dst, 0, 2)?;
    let mut wrote_new = false;
    for (i, (seg, is_exif)) in plan.iter().enumerate() {
        if !wrote_new && i == insert_after {
            dst.write_all(new_exif_segment)?;
            written += new_exif_segment.len() as u64;
            wrote_new = true;
        }
        if *is_exif {
            continue;
        }
        if seg.marker == marker::SOS || seg.marker == marker::EOI {
            // The scan and everything after it, unchanged.
            src.seek(SeekFrom::Start(start + seg.offset))?;
            written += io::copy(&mut src, &mut dst)?;
            return Ok(written);
        }
        written += copy_range(&mut src, &mut dst, seg.offset, seg.length)?;
    }
    if !wrote_new {
        dst.write_all(new_exif_segment)?;
        written += new_exif_segment.len() as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend(segment(marker::APP0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0").unwrap());
        b.extend(exif_segment(b"old-exif").unwrap());
        b.extend(segment(marker::APP15, &vec![7u8; 40_000]).unwrap());
        b.extend(segment(marker::SOF0, &[8, 0, 2, 0, 3, 1, 1, 0x11, 0]).unwrap());
        b.extend(segment(marker::SOS, &[1, 1, 0, 0, 63, 0]).unwrap());
        b.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]);
        b
    }

    #[test]
    fn walks_and_skips() {
        let data = sample();
        let segs = read_segments(Cursor::new(&data)).unwrap();
        let markers: Vec<u8> = segs.iter().map(|s| s.marker).collect();
        assert_eq!(
            markers,
            [
                marker::APP0,
                marker::APP1,
                marker::APP15,
                marker::SOF0,
                marker::SOS
            ]
        );
        assert_eq!(segs[0].offset, 2);
        assert_eq!(segs[2].payload_len(), 40_000);
        assert_eq!(segs[3].offset, segs[2].end());
        assert_eq!(&data[segs[4].offset as usize..][..2], &[0xFF, 0xDA]);
    }

    #[test]
    fn truncated_and_garbage() {
        let data = sample();
        for cut in [0, 1, 3, 5, 30, 100, 40_000] {
            assert!(
                read_segments(Cursor::new(&data[..cut])).is_err(),
                "cut {cut}"
            );
        }
        assert!(matches!(
            read_segments(Cursor::new(b"GIF89a")),
            Err(JpegError::NotJpeg)
        ));
        let mut junk = vec![0xFF, 0xD8];
        junk.extend(vec![0x11; 10_000]);
        assert!(matches!(
            read_segments(Cursor::new(&junk)),
            Err(JpegError::MarkerNotFound { .. })
        ));
        let bad_len = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01];
        assert!(matches!(
            read_segments(Cursor::new(&bad_len)),
            Err(JpegError::InvalidLength { .. })
        ));
    }

    #[test]
    fn replaces_exif_and_keeps_the_rest() {
        let data = sample();
        let new = exif_segment(b"new-exif-data").unwrap();
        let mut out = Vec::new();
        let n = replace_exif(Cursor::new(&data), &mut out, &new).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(
            out.len(),
            data.len() - "old-exif".len() + "new-exif-data".len()
        );
        let segs = read_segments(Cursor::new(&out)).unwrap();
        assert_eq!(segs[1].marker, marker::APP1);
        assert_eq!(
            &out[segs[1].payload_offset() as usize..segs[1].end() as usize],
            &new[4..]
        );
        assert!(out.ends_with(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]));

        // Without EXIF: inserted after APP0.
        let mut no_exif = vec![0xFF, 0xD8];
        no_exif.extend(segment(marker::APP0, b"JFIF\0").unwrap());
        no_exif.extend(segment(marker::SOS, &[0]).unwrap());
        no_exif.extend([0xAA, 0xFF, 0xD9]);
        let mut out = Vec::new();
        replace_exif(Cursor::new(&no_exif), &mut out, &new).unwrap();
        let segs = read_segments(Cursor::new(&out)).unwrap();
        let markers: Vec<u8> = segs.iter().map(|s| s.marker).collect();
        assert_eq!(markers, [marker::APP0, marker::APP1, marker::SOS]);
    }

    #[test]
    fn segment_limits() {
        assert!(segment(marker::APP1, &vec![0; MAX_PAYLOAD]).is_ok());
        assert!(matches!(
            segment(marker::APP1, &vec![0; MAX_PAYLOAD + 1]),
            Err(JpegError::TooLarge { .. })
        ));
    }
}
