//! `mtp demo`: the whole pipeline against the bundled local fakes, in one command.
//!
//! Starts `mtp-fakes` (fake Mapillary + fake MTPW on loopback), writes the `.env` it prints (pointing the
//! providers at it) into a scratch directory, generates a sample sequence, authorises every enabled
//! integration that has authorisation through the fakes' consent pages, uploads with the progress bar,
//! waits through the simulated processing delay with re-checks, and prints the final status. Nothing
//! outside the scratch directory is touched.
//!
//! It knows no provider: the keys come from `mtp-fakes`, which integrations to authorise from the
//! registry, and the modes (file-only env, `fetch` authorisation) are passed as values in
//! [`GlobalArgs`], never through the process environment.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use mtp_host::authorize::AuthorizeMode;
use mtp_host::exit::UsageError;
use plugin_api::protocol::SequenceState;
use serde_json::Value;

use super::session::Session;
use super::upload::UploadArgs;
use super::{auth, sequence, status, upload, GlobalArgs};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Scratch directory for the demo's .env, state and sample sequence (default: a new temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Images in the sample sequence.
    #[arg(long, default_value_t = 24)]
    images: usize,
    /// Approximate size of each image in bytes.
    #[arg(long, default_value_t = 400_000)]
    bytes_per_image: u64,
    /// Seconds the fake Mapillary takes to "process" a published sequence.
    #[arg(long, default_value_t = 3)]
    processing_secs: u64,
    /// The mtp-fakes binary (default: next to mtp).
    #[arg(long)]
    fakes: Option<PathBuf>,
}

/// `mtp demo` writes its own `.env` and keeps its state in its scratch directory: the flags that would
/// point it elsewhere are refused rather than silently ignored.
fn refuse_configuration_flags(global: &GlobalArgs) -> Result<()> {
    let given: Vec<&str> = [
        (global.env_file.is_some(), "--env-file"),
        (global.state_dir_flag, "--state-dir"),
        (global.json, "--json"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "mtp demo does not take {}: it writes its own .env and state into its scratch directory \
         (choose it with --dir) and prints for people; run mtp status --json --env-file DIR/.env \
         --state-dir DIR/state afterwards for data",
        given.join(", ")
    ))
    .into())
}

