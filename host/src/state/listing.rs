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
use std::ops::Range;

use plugin_api::protocol::{Progress, SequenceState};
use plugin_api::ErrorKind;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::IntegrationRecord;

/// One stored record with its sequence, the record still as stored (JSON): read it whole with
/// [`StoredRecord::record`], or the parts `mtp status` shows with [`StoredRecord::view`].
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The sequence's id.
    pub sequence_id: String,
    /// Where the sequence lives on disk.
    pub root: String,
    /// Its name.
    pub name: String,
    /// The integration.
    pub integration: String,
    /// The record, as stored ([`IntegrationRecord`] as JSON).
    pub record_json: String,
    /// When it was written (RFC 3339, UTC).
    pub updated_at: String,
}

impl StoredRecord {
    /// The whole record ([`IntegrationRecord::from_json`]).
    pub fn record(&self) -> IntegrationRecord {
        IntegrationRecord::from_json(&self.record_json)
    }

    /// What `mtp status` shows of the record ([`RecordView::from_json`]).
    pub fn view(&self) -> RecordView<'_> {
        RecordView::from_json(&self.record_json)
    }
}

/// The records (of `sequence_id` alone, when given) that have their sequence stored, in the order of
/// `mtp status`: the sequences whose latest record was written last first (ties by id), each one's
/// records by integration.
pub(super) fn stored_records(
    conn: &Connection,
    sequence_id: Option<&str>,
) -> rusqlite::Result<Vec<StoredRecord>> {
    // Both in key order (BINARY collation: byte order, as Rust compares `str`), so one pass merges them.
    let (sequences_sql, records_sql) = match sequence_id {
        None => (
            "SELECT id, root, name FROM sequence ORDER BY id",
            "SELECT sequence_id, integration, outcome, updated_at FROM sequence_record
             ORDER BY sequence_id, integration",
        ),
        Some(_) => (
            "SELECT id, root, name FROM sequence WHERE id = ?1",
            "SELECT sequence_id, integration, outcome, updated_at FROM sequence_record
             WHERE sequence_id = ?1 ORDER BY integration",
        ),
    };
    let mut sequences_stmt = conn.prepare(sequences_sql)?;
    let mut sequences = sequences_stmt.query(params_from_iter(sequence_id))?;
    let mut records_stmt = conn.prepare(records_sql)?;
    let mut records = records_stmt.query(params_from_iter(sequence_id))?;
    let mut listed = Vec::new();
    // The sequence at or after the current record's id, in key order.
    let mut sequence: Option<(String, String, String)> = None;
    while let Some(row) = records.next()? {
        let id: String = row.get(0)?;
        while sequence.as_ref().is_none_or(|(at, _, _)| at.as_str() < id.as_str()) {
            match sequences.next()? {
                Some(s) => sequence = Some((s.get(0)?, s.get(1)?, s.get(2)?)),
                None => {
                    sequence = None;
                    break;
                }
            }
        }
        let Some((at, root, name)) = &sequence else {
            // No sequence left: the remaining records have none stored.
            break;
        };
        if *at != id {
            // A record without its sequence is not listed.
            continue;
        }
        listed.push(StoredRecord {
            sequence_id: id,
            root: root.clone(),
            name: name.clone(),
            integration: row.get(1)?,
            record_json: row.get(2)?,
            updated_at: row.get(3)?,
        });
    }
    Ok(newest_sequence_first(listed))
}

/// `listed` (by sequence id, then integration) with the sequences ordered by their latest record,
/// newest first; the sort is stable, so ties stay by id and each sequence's records by integration.
fn newest_sequence_first(listed: Vec<StoredRecord>) -> Vec<StoredRecord> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (i, record) in listed.iter().enumerate() {
        match spans.last_mut() {
            Some(span) if listed[span.start].sequence_id == record.sequence_id => span.end = i + 1,
            _ => spans.push(i..i + 1),
        }
    }
    let latest = |span: &Range<usize>| {
        listed[span.clone()]
            .iter()
            .map(|r| r.updated_at.as_str())
            .max()
            .unwrap_or_default()
    };
    let mut keyed: Vec<(&str, Range<usize>)> = spans.into_iter().map(|s| (latest(&s), s)).collect();
    keyed.sort_by(|a, b| b.0.cmp(a.0));
    let order: Vec<usize> = keyed.into_iter().flat_map(|(_, span)| span).collect();
    let mut slots: Vec<Option<StoredRecord>> = listed.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
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

    fn record(sequence_id: &str, integration: &str, updated_at: &str) -> StoredRecord {
        StoredRecord {
            sequence_id: sequence_id.into(),
            root: String::new(),
            name: String::new(),
            integration: integration.into(),
            record_json: String::new(),
            updated_at: updated_at.into(),
        }
    }

    #[test]
    fn sequences_are_ordered_by_their_latest_record_ties_by_id() {
        let listed = vec![
            record("a", "mapillary", "2026-01-01T00:00:00Z"),
            record("a", "mtpw", "2026-01-03T00:00:00Z"),
            record("b", "mapillary", "2026-01-02T00:00:00Z"),
            record("c", "mapillary", "2026-01-03T00:00:00Z"),
            record("d", "archive", "2026-01-02T00:00:00Z"),
            record("d", "mapillary", "2026-01-01T00:00:00Z"),
        ];
        let order: Vec<(String, String)> = newest_sequence_first(listed)
            .into_iter()
            .map(|r| (r.sequence_id, r.integration))
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
