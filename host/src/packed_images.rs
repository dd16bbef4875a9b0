//! A sequence's images as the host holds them while it works on the sequence: pages of [`PAGE`]
//! images, each page the images' JSON compressed with LZ4 (`lz4_flex`). A 100,000-image sequence is
//! about 50 MB as `ImageInfo`s and their strings, and 35 MB as JSON; its packed pages are 9 MB (the
//! JSON of neighbouring images repeats its keys, folder and source names; the digits of positions and
//! times are most of what is left). Everything the host does with the images is a pass in order
//! (writing the descriptor to the state store, hashing it, its folder summary) or a range (lending
//! images to a plugin), so nothing needs them all unpacked at once (docs/architecture.md, "Memory").
//!
//! Written here rather than taken from a crate: what is needed is a list of compressed pages and
//! three passes over them; the compression itself is `lz4_flex`'s.

use std::ops::Range;

use mtp_sequence::{ScannedSequence, SequenceError, SkippedImage};
use plugin_api::sequence::{ImageInfo, SequenceDescriptor, SequenceSource};
use plugin_api::transport::TransportType;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

/// Images per page: the SDK's page (`plugin_api::sdk::images::PAGE`), so a plugin reading a page at a
/// time gets each page's JSON as it was packed, without decoding it.
pub(crate) const PAGE: usize = plugin_api::sdk::images::PAGE as usize;

/// A sequence's images, packed (see the module's docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PackedImages {
    /// Each page: a JSON array of up to [`PAGE`] images, LZ4-compressed with its length in front.
    pages: Vec<Box<[u8]>>,
    len: usize,
}

impl PackedImages {
    /// Packs `images` (in capture order), giving their memory back as it goes: the list is taken
    /// apart from its end a page at a time, so the list and its packed pages are never both whole.
    pub(crate) fn pack(mut images: Vec<ImageInfo>) -> Result<PackedImages, serde_json::Error> {
        let len = images.len();
        let mut pages = Vec::with_capacity(len.div_ceil(PAGE));
        while !images.is_empty() {
            let start = (images.len() - 1) / PAGE * PAGE;
            pages.push(packed_page(&images[start..])?);
            images.truncate(start);
            if images.capacity() - images.len() >= (images.capacity() / 8).max(4 * PAGE) {
                images.shrink_to_fit();
            }
        }
        pages.reverse();
        Ok(PackedImages { pages, len })
    }

    /// Packs `page`, the next [`PAGE`] images in order (fewer only for the last one).
    fn push_page(&mut self, page: &[ImageInfo]) -> Result<(), serde_json::Error> {
        debug_assert!(self.len.is_multiple_of(PAGE), "only the last page is short");
        self.pages.push(packed_page(page)?);
        self.len += page.len();
        Ok(())
    }

    /// How many images there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The JSON of page `index` (a JSON array).
    fn page_json(&self, index: usize) -> Vec<u8> {
        // The pages are the host's own compressed output, never read from outside.
        lz4_flex::block::decompress_size_prepended(&self.pages[index])
            .expect("a packed page decompresses (the host wrote it)")
    }

    /// The images of page `index`.
    fn page(&self, index: usize) -> Vec<ImageInfo> {
        serde_json::from_slice(&self.page_json(index))
            .expect("a packed page is a list of images (the host wrote it)")
    }

    /// Every image, in order, unpacked a page at a time.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ImageInfo> + '_ {
        (0..self.pages.len()).flat_map(|index| self.page(index))
    }

    /// The images in `range` (clamped to the list) as one JSON array. A range of whole pages is their
    /// JSON as it was packed, joined; any other is unpacked and written again.
    pub(crate) fn range_json(&self, range: Range<usize>) -> Result<String, serde_json::Error> {
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
                let json = self.page_json(index);
                // Each page is `[...]` and holds at least one image.
                if index > first {
                    out.push(b',');
                }
                out.extend_from_slice(&json[1..json.len() - 1]);
            }
            out.push(b']');
            // serde_json wrote every page as UTF-8.
            return Ok(String::from_utf8(out).expect("packed pages are UTF-8"));
        }
        let mut images = Vec::with_capacity(end - start);
        for index in first..=last {
            let page = self.page(index);
            let page_start = index * PAGE;
            let from = start.max(page_start) - page_start;
            let to = end.min(page_start + page.len()) - page_start;
            images.extend(page.into_iter().take(to).skip(from));
        }
        serde_json::to_string(&images)
    }

    /// The packed bytes, for a hash of the content: equal images pack to equal bytes.
    pub(crate) fn packed_pages(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.pages.iter().map(|p| &p[..])
    }

    /// The packed size in bytes (what the host holds for the images).
    pub(crate) fn packed_bytes(&self) -> usize {
        self.pages.iter().map(|p| p.len()).sum()
    }
}

/// `page`'s JSON, compressed with its length in front.
fn packed_page(page: &[ImageInfo]) -> Result<Box<[u8]>, serde_json::Error> {
    let json = serde_json::to_vec(page)?;
    Ok(lz4_flex::block::compress_prepend_size(&json).into_boxed_slice())
}

/// A JSON array of the images, written a page at a time.
impl Serialize for PackedImages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for index in 0..self.pages.len() {
            for image in self.page(index) {
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
    /// An image could not be written as JSON.
    #[error("cannot hold the images: {0}")]
    Pack(serde_json::Error),
}

/// A sequence descriptor with its images packed: what the host holds of a sequence it works on.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedSequence {
    header: SequenceDescriptor,
    images: PackedImages,
}

impl PackedSequence {
    /// Packs `sequence`'s images (see [`PackedImages::pack`]).
    pub fn pack(mut sequence: SequenceDescriptor) -> Result<PackedSequence, serde_json::Error> {
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
    pub fn bytes_and_first_capture(&self) -> (u64, Option<i64>) {
        self.images.iter().fold((0, None), |(bytes, first), image| {
            let first = first.map_or(image.captured_at_ms, |t: i64| t.min(image.captured_at_ms));
            (bytes + image.size_bytes, Some(first))
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
        for count in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 17] {
            let images = sequence(count).images;
            let packed = PackedImages::pack(images.clone()).unwrap();
            assert_eq!(packed.len(), count);
            assert_eq!(packed.iter().collect::<Vec<_>>(), images);
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
            packed.images().iter().collect::<Vec<_>>(),
            descriptor.images
        );
        let first = descriptor.images.iter().map(|i| i.captured_at_ms).min();
        let bytes = descriptor.images.iter().map(|i| i.size_bytes).sum();
        assert_eq!(packed.bytes_and_first_capture(), (bytes, first));
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
}
