//! A sequence's images as the host holds them while it works on the sequence: pages of [`PAGE`]
//! images, each page the images' JSON compressed with LZ4 (`lz4_flex`). A 100,000-image sequence is
//! about 50 MB as `ImageInfo`s and their strings, and 35 MB as JSON; its packed pages are 9 MB (the
//! JSON of neighbouring images repeats its keys, folder and source names; the digits of positions and
//! times are most of what is left). Everything the host does with the images is a pass in order
//! (writing the descriptor to the state store, its folder summary) or a range (lending images to a
//! plugin), so nothing needs them all unpacked at once (docs/architecture.md, "Memory").
//!
//! Past [`IN_MEMORY_PAGES`] pages the pages live in a scratch file, not on the heap: 9 MB held for
//! the whole run was the largest thing left that grew with the sequence, and a page is read again only
//! a few times a run (a pass costs 100 reads of 90 KB, nothing beside a plugin's own work). The file
//! is unnamed (`mtp_sequence::scratch`, in the system's temporary directory, `TMPDIR` on Unix): the
//! system removes it when the last handle closes, a crash included, and nothing can open it by name.
//! It is read with positioned reads (`pread`), never mapped: mapped pages count in the resident set
//! once touched, which is what the file is there to avoid. Small sequences stay in memory because a
//! file is a descriptor held as long as the sequence: `mtp upload` of a camera tree holds every
//! folder's sequence at once, and a thousand open files would meet the usual limit of 1,024; a file
//! only per sequence of more than [`IN_MEMORY_PAGES`] pages keeps that to uploads of millions of
//! images.
//!
//! A page's hash is taken when it is packed, so the content hash (the run's eligibility answers, the
//! state store's "descriptor already written") needs no read of the file. Reading a page can fail
//! (the disk, or the file shortened under us): that is a [`PagesError`] for the caller, never a panic.
//!
//! Written here rather than taken from a crate: what is needed is a list of compressed pages and
//! three passes over them; the compression itself is `lz4_flex`'s.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use mtp_sequence::{scratch, ScannedSequence, SequenceError, SkippedImage};
use plugin_api::sequence::{ImageInfo, SequenceDescriptor, SequenceSource};
use plugin_api::transport::TransportType;
use serde::ser::{Error as _, SerializeSeq, Serializer};
use serde::Serialize;

/// Images per page: the SDK's page (`plugin_api::sdk::images::PAGE`), so a plugin reading a page at a
/// time gets each page's JSON as it was packed, without decoding it.
pub(crate) const PAGE: usize = plugin_api::sdk::images::PAGE as usize;

/// Pages kept in memory before every page moves to a scratch file (see the module's docs): 4,000
/// images, about 360 KB.
const IN_MEMORY_PAGES: usize = 4;

/// Why the images cannot be packed, or a page read back.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// An image could not be written as JSON.
    #[error("cannot hold the images: {0}")]
    Encode(serde_json::Error),
    /// The scratch file the pages are kept in could not be created, written or read.
    #[error(
        "cannot {action} the scratch file of packed images in {}: {}",
        dir.display(),
        mtp_sequence::scratch::describe_error(cause)
    )]
    Scratch {
        /// "create", "write" or "read".
        action: &'static str,
        /// The directory the file is in (the system's temporary directory).
        dir: PathBuf,
        /// The I/O error.
        cause: io::Error,
    },
    /// A page read back is not what was packed (only a damaged scratch file can do that).
    #[error("a page of packed images read back from {held} does not decode: {detail}")]
    Damaged {
        /// "memory", or the scratch file and its directory.
        held: String,
        /// The decoder's message.
        detail: String,
    },
}

/// The file the pages of one [`PackedImages`] (and its clones) are written to, each page once, one
/// after the other.
#[derive(Debug)]
struct Scratch {
    file: File,
    /// Where it is, for messages (the file has no name).
    dir: PathBuf,
    /// The file's length, where the next page goes. Clones share the file and may each append; where
    /// there are no positioned reads and writes, also held across each seek and its read or write.
    end: Mutex<u64>,
}

impl Scratch {
    fn create() -> Result<Scratch, PagesError> {
        let dir = scratch::dir();
        match scratch::create() {
            Ok(file) => Ok(Scratch {
                file,
                dir,
                end: Mutex::new(0),
            }),
            Err(cause) => Err(PagesError::Scratch {
                action: "create",
                dir,
                cause,
            }),
        }
    }

