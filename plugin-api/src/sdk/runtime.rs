use std::sync::OnceLock;

use crate::error::PluginError;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The plugin's own tokio runtime, built on first use.
///
/// A plugin library links its own copy of tokio, so it cannot use the host's reactor: every future the
/// plugin returns is spawned here and only its `JoinHandle` is awaited by the host.
pub fn plugin_runtime() -> Result<&'static tokio::runtime::Runtime, PluginError> {
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(2, 8);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("mtp-plugin")
                .enable_all()
                .build()
                .map_err(|err| format!("cannot start the plugin's runtime: {err}"))
        })
        .as_ref()
        .map_err(|message| PluginError::other(message.clone()))
}
