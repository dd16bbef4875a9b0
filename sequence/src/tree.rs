//! Camera folder trees (`DCIM/100GOPRO`, `DCIM/101GOPRO`): a folder with no images of its own whose
//! subfolders hold them is read as mapillary_tools reads it. Its `utils.find_images` walks the tree
//! (`iterate_files`, skipping hidden folders and files) and `process_sequence_properties.py`
//! `_group_by_folder_and_camera` makes one sequence per folder (and camera); mtp makes one sequence per
//! folder that holds images, and says so in one line.

use std::fs;
use std::path::{Path, PathBuf};

use crate::read::{is_jpeg_name, is_sequence_dir};

/// A folder tree read as several sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderTree {
    /// The folder given.
    pub root: PathBuf,
    /// Each folder holding images (or an MTPDU sequence), in path order, with its number of JPEG files.
    pub sequences: Vec<(PathBuf, usize)>,
}

impl FolderTree {
    /// `DCIM holds no images itself: read as 2 sequences, one per folder with images, as mapillary_tools
    /// groups a folder tree: 100GOPRO (120 images), 101GOPRO (80 images)`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .sequences
            .iter()
            .map(|(dir, n)| {
                let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
                format!(
                    "{} ({n} image{})",
                    rel.display(),
                    if *n == 1 { "" } else { "s" }
                )
            })
            .collect();
        format!(
            "{} holds no images itself: read as {} sequence{}, one per folder with images, as \
             mapillary_tools groups a folder tree: {}",
            self.root.display(),
            self.sequences.len(),
            if self.sequences.len() == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}

/// The sequences of `dir` when it is a folder tree: `None` when `dir` is a sequence itself (it holds
/// images, or is an MTPDU sequence) or nothing below it holds images (reading it then says so).
pub fn folder_tree(dir: &Path) -> Option<FolderTree> {
    if is_sequence_dir(dir) {
        return None;
    }
    let mut sequences = Vec::new();
    walk(dir, &mut sequences, 0);
    if sequences.is_empty() {
        return None;
    }
    sequences.sort();
    Some(FolderTree {
        root: dir.to_path_buf(),
        sequences,
    })
}

/// Deep enough for `DCIM/100GOPRO` or a card's `PRIVATE/...`; a symlink loop stops here.
const MAX_DEPTH: usize = 8;

fn walk(dir: &Path, out: &mut Vec<(PathBuf, usize)>, depth: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden folders are skipped, as mapillary_tools' iterate_files does by default.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            subdirs.push(path);
        }
    }
    for sub in subdirs {
        if is_sequence_dir(&sub) {
            out.push((sub.clone(), jpeg_count(&sub)));
        } else if depth < MAX_DEPTH {
            walk(&sub, out, depth + 1);
        }
    }
}

fn jpeg_count(dir: &Path) -> usize {
    let image_dir = ["final_nadir", "final_raw"]
        .iter()
        .map(|d| dir.join(d))
        .find(|d| d.is_dir() && count_in(d) > 0)
        .unwrap_or_else(|| dir.to_path_buf());
    count_in(&image_dir)
}

fn count_in(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| is_jpeg_name(&e.file_name().to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dcim_tree_is_one_sequence_per_folder_with_images() {
        let tmp = tempfile::tempdir().unwrap();
        let dcim = tmp.path().join("DCIM");
        for (dir, n) in [
            ("100GOPRO", 3),
            ("101GOPRO", 2),
            (".thumbs", 4),
            ("EMPTY", 0),
        ] {
            fs::create_dir_all(dcim.join(dir)).unwrap();
            for i in 0..n {
                fs::write(dcim.join(dir).join(format!("G{i:07}.JPG")), b"x").unwrap();
            }
        }
        fs::write(dcim.join("100GOPRO").join("GOPR0001.MP4"), b"x").unwrap();
        let tree = folder_tree(&dcim).unwrap();
        assert_eq!(
            tree.sequences,
            [(dcim.join("100GOPRO"), 3), (dcim.join("101GOPRO"), 2)]
        );
        assert!(tree.describe().ends_with(
            "holds no images itself: read as 2 sequences, one per folder with images, as \
             mapillary_tools groups a folder tree: 100GOPRO (3 images), 101GOPRO (2 images)"
        ));
        // A folder with images of its own is one sequence; a folder with none anywhere is not a tree.
        assert_eq!(folder_tree(&dcim.join("100GOPRO")), None);
        assert_eq!(folder_tree(&dcim.join("EMPTY")), None);
    }
}
