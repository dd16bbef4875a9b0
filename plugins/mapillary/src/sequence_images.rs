//! A run's images as the pipeline reads them: a page, a part or a few at a time, whether the host lends
//! them (plugin API 1.4) or the request carries them. Nothing here keeps the whole sequence: at 100,000
//! photos a copy of every image description is about 50 MB, which the plan (paths and times) does not
//! need. A part of the plan is a contiguous range of the sequence as it was planned, so it is read back
//! by that range; only a sequence changed since its plan was made is looked up by path.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use plugin_api::prelude::*;
use plugin_api::sdk::images::PAGE;

use crate::error::{MlyError, Result};
use crate::state::Plan;

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

    /// The images of part `index` of `plan` as the sequence holds them now, in the plan's order: `None`
    /// for a path the sequence no longer holds. One read where the plan put them; found by path when the
    /// sequence changed since.
    pub fn part(&self, plan: &Plan, index: usize) -> Result<Vec<Option<ImageInfo>>> {
        let Some(part) = plan.parts.get(index) else {
            return Ok(Vec::new());
        };
        let start: u64 = plan.parts[..index]
            .iter()
            .map(|p| p.images.len() as u64)
            .sum();
        let read = self.images.range(start, part.images.len() as u64)?;
        let in_place = read.len() == part.images.len()
            && read
                .iter()
                .zip(&part.images)
                .all(|(i, path)| i.path == *path);
        if in_place {
            return Ok(read.into_owned().into_iter().map(Some).collect());
        }
        drop(read);
        self.by_path(&part.images)
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

    /// The slots of `plan` whose path the sequence no longer holds (one pass over the images).
    pub fn missing(&self, plan: &Plan) -> Result<HashSet<Slot>> {
        let mut absent: HashMap<&str, Vec<Slot>> = HashMap::new();
        for (part, planned) in plan.parts.iter().enumerate() {
            for (index, path) in planned.images.iter().enumerate() {
                absent.entry(path.as_str()).or_default().push((part, index));
            }
        }
        self.for_each(|_, image| {
            absent.remove(image.path.as_str());
            Ok(())
        })?;
        Ok(absent.into_values().flatten().collect())
    }

    /// The first path of `plan`, in its order, that the sequence no longer holds.
    pub fn first_missing<'p>(&self, plan: &'p Plan) -> Result<Option<&'p str>> {
        let missing = self.missing(plan)?;
        Ok(plan.parts.iter().enumerate().find_map(|(part, planned)| {
            planned
                .images
                .iter()
                .enumerate()
                .find(|(index, _)| missing.contains(&(part, *index)))
                .map(|(_, path)| path.as_str())
        }))
    }
}

/// The error for a planned image that is no longer in the sequence.
pub fn gone(path: &str) -> MlyError {
    MlyError::Invalid(format!("{path} is no longer part of the sequence"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PlannedPart;
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

    fn plan(parts: &[&[&str]]) -> Plan {
        Plan {
            digest: String::new(),
            parts: parts
                .iter()
                .map(|paths| PlannedPart {
                    images: paths.iter().map(|p| p.to_string()).collect(),
                    times: vec![0; paths.len()],
                    bbox: BoundingBox {
                        min_lat: 0.0,
                        min_lon: 0.0,
                        max_lat: 0.0,
                        max_lon: 0.0,
                    },
                })
                .collect(),
        }
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
        let planned = plan(&[&["a", "b"], &["c", "d"]]);
        assert_eq!(
            paths(&images.part(&planned, 1).unwrap()),
            [Some("c"), Some("d")]
        );
        assert!(images.missing(&planned).unwrap().is_empty());
        // Changed since: "x" was added before "c", "b" is gone.
        let now: Vec<ImageInfo> = ["a", "x", "c", "d"].into_iter().map(image).collect();
        let images = SequenceImages::new(Images::whole(&now));
        assert_eq!(paths(&images.part(&planned, 0).unwrap()), [Some("a"), None]);
        assert_eq!(
            paths(&images.part(&planned, 1).unwrap()),
            [Some("c"), Some("d")]
        );
        assert_eq!(images.missing(&planned).unwrap(), HashSet::from([(0, 1)]));
        assert_eq!(images.first_missing(&planned).unwrap(), Some("b"));
        assert!(images.part(&planned, 2).unwrap().is_empty());
    }
}
