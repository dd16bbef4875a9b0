//! Sequences as the host hands them over: plain files (for providers that send bytes without reading
//! them) and, with the `generate` feature, generated JPEGs with EXIF.

use std::path::Path;

#[cfg(feature = "generate")]
use mtp_sequence::generate::{generate_sequence, GenerateOptions, GeneratedSequence};
use plugin_api::prelude::*;

/// `count` files of `bytes` bytes each written into `dir` (`img0.jpg`...; not real JPEGs), one a
/// second, a few metres apart: a walk named "Walk" with id `id`.
pub fn plain(dir: &Path, id: &str, count: usize, bytes: usize) -> SequenceDescriptor {
    let images = (0..count)
        .map(|i| {
            let path = dir.join(format!("img{i}.jpg"));
            std::fs::write(&path, vec![i as u8; bytes + i]).expect("a test file is written");
            ImageInfo {
                path: path.to_string_lossy().into_owned(),
                file_name: format!("img{i}.jpg"),
                size_bytes: (bytes + i) as u64,
                latitude: 52.0 + i as f64 * 0.00003,
                longitude: 6.0,
                altitude: None,
                captured_at_ms: 1_600_000_000_000 + i as i64 * 1000,
                heading: None,
                projection: Projection::Flat,
                width: None,
                height: None,
                photo_uuid: None,
                sources: None,
            }
        })
        .collect();
    SequenceDescriptor {
        schema: 1,
        id: id.to_string(),
        root: dir.to_string_lossy().into_owned(),
        name: "Walk".into(),
        description: String::new(),
        transport: None,
        tags: vec![],
        source: Default::default(),
        images,
    }
}

/// Writes `opts.count` images into `dir`.
#[cfg(feature = "generate")]
pub fn generate(dir: &Path, opts: GenerateOptions) -> GeneratedSequence {
    generate_sequence(dir, &opts).expect("sequence generated")
}

/// The descriptor the host would hand over for `generated` (several generated runs may be
/// concatenated), named `name`, with no transport type.
#[cfg(feature = "generate")]
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
