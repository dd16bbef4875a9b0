//! The table `mtp status` prints, built while the records are read: each row's cells go into one
//! buffer as they are made, and nothing else of a record is kept. With 1,000 sequences, building the
//! records, then the rows, then the cells, each its own allocations, was most of the command's time
//! (README, Performance, row 5b), much of it the kernel's first touch of each page of that memory.

use mtp_host::state::{newest_sequence_first, StateError, StateStore};
use mtp_host::table;
use plugin_api::protocol::{Progress, SequenceState};

use super::{folder_change, row_of, StatusRow};

/// The columns of `mtp status`.
const HEADER: [&str; 6] = [
    "SEQUENCE",
    "ID",
    "INTEGRATION",
    "STATE",
    "PROGRESS",
    "KEYS; DETAIL",
];

/// How many characters of the id `mtp status` shows: enough to tell two sequences of the same name
/// apart (the full id is in `mtp status --json`).
const SHORT_ID_LEN: usize = 8;

/// The rows of `mtp status`, in its order, their cells in one buffer.
#[derive(Debug, Default)]
pub(super) struct StatusLines {
    text: String,
    rows: Vec<Line>,
    /// A record waits for a re-check (see [`SequenceState::needs_recheck`]).
    pub(super) waiting: bool,
}

/// One row: where its cells, its sequence's id and its record's time are in [`StatusLines::text`].
#[derive(Debug, Clone, Copy)]
struct Line {
    sequence_id: Span,
    updated_at: Span,
    cells: [Span; 6],
}

/// A byte range of [`StatusLines::text`].
#[derive(Debug, Clone, Copy)]
struct Span(usize, usize);

impl StatusLines {
    /// The rows of every record in `store`.
    pub(super) fn read(store: &StateStore) -> Result<StatusLines, StateError> {
        let mut lines = StatusLines::default();
        let mut rows = Vec::new();
        // The sequence of the last record (records come by sequence): its id, name and short id, and
        // what changed in its folder, found once for all its records.
        let mut sequence: Option<(Span, Span, Span)> = None;
        let mut changed: Option<String> = None;
        store.visit_records(|record, descriptors| {
            let view = record.view();
            lines.waiting |= view.state().is_some_and(SequenceState::needs_recheck);
            let (id, name, short) = match sequence {
                Some(spans) if lines.at(spans.0) == record.sequence_id => spans,
                _ => {
                    let id = lines.push(record.sequence_id);
                    let short = Span(id.0, id.0 + short_id(record.sequence_id).len());
                    let spans = (id, lines.push(record.name), short);
                    sequence = Some(spans);
                    changed = folder_change(&record, || {
                        descriptors.get(record.sequence_id).ok().flatten()
                    });
                    spans
                }
            };
            let row = row_of(&record, view, changed.as_deref());
            let integration = lines.push(row.integration);
            let state = lines.push(row.state);
            let progress = lines.appended(|text| {
                if let Some(p) = &row.progress {
                    push_files_progress(text, p);
                }
            });
            let last = lines.appended(|text| push_keys_and_detail(text, &row));
            rows.push(Line {
                sequence_id: id,
                updated_at: lines.push(row.updated_at),
                cells: [name, short, integration, state, progress, last],
            });
        })?;
        lines.rows = newest_sequence_first(
            rows,
            |line| lines.at(line.sequence_id),
            |line| lines.at(line.updated_at),
        );
        Ok(lines)
    }

    /// No record is stored.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table to `to`, fitted to `width` when given ([`table::write_fitted`]).
    pub(super) fn write(
        &self,
        to: &mut impl std::io::Write,
        width: Option<usize>,
    ) -> std::io::Result<()> {
        let cells: Vec<[&str; 6]> = self
            .rows
            .iter()
            .map(|line| line.cells.map(|span| self.at(span)))
            .collect();
        table::write_fitted(to, &HEADER, &cells, width)
    }

    fn at(&self, Span(start, end): Span) -> &str {
        // Spans are cut where strings were appended, so always on character boundaries.
        self.text.get(start..end).unwrap_or_default()
    }

    /// Appends `text`; where it is.
    fn push(&mut self, text: &str) -> Span {
        self.appended(|buffer| buffer.push_str(text))
    }

    /// Where what `append` appends is.
    fn appended(&mut self, append: impl FnOnce(&mut String)) -> Span {
        let start = self.text.len();
        append(&mut self.text);
        Span(start, self.text.len())
    }
}

/// The first [`SHORT_ID_LEN`] characters of `id`.
fn short_id(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(SHORT_ID_LEN)
        .map_or(id.len(), |(at, _)| at);
    &id[..end]
}

