//! A hash of a sequence descriptor's content: what the run keeps eligibility answers by, and what the
//! state store compares before writing a descriptor again. A leaf (it uses no other module), so the
//! store and the run's payload code both reach it without depending on each other.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use plugin_api::sequence::SequenceDescriptor;

/// A hash of everything in `sequence` (cheaper than serialising it: no allocation per image).
pub(crate) fn fingerprint(sequence: &SequenceDescriptor) -> u64 {
    let mut h = DefaultHasher::new();
    sequence.schema.hash(&mut h);
    sequence.id.hash(&mut h);
    sequence.root.hash(&mut h);
    sequence.name.hash(&mut h);
    sequence.description.hash(&mut h);
    sequence.transport.hash(&mut h);
    sequence.tags.hash(&mut h);
    format!("{:?}", sequence.source).hash(&mut h);
    sequence.images.len().hash(&mut h);
    for image in &sequence.images {
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
