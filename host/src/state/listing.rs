//! Listing what is stored, as `mtp status` shows it: every record with its sequence's name and root,
//! newest sequence first, read without touching the (large) descriptors; and a view of a record that
//! borrows what it shows from the stored JSON instead of building the whole [`IntegrationRecord`].
//!
//! Why two scans merged here rather than one SQL join: the join looked each record's sequence up in a
//! B-tree and sorted the result in a temporary one, per record, which was most of `mtp status`'s time
//! with 1,000 sequences (README, Performance, row 5b). Both tables are read in key order instead, the
//! sequences through the covering index `sequence_listing` (id, root, name), whose pages hold nothing
//! else: the table's own rows each span a page or more, since they hold the descriptor.

use std::borrow::Cow;
use std::collections::BTreeMap;

use plugin_api::protocol::{Progress, SequenceState};
use plugin_api::ErrorKind;
use rusqlite::types::Type;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::IntegrationRecord;

/// Every stored record (of one sequence, or all) with its sequence, in the order of `mtp status`, the
/// records still as stored (JSON). Its strings are kept in one buffer: listing 1,000 sequences was
/// otherwise some 10,000 small allocations. Read it with [`Listing::records`].
#[derive(Debug, Default)]
pub struct Listing {
    text: String,
    records: Vec<Spans>,
}

/// Where one record's strings are in [`Listing::text`].
#[derive(Debug, Clone, Copy)]
struct Spans {
    sequence_id: Span,
    root: Span,
    name: Span,
    folders_json: Option<Span>,
    integration: Span,
    record_json: Span,
    updated_at: Span,
}

/// A byte range of [`Listing::text`].
#[derive(Debug, Clone, Copy)]
struct Span(usize, usize);

/// One stored record with its sequence, borrowed from a [`Listing`]: read the record whole with
/// [`StoredRecord::record`], or the parts `mtp status` shows with [`StoredRecord::view`].
#[derive(Debug, Clone, Copy)]
pub struct StoredRecord<'a> {
    /// The sequence's id.
    pub sequence_id: &'a str,
    /// Where the sequence lives on disk.
    pub root: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The sequence's folder summary ([`crate::drift::Folder`]s as JSON), when it has one.
    pub folders_json: Option<&'a str>,
    /// The integration.
    pub integration: &'a str,
    /// The record, as stored ([`IntegrationRecord`] as JSON).
    pub record_json: &'a str,
    /// When it was written (RFC 3339, UTC).
    pub updated_at: &'a str,
}

impl<'a> StoredRecord<'a> {
    /// The whole record ([`IntegrationRecord::from_json`]).
    pub fn record(&self) -> IntegrationRecord {
        IntegrationRecord::from_json(self.record_json)
    }

    /// What `mtp status` shows of the record ([`RecordView::from_json`]).
    pub fn view(&self) -> RecordView<'a> {
        RecordView::from_json(self.record_json)
    }
}

impl Listing {
    /// The records, in order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = StoredRecord<'_>> + '_ {
        self.records.iter().map(|spans| self.record(spans))
    }

    /// No record is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn record(&self, spans: &Spans) -> StoredRecord<'_> {
        StoredRecord {
            sequence_id: self.at(spans.sequence_id),
            root: self.at(spans.root),
            name: self.at(spans.name),
            folders_json: spans.folders_json.map(|span| self.at(span)),
            integration: self.at(spans.integration),
            record_json: self.at(spans.record_json),
            updated_at: self.at(spans.updated_at),
        }
    }

    fn at(&self, Span(start, end): Span) -> &str {
        // Spans are cut where strings were pushed, so always on character boundaries.
        self.text.get(start..end).unwrap_or_default()
    }

    /// Appends `text` to the buffer; where it is.
    fn push(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        Span(start, self.text.len())
    }
}

/// Column `i` of `row` as text (an error, as `row.get::<_, String>` gives, for a value that is not).
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?
        .as_str()
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(err)))
}

/// The first `N` columns of the next row of `rows`, as text (valid until the next call).
fn next_columns<'r, const N: usize>(
    rows: &'r mut rusqlite::Rows<'_>,
) -> rusqlite::Result<Option<[&'r str; N]>> {
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut columns = [""; N];
    for (i, column) in columns.iter_mut().enumerate() {
        *column = text(row, i)?;
    }
    Ok(Some(columns))
}

