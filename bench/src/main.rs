//! `mtp-bench`: the performance figures of issue 7, measured side by side in one run on loopback
//! against the in-process fake Mapillary, printed as a markdown table (or JSON with `--json`).
//!
//! It benchmarks the `mtp` binary and the bundled plugins found beside its own executable, so
//!
//! ```sh
//! cargo build --release --workspace && target/release/mtp-bench          # full sizes (≈ 2 min on 2 cores)
//! target/release/mtp-bench --quick                                       # smoke run (< 1 min)
//! ```
//!
//! benchmarks the release build. Every `mtp` run gets its own home (state directory, `.env` pointing at
//! a fresh fake, `mtp auth mapillary --token`), then `mtp upload DIR --jobs 4` is timed; CPU (user + sys)
//! comes from the child's `rusage` (`wait4`) and peak RSS from its sampled `VmHWM` (Linux; elsewhere
//! "n/a"). Rows:
//!
//! 1. upload throughput of `mtp upload` vs a plain streaming client (the baseline: same files, same
//!    fake, 4 in parallel, no hashing, no EXIF rewrite; run as a child process of its own, so its CPU
//!    and RSS are measured like mtp's);
//! 2. peak RSS of `mtp upload` for a ~200 MB and a ~2 GB sequence;
//! 3. CPU seconds per GB for mtp and the baseline;
//! 4. resume cost: kill -9 at 10 random moments of a throttled upload, restart at once (and, in 10
//!    more rounds, after 1 s), count the bytes sent again;
//! 5. `mtp integrations list` and `mtp status` with 1,000 sequences in the state store;
//! 6. a slow uplink (5 MB/s, 50 ms per request): wall time vs bytes/bandwidth;
//! 7. the official `mapillary_tools` on the same images, as the peer users know;
//! 8. many small images (10,000 × 20 KB): wall time vs the plain client;
//! 9. `curl --parallel --parallel-max 4` (one process, keep-alive) sending the same files to the same
//!    fake, as a second, independent plain client;
//! 10. `--bwlimit 2M` on a throttled loopback link: requested vs measured rate;
//! 11. a folder already uploaded and published, uploaded again with the state lost (a fresh state
//!     directory, the same server): wall time beside its fresh upload, and body bytes sent again;
//! 12. a long sequence (10,000 vs 100,000 small images; `--quick` 1,000 vs 5,000): peak RSS and wall
//!     time of `mtp sequence inspect`, `mtp upload` to the fake Mapillary and to the fake Panoramax,
//!     and `mtp status`.
//!
//! Nothing here asserts on time: this binary is run by hand. Everything it measures talks to 127.0.0.1
//! only (the one exception: when no `mapillary_tools` is found, `pip install mapillary_tools` into its
//! temporary directory, from PyPI). It cleans up its temporary directory (unless `--keep`) and stops
//! by itself (every child has a time limit).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod lost_state;
mod scale;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mtp_bench::baseline::{self, BaselineJob, BaselineResult};
use mtp_bench::child::{run_measured, Measured};
use mtp_bench::machine::Machine;
use mtp_bench::mly_tools::{self, redirect, tail};
use mtp_bench::report::{Report, Row, Verdict};
use mtp_bench::{Mtp, MB};
use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig, MapillaryFaults};
use mtp_host::state::{IntegrationRecord, StateStore};
use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use plugin_api::protocol::{Progress, RunOutcome, SequenceState};
use plugin_api::sequence::{ImageInfo, Projection, SequenceDescriptor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "mtp-bench",
    version,
    about = "Benchmarks mtp (the binary beside this one) against a plain client and mapillary_tools, \
             on loopback against the fake Mapillary; prints a markdown table"
)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Smaller sizes for a smoke run (< 1 minute).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout instead of markdown.
    #[arg(long)]
    json: bool,
    /// Seed for the generated sequences and the kill moments of the resume benchmark.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Only these rows (comma-separated numbers 1-12; rows 2 and 3 share row 1's uploads).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<u32>,
    /// The mapillary_tools executable (default: /tmp/mlyvenv/bin/mapillary_tools, then PATH, else a
    /// pip install into the bench's temporary directory).
    #[arg(long)]
    mapillary_tools: Option<PathBuf>,
    /// Keep the temporary directory (sequences, homes, logs) and print where it is.
    #[arg(long)]
    keep: bool,
}

#[derive(Subcommand)]
enum Internal {
    /// The baseline client, run by the bench as a child process of its own.
    #[command(hide = true)]
    BaselineClient {
        #[arg(long)]
        upload_url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        key_prefix: String,
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
}

/// The sizes of one mode.
struct Sizes {
    /// Row 1: (count, bytes per image) of the small-file and the large-file sequence.
    small: (usize, u64),
    large: (usize, u64),
    /// Repetitions of each row-1 measurement (the fastest is reported).
    reps: usize,
    /// Row 2: the image size, and the image counts of the ~200 MB and the ~2 GB sequence.
    rss_image: u64,
    rss_counts: (usize, usize),
    /// Row 4.
    resume_rounds: usize,
    resume: (usize, u64),
    resume_throttle: u64,
    /// Row 5.
    status_sequences: usize,
    status_images_per_sequence: usize,
    status_runs: usize,
    /// Row 6.
    slow: (usize, u64),
    slow_rate: u64,
    slow_latency_ms: u64,
    /// Row 7.
    mly_many: (usize, u64),
    mly_few: (usize, u64),
    /// Row 8.
    many_small: (usize, u64),
    /// Row 9.
    curl: (usize, u64),
    /// Row 10: the sequence, the cap (`--bwlimit`), the cap in bytes/s, the fake's throttle.
    capped: (usize, u64),
    cap: (&'static str, u64),
    cap_throttle: u64,
    /// Row 12: the image counts of the small and the large long sequence.
    scale: (usize, usize),
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            small: (200, 2 * MB),
            large: (20, 100 * MB),
            reps: 3,
            rss_image: 10 * MB,
            rss_counts: (20, 200),
            resume_rounds: 10,
            resume: (24, 2 * MB),
            resume_throttle: 20 * MB,
            status_sequences: 1000,
            status_images_per_sequence: 100,
            status_runs: 20,
            slow: (20, MB),
            slow_rate: 5 * MB,
            slow_latency_ms: 50,
            mly_many: (200, MB),
            mly_few: (20, MB),
            many_small: (10_000, 20_000),
            curl: (200, 2 * MB),
            capped: (20, MB),
            cap: ("2M", 2 * 1024 * 1024),
            cap_throttle: 20 * MB,
            scale: (10_000, 100_000),
        }
    }

