//! Checks across images: duplicate capture times, impossible speeds, mixed projections.

use plugin_api::sequence::haversine_m;

use crate::model::{describe_counts, projection_counts, Problem, ProblemKind, ScannedImage};

/// Fastest plausible speed between consecutive images (Mapillary rejects sequences above it).
pub const MAX_SPEED_KMH: f64 = 400.0;

/// Jumps shorter than this are never called impossible: at high frame rates, ordinary GPS noise over a
/// fraction of a second would otherwise exceed the speed limit.
pub const GPS_NOISE_M: f64 = 25.0;

fn speed_kmh(a: &ScannedImage, b: &ScannedImage) -> Option<(f64, f64)> {
    let ((la, lo), (lb, lob)) = (a.position()?, b.position()?);
    let dt_ms = b.captured_at_ms? - a.captured_at_ms?;
    let d = haversine_m(la, lo, lb, lob);
    if dt_ms <= 0 {
        return None;
    }
    Some((d / 1000.0 / (dt_ms as f64 / 3_600_000.0), d))
}

fn impossible(a: &ScannedImage, b: &ScannedImage) -> bool {
    speed_kmh(a, b).is_some_and(|(v, d)| v > MAX_SPEED_KMH && d > GPS_NOISE_M)
}

/// Adds per-image problems to `per_image` (parallel to `images`, which are sorted by capture time) and
/// returns the sequence-level ones.
///
/// Only images without problems so far take part, so one bad file does not cascade into its neighbours.
/// Speed is checked greedily against the last accepted image: an outlier is flagged and its successor is
/// compared with the image before it. By the triangle inequality, dropping flagged images can never make
/// the remaining consecutive pairs faster, so a descriptor built with `skip_invalid` has no impossible pair.
pub(crate) fn check_sequence(
    images: &[ScannedImage],
    per_image: &mut [Vec<Problem>],
) -> Vec<Problem> {
    let mut sequence_level = Vec::new();

    // Duplicate capture times: the first image of a group is kept.
    let mut prev: Option<usize> = None;
    for i in 0..images.len() {
        if !per_image[i].is_empty() {
            continue;
        }
        let Some(t) = images[i].captured_at_ms else {
            continue;
        };
        if let Some(p) = prev {
            if images[p].captured_at_ms == Some(t) {
                per_image[i].push(Problem::image(
                    &images[i].path,
                    "DateTimeOriginal",
                    ProblemKind::DuplicateCaptureTime,
                    format!(
                        "same capture time as {} ({})",
                        images[p].file_name,
                        crate::format_utc(t)
                    ),
                ));
                continue;
            }
        }
        prev = Some(i);
    }

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
        // The first image is the outlier if it is far from both of the next two, which agree with each other.
        if impossible(a, b) && impossible(a, c) && !impossible(b, c) {
            let (v, _) = speed_kmh(a, b).unwrap_or_default();
            per_image[chain[0]].push(Problem::image(
                &a.path,
                "GPSLatitude/GPSLongitude",
                ProblemKind::ImpossibleSpeed,
                format!(
                    "{v:.0} km/h to the next image {} (limit {MAX_SPEED_KMH:.0} km/h); the following images agree with each other",
                    b.file_name
                ),
            ));
            start = 1;
        }
    }
    if let Some(&first) = chain.get(start) {
        let mut last = first;
        for &i in &chain[start + 1..] {
            if impossible(&images[last], &images[i]) {
                let (v, d) = speed_kmh(&images[last], &images[i]).unwrap_or_default();
                per_image[i].push(Problem::image(
                    &images[i].path,
                    "GPSLatitude/GPSLongitude",
                    ProblemKind::ImpossibleSpeed,
                    format!(
                        "{v:.0} km/h ({d:.0} m) from {} (limit {MAX_SPEED_KMH:.0} km/h)",
                        images[last].file_name
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
        let examples: Vec<&str> = readable
            .iter()
            .filter(|i| Some(&i.projection) != keep.as_ref())
            .take(5)
            .map(|i| i.file_name.as_str())
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
