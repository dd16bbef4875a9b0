//! How a sequence is cut into the parts Mapillary accepts as one uploaded sequence each (mapillary_tools'
//! limits: `docs/providers/mapillary.md`, "Limits"). A pure function of the images, so every run plans the same parts.

use plugin_api::sequence::{haversine_m, ImageInfo};

/// Mapillary's limits for one uploaded sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most images in one part.
    pub max_images: usize,
    /// Most bytes in one part.
    pub max_bytes: u64,
    /// Most pixels (summed over the images) in one part.
    pub max_pixels: u64,
    /// A longer time between consecutive images starts a new part (ms).
    pub max_gap_ms: i64,
    /// A longer distance between consecutive images starts a new part (m).
    pub max_gap_m: f64,
}

/// The limits mapillary_tools applies: 1000 images, 110 GiB, 6 gigapixels, 60 s, 100 m.
pub const MAPILLARY_LIMITS: Limits = Limits {
    max_images: 1000,
    max_bytes: 110 * 1024 * 1024 * 1024,
    max_pixels: 6_000_000_000,
    max_gap_ms: 60_000,
    max_gap_m: 100.0,
};

fn pixels(image: &ImageInfo) -> u64 {
    u64::from(image.width.unwrap_or(0)) * u64::from(image.height.unwrap_or(0))
}

/// Cuts a sequence (in capture order) into consecutive parts, each within its limits, one image at a
/// time, so that a long sequence is split while it is read a page at a time: a part ends before an
/// image that comes more than `max_gap_ms` or `max_gap_m` after the previous one, or that would take the
/// part over its image, byte or pixel budget. A single image over a budget still forms a part of its own.
#[derive(Debug, Clone)]
pub struct Splitter {
    limits: Limits,
    /// The previous image's capture time and position.
    previous: Option<(i64, f64, f64)>,
    /// What the part being cut holds so far: images, bytes, pixels.
    images: usize,
    bytes: u64,
    px: u64,
}

impl Splitter {
    /// A splitter within `limits`.
    pub fn new(limits: Limits) -> Splitter {
        Splitter {
            limits,
            previous: None,
            images: 0,
            bytes: 0,
            px: 0,
        }
    }

    /// Takes the next image; `true` when it begins a part (the first image begins the first).
    pub fn starts_part(&mut self, image: &ImageInfo) -> bool {
        let limits = &self.limits;
        let starts = match self.previous {
            None => true,
            Some((ms, lat, lon)) => {
                let gap_ms = image.captured_at_ms - ms;
                let gap_m = haversine_m(lat, lon, image.latitude, image.longitude);
                let full = self.images >= limits.max_images
                    || self.bytes.saturating_add(image.size_bytes) > limits.max_bytes
                    || self.px.saturating_add(pixels(image)) > limits.max_pixels;
                gap_ms > limits.max_gap_ms || gap_m > limits.max_gap_m || full
            }
        };
        if starts {
            (self.images, self.bytes, self.px) = (0, 0, 0);
        }
        self.images += 1;
        self.bytes = self.bytes.saturating_add(image.size_bytes);
        self.px = self.px.saturating_add(pixels(image));
        self.previous = Some((image.captured_at_ms, image.latitude, image.longitude));
        starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sequence::Projection;
    use std::ops::Range;

    /// The parts [`Splitter`] cuts `images` into, as index ranges.
    fn split(images: &[ImageInfo], limits: &Limits) -> Vec<Range<usize>> {
        let mut splitter = Splitter::new(*limits);
        let mut starts: Vec<usize> = (0..images.len())
            .filter(|&i| splitter.starts_part(&images[i]))
            .collect();
        starts.push(images.len());
        starts.windows(2).map(|w| w[0]..w[1]).collect()
    }

    /// `n` images one second and ~1.1 m apart.
    fn images(n: usize) -> Vec<ImageInfo> {
        (0..n)
            .map(|i| ImageInfo {
                path: format!("/s/{i}.jpg"),
                file_name: format!("{i}.jpg"),
                size_bytes: 1000,
                latitude: 52.0 + i as f64 * 1e-5,
                longitude: 6.0,
                altitude: None,
                captured_at_ms: 1_000_000 + i as i64 * 1000,
                heading: None,
                projection: Projection::Flat,
                width: Some(4000),
                height: Some(3000),
                photo_uuid: None,
                sources: None,
            })
            .collect()
    }

    #[test]
    fn small_sequences_stay_whole() {
        assert_eq!(split(&images(10), &MAPILLARY_LIMITS), vec![0..10]);
        assert_eq!(split(&images(1), &MAPILLARY_LIMITS), vec![0..1]);
        assert!(split(&[], &MAPILLARY_LIMITS).is_empty());
    }

    #[test]
    fn time_and_distance_gaps_cut() {
        let mut seq = images(10);
        for image in &mut seq[4..] {
            image.captured_at_ms += 120_000; // a 2-minute pause before image 4
        }
        for image in &mut seq[7..] {
            image.latitude += 0.01; // a ~1.1 km jump before image 7
        }
        assert_eq!(split(&seq, &MAPILLARY_LIMITS), vec![0..4, 4..7, 7..10]);
        // Exactly at the limits is not a gap.
        let mut edge = images(3);
        edge[2].captured_at_ms = edge[1].captured_at_ms + 60_000;
        assert_eq!(split(&edge, &MAPILLARY_LIMITS), vec![0..3]);
    }

    #[test]
    fn budgets_cut() {
        let mut small = images(2500);
        for image in &mut small {
            image.width = Some(640);
            image.height = Some(480);
        }
        assert_eq!(
            split(&small, &MAPILLARY_LIMITS),
            vec![0..1000, 1000..2000, 2000..2500]
        );
        // 12 MP images: 500 fit in 6 gigapixels.
        let px = Limits {
            max_images: usize::MAX,
            ..MAPILLARY_LIMITS
        };
        assert_eq!(
            split(&images(1200), &px),
            vec![0..500, 500..1000, 1000..1200]
        );
        let bytes = Limits {
            max_bytes: 3500,
            ..MAPILLARY_LIMITS
        };
        assert_eq!(split(&images(7), &bytes), vec![0..3, 3..6, 6..7]);
        // An image over the budget on its own still goes (alone).
        let tiny = Limits {
            max_bytes: 10,
            ..MAPILLARY_LIMITS
        };
        assert_eq!(split(&images(2), &tiny), vec![0..1, 1..2]);
    }
}