    fn quick() -> Sizes {
        Sizes {
            small: (50, 2 * MB),
            large: (4, 50 * MB),
            reps: 1,
            rss_image: 4 * MB,
            rss_counts: (5, 50),
            resume_rounds: 3,
            resume: (24, 2 * MB),
            resume_throttle: 20 * MB,
            status_sequences: 1000,
            status_images_per_sequence: 100,
            status_runs: 5,
            slow: (20, MB),
            slow_rate: 5 * MB,
            slow_latency_ms: 50,
            mly_many: (50, MB),
            mly_few: (20, MB),
            many_small: (500, 20_000),
            curl: (50, 2 * MB),
            capped: (6, MB),
            cap: ("2M", 2 * 1024 * 1024),
            cap_throttle: 20 * MB,
            scale: (1_000, 5_000),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Internal::BaselineClient {
        upload_url,
        token,
        dir,
        key_prefix,
        jobs,
    }) = cli.internal
    {
        let job = BaselineJob {
            upload_url,
            token,
            dir,
            key_prefix,
            jobs,
        };
        return match baseline::run(&job)
            .and_then(|r| serde_json::to_string(&r).context("encoding the baseline's result"))
        {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("baseline client: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(err) => {
                        eprintln!("mtp-bench: {err}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.markdown());
            }
            if report.rows.iter().any(|r| r.verdict == Verdict::Error) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("mtp-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(message: impl AsRef<str>) {
    eprintln!("mtp-bench: {}", message.as_ref());
}

/// Shared state of one benchmark run.
struct Bench {
    mtp: Mtp,
    me: PathBuf,
    work: PathBuf,
    sizes: Sizes,
    seed: u64,
    rng: StdRng,
    sequences_made: u64,
    homes_made: u64,
}

/// Row 1's measurements of one sequence, reused by rows 2 and 3.
struct Throughput {
    label: String,
    count: usize,
    file_bytes: u64,
    mtp: Vec<Measured>,
    baseline: Vec<Measured>,
}

/// The run with the shortest wall time: noise on a shared machine only ever adds to it.
fn best_run(runs: &[Measured]) -> Option<&Measured> {
    runs.iter().min_by_key(|m| m.wall)
}

/// The highest peak RSS of `runs` (of those that report one).
fn highest_rss(runs: &[Measured]) -> Option<u64> {
    runs.iter()
        .filter_map(|m| m.usage.and_then(|u| u.peak_rss_bytes))
        .max()
}

impl Throughput {
    fn mbps(&self, m: &Measured) -> f64 {
        self.file_bytes as f64 / MB as f64 / m.wall.as_secs_f64()
    }
    /// CPU seconds per GB (10^9 bytes) over all runs.
    fn cpu_per_gb(&self, runs: &[Measured]) -> Option<f64> {
        let cpu: Option<f64> = runs
            .iter()
            .map(|m| m.usage.map(|u| u.cpu().as_secs_f64()))
            .sum();
        cpu.map(|c| c / (self.file_bytes as f64 * runs.len() as f64 / 1e9))
    }
}

/// The rounds of the resume benchmark with one restart pause.
#[derive(Default)]
struct Resume {
    count: usize,
    bytes: u64,
    rate: u64,
    pause: Duration,
    /// Per round: bytes for offsets the server already held.
    resent: Vec<f64>,
    /// Per round: all upload bytes received beyond those kept.
    excess: Vec<f64>,
    /// In-flight remainder: 4 jobs × the largest image.
    bound: u64,
    failures: Vec<String>,
    refinished: usize,
    rounds: Vec<serde_json::Value>,
}

impl Resume {
    /// A row judging `values` (one of the per-round series) against the bound.
    fn row(&self, id: &str, measure: String, values: &[f64]) -> Row {
        let n = self.rounds.len();
        let max = values.iter().copied().fold(0.0, f64::max);
        let ok = n - self.failures.len();
        let checks = format!(
            "{ok}/{n} rounds: every image on the fake once and in the published sequence once, one \
             finish_upload{}{}",
            if self.refinished > 0 {
                format!(
                    "; {} image(s) completed just before the kill were finished again by an empty \
                     POST to fetch the handle (no bytes re-sent)",
                    self.refinished
                )
            } else {
                String::new()
            },
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(" (failures: {})", self.failures.join("; "))
            }
        );
        Row {
            id: id.to_string(),
            measure,
            mtp: format!(
                "max {}, median {}",
                mb(max as u64),
                mb(median(&mut values.to_vec()) as u64)
            ),
            other: String::new(),
            result: checks,
            target: format!("≤ in-flight remainder (4 jobs × file = {})", mb(self.bound)),
            // A round that lost or duplicated an image is an error (mtp-bench then exits non-zero,
            // which CI's `--quick` smoke relies on); bytes over the bound only miss the target.
            verdict: if self.failures.is_empty() {
                Verdict::from_bool(max <= self.bound as f64)
            } else {
                Verdict::Error
            },
            data: json!({
                "restart_pause_s": self.pause.as_secs_f64(), "rounds": self.rounds,
                "bound": self.bound, "failures": self.failures,
            }),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn kb(bytes: u64) -> String {
    format!("{:.0} KB", bytes as f64 / 1e3)
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / MB as f64)
}

fn usage_text(m: &Measured) -> String {
    match m.usage {
        Some(u) => format!(
            "CPU {:.2} s, RSS {}",
            u.cpu().as_secs_f64(),
            u.peak_rss_bytes
                .map(mib)
                .unwrap_or_else(|| "n/a".to_string())
        ),
        None => "CPU n/a, RSS n/a".to_string(),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn fresh_fake(faults: MapillaryFaults) -> Result<FakeMapillary> {
    FakeMapillary::spawn_blocking_thread(MapillaryConfig {
        faults,
        ..MapillaryConfig::default()
    })
    .context("starting the fake Mapillary")
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for file in baseline::jpegs_in(dir)? {
        total += std::fs::metadata(&file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
    }
    Ok(total)
}

fn remove_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir) {
        say(format!("could not remove {}: {err}", dir.display()));
    }
}

impl Bench {
    /// A new sequence of `count` images of about `bytes` each, different from every other one (seed
    /// and start time).
    fn generate(&mut self, name: &str, count: usize, bytes: u64) -> Result<PathBuf> {
        self.sequences_made += 1;
        let k = self.sequences_made;
        let dir = self.work.join(format!("seq-{k:02}-{name}"));
        let defaults = GenerateOptions::default();
        let options = GenerateOptions {
            count,
            width: 256,
            height: 192,
            target_bytes: Some(bytes),
            seed: self.seed * 1000 + k,
            start_time_ms: defaults.start_time_ms + k as i64 * 86_400_000,
            name: format!("bench {name}"),
            ..defaults
        };
        let started = Instant::now();
        generate_sequence(&dir, &options)
            .with_context(|| format!("generating a sequence in {}", dir.display()))?;
        say(format!(
            "generated {count} × {} in {:.1} s ({})",
            mb(bytes),
            started.elapsed().as_secs_f64(),
            dir.display()
        ));
        Ok(dir)
    }

    fn home(&mut self, label: &str) -> PathBuf {
        self.homes_made += 1;
        self.work
            .join(format!("home-{:02}-{label}", self.homes_made))
    }

    /// `mtp upload` of `dir` (with `count` images) on a fresh fake, checked complete and published.
    fn mtp_upload(&mut self, label: &str, dir: &Path, count: usize) -> Result<Measured> {
        let fake = fresh_fake(MapillaryFaults::default())?;
        let home = self.home(label);
        self.mtp.prepare_home(&home, &fake, "")?;
        let m = self.mtp.upload(&home, dir, "upload.log", None)?;
        fake.stats()
            .check_complete(count, true)
            .with_context(|| format!("after mtp upload ({label})"))?;
        say(format!(
            "mtp upload {label}: {:.2} s, {}",
            m.wall.as_secs_f64(),
            usage_text(&m)
        ));
        Ok(m)
    }

    /// The baseline client (a child process) uploading `dir` to `fake`.
    fn baseline_upload_to(
        &mut self,
        fake: &FakeMapillary,
        label: &str,
        dir: &Path,
    ) -> Result<(Measured, BaselineResult)> {
        let home = self.home(&format!("baseline-{label}"));
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let out_path = home.join("stdout.json");
        let err_path = home.join("stderr.log");
        let mut cmd = Command::new(&self.me);
        cmd.arg("baseline-client")
            .arg("--upload-url")
            .arg(fake.upload_url())
            .arg("--token")
            .arg(fake.config().user_token)
            .arg("--dir")
            .arg(dir)
            .arg("--key-prefix")
            .arg(format!("bench_{}_", self.homes_made))
            .args(["--jobs", "4"])
            .stdin(Stdio::null())
            .stdout(
                std::fs::File::create(&out_path)
                    .with_context(|| format!("creating {}", out_path.display()))?,
            )
            .stderr(
                std::fs::File::create(&err_path)
                    .with_context(|| format!("creating {}", err_path.display()))?,
            );
        let m = run_measured(&mut cmd, Duration::from_secs(1800), None)?;
        if !m.success() {
            bail!("the baseline client failed: {}", tail(&err_path, 800));
        }
        let text = std::fs::read_to_string(&out_path)
            .with_context(|| format!("reading {}", out_path.display()))?;
        let result: BaselineResult = serde_json::from_str(text.trim())
            .with_context(|| format!("the baseline client printed {text:?}"))?;
        say(format!(
            "baseline {label}: {:.2} s, {}",
            m.wall.as_secs_f64(),
            usage_text(&m)
        ));
        Ok((m, result))
    }

    /// The baseline on a fresh fake, checked complete.
    fn baseline_upload(&mut self, label: &str, dir: &Path, count: usize) -> Result<Measured> {
        let fake = fresh_fake(MapillaryFaults::default())?;
        let (m, result) = self.baseline_upload_to(&fake, label, dir)?;
        if result.files != count as u64 {
            bail!("the baseline sent {} files, expected {count}", result.files);
        }
        fake.stats()
            .check_complete(count, false)
            .context("after the baseline upload")?;
        Ok(m)
    }

    // ---- row 1 (and the data of rows 2 and 3) ----

    fn throughput(&mut self, label: &str, (count, bytes): (usize, u64)) -> Result<Throughput> {
        let dir = self.generate(label, count, bytes)?;
        let file_bytes = dir_bytes(&dir)?;
        let mut t = Throughput {
            label: label.to_string(),
            count,
            file_bytes,
            mtp: Vec::new(),
            baseline: Vec::new(),
        };
        for rep in 0..self.sizes.reps {
            // Alternate which goes first, so neither always gets the warmer page cache.
            if rep % 2 == 0 {
                t.baseline.push(self.baseline_upload(label, &dir, count)?);
                t.mtp.push(self.mtp_upload(label, &dir, count)?);
            } else {
                t.mtp.push(self.mtp_upload(label, &dir, count)?);
                t.baseline.push(self.baseline_upload(label, &dir, count)?);
            }
        }
        remove_dir(&dir);
        Ok(t)
    }

    fn throughput_row(id: &str, t: &Throughput) -> Row {
        let (Some(m), Some(b)) = (best_run(&t.mtp), best_run(&t.baseline)) else {
            return Row::skipped(id, &t.label, "no runs", "≥ 0.9×");
        };
        let ratio = t.mbps(m) / t.mbps(b);
        Row {
            id: id.to_string(),
            measure: format!(
                "Upload throughput, {} ({} files, {}, best of {})",
                t.label,
                t.count,
                mb(t.file_bytes),
                t.mtp.len()
            ),
            mtp: format!("{:.0} MB/s ({:.2} s)", t.mbps(m), m.wall.as_secs_f64()),
            other: format!(
                "plain client: {:.0} MB/s ({:.2} s)",
                t.mbps(b),
                b.wall.as_secs_f64()
            ),
            result: format!("{ratio:.2}×"),
            target: "≥ 0.9× the baseline".to_string(),
            verdict: Verdict::from_bool(ratio >= 0.9),
            data: json!({
                "files": t.count, "bytes": t.file_bytes,
                "mtp": t.mtp, "baseline": t.baseline, "ratio": ratio,
            }),
        }
    }

    // ---- row 2 ----

    fn rss_row(&mut self, large: &Throughput) -> Result<Row> {
        let bytes = self.sizes.rss_image;
        let (few, many) = self.sizes.rss_counts;
        let mut runs = Vec::new();
        for count in [few, many] {
            let dir = self.generate(&format!("rss{count}"), count, bytes)?;
            let total = dir_bytes(&dir)?;
            let m = self.mtp_upload(&format!("rss-{count}"), &dir, count)?;
            remove_dir(&dir);
            runs.push((count, total, m.usage.and_then(|u| u.peak_rss_bytes)));
        }
        let (Some(small_rss), Some(big_rss)) = (runs[0].2, runs[1].2) else {
            return Ok(Row::skipped(
                "2",
                "Peak RSS of mtp upload",
                "n/a: peak RSS needs Linux (wait4 rusage)",
                "equal, ≤ 32 MiB",
            ));
        };
        let big_files_rss = highest_rss(&large.mtp).unwrap_or(0);
        let limit = 32u64 << 20;
        let ratio = big_rss as f64 / small_rss as f64;
        let worst = small_rss.max(big_rss).max(big_files_rss);
        Ok(Row {
            id: "2".to_string(),
            measure: format!(
                "Peak RSS of mtp upload: {} ({few} × {}) vs {} ({many} × {}); and row 1b's {} ({} × {})",
                mb(runs[0].1),
                mb(bytes),
                mb(runs[1].1),
                mb(bytes),
                mb(large.file_bytes),
                large.count,
                mb(large.file_bytes / large.count.max(1) as u64)
            ),
            mtp: format!(
                "{} vs {}; {}",
                mib(small_rss),
                mib(big_rss),
                mib(big_files_rss)
            ),
            other: String::new(),
            result: format!(
                "{ratio:.2}× for {:.0}× the data; largest {}",
                runs[1].1 as f64 / runs[0].1 as f64,
                mib(worst)
            ),
            target: "about the same (≤ 1.25× for 10× the data), ≤ 32 MiB".to_string(),
            verdict: Verdict::from_bool(ratio <= 1.25 && worst <= limit),
            data: json!({
                "image_bytes": bytes,
                "small": { "bytes": runs[0].1, "max_rss": small_rss },
                "big": { "bytes": runs[1].1, "max_rss": big_rss },
                "big_files": { "bytes": large.file_bytes, "max_rss": big_files_rss },
            }),
        })
    }

    // ---- row 3 ----

    fn cpu_row(id: &str, t: &Throughput) -> Row {
        let (Some(m), Some(b)) = (t.cpu_per_gb(&t.mtp), t.cpu_per_gb(&t.baseline)) else {
            return Row::skipped(
                id,
                "CPU per GB",
                "n/a: CPU time needs Linux (wait4 rusage)",
                "",
            );
        };
        Row {
            id: id.to_string(),
            measure: format!(
                "CPU (user+sys) per GB uploaded, {} (each process's own rusage)",
                t.label
            ),
            mtp: format!("{m:.2} s/GB"),
            other: format!("plain client: {b:.2} s/GB"),
            result: format!("{:.2}× the baseline", m / b),
            // Issue 15's target for CPU per GB.
            target: "≤ 1.5× the baseline".to_string(),
            verdict: Verdict::from_bool(m / b <= 1.5),
            data: json!({ "mtp_cpu_s_per_gb": m, "baseline_cpu_s_per_gb": b }),
        }
    }

    // ---- row 4 ----

    /// Kill -9 at random moments of throttled uploads, restart after `pause`, and count.
    fn resume_rounds(&mut self, pause: Duration) -> Result<Resume> {
        let (count, bytes) = self.sizes.resume;
        let rate = self.sizes.resume_throttle;
        let expected = (count as u64 * bytes) as f64 / rate as f64;
        let mut r = Resume {
            count,
            bytes,
            rate,
            pause,
            ..Resume::default()
        };
        for round in 0..self.sizes.resume_rounds {
            let label = format!("resume{}-{round}", pause.as_millis());
            let dir = self.generate(&label, count, bytes)?;
            let fake = fresh_fake(MapillaryFaults {
                throttle_bytes_per_sec: Some(rate),
                ..MapillaryFaults::default()
            })?;
            let home = self.home(&label);
            self.mtp.prepare_home(&home, &fake, "")?;
            let kill_after = Duration::from_secs_f64(self.rng.gen_range(0.2..expected + 0.3));
            let first = self
                .mtp
                .upload(&home, &dir, "upload-killed.log", Some(kill_after))?;
            let before = fake.stats().received();
            fake.set_faults(MapillaryFaults::default());
            std::thread::sleep(pause);
            let second = self.mtp.upload(&home, &dir, "upload-restart.log", None)?;
            let stats = fake.stats();
            let complete = stats.check_complete(count, true);
            let after = stats.received();
            r.bound = r.bound.max(4 * after.largest_image.max(bytes));
            let wire_excess = stats
                .upload_bytes_received
                .saturating_sub(stats.bytes_held());
            r.resent.push(stats.bytes_resent as f64);
            r.excess.push(wire_excess as f64);
            r.refinished += after.images_refinished;
            if let Err(err) = &complete {
                r.failures.push(format!("round {round}: {err:#}"));
            }
            say(format!(
                "resume round {round} (restart after {} ms): killed at {:.2} s ({} of {count} images \
                 done{}), restart {:.2} s, re-sent {} (wire excess {}, discarded {}, 412s {}, \
                 re-finished {})",
                pause.as_millis(),
                kill_after.as_secs_f64(),
                before.images,
                if first.killed { "" } else { ", it had finished" },
                second.wall.as_secs_f64(),
                mb(stats.bytes_resent),
                mb(wire_excess),
                mb(stats.bytes_discarded),
                stats.offset_mismatches,
                after.images_refinished
            ));
            r.rounds.push(json!({
                "kill_after_s": kill_after.as_secs_f64(), "killed": first.killed,
                "images_done_before": before.images, "bytes_resent": stats.bytes_resent,
                "wire_excess": wire_excess, "bytes_discarded": stats.bytes_discarded,
                "offset_mismatches": stats.offset_mismatches, "complete": complete.is_ok(),
                "images_refinished": after.images_refinished,
                "restart_wall_s": second.wall.as_secs_f64(),
            }));
            drop(fake);
            remove_dir(&dir);
        }
        Ok(r)
    }

    fn resume_rows(&mut self) -> Result<Vec<Row>> {
        let at_once = self.resume_rounds(Duration::ZERO)?;
        let paused = self.resume_rounds(Duration::from_secs(1))?;
        let n = at_once.rounds.len();
        Ok(vec![
            at_once.row(
                "4a",
                format!(
                    "Resume: kill -9 at {n} random moments of a {} × {} upload throttled to {}/s, \
                     restart at once: bytes re-sent (for offsets the server already held)",
                    at_once.count,
                    mb(at_once.bytes),
                    mb(at_once.rate)
                ),
                &at_once.resent,
            ),
            at_once.row(
                "4b",
                "Resume, same rounds: all upload bytes received beyond those kept (re-sent, plus \
                 bodies of rejected POSTs that the server drained and threw away)"
                    .to_string(),
                &at_once.excess,
            ),
            paused.row(
                "4c",
                format!(
                    "Resume as 4b, {n} more rounds, restart 1 s after the kill (as a person would)"
                ),
                &paused.excess,
            ),
        ])
    }

    // ---- row 5 ----

    fn status_rows(&mut self) -> Result<Vec<Row>> {
        let fake = fresh_fake(MapillaryFaults::default())?;
        let home = self.home("status");
        // MTPW enabled too (placeholder endpoint: nothing here talks to it), as a user with both has.
        self.mtp.prepare_home(
            &home,
            &fake,
            "MTP_WEB_URL=http://127.0.0.1:9\nMTP_WEB_AUTH_URL=http://127.0.0.1:9/accounts/authorize/\n\
             MTP_WEB_APP_ID=bench\nMTP_WEB_APP_SECRET=bench\n",
        )?;
        let n = self.sizes.status_sequences;
        let started = Instant::now();
        populate_state(
            &home.join("state"),
            n,
            self.sizes.status_images_per_sequence,
        )?;
        say(format!(
            "populated the state store with {n} sequences in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        // The status must list them all, without touching the network.
        let mut check = self.mtp.command(&home);
        check.args(["status", "--json"]);
        let out = check.output().context("running mtp status --json")?;
        let listed: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).with_context(|| {
                format!(
                    "mtp status --json printed no JSON: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        if listed.len() != 2 * n {
            bail!(
                "mtp status lists {} records, expected {}",
                listed.len(),
                2 * n
            );
        }
        let before = fake.stats().requests.values().sum::<u64>();
        let mut rows = Vec::new();
        for (id, args) in [
            ("5a", &["integrations", "list"][..]),
            ("5b", &["status"][..]),
        ] {
            let log = home.join("cli.log");
            let mut walls = Vec::new();
            let mut rss = 0u64;
            for run in 0..=self.sizes.status_runs {
                let mut cmd = self.mtp.command(&home);
                cmd.args(args);
                redirect(&mut cmd, &log)?;
                let m = run_measured(&mut cmd, Duration::from_secs(120), None)?;
                if !m.success() {
                    bail!("mtp {} failed: {}", args.join(" "), tail(&log, 600));
                }
                if run > 0 {
                    // Run 0 warms the page cache.
                    walls.push(m.wall.as_secs_f64() * 1000.0);
                    rss = rss.max(m.usage.and_then(|u| u.peak_rss_bytes).unwrap_or(0));
                }
            }
            let min = walls.iter().copied().fold(f64::INFINITY, f64::min);
            let max = walls.iter().copied().fold(0.0, f64::max);
            let med = median(&mut walls);
            say(format!("mtp {}: median {med:.1} ms", args.join(" ")));
            rows.push(Row {
                id: id.to_string(),
                measure: format!(
                    "`mtp {}` with {n} sequences × 2 integrations in the state store (whole process, {} runs)",
                    args.join(" "),
                    self.sizes.status_runs
                ),
                mtp: format!("median {med:.0} ms (min {min:.0}, max {max:.0}; RSS {})", mib(rss)),
                other: String::new(),
                result: format!("{med:.0} ms"),
                target: "(interactive)".to_string(),
                verdict: Verdict::Info,
                data: json!({ "median_ms": med, "min_ms": min, "max_ms": max, "max_rss": rss }),
            });
        }
        let after = fake.stats().requests.values().sum::<u64>();
        if after != before {
            bail!(
                "mtp status talked to Mapillary ({} requests) although every sequence is published",
                after - before
            );
        }
        Ok(rows)
    }

    // ---- row 6 ----

    fn slow_uplink_row(&mut self) -> Result<Row> {
        let (count, bytes) = self.sizes.slow;
        let rate = self.sizes.slow_rate;
        let latency = self.sizes.slow_latency_ms;
        let faults = MapillaryFaults {
            throttle_bytes_per_sec: Some(rate),
            latency_ms: latency,
            ..MapillaryFaults::default()
        };
        let dir = self.generate("slow", count, bytes)?;

        let fake = fresh_fake(faults.clone())?;
        let home = self.home("slow");
        self.mtp.prepare_home(&home, &fake, "")?;
        let m = self.mtp.upload(&home, &dir, "upload.log", None)?;
        let stats = fake.stats();
        stats
            .check_complete(count, true)
            .context("after the slow-uplink upload")?;
        let ideal = stats.upload_bytes_received as f64 / rate as f64;
        let efficiency = ideal / m.wall.as_secs_f64();
        let mtp_requests = stats.requests.clone();
        say(format!("slow uplink: mtp's requests {mtp_requests:?}"));
        drop(fake);

        let fake = fresh_fake(faults)?;
        let (b, _) = self.baseline_upload_to(&fake, "slow", &dir)?;
        let stats = fake.stats();
        let b_ideal = stats.upload_bytes_received as f64 / rate as f64;
        let b_efficiency = b_ideal / b.wall.as_secs_f64();
        remove_dir(&dir);
        say(format!(
            "slow uplink: mtp {:.2} s (ideal {ideal:.2} s), baseline {:.2} s",
            m.wall.as_secs_f64(),
            b.wall.as_secs_f64()
        ));
        Ok(Row {
            id: "6".to_string(),
            measure: format!(
                "Slow uplink: {count} × {} through {}/s with {latency} ms per request",
                mb(bytes),
                mb(rate)
            ),
            mtp: format!(
                "{:.2} s for an ideal {ideal:.2} s (whole process)",
                m.wall.as_secs_f64()
            ),
            other: format!(
                "plain client: {:.2} s for {b_ideal:.2} s ({:.0}%)",
                b.wall.as_secs_f64(),
                b_efficiency * 100.0
            ),
            result: format!("{:.0}% of the link", efficiency * 100.0),
            target: "≥ 96% of the link".to_string(),
            verdict: Verdict::from_bool(efficiency >= 0.96),
            data: json!({
                "mtp_wall_s": m.wall.as_secs_f64(), "ideal_s": ideal, "efficiency": efficiency,
                "baseline_wall_s": b.wall.as_secs_f64(), "baseline_efficiency": b_efficiency,
                "mtp_requests": mtp_requests,
            }),
        })
    }

    // ---- row 8 ----

    fn many_small_row(&mut self) -> Result<Row> {
        let (count, bytes) = self.sizes.many_small;
        let label = format!("{count} × {}", kb(bytes));
        let dir = self.generate("small", count, bytes)?;
        let file_bytes = dir_bytes(&dir)?;
        let b = self.baseline_upload("many-small", &dir, count)?;
        // Mapillary takes at most 1,000 images per sequence, so mtp publishes that many parts.
        let fake = fresh_fake(MapillaryFaults::default())?;
        let home = self.home("many-small");
        self.mtp.prepare_home(&home, &fake, "")?;
        let m = self.mtp.upload(&home, &dir, "upload.log", None)?;
        let stats = fake.stats();
        stats
            .check_complete(count, false)
            .and_then(|_| stats.check_published_exactly_once(count, count.div_ceil(1000)))
            .context("after mtp upload (many small images)")?;
        say(format!(
            "mtp upload many-small: {:.2} s, {}",
            m.wall.as_secs_f64(),
            usage_text(&m)
        ));
        remove_dir(&dir);
        let ratio = m.wall.as_secs_f64() / b.wall.as_secs_f64();
        Ok(Row {
            id: "8".to_string(),
            measure: format!("Many small images, {label} ({}): wall time", mb(file_bytes)),
            mtp: format!("{:.2} s ({})", m.wall.as_secs_f64(), usage_text(&m)),
            other: format!(
                "plain client: {:.2} s ({})",
                b.wall.as_secs_f64(),
                usage_text(&b)
            ),
            result: format!("{ratio:.2}× the baseline's time"),
            target: "≤ 1.5× the baseline's time".to_string(),
            verdict: Verdict::from_bool(ratio <= 1.5),
            data: json!({
                "count": count, "file_bytes": file_bytes, "mtp_wall_s": m.wall.as_secs_f64(),
                "baseline_wall_s": b.wall.as_secs_f64(), "ratio": ratio,
                "mtp_cpu_s": m.usage.map_or(0.0, |u| u.cpu().as_secs_f64()), "baseline_cpu_s": b.usage.map_or(0.0, |u| u.cpu().as_secs_f64()),
            }),
        })
    }

    // ---- row 9 ----

    /// `curl --parallel --parallel-max 4` sending every file of `dir` to a fresh fake: one process, one
    /// config file with one POST per file (the headers the baseline sends), connections kept alive.
    fn curl_upload(&mut self, dir: &Path, count: usize) -> Result<Measured> {
        let fake = fresh_fake(MapillaryFaults::default())?;
        let home = self.home("curl");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let token = fake.config().user_token;
        let mut config = String::new();
        for (index, path) in baseline::jpegs_in(dir)?.iter().enumerate() {
            let key = format!("curl_{}_{index}.jpg", self.homes_made);
            let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            config.push_str(&format!(
                "url = \"{}/{key}\"\ndata-binary = \"@{}\"\nheader = \"Authorization: OAuth {token}\"\n\
                 header = \"Offset: 0\"\nheader = \"X-Entity-Name: {key}\"\n\
                 header = \"Content-Type: application/octet-stream\"\nheader = \"Expect:\"\n\
                 output = \"/dev/null\"\nfail\n",
                fake.upload_url(),
                quote(&path.to_string_lossy()),
            ));
        }
        // `next` separates the transfers; one after the last would start an empty one.
        let config = config.replace("fail\n", "fail\nnext\n");
        let config = config.trim_end_matches("next\n").to_string();
        let config_path = home.join("curl.conf");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let err_path = home.join("stderr.log");
        let mut cmd = Command::new("curl");
        cmd.args([
            "--silent",
            "--show-error",
            "--parallel",
            "--parallel-max",
            "4",
            "--noproxy",
            "*",
            "--config",
        ])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&err_path)
                .with_context(|| format!("creating {}", err_path.display()))?,
        );
        let m = run_measured(&mut cmd, Duration::from_secs(1800), None)
            .context("running curl (apt-get install curl)")?;
        if !m.success() {
            bail!("curl failed: {}", tail(&err_path, 800));
        }
        fake.stats()
            .check_complete(count, false)
            .context("after the curl upload")?;
        say(format!(
            "curl --parallel: {:.2} s, {}",
            m.wall.as_secs_f64(),
            usage_text(&m)
        ));
        Ok(m)
    }

    fn curl_row(&mut self) -> Result<Row> {
        let (count, bytes) = self.sizes.curl;
        let label = format!("{count} × {}", mb(bytes));
        let dir = self.generate("curl", count, bytes)?;
        let file_bytes = dir_bytes(&dir)?;
        let mut curl = Vec::new();
        let mut mtp = Vec::new();
        for rep in 0..self.sizes.reps {
            if rep % 2 == 0 {
                curl.push(self.curl_upload(&dir, count)?);
                mtp.push(self.mtp_upload("vs-curl", &dir, count)?);
            } else {
                mtp.push(self.mtp_upload("vs-curl", &dir, count)?);
                curl.push(self.curl_upload(&dir, count)?);
            }
        }
        remove_dir(&dir);
        let (Some(m), Some(c)) = (best_run(&mtp), best_run(&curl)) else {
            bail!("no runs");
        };
        let rate = |x: &Measured| file_bytes as f64 / 1e6 / x.wall.as_secs_f64();
        let ratio = rate(m) / rate(c);
        Ok(Row {
            id: "9".to_string(),
            measure: format!(
                "Throughput vs `curl --parallel --parallel-max 4` (one process, keep-alive), {label} ({}, best of {})",
                mb(file_bytes),
                mtp.len()
            ),
            mtp: format!("{:.0} MB/s ({:.2} s, CPU {:.2} s)", rate(m), m.wall.as_secs_f64(), m.usage.map_or(0.0, |u| u.cpu().as_secs_f64())),
            other: format!("curl: {:.0} MB/s ({:.2} s, CPU {:.2} s)", rate(c), c.wall.as_secs_f64(), c.usage.map_or(0.0, |u| u.cpu().as_secs_f64())),
            result: format!("{ratio:.2}×"),
            target: "≥ 0.95× curl".to_string(),
            verdict: Verdict::from_bool(ratio >= 0.95),
            data: json!({
                "file_bytes": file_bytes, "mtp_wall_s": m.wall.as_secs_f64(),
                "curl_wall_s": c.wall.as_secs_f64(), "ratio": ratio,
            }),
        })
    }

    // ---- row 10 ----

    fn bwlimit_row(&mut self) -> Result<Row> {
        let (count, bytes) = self.sizes.capped;
        let (cap_text, cap) = self.sizes.cap;
        let throttle = self.sizes.cap_throttle;
        let dir = self.generate("capped", count, bytes)?;
        let fake = fresh_fake(MapillaryFaults {
            throttle_bytes_per_sec: Some(throttle),
            ..MapillaryFaults::default()
        })?;
        let home = self.home("capped");
        self.mtp.prepare_home(&home, &fake, "")?;
        let m = self
            .mtp
            .upload_with(&home, &dir, "upload.log", None, &["--bwlimit", cap_text])?;
        let stats = fake.stats();
        stats
            .check_complete(count, true)
            .context("after the capped upload")?;
        remove_dir(&dir);
        let sent = stats.upload_bytes_received;
        let measured = sent as f64 / m.wall.as_secs_f64();
        let ratio = measured / cap as f64;
        Ok(Row {
            id: "10".to_string(),
            measure: format!(
                "Bandwidth cap: `--bwlimit {cap_text}` ({:.2} MB/s), {count} × {} on a link throttled to {}/s",
                cap as f64 / 1e6,
                mb(bytes),
                mb(throttle)
            ),
            mtp: format!(
                "{:.2} MB/s ({} in {:.2} s, whole process)",
                measured / 1e6,
                mb(sent),
                m.wall.as_secs_f64()
            ),
            other: String::new(),
            result: format!("{:.1}% of the cap", ratio * 100.0),
            target: "within ±5 % of the cap".to_string(),
            verdict: Verdict::from_bool((0.95..=1.05).contains(&ratio)),
            data: json!({
                "cap_bytes_per_s": cap, "measured_bytes_per_s": measured, "bytes": sent,
                "wall_s": m.wall.as_secs_f64(), "ratio": ratio,
            }),
        })
    }

    // ---- row 7 ----

    fn mly_rows(&mut self, explicit: Option<&Path>) -> Vec<Row> {
        let targets = [("7a", 1.7), ("7b", 3.0)];
        let sizes = [self.sizes.mly_many, self.sizes.mly_few];
        let tools = match mly_tools::locate_or_install(explicit, &self.work) {
            Ok(t) => t,
            Err(err) => {
                let why = format!("mapillary_tools unavailable: {err:#}");
                let mut rows: Vec<Row> = targets
                    .iter()
                    .zip(sizes)
                    .map(|((id, t), (c, b))| {
                        Row::skipped(
                            id,
                            &format!("vs mapillary_tools, {c} × {}", mb(b)),
                            &why,
                            &format!("≥ {t}×"),
                        )
                    })
                    .collect();
                rows.push(Row::skipped(
                    "7c",
                    "CPU per GB vs mapillary_tools",
                    &why,
                    "less",
                ));
                return rows;
            }
        };
        say(format!("using {} ({})", tools.exe.display(), tools.version));
        let mut rows = Vec::new();
        let mut cpu_row_data: Option<(f64, f64, String)> = None;
        for ((id, target), (count, bytes)) in targets.into_iter().zip(sizes) {
            let measure = format!("Throughput vs mapillary_tools, {count} × {}", mb(bytes));
            let result = (|| -> Result<(Row, Option<(f64, f64)>)> {
                let dir = self.generate(&format!("mly{count}"), count, bytes)?;
                let file_bytes = dir_bytes(&dir)?;
                let m = self.mtp_upload(&format!("vs-mly-{count}"), &dir, count)?;
                let fake = fresh_fake(MapillaryFaults::default())?;
                let home = self.home(&format!("mly-{count}"));
                std::fs::create_dir_all(home.join("home"))
                    .with_context(|| format!("creating {}", home.display()))?;
                tools.authenticate(
                    &home,
                    &fake.graph_url(),
                    &fake.upload_url(),
                    &fake.config().user_token,
                )?;
                let p =
                    tools.process_and_upload(&home, &fake.graph_url(), &fake.upload_url(), &dir)?;
                fake.stats().check_complete(count, true).with_context(|| {
                    format!(
                        "after mapillary_tools process_and_upload (its log: {})",
                        tail(&home.join("process_and_upload.log"), 600)
                    )
                })?;
                say(format!(
                    "mapillary_tools {count} images: {:.2} s, {}",
                    p.wall.as_secs_f64(),
                    usage_text(&p)
                ));
                remove_dir(&dir);
                let rate = |w: Duration| file_bytes as f64 / MB as f64 / w.as_secs_f64();
                let ratio = p.wall.as_secs_f64() / m.wall.as_secs_f64();
                let per_gb = |x: &Measured| {
                    x.usage
                        .map(|u| u.cpu().as_secs_f64() / (file_bytes as f64 / 1e9))
                };
                let cpu = per_gb(&m).zip(per_gb(&p));
                let row = Row {
                    id: id.to_string(),
                    measure: measure.clone(),
                    mtp: format!(
                        "{:.0} MB/s ({:.2} s, {})",
                        rate(m.wall),
                        m.wall.as_secs_f64(),
                        usage_text(&m)
                    ),
                    other: format!(
                        "mapillary_tools: {:.0} MB/s ({:.2} s, {})",
                        rate(p.wall),
                        p.wall.as_secs_f64(),
                        usage_text(&p)
                    ),
                    result: format!("{ratio:.2}×"),
                    target: format!("≥ {target}× mapillary_tools"),
                    verdict: Verdict::from_bool(ratio >= target),
                    data: json!({ "bytes": file_bytes, "mtp": m, "mapillary_tools": p, "ratio": ratio }),
                };
                Ok((row, cpu))
            })();
            match result {
                Ok((row, cpu)) => {
                    if cpu_row_data.is_none() {
                        cpu_row_data = cpu.map(|(a, b)| (a, b, format!("{count} × {}", mb(bytes))));
                    }
                    rows.push(row);
                }
                Err(err) => rows.push(Row::error(id, &measure, &err)),
            }
        }
        rows.push(match cpu_row_data {
            Some((m, p, what)) => Row {
                id: "7c".to_string(),
                measure: format!(
                    "CPU (user+sys) per GB vs mapillary_tools, {what} (whole process)"
                ),
                mtp: format!("{m:.2} s/GB"),
                other: format!("mapillary_tools: {p:.2} s/GB"),
                result: format!("{:.2}× less", p / m),
                target: "less CPU per GB".to_string(),
                verdict: Verdict::from_bool(m < p),
                data: json!({ "mtp_cpu_s_per_gb": m, "mapillary_tools_cpu_s_per_gb": p }),
            },
            None => Row::skipped(
                "7c",
                "CPU per GB vs mapillary_tools",
                "no CPU figures (the runs above failed, or not on Linux)",
                "less",
            ),
        });
        rows.push(Row {
            id: "7".to_string(),
            measure: "mapillary_tools version".to_string(),
            mtp: String::new(),
            other: tools.version.clone(),
            result: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
            data: json!({ "version": tools.version, "exe": tools.exe }),
        });
        rows
    }
}

/// Writes `n` sequences, each published with Mapillary and MTPW, straight into `state.db`.
fn populate_state(state_dir: &Path, n: usize, images: usize) -> Result<()> {
    let store = StateStore::open(state_dir).context("opening the state store")?;
    for i in 0..n {
        let id = format!("bench-sequence-{i:04}");
        let root = format!("/home/user/sequences/ride-{i:04}");
        let descriptor = SequenceDescriptor {
            schema: 1,
            id: id.clone(),
            root: root.clone(),
            name: format!("Ride {i}"),
            description: "generated by mtp-bench".to_string(),
            transport: None,
            tags: vec!["bench".to_string()],
            source: Default::default(),
            images: (0..images)
                .map(|j| ImageInfo {
                    path: format!("{root}/IMG_{j:06}.jpg"),
                    file_name: format!("IMG_{j:06}.jpg"),
                    size_bytes: 4_000_000,
                    latitude: 52.0 + i as f64 * 1e-3,
                    longitude: 6.0 + j as f64 * 1e-5,
                    altitude: Some(10.0),
                    captured_at_ms: 1_589_093_103_000 + i as i64 * 86_400_000 + j as i64 * 1000,
                    heading: Some(90.0),
                    projection: Projection::Flat,
                    width: Some(4000),
                    height: Some(3000),
                    photo_uuid: None,
                    sources: None,
                })
                .collect(),
        };
        for (integration, key_name, key) in [
            ("mapillary", "sequence_key", format!("bEnChSeQuEnCe{i:010}")),
            ("mtpw", "unique_id", format!("{i:08x}-bench")),
        ] {
            let mut outcome = RunOutcome::new(SequenceState::Published, "published");
            outcome.keys.insert(key_name.to_string(), key);
            outcome.progress = Some(Progress {
                files_done: images as u64,
                files_total: images as u64,
                bytes_done: 0,
                bytes_total: 0,
            });
            let record = IntegrationRecord {
                outcome: Some(outcome),
                last_error: None,
            };
            store
                .put_record(&descriptor, integration, &record)
                .context("writing a record")?;
        }
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<Report> {
    let started = Instant::now();
    let mtp = Mtp::beside_current_exe()?;
    let me = std::env::current_exe().context("locating mtp-bench itself")?;
    let tmp = tempfile::Builder::new()
        .prefix("mtp-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let work = tmp.path().to_path_buf();
    say(format!("working in {}", work.display()));
    let machine = Machine::detect();
    let sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let mut bench = Bench {
        mtp,
        me,
        work,
        sizes,
        seed: cli.seed,
        rng: StdRng::seed_from_u64(cli.seed),
        sequences_made: 0,
        homes_made: 0,
    };
    let wanted = |row: u32| cli.rows.is_empty() || cli.rows.contains(&row);
    let mut rows: Vec<Row> = Vec::new();

    if wanted(1) || wanted(2) || wanted(3) {
        let small = bench.sizes.small;
        let large = bench.sizes.large;
        let small_label = format!("{} × {}", small.0, mb(small.1));
        let large_label = format!("{} × {}", large.0, mb(large.1));
        let small_t = bench.throughput(&small_label, small);
        let large_t = bench.throughput(&large_label, large);
        if wanted(1) {
            for (id, label, t) in [
                ("1a", &small_label, &small_t),
                ("1b", &large_label, &large_t),
            ] {
                rows.push(match t {
                    Ok(t) => Bench::throughput_row(id, t),
                    Err(err) => Row::error(id, &format!("Upload throughput, {label}"), err),
                });
            }
        }
        if wanted(2) {
            rows.push(match &large_t {
                Ok(t) => bench
                    .rss_row(t)
                    .unwrap_or_else(|e| Row::error("2", "Peak RSS", &e)),
                Err(err) => Row::error("2", "Peak RSS", err),
            });
        }
        if wanted(3) {
            for (id, label, t) in [
                ("3a", &small_label, &small_t),
                ("3b", &large_label, &large_t),
            ] {
                rows.push(match t {
                    Ok(t) => Bench::cpu_row(id, t),
                    Err(err) => Row::error(id, &format!("CPU per GB, {label}"), err),
                });
            }
        }
    }
    if wanted(4) {
        match bench.resume_rows() {
            Ok(r) => rows.extend(r),
            Err(e) => rows.push(Row::error("4", "Resume after kill -9", &e)),
        }
    }
    if wanted(5) {
        match bench.status_rows() {
            Ok(r) => rows.extend(r),
            Err(e) => rows.push(Row::error("5", "mtp integrations list / status", &e)),
        }
    }
    if wanted(6) {
        rows.push(
            bench
                .slow_uplink_row()
                .unwrap_or_else(|e| Row::error("6", "Slow uplink", &e)),
        );
    }
    if wanted(8) {
        rows.push(
            bench
                .many_small_row()
                .unwrap_or_else(|e| Row::error("8", "Many small images", &e)),
        );
    }
    if wanted(9) {
        rows.push(
            bench
                .curl_row()
                .unwrap_or_else(|e| Row::error("9", "Throughput vs curl --parallel", &e)),
        );
    }
    if wanted(10) {
        rows.push(
            bench
                .bwlimit_row()
                .unwrap_or_else(|e| Row::error("10", "Bandwidth cap", &e)),
        );
    }
    if wanted(11) {
        rows.extend(bench.lost_state_rows());
    }
    if wanted(12) {
        rows.extend(bench.scale_rows());
    }
    let mut mly_version = serde_json::Value::Null;
    if wanted(7) {
        let mly = bench.mly_rows(cli.mapillary_tools.as_deref());
        if let Some(r) = mly.iter().find(|r| r.id == "7") {
            mly_version = json!(r.data["version"]
                .as_str()
                .unwrap_or("?")
                .trim_start_matches("mapillary_tools version ")
                .to_string());
        }
        rows.extend(mly.into_iter().filter(|r| r.id != "7"));
    }

    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--json").collect();
    let command = format!(
        "cargo build {}--workspace && target/{}/mtp-bench{}{}",
        if machine.profile == "release" {
            "--release "
        } else {
            ""
        },
        machine.profile,
        if args.is_empty() { "" } else { " " },
        args.join(" ")
    );
    let mut versions = json!({ "mtp": bench.mtp.version().trim_start_matches("mtp ").to_string() });
    if !mly_version.is_null() {
        versions["mapillary_tools"] = mly_version;
    }
    let notes = vec![
        "MB = 10^6 bytes; MB/s = file bytes / wall time of the whole process (start to exit: plugin \
         loading, reading the sequence, hashing, upload, manifest, publish, sequence-key lookup)."
            .to_string(),
        "Every upload (mtp, baseline, mapillary_tools) goes to a fresh fake, and every mtp run has a \
         fresh state directory: nothing is on the server or in mtp's hash cache beforehand."
            .to_string(),
        "Everything runs on this machine: the fake server (in the bench process) competes with the \
         client for the same CPUs, for mtp and the peers alike."
            .to_string(),
        "CPU = user + sys from the child process's own rusage (wait4); peak RSS = its VmHWM, sampled \
         every 3 ms while it runs (ru_maxrss would include the bench's own high-water mark, which \
         Linux carries into children). The baseline runs as a child process of its own (mtp-bench \
         baseline-client), so the fake's CPU and memory are never counted."
            .to_string(),
    ];
    if cli.keep {
        let kept = tmp.keep();
        say(format!("kept {}", kept.display()));
    }
    Ok(Report {
        machine,
        command,
        mode: if cli.quick { "quick" } else { "full" }.to_string(),
        total_secs: started.elapsed().as_secs_f64(),
        versions,
        rows,
        notes,
    })
}
