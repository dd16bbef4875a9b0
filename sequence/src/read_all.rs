//! Reading every image of a folder into an [`ImageList`] in capture order. The headers are read on 2–4
//! threads and each image goes to the scan's scratch file as it is read; the sort is of a small key an
//! image, and the images are then written once more in that order. What the process holds an image is
//! its file name (in one buffer) while reading and its key while sorting, not the image
//! (docs/architecture.md, "Memory").

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::camera_clock::ClockVotes;
use crate::capture_time::TimeOffset;
use crate::image_list::{ImageList, ImageListWriter};
use crate::model::{Problem, ProblemKind, ScannedImage, SequenceError};

/// The JPEG file names of a folder, in one buffer.
#[derive(Default)]
pub(crate) struct FileNames {
    text: String,
    ends: Vec<u32>,
    /// The rare names that are not UTF-8, by index (their place in `text` is empty).
    other: BTreeMap<u32, OsString>,
}

impl FileNames {
    fn push(&mut self, name: OsString) {
        let index = self.ends.len() as u32;
        match name.into_string() {
            Ok(name) => self.text.push_str(&name),
            Err(name) => {
                self.other.insert(index, name);
            }
        }
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn get(&self, index: usize) -> &OsStr {
        if let Some(name) = self.other.get(&(index as u32)) {
            return name;
        }
        let start = index
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .map_or(0, |&e| e as usize);
        let end = self.ends.get(index).map_or(start, |&e| e as usize);
        OsStr::new(self.text.get(start..end).unwrap_or_default())
    }
}

/// The JPEG files directly in `dir` (non-recursive).
pub(crate) fn list_jpegs(dir: &Path) -> Result<FileNames, SequenceError> {
    let io_err = |cause| SequenceError::Io {
        path: dir.to_path_buf(),
        cause,
    };
    let mut out = FileNames::default();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        if !crate::read::is_jpeg_name(&name.to_string_lossy()) {
            continue;
        }
        let is_file = match entry.file_type() {
            Ok(t) if t.is_symlink() => fs::metadata(entry.path())
                .map(|m| m.is_file())
                .unwrap_or(true),
            Ok(t) => t.is_file(),
            Err(_) => true, // let the per-image read report it
        };
        if is_file {
            out.push(name);
        }
    }
    out.text.shrink_to_fit();
    out.ends.shrink_to_fit();
    Ok(out)
}

/// The images of a folder in capture order, and their problems by index in it.
pub(crate) struct ReadImages {
    pub images: ImageList,
    pub per_image: BTreeMap<usize, Vec<Problem>>,
}

/// Reads the images `names` in `dir` (see the module's docs): sorted by capture time, then file name,
/// images without a time last; every image of one camera whose time's offset came from the time zone
/// at that camera's offset (`camera_clock`). `each` sees every image in that order as it is written.
pub(crate) fn read_all(
    dir: &Path,
    names: FileNames,
    time_offset: Option<TimeOffset>,
    mut each: impl FnMut(&ScannedImage),
) -> Result<ReadImages, SequenceError> {
    let read = read_unordered(dir, &names, time_offset)?;
    let offsets = read.votes.decide();

    /// Where an image goes: its capture time (`None` last, as `u64::MAX`; a real time never is), then
    /// its file name, and where it is in the unordered list.
    struct Key {
        order: u64,
        file: u32,
        record: u32,
    }
    let mut keys = Vec::with_capacity(read.images.len());
    for (record, image) in read.images.iter().enumerate() {
        let mut image = image?;
        offsets.apply(&mut image);
        keys.push(Key {
            order: image
                .captured_at_ms
                .map_or(u64::MAX, |t| (t as u64) ^ (1 << 63)),
            file: read.file_of[record],
            record: record as u32,
        });
    }
    drop(read.file_of);
    keys.sort_unstable_by(|a, b| {
        a.order
            .cmp(&b.order)
            .then_with(|| names.get(a.file as usize).cmp(names.get(b.file as usize)))
    });
    drop(names);

    let (mut problems, mut per_image) = (read.problems, BTreeMap::new());
    let mut writer = ImageListWriter::new();
    for (at, key) in keys.iter().enumerate() {
        let mut image = read.images.get(key.record as usize)?;
        offsets.apply(&mut image);
        each(&image);
        writer.push(&image)?;
        // A file's problems go to its place in capture order.
        if let Some(found) = problems.remove(&key.file) {
            per_image.insert(at, found);
        }
    }
    drop(keys);
    Ok(ReadImages {
        images: writer.finish()?,
        per_image,
    })
}

/// The images as read, in the order the reads finished.
struct Unordered {
    images: ImageList,
    /// The file each image was read from (its index in the names).
    file_of: Vec<u32>,
    /// The problems found reading each file that has any, by the file's index.
    problems: BTreeMap<u32, Vec<Problem>>,
    votes: ClockVotes,
}

