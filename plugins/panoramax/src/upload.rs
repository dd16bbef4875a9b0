//! Sending a sequence's pictures into its upload set, several at a time.
//!
//! What the server already holds comes from its own list (`GET /api/upload_sets/<id>/files`), matched by
//! file name, as panoramax_cli 1.4.1 matches it (`panoramax_cli/status.py` `get_uploadset_files`); an
//! accepted file is not sent again, nor a refused one unless its bytes changed since ([`crate::resend`],
//! as panoramax_cli's `has_to_be_sent`). A picture whose answer was lost is answered 409 "already added to
//! this upload set" when sent again, which counts as accepted; so no picture is ever stored twice.
//!
//! Capture order: at dispatch GeoVisio reads a set's pictures without `ORDER BY` and sorts them on their
//! capture time alone, with Python's stable sort (`geovisio/utils/upload_set.py` `dispatch`, the `SELECT`
//! of `db_pics`; geopic-tag-reader 1.10.1 `sequence.py` `sort_pictures`, key `ts.isoformat()` for
//! `time-asc`), so pictures with equal times keep the order the database returns them in, which is not
//! the capture order (observed on 2.15.1: four sent last to first came out 1, 4, 3, 2). Where the host spread equal whole-second times within their
//! second (`MetadataSources::spread_from_ms`), the spread time goes with the picture as
//! `override_capture_time` (see [`capture_time_override`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use futures::StreamExt;
use plugin_api::prelude::*;

use crate::api::{Api, FileAnswer, Rejection, RemoteFile};
use crate::state::{FileRecord, SequenceStore};

/// Where every picture of the sequence stands after the upload phase.
#[derive(Debug, Default)]
pub struct Tally {
    /// File name → picture id of the accepted pictures.
    pub accepted: BTreeMap<String, Option<String>>,
    /// File name → why it was refused.
    pub rejected: BTreeMap<String, Rejection>,
    /// Pictures sent in this run.
    pub sent: u64,
}

impl Tally {
    fn add(&mut self, file_name: &str, answer: FileAnswer) {
        match answer {
            FileAnswer::Accepted { picture_id } => {
                self.accepted.insert(file_name.to_string(), picture_id);
            }
            FileAnswer::Rejected(rejection) => {
                self.rejected.insert(file_name.to_string(), rejection);
            }
        }
    }
}

/// The tally of what the server holds for a set, from its file list.
pub fn tally_of(files: Vec<RemoteFile>) -> Tally {
    let mut tally = Tally::default();
    for f in files {
        match f.rejected {
            Some(r) => tally.add(&f.file_name, FileAnswer::Rejected(r)),
            None => tally.add(
                &f.file_name,
                FileAnswer::Accepted {
                    picture_id: f.picture_id,
                },
            ),
        }
    }
    tally
}

/// A clear line about a refused file: the name, what the server said, and what to do.
pub fn rejection_line(file_name: &str, rejection: &Rejection) -> String {
    let said = rejection.message.as_deref().unwrap_or("no reason given");
    let todo = match rejection.reason.as_str() {
        "file_duplicate" => "it is already on Panoramax from an earlier upload: nothing to do",
        "capture_duplicate" => {
            "it is almost identical to a neighbour (same place and direction): nothing to do"
        }
        "invalid_metadata" => {
            "write its GPS position and capture time into its EXIF, then upload again"
        }
        "invalid_file" => "it is not a JPEG Panoramax can read: re-export it as JPEG",
        "in_excluded_area" => "the instance does not accept pictures taken there",
        "id_conflict" => "a picture with its id already exists on the instance",
        "name_conflict" => "the set keeps the version sent first",
        _ => "see the message",
    };
    let missing = if rejection.details.is_empty() {
        String::new()
    } else {
        format!(" (missing_fields: {})", rejection.details.join(", "))
    };
    format!(
        "{file_name}: refused by Panoramax ({}): {said}{missing}; {todo}",
        rejection.reason
    )
}

