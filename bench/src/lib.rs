//! Support for the `mtp-bench` binary (see its documentation): measured child processes, the baseline
//! upload client, the `mapillary_tools` peer, the machine description and the report, plus helpers to
//! run `mtp` against a [`FakeMapillary`] in an isolated home directory.

pub mod baseline;
pub mod child;
pub mod machine;
pub mod mly_tools;
pub mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use child::{run_measured, Measured};
use mly_tools::{redirect, tail};
use mtp_fakes::fake_mapillary::{EntityKind, FakeMapillary, MapillaryStats};

/// Bytes in a megabyte as the bench reports them (10^6).
pub const MB: u64 = 1_000_000;

/// The `mtp` binary beside this executable, and where bundled plugins are found (the same directory).
#[derive(Debug, Clone)]
pub struct Mtp {
    /// The `mtp` executable.
    pub exe: PathBuf,
}

impl Mtp {
    /// Finds `mtp` as a sibling of the running executable.
    pub fn beside_current_exe() -> Result<Mtp> {
        let me = std::env::current_exe().context("locating mtp-bench itself")?;
        let dir = me.parent().context("mtp-bench has no parent directory")?;
        let exe = dir.join(format!("mtp{}", std::env::consts::EXE_SUFFIX));
        if !exe.is_file() {
            bail!(
                "{} not found: build the workspace first (cargo build --release --workspace)",
                exe.display()
            );
        }
        Ok(Mtp { exe })
    }

    /// `mtp --version`.
    pub fn version(&self) -> String {
        Command::new(&self.exe)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    }

    /// An `mtp` command isolated in `home`: its own state directory and `.env` (cwd), no inherited
    /// plugin directory, integration keys, log settings or proxies.
    pub fn command(&self, home: &Path) -> Command {
        let mut cmd = Command::new(&self.exe);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("MAPILLARY_")
                || k.starts_with("MTP_")
                || k == "ARCHIVE_DIR"
                || k == "RUST_LOG"
                || k.to_ascii_lowercase().ends_with("_proxy")
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env("MTP_STATE_DIR", home.join("state"))
            .env("XDG_DATA_HOME", home.join("xdg-data"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .current_dir(home)
            .stdin(Stdio::null());
        cmd
    }

    /// A fresh home for one `mtp` session against `fake`: the directory, a `.env` for it, and
    /// `mtp auth mapillary --token` done (not timed).
    pub fn prepare_home(&self, home: &Path, fake: &FakeMapillary, extra_env: &str) -> Result<()> {
        std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
        write_env(home, fake, extra_env)?;
        let log = home.join("auth.log");
        let mut cmd = self.command(home);
        cmd.args(["auth", "mapillary", "--token", &fake.config().user_token]);
        redirect(&mut cmd, &log)?;
        let m = run_measured(&mut cmd, Duration::from_secs(60), None)?;
        if !m.success() {
            bail!("mtp auth mapillary failed: {}", tail(&log, 600));
        }
        Ok(())
    }

    /// `mtp upload DIR --jobs 4` in `home`, measured; `kill_after` kills it (SIGKILL) at that moment.
    /// Output goes to `<home>/<log_name>`.
    pub fn upload(
        &self,
        home: &Path,
        dir: &Path,
        log_name: &str,
        kill_after: Option<Duration>,
    ) -> Result<Measured> {
        let log = home.join(log_name);
        let mut cmd = self.command(home);
        cmd.arg("upload").arg(dir).args(["--jobs", "4"]);
        redirect(&mut cmd, &log)?;
        let m = run_measured(&mut cmd, Duration::from_secs(1800), kill_after)?;
        if kill_after.is_none() && !m.success() {
            bail!(
                "mtp upload failed (exit {:?}{}): {}",
                m.code,
                if m.timed_out { ", timed out" } else { "" },
                tail(&log, 800)
            );
        }
        Ok(m)
    }
}

/// Writes `<home>/.env` pointing the Mapillary integration at `fake` (plus `extra` lines).
pub fn write_env(home: &Path, fake: &FakeMapillary, extra: &str) -> Result<()> {
    let cfg = fake.config();
    let text = format!(
        "MAPILLARY_APP_ID={}\nMAPILLARY_SECRET={}\nMAPILLARY_REDIRECT_URI=http://127.0.0.1:9/cb\n\
         MAPILLARY_GRAPH_URL={}\nMAPILLARY_UPLOAD_URL={}\nMAPILLARY_AUTHORIZE_URL={}\n\
         MAPILLARY_RETRY_BASE_MS=50\n{extra}",
        cfg.client_id,
        cfg.client_secret,
        fake.graph_url(),
        fake.upload_url(),
        fake.authorize_url()
    );
    let path = home.join(".env");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// What a fake received from one upload session.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Received {
    /// Complete image entities.
    pub images: usize,
    /// Image entities that received more body bytes than they hold (some sent twice).
    pub images_with_extra_bytes: usize,
    /// Image entities finished more than once by an empty `POST` at their full offset (a client
    /// fetching the handle of an entity completed just before it was killed; no bytes sent again).
    pub images_refinished: usize,
    /// `finish_upload` calls, over all manifests.
    pub finish_calls: u32,
    /// Distinct manifests published.
    pub manifests_published: usize,
    /// Images in the published (uploaded) sequences.
    pub published_images: usize,
    /// Distinct upload entities among them.
    pub published_distinct: usize,
    /// Largest complete image entity, bytes.
    pub largest_image: u64,
}

/// Counts what `stats` shows.
pub fn received(stats: &MapillaryStats) -> Received {
    let images: Vec<_> = stats
        .entities
        .values()
        .filter(|e| e.kind == EntityKind::Image && e.completions > 0)
        .collect();
    let published: Vec<&str> = stats
        .uploaded_sequences()
        .iter()
        .flat_map(|s| s.images.iter())
        .filter_map(|i| i.entity_key.as_deref())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = published.iter().copied().collect();
    Received {
        images: images.len(),
        images_with_extra_bytes: images
            .iter()
            .filter(|e| e.bytes_received_total > e.offset)
            .count(),
        images_refinished: images.iter().filter(|e| e.completions > 1).count(),
        finish_calls: stats.finish_upload_calls.values().sum(),
        manifests_published: stats.finish_upload_calls.len(),
        published_images: published.len(),
        published_distinct: distinct.len(),
        largest_image: images.iter().map(|e| e.offset).max().unwrap_or(0),
    }
}

/// Fails unless the fake holds exactly `images` complete image entities and (when `published`)
/// exactly one `finish_upload`, whose sequence has those images, each once.
pub fn check_complete(stats: &MapillaryStats, images: usize, published: bool) -> Result<Received> {
    let got = received(stats);
    if got.images != images {
        bail!(
            "the fake holds {} complete images, expected {images}",
            got.images
        );
    }
    if published {
        if got.finish_calls != 1 || got.manifests_published != 1 {
            bail!(
                "expected one finish_upload, the fake saw {} for {} manifests",
                got.finish_calls,
                got.manifests_published
            );
        }
        if got.published_images != images || got.published_distinct != images {
            bail!(
                "the published sequence has {} images ({} distinct), expected {images}",
                got.published_images,
                got.published_distinct
            );
        }
    }
    Ok(got)
}