    fn failed(&self, action: &'static str, cause: io::Error) -> PagesError {
        PagesError::Scratch {
            action,
            dir: self.dir.clone(),
            cause,
        }
    }

    /// Writes `bytes` at the end of the file; where they start.
    fn append(&self, bytes: &[u8]) -> Result<u64, PagesError> {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = *end;
        #[cfg(unix)]
        let written = std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, offset);
        #[cfg(not(unix))]
        let written = {
            use std::io::{Seek, Write};
            (&self.file)
                .seek(io::SeekFrom::Start(offset))
                .and_then(|_| (&self.file).write_all(bytes))
        };
        written.map_err(|cause| self.failed("write", cause))?;
        // A failed write leaves the end where it was: the next page writes over what it left.
        *end += bytes.len() as u64;
        Ok(offset)
    }

    /// The `len` bytes at `offset`.
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, PagesError> {
        let mut bytes = vec![0; len];
        // Where a read moves the file's position, not while an append has sought to its end.
        #[cfg(not(unix))]
        let _seeking = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        scratch::read_exact_at(&self.file, &mut bytes, offset)
            .map_err(|cause| self.failed("read", cause))?;
        Ok(bytes)
    }
}

/// One packed page: its JSON array of up to [`PAGE`] images, LZ4-compressed with its length in front.
#[derive(Clone)]
struct Page {
    /// A hash of the packed bytes (see [`PackedImages::hash_content`]).
    hash: u64,
    held: Held,
}

#[derive(Clone)]
enum Held {
    Memory(Box<[u8]>),
    File {
        scratch: Arc<Scratch>,
        offset: u64,
        len: usize,
    },
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::Memory(bytes) => bytes.len(),
            Held::File { len, .. } => *len,
        }
    }

    fn bytes(&self) -> Result<Cow<'_, [u8]>, PagesError> {
        match self {
            Held::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
            Held::File {
                scratch,
                offset,
                len,
            } => scratch.read(*offset, *len).map(Cow::Owned),
        }
    }

    /// Where it is, for messages.
    fn place(&self) -> String {
        match self {
            Held::Memory(_) => "memory".into(),
            Held::File { scratch, .. } => {
                format!("the scratch file in {}", scratch.dir.display())
            }
        }
    }
}

/// A sequence's images, packed (see the module's docs). Clones share the scratch file (pages are only
/// ever added to it, so a clone's pages stay as they were); two are equal when they hold the same
/// images, wherever each holds its pages.
#[derive(Clone, Default)]
pub(crate) struct PackedImages {
    /// In image order (not the file's: [`PackedImages::pack`] packs the last page first).
    pages: Vec<Page>,
    len: usize,
    /// Where new pages go, once there are more than [`IN_MEMORY_PAGES`].
    scratch: Option<Arc<Scratch>>,
}

impl PackedImages {
    /// Packs `images` (in capture order), giving their memory back as it goes: the list is taken
    /// apart from its end a page at a time, so the list and its packed pages are never both whole.
    pub(crate) fn pack(mut images: Vec<ImageInfo>) -> Result<PackedImages, PagesError> {
        let mut packed = PackedImages {
            pages: Vec::with_capacity(images.len().div_ceil(PAGE)),
            len: images.len(),
            scratch: None,
        };
        while !images.is_empty() {
            let start = (images.len() - 1) / PAGE * PAGE;
            packed.keep(packed_page(&images[start..])?)?;
            images.truncate(start);
            if images.capacity() - images.len() >= (images.capacity() / 8).max(4 * PAGE) {
                images.shrink_to_fit();
            }
        }
        packed.pages.reverse();
        Ok(packed)
    }

    /// Packs `page`, the next [`PAGE`] images in order (fewer only for the last one).
    fn push_page(&mut self, page: &[ImageInfo]) -> Result<(), PagesError> {
        debug_assert!(self.len.is_multiple_of(PAGE), "only the last page is short");
        self.keep(packed_page(page)?)?;
        self.len += page.len();
        Ok(())
    }