/// The progress cell: `files_done/files_total files`.
fn push_files_progress(out: &mut String, p: &Progress) {
    let mut number = itoa::Buffer::new();
    out.push_str(number.format(p.files_done));
    out.push('/');
    out.push_str(number.format(p.files_total));
    out.push_str(" files");
}

/// The last cell, appended to `out`: the keys (`name=value`, by name), then `; ` and the detail (the
/// message, the last error, the next action, what changed in the folder, without the whitespace
/// around it), either left out when empty. The keys lead the column, which wraps to the terminal:
/// nothing is cut.
fn push_keys_and_detail(out: &mut String, r: &StatusRow<'_>) {
    let start = out.len();
    for (n, (key, value)) in r.keys.iter().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(key.as_str());
        out.push('=');
        out.push_str(value.as_str());
    }
    let keys_end = out.len();
    out.push_str("; ");
    let detail_start = out.len();
    out.push_str(r.message.as_deref().unwrap_or_default());
    if let Some(err) = &r.last_error {
        out.push_str(" (last error: ");
        out.push_str(err);
        out.push(')');
    }
    if let Some(next) = &r.next_action {
        out.push_str("; next: ");
        out.push_str(next);
    }
    if let Some(changed) = r.folder_changed {
        out.push_str("; ");
        out.push_str(changed);
    }
    let detail = &out[detail_start..];
    let lead = detail.len() - detail.trim_start().len();
    let kept = detail.trim().len();
    let (from, to) = (detail_start + lead, detail_start + lead + kept);
    if kept == 0 {
        out.truncate(keys_end);
    } else {
        out.truncate(to);
        // The separator only between two parts.
        let cut = if keys_end == start {
            start..from
        } else {
            detail_start..from
        };
        out.drain(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_host::state::IntegrationRecord;
    use plugin_api::sequence::SequenceDescriptor;

    #[test]
    fn the_table_shows_each_record_as_its_json_says_newest_sequence_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let sequence = |id: &str, name: &str| -> SequenceDescriptor {
            serde_json::from_value(serde_json::json!({
                "schema": 1, "id": id, "root": "/r", "name": name, "images": []
            }))
            .unwrap()
        };
        let empty = IntegrationRecord::default();
        store
            .put_record(&sequence("s1", "walk"), "mapillary", &empty)
            .unwrap();
        store
            .put_record(&sequence("s1", "walk"), "mtpw", &empty)
            .unwrap();
        store
            .put_record(&sequence("s2", "ünï"), "mapillary", &empty)
            .unwrap();
        // What other versions (or hands) may have written: the record JSON as it is.
        rusqlite::Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch(
                r#"UPDATE sequence_record SET updated_at = '2026-01-01T00:00:00Z';
                UPDATE sequence_record SET updated_at = '2026-01-02T00:00:00Z' WHERE sequence_id = 's2';
                UPDATE sequence_record SET outcome = '{"outcome":{"state":"failed","message":"  ",
                    "keys":{"b":"2","a":"1"},"progress":{"files_done":1,"files_total":2,
                    "bytes_done":0,"bytes_total":0},"next_action":"retry"},
                    "last_error":{"kind":"rejected","message":"no"}}'
                    WHERE sequence_id = 's1' AND integration = 'mapillary';
                UPDATE sequence_record SET outcome = 'not json' WHERE integration = 'mtpw';
                UPDATE sequence_record SET outcome = '{"outcome":{"state":"published","message":" "}}'
                    WHERE sequence_id = 's2';"#,
            )
            .unwrap();
        let lines = StatusLines::read(&store).unwrap();
        assert!(!lines.waiting);
        let mut out = Vec::new();
        lines.write(&mut out, None).unwrap();
        let line = |cells: [&str; 6]| {
            let [a, b, c, d, e, f] = cells;
            let text = format!("{a:<10}{b:<4}{c:<13}{d:<11}{e:<11}{f}");
            text.trim_end().to_string()
        };
        let expected = [
            line(HEADER),
            line(["ünï", "s2", "mapillary", "published", "", ""]),
            line([
                "walk",
                "s1",
                "mapillary",
                "failed",
                "1/2 files",
                "a=1 b=2; (last error: no); next: retry",
            ]),
            line(["walk", "s1", "mtpw", "pending", "", "nothing done yet"]),
        ];
        assert_eq!(String::from_utf8(out).unwrap(), expected.join("\n") + "\n");
    }

    #[test]
    fn the_short_id_counts_characters() {
        assert_eq!(short_id("bench-sequence-0001"), "bench-se");
        assert_eq!(short_id("ünïcødé-id"), "ünïcødé-");
        assert_eq!(short_id("short"), "short");
    }
}
