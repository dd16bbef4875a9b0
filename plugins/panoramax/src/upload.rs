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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use futures::StreamExt;
use plugin_api::prelude::*;
use plugin_api::sdk::images::PAGE;

use crate::api::{Api, FileAnswer, Rejection, RemoteFile};
use crate::state::{FileRecord, SequenceStore};

/// Where every picture of the sequence stands after the upload phase.
#[derive(Debug, Default)]
pub struct Tally {
    /// How many pictures the server accepted (counts, not names: a set of 100,000 pictures would hold
    /// 100,000 names and picture ids for two numbers).
    pub accepted: u64,
    /// How many of them the server already names a picture for.
    pub accepted_with_picture: u64,
    /// File name → why it was refused.
    pub rejected: BTreeMap<String, Rejection>,
    /// Pictures sent in this run.
    pub sent: u64,
}

impl Tally {
    fn add(&mut self, file_name: &str, answer: FileAnswer) {
        match answer {
            FileAnswer::Accepted { picture_id } => {
                self.accepted += 1;
                self.accepted_with_picture += u64::from(picture_id.is_some());
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

/// Uploads every picture of the sequence (`images`, less those Panoramax would refuse:
/// [`crate::eligibility::is_taken`]) that the server does not hold yet into upload set `set_id`, `jobs`
/// at a time. Stops at the first error that every other file would also get (401, 403, 404, 415,
/// retries used up) or at cancellation; what was acknowledged is kept.
///
/// Two passes over the images, a page at a time: the first finds what is due (a bit an image) and
/// the totals, the second sends; neither holds the sequence (docs/architecture.md, "Memory").
pub async fn send_all(
    ctx: &Context,
    api: &Api,
    store: &SequenceStore<'_>,
    set_id: &str,
    images: &Images<'_>,
    jobs: usize,
) -> Result<Tally, PluginError> {
    let remote: HashMap<String, RemoteFile> = api
        .files(ctx, set_id)
        .await?
        .into_iter()
        .map(|f| (f.file_name.clone(), f))
        .collect();
    let mut tally = Tally::default();
    let mut due = Vec::with_capacity(usize::try_from(images.len()).unwrap_or_default());
    let (mut files_total, mut files_done) = (0u64, 0u64);
    let (mut bytes_done, mut bytes_total) = (0u64, 0u64);
    let (mut sending, mut spread) = (0usize, 0usize);
    let mut names = NameSet::default();
    let mut changed = Vec::new();
    for page in images.pages(PAGE) {
        let (_, page) = page?;
        for image in page.iter() {
            if !crate::eligibility::is_taken(image) {
                due.push(false);
                continue;
            }
            let name = file_name(image);
            if !names.insert(&name) {
                return Err(PluginError::invalid_input(format!(
                    "two pictures of the sequence are named {name}; Panoramax tells the files of an \
                     upload set apart by name: rename one"
                )));
            }
            files_total += 1;
            bytes_total += image.size_bytes;
            let send = match remote.get(name.as_ref()) {
                Some(held)
                    if crate::resend::changed_since_refused(Path::new(&image.path), held)
                        .await? =>
                {
                    changed.push(name.into_owned());
                    true
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
                    false
                }
                None => true,
            };
            if send {
                sending += 1;
                spread += usize::from(capture_time_override(image).is_some());
            }
            due.push(send);
        }
    }
    drop(remote);
    ctx.progress(ProgressEvent::Totals {
        files_total,
        bytes_total,
        files_done,
        bytes_done,
    });
    if sending > 0 {
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
                "{sending} pictures to upload set {set_id}, {jobs} at a time{order}"
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
    // Made as the stream asks for them, `jobs` at a time: each pending send is a 2.4 KB future, and
    // made up front they were 240 MB for 100,000 pictures (docs/architecture.md, "Memory").
    let sends = Sends {
        images,
        due,
        at: 0,
        page: (0, Cow::Borrowed(&[])),
        ctx,
        api,
        set_id,
    };
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

/// The file names seen so far, as 128-bit hashes (16 bytes a picture, not the name: two names with the
/// same hash, which would be reported as one name twice, are not expected among 2^64 pictures).
#[derive(Default)]
struct NameSet(std::collections::HashSet<u128>);

impl NameSet {
    /// Adds `name`; `false` when it was there.
    fn insert(&mut self, name: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let half = |salt: u8| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (salt, name).hash(&mut h);
            h.finish()
        };
        self.0
            .insert(u128::from(half(0)) << 64 | u128::from(half(1)))
    }
}

/// Boxed so the stream's item type names no closure: it keeps the run's future provably `Send`.
type Sending<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(String, u64, FileAnswer), PluginError>>
            + Send
            + 'a,
    >,
>;

/// The sends still to make, one made each time the stream asks, reading the images a page at a time
/// (a named type, not a closure, for the same reason as [`Sending`]).
struct Sends<'a> {
    images: &'a Images<'a>,
    /// Whether each image is to be sent.
    due: Vec<bool>,
    /// The next image to look at.
    at: u64,
    /// The page holding it: its first index, its images.
    page: (u64, Cow<'a, [ImageInfo]>),
    ctx: &'a Context,
    api: &'a Api,
    set_id: &'a str,
}

impl<'a> Sends<'a> {
    /// The next image due and its index, reading the next page when this one ends.
    fn next_due(&mut self) -> Result<Option<ImageInfo>, PluginError> {
        loop {
            let at = self.at;
            if at >= self.images.len() {
                return Ok(None);
            }
            let (first, page) = &self.page;
            if at >= first + page.len() as u64 {
                self.page = (at, self.images.range(at, PAGE)?);
                if self.page.1.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            self.at += 1;
            if self.due.get(at as usize).copied().unwrap_or(false) {
                return Ok(Some(page[(at - first) as usize].clone()));
            }
        }
    }
}

impl<'a> Iterator for Sends<'a> {
    type Item = Sending<'a>;

    fn next(&mut self) -> Option<Sending<'a>> {
        let image = match self.next_due() {
            Ok(image) => image?,
            Err(err) => {
                // Said once: the stream stops at the first error.
                self.at = self.images.len();
                return Some(Box::pin(async move { Err(err) }));
            }
        };
        let (ctx, api, set_id) = (self.ctx, self.api, self.set_id);
        Some(Box::pin(async move {
            ctx.check_cancelled()?;
            let capture_time = capture_time_override(&image);
            let name = file_name(&image).into_owned();
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
        }))
    }
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
pub fn file_name(image: &ImageInfo) -> Cow<'_, str> {
    if image.file_name.is_empty() {
        Path::new(&image.path)
            .file_name()
            .map_or(Cow::Borrowed(image.path.as_str()), |n| n.to_string_lossy())
    } else {
        Cow::Borrowed(&image.file_name)
    }
}
