//! Checks across images: duplicates (same place and direction as the previous photo), impossible speeds, mixed projections; and
//! the spreading of equal capture times within their second.

use plugin_api::sequence::haversine_m;

use crate::model::{describe_counts, projection_counts, Problem, ProblemKind, ScannedImage};

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

/// How many images share their capture time with a neighbour (and so get spread times).
pub fn spread_count(times: impl IntoIterator<Item = Option<i64>>) -> usize {
    // One pass with the previous time and whether it was counted: no list of every time.
    let mut count = 0;
    let (mut previous, mut previous_counted) = (None, false);
    for time in times {
        let same = time.is_some() && time == previous;
        if same && !previous_counted {
            count += 1;
        }
        count += usize::from(same);
        (previous, previous_counted) = (time, same);
    }
    count
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

/// Adds per-image problems to `per_image` (parallel to `images`, which are sorted by capture time) and
/// returns the sequence-level ones.
///
/// Only images without problems so far take part, so one bad file does not cascade into its neighbours.
/// Speed is checked greedily against the last accepted image: an outlier is flagged and its successor is
/// compared with the image before it. By the triangle inequality, dropping flagged images can never make
/// the remaining consecutive pairs faster, so a descriptor built with `skip_invalid` has no impossible pair.
/// How far after now a capture time may be before it is a problem (a day).
pub const FUTURE_SLACK_MS: i64 = 86_400_000;

pub(crate) fn check_sequence(
    images: &[ScannedImage],
    per_image: &mut [Vec<Problem>],
) -> Vec<Problem> {
    let mut sequence_level = Vec::new();

    // A capture time in the future cannot be right (a camera clock set wrong, a corrupt date); a day of
    // slack covers time zones written as UTC and clocks a little fast.
    let latest = chrono::Utc::now().timestamp_millis() + FUTURE_SLACK_MS;
    for (image, problems) in images.iter().zip(per_image.iter_mut()) {
        if let Some(t) = image.captured_at_ms.filter(|&t| t > latest) {
            if problems.is_empty() {
                problems.push(Problem::image(
                    &image.path,
                    "DateTimeOriginal",
                    ProblemKind::FutureCaptureTime,
                    format!(
                        "capture time {} is in the future: check the camera's clock (or fix the date \
                         with --time-offset)",
                        crate::format_utc(t)
                    ),
                ));
            }
        }
    }

    // Duplicates as the official Mapillary client drops them: an image within DUPLICATE_DISTANCE_M and
    // DUPLICATE_ANGLE_DEG of the previous kept one, whatever the times (a camera standing still at a red
    // light), is left out and the rest uploads (mapillary_tools `process_sequence_properties.py`,
    // `duplication_check`: the angle only counts when both images have one).
    let mut prev: Option<usize> = None;
    for i in 0..images.len() {
        if !per_image[i].is_empty() || images[i].position().is_none() {
            continue;
        }
        if let Some(p) = prev.filter(|&p| duplicate(&images[p], &images[i])) {
            per_image[i].push(Problem::image(
                &images[i].path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::DuplicatePhoto,
                format!(
                    "within {DUPLICATE_DISTANCE_M} m and {DUPLICATE_ANGLE_DEG}° of the previous photo {}: \
                     left out, as mapillary_tools does",
                    images[p].file_name()
                ),
            ));
            continue;
        }
        prev = Some(i);
    }
    let spread = spread_equal_times(
        &(0..images.len())
            .map(|i| {
                if per_image[i].is_empty() {
                    images[i].captured_at_ms
                } else {
                    None
                }
            })
            .collect::<Vec<_>>(),
    );
    let at = |i: usize| spread[i].or(images[i].captured_at_ms).unwrap_or_default();
    let pair = |a: usize, b: usize| (at(a), at(b));

    // Impossible speeds.
    let chain: Vec<usize> = (0..images.len())
        .filter(|&i| {
            per_image[i].is_empty()
                && images[i].position().is_some()
                && images[i].captured_at_ms.is_some()
        })
        .collect();
    let mut start = 0;
    if chain.len() >= 3 {
        let (a, b, c) = (&images[chain[0]], &images[chain[1]], &images[chain[2]]);
        let (ab, ac, bc) = (
            pair(chain[0], chain[1]),
            pair(chain[0], chain[2]),
            pair(chain[1], chain[2]),
        );
        // The first image is the outlier if it is far from both of the next two, which agree with each other.
        if impossible(a, b, ab) && impossible(a, c, ac) && !impossible(b, c, bc) {
            let (v, _) = speed_kmh(a, b, ab).unwrap_or_default();
            per_image[chain[0]].push(Problem::image(
                &a.path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::ImpossibleSpeed,
                format!(
                    "{v:.0} km/h to the next image {} (limit {MAX_SPEED_KMH:.0} km/h); the following images agree with each other",
                    b.file_name()
                ),
            ));
            start = 1;
        }
    }
    if let Some(&first) = chain.get(start) {
        let mut last = first;
        for &i in &chain[start + 1..] {
            if impossible(&images[last], &images[i], pair(last, i)) {
                let (v, d) =
                    speed_kmh(&images[last], &images[i], pair(last, i)).unwrap_or_default();
                per_image[i].push(Problem::image(
                    &images[i].path,
                    "GPSLatitude/GPSLongitude",
                    ProblemKind::ImpossibleSpeed,
                    format!(
                        "{v:.0} km/h ({d:.0} m) from {} (limit {MAX_SPEED_KMH:.0} km/h)",
                        images[last].file_name()
                    ),
                ));
            } else {
                last = i;
            }
        }
    }

    // Mixed projections, among images whose header could be read.
    let readable: Vec<&ScannedImage> = images
        .iter()
        .zip(per_image.iter())
        .filter(|(_, p)| {
            !p.iter().any(|p| {
                matches!(
                    p.kind,
                    ProblemKind::Unreadable | ProblemKind::CorruptJpeg | ProblemKind::CorruptExif
                )
            })
        })
        .map(|(i, _)| i)
        .collect();
    let counts = projection_counts(readable.iter().copied());
    if counts.len() > 1 {
        let keep = crate::model::majority_projection(&readable);
        let examples: Vec<_> = readable
            .iter()
            .filter(|i| Some(&i.projection) != keep.as_ref())
            .take(5)
            .map(|i| i.file_name())
            .collect();
        sequence_level.push(Problem {
            file: None,
            field: "projection".to_string(),
            kind: ProblemKind::MixedProjections,
            message: format!(
                "mixed projections: {} (e.g. {}); a sequence must have one projection",
                describe_counts(&counts),
                examples.join(", ")
            ),
        });
    }
    sequence_level
}

#[cfg(test)]
mod tests {
    use super::spread_count;

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
