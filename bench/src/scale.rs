//! Row 12: memory and time of a long sequence (issue 27). `mtp sequence inspect`, `mtp upload` to the
//! fake Mapillary and to the fake Panoramax, and `mtp status` on a small and a large generated sequence
//! (full: 10,000 and 100,000 images of about 2.7 KB, as `mtp sequence generate` writes them; `--quick`:
//! 1,000 and 5,000): peak RSS and wall time of each whole process, and how they grow with the count.
//! Each is measured `reps` times from scratch (3 in full, as rows 1 and 9), and the row takes the shortest
//! wall time and the highest peak RSS: a single run's ratio moved by ±1 from run to run on a two-core
//! machine, since noise that adds a few hundred milliseconds to the 10,000-image run is a tenth of it.
//! The folder has settled (written seconds before) when it is uploaded, as a photographer's would be.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mtp_bench::child::{run_measured, Measured};
use mtp_bench::mly_tools::{redirect, tail};
use mtp_bench::report::{Row, Verdict};
use mtp_fakes::fake_mapillary::MapillaryFaults;
use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use serde_json::json;

use super::{best_run, fresh_fake, highest_rss, mib, remove_dir, say, Bench};

/// The bound on peak RSS at the large count.
const RSS_BOUND: u64 = 64 << 20;
/// The bound on `mtp status` at the large count.
const STATUS_BOUND: Duration = Duration::from_millis(50);

/// One command's figures at one count over the repetitions: the shortest wall time (noise on a
/// shared machine only ever adds to it, as rows 1 and 9 take it) and the highest peak RSS (the bound is on
/// the peak, so the worst run is the one that counts).
struct Figures {
    wall: Duration,
    rss: u64,
}

impl Figures {
    fn of(runs: &[Measured]) -> Option<Figures> {
        Some(Figures {
            wall: best_run(runs)?.wall,
            rss: highest_rss(runs).unwrap_or(0),
        })
    }
}

/// One command's figures at both counts.
struct Pair {
    small: Figures,
    large: Figures,
}

impl Bench {
    /// Rows 12a–12d.
    pub(super) fn scale_rows(&mut self) -> Vec<Row> {
        match self.scale_measures() {
            Ok(rows) => rows,
            Err(e) => vec![Row::error("12", "Long sequences (memory and time)", &e)],
        }
    }

    fn scale_measures(&mut self) -> Result<Vec<Row>> {
        let (small, large) = self.sizes.scale;
        let mut measured: Vec<[Option<Figures>; 4]> = Vec::new();
        for count in [small, large] {
            let dir = self.generate_plain(count)?;
            // As a folder of photos is uploaded some time after it was copied: `mtp status` trusts a
            // folder's modification time only once it has settled (3 s; host/src/drift.rs), and 12d
            // measures that case, not a folder written a moment before.
            std::thread::sleep(Duration::from_secs(4));
            // Each repetition from scratch: fresh fakes, a fresh state directory.
            let mut runs: [Vec<Measured>; 4] = Default::default();
            for _ in 0..self.sizes.reps.max(1) {
                for (all, one) in runs.iter_mut().zip(self.scale_one(&dir, count)?) {
                    all.push(one);
                }
            }
            measured.push(runs.map(|r| Figures::of(&r)));
            remove_dir(&dir);
        }
        let [small_m, large_m] = [measured.remove(0), measured.remove(0)];
        let names = [
            ("12a", "`mtp sequence inspect`"),
            ("12b", "`mtp upload` to the fake Mapillary"),
            ("12c", "`mtp upload` to the fake Panoramax"),
            ("12d", "`mtp status` (that one sequence, after 12b)"),
        ];
        let mut rows = Vec::new();
        for (((id, what), s), l) in names.into_iter().zip(small_m).zip(large_m) {
            let (Some(small_run), Some(large_run)) = (s, l) else {
                continue;
            };
            let pair = Pair {
                small: small_run,
                large: large_run,
            };
            rows.push(self.scale_row(id, what, (small, large), &pair));
        }
        Ok(rows)
    }

