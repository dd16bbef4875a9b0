//! Showing plugin progress: an indicatif bar for people, one JSON object per line for programs (`--json`).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mtp_host::services::{ProgressOrigin, ProgressSink};
use plugin_api::protocol::ProgressEvent;

#[derive(Default)]
struct Counters {
    integration: String,
    files_done: u64,
    files_total: u64,
    step: String,
}

/// Where progress goes.
#[derive(Clone)]
pub(crate) struct ProgressView {
    json: bool,
    /// `-q`: no step lines; `-qq`: no bar and no lines at all (as the log levels: info, then everything).
    quiet: u8,
    bar: Option<ProgressBar>,
    counters: Arc<Mutex<Counters>>,
}

impl ProgressView {
    /// JSON lines on stdout when `json`, else a bar on stderr (hidden when stderr is not a terminal);
    /// `quiet` is the number of `-q` flags.
    pub(crate) fn new(json: bool, quiet: u8) -> ProgressView {
        let bar = (!json && quiet < 2).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        ProgressView {
            json,
            quiet,
            bar,
            counters: Arc::default(),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resets the bar for the next sequence (events name their sequence themselves).
    pub(crate) fn start_sequence(&self) {
        *self.counters() = Counters::default();
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(0);
        }
    }

    /// Prints a line above the bar (or a JSON `message` event).
    pub(crate) fn println(&self, text: &str) {
        if self.json {
            self.emit(serde_json::json!({"type": "message", "message": text}));
        } else if let Some(bar) = &self.bar {
            bar.suspend(|| eprintln!("{text}"));
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Writes one JSON event line on stdout.
    pub(crate) fn emit(&self, value: serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// The sink handed to the runner.
    pub(crate) fn sink(&self) -> ProgressSink {
        let view = self.clone();
        Arc::new(move |origin: ProgressOrigin<'_>, event: ProgressEvent| {
            view.on_event(origin, event)
        })
    }

    fn on_event(&self, origin: ProgressOrigin<'_>, event: ProgressEvent) {
        let integration = origin.integration;
        {
            let mut c = self.counters();
            if c.integration != integration {
                c.integration = integration.to_string();
                c.files_done = 0;
                c.files_total = 0;
            }
            match &event {
                ProgressEvent::Totals {
                    files_total,
                    files_done,
                    ..
                } => {
                    c.files_total = *files_total;
                    c.files_done = *files_done;
                }
                ProgressEvent::Advance { files, .. } => c.files_done += files,
                ProgressEvent::Step { step, .. } => c.step = step.clone(),
                ProgressEvent::Note { .. } | ProgressEvent::Phase { .. } => {}
            }
        }
        if self.json {
            self.emit(progress_json(integration, origin.sequence, &event));
            return;
        }
        let Some(bar) = &self.bar else { return };
        match event {
            ProgressEvent::Step { step, message } => {
                bar.set_prefix(integration.to_string());
                if let Some(message) = message.filter(|_| self.quiet == 0) {
                    bar.suspend(|| eprintln!("{integration}: {step}: {message}"));
                }
            }
            ProgressEvent::Totals {
                bytes_total,
                bytes_done,
                ..
            } => {
                bar.set_prefix(integration.to_string());
                bar.set_length(bytes_total);
                bar.set_position(bytes_done);
                bar.reset_eta();
            }
            ProgressEvent::Advance { bytes, .. } => bar.inc(bytes),
            ProgressEvent::Note { message } => {
                bar.suspend(|| eprintln!("{integration}: {message}"));
            }
            // For the record (the checkpoint), not for the bar.
            ProgressEvent::Phase { .. } => {}
        }
        let c = self.counters();
        bar.set_message(format!(
            "{}/{} files {}",
            c.files_done, c.files_total, c.step
        ));
    }
}

/// One progress line of `mtp upload --json` (also an event of `mtp serve`'s `/api/events`).
pub(crate) fn progress_json(
    integration: &str,
    sequence: Option<&str>,
    event: &ProgressEvent,
) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("type".into(), "progress".into());
        map.insert("integration".into(), integration.into());
        map.insert("sequence".into(), sequence.into());
    }
    value
}
