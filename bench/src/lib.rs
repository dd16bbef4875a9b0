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
use mtp_fakes::fake_mapillary::FakeMapillary;

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
        self.upload_with(home, dir, log_name, kill_after, &[])
    }

    /// [`Mtp::upload`] with `extra` arguments after `--jobs 4` (e.g. `--bwlimit 2M`).
    pub fn upload_with(
        &self,
        home: &Path,
        dir: &Path,
        log_name: &str,
        kill_after: Option<Duration>,
        extra: &[&str],
    ) -> Result<Measured> {
        let log = home.join(log_name);
        let mut cmd = self.command(home);
        cmd.arg("upload").arg(dir).args(["--jobs", "4"]).args(extra);
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
