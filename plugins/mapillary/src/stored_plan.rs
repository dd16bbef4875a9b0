//! The plan as a run holds it and as the state stores it.
//!
//! A run holds a [`Plan`]: the digest and, for each part (at most 1,000 images), where it starts in the
//! sequence as planned, how many images it has, the first and last capture time and the bounding box:
//! about 70 bytes a part, under a tenth of a byte an image. A part's images (path and capture time,
//! [`PlannedPart`]) are read when the part's turn comes, one part at a time: from the state, where
//! `seq/<id>/plan/<n>` holds part `n`'s, or from the sequence itself (its images lent a page at a time)
//! for a plan not stored (the dry run). Every image's path and time in memory were 8 MB at 100,000, and
//! storing them as one value under `seq/<id>/plan` wrote a 5 MB JSON string that SQLite copied again.
//!
//! The paths are stored, not only the ranges, because they are what the per-image records are keyed by
//! and what was published: a sequence that changed after publishing began (or a folder that moved) is
//! compared against them, and its images are no longer at the places the plan gave them.
//!
//! Earlier versions stored the whole plan, images included, under `seq/<id>/plan`. Such a plan is read
//! once more in full and rewritten in this form ([`SequenceStore::plan`]): the parts first, then the new
//! plan in its place, so a run stopped half-way finds the old plan and rewrites it again. Its digest and
//! parts are unchanged, so a half-done upload resumes where it stopped. An earlier version refuses the
//! new form (it lacks the images it expects) rather than planning the sequence anew.

use plugin_api::protocol::StateWrite;
use plugin_api::sequence::BoundingBox;
use serde::{Deserialize, Serialize};

use crate::error::{MlyError, Result};
use crate::state::SequenceStore;

/// How many parts' images one state write holds (about 60 KB each for paths of 40 characters).
const PARTS_A_WRITE: usize = 10;

/// How a sequence was split, and a digest of everything the split and the outgoing descriptions depend
/// on. It holds what the key lookup needs, with each part's images (read a part at a time), so a
/// re-check works from state alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// md5 of every image's path and the metadata written into its description, part by part.
    pub digest: String,
    /// The parts, in order.
    pub parts: Vec<PartPlan>,
}

impl Plan {
    /// How many images the plan holds.
    pub fn image_count(&self) -> u64 {
        self.parts.iter().map(|p| p.len as u64).sum()
    }
}

/// One part of a [`Plan`], without its images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartPlan {
    /// The index of its first image in the sequence as planned.
    pub start: u64,
    /// How many images it has.
    pub len: usize,
    /// The earliest capture time of its images (Unix ms).
    pub first_ms: i64,
    /// The latest.
    pub last_ms: i64,
    /// Their bounding box.
    pub bbox: BoundingBox,
}

#[cfg(test)]
impl PartPlan {
    /// The summary of `part`.
    pub fn of(part: &PlannedPart) -> PartPlan {
        PartPlan {
            start: part.start,
            len: part.images.len(),
            first_ms: part.times.iter().min().copied().unwrap_or(0),
            last_ms: part.times.iter().max().copied().unwrap_or(0),
            bbox: part.bbox,
        }
    }
}

/// One part of a [`Plan`] with its images, as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPart {
    /// The index of its first image in the sequence as planned.
    pub start: u64,
    /// Image paths, in capture order.
    pub images: Vec<String>,
    /// Their capture times (Unix ms), same order.
    pub times: Vec<i64>,
    /// Their bounding box.
    pub bbox: BoundingBox,
}

/// What `seq/<id>/plan/<n>` holds.
#[derive(Serialize, Deserialize)]
struct StoredImages<'a> {
    #[serde(borrow)]
    images: Vec<std::borrow::Cow<'a, str>>,
    times: Vec<i64>,
}

/// A plan as versions before this one stored it, whole.
#[derive(Deserialize)]
struct WholePlan {
    digest: String,
    parts: Vec<WholePart>,
}

#[derive(Deserialize, Default)]
struct WholePart {
    images: Vec<String>,
    times: Vec<i64>,
    bbox: Option<BoundingBox>,
}

fn unreadable(key: &str, err: impl std::fmt::Display) -> MlyError {
    MlyError::Invalid(format!("stored state {key:?} is not readable: {err}"))
}

