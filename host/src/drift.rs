//! Whether a sequence's folder changed since its last run, cheaply (file names and sizes only, no EXIF),
//! so `mtp status` can say so without re-reading every image. What the change means for an integration
//! (Mapillary: images added after publishing) is for the next `mtp upload` to say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::packed_images::PagesError;
use crate::sequence_content::SequenceContent;
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
        // Pieced together rather than `format!`ed: `mtp status` says it for every sequence it lists.
        let mut number = itoa::Buffer::new();
        let mut text = String::with_capacity(128);
        text.push_str("the folder changed since the last run (");
        text.push_str(number.format(self.added));
        text.push_str(" added, ");
        text.push_str(number.format(self.removed));
        text.push_str(" removed, ");
        text.push_str(number.format(self.changed));
        text.push_str(" changed): run mtp upload on it to see what that means");
        Some(text)
    }
}

impl Drift {
    /// The sentence for a sequence none of whose images is where the last run found them (its folder
    /// moved or deleted): `mtp upload` on the old path cannot work, so say what happened instead.
    pub fn describe_vanished(&self) -> String {
        format!(
            "the folder was not found (moved or deleted?): none of the {} images of the last run is \
             there; run mtp upload on its new place",
            self.removed
        )
    }

    /// Whether every image of a sequence of `images` is gone and nothing came in their place.
    pub fn is_vanished(&self, images: usize) -> bool {
        images > 0 && self.removed == images && self.added == 0 && self.changed == 0
    }
}

fn is_jpeg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// `sequence` as last run against its folders now. `left_out` are the images that run saw and left out
/// (invalid ones with `--skip-invalid`, duplicates: [`Folder::left_out`]): not added, for they were there.
pub fn drift(sequence: &SequenceDescriptor, left_out: &[String]) -> Drift {
    let mut d = Drift::default();
    let known: BTreeSet<&Path> = sequence
        .images
        .iter()
        .map(|i| Path::new(&i.path))
        .chain(left_out.iter().map(Path::new))
        .collect();
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

/// One folder of a sequence's last run and how many of its images were in it: the state store keeps
/// this small summary beside each (large) descriptor, so `mtp status` can tell a folder that is gone
/// without reading the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// The folder, as the image paths name it.
    pub dir: String,
    /// Images of the last run in it.
    pub images: usize,
    /// The folder's modification time (ns since the Unix epoch) when the summary was written, if it had
    /// settled by then (see [`untouched`]); absent in summaries of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_ns: Option<u64>,
    /// The images in it that the last run saw and left out (invalid ones with `--skip-invalid`,
    /// duplicates), by path: part of what that run found, so not "added" later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

/// The images the folders' last run left out ([`Folder::left_out`]), all folders together.
pub fn left_out_of(folders: &[Folder]) -> Vec<String> {
    folders
        .iter()
        .flat_map(|f| f.left_out.iter().cloned())
        .collect()
}

/// `folders` (a run's summary) with `left_out`, the paths of the images that run left out, each in its
/// folder (a folder holding only such images is added, with no image of the run).
pub fn with_left_out(mut folders: Vec<Folder>, left_out: &[String]) -> Vec<Folder> {
    for folder in &mut folders {
        folder.left_out.clear();
    }
    for path in left_out {
        let Some(dir) = Path::new(path).parent().and_then(Path::to_str) else {
            continue;
        };
        match folders.iter_mut().find(|f| f.dir == dir) {
            Some(folder) => folder.left_out.push(path.clone()),
            None => folders.push(Folder {
                dir: dir.to_string(),
                images: 0,
                modified_ns: settled_mtime_ns(dir),
                left_out: vec![path.clone()],
            }),
        }
    }
    folders
}

/// A folder's modification time in ns, if it is at least [`SETTLED`] old: a coarse clock (FAT: 2 s) could
/// give a change made within that time the same stamp.
fn settled_mtime_ns(dir: &str) -> Option<u64> {
    let modified = std::fs::metadata(dir).ok()?.modified().ok()?;
    let age = std::time::SystemTime::now().duration_since(modified).ok()?;
    if age < SETTLED {
        return None;
    }
    let ns = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    u64::try_from(ns).ok()
}

const SETTLED: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether no file was added to, removed from or renamed in any folder of the summary since it was
/// written: each folder's modification time is the one recorded (a directory's changes with each of
/// those). Tells `mtp status` that nothing changed without reading the descriptor and looking at each
/// file; a file rewritten in place to another size is only seen by the full check (editors and
/// `exiftool` write a new file and rename it, which does change the folder). `false` when any folder
/// has no stamp: then [`drift`] decides.
pub fn untouched(folders: &[Folder]) -> bool {
    folders.iter().all(|f| {
        f.modified_ns.is_some_and(|stamp| {
            std::fs::metadata(&f.dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| u64::try_from(d.as_nanos()).ok())
                == Some(stamp)
        })
    })
}

/// The summary of `sequence`'s folders, or `None` when an image path names no folder (a relative file
/// name: only [`drift`] can judge it); an error when its packed images cannot be read back.
pub fn folders_of(
    sequence: &(impl SequenceContent + ?Sized),
) -> Result<Option<Vec<Folder>>, PagesError> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut named = true;
    sequence.for_each_path(
        &mut |path| match Path::new(path).parent().and_then(Path::to_str) {
            Some(dir) if named && !dir.is_empty() => match counts.get_mut(dir) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(dir.to_string(), 1);
                }
            },
            _ => named = false,
        },
    )?;
    Ok(named.then(|| {
        counts
            .into_iter()
            .map(|(dir, images)| Folder {
                modified_ns: settled_mtime_ns(&dir),
                dir,
                images,
                left_out: Vec::new(),
            })
            .collect()
    }))
}

