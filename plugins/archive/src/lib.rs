//! The local archive integration: copies a sequence's images and a JSON manifest of its metadata into
//! `ARCHIVE_DIR/<name>-<id>/`. Resumable (a partly copied file continues where it stopped; finished files
//! are never copied again), with progress. A file appears under its final name only once all of it is on
//! disk (written to `.part`, flushed, synced, its length checked, then renamed), so a full disk leaves
//! `.part` files and an error naming the first one that failed, never a truncated image. It proves the plugin API fits more than Mapillary: it needed no
//! host change.

use std::path::{Path, PathBuf};

use plugin_api::prelude::*;
use plugin_api::sdk::settings::{EnvKey, Settings};
use plugin_api::serde_json;
use plugin_api::tokio;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes copied per read/write, and per progress event.
const CHUNK: usize = 1024 * 1024;

/// The integration.
#[derive(Debug, Default)]
pub struct Archive;

fn io_error(path: &Path, err: std::io::Error) -> PluginError {
    PluginError::other(format!("{}: {err}", path.display()))
}

/// `ARCHIVE_DIR/<name>-<first 8 of id>`, with the name made safe as a directory name.
fn destination(root: &Path, sequence: &SequenceDescriptor) -> PathBuf {
    let safe: String = sequence
        .name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let id: String = sequence
        .id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    root.join(format!("{safe}-{id}"))
}

/// Copies `from` to `to` through `to.part`, continuing a partial copy; reports bytes as they land.
async fn copy_resumable(ctx: &Context, from: &Path, to: &Path) -> Result<u64, PluginError> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut source = tokio::fs::File::open(from)
        .await
        .map_err(|e| io_error(from, e))?;
    let mut target = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
        .map_err(|e| io_error(&part, e))?;
    let already = target
        .metadata()
        .await
        .map_err(|e| io_error(&part, e))?
        .len();
    let total = source
        .metadata()
        .await
        .map_err(|e| io_error(from, e))?
        .len();
    if already > total {
        return Err(PluginError::other(format!(
            "{} is longer than its source",
            part.display()
        )));
    }
    source
        .seek(std::io::SeekFrom::Start(already))
        .await
        .map_err(|e| io_error(from, e))?;
    ctx.progress(ProgressEvent::Advance {
        bytes: already,
        files: 0,
    });
    let mut buffer = vec![0u8; CHUNK];
    loop {
        ctx.check_cancelled()?;
        let n = source
            .read(&mut buffer)
            .await
            .map_err(|e| io_error(from, e))?;
        if n == 0 {
            break;
        }
        target
            .write_all(&buffer[..n])
            .await
            .map_err(|e| io_error(&part, e))?;
        ctx.progress(ProgressEvent::Advance {
            bytes: n as u64,
            files: 0,
        });
    }
    finish(target, &part, total).await?;
    tokio::fs::rename(&part, to)
        .await
        .map_err(|e| io_error(to, e))?;
    Ok(total)
}

/// Makes sure `part` holds all `expected` bytes on disk before it may be renamed to its final name.
/// tokio reports a failed background write (a full disk) only on the next write or `flush`, and
/// `sync_all` does not return it: so flush first, then sync, then compare the length on disk.
async fn finish(mut file: tokio::fs::File, part: &Path, expected: u64) -> Result<(), PluginError> {
    file.flush().await.map_err(|e| io_error(part, e))?;
    file.sync_all().await.map_err(|e| io_error(part, e))?;
    let written = tokio::fs::metadata(part)
        .await
        .map_err(|e| io_error(part, e))?
        .len();
    if written != expected {
        return Err(PluginError::other(format!(
            "{}: {written} of {expected} bytes written (is the disk full?)",
            part.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to `to` through `to.part` (flushed, synced and its length checked before the rename),
/// so a partial file never appears under the final name.
async fn write_whole(to: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io_error(&part, e))?;
    file.write_all(bytes)
        .await
        .map_err(|e| io_error(&part, e))?;
    finish(file, &part, bytes.len() as u64).await?;
    tokio::fs::rename(&part, to)
        .await
        .map_err(|e| io_error(to, e))
}

/// The folder sequences are copied into: the one key, which gates the integration.
const ARCHIVE_DIR: &str = "ARCHIVE_DIR";

/// The key, declared once: the manifest's lists and help come from it, and the run reads through it.
fn settings() -> &'static Settings {
    static SETTINGS: std::sync::LazyLock<Settings> = std::sync::LazyLock::new(|| {
        Settings::new().key(
            EnvKey::required(
                ARCHIVE_DIR,
                "The folder sequences are copied into (images + a JSON manifest).",
            )
            .example("/path/to/archive")
            .path(),
        )
    });
    &SETTINGS
}

#[plugin_api::async_trait]
impl Integration for Archive {
    // Any sequence can be copied: no image is read to answer.
    fn eligibility_paged(
        &self,
        _sequence: &SequenceDescriptor,
        _images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(Eligibility::eligible())
    }

    fn manifest(&self) -> Manifest {
        settings().declare(Manifest {
            id: "archive".into(),
            name: "Local archive".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Copies sequences (images + a JSON manifest) into a local folder".into(),
            api_version: String::new(),
            exports: vec!["archive_path".into()],
            ..Manifest::default()
        })
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        let root = PathBuf::from(settings().required_text(ctx, ARCHIVE_DIR)?);
        let sequence = &request.sequence;
        let dest = destination(&root, sequence);
        if request.dry_run || request.mode == RunMode::Recheck {
            let state = if request.dry_run {
                SequenceState::DryRun
            } else {
                SequenceState::Published
            };
            return Ok(RunOutcome::new(
                state,
                format!("archive at {}", dest.display()),
            ));
        }
        tokio::fs::create_dir_all(&dest)
            .await
            .map_err(|e| io_error(&dest, e))?;
        let done_key = |name: &str| format!("{}/{name}", sequence.id);
        let mut progress = Progress {
            files_total: sequence.images.len() as u64,
            bytes_total: sequence.total_bytes(),
            ..Progress::default()
        };
        let mut pending = Vec::new();
        for image in &sequence.images {
            let target = dest.join(&image.file_name);
            let done = ctx.state().get(&done_key(&image.file_name))?.is_some()
                && tokio::fs::metadata(&target)
                    .await
                    .is_ok_and(|m| m.len() == image.size_bytes);
            if done {
                progress.files_done += 1;
                progress.bytes_done += image.size_bytes;
            } else {
                pending.push((image, target));
            }
        }
        ctx.progress(progress.totals_event());
        for (image, target) in pending {
            let copied = copy_resumable(ctx, Path::new(&image.path), &target).await?;
            ctx.state()
                .put(&done_key(&image.file_name), &copied.to_string())?;
            ctx.progress(ProgressEvent::Advance { bytes: 0, files: 1 });
            progress.files_done += 1;
            progress.bytes_done += copied;
        }
        // The manifest last: its presence says the archive is complete.
        let manifest_path = dest.join("manifest.json");
        let manifest = serde_json::to_vec_pretty(sequence)
            .map_err(|e| PluginError::other(format!("cannot encode the manifest: {e}")))?;
        write_whole(&manifest_path, &manifest).await?;
        let path = dest.display().to_string();
        let mut outcome = RunOutcome::new(SequenceState::Published, format!("archived in {path}"));
        outcome.keys.insert("archive_path".into(), path.clone());
        outcome.exports.insert("archive_path".into(), path);
        outcome.progress = Some(progress);
        Ok(outcome)
    }
}

plugin_api::export_plugin!(Archive);
