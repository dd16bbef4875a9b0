//! `mtp status`: where every sequence stands with every integration.

mod lines;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use mtp_host::registry::PluginDirs;
use mtp_host::runner::Runner;
use mtp_host::state::{LinkView, RecordView, StateStore, StoredRecord, Text};
use plugin_api::protocol::{Progress, SequenceState};
use plugin_api::sequence::SequenceDescriptor;
use plugin_api::ErrorKind;
use serde::Serialize;

use super::session::{state_dir, Session};
use super::{load_env, print_json, GlobalArgs};
use lines::StatusLines;

/// One row of `mtp status --json`, borrowed from the stored record it shows (the table shows the same
/// row, see [`lines`]). Exports (which may hold tokens) are never part of it.
#[derive(Debug, Serialize)]
pub(crate) struct StatusRow<'a> {
    sequence_id: &'a str,
    name: &'a str,
    root: &'a str,
    integration: &'a str,
    state: &'static str,
    message: Option<Cow<'a, str>>,
    keys: BTreeMap<Text<'a>, Text<'a>>,
    /// Pages at the provider (the outcome's links), left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkView<'a>>,
    progress: Option<Progress>,
    last_error: Option<Cow<'a, str>>,
    next_action: Option<Cow<'a, str>>,
    /// Set when the sequence's folder changed since its last run (files added, removed, resized).
    folder_changed: Option<&'a str>,
    updated_at: &'a str,
}

/// The row of `record`, whose view is `view` and whose sequence's folder change is `folder_changed`.
fn row_of<'a>(
    record: &StoredRecord<'a>,
    view: RecordView<'a>,
    folder_changed: Option<&'a str>,
) -> StatusRow<'a> {
    let (state, message, keys, links, progress, next_action) = match view.outcome {
        Some(o) => (
            o.state,
            o.message.map(|t| t.0),
            o.keys,
            o.links,
            o.progress,
            o.next_action.map(|t| t.0),
        ),
        None => (
            SequenceState::Pending,
            Some(Cow::Borrowed("nothing done yet")),
            BTreeMap::new(),
            Vec::new(),
            None,
            None,
        ),
    };
    // A login the service refused outranks what the outcome said to do next: nothing moves before it.
    let login_refused = view
        .last_error
        .as_ref()
        .is_some_and(|e| e.kind == ErrorKind::Auth);
    let next_action = if login_refused {
        Some(Cow::Owned(format!(
            "log in again with mtp auth {}, then run mtp upload",
            record.integration
        )))
    } else {
        next_action
    };
    StatusRow {
        sequence_id: record.sequence_id,
        name: record.name,
        root: record.root,
        integration: record.integration,
        state: state.as_str(),
        message,
        keys,
        links,
        progress,
        last_error: view.last_error.map(|e| e.message.0),
        next_action,
        folder_changed,
        updated_at: record.updated_at,
    }
}

/// What changed in the folder of `record`'s sequence since its last run, if anything: from the small
/// folder summary when its folders are untouched since (their modification times) or gone, else from
/// the descriptor (`descriptor()`) and a look at each file.
fn folder_change(
    record: &StoredRecord<'_>,
    descriptor: impl FnOnce() -> Option<SequenceDescriptor>,
) -> Option<String> {
    // A summary this version cannot read is as good as none: the descriptor is read instead.
    let folders = record
        .folders_json
        .and_then(|json| serde_json::from_str::<Vec<mtp_host::drift::Folder>>(json).ok());
    if folders
        .as_deref()
        .is_some_and(|f| !f.is_empty() && mtp_host::drift::untouched(f))
    {
        return None;
    }
    match folders
        .as_deref()
        .and_then(mtp_host::drift::drift_of_vanished)
    {
        Some(drift) if drift.removed > 0 => Some(drift.describe_vanished()),
        Some(drift) => drift.describe(),
        None => {
            let descriptor = descriptor()?;
            // Images the last run saw and left out (`--skip-invalid`) were there: not added.
            let left_out = folders
                .as_deref()
                .map(mtp_host::drift::left_out_of)
                .unwrap_or_default();
            let drift = mtp_host::drift::drift(&descriptor, &left_out);
            if drift.is_vanished(descriptor.images.len()) {
                Some(drift.describe_vanished())
            } else {
                drift.describe()
            }
        }
    }
}