    /// Adds the packed page `bytes` after the others: in memory while there are few, else in the
    /// scratch file, which the pages in memory then move to.
    fn keep(&mut self, bytes: Box<[u8]>) -> Result<(), PagesError> {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let hash = h.finish();
        if self.scratch.is_none() && self.pages.len() >= IN_MEMORY_PAGES {
            let scratch = Arc::new(Scratch::create()?);
            for page in &mut self.pages {
                if let Held::Memory(bytes) = &page.held {
                    page.held = Held::File {
                        offset: scratch.append(bytes)?,
                        len: bytes.len(),
                        scratch: scratch.clone(),
                    };
                }
            }
            self.scratch = Some(scratch);
        }
        let held = match &self.scratch {
            Some(scratch) => Held::File {
                offset: scratch.append(&bytes)?,
                len: bytes.len(),
                scratch: scratch.clone(),
            },
            None => Held::Memory(bytes),
        };
        self.pages.push(Page { hash, held });
        Ok(())
    }

    /// How many images there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The JSON of page `index` (a JSON array).
    fn page_json(&self, index: usize) -> Result<Vec<u8>, PagesError> {
        let held = &self.pages[index].held;
        lz4_flex::block::decompress_size_prepended(&held.bytes()?).map_err(|e| {
            PagesError::Damaged {
                held: held.place(),
                detail: e.to_string(),
            }
        })
    }

    /// The images of page `index`.
    fn page(&self, index: usize) -> Result<Vec<ImageInfo>, PagesError> {
        serde_json::from_slice(&self.page_json(index)?).map_err(|e| PagesError::Damaged {
            held: self.pages[index].held.place(),
            detail: e.to_string(),
        })
    }

    /// Every image, in order, unpacked a page at a time; a page that cannot be read is one error in
    /// its place.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<ImageInfo, PagesError>> + '_ {
        (0..self.pages.len()).flat_map(|index| {
            let (images, failed) = match self.page(index) {
                Ok(images) => (images, None),
                Err(err) => (Vec::new(), Some(err)),
            };
            images.into_iter().map(Ok).chain(failed.map(Err))
        })
    }

    /// The images in `range` (clamped to the list) as one JSON array. A range of whole pages is their
    /// JSON as it was packed, joined; any other is unpacked and written again.
    pub(crate) fn range_json(&self, range: Range<usize>) -> Result<String, PagesError> {
        let (start, end) = (range.start.min(self.len), range.end.min(self.len));
        if start >= end {
            return Ok("[]".into());
        }
        let (first, last) = (start / PAGE, (end - 1) / PAGE);
        let whole_pages =
            start.is_multiple_of(PAGE) && (end.is_multiple_of(PAGE) || end == self.len);
        if whole_pages {
            let mut out = Vec::with_capacity((end - start) * 400);
            out.push(b'[');
            for index in first..=last {
                let json = self.page_json(index)?;
                // Each page is `[...]` and holds at least one image.
                if index > first {
                    out.push(b',');
                }
                out.extend_from_slice(&json[1..json.len() - 1]);
            }
            out.push(b']');
            return String::from_utf8(out).map_err(|e| PagesError::Damaged {
                held: self.pages[first].held.place(),
                detail: e.to_string(),
            });
        }
        let mut images = Vec::with_capacity(end - start);
        for index in first..=last {
            let page = self.page(index)?;
            let page_start = index * PAGE;
            let from = start.max(page_start) - page_start;
            let to = end.min(page_start + page.len()) - page_start;
            images.extend(page.into_iter().take(to).skip(from));
        }
        serde_json::to_string(&images).map_err(PagesError::Encode)
    }

    /// Feeds `h` what identifies the images: equal images pack to equal bytes, and each page's bytes
    /// were hashed when packed (no page is read).
    pub(crate) fn hash_content(&self, h: &mut impl Hasher) {
        for page in &self.pages {
            page.hash.hash(h);
        }
    }

    /// The packed size in bytes (what the host holds for the images, in memory or in its file).
    pub(crate) fn packed_bytes(&self) -> usize {
        self.pages.iter().map(|p| p.held.len()).sum()
    }

    /// Empties the scratch file, as a failing disk would leave it: every page in it fails to read.
    #[cfg(test)]
    pub(crate) fn lose_the_scratch_file(&self) {
        if let Some(scratch) = &self.scratch {
            scratch.file.set_len(0).expect("shorten the scratch file");
        }
    }

    /// The packed bytes held in memory, and those in the scratch file.
    #[cfg(test)]
    fn held_bytes(&self) -> (usize, usize) {
        self.pages
            .iter()
            .fold((0, 0), |(memory, file), page| match &page.held {
                Held::Memory(bytes) => (memory + bytes.len(), file),
                Held::File { len, .. } => (memory, file + len),
            })
    }
}

