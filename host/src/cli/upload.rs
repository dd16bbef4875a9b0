//! `mtp upload DIR...`: every enabled, eligible integration, in chain order, for each sequence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mtp_host::exclusive::LockedRunError;
use mtp_host::exit::Exit;
use mtp_host::options::RunOptions;
use mtp_host::registry::Registry;
use mtp_host::runner::IntegrationRun;
use plugin_api::protocol::RunMode;
use plugin_api::sequence::SequenceDescriptor;

use super::sequence::{scan, without_dir, OverrideArgs};
use super::session::Session;
use super::status::recheck;
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

/// What plugins that declare no options receive for `--jobs`: the number, 4 when not given (as every
/// plugin received before plugin API 1.2).
const UNDECLARED_DEFAULT_JOBS: u64 = 4;

impl UploadArgs {
    /// `--option`, `--jobs` and `--republish`, checked against the integrations' manifests.
    fn run_options(&self, registry: &Registry) -> Result<RunOptions> {
        let mut flags = Vec::new();
        if let Some(jobs) = self.jobs {
            flags.push(("jobs", jobs.to_string()));
        }
        if self.republish {
            flags.push(("republish", "true".to_string()));
        }
        if self.add_new_images {
            flags.push(("add_new_images", "true".to_string()));
        }
        if let Some(rate) = &self.bwlimit {
            flags.push(("bwlimit", rate.clone()));
        }
        if self.no_publish {
            flags.push(("no_publish", "true".to_string()));
        }
        let mut undeclared = serde_json::Map::new();
        undeclared.insert(
            "jobs".into(),
            self.jobs.unwrap_or(UNDECLARED_DEFAULT_JOBS).into(),
        );
        undeclared.insert("republish".into(), self.republish.into());
        undeclared.insert("add_new_images".into(), self.add_new_images.into());
        Ok(RunOptions::parse(
            registry,
            &self.options,
            &flags,
            undeclared,
        )?)
    }