    fn scale_row(&self, id: &str, what: &str, (small, large): (usize, usize), pair: &Pair) -> Row {
        let (rs, rl) = (pair.small.rss, pair.large.rss);
        let (ws, wl) = (pair.small.wall, pair.large.wall);
        let rss_ratio = rl as f64 / rs.max(1) as f64;
        let wall_ratio = wl.as_secs_f64() / ws.as_secs_f64().max(1e-9);
        let times = large as f64 / small as f64;
        let status = id == "12d";
        let met = rl <= RSS_BOUND
            && rss_ratio <= 1.25
            && wall_ratio <= times * 1.1
            && (!status || wl <= STATUS_BOUND);
        Row {
            id: id.to_string(),
            measure: format!(
                "{what}: {small} vs {large} images of ~2.7 KB (best wall and highest RSS of {} run{})",
                self.sizes.reps.max(1),
                if self.sizes.reps > 1 { "s" } else { "" }
            ),
            mtp: format!(
                "{small}: {:.2} s, {}; {large}: {:.2} s, {}",
                ws.as_secs_f64(),
                mib(rs),
                wl.as_secs_f64(),
                mib(rl)
            ),
            other: String::new(),
            result: format!(
                "RSS {rss_ratio:.2}×, wall {wall_ratio:.1}× for {times:.0}× the images"
            ),
            target: format!(
                "≤ {} and ≤ 1.25× the RSS; wall ≤ {:.0}×{}",
                mib(RSS_BOUND),
                times * 1.1,
                if status { "; ≤ 50 ms" } else { "" }
            ),
            verdict: Verdict::from_bool(met),
            data: json!({
                "small": small, "large": large, "runs": self.sizes.reps.max(1),
                "small_wall_s": ws.as_secs_f64(), "large_wall_s": wl.as_secs_f64(),
                "small_rss_bytes": rs, "large_rss_bytes": rl,
            }),
        }
    }

    /// A plain generated sequence as `mtp sequence generate --count N` writes it (64 × 32 pixels).
    fn generate_plain(&mut self, count: usize) -> Result<PathBuf> {
        self.sequences_made += 1;
        let dir = self
            .work
            .join(format!("seq-{:02}-scale-{count}", self.sequences_made));
        let options = GenerateOptions {
            count,
            seed: self.seed * 1000 + self.sequences_made,
            name: format!("bench scale {count}"),
            ..GenerateOptions::default()
        };
        let started = Instant::now();
        generate_sequence(&dir, &options)
            .with_context(|| format!("generating a sequence in {}", dir.display()))?;
        say(format!(
            "generated {count} small images in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(dir)
    }

    /// inspect, upload to Mapillary, upload to Panoramax, status: each a whole process.
    fn scale_one(&mut self, dir: &Path, count: usize) -> Result<[Measured; 4]> {
        let limit = Duration::from_secs(3600);
        let mly = fresh_fake(MapillaryFaults::default())?;
        let home = self.home(&format!("scale-{count}-mapillary"));
        self.mtp.prepare_home(&home, &mly, "")?;
        let inspect = self.measured(&home, &["sequence", "inspect"], dir, "inspect.log", limit)?;
        let upload = self.measured(
            &home,
            &["upload", "--to", "mapillary"],
            dir,
            "upload.log",
            limit,
        )?;
        mly.stats()
            .check_complete(count, false)
            .context("after the upload to the fake Mapillary")?;
        let status = self.measured(&home, &["status"], Path::new(""), "status.log", limit)?;

        let pano = FakePanoramax::spawn_blocking_thread(PanoramaxConfig::default())
            .context("starting the fake Panoramax")?;
        let home = self.home(&format!("scale-{count}-panoramax"));
        self.mtp
            .prepare_home(&home, &mly, &format!("PANORAMAX_URL={}\n", pano.base_url()))?;
        let mut auth = self.mtp.command(&home);
        auth.args(["auth", "panoramax", "--token", "alice-token"]);
        redirect(&mut auth, &home.join("auth-panoramax.log"))?;
        if !run_measured(&mut auth, Duration::from_secs(60), None)?.success() {
            bail!(
                "mtp auth panoramax failed: {}",
                tail(&home.join("auth-panoramax.log"), 600)
            );
        }
        let panoramax = self.measured(
            &home,
            &["upload", "--to", "panoramax"],
            dir,
            "upload.log",
            limit,
        )?;
        say(format!(
            "scale {count}: inspect {:.2} s, mapillary {:.2} s, panoramax {:.2} s, status {:.3} s",
            inspect.wall.as_secs_f64(),
            upload.wall.as_secs_f64(),
            panoramax.wall.as_secs_f64(),
            status.wall.as_secs_f64()
        ));
        pano.shutdown();
        Ok([inspect, upload, panoramax, status])
    }

    /// `mtp ARGS DIR` in `home` (no DIR when it is empty), measured; a failure is an error.
    fn measured(
        &self,
        home: &Path,
        args: &[&str],
        dir: &Path,
        log_name: &str,
        limit: Duration,
    ) -> Result<Measured> {
        let log = home.join(log_name);
        let mut cmd = self.mtp.command(home);
        cmd.args(args);
        if !dir.as_os_str().is_empty() {
            cmd.arg(dir);
        }
        redirect(&mut cmd, &log)?;
        let m = run_measured(&mut cmd, limit, None)?;
        if !m.success() {
            bail!(
                "mtp {} failed (exit {:?}): {}",
                args.join(" "),
                m.code,
                tail(&log, 800)
            );
        }
        Ok(m)
    }
}