/// `page`'s JSON, compressed with its length in front.
fn packed_page(page: &[ImageInfo]) -> Result<Box<[u8]>, PagesError> {
    let json = serde_json::to_vec(page).map_err(PagesError::Encode)?;
    Ok(lz4_flex::block::compress_prepend_size(&json).into_boxed_slice())
}

/// The same images: the same packed bytes page by page (equal images pack to equal bytes). A page that
/// cannot be read back makes the two unequal.
impl PartialEq for PackedImages {
    fn eq(&self, other: &PackedImages) -> bool {
        self.len == other.len
            && self.pages.len() == other.pages.len()
            && self.pages.iter().zip(&other.pages).all(|(a, b)| {
                a.hash == b.hash
                    && matches!((a.held.bytes(), b.held.bytes()), (Ok(x), Ok(y)) if x == y)
            })
    }
}

/// The count and where the bytes are, not the bytes.
impl std::fmt::Debug for PackedImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedImages")
            .field("len", &self.len)
            .field("pages", &self.pages.len())
            .field("packed_bytes", &self.packed_bytes())
            .field("scratch", &self.scratch.as_ref().map(|s| &s.dir))
            .finish()
    }
}

/// A JSON array of the images, written a page at a time.
impl Serialize for PackedImages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for index in 0..self.pages.len() {
            for image in self.page(index).map_err(S::Error::custom)? {
                seq.serialize_element(&image)?;
            }
        }
        seq.end()
    }
}

/// Why a scan gives no packed sequence.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The sequence cannot be uploaded as it is (the sequence reader's error).
    #[error(transparent)]
    Invalid(SequenceError),
    /// The images could not be packed.
    #[error(transparent)]
    Pack(PagesError),
}

/// A sequence descriptor with its images packed: what the host holds of a sequence it works on.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedSequence {
    header: SequenceDescriptor,
    images: PackedImages,
}

impl PackedSequence {
    /// Packs `sequence`'s images (see [`PackedImages::pack`]).
    pub fn pack(mut sequence: SequenceDescriptor) -> Result<PackedSequence, PagesError> {
        let images = PackedImages::pack(std::mem::take(&mut sequence.images))?;
        Ok(PackedSequence::new(sequence, images))
    }

    fn new(header: SequenceDescriptor, images: PackedImages) -> PackedSequence {
        tracing::debug!(
            "sequence {}: {} images held in {} packed bytes",
            header.id,
            images.len(),
            images.packed_bytes()
        );
        PackedSequence { header, images }
    }

    /// The descriptor of `scanned`, its images packed a page at a time as they are read from the
    /// scan's file ([`ScannedSequence::descriptor_pages`]): no list of every image is made.
    pub fn from_scan(
        scanned: ScannedSequence,
        skip_invalid: bool,
    ) -> Result<(PackedSequence, Vec<SkippedImage>), ScanError> {
        let mut images = PackedImages::default();
        let mut failed = None;
        let (header, skipped) = scanned
            .descriptor_pages(skip_invalid, PAGE, |page| {
                if failed.is_none() {
                    failed = images.push_page(&page).err();
                }
            })
            .map_err(ScanError::Invalid)?;
        if let Some(err) = failed {
            return Err(ScanError::Pack(err));
        }
        Ok((PackedSequence::new(header, images), skipped))
    }

    /// The descriptor without its images (its `images` are empty: read them from
    /// [`PackedSequence::images`]).
    pub fn header(&self) -> &SequenceDescriptor {
        &self.header
    }

    /// The sequence's id.
    pub fn id(&self) -> &str {
        &self.header.id
    }

    /// The images.
    pub(crate) fn images(&self) -> &PackedImages {
        &self.images
    }

    /// How many images there are.
    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    /// The sum of the images' sizes in bytes and the capture time of the earliest (Unix ms, UTC), in
    /// one pass over the pages.
    pub fn bytes_and_first_capture(&self) -> Result<(u64, Option<i64>), PagesError> {
        self.images
            .iter()
            .try_fold((0, None), |(bytes, first), image| {
                let image = image?;
                let first =
                    first.map_or(image.captured_at_ms, |t: i64| t.min(image.captured_at_ms));
                Ok((bytes + image.size_bytes, Some(first)))
            })
    }