/// Calls `visit` with each record (of `sequence_id` alone, when given) that has its sequence stored,
/// in key order: by sequence id, then integration. The strings are borrowed from SQLite's rows, valid
/// during the call: nothing is copied that the caller does not keep.
pub(super) fn visit_records(
    conn: &Connection,
    sequence_id: Option<&str>,
    mut visit: impl FnMut(StoredRecord<'_>),
) -> rusqlite::Result<()> {
    // All in key order (BINARY collation: byte order, as Rust compares `str`), so one pass merges them.
    let (sequences_sql, folders_sql, records_sql) = match sequence_id {
        None => (
            "SELECT id, root, name FROM sequence ORDER BY id",
            "SELECT sequence_id, folders FROM sequence_folders ORDER BY sequence_id",
            "SELECT sequence_id, integration, outcome, updated_at FROM sequence_record
             ORDER BY sequence_id, integration",
        ),
        Some(_) => (
            "SELECT id, root, name FROM sequence WHERE id = ?1",
            "SELECT sequence_id, folders FROM sequence_folders WHERE sequence_id = ?1",
            "SELECT sequence_id, integration, outcome, updated_at FROM sequence_record
             WHERE sequence_id = ?1 ORDER BY integration",
        ),
    };
    let mut sequences_stmt = conn.prepare(sequences_sql)?;
    let mut sequences = sequences_stmt.query(params_from_iter(sequence_id))?;
    let mut folders_stmt = conn.prepare(folders_sql)?;
    let mut folders = folders_stmt.query(params_from_iter(sequence_id))?;
    let mut records_stmt = conn.prepare(records_sql)?;
    let mut records = records_stmt.query(params_from_iter(sequence_id))?;
    // The sequence row at or after the current record's id, and the folder summary row at or after
    // that, in key order, each as its columns (read once for all the records of the sequence).
    let mut sequence = next_columns::<3>(&mut sequences)?;
    let mut summary = next_columns::<2>(&mut folders)?;
    while let Some(row) = records.next()? {
        let id = text(row, 0)?;
        while sequence.is_some_and(|[at, ..]| at < id) {
            sequence = next_columns(&mut sequences)?;
        }
        let Some([at, root, name]) = sequence else {
            // No sequence left: the remaining records have none stored.
            break;
        };
        if at != id {
            // A record without its sequence is not listed.
            continue;
        }
        while summary.is_some_and(|[at, _]| at < id) {
            summary = next_columns(&mut folders)?;
        }
        let folders_json = match summary {
            Some([at, folders]) if at == id => Some(folders),
            _ => None,
        };
        visit(StoredRecord {
            sequence_id: id,
            root,
            name,
            folders_json,
            integration: text(row, 1)?,
            record_json: text(row, 2)?,
            updated_at: text(row, 3)?,
        });
    }
    Ok(())
}

/// The records (of `sequence_id` alone, when given) that have their sequence stored, in the order of
/// `mtp status` ([`newest_sequence_first`]).
pub(super) fn stored_records(
    conn: &Connection,
    sequence_id: Option<&str>,
) -> rusqlite::Result<Listing> {
    let mut listing = Listing::default();
    // The spans of the sequence last listed: its records share them.
    let mut listed: Option<(Span, Span, Span, Option<Span>)> = None;
    visit_records(conn, sequence_id, |record| {
        let (at, root, name, folders_json) = match listed {
            Some(spans) if listing.at(spans.0) == record.sequence_id => spans,
            _ => {
                let spans = (
                    listing.push(record.sequence_id),
                    listing.push(record.root),
                    listing.push(record.name),
                    record.folders_json.map(|json| listing.push(json)),
                );
                listed = Some(spans);
                spans
            }
        };
        let spans = Spans {
            sequence_id: at,
            root,
            name,
            folders_json,
            integration: listing.push(record.integration),
            record_json: listing.push(record.record_json),
            updated_at: listing.push(record.updated_at),
        };
        listing.records.push(spans);
    })?;
    let records = std::mem::take(&mut listing.records);
    listing.records = newest_sequence_first(
        records,
        |spans| listing.at(spans.sequence_id),
        |spans| listing.at(spans.updated_at),
    );
    Ok(listing)
}

/// `records` (listed by sequence id, then integration) in the order of `mtp status`: the sequences
/// whose latest record was written last first. The sort is stable, so ties stay by id and each
/// sequence's records by integration.
pub fn newest_sequence_first<'t, T: Copy + 't>(
    records: Vec<T>,
    sequence_id: impl Fn(&T) -> &'t str,
    updated_at: impl Fn(&T) -> &'t str,
) -> Vec<T> {
    let mut groups: Vec<(&str, &[T])> = records
        .chunk_by(|a, b| sequence_id(a) == sequence_id(b))
        .map(|group| {
            let latest = group.iter().map(&updated_at).max().unwrap_or_default();
            (latest, group)
        })
        .collect();
    groups.sort_by(|a, b| b.0.cmp(a.0));
    groups
        .into_iter()
        .flat_map(|(_, group)| group)
        .copied()
        .collect()
}

/// A string of a [`RecordView`], borrowed from the stored JSON unless it had escapes to undo.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Text<'_> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `mtp status` shows of an [`IntegrationRecord`], read from its JSON by the same rules (the same
/// fields, defaults and types, so a record the full type refuses, and counts as empty, is refused here
/// too), with its strings borrowed: listing 2,000 records built some 70,000 small allocations before.
#[derive(Debug, Default, Deserialize)]
pub struct RecordView<'a> {
    /// [`IntegrationRecord::outcome`].
    #[serde(default, borrow)]
    pub outcome: Option<OutcomeView<'a>>,
    /// [`IntegrationRecord::last_error`].
    #[serde(default, borrow)]
    pub last_error: Option<ErrorView<'a>>,
}

