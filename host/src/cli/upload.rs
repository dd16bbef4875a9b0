//! `mtp upload DIR...`: every enabled, eligible integration, in chain order, for each sequence.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mtp_host::runner::IntegrationRun;
use plugin_api::protocol::RunMode;
use plugin_api::sequence::SequenceDescriptor;

use super::sequence::{scan, OverrideArgs};
use super::session::Session;
use super::status::recheck;
use super::GlobalArgs;

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Sequence directories (MTPDU sequences or folders of geotagged JPEGs).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Do everything except publishing, and say what would have been published.
    #[arg(long)]
    dry_run: bool,
    /// Upload a sequence with problems, leaving out (and naming) every image that has one.
    #[arg(long)]
    skip_invalid: bool,
    /// Files uploaded in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=32))]
    jobs: u64,
    /// Publish again a sequence whose publish outcome is unknown (you checked it did not go through).
    #[arg(long)]
    republish: bool,
    /// Cap the upload bandwidth, shared by all parallel jobs (bytes per second: 500K, 2M; K = 1024).
    #[arg(long, value_name = "RATE", value_parser = parse_bwlimit)]
    bwlimit: Option<String>,
    #[command(flatten)]
    overrides: OverrideArgs,
}

impl UploadArgs {
    /// A plain upload of `dirs` with the defaults.
    pub(crate) fn for_dirs(dirs: Vec<PathBuf>) -> UploadArgs {
        UploadArgs {
            dirs,
            dry_run: false,
            skip_invalid: false,
            jobs: 4,
            republish: false,
            bwlimit: None,
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
    let mut options = serde_json::Map::new();
    options.insert("jobs".into(), args.jobs.into());
    options.insert("republish".into(), args.republish.into());
    if let Some(rate) = &args.bwlimit {
        options.insert("bwlimit".into(), rate.clone().into());
    }
    let mut failed = false;
    // Read and validate every sequence first, so that nothing is sent for a batch with a typo in it
    // before the user has seen the problems, and so the re-check below can skip these sequences.
    let mut ready = Vec::new();
    for dir in &args.dirs {
        match prepare(&session, args, dir) {
            Ok(descriptor) => ready.push(descriptor),
            Err(message) => {
                report_error(&session, global, dir, &message);
                failed = true;
            }
        }
    }
    let uploading: Vec<String> = ready.iter().map(|d| d.id.clone()).collect();
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
        return Ok(ExitCode::FAILURE);
    }
    for descriptor in ready {
        session.progress.start_sequence(&descriptor.id);
        let runs = session.runtime.block_on(session.runner.run_sequence(
            &descriptor,
            RunMode::Upload,
            args.dry_run,
            &options,
        ))?;
        session.progress.finish();
        for run in runs {
            if run.error.is_some() {
                failed = true;
            }
            report_run(&session, global, &descriptor, &run);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads and validates one sequence directory; the error is a message for the user.
fn prepare(
    session: &Session,
    args: &UploadArgs,
    dir: &std::path::Path,
) -> Result<SequenceDescriptor, String> {
    let (descriptor, skipped) = prepare_sequence(dir, &args.overrides, args.skip_invalid)?;
    for line in &skipped {
        session.progress.println(line);
    }
    Ok(descriptor)
}

/// Reads and validates one sequence directory for upload: the descriptor and one line per skipped image
/// (with `skip_invalid`); the error is a message for the user. Shared with `mtp serve`.
pub(crate) fn prepare_sequence(
    dir: &std::path::Path,
    overrides: &OverrideArgs,
    skip_invalid: bool,
) -> Result<(SequenceDescriptor, Vec<String>), String> {
    let scanned = scan(dir, overrides).map_err(|err| format!("{err:#}"))?;
    let (descriptor, skipped) = scanned.to_descriptor(skip_invalid).map_err(|err| {
        format!("{err}\n(nothing was uploaded; fix the images or pass --skip-invalid)")
    })?;
    let lines = skipped
        .iter()
        .map(|skip| {
            let reasons: Vec<String> = skip.problems.iter().map(|p| p.to_string()).collect();
            format!("skipping {}: {}", skip.path.display(), reasons.join("; "))
        })
        .collect();
    if descriptor.images.is_empty() {
        return Err("no valid images to upload".to_string());
    }
    Ok((descriptor, lines))
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
        "state": run.outcome.as_ref().map(|o| o.state.as_str()),
        "message": run.outcome.as_ref().and_then(|o| o.message.clone()),
        "keys": run.outcome.as_ref().map(|o| o.keys.clone()),
        "error": run.error.as_ref().map(|e| e.message.clone()),
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