/// Re-checks sequences left waiting (except those in `except`), reporting errors.
pub(crate) fn recheck(session: &Session, except: &[String]) -> Result<()> {
    let rechecked = session
        .runtime
        .block_on(session.runner.recheck_pending(except))?;
    for (sequence, runs) in rechecked {
        for run in runs {
            if let Some(err) = &run.error {
                // `not re-checked: Mapillary unreachable (...)`: the table below shows the stored state.
                session.progress.println(&format!(
                    "{} / {}: {err}",
                    sequence.header().name,
                    run.integration
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
        .map(|group| {
            folder_change(&group[0], || {
                store.descriptor(group[0].sequence_id).ok().flatten()
            })
        })
        .collect()
}

/// The rows of `records`, whose views are `views` (one each) and folder changes `changes` (one per
/// sequence, see [`folder_changes`]).
fn rows_of<'a>(
    records: &[StoredRecord<'a>],
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
        .map(|((record, view), changed)| row_of(record, view, changed))
        .collect()
}

/// The store, opened without its whole-file check (see [`StateStore::open_for_listing`]); a state
/// directory that cannot be written is read read-only.
fn open_store(global: &GlobalArgs) -> Result<StateStore> {
    // A `.env` that cannot be read, or a plugins directory that does not exist, is refused here too,
    // whether or not plugins are needed (checking the directory loads nothing).
    load_env(global)?;
    PluginDirs::resolve_checked(global.plugins_dir.as_deref())?;
    let dir = state_dir(global)?;
    StateStore::open_for_listing(&dir)
        .or_else(|_| StateStore::open_for_reading(&dir))
        .context("cannot open the state store")
}

/// The store after re-checking the sequences left waiting, which loads the plugins (and uses the
/// network); nothing is re-checked when the state cannot be written.
fn rechecked_store(global: &GlobalArgs) -> Result<StateStore> {
    let session = Session::open_for_reading(global)?;
    if session.runner.store().is_read_only() {
        eprintln!("note: not re-checking waiting sequences (the state cannot be written)");
    } else {
        recheck(&session, &[])?;
    }
    session.progress.finish();
    Ok(session.runner.store().clone())
}

/// `mtp status`: the store alone answers unless a record waits for a re-check (only then are plugins
/// loaded); each record is read once.
pub(crate) fn status(global: &GlobalArgs) -> Result<ExitCode> {
    let store = open_store(global)?;
    if global.json {
        return status_as_json(global, store);
    }
    let mut lines = StatusLines::read(&store)?;
    if lines.waiting {
        drop(store);
        lines = StatusLines::read(&rechecked_store(global)?)?;
    }
    if lines.is_empty() {
        println!("no sequences uploaded yet (mtp upload DIR)");
        return Ok(ExitCode::SUCCESS);
    }
    lines
        .write(
            &mut std::io::stdout().lock(),
            mtp_host::table::output_width(),
        )
        .context("cannot write the status")?;
    Ok(ExitCode::SUCCESS)
}

/// `mtp status --json`.
fn status_as_json(global: &GlobalArgs, store: StateStore) -> Result<ExitCode> {
    let listing = store.listing()?;
    let records: Vec<StoredRecord<'_>> = listing.records().collect();
    let views: Vec<RecordView<'_>> = records.iter().map(StoredRecord::view).collect();
    let waiting = views
        .iter()
        .any(|v| v.state().is_some_and(SequenceState::needs_recheck));
    if !waiting {
        let changes = folder_changes(&store, &records);
        print_json(&rows_of(&records, views, &changes))?;
        return Ok(ExitCode::SUCCESS);
    }
    drop((views, records));
    drop((listing, store));
    let store = rechecked_store(global)?;
    let listing = store.listing()?;
    let records: Vec<StoredRecord<'_>> = listing.records().collect();
    let views = records.iter().map(StoredRecord::view).collect();
    let changes = folder_changes(&store, &records);
    print_json(&rows_of(&records, views, &changes))?;
    Ok(ExitCode::SUCCESS)
}