/// The fakes process; killed when dropped.
struct Fakes {
    child: Child,
    urls: Value,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fakes(binary: &Path, processing_secs: u64) -> Result<Fakes> {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--publish-delay-secs",
            &processing_secs.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("mtp-fakes has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("mtp-fakes did not print its URLs")?;
    let urls: Value = serde_json::from_str(&line)
        .with_context(|| format!("mtp-fakes printed something unexpected: {line:?}"))?;
    Ok(Fakes { child, urls })
}

/// The state of every integration's record, by integration.
fn record_states(session: &Session) -> Result<Vec<(String, SequenceState)>> {
    Ok(session
        .runner
        .store()
        .records()?
        .into_iter()
        .filter_map(|listed| Some((listed.integration, listed.record.state()?)))
        .collect())
}

/// The enabled integrations that have an authorisation step, upstream first.
fn integrations_with_authorisation(global: &GlobalArgs) -> Result<Vec<String>> {
    let session = Session::open_for_data(global)?;
    let statuses = session.runtime.block_on(session.runner.auth_statuses());
    Ok(statuses
        .into_iter()
        .filter(|(_, status)| !matches!(status, Ok(None)))
        .map(|(id, _)| id)
        .collect())
}

/// Where `mtp-fakes` may be: beside `mtp` (a build, a release archive); else, as the Debian package
/// keeps it off the `PATH`, `<prefix>/lib/mtp/mtp-fakes` for `<prefix>/bin/mtp`.
fn fakes_candidates(mtp: &Path) -> Vec<PathBuf> {
    let name = format!("mtp-fakes{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = vec![mtp.with_file_name(&name)];
    if let Some(prefix) = mtp.parent().and_then(Path::parent) {
        candidates.push(prefix.join("lib").join("mtp").join(&name));
    }
    candidates
}

pub(crate) fn demo(global: &GlobalArgs, args: &DemoArgs) -> Result<ExitCode> {
    refuse_configuration_flags(global)?;
    let candidates = match &args.fakes {
        Some(path) => vec![path.clone()],
        None => {
            fakes_candidates(&std::env::current_exe().context("cannot find the mtp executable")?)
        }
    };
    let Some(fakes_binary) = candidates.iter().find(|path| path.is_file()).cloned() else {
        let places: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "mtp demo needs the mtp-fakes binary at {} (build it with cargo build --release --workspace)",
            places.join(" or ")
        );
    };
    let scratch = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("mtp-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // A temporary scratch directory (no --dir) goes when the demo ends, however it ends: about 9 MB
    // of sample images per run would otherwise pile up in the temp directory.
    let _temporary = args
        .dir
        .is_none()
        .then(|| TemporaryScratch(scratch.clone()));
    // A previous demo in this directory left tokens and records of fakes that are gone: every run
    // starts from an empty state of its own (nothing outside the scratch directory is touched).
    let state_dir = scratch.join("state");
    if state_dir.join("state.db").is_file() {
        println!(
            "   starting over: removing the previous demo's state in {}",
            state_dir.display()
        );
        std::fs::remove_dir_all(&state_dir)
            .with_context(|| format!("cannot remove {}", state_dir.display()))?;
    }
    println!("== starting the local fakes of Mapillary and Map the Paths Web");
    let fakes = start_fakes(&fakes_binary, args.processing_secs)?;
    let env_file = scratch.join(".env");
    let env = fakes
        .urls
        .get("env")
        .and_then(Value::as_object)
        .context("mtp-fakes did not report the .env for its providers")?;
    // Keys that are a choice rather than an address, with why the demo makes it: said on screen and
    // in the .env, so the demo never chooses for the user silently.
    let env_notes = fakes.urls.get("env_notes").and_then(Value::as_object);
    let mut env_text =
        String::from("# Written by mtp demo: the local fakes, never real services.\n");
    for (key, value) in env {
        let value = value
            .as_str()
            .with_context(|| format!("mtp-fakes reported a non-text value for {key}"))?;
        if let Some(note) = env_notes.and_then(|n| n.get(key)).and_then(Value::as_str) {
            println!("   {key}={value}: {note}");
            env_text.push_str(&format!("# {note}\n"));
        }
        env_text.push_str(&format!("{key}={value}\n"));
    }
    std::fs::write(&env_file, env_text)
        .with_context(|| format!("cannot write {}", env_file.display()))?;
    let demo_global = GlobalArgs {
        env_file: Some(env_file),
        plugins_dir: global.plugins_dir.clone(),
        state_dir: Some(state_dir),
        state_dir_flag: false,
        json: false,
        verbose: global.verbose,
        quiet: global.quiet,
        // The fakes' consent pages approve without a person: follow their redirects directly.
        auth_browser: AuthorizeMode::Fetch,
        // The demo's .env is the only configuration: keys from the shell must not point it elsewhere.
        env_file_only: true,
    };
    if args.dir.is_some() {
        println!("   scratch directory: {} (kept)", scratch.display());
    } else {
        println!(
            "   scratch directory: {} (removed at the end; pass --dir DIR to keep one)",
            scratch.display()
        );
    }

    println!("\n== integrations");
    super::integrations::integrations_list(&demo_global)?;

    println!("\n== generating a sample sequence");
    let sequence_dir = scratch.join("sample-walk");
    if !sequence_dir.exists() {
        sequence::generate(
            &demo_global,
            &sequence::GenerateArgs::sample(&sequence_dir, args.images, args.bytes_per_image),
        )?;
    }

    // Google Street View takes 360° photos only: a second, equirectangular sample when its keys are
    // in the fakes' .env and its plugin is installed (the walk above is flat, which it refuses).
    let authorising = integrations_with_authorisation(&demo_global)?;
    let mut sequence_dirs = vec![sequence_dir];
    if env.contains_key("GOOGLE_CLIENT_ID") && authorising.iter().any(|id| id == "streetview") {
        println!("\n== generating a 360° sample sequence (for Google Street View)");
        let panoramas = scratch.join("sample-360");
        if !panoramas.exists() {
            sequence::generate(
                &demo_global,
                &sequence::GenerateArgs::sample_360(&panoramas, args.images),
            )?;
        }
        sequence_dirs.push(panoramas);
    }

    println!("\n== authorising through the fakes' consent pages");
    for id in authorising {
        if auth::authorize(&demo_global, &id, None)? != ExitCode::SUCCESS {
            bail!("authorising with {id} failed");
        }
    }

    println!("\n== uploading");
    let upload_status = upload::upload(&demo_global, &UploadArgs::for_dirs(sequence_dirs))?;
    if upload_status != ExitCode::SUCCESS {
        bail!("the upload failed");
    }

    println!("\n== waiting for Mapillary to process the sequence (re-checking)");
    let session = Session::open(&demo_global)?;
    let deadline = Instant::now() + Duration::from_secs(args.processing_secs + 60);
    loop {
        status::recheck(&session, &[])?;
        let states = record_states(&session)?;
        if states.iter().all(|(_, s)| s.is_final()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the sequence was still not published after the wait: {states:?}");
        }
        let waiting: Vec<String> = states
            .iter()
            .filter(|(_, s)| !s.is_final())
            .map(|(id, s)| format!("{id}: {}", s.as_str()))
            .collect();
        println!("   {}", waiting.join(", "));
        std::thread::sleep(Duration::from_secs(1));
    }
    let all_published = record_states(&session)?
        .iter()
        .all(|(_, state)| *state == SequenceState::Published);
    drop(session);

    println!("\n== final status");
    status::status(&demo_global)?;
    drop(fakes);
    if all_published {
        println!("\ndemo complete: every enabled integration published the sequence");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\ndemo failed: not every integration published the sequence");
        Ok(ExitCode::FAILURE)
    }
}

/// Removes the demo's temporary scratch directory when dropped.
struct TemporaryScratch(PathBuf);

impl Drop for TemporaryScratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!(
                "cannot remove the demo's scratch directory {}: {err}",
                self.0.display()
            );
        }
    }
}
