//! Checks across images: duplicates (same place and direction as the previous photo), impossible speeds, mixed projections; and
//! the spreading of equal capture times within their second.

use std::collections::BTreeMap;

use plugin_api::sequence::{haversine_m, Projection};

use crate::image_list::ImageList;
use crate::model::{
    describe_counts, until_error, Problem, ProblemKind, ScannedImage, SequenceError,
};

/// Fastest plausible speed between consecutive images (Mapillary rejects sequences above it).
pub const MAX_SPEED_KMH: f64 = 400.0;

/// Jumps shorter than this are never called impossible: at high frame rates, ordinary GPS noise over a
/// fraction of a second would otherwise exceed the speed limit.
pub const GPS_NOISE_M: f64 = 25.0;

/// An image closer than this to the previous one, and turned by at most [`DUPLICATE_ANGLE_DEG`], is a
/// duplicate (mapillary_tools 0.14.7's default `DUPLICATE_DISTANCE`, `mapillary_tools/constants.py`).
pub const DUPLICATE_DISTANCE_M: f64 = 0.1;

/// See [`DUPLICATE_DISTANCE_M`] (mapillary_tools' default `DUPLICATE_ANGLE`).
pub const DUPLICATE_ANGLE_DEG: f64 = 5.0;

/// Spreads runs of equal capture times (`times` sorted, `None`s last) evenly over the time up to the next
/// image, at most to the end of their second — what mapillary_tools does before it sorts and uploads
/// (`_interpolate_subsecs_for_sorting` in mapillary/mapillary_tools
/// `mapillary_tools/process_sequence_properties.py`). MTPDU writes whole seconds, so a time-lapse at more than
/// one frame per second has runs of equal times; after this they are distinct and keep their order.
///
/// ```
/// use mtp_sequence::validate::spread_equal_times;
/// let t = |v: &[i64]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
/// assert_eq!(spread_equal_times(&t(&[1000, 1000, 1000, 1000, 1000, 2000])),
///            t(&[1000, 1200, 1400, 1600, 1800, 2000]));
/// assert_eq!(spread_equal_times(&t(&[1000, 1000, 1500])), t(&[1000, 1250, 1500]));
/// assert_eq!(spread_equal_times(&t(&[1100])), t(&[1100]));
/// ```
pub fn spread_equal_times(times: &[Option<i64>]) -> Vec<Option<i64>> {
    Spread::new(times.iter().map(|&t| ((), t)))
        .map(|(_, t)| t)
        .collect()
}

/// [`spread_equal_times`] over items that come one at a time, each with its time: they come out in
/// the same order with their spread times, holding only one run of equal times (and the item after
/// it) at once. The scan walks its images so, from its scratch file.
pub(crate) struct Spread<T, I> {
    items: I,
    /// The item after the last run, read to know where the run ends.
    after: Option<(T, Option<i64>)>,
    ready: std::collections::VecDeque<(T, Option<i64>)>,
}

impl<T, I: Iterator<Item = (T, Option<i64>)>> Spread<T, I> {
    pub(crate) fn new(items: I) -> Self {
        Spread {
            items,
            after: None,
            ready: std::collections::VecDeque::new(),
        }
    }
}

impl<T, I: Iterator<Item = (T, Option<i64>)>> Iterator for Spread<T, I> {
    type Item = (T, Option<i64>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        let first = self.after.take().or_else(|| self.items.next())?;
        let Some(t) = first.1 else {
            return Some(first);
        };
        let mut run = vec![first];
        for item in self.items.by_ref() {
            if item.1 == Some(t) {
                run.push(item);
            } else {
                self.after = Some(item);
                break;
            }
        }
        let n = run.len() as i64;
        if n > 1 {
            let end_of_second = t.div_euclid(1000) * 1000 + 1000;
            let next = self
                .after
                .as_ref()
                .and_then(|a| a.1)
                .unwrap_or(end_of_second);
            let span = next.min(end_of_second) - t;
            for (k, item) in run.iter_mut().enumerate() {
                item.1 = Some(t + span * k as i64 / n);
            }
        }
        self.ready.extend(run);
        self.ready.pop_front()
    }
}