    /// Gives the sequence the id `id` (the stored sequence its photos are).
    pub fn set_id(&mut self, id: String) {
        self.header.id = id;
    }
}

/// The descriptor's JSON, as [`SequenceDescriptor`] writes it (a test holds the two to the same keys).
impl Serialize for PackedSequence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Whole<'a> {
            schema: u32,
            id: &'a str,
            root: &'a str,
            name: &'a str,
            description: &'a str,
            transport: &'a Option<TransportType>,
            tags: &'a [String],
            source: SequenceSource,
            images: &'a PackedImages,
        }
        let h = &self.header;
        Whole {
            schema: h.schema,
            id: &h.id,
            root: &h.root,
            name: &h.name,
            description: &h.description,
            transport: &h.transport,
            tags: &h.tags,
            source: h.source,
            images: &self.images,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence_payload::tests::sequence;

    #[test]
    fn packed_images_read_back_whole_by_range_and_as_json() {
        for count in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 17, FILED] {
            let images = sequence(count).images;
            let packed = PackedImages::pack(images.clone()).unwrap();
            assert_eq!(packed.len(), count);
            assert_eq!(
                packed.iter().collect::<Result<Vec<_>, _>>().unwrap(),
                images
            );
            assert_eq!(
                serde_json::to_string(&packed).unwrap(),
                serde_json::to_string(&images).unwrap()
            );
            for range in [
                0..PAGE,
                PAGE..2 * PAGE,
                3..PAGE + 5,
                0..count + 10,
                5..5,
                count..count + 3,
            ] {
                let end = range.end.min(count);
                let start = range.start.min(end);
                let lent: Vec<ImageInfo> =
                    serde_json::from_str(&packed.range_json(range.clone()).unwrap()).unwrap();
                assert_eq!(lent, images[start..end], "{count} images, range {range:?}");
            }
        }
    }

    #[test]
    fn a_packed_sequence_writes_the_descriptors_json() {
        let mut descriptor = sequence(3);
        descriptor.description = "d".into();
        descriptor.transport = Some(TransportType::parse("Walk").unwrap());
        let packed = PackedSequence::pack(descriptor.clone()).unwrap();
        let (whole, ours) = (
            serde_json::to_value(&descriptor).unwrap(),
            serde_json::to_value(&packed).unwrap(),
        );
        // Every key the descriptor writes, so a field added to it is not silently dropped here.
        assert_eq!(
            whole.as_object().unwrap().keys().collect::<Vec<_>>(),
            ours.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        assert_eq!(whole, ours);
        assert_eq!(
            packed
                .images()
                .iter()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            descriptor.images
        );
        let first = descriptor.images.iter().map(|i| i.captured_at_ms).min();
        let bytes = descriptor.images.iter().map(|i| i.size_bytes).sum();
        assert_eq!(packed.bytes_and_first_capture().unwrap(), (bytes, first));
        assert_eq!(packed.header().images, vec![]);
    }

    #[test]
    fn packing_is_much_smaller_than_the_images() {
        let images = sequence(10 * PAGE).images;
        let json = serde_json::to_vec(&images).unwrap().len();
        let packed = PackedImages::pack(images).unwrap();
        assert!(
            packed.packed_bytes() * 4 < json,
            "{} packed bytes for {json} bytes of JSON",
            packed.packed_bytes()
        );
    }

    /// Counts that stay in memory, and counts past [`IN_MEMORY_PAGES`] pages, written to the file.
    const FILED: usize = (IN_MEMORY_PAGES + 2) * PAGE + 17;

    #[test]
    fn past_a_few_pages_the_pages_are_in_the_scratch_file_not_in_memory() {
        let few = PackedImages::pack(sequence(IN_MEMORY_PAGES * PAGE).images).unwrap();
        assert_eq!(few.held_bytes(), (few.packed_bytes(), 0));
        assert!(few.scratch.is_none(), "no file for a short sequence");

        let images = sequence(FILED).images;
        let packed = PackedImages::pack(images.clone()).unwrap();
        assert_eq!(packed.held_bytes(), (0, packed.packed_bytes()));
        let scratch = packed.scratch.as_ref().unwrap();
        assert_eq!(
            scratch.file.metadata().unwrap().len(),
            packed.packed_bytes() as u64
        );
        // A page at a time, as a scan hands them over: the same pages, the first ones moved out.
        let mut pushed = PackedImages::default();
        for page in images.chunks(PAGE) {
            pushed.push_page(page).unwrap();
        }
        assert_eq!(pushed.held_bytes(), (0, packed.packed_bytes()));
        assert_eq!(pushed, packed);
        assert_eq!(
            pushed.iter().collect::<Result<Vec<_>, _>>().unwrap(),
            images
        );
    }

    #[test]
    fn held_in_memory_or_in_the_file_the_same_images_are_equal_and_hash_equal() {
        let descriptor = sequence(FILED);
        let filed = PackedSequence::pack(descriptor.clone()).unwrap();
        let mut held = PackedImages::default();
        for page in descriptor.images.chunks(PAGE) {
            let bytes = packed_page(page).unwrap();
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            held.pages.push(Page {
                hash: h.finish(),
                held: Held::Memory(bytes),
            });
            held.len += page.len();
        }
        let in_memory = PackedSequence::new(filed.header().clone(), held);
        assert_eq!(in_memory.images().held_bytes().1, 0);
        assert_eq!(in_memory, filed);
        assert_eq!(filed.clone(), filed);
        use crate::sequence_content::SequenceContent;
        assert_eq!(in_memory.fingerprint(), filed.fingerprint());

        let mut other = descriptor;
        other.images[FILED - 1].size_bytes += 1;
        let other = PackedSequence::pack(other).unwrap();
        assert_ne!(other, filed);
        assert_ne!(other.fingerprint(), filed.fingerprint());
    }

    #[test]
    fn clones_share_the_file_and_each_keeps_its_own_pages() {
        let images = sequence(FILED + PAGE - 17).images;
        let mut a = PackedImages::default();
        for page in images.chunks(PAGE).take(IN_MEMORY_PAGES + 1) {
            a.push_page(page).unwrap();
        }
        let mut b = a.clone();
        let (next, other) = (&images[a.len()..a.len() + PAGE], &images[..PAGE]);
        a.push_page(next).unwrap();
        b.push_page(other).unwrap();
        let read = |p: &PackedImages| p.iter().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(read(&a), images[..a.len()]);
        assert_eq!(read(&b)[a.len() - PAGE..], *other);
    }

    #[test]
    fn a_page_the_file_cannot_give_back_is_an_error_not_a_panic() {
        let descriptor = sequence(FILED);
        let packed = PackedSequence::pack(descriptor).unwrap();
        let images = packed.images();
        // Shortened under us: every read of a page past the end fails.
        images.lose_the_scratch_file();
        let failed = images.iter().find_map(Result::err).unwrap().to_string();
        assert!(
            failed.starts_with("cannot read the scratch file of packed images in "),
            "{failed}"
        );
        assert!(images.range_json(0..PAGE).is_err());
        assert!(images.range_json(3..5).is_err());
        let json = serde_json::to_string(&packed).unwrap_err().to_string();
        assert!(json.contains("scratch file of packed images"), "{json}");
        assert!(packed.bytes_and_first_capture().is_err());
        use crate::sequence_content::SequenceContent;
        assert!(packed.for_each_path(&mut |_| {}).is_err());
        // Garbage where a page was: a decoding error, not a panic.
        images
            .scratch
            .as_ref()
            .unwrap()
            .file
            .set_len(1 << 20)
            .unwrap();
        let damaged = images.page(0).unwrap_err().to_string();
        assert!(damaged.contains("does not decode"), "{damaged}");
    }

    #[test]
    fn a_page_that_cannot_be_written_names_the_scratch_file_and_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        let scratch = Scratch {
            file: File::open(&path).unwrap(),
            dir: dir.path().to_path_buf(),
            end: Mutex::new(0),
        };
        let failed = scratch.append(b"page").unwrap_err().to_string();
        let expected = format!(
            "cannot write the scratch file of packed images in {}: ",
            dir.path().display()
        );
        assert!(failed.starts_with(&expected), "{failed}");
        // What a full disk says (Linux's /dev/full answers every write so).
        #[cfg(target_os = "linux")]
        if let Ok(file) = File::options().write(true).open("/dev/full") {
            let full = Scratch {
                file,
                dir: "/dev".into(),
                end: Mutex::new(0),
            };
            let failed = full.append(b"page").unwrap_err().to_string();
            assert!(failed.contains("disk full"), "{failed}");
            assert!(failed.contains("TMPDIR"), "{failed}");
            // Nothing was counted as written.
            assert_eq!(*full.end.lock().unwrap(), 0);
        }
    }
}
