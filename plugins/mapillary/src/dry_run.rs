//! `mtp upload --dry-run`: everything an upload does to the bytes, and nothing it does to Mapillary.
//!
//! Each image is validated and rewritten exactly as an upload would send it, hashed into its session key,
//! and written under that key into a local directory, with a local stand-in handle; then each part's
//! manifest is built from those handles and written too. No upload service or graph endpoint is
//! contacted and nothing is written to the state store, so no handle of a dry run can reach a real
//! publish. This is what mapillary_tools' dry run does (mapillary/mapillary_tools
//! `mapillary_tools/uploader.py`, `_create_upload_service`: with `dry_run` it uses
//! `upload_api_v4.FakeUploadService`, which appends each entity's bytes to `<upload path>/<session key>`
//! and keeps a random handle in `<upload path>/file_handles/<session key>`; `finish_upload` is skipped).

use std::io::Write;
use std::path::{Path, PathBuf};

use plugin_api::prelude::*;

use crate::bundle::{image_key, manifest_body, manifest_key};
use crate::error::{MlyError, Result};
use crate::exif_rewrite::prepare;
use crate::outgoing::{Outgoing, OutgoingReader, CHUNK};
use crate::sequence_images::{gone, SequenceImages};
use crate::state::Plan;
use plugin_api::time::format_utc as format_ms;

/// The run option naming the directory (default: [`default_dir`]).
pub const DIR_OPTION: &str = "dry_run_dir";
/// Where handles go, as in mapillary_tools' `FakeUploadService.FILE_HANDLE_DIR`.
const HANDLE_DIR: &str = "file_handles";

/// `<temp dir>/mtp_dry_run/mapillary/<sequence id>` (mapillary_tools uses `<temp dir>/mapillary_public_uploads`).
pub fn default_dir(sequence_id: &str) -> PathBuf {
    let safe: String = sequence_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir()
        .join("mtp_dry_run")
        .join("mapillary")
        .join(safe)
}

/// The directory a dry run of `request` writes into.
pub fn dir(request: &RunRequest) -> PathBuf {
    request
        .options
        .get(DIR_OPTION)
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| default_dir(&request.sequence.id))
}

fn file_error(path: &Path, source: std::io::Error) -> MlyError {
    MlyError::File {
        path: path.to_string_lossy().into_owned(),
        cause: source,
    }
}

/// Writes `out`'s bytes into `dir` under their session key, hashing them on the way. Blocking.
/// Returns the session key and the stand-in handle.
fn write_entity(out: &Outgoing, dir: &Path, index: usize) -> Result<(String, String)> {
    let partial = dir.join(format!(".partial-{index}"));
    let mut file = std::fs::File::create(&partial).map_err(|e| file_error(&partial, e))?;
    let mut reader = OutgoingReader::open(out, 0).map_err(|e| file_error(&out.path, e))?;
    let mut digest = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = reader
            .read_full(&mut buf)
            .map_err(|e| file_error(&out.path, e))?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| file_error(&partial, e))?;
        total += n as u64;
    }
    if total != out.length {
        return Err(file_error(
            &out.path,
            std::io::Error::other(format!("read {total} bytes, expected {}", out.length)),
        ));
    }
    let hash = digest.finalize().to_hex().to_string();
    let key = image_key(&hash);
    let target = dir.join(&key);
    std::fs::rename(&partial, &target).map_err(|e| file_error(&target, e))?;
    let handle = write_handle(dir, &key, &hash)?;
    Ok((key, handle))
}

/// A local stand-in handle (`dry-run-<hash>`: never a handle the service issued) kept next to the entity.
fn write_handle(dir: &Path, key: &str, hash: &str) -> Result<String> {
    let handle = format!("dry-run-{hash}");
    let handles = dir.join(HANDLE_DIR);
    std::fs::create_dir_all(&handles).map_err(|e| file_error(&handles, e))?;
    let path = handles.join(key);
    std::fs::write(&path, &handle).map_err(|e| file_error(&path, e))?;
    Ok(handle)
}

/// Runs the dry run of `plan` (the sequence is already validated), reading `images` a part at a time.
pub async fn run(
    ctx: &Context,
    request: &RunRequest,
    images: &SequenceImages<'_>,
    plan: &Plan,
) -> Result<RunOutcome> {
    let dir = dir(request);
    std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
    let mut progress = Progress {
        files_total: plan.image_count(),
        ..Progress::default()
    };
    ctx.progress(progress.totals_event());
    ctx.progress(ProgressEvent::Step {
        step: "dry run".into(),
        message: Some(format!("writing what would be sent into {}", dir.display())),
    });
    let mut parts_text = Vec::new();
    let mut index = 0usize;
    for (n, summary) in plan.parts.iter().enumerate() {
        let part = images.planned(plan, n)?;
        let mut handles = Vec::with_capacity(part.images.len());
        for (path, image) in part.images.iter().zip(images.part(&part)?) {
            if ctx.is_cancelled() {
                return Err(MlyError::Cancelled);
            }
            let image = image.ok_or_else(|| gone(path))?;
            let target = dir.clone();
            let i = index;
            index += 1;
            let (length, handle) = tokio::task::spawn_blocking(move || {
                let out = prepare(&image)?;
                let (_, handle) = write_entity(&out, &target, i)?;
                Ok::<_, MlyError>((out.length, handle))
            })
            .await
            .map_err(|err| MlyError::Invalid(format!("a worker thread failed: {err}")))??;
            progress.files_done += 1;
            progress.bytes_done += length;
            progress.bytes_total += length;
            ctx.progress(ProgressEvent::Advance {
                bytes: length,
                files: 1,
            });
            handles.push(handle);
        }
        let body = manifest_body(&handles);
        let key = manifest_key(&body);
        let path = dir.join(&key);
        std::fs::write(&path, &body).map_err(|e| file_error(&path, e))?;
        parts_text.push(format!(
            "part {} ({} images, {} – {}, manifest {key})",
            n + 1,
            summary.len,
            format_ms(summary.first_ms),
            format_ms(summary.last_ms)
        ));
    }
    let mut outcome = RunOutcome::new(
        SequenceState::DryRun,
        format!(
            "dry run: nothing sent; wrote {} images ({} bytes) and {} manifest(s) into {}; would \
             publish {} Mapillary sequence(s): {}",
            progress.files_done,
            progress.bytes_done,
            plan.parts.len(),
            dir.display(),
            plan.parts.len(),
            parts_text.join("; ")
        ),
    );
    outcome.progress = Some(progress);
    outcome.next_action = Some("run mtp upload without --dry-run to upload and publish".into());
    Ok(outcome)
}
