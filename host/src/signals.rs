//! Stopping on a signal: Ctrl-C (SIGINT), SIGTERM and SIGHUP all ask the running plugins to stop at their
//! next safe point (the shared cancel flag); the command then records what was done and exits with the
//! shell's convention for that signal, 128 + its number (130, 143, 129). A second signal quits at once
//! with the same code: everything acknowledged is already committed to the state store.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// Which signal stopped the command, if one did.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    code: Arc<AtomicU8>,
}

impl StopSignal {
    /// The exit code to end with (130, 143, 129) when a signal asked to stop.
    pub fn exit_code(&self) -> Option<u8> {
        match self.code.load(Ordering::SeqCst) {
            0 => None,
            code => Some(code),
        }
    }
}

/// Installs the handlers on `runtime`, setting `cancel` on the first signal.
pub fn install(runtime: &tokio::runtime::Runtime, cancel: Arc<AtomicBool>) -> StopSignal {
    let stop = StopSignal::default();
    let code = stop.code.clone();
    runtime.spawn(async move {
        loop {
            let (name, exit) = next_signal().await;
            if code.load(Ordering::SeqCst) != 0 {
                std::process::exit(i32::from(exit));
            }
            code.store(exit, Ordering::SeqCst);
            eprintln!(
                "\n{name}: stopping at the next safe point and recording the progress \
                 (send it again to quit at once)..."
            );
            cancel.store(true, Ordering::SeqCst);
        }
    });
    stop
}

/// Waits for the next stop signal: its name and exit code.
#[cfg(unix)]
async fn next_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return ("interrupted", 130);
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("interrupted", 130),
        _ = term.recv() => ("terminated (SIGTERM)", 143),
        _ = hup.recv() => ("hung up (SIGHUP)", 129),
    }
}

/// Waits for the next stop signal: its name and exit code.
#[cfg(not(unix))]
async fn next_signal() -> (&'static str, u8) {
    let _ = tokio::signal::ctrl_c().await;
    ("interrupted", 130)
}
