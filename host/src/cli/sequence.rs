//! `mtp sequence inspect`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use mtp_sequence::{read_sequence, Overrides, ScannedSequence};

use super::session::Session;
use super::{print_json, GlobalArgs};

/// Values that beat the sequence's own metadata.
#[derive(Debug, Clone, Args)]
pub(crate) struct OverrideArgs {
    /// Sequence name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Sequence description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Transport type: `Earth/Walk`, `Walk`, `Earth-Walk`, `Air`...
    #[arg(long)]
    pub(crate) transport: Option<String>,
    /// A tag (repeatable); replaces the metadata's tags.
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// UTC offset of the camera clock (`+02:00`, `-05:30`, `UTC`) for capture times recorded without one.
    #[arg(long = "time-offset", visible_alias = "tz", value_name = "OFFSET")]
    pub(crate) time_offset: Option<mtp_sequence::TimeOffset>,
}

impl OverrideArgs {
    pub(crate) fn to_overrides(&self) -> Overrides {
        Overrides {
            name: self.name.clone(),
            description: self.description.clone(),
            transport: self.transport.clone(),
            tags: self.tags.clone(),
            time_offset: self.time_offset,
        }
    }
}

/// Reads a sequence directory, naming it in any error.
pub(crate) fn scan(dir: &Path, overrides: &OverrideArgs) -> Result<ScannedSequence> {
    read_sequence(dir, &overrides.to_overrides())
        .with_context(|| format!("cannot read the sequence in {}", dir.display()))
}

pub(crate) fn inspect(
    global: &GlobalArgs,
    dir: &Path,
    overrides: &OverrideArgs,
) -> Result<ExitCode> {
    let scanned = scan(dir, overrides)?;
    let summary = scanned.summary();
    // Eligibility is asked of every loaded integration on the valid images, each deciding by its own rules.
    let session = Session::open_for_data(global)?;
    let eligibility = match scanned.to_descriptor(true) {
        Ok((descriptor, _)) => session
            .runtime
            .block_on(session.runner.eligibility(&descriptor))
            .into_iter()
            .map(|(id, answer)| match answer {
                Ok(e) => (id, e.eligible, e.reason),
                Err(err) => (id, false, Some(format!("could not ask: {err}"))),
            })
            .collect(),
        Err(err) => session
            .runner
            .registry
            .infos()
            .iter()
            .filter(|i| i.loaded)
            .map(|i| (i.id.clone(), false, Some(err.to_string())))
            .collect::<Vec<_>>(),
    };
    if global.json {
        let mut value = serde_json::to_value(&summary).context("cannot encode the summary")?;
        value["integrations"] = eligibility
            .iter()
            .map(|(id, eligible, reason)| {
                serde_json::json!({"id": id, "eligible": eligible, "reason": reason})
            })
            .collect();
        print_json(&value)?;
    } else {
        print!("{}", summary.render_text());
        println!("integrations:");
        if eligibility.is_empty() {
            println!("  (no integration plugins loaded)");
        }
        for (id, eligible, reason) in &eligibility {
            match (eligible, reason) {
                (true, _) => println!("  {id}: eligible"),
                (false, Some(reason)) => println!("  {id}: not eligible: {reason}"),
                (false, None) => println!("  {id}: not eligible"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mtp sequence generate`: a synthetic sequence for trying things out (and for the demo and benchmarks).
#[derive(Debug, Clone, Args)]
pub(crate) struct GenerateArgs {
    /// Where to write it (created if missing).
    pub(crate) dir: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 20)]
    pub(crate) count: usize,
    /// Write MTPDU's layout (`<name>.json` sequence log and `final_raw/`) instead of a plain folder.
    #[arg(long)]
    pub(crate) mtpdu: bool,
    /// 360° images (equirectangular, with an XMP GPano packet).
    #[arg(long)]
    pub(crate) equirectangular: bool,
    /// Pad each image to about this many bytes (e.g. 2000000), cheaply.
    #[arg(long)]
    pub(crate) bytes_per_image: Option<u64>,
    /// Image width in pixels.
    #[arg(long, default_value_t = 64)]
    pub(crate) width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 32)]
    pub(crate) height: u32,
    /// Sequence name.
    #[arg(long, default_value = "Generated sequence")]
    pub(crate) name: String,
    /// Transport type.
    #[arg(long, default_value = "Earth/Walk")]
    pub(crate) transport: String,
    /// Seconds between images.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) interval_s: f64,
    /// Random seed (also shifts the start time, so sequences with different seeds do not overlap).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

impl GenerateArgs {
    /// The demo's sample: a walk of `count` images of about `bytes` each.
    pub(crate) fn sample(dir: &Path, count: usize, bytes: u64) -> GenerateArgs {
        GenerateArgs {
            dir: dir.to_path_buf(),
            count,
            mtpdu: true,
            equirectangular: false,
            bytes_per_image: Some(bytes),
            width: 320,
            height: 160,
            name: "Sample canal walk".into(),
            transport: "Earth/Walk".into(),
            interval_s: 2.0,
            seed: 1,
        }
    }
}

pub(crate) fn generate(global: &GlobalArgs, args: &GenerateArgs) -> Result<ExitCode> {
    let transport = plugin_api::transport::TransportType::parse(&args.transport)
        .map_err(|err| anyhow::anyhow!("--transport: {err}"))?;
    let defaults = mtp_sequence::generate::GenerateOptions::default();
    let options = mtp_sequence::generate::GenerateOptions {
        count: args.count,
        mtpdu: args.mtpdu,
        equirectangular: args.equirectangular,
        width: args.width,
        height: args.height,
        target_bytes: args.bytes_per_image,
        name: args.name.clone(),
        transport: Some(transport),
        interval_ms: (args.interval_s * 1000.0).round() as i64,
        start_time_ms: defaults.start_time_ms + (args.seed as i64 - 1) * 86_400_000,
        seed: args.seed,
        ..defaults
    };
    let generated = mtp_sequence::generate::generate_sequence(&args.dir, &options)
        .with_context(|| format!("cannot write the sequence into {}", args.dir.display()))?;
    if global.json {
        print_json(&serde_json::json!({
            "root": generated.root,
            "image_dir": generated.image_dir,
            "images": generated.images.len(),
            "name": generated.name,
        }))?;
    } else {
        println!(
            "wrote {} images to {}",
            generated.images.len(),
            generated.image_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
