//! `mtp upload DIR...`: every enabled, eligible integration, in chain order, for each sequence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mtp_host::exit::{Exit, UsageError};
use mtp_host::runner::IntegrationRun;
use mtp_host::upload::{result_json, PreparedSequence, RequestError, Upload, UploadRequest};
use plugin_api::sequence::SequenceDescriptor;

use super::sequence::OverrideArgs;
use super::session::Session;
use super::GlobalArgs;

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Sequence directories (MTPDU sequences or folders of geotagged JPEGs).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Send nothing: validate and prepare every file exactly as an upload would, write it into a local
    /// directory, and say what would have been published.
    #[arg(long)]
    dry_run: bool,
    /// Upload a sequence with problems, leaving out (and naming) every image that has one.
    #[arg(long)]
    skip_invalid: bool,
    /// Send only to these integrations (comma-separated ids: `--to mapillary,panoramax`), with the ones
    /// they need (MTPW needs Mapillary). Default: every enabled integration that is ready; one that is
    /// not (not logged in, metadata missing) is left out with its reason.
    #[arg(long = "to", value_name = "ID,...", value_delimiter = ',')]
    to: Vec<String>,
    /// An option of one integration, `<integration>.<name>=<value>` (`mapillary.jobs=8`); repeatable.
    /// `mtp integrations list --json` shows each integration's options.
    #[arg(long = "option", value_name = "ID.NAME=VALUE")]
    options: Vec<String>,
    /// Files uploaded in parallel: sets every integration's option declared with the flag `jobs`
    /// (`mapillary.jobs`).
    #[arg(long, value_name = "N")]
    jobs: Option<u64>,
    /// Publish again a sequence whose publish outcome is unknown (you checked it did not go through), or
    /// one Mapillary has not shown long after the deadline (after one more lookup): sets every
    /// integration's option declared with the flag `republish` (`mapillary.republish`).
    #[arg(long)]
    republish: bool,
    /// Send a sequence even where its MTPDU sequence log says it is already published.
    #[arg(long)]
    force: bool,
    /// For a sequence already published: send the images added to its folder since, as an additional
    /// sequence (nothing published is sent again): sets every integration's option declared with the flag
    /// `add_new_images` (`mapillary.add_new_images`).
    #[arg(long)]
    add_new_images: bool,
    /// Cap the upload bandwidth, shared by all parallel jobs (bytes per second: 500K, 2M; K = 1024): sets
    /// every integration's option declared with the flag `bwlimit` (`mapillary.bwlimit`).
    #[arg(long, value_name = "RATE", value_parser = parse_bwlimit)]
    bwlimit: Option<String>,
    /// Upload the images and manifests but publish nothing (mapillary_tools' `--nofinish`): sets every
    /// integration's option declared with the flag `no_publish` (`mapillary.no_publish`). Unlike
    /// `--dry-run`, this sends every byte; a later upload publishes it (re-asking handles older than 2 days).
    #[arg(long)]
    no_publish: bool,
    /// End with exit code 8 (instead of 0) when the upload did everything it could but some sequences
    /// are still waiting on the service (Mapillary processing): for a desktop app or a script that
    /// schedules the re-check. The `--json` summary line says "waiting" either way.
    #[arg(long)]
    waiting_exit_code: bool,
    #[command(flatten)]
    overrides: OverrideArgs,
}

impl UploadArgs {
    /// The request these arguments make, for the upload use case.
    fn to_request(&self) -> UploadRequest {
        UploadRequest {
            dirs: self.dirs.clone(),
            dry_run: self.dry_run,
            skip_invalid: self.skip_invalid,
            options: self.options.clone(),
            jobs: self.jobs,
            republish: self.republish,
            force: self.force,
            add_new_images: self.add_new_images,
            bwlimit: self.bwlimit.clone(),
            no_publish: self.no_publish,
            overrides: self.overrides.to_overrides(),
            destinations: (!self.to.is_empty()).then(|| self.to.clone()),
        }
    }

    /// A plain upload of `dirs` with the defaults.
    pub(crate) fn for_dirs(dirs: Vec<PathBuf>) -> UploadArgs {
        UploadArgs {
            dirs,
            dry_run: false,
            skip_invalid: false,
            to: Vec::new(),
            options: Vec::new(),
            jobs: None,
            republish: false,
            force: false,
            add_new_images: false,
            bwlimit: None,
            no_publish: false,
            waiting_exit_code: false,
            overrides: OverrideArgs {
                name: None,
                description: None,
                transport: None,
                tags: Vec::new(),
                time_offset: None,
            },
        }
    }
}

/// Checks a `--bwlimit` value here, so a typo is refused before anything is read or sent.
fn parse_bwlimit(text: &str) -> std::result::Result<String, String> {
    mtp_host::upload::check_bwlimit(text).map(|()| text.to_string())
}