impl SequenceStore<'_> {
    fn plan_key(&self) -> String {
        self.key("plan")
    }

    fn images_key(&self, index: usize) -> String {
        self.key(&format!("plan/{index}"))
    }

    /// The stored plan; one stored whole by an earlier version is rewritten a part at a time first.
    pub fn plan(&self) -> Result<Option<Plan>> {
        let key = self.plan_key();
        let Some(text) = self.context().state().get(&key)? else {
            return Ok(None);
        };
        if let Ok(plan) = serde_json::from_str::<Plan>(&text) {
            return Ok(Some(plan));
        }
        let whole: WholePlan = serde_json::from_str(&text).map_err(|err| unreadable(&key, err))?;
        drop(text);
        self.rewrite(whole).map(Some)
    }

    /// Stores `whole` as this version does; its digest and parts stay what they were.
    fn rewrite(&self, whole: WholePlan) -> Result<Plan> {
        let mut parts = whole.parts;
        let mut plan = Plan {
            digest: whole.digest,
            parts: Vec::with_capacity(parts.len()),
        };
        let mut start = 0u64;
        for part in &parts {
            let len = part.images.len();
            plan.parts.push(PartPlan {
                start,
                len,
                first_ms: part.times.iter().min().copied().unwrap_or(0),
                last_ms: part.times.iter().max().copied().unwrap_or(0),
                bbox: part.bbox.unwrap_or(NO_BOX),
            });
            start += len as u64;
        }
        self.put_plan(&plan, |index| {
            let part = parts.get_mut(index).map(std::mem::take).unwrap_or_default();
            Ok(PlannedPart {
                start: plan.parts[index].start,
                images: part.images,
                times: part.times,
                bbox: plan.parts[index].bbox,
            })
        })?;
        Ok(plan)
    }

    /// Stores `plan`, part `n`'s images being `images(n)`: the parts' images first, a few parts a
    /// write, then the plan that names them, so a stored plan never names images not stored.
    pub fn put_plan(
        &self,
        plan: &Plan,
        mut images: impl FnMut(usize) -> Result<PlannedPart>,
    ) -> Result<()> {
        let mut writes = Vec::with_capacity(PARTS_A_WRITE + 1);
        for index in 0..plan.parts.len() {
            writes.push(self.images_write(index, &images(index)?)?);
            if writes.len() == PARTS_A_WRITE {
                self.context().state().write_all(&writes)?;
                writes.clear();
            }
        }
        writes.push(encoded(StateWrite::put_json(self.plan_key(), plan))?);
        Ok(self.context().state().write_all(&writes)?)
    }

    /// Stores the images of the parts `parts` (index and images) of the stored plan, a few a write.
    pub fn put_planned<'p>(
        &self,
        parts: impl IntoIterator<Item = (usize, &'p PlannedPart)>,
    ) -> Result<()> {
        let mut writes = Vec::with_capacity(PARTS_A_WRITE);
        for (index, part) in parts {
            writes.push(self.images_write(index, part)?);
            if writes.len() == PARTS_A_WRITE {
                self.context().state().write_all(&writes)?;
                writes.clear();
            }
        }
        Ok(self.context().state().write_all(&writes)?)
    }

    fn images_write(&self, index: usize, part: &PlannedPart) -> Result<StateWrite> {
        let stored = StoredImages {
            images: part.images.iter().map(|p| p.as_str().into()).collect(),
            times: part.times.clone(),
        };
        encoded(StateWrite::put_json(self.images_key(index), &stored))
    }

    /// Part `index` of the stored `plan`, with its images.
    pub fn planned(&self, plan: &Plan, index: usize) -> Result<PlannedPart> {
        let summary = plan
            .parts
            .get(index)
            .ok_or_else(|| MlyError::Invalid(format!("the plan has no part {}", index + 1)))?;
        let key = self.images_key(index);
        let text = self.context().state().get(&key)?.ok_or_else(|| {
            MlyError::Invalid(format!(
                "the images of part {} of the stored plan are missing",
                index + 1
            ))
        })?;
        let stored: StoredImages<'_> =
            serde_json::from_str(&text).map_err(|err| unreadable(&key, err))?;
        if stored.images.len() != summary.len || stored.times.len() != summary.len {
            return Err(unreadable(&key, "its length is not the plan's"));
        }
        Ok(PlannedPart {
            start: summary.start,
            images: stored.images.into_iter().map(String::from).collect(),
            times: stored.times,
            bbox: summary.bbox,
        })
    }
}

