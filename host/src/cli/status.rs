//! `mtp status`: where every sequence stands with every integration.

use std::process::ExitCode;

use anyhow::Result;
use mtp_host::runner::Runner;
use mtp_host::table;
use serde::Serialize;

use super::session::Session;
use super::{print_json, GlobalArgs};

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

/// What changed in the folder of `sequence_id` since its last run, if anything.
fn folder_change(runner: &Runner, sequence_id: &str) -> Option<String> {
    let descriptor = runner.store().descriptor(sequence_id).ok()??;
    mtp_host::drift::drift(&descriptor).describe()
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
    let mut changes: std::collections::BTreeMap<String, Option<String>> = Default::default();
    Ok(runner
        .store()
        .records()?
        .into_iter()
        .map(|listed| {
            // Read each sequence's folder once, however many integrations it has rows for.
            let changed = changes
                .entry(listed.sequence_id.clone())
                .or_insert_with(|| folder_change(runner, &listed.sequence_id))
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

pub(crate) fn status(global: &GlobalArgs) -> Result<ExitCode> {
    let session = Session::open_for_reading(global)?;
    if session.runner.store().is_read_only() {
        eprintln!("note: not re-checking waiting sequences (the state cannot be written)");
    } else {
        recheck(&session, &[])?;
    }
    session.progress.finish();
    let rows = status_rows(&session.runner)?;
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
