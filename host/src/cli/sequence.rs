//! `mtp sequence inspect`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use mtp_host::packed_images::PackedSequence;
use mtp_host::runner::Runner;
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

/// Reads a sequence directory. Its errors name the path they concern (the directory or a file in it),
/// so the context does not name it again.
pub(crate) fn scan(dir: &Path, overrides: &OverrideArgs) -> Result<ScannedSequence> {
    read_sequence(dir, &overrides.to_overrides()).context("cannot read the sequence")
}

/// One integration's line of `inspect`: its id, its JSON object, and its text.
pub(crate) type EligibilityLine = (String, serde_json::Value, String);

/// The plan for `scanned`: for the enabled integrations, the same chain check `mtp upload` runs before
/// sending anything (eligibility, what each still needs, who is skipped because of whom); the loaded but
/// disabled ones are only asked whether they take the sequence. Shared with `mtp serve`.
pub(crate) async fn eligibility_of(
    runner: &Runner,
    scanned: &ScannedSequence,
) -> Vec<EligibilityLine> {
    let made = scanned
        .to_descriptor(true)
        .map_err(|err| err.to_string())
        .and_then(|(descriptor, _)| PackedSequence::pack(descriptor).map_err(|e| e.to_string()));
    eligibility_lines(runner, scanned.prior_uploads(), made).await
}

/// [`eligibility_of`] for a scanned sequence `made` into a descriptor (or the reason it was not),
/// with what MTPDU published of it: `inspect` makes it by taking the scan apart, `mtp serve` by
/// copying.
async fn eligibility_lines(
    runner: &Runner,
    prior_uploads: std::collections::BTreeMap<String, mtp_sequence::mtpdu::PriorUpload>,
    made: std::result::Result<PackedSequence, String>,
) -> Vec<EligibilityLine> {
    let mut options = serde_json::Map::new();
    options.insert(
        "prior_uploads".into(),
        serde_json::to_value(prior_uploads).unwrap_or_default(),
    );
    let descriptor = match made {
        Ok(packed) => std::sync::Arc::new(packed),
        Err(err) => {
            return runner
                .registry
                .infos()
                .iter()
                .filter(|i| i.loaded)
                .map(|i| {
                    (
                        i.id.clone(),
                        serde_json::json!({"id": i.id, "eligible": false, "reason": err}),
                        format!("not eligible: {err}"),
                    )
                })
                .collect()
        }
    };
    let plan = runner.preflight(&descriptor, false, &options).await;
    let mut lines: Vec<EligibilityLine> = plan
        .iter()
        .map(|e| {
            let reason = e.not_eligible.clone().or_else(|| e.skipped.clone());
            (
                e.integration.clone(),
                serde_json::json!({"id": e.integration, "eligible": e.runs(),
                    "reason": reason, "needs": e.needs, "notes": e.notes}),
                e.describe(),
            )
        })
        .collect();
    for (id, answer) in runner.eligibility(&descriptor).await {
        if plan.iter().any(|e| e.integration == id) {
            continue;
        }
        let (eligible, reason) = match answer {
            Ok(e) => (e.eligible, e.reason),
            Err(err) => (false, Some(format!("could not ask: {err}"))),
        };
        let text = match (&eligible, &reason) {
            (true, _) => "eligible (not enabled)".to_string(),
            (false, Some(r)) => format!("not eligible: {r} (not enabled)"),
            (false, None) => "not eligible (not enabled)".to_string(),
        };
        lines.push((
            id.clone(),
            serde_json::json!({"id": id, "eligible": eligible, "reason": reason, "enabled": false}),
            text,
        ));
    }
    lines
}

/// The document of `mtp sequence inspect --json` (also `POST /api/inspect` of `mtp serve`).
pub(crate) fn inspect_json(
    summary: &mtp_sequence::Summary,
    eligibility: &[EligibilityLine],
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(summary).context("cannot encode the summary")?;
    value["integrations"] = eligibility
        .iter()
        .map(|(_, json, _)| json.clone())
        .collect();
    Ok(value)
}