/// [`plugin_api::protocol::RunOutcome`], borrowed.
#[derive(Debug, Deserialize)]
pub struct OutcomeView<'a> {
    /// Where the sequence now stands.
    pub state: SequenceState,
    /// A sentence for the user.
    #[serde(default, borrow)]
    pub message: Option<Text<'a>>,
    /// Identifiers at the provider.
    #[serde(default, borrow)]
    pub keys: BTreeMap<Text<'a>, Text<'a>>,
    /// Read (so that a record with exports the full type cannot read is refused here too), never shown.
    #[serde(default, borrow, rename = "exports")]
    _exports: BTreeMap<Text<'a>, Text<'a>>,
    /// Files and bytes done out of the total.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// What the user or the next run should do.
    #[serde(default, borrow)]
    pub next_action: Option<Text<'a>>,
    /// Pages at the provider.
    #[serde(default, borrow)]
    pub links: Vec<LinkView<'a>>,
}

/// [`plugin_api::protocol::Link`], borrowed.
#[derive(Debug, Deserialize, Serialize)]
pub struct LinkView<'a> {
    /// What the page shows.
    #[serde(borrow)]
    pub label: Text<'a>,
    /// Its address.
    #[serde(borrow)]
    pub url: Text<'a>,
}

/// [`plugin_api::PluginError`], borrowed.
#[derive(Debug, Deserialize)]
pub struct ErrorView<'a> {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A sentence for the user.
    #[serde(borrow)]
    pub message: Text<'a>,
}

