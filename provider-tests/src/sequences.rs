//! Generated sequences (real JPEGs with EXIF) and the descriptor the host would hand over for them.

use std::path::Path;

use mtp_sequence::generate::{generate_sequence, GenerateOptions, GeneratedSequence};
use plugin_api::prelude::*;

/// Writes `opts.count` images into `dir`.
pub fn generate(dir: &Path, opts: GenerateOptions) -> GeneratedSequence {
    generate_sequence(dir, &opts).expect("sequence generated")
}

/// The descriptor the host would hand over for `generated` (several generated runs may be
/// concatenated), named `name`, with no transport type.
pub fn descriptor(id: &str, name: &str, generated: &[&GeneratedSequence]) -> SequenceDescriptor {
    let images = generated
        .iter()
        .flat_map(|g| g.images.iter())
        .map(|i| ImageInfo {
            path: i.path.to_string_lossy().into_owned(),
            file_name: i.file_name.clone(),
            size_bytes: i.size_bytes,
            latitude: i.latitude,
            longitude: i.longitude,
            altitude: Some(i.altitude),
            captured_at_ms: i.captured_at_ms,
            heading: Some(i.heading),
            projection: i.projection.clone(),
            width: Some(i.width),
            height: Some(i.height),
            photo_uuid: i.photo_uuid.clone(),
            sources: None,
        })
        .collect();
    SequenceDescriptor {
        schema: 1,
        id: id.to_string(),
        root: generated
            .first()
            .map(|g| g.root.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: name.into(),
        description: String::new(),
        transport: None,
        tags: vec![],
        source: Default::default(),
        images,
    }
}
