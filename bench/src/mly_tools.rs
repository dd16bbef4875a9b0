//! The official `mapillary_tools` (Python) as the peer in the benchmark: found (an explicit path, a
//! venv at `/tmp/mlyvenv`, or `PATH`) or installed with pip into a venv under the bench's directory,
//! then pointed at the fake through its environment variables:
//! `MAPILLARY_GRAPH_API_ENDPOINT`, `MAPILLARY_UPLOAD_ENDPOINT` (`api_v4.py`, `upload_api_v4.py`),
//! `MAPILLARY_CONFIG_PATH` (`config.py`: where `authenticate` keeps the profile),
//! `MAPILLARY_UPLOAD_HISTORY_PATH` and `MAPILLARY_TOOLS_UPLOAD_CACHE_DIR` (`constants.py`: kept per run
//! so that nothing is skipped as already uploaded), `MAPILLARY_TOOLS_PROMPT_DISABLED=YES` (never ask),
//! and `MAPILLARY_DISABLE_API_LOGGING=YES` (no telemetry requests: the peer is measured at its
//! fastest). Authentication is non-interactive: `authenticate --user_name NAME --jwt TOKEN` (verified
//! with `GET /me` on the fake).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::child::{run_measured, Measured};

/// The profile name used with `--user_name`.
pub const PROFILE: &str = "benchuser";

/// A usable `mapillary_tools` executable and its version.
#[derive(Debug, Clone)]
pub struct MlyTools {
    /// The executable.
    pub exe: PathBuf,
    /// `mapillary_tools --version` output.
    pub version: String,
}

fn version_of(exe: &Path) -> Option<String> {
    let out = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text.trim().to_string())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Finds `mapillary_tools`, or installs it into `<work>/mlyvenv` with pip. `Err` says why it is not
/// available (the row is then skipped with that reason).
pub fn locate_or_install(explicit: Option<&Path>, work: &Path) -> Result<MlyTools> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = explicit {
        candidates.push(path.to_path_buf());
    }
    candidates.push(PathBuf::from("/tmp/mlyvenv/bin/mapillary_tools"));
    candidates.extend(on_path("mapillary_tools"));
    for exe in &candidates {
        if let Some(version) = version_of(exe) {
            return Ok(MlyTools {
                exe: exe.clone(),
                version,
            });
        }
    }
    if explicit.is_some() {
        bail!("{} does not run", candidates[0].display());
    }
    let venv = work.join("mlyvenv");
    eprintln!(
        "mtp-bench: installing mapillary_tools with pip into {}",
        venv.display()
    );
    let log = work.join("pip.log");
    let python = on_path("python3").context("python3 is not on PATH")?;
    let step = |cmd: &mut Command, what: &str| -> Result<()> {
        let file = std::fs::File::create(&log).context("creating pip.log")?;
        let err = file.try_clone().context("creating pip.log")?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let m = run_measured(cmd, Duration::from_secs(900), None)?;
        if !m.success() {
            bail!("{what} failed: {}", tail(&log, 400));
        }
        Ok(())
    };
    step(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )?;
    step(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "mapillary_tools"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        "pip install mapillary_tools",
    )?;
    let exe = venv.join("bin/mapillary_tools");
    let version = version_of(&exe).context("the installed mapillary_tools does not run")?;
    Ok(MlyTools { exe, version })
}

/// The last `max` characters of a log file, on one line.
pub fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(max)
        .map(|(i, _)| i)
        .unwrap_or(0);
    text[start..].replace('\n', " / ")
}

impl MlyTools {
    /// A `mapillary_tools` command whose configuration, history and caches all live in `home`, talking
    /// only to the fake.
    pub fn command(&self, home: &Path, graph_url: &str, upload_url: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("MAPILLARY") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&key);
            }
        }
        cmd.current_dir(home)
            .stdin(Stdio::null())
            .env("HOME", home.join("home"))
            .env("XDG_DATA_HOME", home.join("home/.local/share"))
            .env("XDG_CONFIG_HOME", home.join("home/.config"))
            .env("XDG_CACHE_HOME", home.join("home/.cache"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("MAPILLARY_GRAPH_API_ENDPOINT", graph_url)
            .env("MAPILLARY_UPLOAD_ENDPOINT", upload_url)
            .env("MAPILLARY_CONFIG_PATH", home.join("mapillary.ini"))
            .env("MAPILLARY_UPLOAD_HISTORY_PATH", home.join("history"))
            .env("MAPILLARY_TOOLS_UPLOAD_CACHE_DIR", home.join("cache"))
            .env("MAPILLARY_TOOLS_PROMPT_DISABLED", "YES")
            .env("MAPILLARY_DISABLE_API_LOGGING", "YES");
        cmd
    }

    /// `authenticate --user_name benchuser --jwt TOKEN` (not timed).
    pub fn authenticate(
        &self,
        home: &Path,
        graph_url: &str,
        upload_url: &str,
        token: &str,
    ) -> Result<()> {
        let log = home.join("authenticate.log");
        let mut cmd = self.command(home, graph_url, upload_url);
        cmd.args(["authenticate", "--user_name", PROFILE, "--jwt", token]);
        redirect(&mut cmd, &log)?;
        let m = run_measured(&mut cmd, Duration::from_secs(120), None)?;
        if !m.success() {
            bail!("mapillary_tools authenticate failed: {}", tail(&log, 600));
        }
        Ok(())
    }

    /// `process_and_upload DIR --user_name benchuser`, measured.
    pub fn process_and_upload(
        &self,
        home: &Path,
        graph_url: &str,
        upload_url: &str,
        dir: &Path,
    ) -> Result<Measured> {
        let log = home.join("process_and_upload.log");
        let mut cmd = self.command(home, graph_url, upload_url);
        cmd.arg("process_and_upload")
            .arg(dir)
            .args(["--user_name", PROFILE]);
        redirect(&mut cmd, &log)?;
        let m = run_measured(&mut cmd, Duration::from_secs(1800), None)?;
        if !m.success() {
            bail!(
                "mapillary_tools process_and_upload failed (exit {:?}): {}",
                m.code,
                tail(&log, 800)
            );
        }
        Ok(m)
    }
}

/// Sends a command's stdout and stderr to `log`.
pub fn redirect(cmd: &mut Command, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file
        .try_clone()
        .with_context(|| format!("creating {}", log.display()))?;
    cmd.stdout(file).stderr(err);
    Ok(())
}