/// How many images share their capture time with a neighbour (and so get spread times).
pub fn spread_count(times: impl IntoIterator<Item = Option<i64>>) -> usize {
    let mut count = SpreadCount::default();
    times.into_iter().for_each(|t| count.add(t));
    count.count
}

/// [`spread_count`] a time at a time: the previous time and whether it was counted, no list of every
/// time.
#[derive(Default)]
pub(crate) struct SpreadCount {
    pub(crate) count: usize,
    previous: Option<i64>,
    previous_counted: bool,
}

impl SpreadCount {
    pub(crate) fn add(&mut self, time: Option<i64>) {
        let same = time.is_some() && time == self.previous;
        if same && !self.previous_counted {
            self.count += 1;
        }
        self.count += usize::from(same);
        (self.previous, self.previous_counted) = (time, same);
    }
}

fn speed_kmh(a: &ScannedImage, b: &ScannedImage, times: (i64, i64)) -> Option<(f64, f64)> {
    let ((la, lo), (lb, lob)) = (a.position()?, b.position()?);
    let dt_ms = times.1 - times.0;
    let d = haversine_m(la, lo, lb, lob);
    if dt_ms <= 0 {
        return None;
    }
    Some((d / 1000.0 / (dt_ms as f64 / 3_600_000.0), d))
}

fn impossible(a: &ScannedImage, b: &ScannedImage, times: (i64, i64)) -> bool {
    speed_kmh(a, b, times).is_some_and(|(v, d)| v > MAX_SPEED_KMH && d > GPS_NOISE_M)
}

fn duplicate(a: &ScannedImage, b: &ScannedImage) -> bool {
    let close = match (a.position(), b.position()) {
        (Some((la, lo)), Some((lb, lob))) => haversine_m(la, lo, lb, lob) <= DUPLICATE_DISTANCE_M,
        _ => false,
    };
    let turned = match (a.heading, b.heading) {
        (Some(x), Some(y)) => {
            let d = (x - y).rem_euclid(360.0);
            d.min(360.0 - d) > DUPLICATE_ANGLE_DEG
        }
        _ => false,
    };
    close && !turned
}

/// How far after now a capture time may be before it is a problem (a day).
pub const FUTURE_SLACK_MS: i64 = 86_400_000;