    /// A plain upload of `dirs` with the defaults.
    pub(crate) fn for_dirs(dirs: Vec<PathBuf>) -> UploadArgs {
        UploadArgs {
            dirs,
            dry_run: false,
            skip_invalid: false,
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
    plugin_api::sdk::rate_limit::parse_rate(text)
        .map(|_| text.to_string())
        .map_err(|err| err.to_string())
}

pub(crate) fn upload(global: &GlobalArgs, args: &UploadArgs) -> Result<ExitCode> {
    let session = Session::open(global)?;
    let options = args
        .run_options(&session.runner.registry)?
        .with_shared("force", args.force.into());
    let mut exit = Exit::Success;
    let mut waiting = Vec::new();
    // Read and validate every sequence first, so that nothing is sent for a batch with a typo in it
    // before the user has seen the problems, and so the re-check below can skip these sequences.
    let mut ready = Vec::new();
    for dir in &args.dirs {
        match prepare(&session, args, dir) {
            Ok((descriptor, prior)) => {
                let sequence_options = options.clone().with_shared("prior_uploads", prior);
                // Every integration that will run must have what it needs before anything is sent.
                let plan = session.runtime.block_on(session.runner.preflight(
                    &descriptor,
                    args.dry_run,
                    sequence_options.shared(),
                ));
                match mtp_host::chain_check::blocking_message(&plan) {
                    Some(message) => {
                        report_error(&session, global, dir, &message);
                        let blocked = mtp_host::chain_check::blocking_exit(&plan);
                        exit = exit.worst(blocked.unwrap_or(Exit::InvalidInput));
                    }
                    None => ready.push((descriptor, sequence_options)),
                }
            }
            Err(message) => {
                report_error(&session, global, dir, &message);
                exit = exit.worst(Exit::InvalidInput);
            }
        }
    }
    let uploading: Vec<String> = ready.iter().map(|(d, _)| d.id.clone()).collect();
    recheck(&session, &uploading)?;
    if session.runner.registry.chain().next().is_none() {
        for dir in &args.dirs {
            report_error(
                &session,
                global,
                dir,
                "no integration is enabled (see mtp integrations list)",
            );
        }
        return Ok(finish(&session, global, args, Exit::Config, &waiting));
    }
    for (descriptor, options) in ready {
        let Some(runs) = run_exclusive(&session, global, &descriptor, args, &options)? else {
            exit = exit.worst(Exit::Failure);
            continue;
        };
        for run in runs {
            let run_exit = Exit::for_run(&run);
            if run_exit == Exit::Waiting {
                waiting.push(serde_json::json!({
                    "sequence": descriptor.id, "name": descriptor.name, "integration": run.integration,
                    "state": run.outcome.as_ref().map(|o| o.state.as_str()),
                }));
            }
            exit = exit.worst(run_exit);
            report_run(&session, global, &descriptor, &run);
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
    descriptor: &SequenceDescriptor,
    args: &UploadArgs,
    options: &RunOptions,
) -> Result<Option<Vec<IntegrationRun>>> {
    session.progress.start_sequence();
    let result = session.runtime.block_on(session.runner.run_sequence_locked(
        descriptor,
        RunMode::Upload,
        args.dry_run,
        options,
    ));
    session.progress.finish();
    match result {
        Ok(runs) => Ok(Some(runs)),
        Err(LockedRunError::Lock(err)) => {
            report_error(
                session,
                global,
                Path::new(&descriptor.root),
                &err.to_string(),
            );
            Ok(None)
        }
        Err(LockedRunError::State(err)) => Err(err.into()),
    }
}

/// Reads and validates one sequence directory, with what MTPDU already published of it (its sequence
/// log's `destination` block, as JSON for the runner); the error is a message for the user.
fn prepare(
    session: &Session,
    args: &UploadArgs,
    dir: &std::path::Path,
) -> Result<(SequenceDescriptor, serde_json::Value), String> {
    let (mut descriptor, skipped, prior) =
        prepare_sequence(dir, &args.overrides, args.skip_invalid)?;
    for line in &skipped {
        session.progress.println(line);
    }
    if !args.dry_run {
        let note = mtp_host::identity::identify(session.runner.store(), &mut descriptor)
            .map_err(|err| err.to_string())?;
        if let Some(note) = note {
            session.progress.println(&note);
        }
    }
    Ok((descriptor, prior))
}

/// Reads and validates one sequence directory for upload: the descriptor, one line per skipped image
/// (with `skip_invalid`), and what MTPDU already published of it (its sequence log's `destination`
/// block, as JSON for the runner); the error is a message for the user. Shared with `mtp serve`.
pub(crate) fn prepare_sequence(
    dir: &std::path::Path,
    overrides: &OverrideArgs,
    skip_invalid: bool,
) -> Result<(SequenceDescriptor, Vec<String>, serde_json::Value), String> {
    let scanned = scan(dir, overrides).map_err(|err| without_dir(&err, dir))?;
    let (descriptor, skipped) = scanned.to_descriptor(skip_invalid).map_err(|err| {
        format!("{err}\n(nothing was uploaded; fix the images or pass --skip-invalid)")
    })?;
    let lines = skipped
        .iter()
        .map(|skip| {
            // Each problem without its file: the line names the image once, at its start.
            let reasons: Vec<String> = skip
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            format!("skipping {}: {}", skip.path.display(), reasons.join("; "))
        })
        .collect();
    if descriptor.images.is_empty() {
        return Err("no valid images to upload".to_string());
    }
    let prior = serde_json::to_value(scanned.prior_uploads()).unwrap_or_default();
    Ok((descriptor, lines, prior))
}

/// One result line of `mtp upload --json` (also an event of `mtp serve`'s `/api/events`). Keys, never
/// exports (which may hold tokens).
pub(crate) fn result_json(
    descriptor: &SequenceDescriptor,
    run: &IntegrationRun,
) -> serde_json::Value {
    serde_json::json!({
        "type": "result",
        "sequence": descriptor.id,
        "name": descriptor.name,
        "integration": run.integration,
        "not_eligible": run.not_eligible,
        "skipped": run.skipped,
        "state": run.outcome.as_ref().map(|o| o.state.as_str()),
        "message": run.outcome.as_ref().and_then(|o| o.message.clone()),
        "keys": run.outcome.as_ref().map(|o| o.keys.clone()),
        "error": run.error.as_ref().map(|e| e.message.clone()),
        "error_kind": run.error.as_ref().map(|e| e.kind),
        "waiting": Exit::for_run(run) == Exit::Waiting,
    })
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
    println!("{} / {}: {line}", descriptor.name, run.integration);
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
