//! `mtp status`: where every sequence stands with every integration.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use mtp_host::registry::PluginDirs;
use mtp_host::runner::Runner;
use mtp_host::state::{Listing, RecordView, StateStore, StoredRecord, Text};
use mtp_host::table;
use plugin_api::protocol::{Progress, SequenceState};
use serde::Serialize;

use super::session::{state_dir, Session};
use super::{load_env, print_json, GlobalArgs};

/// One row of `mtp status --json`, borrowed from the stored records it shows. Exports (which may hold
/// tokens) are never part of it.
#[derive(Debug, Serialize)]
pub(crate) struct StatusRow<'a> {
    sequence_id: &'a str,
    name: &'a str,
    root: &'a str,
    integration: &'a str,
    state: &'static str,
    message: Option<Cow<'a, str>>,
    keys: BTreeMap<Text<'a>, Text<'a>>,
    progress: Option<Progress>,
    last_error: Option<Cow<'a, str>>,
    next_action: Option<Cow<'a, str>>,
    /// Set when the sequence's folder changed since its last run (files added, removed, resized).
    folder_changed: Option<&'a str>,
    updated_at: &'a str,
}

/// What changed in the folder of `record`'s sequence since its last run, if anything: from the small
/// folder summary when its folders are gone, else from the descriptor and a look at each file.
fn folder_change(store: &StateStore, record: &StoredRecord<'_>) -> Option<String> {
    // A summary this version cannot read is as good as none: the descriptor is read instead.
    let quick = record
        .folders_json
        .and_then(|json| serde_json::from_str::<Vec<mtp_host::drift::Folder>>(json).ok())
        .and_then(|folders| mtp_host::drift::drift_of_vanished(&folders));
    match quick {
        Some(drift) => drift.describe(),
        None => {
            let descriptor = store.descriptor(record.sequence_id).ok()??;
            mtp_host::drift::drift(&descriptor).describe()
        }
    }
}

/// The first characters of a sequence id: enough to tell two sequences of the same name apart (the
/// full id is in `mtp status --json`).
fn short_id(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(SHORT_ID_LEN)
        .map_or(id.len(), |(at, _)| at);
    &id[..end]
}

/// The progress cell: `files_done/files_total files`.
fn files_progress(p: &Progress) -> String {
    let mut numbers = (itoa::Buffer::new(), itoa::Buffer::new());
    let (done, total) = (
        numbers.0.format(p.files_done),
        numbers.1.format(p.files_total),
    );
    let mut cell = String::with_capacity(done.len() + total.len() + 7);
    cell.push_str(done);
    cell.push('/');
    cell.push_str(total);
    cell.push_str(" files");
    cell
}

/// The last column of `mtp status`: the keys (`name=value`, by name), then `; ` and the detail (the
/// message, the last error, the next action, what changed in the folder), either left out when empty.
/// The keys lead the column, which wraps to the terminal: nothing is cut.
fn keys_and_detail(r: &StatusRow<'_>) -> String {
    let keys: usize = r.keys.iter().map(|(k, v)| k.as_str().len() + v.as_str().len() + 2).sum();
    let detail = r.message.as_deref().map_or(0, str::len)
        + r.last_error.as_deref().map_or(0, |e| e.len() + 15)
        + r.next_action.as_deref().map_or(0, |n| n.len() + 8)
        + r.folder_changed.map_or(0, |c| c.len() + 2);
    let mut out = String::with_capacity(keys + 2 + detail);
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
    // The detail without the whitespace around it; the separator only between two parts.
    let detail = &out[detail_start..];
    let trimmed = detail.trim();
    let lead = detail.len() - detail.trim_start().len();
    let (from, to) = (detail_start + lead, detail_start + lead + trimmed.len());
    if trimmed.is_empty() {
        out.truncate(keys_end);
    } else {
        out.truncate(to);
        let cut = if keys_end == 0 { 0..from } else { detail_start..from };
        out.drain(cut);
    }
    out
}

/// How many characters of the id `mtp status` shows.
const SHORT_ID_LEN: usize = 8;

/// Re-checks sequences left waiting (except those in `except`), reporting errors.
pub(crate) fn recheck(session: &Session, except: &[String]) -> Result<()> {
    let rechecked = session
        .runtime
        .block_on(session.runner.recheck_pending(except))?;
    for (sequence, runs) in rechecked {
        for run in runs {
            if let Some(err) = &run.error {
                session.progress.println(&format!(
                    "re-check {} / {}: {err}",
                    sequence.name, run.integration
                ));
            }
        }
    }
    Ok(())
}

/// `mtp status --json` (also `GET /api/sequences` of `mtp serve`), read from the store.
pub(crate) fn status_json(runner: &Runner) -> Result<serde_json::Value> {
    let store = runner.store();
    let listing = store.listing()?;
    let records: Vec<StoredRecord<'_>> = listing.records().collect();
    let views = records.iter().map(StoredRecord::view).collect();
    let changes = folder_changes(store, &records);
    serde_json::to_value(rows_of(&records, views, &changes)).context("cannot encode the status")
}

/// Each sequence's records in `records` (which lists them together), one slice per sequence.
fn by_sequence<'r, 'a>(
    records: &'r [StoredRecord<'a>],
) -> impl Iterator<Item = &'r [StoredRecord<'a>]> {
    records.chunk_by(|a, b| a.sequence_id == b.sequence_id)
}