pub(crate) fn inspect(
    global: &GlobalArgs,
    dir: &Path,
    overrides: &OverrideArgs,
) -> Result<ExitCode> {
    // A camera folder tree is one sequence per folder with images, as `mtp upload` reads it.
    let tree = mtp_sequence::folder_tree(dir);
    let dirs: Vec<PathBuf> = match &tree {
        Some(t) => t.sequences.iter().map(|(d, _)| d.clone()).collect(),
        None => vec![dir.to_path_buf()],
    };
    let session = Session::open_for_reading(global)?;
    let mut documents = Vec::new();
    if let (Some(t), false) = (&tree, global.json) {
        println!("{}", t.describe());
    }
    for (k, dir) in dirs.iter().enumerate() {
        let scanned = scan(dir, overrides)?;
        let summary = scanned
            .summary()
            .with_context(|| format!("cannot summarise {}", dir.display()))?;
        // The scanned images become the packed descriptor before the integrations are asked: only
        // that stays.
        let prior = scanned.prior_uploads();
        let made = PackedSequence::from_scan(scanned, true)
            .map(|(packed, _)| packed)
            .map_err(|err| err.to_string());
        let lines = session
            .runtime
            .block_on(eligibility_lines(&session.runner, prior, made));
        if global.json {
            documents.push(inspect_json(&summary, &lines)?);
            continue;
        }
        if tree.is_some() {
            println!("{}== {} ==", if k > 0 { "\n" } else { "" }, dir.display());
        }
        print!("{}", summary.render_text());
        println!("integrations:");
        if lines.is_empty() {
            println!("  (no integration plugins loaded)");
        }
        for (id, _, text) in &lines {
            println!("  {id}: {text}");
        }
    }
    if global.json {
        match tree {
            // One document per folder, and how the tree was grouped.
            Some(t) => print_json(&serde_json::json!({
                "tree": t.root, "grouping": t.describe(), "sequences": documents,
            }))?,
            None => {
                for d in &documents {
                    print_json(d)?;
                }
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
    /// Random seed (also shifts the start time by whole days and hours, so sequences with different
    /// seeds do not overlap; the times stay between 2020-05-10 and 2025-11-01 whatever the seed). Without
    /// it each run draws its own, so two runs write two different sequences (their own photos, times and
    /// sequence UUID); the seed drawn is printed, to write the same sequence again.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
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
            seed: Some(1),
        }
    }
}

impl GenerateArgs {
    /// The demo's 360° sample: `count` small equirectangular photos with Photo Sphere XMP, on another
    /// day than the walk.
    pub(crate) fn sample_360(dir: &Path, count: usize) -> GenerateArgs {
        GenerateArgs {
            equirectangular: true,
            bytes_per_image: None,
            width: 640,
            height: 320,
            name: "Sample 360 walk".into(),
            seed: Some(2),
            ..GenerateArgs::sample(dir, count, 0)
        }
    }
}

/// Days the generator's start time moves per seed, before it wraps (about five and a half years after
/// the default start: always in the past).
const SEED_DAYS: u64 = 2_000;

/// How far seed `seed` moves the start time: `(seed - 1) mod 2000` days, plus an hour per wrap (mod 24),
/// so any seed gives a sane date and nearby seeds never overlap.
fn seed_shift_ms(seed: u64) -> i64 {
    let s = seed.wrapping_sub(1);
    let days = (s % SEED_DAYS) as i64;
    let hours = ((s / SEED_DAYS) % 24) as i64;
    days * 86_400_000 + hours * 3_600_000
}

pub(crate) fn generate(global: &GlobalArgs, args: &GenerateArgs) -> Result<ExitCode> {
    // A fresh seed per run unless one is given: the same default for every run made every generated
    // sequence the same photos under the same MTPDU UUID (issue 23, case 5).
    let seed = args
        .seed
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
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
        start_time_ms: defaults.start_time_ms + seed_shift_ms(seed),
        seed,
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
            "seed": seed,
        }))?;
    } else {
        println!(
            "wrote {} images to {} (seed {seed}: --seed {seed} writes the same again)",
            generated.images.len(),
            generated.image_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_seed_gives_a_start_in_the_past() {
        let start = mtp_sequence::generate::GenerateOptions::default().start_time_ms;
        for seed in [0, 1, 2, 1_999, 2_001, 20_261_125, u64::MAX] {
            let shifted = start + seed_shift_ms(seed);
            // 2020-05-10 ..= 2025-11-03: whole days and hours after the default start.
            assert!(
                (start..start + 2_001 * 86_400_000).contains(&shifted),
                "{seed}"
            );
        }
        assert_eq!(seed_shift_ms(1), 0);
        assert_eq!(seed_shift_ms(2), 86_400_000);
    }
}