fn encoded(write: serde_json::Result<StateWrite>) -> Result<StateWrite> {
    write.map_err(|err| MlyError::Invalid(format!("cannot encode state: {err}")))
}

/// The box of a part without images.
pub const NO_BOX: BoundingBox = BoundingBox {
    min_lat: 0.0,
    min_lon: 0.0,
    max_lat: 0.0,
    max_lon: 0.0,
};

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    fn part(start: u64, paths: &[&str], times: &[i64]) -> PlannedPart {
        PlannedPart {
            start,
            images: paths.iter().map(|p| p.to_string()).collect(),
            times: times.to_vec(),
            bbox: BoundingBox {
                min_lat: 1.0,
                min_lon: 2.0,
                max_lat: 3.0,
                max_lon: 4.0,
            },
        }
    }

    #[test]
    fn a_plan_is_stored_a_part_at_a_time() {
        let host = TestHost::new();
        let ctx = host.context();
        let store = SequenceStore::new(&ctx, "s1");
        let parts = [part(0, &["/a", "/b"], &[5, 3]), part(2, &["/c"], &[9])];
        let plan = Plan {
            digest: "d".into(),
            parts: parts.iter().map(PartPlan::of).collect(),
        };
        assert_eq!((plan.parts[0].first_ms, plan.parts[0].last_ms), (3, 5));
        store.put_plan(&plan, |i| Ok(parts[i].clone())).unwrap();
        assert_eq!(store.plan().unwrap(), Some(plan.clone()));
        assert_eq!(store.planned(&plan, 1).unwrap(), parts[1]);
        assert!(host.state("seq/s1/plan/0").unwrap().contains("/b"));
        assert!(!host.state("seq/s1/plan").unwrap().contains("/b"));
        let moved = part(2, &["/elsewhere/c"], &[9]);
        store.put_planned([(1, &moved)]).unwrap();
        assert_eq!(store.planned(&plan, 1).unwrap(), moved);
        store.clear().unwrap();
        assert_eq!(store.plan().unwrap(), None);
        assert!(host.state("seq/s1/plan/0").is_none());
    }

    /// A plan an earlier version stored whole is read as it was, and rewritten part by part.
    #[test]
    fn a_whole_plan_of_an_earlier_version_is_read_and_rewritten() {
        let host = TestHost::new();
        let ctx = host.context();
        let whole = r#"{"digest":"124d","parts":[
            {"images":["/s/0.jpg","/s/1.jpg"],"times":[1000,2000],
             "bbox":{"min_lat":52.0,"min_lon":6.0,"max_lat":52.1,"max_lon":6.1}},
            {"images":["/s/2.jpg"],"times":[9000],
             "bbox":{"min_lat":53.0,"min_lon":7.0,"max_lat":53.0,"max_lon":7.0}}]}"#;
        ctx.state().put("seq/s1/plan", whole).unwrap();
        let store = SequenceStore::new(&ctx, "s1");
        let plan = store.plan().unwrap().unwrap();
        assert_eq!(plan.digest, "124d");
        assert_eq!(plan.image_count(), 3);
        assert_eq!(plan.parts[1].start, 2);
        assert_eq!(
            (plan.parts[0].first_ms, plan.parts[0].last_ms),
            (1000, 2000)
        );
        assert_eq!(plan.parts[1].bbox.min_lat, 53.0);
        let second = store.planned(&plan, 1).unwrap();
        assert_eq!(
            (second.images, second.times),
            (vec!["/s/2.jpg".into()], vec![9000])
        );
        assert_eq!(store.planned(&plan, 0).unwrap().images[1], "/s/1.jpg");
        // Rewritten: the next read is of this version's form, and the same.
        assert!(!host.state("seq/s1/plan").unwrap().contains("/s/0.jpg"));
        assert_eq!(store.plan().unwrap(), Some(plan));
    }

    #[test]
    fn missing_or_short_images_are_an_error() {
        let host = TestHost::new();
        let ctx = host.context();
        let store = SequenceStore::new(&ctx, "s1");
        let parts = [part(0, &["/a", "/b"], &[1, 2])];
        let plan = Plan {
            digest: "d".into(),
            parts: parts.iter().map(PartPlan::of).collect(),
        };
        assert!(store.planned(&plan, 0).is_err());
        store.put_planned([(0, &part(0, &["/a"], &[1]))]).unwrap();
        assert!(store.planned(&plan, 0).is_err());
        assert!(store.planned(&plan, 1).is_err());
    }
}