/// Adds per-image problems to `per_image` (by the image's index in `images`, which are sorted by capture
/// time) and returns the sequence-level ones.
///
/// Only images without problems so far take part, so one bad file does not cascade into its neighbours.
/// Speed is checked greedily against the last accepted image: an outlier is flagged and its successor is
/// compared with the image before it. By the triangle inequality, dropping flagged images can never make
/// the remaining consecutive pairs faster, so a descriptor built with `skip_invalid` has no impossible pair.
pub(crate) fn check_sequence(
    images: &ImageList,
    per_image: &mut BTreeMap<usize, Vec<Problem>>,
) -> Result<Vec<Problem>, SequenceError> {
    // Each check is a pass over the scan's file with what it needs of the images before: the images
    // are not in memory (docs/architecture.md, "Memory").
    let flag = |per_image: &mut BTreeMap<usize, Vec<Problem>>, i: usize, p: Problem| {
        per_image.entry(i).or_default().push(p)
    };
    let mut sequence_level = Vec::new();

    // A capture time in the future cannot be right (a camera clock set wrong, a corrupt date); a day of
    // slack covers time zones written as UTC and clocks a little fast.
    let latest = chrono::Utc::now().timestamp_millis() + FUTURE_SLACK_MS;
    // Duplicates as the official Mapillary client drops them: an image within DUPLICATE_DISTANCE_M and
    // DUPLICATE_ANGLE_DEG of the previous kept one, whatever the times (a camera standing still at a red
    // light), is left out and the rest uploads (mapillary_tools `process_sequence_properties.py`,
    // `duplication_check`: the angle only counts when both images have one). One pass with the
    // check above: an image in the future takes no part.
    let mut prev: Option<ScannedImage> = None;
    for (i, image) in images.iter().enumerate() {
        let image = image?;
        if let Some(t) = image.captured_at_ms.filter(|&t| t > latest) {
            if !per_image.contains_key(&i) {
                flag(
                    per_image,
                    i,
                    Problem::image(
                        &image.path,
                        "DateTimeOriginal",
                        ProblemKind::FutureCaptureTime,
                        format!(
                            "capture time {} is in the future: check the camera's clock (or fix the \
                             date with --time-offset)",
                            crate::format_utc(t)
                        ),
                    ),
                );
            }
        }
        if per_image.contains_key(&i) || image.position().is_none() {
            continue;
        }
        if let Some(p) = prev.as_ref().filter(|p| duplicate(p, &image)) {
            let problem = Problem::image(
                &image.path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::DuplicatePhoto,
                format!(
                    "within {DUPLICATE_DISTANCE_M} m and {DUPLICATE_ANGLE_DEG}° of the previous photo {}: \
                     left out, as mapillary_tools does",
                    p.file_name()
                ),
            );
            flag(per_image, i, problem);
            continue;
        }
        prev = Some(image);
    }

    // Impossible speeds, between the images without a problem so far, at their spread times.
    let flagged: std::collections::BTreeSet<usize> = per_image.keys().copied().collect();
    let mut failed = None;
    // A block, so that the passes over the file end before `failed` is looked at.
    {
        let times = until_error(images.iter(), &mut failed)
            .enumerate()
            .map(|(i, image)| {
                let time = image.captured_at_ms.filter(|_| !flagged.contains(&i));
                ((i, image), time)
            });
        let mut chain = Spread::new(times).filter_map(|((i, image), at)| {
            (!flagged.contains(&i) && image.position().is_some()).then_some((i, image, at?))
        });
        let head: Vec<(usize, ScannedImage, i64)> = chain.by_ref().take(3).collect();
        let mut start = 0;
        if let [(i0, a, ta), (_, b, tb), (_, c, tc)] = head.as_slice() {
            let (ab, ac, bc) = ((*ta, *tb), (*ta, *tc), (*tb, *tc));
            // The first image is the outlier if it is far from both of the next two, which agree with each other.
            if impossible(a, b, ab) && impossible(a, c, ac) && !impossible(b, c, bc) {
                let (v, _) = speed_kmh(a, b, ab).unwrap_or_default();
                let problem = Problem::image(
                    &a.path,
                    "GPSLatitude/GPSLongitude",
                    ProblemKind::ImpossibleSpeed,
                    format!(
                        "{v:.0} km/h to the next image {} (limit {MAX_SPEED_KMH:.0} km/h); the following images agree with each other",
                        b.file_name()
                    ),
                );
                flag(per_image, *i0, problem);
                start = 1;
            }
        }
        let mut rest = head.into_iter().skip(start).chain(chain);
        if let Some(mut last) = rest.next() {
            for (i, image, at) in rest {
                let pair = (last.2, at);
                if impossible(&last.1, &image, pair) {
                    let (v, d) = speed_kmh(&last.1, &image, pair).unwrap_or_default();
                    let problem = Problem::image(
                        &image.path,
                        "GPSLatitude/GPSLongitude",
                        ProblemKind::ImpossibleSpeed,
                        format!(
                            "{v:.0} km/h ({d:.0} m) from {} (limit {MAX_SPEED_KMH:.0} km/h)",
                            last.1.file_name()
                        ),
                    );
                    flag(per_image, i, problem);
                } else {
                    last = (i, image, at);
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }

    // Mixed projections, among images whose header could be read.
    let readable = |i: &usize, per_image: &BTreeMap<usize, Vec<Problem>>| {
        !per_image.get(i).is_some_and(|problems| {
            problems.iter().any(|p| {
                matches!(
                    p.kind,
                    ProblemKind::Unreadable | ProblemKind::CorruptJpeg | ProblemKind::CorruptExif
                )
            })
        })
    };
    let mut counts = ProjectionCount::default();
    for (i, image) in images.iter().enumerate() {
        let image = image?;
        if readable(&i, per_image) {
            counts.add(&image.projection);
        }
    }
    if let Some(keep) = counts.majority() {
        let mut examples = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let image = image?;
            if readable(&i, per_image) && image.projection != keep {
                examples.push(image.file_name().into_owned());
                if examples.len() == 5 {
                    break;
                }
            }
        }
        sequence_level.push(Problem {
            file: None,
            field: "projection".to_string(),
            kind: ProblemKind::MixedProjections,
            message: format!(
                "mixed projections: {} (e.g. {}); a sequence must have one projection",
                describe_counts(counts.counts()),
                examples.join(", ")
            ),
        });
    }
    Ok(sequence_level)
}

/// How many images have each projection, and which came first.
#[derive(Default)]
pub(crate) struct ProjectionCount {
    counts: BTreeMap<Projection, usize>,
    /// In the order of their first image.
    seen: Vec<Projection>,
}

impl ProjectionCount {
    pub(crate) fn add(&mut self, projection: &Projection) {
        match self.counts.get_mut(projection) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(projection.clone(), 1);
                self.seen.push(projection.clone());
            }
        }
    }

    pub(crate) fn counts(&self) -> &BTreeMap<Projection, usize> {
        &self.counts
    }

    /// The projection to keep when the images mix projections (`None` if they do not): the most
    /// common one, on a tie the projection of the first image.
    pub(crate) fn majority(&self) -> Option<Projection> {
        if self.counts.len() < 2 {
            return None;
        }
        let max = self.counts.values().copied().max()?;
        self.seen
            .iter()
            .find(|p| self.counts.get(*p) == Some(&max))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::{spread_count, spread_equal_times};
    use proptest::prelude::*;

    /// The spreading as it was written over a whole list, before the scan streamed its images.
    fn spread_whole(times: &[Option<i64>]) -> Vec<Option<i64>> {
        let mut out = times.to_vec();
        let mut start = 0;
        while start < times.len() {
            let Some(t) = times[start] else {
                start += 1;
                continue;
            };
            let end = (start..times.len())
                .find(|&j| times[j] != Some(t))
                .unwrap_or(times.len());
            let n = (end - start) as i64;
            if n > 1 {
                let end_of_second = t.div_euclid(1000) * 1000 + 1000;
                let next = times.get(end).copied().flatten().unwrap_or(end_of_second);
                let span = next.min(end_of_second) - t;
                for (k, slot) in out[start..end].iter_mut().enumerate() {
                    *slot = Some(t + span * k as i64 / n);
                }
            }
            start = end;
        }
        out
    }

    proptest! {
        #[test]
        fn spreading_a_run_at_a_time_is_spreading_the_whole_list(
            steps in proptest::collection::vec((0i64..3, 0u8..10), 0..60),
        ) {
            // Sorted times with runs of equal ones, gaps of a few hundred ms and a few without a time.
            let mut t = -2_000;
            let times: Vec<Option<i64>> = steps
                .iter()
                .map(|&(step, none)| {
                    t += step * 400;
                    (none != 0).then_some(t)
                })
                .collect();
            prop_assert_eq!(spread_equal_times(&times), spread_whole(&times));
        }
    }

    #[test]
    fn images_sharing_a_time_with_a_neighbour_are_counted_once_each() {
        let s = Some;
        assert_eq!(spread_count([]), 0);
        assert_eq!(spread_count([s(5)]), 0);
        assert_eq!(spread_count([s(1), s(1), s(2), s(3), s(3), s(3)]), 5);
        // Images without a time share nothing; equal times apart are not neighbours.
        assert_eq!(spread_count([None, None, s(4), s(5), s(4)]), 0);
        assert_eq!(spread_count([s(7), s(7), None, s(7), s(7)]), 4);
    }
}
