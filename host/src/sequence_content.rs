//! What the state store and the run read of a sequence, whether it is held whole (a stored descriptor
//! read back, a test's) or packed ([`PackedSequence`], what a run holds): its header, its image
//! paths, and a hash of its content, which the run keeps eligibility answers by and the state store
//! compares before writing a descriptor again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use plugin_api::sequence::SequenceDescriptor;
use serde::Serialize;

use crate::packed_images::{PackedSequence, PagesError};

/// A sequence descriptor, whole or packed.
pub trait SequenceContent: Serialize + Send + Sync {
    /// The descriptor's fields but its images (whatever its `images` hold: read them here instead).
    fn header(&self) -> &SequenceDescriptor;
    /// A hash of everything in it; equal content hashes equal within one kind.
    fn fingerprint(&self) -> u64;
    /// Calls `f` with each image's path, in order; fails when packed images cannot be read back.
    fn for_each_path(&self, f: &mut dyn FnMut(&str)) -> Result<(), PagesError>;
}

fn hash_header(sequence: &SequenceDescriptor, h: &mut DefaultHasher) {
    sequence.schema.hash(h);
    sequence.id.hash(h);
    sequence.root.hash(h);
    sequence.name.hash(h);
    sequence.description.hash(h);
    sequence.transport.hash(h);
    sequence.tags.hash(h);
    format!("{:?}", sequence.source).hash(h);
}

impl SequenceContent for SequenceDescriptor {
    fn header(&self) -> &SequenceDescriptor {
        self
    }

    /// Cheaper than serialising it: no allocation per image.
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        hash_header(self, &mut h);
        self.images.len().hash(&mut h);
        for image in &self.images {
            image.path.hash(&mut h);
            image.file_name.hash(&mut h);
            image.size_bytes.hash(&mut h);
            image.latitude.to_bits().hash(&mut h);
            image.longitude.to_bits().hash(&mut h);
            image.altitude.map(f64::to_bits).hash(&mut h);
            image.captured_at_ms.hash(&mut h);
            image.heading.map(f64::to_bits).hash(&mut h);
            image.projection.hash(&mut h);
            image.width.hash(&mut h);
            image.height.hash(&mut h);
            image.photo_uuid.hash(&mut h);
            if let Some(s) = &image.sources {
                (&s.positions, &s.times, &s.position_used, &s.time_used).hash(&mut h);
            } else {
                0u8.hash(&mut h);
            }
        }
        h.finish()
    }

    fn for_each_path(&self, f: &mut dyn FnMut(&str)) -> Result<(), PagesError> {
        self.images.iter().for_each(|i| f(&i.path));
        Ok(())
    }
}

impl SequenceContent for PackedSequence {
    fn header(&self) -> &SequenceDescriptor {
        PackedSequence::header(self)
    }

    /// The packed pages' hashes, taken as they were packed: equal images pack to equal bytes.
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        hash_header(self.header(), &mut h);
        self.image_count().hash(&mut h);
        self.images().hash_content(&mut h);
        h.finish()
    }

    fn for_each_path(&self, f: &mut dyn FnMut(&str)) -> Result<(), PagesError> {
        self.images().iter().try_for_each(|i| i.map(|i| f(&i.path)))
    }
}
