//! A minimal, working mtp provider: it uploads every image of a sequence with an HTTP `PUT` to
//! `{TEMPLATE_URL}/{sequence id}/{file name}`, resumably and with progress. Copy it to start your own.

use std::sync::LazyLock;
use std::time::Duration;

use plugin_api::http::{client, file_body, send_with_retries};
use plugin_api::prelude::*;
use plugin_api::sdk::retry::Backoff;
use plugin_api::sdk::settings::{EnvKey, RunOption, Settings};

/// The integration. Keep per-process things (an HTTP client) here; keep per-sequence progress in
/// `ctx.state()`, which the host persists.
#[derive(Default)]
pub struct Template;

/// Where the images go.
const URL: &str = "TEMPLATE_URL";
/// The first delay before a retry.
const RETRY_BASE_MS: &str = "TEMPLATE_RETRY_BASE_MS";
/// The run option `--option template.retries=N`.
const RETRIES: &str = "retries";

/// Every `.env` key and run option, declared once with its help, default and range: the manifest is
/// made from it (`mtp integrations list`, `.env.example` and `mtp upload --help` show the help), and the
/// reads below apply it (a bad value is an error naming the key).
fn settings() -> &'static Settings {
    static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
        Settings::new()
            .key(
                EnvKey::required(URL, "Where the images are uploaded to (HTTP PUT).")
                    .url()
                    .example("https://uploads.example.org"),
            )
            .key(
                EnvKey::optional(
                    RETRY_BASE_MS,
                    "The first delay before a retry, in milliseconds (doubles each retry).",
                )
                .number(0, 60_000)
                .default(500),
            )
            .option(RunOption::integer(
                RETRIES,
                "How many times a failed upload of one image is tried again before the run stops.",
                8,
                0,
                32,
            ))
    });
    &SETTINGS
}

#[plugin_api::async_trait]
impl Integration for Template {
    fn manifest(&self) -> Manifest {
        settings().declare(Manifest {
            id: "template".into(),
            name: "Template provider".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Uploads each image with HTTP PUT (a starting point for new providers)"
                .into(),
            api_version: String::new(), // filled in by export_plugin!
            exports: vec!["upload_url".into()],
            ..Default::default()
        })
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        eligibility_of_count(sequence.images.len() as u64)
    }

    // The host lends a long sequence's images a page at a time (`Images`); this check needs only
    // their number, so it reads none.
    fn eligibility_paged(
        &self,
        _sequence: &SequenceDescriptor,
        images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(eligibility_of_count(images.len()))
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        // Refuse what eligibility refuses: the host asks first, a caller of the library may not.
        let eligibility = self.eligibility(&request.sequence);
        if !eligibility.eligible {
            return Err(PluginError::invalid_input(
                eligibility.reason.unwrap_or_default(),
            ));
        }
        let base = settings().url(ctx, URL)?;
        let retry_ms = settings().number(ctx, RETRY_BASE_MS)?;
        let retries = settings().integer_option(&request.options, RETRIES) as u32;
        let sequence = &request.sequence;
        let folder = format!("{base}/{}", sequence.id);
        if request.mode == RunMode::Recheck || request.dry_run {
            let state = if request.dry_run {
                SequenceState::DryRun
            } else {
                SequenceState::Published
            };
            return Ok(RunOutcome::new(
                state,
                format!("would upload {} images to {folder}", sequence.images.len()),
            ));
        }
        let http = client(concat!("mtp-template/", env!("CARGO_PKG_VERSION")))?;
        let done_key = |file: &str| format!("{}/done/{file}", sequence.id);
        let mut progress = Progress {
            files_total: sequence.images.len() as u64,
            ..Progress::default()
        };
        progress.bytes_total = sequence.total_bytes();
        // What an earlier run had acknowledged is never sent twice.
        let mut pending = Vec::new();
        for image in &sequence.images {
            if ctx.state().get(&done_key(&image.file_name))?.is_some() {
                progress.files_done += 1;
                progress.bytes_done += image.size_bytes;
            } else {
                pending.push(image);
            }
        }
        ctx.progress(progress.totals_event());
        for image in pending {
            ctx.check_cancelled()?;
            let url = format!("{folder}/{}", image.file_name);
            let path = std::path::Path::new(&image.path);
            let mut backoff =
                Backoff::new(Duration::from_millis(retry_ms), Duration::from_secs(16), retries);
            let answer = send_with_retries(
                ctx,
                &mut backoff,
                &format!("upload of {}", image.file_name),
                || async { Ok(http.put(&url).body(file_body(ctx, path, 0).await?)) },
            )
            .await?;
            if !answer.is_success() {
                return Err(PluginError::new(
                    ErrorKind::Rejected,
                    format!(
                        "{url} refused {}: HTTP {} {}",
                        image.file_name, answer.status, answer.body
                    ),
                ));
            }
            ctx.state().put(&done_key(&image.file_name), "1")?;
            ctx.progress(ProgressEvent::Advance { bytes: 0, files: 1 });
            progress.files_done += 1;
            progress.bytes_done += image.size_bytes;
        }
        let mut outcome =
            RunOutcome::new(SequenceState::Published, format!("uploaded to {folder}"));
        outcome.keys.insert("upload_url".into(), folder.clone());
        outcome.exports.insert("upload_url".into(), folder);
        outcome.progress = Some(progress);
        Ok(outcome)
    }
}

fn eligibility_of_count(images: u64) -> Eligibility {
    if images == 0 {
        Eligibility::not_eligible("the sequence has no images")
    } else {
        Eligibility::eligible()
    }
}

plugin_api::export_plugin!(Template);
