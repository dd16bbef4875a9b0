//! The `inspect` summary of a scanned sequence.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plugin_api::sequence::{haversine_m, BoundingBox, SequenceSource};
use serde::Serialize;

use crate::format_utc;
use crate::grouped::ProblemGroup;
use crate::model::{until_error, ScannedSequence, SequenceError, Severity};

/// What `inspect` shows. Statistics (times, length, box, projections) are computed over the valid images,
/// the ones that would be uploaded with `skip_invalid`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Stable sequence id.
    pub id: String,
    /// Sequence name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Transport type as `Parent/Child`.
    pub transport: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// MTPDU directory or plain folder.
    pub source: SequenceSource,
    /// The sequence directory.
    pub root: String,
    /// Where the images were read from.
    pub image_dir: String,
    /// Number of JPEG files found.
    pub image_count: usize,
    /// Number of images without problems.
    pub valid_image_count: usize,
    /// First capture time, RFC 3339 UTC.
    pub first_capture: Option<String>,
    /// Last capture time, RFC 3339 UTC.
    pub last_capture: Option<String>,
    /// Seconds between first and last capture.
    pub duration_s: Option<f64>,
    /// Length of the path through the images in capture order, km (haversine).
    pub length_km: f64,
    /// Bounding box of the positions.
    pub bbox: Option<BoundingBox>,
    /// Number of images per projection.
    pub projections: BTreeMap<String, usize>,
    /// Size of all image files, bytes.
    pub total_bytes: u64,
    /// Size of the valid image files, bytes.
    pub valid_bytes: u64,
    /// Every problem found, one entry per kind with a count and a few file names; blocking ones first.
    pub problems: Vec<ProblemGroup>,
    /// How many problems block (keep an image or the sequence from uploading).
    pub blocking_count: usize,
    /// Things worth knowing that are not problems ([`ScannedSequence::notes`]).
    pub notes: Vec<String>,
}

impl ScannedSequence {
    /// The summary `inspect` prints.
    pub fn summary(&self) -> Result<Summary, SequenceError> {
        // One pass over the images, keeping running figures: no list of them, of their times or of
        // their positions (at 100,000 images those were 6 MB at the peak of `inspect`). The box is
        // made from the positions as they pass.
        let (mut valid, mut valid_bytes, mut total_bytes, mut length_m) = (0, 0, 0, 0.0);
        let (mut first, mut last) = (None::<i64>, None::<i64>);
        let mut previous: Option<(f64, f64)> = None;
        let mut counts = crate::validate::ProjectionCount::default();
        let kept_out = self.kept_out_paths();
        let mut failed = None;
        let valid_images = until_error(self.images.iter(), &mut failed)
            .inspect(|image| total_bytes += image.size_bytes)
            .filter(|image| !kept_out.contains(image.path.as_path()));
        let bbox = BoundingBox::from_points(valid_images.filter_map(|image| {
            valid += 1;
            valid_bytes += image.size_bytes;
            if let Some(t) = image.captured_at_ms {
                first = Some(first.map_or(t, |f| f.min(t)));
                last = Some(last.map_or(t, |l| l.max(t)));
            }
            let point = image.position();
            if let Some(point) = point {
                if let Some(p) = previous {
                    length_m += haversine_m(p.0, p.1, point.0, point.1);
                }
                previous = Some(point);
            }
            counts.add(&image.projection);
            point
        }));
        if let Some(e) = failed {
            return Err(e);
        }
        let projections: BTreeMap<String, usize> = counts
            .counts()
            .iter()
            .map(|(p, n)| (p.to_string(), *n))
            .collect();
        Ok(Summary {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            transport: self.transport.as_ref().map(|t| t.to_string()),
            tags: self.tags.clone(),
            source: self.source,
            root: self.root.to_string_lossy().into_owned(),
            image_dir: self.image_dir.to_string_lossy().into_owned(),
            image_count: self.images.len(),
            valid_image_count: valid,
            first_capture: first.map(format_utc),
            last_capture: last.map(format_utc),
            duration_s: first.zip(last).map(|(a, b)| (b - a) as f64 / 1000.0),
            length_km: length_m / 1000.0,
            bbox,
            projections,
            total_bytes,
            valid_bytes,
            problems: ProblemGroup::group(&self.problems),
            blocking_count: self
                .problems
                .iter()
                .filter(|p| p.kind.severity() == Severity::Blocking)
                .count(),
            notes: self.notes()?,
        })
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration(s: f64) -> String {
    let total = s.round() as i64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{s:.1}s")
    }
}

impl Summary {
    /// A human-readable multi-line rendering.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(s, "{k:<12}{v}");
        };
        line("Name", &self.name);
        if !self.description.is_empty() {
            line("Description", &self.description);
        }
        line("Transport", self.transport.as_deref().unwrap_or("(none)"));
        line(
            "Tags",
            &if self.tags.is_empty() {
                "(none)".to_string()
            } else {
                self.tags.join(", ")
            },
        );
        line("Source", &format!("{} ({})", self.source, self.root));
        if self.image_dir != self.root {
            line("Images from", &self.image_dir);
        }
        line("Id", &self.id);
        line(
            "Images",
            &format!("{} ({} valid)", self.image_count, self.valid_image_count),
        );
        if let (Some(a), Some(b)) = (&self.first_capture, &self.last_capture) {
            line(
                "Captured",
                &format!(
                    "{a} .. {b} ({})",
                    human_duration(self.duration_s.unwrap_or(0.0))
                ),
            );
        }
        line("Length", &format!("{:.3} km", self.length_km));
        if let Some(b) = &self.bbox {
            line(
                "Bbox",
                &format!(
                    "lat {:.6} .. {:.6}, lon {:.6} .. {:.6}",
                    b.min_lat, b.max_lat, b.min_lon, b.max_lon
                ),
            );
        }
        let proj: Vec<String> = self
            .projections
            .iter()
            .map(|(p, n)| format!("{p} ({n})"))
            .collect();
        line(
            "Projection",
            &if proj.is_empty() {
                "(none)".to_string()
            } else {
                proj.join(", ")
            },
        );
        line(
            "Size",
            &format!(
                "{} ({} valid)",
                human_bytes(self.total_bytes),
                human_bytes(self.valid_bytes)
            ),
        );
        for (k, note) in self.notes.iter().enumerate() {
            line(if k == 0 { "Notes" } else { "" }, note);
        }
        if self.problems.is_empty() {
            line("Problems", "none");
        } else {
            let count = |sev: Severity| {
                self.problems
                    .iter()
                    .filter(|g| g.severity == sev)
                    .map(|g| g.count)
                    .sum::<usize>()
            };
            let mut parts = Vec::new();
            for (sev, word) in [
                (Severity::Blocking, "blocking"),
                (Severity::Dropped, "left out"),
                (Severity::Note, "note"),
            ] {
                let n = count(sev);
                let plural = if sev == Severity::Note && n != 1 {
                    "s"
                } else {
                    ""
                };
                if n > 0 {
                    parts.push(format!("{n} {word}{plural}"));
                }
            }
            line("Problems", &parts.join(", "));
            for g in &self.problems {
                let sev = match g.severity {
                    Severity::Blocking => "blocking",
                    Severity::Dropped => "left out",
                    Severity::Note => "note",
                };
                let _ = writeln!(s, "  - [{sev}] {g}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(human_duration(4.0), "4.0s");
        assert_eq!(human_duration(125.0), "2m 05s");
        assert_eq!(human_duration(3725.0), "1h 02m 05s");
    }
}
