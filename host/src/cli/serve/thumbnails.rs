//! Thumbnails for the page (`GET /api/thumbnail`): the small JPEG a camera embeds in a photo's EXIF
//! (IFD1, `JPEGInterchangeFormat` and its length: Exif 2.32, section 4.5.8), served as it is. Nothing is
//! decoded or scaled: a photo without one has no thumbnail. Only the images of a sequence this server has
//! inspected are served, and only what the EXIF segment holds, which a JPEG caps at 64 KiB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use plugin_api::jpeg::{marker, SegmentReader, EXIF_ID, MAX_PAYLOAD};

/// The sequences inspected since the server started: per folder (resolved), its images by file name. Only
/// their photos are served.
#[derive(Default)]
pub(crate) struct Inspected {
    sequences: Mutex<BTreeMap<PathBuf, BTreeMap<String, PathBuf>>>,
}

/// Why no thumbnail is served (the message names the file).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ThumbnailError {
    #[error("{0}: not a folder inspected by this server (inspect it first)")]
    NotInspected(PathBuf),
    #[error("{0:?}: not an image of that sequence")]
    NotAnImage(String),
    #[error("{0}: no embedded thumbnail")]
    None(PathBuf),
    #[error("{path}: {cause}")]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl Inspected {
    /// Remembers the images of the sequence in `dir`, as the inspection found them.
    pub(crate) fn add(&self, dir: &Path, images: Vec<(String, PathBuf)>) {
        if let Ok(root) = dir.canonicalize() {
            self.sequences
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(root, images.into_iter().collect());
        }
    }

    /// The embedded thumbnail of image `file` (its file name) of the sequence inspected in `dir`.
    pub(crate) fn thumbnail(&self, dir: &Path, file: &str) -> Result<Vec<u8>, ThumbnailError> {
        let not_inspected = || ThumbnailError::NotInspected(dir.to_path_buf());
        let root = dir.canonicalize().map_err(|_| not_inspected())?;
        let path = {
            let sequences = self
                .sequences
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let images = sequences.get(&root).ok_or_else(not_inspected)?;
            images
                .get(file)
                .cloned()
                .ok_or_else(|| ThumbnailError::NotAnImage(file.to_string()))?
        };
        let opened = std::fs::File::open(&path).map_err(|cause| ThumbnailError::Unreadable {
            path: path.clone(),
            cause,
        })?;
        embedded_thumbnail(std::io::BufReader::new(opened)).ok_or(ThumbnailError::None(path))
    }
}

/// The JPEG in the EXIF segment's IFD1, if the file has one that starts as a JPEG does.
fn embedded_thumbnail<R: std::io::Read + std::io::Seek>(file: R) -> Option<Vec<u8>> {
    let mut reader = SegmentReader::new(file).ok()?;
    while let Some(segment) = reader.next_segment().ok()? {
        if segment.marker != marker::APP1 {
            continue;
        }
        let payload = reader.read_payload(MAX_PAYLOAD).ok()?;
        let Some(tiff) = payload.strip_prefix(EXIF_ID) else {
            continue;
        };
        let exif = exif::Reader::new().read_raw(tiff.to_vec()).ok()?;
        let number = |tag| {
            exif.get_field(tag, exif::In::THUMBNAIL)
                .and_then(|f| f.value.get_uint(0))
                .and_then(|n| usize::try_from(n).ok())
        };
        let offset = number(exif::Tag::JPEGInterchangeFormat)?;
        let length = number(exif::Tag::JPEGInterchangeFormatLength)?;
        let thumbnail = exif.buf().get(offset..offset.checked_add(length)?)?;
        return thumbnail
            .starts_with(&[0xFF, marker::SOI])
            .then(|| thumbnail.to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A JPEG whose EXIF holds `thumbnail` in IFD1, written with kamadak-exif's writer.
    fn jpeg_with_thumbnail(thumbnail: &[u8]) -> Vec<u8> {
        let make = exif::Field {
            tag: exif::Tag::Make,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Ascii(vec![b"Test".to_vec()]),
        };
        let mut writer = exif::experimental::Writer::new();
        writer.push_field(&make);
        writer.set_jpeg(thumbnail, exif::In::THUMBNAIL);
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        let mut file = vec![0xFF, marker::SOI];
        file.extend(plugin_api::jpeg::exif_segment(tiff.get_ref()).unwrap());
        file.extend([0xFF, marker::EOI]);
        file
    }

    #[test]
    fn finds_the_embedded_thumbnail_and_only_a_jpeg_one() {
        let thumb = [0xFF, 0xD8, 0xFF, 0xD9];
        let file = jpeg_with_thumbnail(&thumb);
        assert_eq!(
            embedded_thumbnail(Cursor::new(&file)).as_deref(),
            Some(&thumb[..])
        );
        assert_eq!(
            embedded_thumbnail(Cursor::new(jpeg_with_thumbnail(b"not a jpeg"))),
            None
        );
        assert_eq!(embedded_thumbnail(Cursor::new(b"junk".to_vec())), None);
    }

    #[test]
    fn serves_only_images_of_inspected_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("a.jpg");
        std::fs::write(&image, jpeg_with_thumbnail(&[0xFF, 0xD8, 0xFF, 0xD9])).unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"not a jpeg").unwrap();
        let inspected = Inspected::default();
        assert!(matches!(
            inspected.thumbnail(dir.path(), "a.jpg"),
            Err(ThumbnailError::NotInspected(_))
        ));
        inspected.add(
            dir.path(),
            vec![
                ("a.jpg".into(), image),
                ("b.jpg".into(), dir.path().join("b.jpg")),
            ],
        );
        assert_eq!(inspected.thumbnail(dir.path(), "a.jpg").unwrap().len(), 4);
        assert!(matches!(
            inspected.thumbnail(dir.path(), "b.jpg"),
            Err(ThumbnailError::None(_))
        ));
        for other in ["../a.jpg", "c.jpg", "/etc/passwd"] {
            assert!(
                matches!(
                    inspected.thumbnail(dir.path(), other),
                    Err(ThumbnailError::NotAnImage(_))
                ),
                "{other}"
            );
        }
    }
}
