//! Whether a sequence's folder changed since its last run, cheaply (file names and sizes only, no EXIF),
//! so `mtp status` can say so without re-reading every image. What the change means for an integration
//! (Mapillary: images added after publishing) is for the next `mtp upload` to say.

use std::collections::BTreeSet;
use std::path::Path;

use plugin_api::sequence::SequenceDescriptor;

/// Counts of what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drift {
    /// JPEG files in the sequence's image folders that the last run did not have.
    pub added: usize,
    /// Images of the last run that are gone.
    pub removed: usize,
    /// Images of the last run whose size changed.
    pub changed: usize,
}

impl Drift {
    /// A sentence, or `None` when nothing changed.
    pub fn describe(&self) -> Option<String> {
        if *self == Drift::default() {
            return None;
        }
        Some(format!(
            "the folder changed since the last run ({} added, {} removed, {} changed): run mtp upload \
             on it to see what that means",
            self.added, self.removed, self.changed
        ))
    }
}

fn is_jpeg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// `sequence` as last run against its folders now.
pub fn drift(sequence: &SequenceDescriptor) -> Drift {
    let mut d = Drift::default();
    let known: BTreeSet<&Path> = sequence.images.iter().map(|i| Path::new(&i.path)).collect();
    let mut dirs = BTreeSet::new();
    for image in &sequence.images {
        let path = Path::new(&image.path);
        if let Some(dir) = path.parent() {
            dirs.insert(dir);
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() != image.size_bytes => d.changed += 1,
            Ok(_) => {}
            Err(_) => d.removed += 1,
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        d.added += entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_jpeg(p) && !known.contains(p.as_path()))
            .count();
    }
    d
}