pub(crate) fn upload(global: &GlobalArgs, args: &UploadArgs) -> Result<ExitCode> {
    let session = Session::open(global)?;
    let use_case =
        Upload::new(&session.runner.registry, args.to_request()).map_err(|err| match err {
            RequestError::Destination(err) => anyhow::Error::new(UsageError(err.to_string())),
            RequestError::Options(err) => anyhow::Error::new(err),
        })?;
    let mut exit = Exit::Success;
    let mut waiting = Vec::new();
    // Read, validate and plan every sequence first, so that nothing is sent for a batch with a typo in
    // it before the user has seen the problems, and so the re-check below can skip these sequences.
    let mut ready = Vec::new();
    let (dirs, trees) = mtp_host::upload::expand_trees(&args.dirs);
    for line in &trees {
        session.progress.println(line);
    }
    for dir in &dirs {
        match session
            .runtime
            .block_on(use_case.prepare(&session.runner, dir))
        {
            Ok(prepared) => {
                for line in &prepared.skipped {
                    session.progress.println(line);
                }
                ready.push(prepared);
            }
            Err(refusal) => {
                for line in &refusal.skipped {
                    session.progress.println(line);
                }
                report_error(&session, global, dir, &refusal.message);
                exit = exit.worst(refusal.exit);
            }
        }
    }
    let uploading: Vec<String> = ready
        .iter()
        .map(|p| p.descriptor.id().to_string())
        .collect();
    let rechecked = session
        .runtime
        .block_on(use_case.recheck_others(&session.runner, &uploading))?;
    for (sequence, runs) in rechecked {
        for run in runs {
            if let Some(err) = &run.error {
                session.progress.println(&format!(
                    "re-check {} / {}: {err}",
                    sequence.header().name,
                    run.integration
                ));
            }
        }
    }
    if session.runner.registry.chain().next().is_none() {
        for dir in &dirs {
            report_error(
                &session,
                global,
                dir,
                "no integration is enabled (see mtp integrations list)",
            );
        }
        return Ok(finish(&session, global, args, Exit::Config, &waiting));
    }
    for prepared in ready {
        let Some(runs) = run_exclusive(&session, global, &use_case, &prepared)? else {
            exit = exit.worst(Exit::Failure);
            continue;
        };
        let descriptor = &prepared.descriptor;
        for run in runs {
            let run_exit = Exit::for_run(run.error.as_ref(), run.outcome.as_ref());
            if run_exit == Exit::Waiting {
                waiting.push(serde_json::json!({
                    "sequence": descriptor.id(), "name": descriptor.header().name, "integration": run.integration,
                    "state": run.outcome.as_ref().map(|o| o.state.as_str()),
                }));
            }
            exit = exit.worst(run_exit);
            report_run(&session, global, descriptor.header(), &run);
        }
    }
    if let Some(code) = session.stop.exit_code() {
        exit = Exit::Signal(code);
    }
    Ok(finish(&session, global, args, exit, &waiting))
}

/// The exit code, after the last line of `--json` output: `{"type": "summary", "exit_code", "exit",
/// "waiting": [{sequence, name, integration, state}]}` (the sequences still waiting on a service).
/// "Waiting" ends with 0 unless `--waiting-exit-code` asks for its own code: the upload did all it could.
fn finish(
    session: &Session,
    global: &GlobalArgs,
    args: &UploadArgs,
    exit: Exit,
    waiting: &[serde_json::Value],
) -> ExitCode {
    let code = if exit == Exit::Waiting && !args.waiting_exit_code {
        0
    } else {
        exit.code()
    };
    if global.json {
        session.progress.emit(serde_json::json!({
            "type": "summary", "exit_code": code, "exit": exit.name(), "waiting": waiting,
        }));
    } else if exit == Exit::Waiting {
        eprintln!(
            "done, but {} still waiting on the service: mtp status re-checks {}",
            plural(waiting.len(), "result is", "results are"),
            if waiting.len() == 1 { "it" } else { "them" }
        );
    }
    ExitCode::from(code)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Runs one sequence holding its lock; `None` (after saying so) when another process holds it.
fn run_exclusive(
    session: &Session,
    global: &GlobalArgs,
    use_case: &Upload,
    prepared: &PreparedSequence,
) -> Result<Option<Vec<IntegrationRun>>> {
    session.progress.start_sequence();
    let result = match use_case.lock(&session.runner, prepared, "upload") {
        Ok(lock) => Ok(session
            .runtime
            .block_on(use_case.run(&session.runner, prepared, &lock))),
        Err(err) => Err(err),
    };
    session.progress.finish();
    match result {
        Ok(runs) => Ok(Some(runs?)),
        Err(err) => {
            report_error(
                session,
                global,
                Path::new(&prepared.descriptor.header().root),
                &err.to_string(),
            );
            Ok(None)
        }
    }
}

fn report_run(
    session: &Session,
    global: &GlobalArgs,
    descriptor: &SequenceDescriptor,
    run: &IntegrationRun,
) {
    if global.json {
        session.progress.emit(result_json(descriptor, run));
        return;
    }
    let line = match (&run.not_eligible, &run.outcome, &run.error) {
        (Some(reason), _, _) => format!("skipped: not eligible: {reason}"),
        _ if run.skipped.is_some() => format!("skipped: {}", run.skipped.as_deref().unwrap_or("")),
        (_, _, Some(err)) => format!("error: {err}"),
        (_, Some(outcome), None) => {
            let mut text = outcome.state.as_str().to_string();
            if let Some(message) = &outcome.message {
                text = format!("{text}: {message}");
            }
            if let Some(next) = &outcome.next_action {
                text = format!("{text} (next: {next})");
            }
            text
        }
        _ => "nothing to do".to_string(),
    };
    let line = format!("{} / {}: {line}", descriptor.name, run.integration);
    println!(
        "{}",
        mtp_host::table::fold(&line, mtp_host::table::output_width(), 4)
    );
}

fn report_error(session: &Session, global: &GlobalArgs, dir: &std::path::Path, message: &str) {
    if global.json {
        session.progress.emit(serde_json::json!({
            "type": "error", "path": dir, "error": message,
        }));
    } else {
        eprintln!("error: {}: {message}", dir.display());
    }
}