/// What changed in each sequence's folder ([`folder_change`]), in the order of [`by_sequence`]: each
/// folder is looked at once, however many integrations the sequence has records for.
fn folder_changes(store: &StateStore, records: &[StoredRecord<'_>]) -> Vec<Option<String>> {
    by_sequence(records)
        .map(|group| folder_change(store, &group[0]))
        .collect()
}

/// The rows for `records`, whose views are `views` (one each) and folder changes `changes` (one per
/// sequence, see [`folder_changes`]).
fn rows_of<'a>(
    records: &'a [StoredRecord<'a>],
    views: Vec<RecordView<'a>>,
    changes: &'a [Option<String>],
) -> Vec<StatusRow<'a>> {
    let changed_of_each = by_sequence(records)
        .zip(changes)
        .flat_map(|(group, changed)| group.iter().map(move |_| changed.as_deref()));
    records
        .iter()
        .zip(views)
        .zip(changed_of_each)
        .map(|((listed, view), folder_changed)| {
            let (state, message, keys, progress, next_action) = match view.outcome {
                Some(o) => (
                    o.state,
                    o.message.map(|t| t.0),
                    o.keys,
                    o.progress,
                    o.next_action.map(|t| t.0),
                ),
                None => (
                    SequenceState::Pending,
                    Some(Cow::Borrowed("nothing done yet")),
                    BTreeMap::new(),
                    None,
                    None,
                ),
            };
            StatusRow {
                sequence_id: listed.sequence_id,
                name: listed.name,
                root: listed.root,
                integration: listed.integration,
                state: state.as_str(),
                message,
                keys,
                progress,
                last_error: view.last_error.map(|e| e.message.0),
                next_action,
                folder_changed,
                updated_at: listed.updated_at,
            }
        })
        .collect()
}

/// The store and what it holds, opened without its whole-file check (see
/// [`StateStore::open_for_listing`]); a state directory that cannot be written is read read-only.
fn stored(global: &GlobalArgs) -> Result<(StateStore, Listing)> {
    // A `.env` that cannot be read, or a plugins directory that does not exist, is refused here too,
    // whether or not plugins are needed (checking the directory loads nothing).
    load_env(global)?;
    PluginDirs::resolve_checked(global.plugins_dir.as_deref())?;
    let dir = state_dir(global)?;
    let store = StateStore::open_for_listing(&dir)
        .or_else(|_| StateStore::open_for_reading(&dir))
        .context("cannot open the state store")?;
    let listing = store.listing()?;
    Ok((store, listing))
}

/// [`stored`] after re-checking the sequences left waiting, which loads the plugins (and uses the
/// network); nothing is re-checked when the state cannot be written.
fn rechecked(global: &GlobalArgs) -> Result<(StateStore, Listing)> {
    let session = Session::open_for_reading(global)?;
    if session.runner.store().is_read_only() {
        eprintln!("note: not re-checking waiting sequences (the state cannot be written)");
    } else {
        recheck(&session, &[])?;
    }
    session.progress.finish();
    let store = session.runner.store().clone();
    let listing = store.listing()?;
    Ok((store, listing))
}

/// `mtp status`: the store alone answers unless a record waits for a re-check (only then are plugins
/// loaded), each record read once.
pub(crate) fn status(global: &GlobalArgs) -> Result<ExitCode> {
    let (store, listing) = stored(global)?;
    let records: Vec<StoredRecord<'_>> = listing.records().collect();
    let views: Vec<RecordView<'_>> = records.iter().map(StoredRecord::view).collect();
    let waiting = views
        .iter()
        .any(|v| v.state().is_some_and(SequenceState::needs_recheck));
    if !waiting {
        return show(global, &store, &records, views);
    }
    drop((views, records));
    let (store, listing) = rechecked(global)?;
    let records: Vec<StoredRecord<'_>> = listing.records().collect();
    let views = records.iter().map(StoredRecord::view).collect();
    show(global, &store, &records, views)
}

/// Prints `records` (whose views are `views`), as a table or as JSON.
fn show(
    global: &GlobalArgs,
    store: &StateStore,
    records: &[StoredRecord<'_>],
    views: Vec<RecordView<'_>>,
) -> Result<ExitCode> {
    let changes = folder_changes(store, records);
    let rows = rows_of(records, views, &changes);
    if global.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no sequences uploaded yet (mtp upload DIR)");
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<[Cow<'_, str>; 6]> = rows
        .iter()
        .map(|r| {
            let progress = r.progress.map_or(Cow::Borrowed(""), |p| {
                Cow::Owned(files_progress(&p))
            });
            [
                Cow::Borrowed(r.name),
                Cow::Borrowed(short_id(r.sequence_id)),
                Cow::Borrowed(r.integration),
                Cow::Borrowed(r.state),
                progress,
                Cow::Owned(keys_and_detail(r)),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render_fitted(
            &[
                "SEQUENCE",
                "ID",
                "INTEGRATION",
                "STATE",
                "PROGRESS",
                "KEYS; DETAIL"
            ],
            &lines,
            table::output_width(),
        )
    );
    Ok(ExitCode::SUCCESS)
}