impl<'a> RecordView<'a> {
    /// Reads a stored record as [`IntegrationRecord::from_json`] does: one that cannot be read counts
    /// as empty.
    pub fn from_json(json: &'a str) -> RecordView<'a> {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The state of the last outcome, if any.
    pub fn state(&self) -> Option<SequenceState> {
        self.outcome.as_ref().map(|o| o.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::protocol::RunOutcome;
    use plugin_api::PluginError;

    /// The view as a whole record (exports are not kept by the view, so compared without them).
    fn as_record(view: RecordView<'_>) -> IntegrationRecord {
        let text = |t: Text<'_>| t.0.into_owned();
        IntegrationRecord {
            outcome: view.outcome.map(|o| RunOutcome {
                state: o.state,
                message: o.message.map(text),
                keys: o
                    .keys
                    .into_iter()
                    .map(|(k, v)| (text(k), text(v)))
                    .collect(),
                exports: BTreeMap::new(),
                progress: o.progress,
                next_action: o.next_action.map(text),
                same_as: None,
                links: o
                    .links
                    .into_iter()
                    .map(|l| plugin_api::protocol::Link::new(text(l.label), text(l.url)))
                    .collect(),
            }),
            last_error: view
                .last_error
                .map(|e| PluginError::new(e.kind, text(e.message))),
        }
    }

    #[test]
    fn the_view_reads_what_the_whole_record_reads_and_refuses_what_it_refuses() {
        let stored = [
            r#"{"outcome":{"state":"published","message":"published","keys":{"sequence_key":"abc"},"progress":{"files_done":1,"files_total":2,"bytes_done":3,"bytes_total":4},"next_action":null},"last_error":null}"#,
            r#"{"outcome":{"state":"failed","message":"bad \"quote\"\n\u00e9","keys":{"b":"2","a":"1"},"exports":{"x":"y"},"next_action":"run mtp upload again"},"last_error":{"kind":"rejected","message":"no \\ way"}}"#,
            r#"{"outcome":{"state":"published","keys":{"k":"v","k":"w"}},"extra":[1,{"a":null}]}"#,
            r#"{"outcome":null,"last_error":{"kind":"transient","message":"timeout"}}"#,
            r#"{}"#,
            // Refused by the whole record, so empty in both:
            r#"not json"#,
            r#"{"outcome":{"state":"published"}} trailing"#,
            r#"{"outcome":{"state":"published"},"outcome":{"state":"failed"}}"#,
            r#"{"outcome":{"state":"Published"}}"#,
            r#"{"outcome":{"message":"no state"}}"#,
            r#"{"outcome":{"state":"published","keys":{"a":1}}}"#,
            r#"{"outcome":{"state":"published","keys":null}}"#,
            r#"{"outcome":{"state":"published","exports":{"a":1}}}"#,
            r#"{"outcome":{"state":"published","progress":{"files_done":-1,"files_total":2,"bytes_done":0,"bytes_total":0}}}"#,
            r#"{"outcome":{"state":"published","message":"\ud83d"}}"#,
            r#"{"last_error":{"kind":"nonsense","message":"x"}}"#,
            r#"{"last_error":{"kind":"auth"}}"#,
            r#"[]"#,
        ];
        for json in stored {
            let mut whole = IntegrationRecord::from_json(json);
            if let Some(outcome) = &mut whole.outcome {
                outcome.exports.clear();
            }
            assert_eq!(as_record(RecordView::from_json(json)), whole, "{json}");
        }
        // Not every case is the empty record: the comparison above says something.
        assert_eq!(
            RecordView::from_json(stored[1]).state(),
            Some(SequenceState::Failed)
        );
        assert!(RecordView::from_json(stored[6]).outcome.is_none());
    }

    #[test]
    fn the_view_borrows_plain_strings_and_unescapes_the_others() {
        let json = r#"{"outcome":{"state":"published","message":"plain","next_action":"a\tb"}}"#;
        let view = RecordView::from_json(json);
        let outcome = view.outcome.unwrap();
        assert!(matches!(outcome.message.unwrap().0, Cow::Borrowed("plain")));
        assert_eq!(outcome.next_action.unwrap().as_str(), "a\tb");
    }

    /// A listing of `records` (sequence id, integration, updated at), in that order.
    fn listing(records: &[(&str, &str, &str)]) -> Listing {
        let mut listing = Listing::default();
        for (sequence_id, integration, updated_at) in records {
            let spans = Spans {
                sequence_id: listing.push(sequence_id),
                root: listing.push(""),
                name: listing.push(""),
                folders_json: None,
                integration: listing.push(integration),
                record_json: listing.push("{}"),
                updated_at: listing.push(updated_at),
            };
            listing.records.push(spans);
        }
        listing
    }

    #[test]
    fn sequences_are_ordered_by_their_latest_record_ties_by_id() {
        let mut listed = listing(&[
            ("a", "mapillary", "2026-01-01T00:00:00Z"),
            ("a", "mtpw", "2026-01-03T00:00:00Z"),
            ("b", "mapillary", "2026-01-02T00:00:00Z"),
            ("c", "mapillary", "2026-01-03T00:00:00Z"),
            ("d", "archive", "2026-01-02T00:00:00Z"),
            ("d", "mapillary", "2026-01-01T00:00:00Z"),
        ]);
        let records = std::mem::take(&mut listed.records);
        listed.records = newest_sequence_first(
            records,
            |spans| listed.at(spans.sequence_id),
            |spans| listed.at(spans.updated_at),
        );
        let order: Vec<(String, String)> = listed
            .records()
            .map(|r| (r.sequence_id.to_string(), r.integration.to_string()))
            .collect();
        let expected = [
            ("a", "mapillary"),
            ("a", "mtpw"),
            ("c", "mapillary"),
            ("b", "mapillary"),
            ("d", "archive"),
            ("d", "mapillary"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(s, i)| (s.to_string(), i.to_string()))
            .collect();
        assert_eq!(order, expected);
    }
}
