//! One clock offset per camera within a sequence. A camera clock set to local time keeps its offset for the
//! whole walk; the zone looked up per photo does not when the walk crosses the night summer time ends, or a
//! zone border. So the images of one camera whose offset came from the zone all take one offset: the one
//! the same camera's clock shows against the GPS time in its other images when there are such (a clock set
//! to UTC, typically), else the offset most of them gave (on a tie, the earliest image's). `inspect` says
//! which in one line.

use std::collections::BTreeMap;

use std::sync::Arc;

use crate::capture_time::{OffsetBasis, TimeOffset, TimeSource};
use crate::model::ScannedImage;

/// What the images of a scan say about each camera's clock, gathered an image at a time as they are
/// read (in any order): the scan keeps its images in a file, not in a list to go back over.
#[derive(Default)]
pub(crate) struct ClockVotes {
    /// camera -> offset of the zone-derived times -> (count, earliest wall time)
    zoned: BTreeMap<Camera, BTreeMap<i32, (usize, i64)>>,
    /// camera -> offset its clock shows against GPS time -> count
    evidence: BTreeMap<Camera, BTreeMap<i32, usize>>,
}

/// A camera's name, if the file gives one.
type Camera = Option<Arc<str>>;

impl ClockVotes {
    pub(crate) fn add(&mut self, img: &ScannedImage) {
        match &img.time_source {
            Some(TimeSource::Local {
                offset: OffsetBasis::Zone { .. },
                offset_minutes,
                wall_ms,
                ..
            }) => {
                let v = self
                    .zoned
                    .entry(img.camera.clone())
                    .or_default()
                    .entry(*offset_minutes)
                    .or_insert((0, *wall_ms));
                v.0 += 1;
                v.1 = v.1.min(*wall_ms);
            }
            Some(TimeSource::Gps {
                clock_minutes: Some(m),
                ..
            }) => {
                *self
                    .evidence
                    .entry(img.camera.clone())
                    .or_default()
                    .entry(*m)
                    .or_insert(0) += 1
            }
            _ => {}
        }
    }

    /// The offset each camera's zone-derived times take (see the module docs).
    pub(crate) fn decide(self) -> CameraOffsets {
        let mut chosen = BTreeMap::new();
        for (camera, votes) in self.zoned {
            let from_gps = self.evidence.get(&camera).and_then(|votes| {
                votes
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(m, _)| *m)
            });
            let offset = from_gps.or_else(|| {
                votes
                    .iter()
                    .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
                    .map(|(o, _)| *o)
            });
            if let Some(offset) = offset {
                chosen.insert(camera, offset);
            }
        }
        CameraOffsets { chosen }
    }
}

/// The offset [`ClockVotes::decide`] chose for each camera with zone-derived times.
pub(crate) struct CameraOffsets {
    chosen: BTreeMap<Camera, i32>,
}

impl CameraOffsets {
    /// `img` with its zone-derived time at its camera's offset.
    pub(crate) fn apply(&self, img: &mut ScannedImage) {
        if let Some(TimeSource::Local {
            offset: OffsetBasis::Zone { .. },
            offset_minutes,
            wall_ms,
            ..
        }) = &mut img.time_source
        {
            if let Some(&chosen) = self.chosen.get(&img.camera) {
                if *offset_minutes != chosen {
                    *offset_minutes = chosen;
                    img.captured_at_ms = Some(*wall_ms - i64::from(chosen) * 60_000);
                }
            }
        }
    }
}

