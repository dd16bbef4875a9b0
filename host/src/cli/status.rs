//! `mtp status`: where every sequence stands with every integration.

use std::process::ExitCode;

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use mtp_host::registry::PluginDirs;
use mtp_host::runner::Runner;
use mtp_host::state::{ListedRecord, StateStore};
use mtp_host::table;
use plugin_api::protocol::SequenceState;
use serde::Serialize;

use super::session::{state_dir, Session};
use super::{load_env, print_json, GlobalArgs};

/// One row of `mtp status --json`. Exports (which may hold tokens) are never part of it.
#[derive(Debug, Serialize)]
pub(crate) struct StatusRow {
    sequence_id: String,
    name: String,
    root: String,
    integration: String,
    state: String,
    message: Option<String>,
    keys: std::collections::BTreeMap<String, String>,
    progress: Option<plugin_api::protocol::Progress>,
    last_error: Option<String>,
    next_action: Option<String>,
    /// Set when the sequence's folder changed since its last run (files added, removed, resized).
    folder_changed: Option<String>,
    updated_at: String,
}

/// What changed in the folder of `sequence_id` since its last run, if anything: from the small folder
/// summary when its folders are gone, else from the descriptor and a look at each file.
fn folder_change(
    store: &StateStore,
    summaries: &HashMap<String, Vec<mtp_host::drift::Folder>>,
    sequence_id: &str,
) -> Option<String> {
    let quick = summaries
        .get(sequence_id)
        .and_then(|folders| mtp_host::drift::drift_of_vanished(folders));
    match quick {
        Some(drift) => drift.describe(),
        None => {
            let descriptor = store.descriptor(sequence_id).ok()??;
            mtp_host::drift::drift(&descriptor).describe()
        }
    }
}

/// The first characters of a sequence id: enough to tell two sequences of the same name apart (the
/// full id is in `mtp status --json`).
fn short_id(id: &str) -> String {
    id.chars().take(SHORT_ID_LEN).collect()
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

/// The rows of `mtp status --json` (also `GET /api/sequences` of `mtp serve`), read from the store.
pub(crate) fn status_rows(runner: &Runner) -> Result<Vec<StatusRow>> {
    let store = runner.store();
    rows_of(store, store.records()?)
}

/// The rows for `records`, read from `store`.
fn rows_of(store: &StateStore, records: Vec<ListedRecord>) -> Result<Vec<StatusRow>> {
    let summaries = store.folder_summaries()?;
    let mut changes: HashMap<String, Option<String>> = HashMap::new();
    Ok(records
        .into_iter()
        .map(|listed| {
            // Read each sequence's folder once, however many integrations it has rows for.
            let changed = changes
                .entry(listed.sequence_id.clone())
                .or_insert_with(|| folder_change(store, &summaries, &listed.sequence_id))
                .clone();
            let outcome = listed.record.outcome.unwrap_or_else(|| {
                plugin_api::protocol::RunOutcome::new(
                    plugin_api::protocol::SequenceState::Pending,
                    "nothing done yet",
                )
            });
            StatusRow {
                sequence_id: listed.sequence_id,
                name: listed.name,
                root: listed.root,
                integration: listed.integration,
                state: outcome.state.as_str().to_string(),
                message: outcome.message,
                keys: outcome.keys,
                progress: outcome.progress,
                last_error: listed.record.last_error.map(|e| e.message),
                next_action: outcome.next_action,
                folder_changed: changed,
                updated_at: listed.updated_at,
            }
        })
        .collect())
}

/// The rows, after re-checking the sequences left waiting. Plugins are loaded (and the network used)
/// only when a record waits for a re-check; otherwise the store alone answers, opened without its
/// whole-file check (see [`StateStore::open_for_listing`]). A state directory that cannot be written is
/// read read-only, and nothing is re-checked.
fn current_rows(global: &GlobalArgs) -> Result<Vec<StatusRow>> {
    // A `.env` that cannot be read, or a plugins directory that does not exist, is refused here too,
    // whether or not plugins are needed (checking the directory loads nothing).
    load_env(global)?;
    PluginDirs::resolve_checked(global.plugins_dir.as_deref())?;
    let dir = state_dir(global)?;
    let store = StateStore::open_for_listing(&dir)
        .or_else(|_| StateStore::open_for_reading(&dir))
        .context("cannot open the state store")?;
    let records = store.records()?;
    let waiting = records
        .iter()
        .any(|l| l.record.state().is_some_and(SequenceState::needs_recheck));
    if !waiting {
        return rows_of(&store, records);
    }
    drop(store);
    let session = Session::open_for_reading(global)?;
    if session.runner.store().is_read_only() {
        eprintln!("note: not re-checking waiting sequences (the state cannot be written)");
    } else {
        recheck(&session, &[])?;
    }
    session.progress.finish();
    status_rows(&session.runner)
}

pub(crate) fn status(global: &GlobalArgs) -> Result<ExitCode> {
    let rows = current_rows(global)?;
    if global.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no sequences uploaded yet (mtp upload DIR)");
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let progress = r
                .progress
                .map(|p| format!("{}/{} files", p.files_done, p.files_total))
                .unwrap_or_default();
            let keys = r
                .keys
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut detail = r.message.clone().unwrap_or_default();
            if let Some(err) = &r.last_error {
                detail = format!("{detail} (last error: {err})");
            }
            if let Some(next) = &r.next_action {
                detail = format!("{detail}; next: {next}");
            }
            if let Some(changed) = &r.folder_changed {
                detail = format!("{detail}; {changed}");
            }
            vec![
                r.name.clone(),
                short_id(&r.sequence_id),
                r.integration.clone(),
                r.state.clone(),
                progress,
                // The keys lead the last column, which wraps to the terminal: nothing is cut.
                [keys, detail.trim().to_string()]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
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