/// Images a reading thread hands over at once.
const BATCH: usize = 64;

/// Reads every image's header on 2–4 threads into the scratch file.
fn read_unordered(
    dir: &Path,
    names: &FileNames,
    time_offset: Option<TimeOffset>,
) -> Result<Unordered, SequenceError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
        .min(names.len().max(1));
    let mut file_of = Vec::with_capacity(names.len());
    let mut found = BTreeMap::new();
    let mut votes = ClockVotes::default();
    let mut writer = ImageListWriter::new();
    let mut failed = None;
    let mut done = vec![false; names.len()];
    // Work is handed out one file at a time, so a slow (cold, large) file does not hold up a whole chunk;
    // each image read goes to this thread, which writes it, through a short queue.
    let next = AtomicUsize::new(0);
    let (last_description, last_camera) = (Mutex::new(None), Mutex::new(None));
    let mut keep = |file: usize, image: ScannedImage, problems: Vec<Problem>| {
        writer.push(&image)?;
        file_of.push(file as u32);
        votes.add(&image);
        if !problems.is_empty() {
            found.insert(file as u32, problems);
        }
        Ok::<(), SequenceError>(())
    };
    std::thread::scope(|s| {
        let (sender, receiver) = mpsc::sync_channel(2 * threads);
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, last_description, last_camera) = (&next, &last_description, &last_camera);
            s.spawn(move || {
                // Sent a few at a time: one hand-over an image cost two thread switches an image.
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= names.len() {
                        break;
                    }
                    let (mut image, problems) =
                        read_image_guarded(dir.join(names.get(i)), time_offset);
                    share(last_description, &mut image.description);
                    share(last_camera, &mut image.camera);
                    batch.push((i, image, problems));
                    if batch.len() == BATCH
                        && sender
                            .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                            .is_err()
                    {
                        return;
                    }
                }
                if !batch.is_empty() {
                    let _ = sender.send(batch);
                }
            });
        }
        drop(sender);
        for (i, image, problems) in receiver.into_iter().flatten() {
            done[i] = true;
            if let Err(e) = keep(i, image, problems) {
                // Ending the queue stops the readers: nothing read from here on could be kept.
                failed = Some(e);
                break;
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    // Worker bodies catch parser panics themselves; a file whose worker died anyway is one that could
    // not be read.
    for i in (0..done.len()).filter(|&i| !done[i]) {
        let path = dir.join(names.get(i));
        let p = Problem::image(
            &path,
            "file",
            ProblemKind::Unreadable,
            "internal error while reading",
        );
        keep(i, ScannedImage::new(path), vec![p])?;
    }
    Ok(Unordered {
        images: writer.finish()?,
        file_of,
        problems: found,
        votes,
    })
}

/// Makes `own` the value read just before it when the two are equal, so that a scan holds such a
/// value about once, not once per image: the MTPDU sequence fields every image of an MTPDU sequence
/// repeats (280 bytes each), the camera's name.
fn share<T: PartialEq + ?Sized>(last: &Mutex<Option<Arc<T>>>, own: &mut Option<Arc<T>>) {
    let Some(value) = own else {
        return;
    };
    let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match &*last {
        Some(shared) if **shared == **value => *own = Some(shared.clone()),
        _ => *last = Some(value.clone()),
    }
}

/// A panic inside a parser (there should be none) becomes a problem of that image rather than taking the
/// whole scan down.
fn read_image_guarded(
    path: std::path::PathBuf,
    time_offset: Option<TimeOffset>,
) -> (ScannedImage, Vec<Problem>) {
    let mut img = ScannedImage::new(path);
    // The image is only written to: after a panic it is started afresh from its path.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::read::read_image(&mut img, time_offset)
    }));
    match read {
        Ok(problems) => (img, problems),
        Err(_) => {
            let problem = Problem::image(
                &img.path,
                "EXIF",
                ProblemKind::CorruptExif,
                "the metadata parser failed on this file",
            );
            (ScannedImage::new(img.path), vec![problem])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_as_they_went_in() {
        let mut names = FileNames::default();
        for n in ["b.jpg", "", "IMG_0001.JPG"] {
            names.push(n.into());
        }
        #[cfg(unix)]
        names.push(std::os::unix::ffi::OsStringExt::from_vec(
            b"\xff.jpg".to_vec(),
        ));
        assert_eq!(names.get(0), "b.jpg");
        assert_eq!(names.get(1), "");
        assert_eq!(names.get(2), "IMG_0001.JPG");
        #[cfg(unix)]
        assert_eq!(names.get(3).len(), 5);
    }
}