/// Uploads every picture of `sequence` the server does not hold yet into upload set `set_id`,
/// `jobs` at a time. Stops at the first error that every other file would also get (401, 403, 404, 415,
/// retries used up) or at cancellation; what was acknowledged is kept.
pub async fn send_all(
    ctx: &Context,
    api: &Api,
    store: &SequenceStore<'_>,
    set_id: &str,
    sequence: &SequenceDescriptor,
    jobs: usize,
) -> Result<Tally, PluginError> {
    let remote: HashMap<String, RemoteFile> = api
        .files(ctx, set_id)
        .await?
        .into_iter()
        .map(|f| (f.file_name.clone(), f))
        .collect();
    let mut tally = Tally::default();
    let mut todo = Vec::new();
    let (mut files_done, mut bytes_done, mut bytes_total) = (0u64, 0u64, 0u64);
    let mut names = std::collections::HashSet::new();
    let mut changed = Vec::new();
    for image in &sequence.images {
        let name = file_name(image);
        if !names.insert(name.clone()) {
            return Err(PluginError::invalid_input(format!(
                "two pictures of the sequence are named {name}; Panoramax tells the files of an upload \
                 set apart by name: rename one"
            )));
        }
        bytes_total += image.size_bytes;
        match remote.get(&name) {
            Some(held)
                if crate::resend::changed_since_refused(Path::new(&image.path), held).await? =>
            {
                changed.push(name.clone());
                todo.push((name, image));
            }
            Some(held) => {
                files_done += 1;
                bytes_done += image.size_bytes;
                match &held.rejected {
                    Some(r) => tally.add(&name, FileAnswer::Rejected(r.clone())),
                    None => tally.add(
                        &name,
                        FileAnswer::Accepted {
                            picture_id: held.picture_id.clone(),
                        },
                    ),
                }
            }
            None => todo.push((name, image)),
        }
    }
    ctx.progress(ProgressEvent::Totals {
        files_total: sequence.images.len() as u64,
        bytes_total,
        files_done,
        bytes_done,
    });
    if !todo.is_empty() {
        let spread = todo
            .iter()
            .filter(|(_, image)| capture_time_override(image).is_some())
            .count();
        let order = if spread > 0 {
            format!(
                "; {spread} capture time(s) spread within their second sent as override_capture_time, \
                 so that Panoramax keeps the capture order"
            )
        } else {
            String::new()
        };
        ctx.progress(ProgressEvent::Step {
            step: "upload".into(),
            message: Some(format!(
                "{} pictures to upload set {set_id}, {jobs} at a time{order}",
                todo.len()
            )),
        });
    }
    if !changed.is_empty() {
        // Said once for all of them, with a few named (the server lists every one).
        const NAMED: usize = 3;
        let more = changed.len().saturating_sub(NAMED);
        ctx.progress(ProgressEvent::Note {
            message: format!(
                "{} refused picture(s) changed since Panoramax refused them: sending them again into \
                 the same upload set: {}{}",
                changed.len(),
                changed[..changed.len().min(NAMED)].join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        });
    }
    // Boxed so the stream's item type names no closure: it keeps the run's future provably `Send`.
    type Sending<'a> = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<(String, u64, FileAnswer), PluginError>>
                + Send
                + 'a,
        >,
    >;
    let sends: Vec<Sending<'_>> = todo
        .into_iter()
        .map(|(name, image)| -> Sending<'_> {
            Box::pin(async move {
                ctx.check_cancelled()?;
                let capture_time = capture_time_override(image);
                let answer = api
                    .upload_file(
                        ctx,
                        set_id,
                        Path::new(&image.path),
                        &name,
                        capture_time.as_deref(),
                    )
                    .await?;
                Ok((name, image.size_bytes, answer))
            })
        })
        .collect();
    let mut answers = futures::stream::iter(sends).buffer_unordered(jobs.max(1));
    while let Some(result) = answers.next().await {
        let (name, size, answer) = result?;
        let record = match &answer {
            FileAnswer::Accepted { picture_id } => FileRecord {
                picture_id: picture_id.clone(),
                rejected: None,
            },
            FileAnswer::Rejected(r) => {
                ctx.warn(rejection_line(&name, r));
                FileRecord {
                    picture_id: None,
                    rejected: Some(r.clone()),
                }
            }
        };
        store.put_file(&name, &record)?;
        ctx.progress(ProgressEvent::Advance {
            bytes: size,
            files: 1,
        });
        tally.sent += 1;
        tally.add(&name, answer);
    }
    Ok(tally)
}

/// The capture time to send with a picture, RFC 3339 UTC with milliseconds, when the one in its file is
/// not the one mtp orders it by: only where the host spread equal whole-second times within their second
/// (a time the file already gives exactly is never overridden).
///
/// GeoVisio 2.15.1 parses it with `datetime.fromisoformat` (`geovisio/web/params.py` `parse_datetime`,
/// called by `AddFileToUploadSetParameter.parse_capture_time` in `geovisio/web/upload_set.py`) and writes
/// it into the stored file before reading its metadata (`addFilesToUploadSet`, `writePictureMetadata`):
/// geopic-tag-reader 1.10.1 `writer.py` `_date_exif_tags` writes `DateTimeOriginal` with
/// `SubSecTimeOriginal` (microseconds) and `OffsetTimeOriginal`, and the GPS time in whole seconds; its
/// reader then prefers the camera time, which alone has sub-seconds (`reader.py` `TimeBySource.getBest`).
/// So the milliseconds reach the picture's time. The server's `content_md5` stays that of the bytes sent.
pub fn capture_time_override(image: &ImageInfo) -> Option<String> {
    let from_file = image.sources.as_ref()?.spread_from_ms?;
    (from_file != image.captured_at_ms).then(|| plugin_api::time::format_utc(image.captured_at_ms))
}

/// The name a picture is sent under.
pub fn file_name(image: &ImageInfo) -> String {
    if image.file_name.is_empty() {
        Path::new(&image.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| image.path.clone())
    } else {
        image.file_name.clone()
    }
}
