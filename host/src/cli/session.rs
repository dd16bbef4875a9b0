//! What every command that runs plugins needs: env, registry, state store, runner and a runtime.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use mtp_host::authorize::authorize;
use mtp_host::registry::{PluginDirs, Registry};
use mtp_host::runner::Runner;
use mtp_host::state::StateStore;

use super::progress::ProgressView;
use super::{load_env, GlobalArgs};

/// The default state directory: `<XDG data>/mtp`.
pub(crate) fn state_dir(global: &GlobalArgs) -> Result<PathBuf> {
    match &global.state_dir {
        Some(dir) => Ok(dir.clone()),
        None => dirs::data_dir()
            .map(|d| d.join("mtp"))
            .context("no user data directory is known here: pass --state-dir or set MTP_STATE_DIR"),
    }
}

/// A runner ready to call plugins, plus the runtime that drives the calls.
pub(crate) struct Session {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) runner: Runner,
    pub(crate) progress: ProgressView,
    /// Which signal asked the command to stop, if one did (its exit code).
    pub(crate) stop: mtp_host::signals::StopSignal,
}

impl Session {
    /// A session whose progress is JSON lines on stdout with `--json` (for `mtp upload`).
    pub(crate) fn open(global: &GlobalArgs) -> Result<Session> {
        Session::open_with(global, global.json)
    }

    /// A session for a command whose stdout is one JSON document with `--json` (`mtp status`,
    /// `mtp auth`): progress and notes stay human and on stderr, so stdout stays parseable.
    pub(crate) fn open_for_data(global: &GlobalArgs) -> Result<Session> {
        Session::open_with(global, false)
    }

    /// A session for a command that only reads (`mtp status`, `mtp sequence inspect`): a state directory
    /// that cannot be written is opened read-only rather than refused.
    pub(crate) fn open_for_reading(global: &GlobalArgs) -> Result<Session> {
        Session::open_mode(global, false, true)
    }

    fn open_with(global: &GlobalArgs, progress_json: bool) -> Result<Session> {
        Session::open_mode(global, progress_json, false)
    }

    fn open_mode(global: &GlobalArgs, progress_json: bool, reading: bool) -> Result<Session> {
        let env = load_env(global)?;
        let registry = Registry::discover(
            &PluginDirs::resolve_checked(global.plugins_dir.as_deref())?,
            &env,
        );
        let dir = state_dir(global)?;
        let store = if reading {
            StateStore::open_for_reading(&dir)
        } else {
            StateStore::open(&dir)
        };
        let store = store.context("cannot open the state store")?;
        let progress = ProgressView::new(progress_json, global.quiet);
        let mode = global.auth_browser;
        let runner = Runner::new(registry, env, store)
            .with_progress(progress.sink())
            .with_authorizer(Arc::new(move |prompt| authorize(prompt, mode)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let stop = mtp_host::signals::install(&runtime, runner.cancel_flag());
        Ok(Session {
            runtime,
            runner,
            progress,
            stop,
        })
    }
}