/// One line per camera and offset for the images whose offset came from the time zone, e.g.
/// `capture times without UTC offset (DateTimeOriginal, 250 images, Canon EOS 5D): read at UTC+02:00, the
/// time zone Europe/Paris (summer time) at their position on 2024-06-01; --time-offset overrides`.
pub(crate) fn zone_notes(images: impl IntoIterator<Item = ScannedImage>) -> Vec<String> {
    struct Group {
        field: &'static str,
        count: usize,
        aligned: usize,
        zones: BTreeMap<(&'static str, bool), usize>,
        first_ms: i64,
        last_ms: i64,
    }
    let mut groups: BTreeMap<(Camera, i32), Group> = BTreeMap::new();
    for img in images {
        let Some(TimeSource::Local {
            field,
            wall_ms,
            offset_minutes,
            offset:
                OffsetBasis::Zone {
                    zone,
                    summer,
                    zone_minutes,
                },
        }) = &img.time_source
        else {
            continue;
        };
        let g = groups
            .entry((img.camera.clone(), *offset_minutes))
            .or_insert(Group {
                field,
                count: 0,
                aligned: 0,
                zones: BTreeMap::new(),
                first_ms: *wall_ms,
                last_ms: *wall_ms,
            });
        g.count += 1;
        if zone_minutes != offset_minutes {
            g.aligned += 1;
        }
        *g.zones
            .entry((*zone, *summer && zone_minutes == offset_minutes))
            .or_insert(0) += 1;
        g.first_ms = g.first_ms.min(*wall_ms);
        g.last_ms = g.last_ms.max(*wall_ms);
    }
    groups
        .into_iter()
        .map(|((camera, minutes), g)| {
            let offset = TimeOffset::from_minutes(minutes)
                .map(|o| o.to_string())
                .unwrap_or_else(|| format!("{minutes} min"));
            let zone = g
                .zones
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|((z, summer), _)| {
                    format!("{z}{}", if *summer { " (summer time)" } else { "" })
                })
                .unwrap_or_default();
            let day = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default()
            };
            let (a, b) = (day(g.first_ms), day(g.last_ms));
            let date = if a == b { a } else { format!("{a}..{b}") };
            let images = if g.count == 1 {
                "1 image".to_string()
            } else {
                format!("{} images", g.count)
            };
            let camera = camera.map(|c| format!(", {c}")).unwrap_or_default();
            let why = if g.aligned == g.count {
                format!(
                    "the offset this camera's clock shows against its GPS time in its other images \
                     (the time zone there, {zone}, would say otherwise)"
                )
            } else if g.aligned > 0 {
                format!(
                    "the time zone {zone} at their position on {date} ({} whose own date or position \
                     gives another offset keep the camera's), as Panoramax reads them",
                    g.aligned
                )
            } else {
                format!("the time zone {zone} at their position on {date}, as Panoramax reads them")
            };
            format!(
                "capture times without UTC offset ({}, {images}{camera}): read at UTC{offset}, {why}; \
                 --time-offset overrides",
                g.field
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const H: i64 = 3_600_000;

    /// Every image at its camera's offset, as the scan does.
    fn one_offset_per_camera(images: &mut [ScannedImage]) {
        let mut votes = ClockVotes::default();
        images.iter().for_each(|i| votes.add(i));
        let offsets = votes.decide();
        images.iter_mut().for_each(|i| offsets.apply(i));
    }

    /// An image of `camera` whose wall time `wall` was read at the zone's `minutes`.
    fn zoned(name: &str, camera: &str, wall: i64, minutes: i32) -> ScannedImage {
        let mut img = ScannedImage::new(PathBuf::from(name));
        img.camera = Some(camera.into());
        img.captured_at_ms = Some(wall - i64::from(minutes) * 60_000);
        img.time_source = Some(TimeSource::Local {
            field: "DateTimeOriginal",
            wall_ms: wall,
            offset_minutes: minutes,
            offset: OffsetBasis::Zone {
                zone: "Europe/Paris",
                summer: minutes == 120,
                zone_minutes: minutes,
            },
        });
        img
    }

    #[test]
    fn a_walk_across_the_end_of_summer_time_keeps_the_camera_offset() {
        // 2024-10-27: 01:50 and 01:55 local (summer, +02:00), then 03:05 local (+01:00 by then), whose
        // clock had not moved: the camera's offset is the majority's.
        let w = 1_729_993_800_000; // 2024-10-27T01:50:00 as wall time
        let mut read = vec![
            zoned("a.jpg", "Cam", w, 120),
            zoned("b.jpg", "Cam", w + 300_000, 120),
            zoned("c.jpg", "Cam", w + 75 * 60_000, 60),
            zoned("d.jpg", "Other", w, 60),
        ];
        one_offset_per_camera(&mut read);
        assert_eq!(read[2].captured_at_ms, Some(w + 75 * 60_000 - 2 * H));
        assert_eq!(
            read[3].captured_at_ms,
            Some(w - H),
            "another camera keeps its own"
        );
        let notes = zone_notes(read.iter().cloned());
        assert_eq!(notes.len(), 2, "{notes:#?}");
        assert!(
            notes[0].contains(
                "(DateTimeOriginal, 3 images, Cam): read at UTC+02:00, the time zone \
                 Europe/Paris (summer time) at their position on 2024-10-27 (1 whose own date or \
                 position gives another offset keep the camera's)"
            ),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn the_offset_the_clock_shows_against_gps_time_wins_over_the_zone() {
        let w = 1_720_000_000_000;
        let mut with_gps = ScannedImage::new(PathBuf::from("g.jpg"));
        with_gps.camera = Some("Cam".into());
        with_gps.time_source = Some(TimeSource::Gps {
            field: "GPSDateStamp/GPSTimeStamp",
            clock_minutes: Some(0),
        });
        let mut read = vec![with_gps, zoned("a.jpg", "Cam", w, 120)];
        one_offset_per_camera(&mut read);
        assert_eq!(read[1].captured_at_ms, Some(w), "a clock on UTC");
        let notes = zone_notes(read.iter().cloned());
        assert!(
            notes[0].contains(
                "read at UTC+00:00, the offset this camera's clock shows against its GPS time"
            ),
            "{}",
            notes[0]
        );
    }
}