/// [`drift`] from the folder summary alone, when it can be told without the descriptor: every folder
/// is gone (or is not a folder), so every image is removed and none can be added or changed (a path
/// through a missing folder cannot be read, nor the folder listed). `None` when a folder exists: then
/// [`drift`] must look at each file.
pub fn drift_of_vanished(folders: &[Folder]) -> Option<Drift> {
    let vanished = |f: &Folder| std::fs::metadata(&f.dir).map_or(true, |m| !m.is_dir());
    folders.iter().all(vanished).then(|| Drift {
        removed: folders.iter().map(|f| f.images).sum(),
        ..Drift::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sequence::{ImageInfo, Projection};

    fn sequence(paths: &[String]) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/r".into(),
            name: "s".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: Default::default(),
            images: paths
                .iter()
                .map(|p| ImageInfo {
                    path: p.clone(),
                    file_name: String::new(),
                    size_bytes: 1,
                    latitude: 1.0,
                    longitude: 1.0,
                    altitude: None,
                    captured_at_ms: 0,
                    heading: None,
                    projection: Projection::Flat,
                    width: None,
                    height: None,
                    photo_uuid: None,
                    sources: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_sentence_names_each_count() {
        let drift = Drift {
            added: 3,
            removed: 100,
            changed: 0,
        };
        assert_eq!(
            drift.describe().as_deref(),
            Some(
                "the folder changed since the last run (3 added, 100 removed, 0 changed): run mtp \
                 upload on it to see what that means"
            )
        );
        assert_eq!(Drift::default().describe(), None);
    }

    #[test]
    fn the_summary_agrees_with_the_full_check() {
        let tmp = tempfile::tempdir().unwrap();
        let here = tmp.path().join("here");
        std::fs::create_dir(&here).unwrap();
        std::fs::write(here.join("a.jpg"), b"x").unwrap();
        let gone = tmp.path().join("gone");
        let paths: Vec<String> = [gone.join("a.jpg"), gone.join("b.jpg")]
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let vanished = sequence(&paths);
        let folders = folders_of(&vanished).unwrap().unwrap();
        assert_eq!(folders.len(), 1);
        assert_eq!(drift_of_vanished(&folders), Some(drift(&vanished, &[])));
        assert_eq!(drift(&vanished, &[]).removed, 2);
        assert!(drift(&vanished, &[]).is_vanished(2));
        assert_eq!(
            drift(&vanished, &[]).describe_vanished(),
            "the folder was not found (moved or deleted?): none of the 2 images of the last run is \
             there; run mtp upload on its new place"
        );
        // A folder that still exists needs the full check.
        let mut mixed = paths.clone();
        mixed.push(here.join("a.jpg").to_string_lossy().into_owned());
        assert_eq!(
            drift_of_vanished(&folders_of(&sequence(&mixed)).unwrap().unwrap()),
            None
        );
        // A bare file name has no folder to summarise.
        assert_eq!(folders_of(&sequence(&["a.jpg".to_string()])).unwrap(), None);
    }

    #[test]
    fn images_left_out_by_the_run_are_not_added_later() {
        let tmp = tempfile::tempdir().unwrap();
        let path = |name: &str| tmp.path().join(name).to_string_lossy().into_owned();
        for name in ["a.jpg", "bad.jpg"] {
            std::fs::write(path(name), b"x").unwrap();
        }
        let seq = sequence(&[path("a.jpg")]);
        assert_eq!(drift(&seq, &[]).added, 1);
        let folders = with_left_out(folders_of(&seq).unwrap().unwrap(), &[path("bad.jpg")]);
        assert_eq!(folders.len(), 1);
        assert_eq!(left_out_of(&folders), [path("bad.jpg")]);
        assert_eq!(drift(&seq, &left_out_of(&folders)), Drift::default());
        std::fs::write(path("new.jpg"), b"x").unwrap();
        assert_eq!(drift(&seq, &left_out_of(&folders)).added, 1);
        // Written again with none left out, the summary forgets them.
        assert!(left_out_of(&with_left_out(folders, &[])).is_empty());
    }

    #[test]
    fn a_settled_folder_is_untouched_until_a_file_comes_or_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let here = tmp.path().join("here");
        std::fs::create_dir(&here).unwrap();
        std::fs::write(here.join("a.jpg"), b"x").unwrap();
        let seq = sequence(&[here.join("a.jpg").to_string_lossy().into_owned()]);
        // Just written: too fresh to trust its time, so the full check decides.
        let fresh = folders_of(&seq).unwrap().unwrap();
        assert_eq!(fresh[0].modified_ns, None);
        assert!(!untouched(&fresh));
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::open(&here)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let settled = folders_of(&seq).unwrap().unwrap();
        assert!(settled[0].modified_ns.is_some());
        assert!(untouched(&settled));
        std::fs::write(here.join("b.jpg"), b"x").unwrap();
        assert!(!untouched(&settled));
        assert_eq!(drift(&seq, &[]).added, 1);
        // A summary of an earlier version has no stamp.
        let earlier: Vec<Folder> = serde_json::from_str(r#"[{"dir":"/x","images":2}]"#).unwrap();
        assert_eq!(earlier[0].modified_ns, None);
        assert!(!untouched(&earlier));
    }
}
