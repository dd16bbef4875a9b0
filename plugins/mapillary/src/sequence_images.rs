//! A run's images as the pipeline reads them: a page, a part or a few at a time, whether the host lends
//! them (plugin API 1.4) or the request carries them. Nothing here keeps the whole sequence: at 100,000
//! photos a copy of every image description is about 50 MB, which the plan (paths and times) does not
//! need. A part of the plan is a contiguous range of the sequence as it was planned, so it is read back
//! by that range; only a sequence changed since its plan was made is looked up by path (an index of
//! every path, built then).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use plugin_api::prelude::*;
use plugin_api::sdk::images::PAGE;

use crate::error::{MlyError, Result};
use crate::state::{Plan, PlannedPart};

/// A place in a plan: the part, and the image's place in it.
pub type Slot = (usize, usize);

/// The images of the sequence a run is about.
pub struct SequenceImages<'a> {
    images: Images<'a>,
    /// Each image's index, by path: built the first time a part is not where the plan put it.
    places: OnceLock<HashMap<String, u64>>,
}

impl<'a> SequenceImages<'a> {
    /// Reads `images`.
    pub fn new(images: Images<'a>) -> SequenceImages<'a> {
        SequenceImages {
            images,
            places: OnceLock::new(),
        }
    }

    /// How many there are.
    pub fn len(&self) -> u64 {
        self.images.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The image at `index`.
    pub fn at(&self, index: u64) -> Result<ImageInfo> {
        self.images
            .range(index, 1)?
            .first()
            .cloned()
            .ok_or_else(|| MlyError::Invalid(format!("the sequence has no image {index}")))
    }

    /// The images in pages of [`PAGE`], in order, each with the index of its first image.
    pub fn pages(&self) -> impl Iterator<Item = Result<(u64, Cow<'a, [ImageInfo]>)>> + '_ {
        self.images
            .pages(PAGE)
            .map(|page| page.map_err(MlyError::from))
    }

    /// Calls `visit` with each image and its index, in order, until it fails.
    pub fn for_each(&self, mut visit: impl FnMut(u64, &ImageInfo) -> Result<()>) -> Result<()> {
        for page in self.pages() {
            let (from, page) = page?;
            for (i, image) in page.iter().enumerate() {
                visit(from + i as u64, image)?;
            }
        }
        Ok(())
    }

    /// Copies of the images `wanted` picks, in order.
    pub fn select(&self, mut wanted: impl FnMut(&ImageInfo) -> bool) -> Result<Vec<ImageInfo>> {
        let mut chosen = Vec::new();
        self.for_each(|_, image| {
            if wanted(image) {
                chosen.push(image.clone());
            }
            Ok(())
        })?;
        Ok(chosen)
    }

    /// Part `index` of `plan` with its images, read from the sequence: for a plan made from these
    /// images and not stored (the dry run), whose parts are the ranges it gives.
    pub fn planned(&self, plan: &Plan, index: usize) -> Result<PlannedPart> {
        let part = plan
            .parts
            .get(index)
            .ok_or_else(|| MlyError::Invalid(format!("the plan has no part {}", index + 1)))?;
        let read = self.images.range(part.start, part.len as u64)?;
        if read.len() != part.len {
            return Err(MlyError::Invalid(format!(
                "the sequence no longer holds part {} of its plan",
                index + 1
            )));
        }
        Ok(PlannedPart {
            start: part.start,
            images: read.iter().map(|i| i.path.clone()).collect(),
            times: read.iter().map(|i| i.captured_at_ms).collect(),
            bbox: part.bbox,
        })
    }

    /// The images of `part` as the sequence holds them now, in the plan's order: `None` for a path the
    /// sequence no longer holds. One read where the plan put them; found by path when the sequence
    /// changed since.
    pub fn part(&self, part: &PlannedPart) -> Result<Vec<Option<ImageInfo>>> {
        let read = self.images.range(part.start, part.images.len() as u64)?;
        if in_place(&read, part) {
            return Ok(read.into_owned().into_iter().map(Some).collect());
        }
        drop(read);
        self.by_path(&part.images)
    }

    /// The capture times the images of `part` have now, when the sequence holds them where the plan put
    /// them (`None` when it does not).
    pub fn times_in_place(&self, part: &PlannedPart) -> Result<Option<Vec<i64>>> {
        let read = self.images.range(part.start, part.images.len() as u64)?;
        Ok(in_place(&read, part).then(|| read.iter().map(|i| i.captured_at_ms).collect()))
    }

    /// The images at `paths`, in that order; a run of them within a page is one read.
    fn by_path(&self, paths: &[String]) -> Result<Vec<Option<ImageInfo>>> {
        let places = self.places()?;
        let wanted: Vec<Option<u64>> = paths.iter().map(|p| places.get(p).copied()).collect();
        let mut sorted: Vec<u64> = wanted.iter().flatten().copied().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut found = HashMap::with_capacity(sorted.len());
        let mut rest = sorted.as_slice();
        while let Some(&first) = rest.first() {
            let n = rest.partition_point(|&i| i < first.saturating_add(PAGE));
            let last = rest[n - 1];
            let read = self.images.range(first, last - first + 1)?;
            for &i in &rest[..n] {
                if let Some(image) = read.get((i - first) as usize) {
                    found.insert(i, image.clone());
                }
            }
            rest = &rest[n..];
        }
        Ok(wanted
            .into_iter()
            .map(|at| at.and_then(|i| found.get(&i).cloned()))
            .collect())
    }

    fn places(&self) -> Result<&HashMap<String, u64>> {
        if let Some(places) = self.places.get() {
            return Ok(places);
        }
        let mut places = HashMap::new();
        self.for_each(|at, image| {
            places.insert(image.path.clone(), at);
            Ok(())
        })?;
        Ok(self.places.get_or_init(|| places))
    }

    /// The places in `part` of the paths the sequence no longer holds, in
    /// order: none without a look at any path when the part is where it was planned.
    fn missing_of(&self, part: &PlannedPart) -> Result<Vec<usize>> {
        if self.times_in_place(part)?.is_some() {
            return Ok(Vec::new());
        }
        let places = self.places()?;
        Ok(part
            .images
            .iter()
            .enumerate()
            .filter(|(_, path)| !places.contains_key(path.as_str()))
            .map(|(at, _)| at)
            .collect())
    }

    /// The slots of `plan` whose path the sequence no longer holds, its part `n` being `load(n)`: a
    /// part at a time.
    pub fn missing(
        &self,
        plan: &Plan,
        mut load: impl FnMut(usize) -> Result<PlannedPart>,
    ) -> Result<HashSet<Slot>> {
        let mut missing = HashSet::new();
        for index in 0..plan.parts.len() {
            let part = load(index)?;
            missing.extend(self.missing_of(&part)?.into_iter().map(|at| (index, at)));
        }
        Ok(missing)
    }

    /// The first path of `plan` (its part `n` being `load(n)`), in its order, that the sequence no
    /// longer holds.
    pub fn first_missing(
        &self,
        plan: &Plan,
        mut load: impl FnMut(usize) -> Result<PlannedPart>,
    ) -> Result<Option<String>> {
        for index in 0..plan.parts.len() {
            let mut part = load(index)?;
            if let Some(&at) = self.missing_of(&part)?.first() {
                return Ok(Some(part.images.swap_remove(at)));
            }
        }
        Ok(None)
    }
}

/// Whether `read` (the range of the sequence `part` was planned at) holds the part's paths.
fn in_place(read: &[ImageInfo], part: &PlannedPart) -> bool {
    read.len() == part.images.len()
        && read
            .iter()
            .zip(&part.images)
            .all(|(i, path)| i.path == *path)
}

/// The error for a planned image that is no longer in the sequence.
pub fn gone(path: &str) -> MlyError {
    MlyError::Invalid(format!("{path} is no longer part of the sequence"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PartPlan;
    use plugin_api::sequence::{BoundingBox, Projection};

    fn image(path: &str) -> ImageInfo {
        ImageInfo {
            path: path.into(),
            file_name: path.into(),
            size_bytes: 1,
            latitude: 52.0,
            longitude: 6.0,
            altitude: None,
            captured_at_ms: 0,
            heading: None,
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            sources: None,
        }
    }

    fn parts(parts: &[&[&str]]) -> (Plan, Vec<PlannedPart>) {
        let mut start = 0;
        let planned: Vec<PlannedPart> = parts
            .iter()
            .map(|paths| {
                let part = PlannedPart {
                    start,
                    images: paths.iter().map(|p| p.to_string()).collect(),
                    times: vec![0; paths.len()],
                    bbox: BoundingBox {
                        min_lat: 0.0,
                        min_lon: 0.0,
                        max_lat: 0.0,
                        max_lon: 0.0,
                    },
                };
                start += paths.len() as u64;
                part
            })
            .collect();
        let plan = Plan {
            digest: String::new(),
            parts: planned.iter().map(PartPlan::of).collect(),
        };
        (plan, planned)
    }

    fn paths(found: &[Option<ImageInfo>]) -> Vec<Option<&str>> {
        found
            .iter()
            .map(|i| i.as_ref().map(|i| i.path.as_str()))
            .collect()
    }

    #[test]
    fn parts_are_read_where_planned_or_found_by_path() {
        let now: Vec<ImageInfo> = ["a", "b", "c", "d"].into_iter().map(image).collect();
        let images = SequenceImages::new(Images::whole(&now));
        let (plan, planned) = parts(&[&["a", "b"], &["c", "d"]]);
        let load = |i: usize| Ok(planned[i].clone());
        assert_eq!(
            paths(&images.part(&planned[1]).unwrap()),
            [Some("c"), Some("d")]
        );
        assert_eq!(images.planned(&plan, 1).unwrap(), planned[1]);
        assert!(images.missing(&plan, load).unwrap().is_empty());
        // Changed since: "x" was added before "c", "b" is gone.
        let now: Vec<ImageInfo> = ["a", "x", "c", "d"].into_iter().map(image).collect();
        let images = SequenceImages::new(Images::whole(&now));
        assert_eq!(paths(&images.part(&planned[0]).unwrap()), [Some("a"), None]);
        assert_eq!(
            paths(&images.part(&planned[1]).unwrap()),
            [Some("c"), Some("d")]
        );
        assert_eq!(
            images.missing(&plan, load).unwrap(),
            HashSet::from([(0, 1)])
        );
        assert_eq!(
            images.first_missing(&plan, load).unwrap().as_deref(),
            Some("b")
        );
        assert!(images.planned(&plan, 2).is_err());
    }
}
