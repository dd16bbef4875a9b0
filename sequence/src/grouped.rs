//! Problems of one kind reported once, with a count and a few file names: 250 images without an offset are
//! one line, not 250.

use std::fmt;

use serde::Serialize;

use crate::model::{Problem, ProblemKind, Severity, SkippedImage};

/// At most this many files are named per group.
pub const NAMED_FILES: usize = 3;

/// Every problem of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemGroup {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Blocking, dropped or note.
    pub severity: Severity,
    /// How many problems of this kind (one per image, or one for the sequence).
    pub count: usize,
    /// The first few files concerned (file names; empty for the sequence as a whole).
    pub files: Vec<String>,
    /// The field of the first problem.
    pub field: String,
    /// The message of the first problem (the others say the same of their own file).
    pub message: String,
}

impl ProblemGroup {
    /// Groups `problems` by kind, blocking ones first, in the order their first problem was found.
    pub fn group(problems: &[Problem]) -> Vec<ProblemGroup> {
        let mut groups: Vec<ProblemGroup> = Vec::new();
        for p in problems {
            let name = p.file.as_ref().map(|f| {
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| f.display().to_string())
            });
            match groups.iter_mut().find(|g| g.kind == p.kind) {
                Some(g) => {
                    g.count += 1;
                    if let Some(n) = name.filter(|_| g.files.len() < NAMED_FILES) {
                        g.files.push(n);
                    }
                }
                None => groups.push(ProblemGroup {
                    kind: p.kind,
                    severity: p.kind.severity(),
                    count: 1,
                    files: name.into_iter().collect(),
                    field: p.field.clone(),
                    message: p.message.clone(),
                }),
            }
        }
        groups.sort_by_key(|g| g.severity);
        groups
    }
}

impl fmt::Display for ProblemGroup {
    /// `no_gps: 200 images (a.jpg, b.jpg, c.jpg and 197 more); first: GPSLatitude/GPSLongitude: ...`, or for
    /// one problem `no_gps: a.jpg: GPSLatitude/GPSLongitude: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.name();
        if self.count == 1 {
            return match self.files.first() {
                Some(file) => write!(f, "{kind}: {file}: {}: {}", self.field, self.message),
                None => write!(f, "{kind}: {}: {}", self.field, self.message),
            };
        }
        let more = self.count.saturating_sub(self.files.len());
        let names = if more > 0 {
            format!("{} and {more} more", self.files.join(", "))
        } else {
            self.files.join(", ")
        };
        write!(
            f,
            "{kind}: {} images ({names}); first: {}: {}",
            self.count, self.field, self.message
        )
    }
}

/// The lines `mtp upload` prints for images left out: one per kind of reason, with a count and a few names.
pub fn describe_skipped(skipped: &[SkippedImage]) -> Vec<String> {
    let first_reasons: Vec<Problem> = skipped
        .iter()
        .filter_map(|s| s.problems.first().cloned())
        .collect();
    ProblemGroup::group(&first_reasons)
        .iter()
        .map(|g| format!("left out: {g}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p(file: &str, kind: ProblemKind) -> Problem {
        Problem {
            file: Some(PathBuf::from(format!("/d/{file}"))),
            field: "GPSLatitude".into(),
            kind,
            message: format!("about {file}"),
        }
    }

    #[test]
    fn one_line_per_kind_with_a_count_and_a_few_names() {
        let mut problems: Vec<Problem> = (0..250)
            .map(|i| p(&format!("IMG_{i:04}.jpg"), ProblemKind::ClockDiffersFromGps))
            .collect();
        problems.push(p("IMG_9999.jpg", ProblemKind::NoGps));
        let groups = ProblemGroup::group(&problems);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].kind, ProblemKind::NoGps, "blocking first");
        assert_eq!(
            groups[0].to_string(),
            "no_gps: IMG_9999.jpg: GPSLatitude: about IMG_9999.jpg"
        );
        assert_eq!(groups[1].count, 250);
        assert_eq!(groups[1].severity, Severity::Note);
        assert_eq!(
            groups[1].to_string(),
            "clock_differs_from_gps: 250 images (IMG_0000.jpg, IMG_0001.jpg, IMG_0002.jpg and 247 \
             more); first: GPSLatitude: about IMG_0000.jpg"
        );
    }
}
