//! The JSON documents exchanged between host and plugin, one pair per [`Method`].
//!
//! Every document here is plain serde; new fields must be `#[serde(default)]` so that a plugin and a host of
//! different minor versions still understand each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sequence::SequenceDescriptor;

/// The entry points the host calls through the single `call` function of the root module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// [`SequenceDescriptor`] → [`Eligibility`].
    Eligibility,
    /// [`AuthRequest`] → [`AuthOutcome`].
    Authorize,
    /// `()` → [`AuthStatus`].
    AuthStatus,
    /// [`RunRequest`] → [`RunOutcome`].
    Run,
}

impl Method {
    /// The wire name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Eligibility => "eligibility",
            Method::Authorize => "authorize",
            Method::AuthStatus => "auth_status",
            Method::Run => "run",
        }
    }

    /// Parses a wire name; `None` for a method this version does not know.
    pub fn parse(name: &str) -> Option<Method> {
        [
            Method::Eligibility,
            Method::Authorize,
            Method::AuthStatus,
            Method::Run,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }
}

/// Whether an integration accepts a sequence, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligibility {
    /// `true` when the integration can take the sequence.
    pub eligible: bool,
    /// Why not, in words a user understands (`transport type Air/Paraglide is not accepted by Mapillary`).
    #[serde(default)]
    pub reason: Option<String>,
    /// For an eligible sequence: what must be fixed before the integration can run on it, each entry naming
    /// the fix (`MTPW needs a transport type: pass --transport`). The host checks these for every
    /// integration that will run before it sends anything (optional: older plugins send none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// For an eligible sequence: what the integration will do with it that the user may not expect,
    /// shown by `mtp sequence inspect` (`one collection, every picture kept`); never blocks (optional:
    /// older plugins send none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Eligibility {
    /// The sequence is accepted.
    pub fn eligible() -> Eligibility {
        Eligibility {
            eligible: true,
            reason: None,
            needs: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The same answer with a note for the user (see [`Eligibility::notes`]).
    pub fn with_note(mut self, note: impl Into<String>) -> Eligibility {
        self.notes.push(note.into());
        self
    }

    /// The sequence is accepted once each of `needs` is fixed (none: plainly eligible).
    pub fn eligible_once(needs: Vec<String>) -> Eligibility {
        Eligibility {
            eligible: true,
            reason: None,
            needs,
            notes: Vec::new(),
        }
    }

    /// The sequence is refused, for `reason`.
    pub fn not_eligible(reason: impl Into<String>) -> Eligibility {
        Eligibility {
            eligible: false,
            reason: Some(reason.into()),
            needs: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Ask an integration to authorise the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// A token the user already has; when set, the integration verifies and stores it instead of running the
    /// interactive flow.
    #[serde(default)]
    pub token: Option<String>,
}

/// The result of a successful authorisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOutcome {
    /// Who is now authorised (a user name, never a token).
    pub account: String,
}

/// Who is authorised, as far as the integration knows without a network call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStatus {
    /// A credential is stored.
    pub authorised: bool,
    /// The account it belongs to, when known.
    #[serde(default)]
    pub account: Option<String>,
    /// Anything else worth showing (`token stored 2026-11-25`); never the token.
    #[serde(default)]
    pub detail: Option<String>,
}

/// Why the host is calling [`Method::Run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// `mtp upload`: do whatever is left to do for the sequence.
    #[default]
    Upload,
    /// A start-up re-check of a sequence left waiting (unpublished, waiting for upstream): make only cheap,
    /// polite calls; never start an upload.
    Recheck,
}

/// Run an integration on one sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// Upload or re-check.
    #[serde(default)]
    pub mode: RunMode,
    /// The sequence, with only the images that passed validation.
    pub sequence: SequenceDescriptor,
    /// Do every step except the one that makes the result public (`--dry-run`).
    #[serde(default)]
    pub dry_run: bool,
    /// Values exported by the upstream integrations this one declared in `after`, keyed by integration id;
    /// secret exports come from the upstream's secret store as it is now (a re-authorisation applies at
    /// once).
    #[serde(default)]
    pub upstream: BTreeMap<String, Exports>,
    /// The outcome this integration reported last time for this sequence, if any.
    #[serde(default)]
    pub previous: Option<RunOutcome>,
    /// This integration's options from the command line (`{"jobs": 8}` for `--option mapillary.jobs=8`),
    /// checked by the host against [`crate::manifest::Manifest::options`]; an option not given is absent
    /// (the integration applies its default). An integration that declares no options receives the
    /// host's short flags under their names (`{"jobs": 4, "republish": false}`), as before plugin API 1.2.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// Named values an integration hands downstream (`sequence_key`, `user_token`).
pub type Exports = BTreeMap<String, String>;

/// Where a sequence stands with one integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceState {
    /// Nothing done yet.
    Pending,
    /// Some work is done and more remains (an interrupted upload).
    Uploading,
    /// Everything is sent and publishing was requested, but the provider has not made it public yet: it
    /// is still processing (Mapillary: up to 72 h). Re-checked until it is published or fails.
    Unpublished,
    /// Waiting for an upstream integration to finish (MTPW waits for Mapillary's sequence key).
    Waiting,
    /// Done; `keys` holds what identifies it at the provider.
    Published,
    /// A dry run finished: everything but publishing was done.
    DryRun,
    /// The outcome of publishing is unknown (the request left, no answer came); the user decides.
    Unknown,
    /// It failed and retrying as it is cannot help; `message` says why.
    ///
    /// The one rule (the host's part is `mtp_host::runner::failed_outcome`): a sequence is `failed` with an
    /// integration when the integration reports this state itself (Mapillary: an upload step failed,
    /// or the publish deadline passed), or when its run ends in an error of kind
    /// [`crate::ErrorKind::Rejected`] or [`crate::ErrorKind::InvalidInput`], which the host records as
    /// `failed`. Any other error leaves the previous state standing, with the error beside it. The record
    /// is kept (so `mtp status` says why); the next `mtp upload` runs the integration again with it as
    /// [`RunRequest::previous`], and the integration starts over whatever it cleared. Re-checks skip it.
    Failed,
}

impl SequenceState {
    /// A state that needs no further run.
    pub fn is_final(self) -> bool {
        matches!(self, SequenceState::Published | SequenceState::Failed)
    }

    /// A state the host re-checks on every `mtp upload` and `mtp status` ([`RunMode::Recheck`]): the
    /// provider is still processing, an upstream integration has not finished, or a publish's outcome
    /// is unknown.
    pub fn needs_recheck(self) -> bool {
        matches!(
            self,
            SequenceState::Unpublished | SequenceState::Waiting | SequenceState::Unknown
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SequenceState::Pending => "pending",
            SequenceState::Uploading => "uploading",
            SequenceState::Unpublished => "unpublished",
            SequenceState::Waiting => "waiting",
            SequenceState::Published => "published",
            SequenceState::DryRun => "dry_run",
            SequenceState::Unknown => "unknown",
            SequenceState::Failed => "failed",
        }
    }
}

/// What a run achieved; the host stores it as the sequence's record for this integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Where the sequence now stands.
    pub state: SequenceState,
    /// A sentence for the user (`published as sequence abc`, `Mapillary is still processing`).
    #[serde(default)]
    pub message: Option<String>,
    /// Identifiers at the provider, shown by `mtp status` (`sequence_key`, `unique_id`).
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// Values for downstream integrations; never shown to the user. Those the manifest lists in
    /// [`crate::manifest::Manifest::secret_exports`] are removed by the host before the record is stored
    /// and handed downstream fresh from the integration's secret store instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exports: Exports,
    /// Files and bytes done out of the total, when meaningful.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// What the user or the next run should do (`run mtp upload again`, `re-authorise with mtp auth mapillary`).
    #[serde(default)]
    pub next_action: Option<String>,
    /// The stored sequence (its id) whose photos these are, recognised by content: this folder is that
    /// sequence moved, renamed or copied (or, naming this sequence itself, its photos found at new
    /// paths), and nothing was sent. The host then keeps one sequence under that id, at this folder, and
    /// does not call the integrations that already published it (docs/architecture.md, "Identity"). Optional: a host that does not know
    /// it ignores it, and the folder is then a sequence of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    /// Pages where the user sees what the integration made (the sequence on Mapillary, the activity on
    /// Strava): `mtp status --json`, `mtp upload --json` and the page show them without knowing the
    /// provider. Optional: a host that does not know it ignores it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A page at the provider, for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What the page shows, in a few words (`sequence abc on Mapillary`).
    pub label: String,
    /// Its address.
    pub url: String,
}

impl Link {
    /// A link to `url` called `label`.
    pub fn new(label: impl Into<String>, url: impl Into<String>) -> Link {
        Link {
            label: label.into(),
            url: url.into(),
        }
    }
}

impl RunOutcome {
    /// An outcome in `state` with a message.
    pub fn new(state: SequenceState, message: impl Into<String>) -> RunOutcome {
        RunOutcome {
            state,
            message: Some(message.into()),
            keys: BTreeMap::new(),
            exports: BTreeMap::new(),
            progress: None,
            next_action: None,
            same_as: None,
            links: Vec::new(),
        }
    }
}

/// Done / total counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Files finished.
    pub files_done: u64,
    /// Files in all.
    pub files_total: u64,
    /// Bytes acknowledged by the provider.
    pub bytes_done: u64,
    /// Bytes in all.
    pub bytes_total: u64,
}

impl Progress {
    /// The [`ProgressEvent::Totals`] announcing these counters at the start of a run.
    pub fn totals_event(&self) -> ProgressEvent {
        ProgressEvent::Totals {
            files_total: self.files_total,
            bytes_total: self.bytes_total,
            files_done: self.files_done,
            bytes_done: self.bytes_done,
        }
    }
}

/// A progress event a plugin sends to the host while it runs (shown as a bar, or as JSON lines with `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A named step begins (`authorise`, `upload`, `publish`, `lookup`).
    Step {
        /// The step's name.
        step: String,
        /// Details for the user.
        #[serde(default)]
        message: Option<String>,
    },
    /// The amount of work is known; `done` counts what an earlier run already finished.
    Totals {
        /// Files in all.
        files_total: u64,
        /// Bytes in all.
        bytes_total: u64,
        /// Files already done.
        #[serde(default)]
        files_done: u64,
        /// Bytes already done.
        #[serde(default)]
        bytes_done: u64,
    },
    /// More work is done (increments, not totals).
    Advance {
        /// Bytes acknowledged since the last event.
        #[serde(default)]
        bytes: u64,
        /// Files finished since the last event.
        #[serde(default)]
        files: u64,
    },
    /// Something worth telling the user that is not an error (`retrying in 4 s after HTTP 503`).
    Note {
        /// The sentence.
        message: String,
    },
    /// Where the sequence stands while the run goes on, for the host to record at once (a run killed
    /// now leaves this as the sequence's record). Steps are words for the user; phases are what the host
    /// reads (protocol 1.3; a host older than it ignores the event).
    Phase {
        /// The phase entered.
        phase: Phase,
    },
}

/// What a run is doing, as far as the sequence's state goes (see [`ProgressEvent::Phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Data is being sent; what the service acknowledged is never sent again, so a killed run resumes.
    Sending,
    /// A request that publishes is on its way: a run killed now leaves the outcome unknown, and the
    /// plugin promises that its next run looks at the service before publishing again.
    Publishing,
    /// Published; the service's identifier for it is being looked up.
    LookingUp,
    /// A phase of a newer protocol: says nothing this host can record.
    #[serde(other)]
    Other,
}

/// A log record's level, as forwarded to the host's `tracing` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LogLevel {
    /// Something failed.
    Error = 1,
    /// Something looks wrong.
    Warn = 2,
    /// Normal progress.
    Info = 3,
    /// Detail for developers.
    Debug = 4,
    /// Very fine detail.
    Trace = 5,
}

impl LogLevel {
    /// From the wire byte; unknown values are treated as `Info`.
    pub fn from_u8(value: u8) -> LogLevel {
        match value {
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            4 => LogLevel::Debug,
            5 => LogLevel::Trace,
            _ => LogLevel::Info,
        }
    }
}

/// What a plugin asks the host to do when it needs the user to visit an authorisation page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizePrompt {
    /// The page to open in a browser.
    pub url: String,
    /// The redirect URI registered with the provider; when it is a loopback `http://127.0.0.1:<port>/...` URL
    /// the host listens there, otherwise it asks the user to paste the URL they were redirected to.
    pub redirect_uri: String,
    /// The provider's name, for the prompt.
    pub provider: String,
}

/// The [`crate::ffi::HostServices::extension`] method that commits several state writes in one
/// transaction ([`crate::sdk::State::write_all`]); its payload is a JSON array of [`StateWrite`] and
/// its answer is empty. Since plugin API 1.3.
pub const STATE_BATCH_SERVICE: &str = "state_batch";

/// The [`crate::ffi::HostServices::extension`] method that reads several state values in one call
/// ([`crate::sdk::State::get_many`]); its payload is a [`StateReads`] and its answer a [`StateValues`].
/// Since plugin API 1.5: a plugin that needs a part of many per-image records reads just those keys
/// instead of listing a whole prefix. On a host without it the SDK asks for one key at a time.
pub const STATE_READ_SERVICE: &str = "state_get_many";

/// The most keys a host answers in one [`STATE_READ_SERVICE`] call (it answers the first this many of
/// a longer request, and the SDK never asks for more at once), and the most entries of one
/// [`STATE_PAGE_SERVICE`] page.
pub const MAX_STATE_READS: usize = 1_000;

/// The most bytes (keys and values) one [`STATE_PAGE_SERVICE`] page holds past its first entry: a page
/// ends at [`MAX_STATE_READS`] entries or once it holds this many bytes, whichever comes first, so that
/// a walk past records of tens of kilobytes each (Mapillary's stored plan, a part's paths) holds a few
/// of them at once, not a thousand. A page is the last only when it is empty.
pub const MAX_STATE_PAGE_BYTES: usize = 256 * 1024;

/// A page of `entries` (in key order): at most `limit` of them, ending after the entry that brings
/// their keys and values to `max_bytes` (so a page always holds one entry when there is one). The host
/// answers [`STATE_PAGE_SERVICE`] with `limit` [`MAX_STATE_READS`] and `max_bytes`
/// [`MAX_STATE_PAGE_BYTES`]; the SDK's test host answers the same way.
pub fn state_page<E>(
    entries: impl IntoIterator<Item = Result<(String, String), E>>,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<(String, String)>, E> {
    let (mut page, mut bytes) = (Vec::new(), 0);
    for entry in entries.into_iter().take(limit) {
        if bytes >= max_bytes {
            break;
        }
        let (key, value) = entry?;
        bytes += key.len() + value.len();
        page.push((key, value));
    }
    Ok(page)
}

/// The keys a [`STATE_READ_SERVICE`] call reads (borrowed when the SDK sends them, owned when the host
/// reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReads<'k> {
    /// The keys, in the order their values are wanted.
    pub keys: std::borrow::Cow<'k, [String]>,
}

/// The answer to a [`STATE_READ_SERVICE`] call: one value per key asked, in the same order, `None`
/// where the key holds nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateValues {
    /// The values.
    pub values: Vec<Option<String>>,
}

/// The [`crate::ffi::HostServices::extension`] method that reads a page of the entries under a prefix
/// ([`crate::sdk::State::for_each_entry`]); its payload is a [`StatePageRequest`] and its answer a
/// [`StatePage`]. Since plugin API 1.5: a plugin that looks through a prefix holding many entries
/// (every sequence's per-image records) holds one page at a time instead of all of them. On a host
/// without it the SDK lists the whole prefix at once.
pub const STATE_PAGE_SERVICE: &str = "state_list_page";

/// Which page of entries to read: those whose key starts with `prefix` and comes after `after` (from
/// the first when `None`), in key order, at most [`MAX_STATE_READS`] of them and about
/// [`MAX_STATE_PAGE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePageRequest {
    /// The prefix.
    pub prefix: String,
    /// The last key of the previous page.
    #[serde(default)]
    pub after: Option<String>,
}

/// The answer to a [`STATE_PAGE_SERVICE`] call: up to [`MAX_STATE_READS`] entries (key, value) in key
/// order, fewer once they reach [`MAX_STATE_PAGE_BYTES`]; empty once there are no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePage {
    /// The entries.
    pub entries: Vec<(String, String)>,
}

/// The [`crate::ffi::HostServices::extension`] method that reads a range of the sequence's images, for a
/// call whose sequence came without them ([`PagedSequence`]); its payload is an [`ImageRange`] and its
/// answer a JSON array of [`crate::sequence::ImageInfo`]. Since plugin API 1.4: a host sends a
/// 1.4 plugin the sequence's header and lends it the images page by page, so neither side holds the
/// whole list as one document (100,000 images are 35 MB of JSON); a plugin of an older protocol gets
/// the whole document as before.
pub const IMAGES_SERVICE: &str = "sequence_images";

/// The largest range a host answers in one [`IMAGES_SERVICE`] call; larger requests get this many.
pub const MAX_IMAGE_RANGE: u64 = 10_000;

/// Which images to read: `count` of them from index `from` (in capture order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRange {
    /// The index of the first image.
    pub from: u64,
    /// How many (at most [`MAX_IMAGE_RANGE`]; fewer at the end of the sequence).
    pub count: u64,
}

impl ImageRange {
    /// The indices a host answers for this range in a list of `len` images: capped at
    /// [`MAX_IMAGE_RANGE`], and empty past the end.
    pub fn within(&self, len: usize) -> std::ops::Range<usize> {
        let len = len as u64;
        let from = self.from.min(len);
        let end = from
            .saturating_add(self.count.min(MAX_IMAGE_RANGE))
            .min(len);
        from as usize..end as usize
    }
}

/// A sequence as a host of plugin API 1.4 or later sends it to a plugin of 1.4 or later: the
/// descriptor's fields with `images` left empty, and how many images the host lends through
/// [`IMAGES_SERVICE`]. The SDK reads its count through [`ImageCount`]; an older plugin never receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PagedSequence {
    /// The descriptor without its images.
    #[serde(flatten)]
    pub header: crate::sequence::SequenceDescriptor,
    /// How many images the host lends.
    pub image_count: u64,
}

/// Where [`PagedSequence::image_count`] sits in a request (the eligibility request's top level, a run
/// request's `sequence`), read apart from the descriptor so an old descriptor type needs no new field.
#[derive(Debug, Default, Deserialize)]
pub struct ImageCount {
    /// Present only in a paged sequence.
    #[serde(default)]
    pub image_count: Option<u64>,
}

/// The beginning of the error a host gives for an extension service it does not provide (the default
/// body of [`crate::ffi::HostServices::extension`]); the SDK then falls back to one call per write (or
/// per read).
pub const UNKNOWN_SERVICE_ERROR: &str = "this host does not provide the service";

/// One write of a batch of state writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StateWrite {
    /// Stores `value` at `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes `key` (nothing happens when it is absent).
    Delete {
        /// The key.
        key: String,
    },
}

impl StateWrite {
    /// Stores `value` at `key` as JSON.
    pub fn put_json<T: Serialize>(key: impl Into<String>, value: &T) -> serde_json::Result<Self> {
        Ok(StateWrite::Put {
            key: key.into(),
            value: serde_json::to_string(value)?,
        })
    }

    /// Removes `key`.
    pub fn delete(key: impl Into<String>) -> StateWrite {
        StateWrite::Delete { key: key.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_travel_typed_and_an_unknown_one_is_other() {
        let event = ProgressEvent::Phase {
            phase: Phase::Publishing,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"event":"phase","phase":"publishing"}"#);
        assert_eq!(serde_json::from_str::<ProgressEvent>(&json).unwrap(), event);
        // A phase of a newer protocol still reads (as one this host cannot record).
        assert_eq!(
            serde_json::from_str::<ProgressEvent>(r#"{"event":"phase","phase":"indexing"}"#)
                .unwrap(),
            ProgressEvent::Phase {
                phase: Phase::Other
            }
        );
    }

    #[test]
    fn links_are_optional_on_the_wire() {
        let old: RunOutcome = serde_json::from_str(r#"{"state":"published"}"#).unwrap();
        assert!(old.links.is_empty());
        let mut outcome = RunOutcome::new(SequenceState::Published, "done");
        assert!(!serde_json::to_string(&outcome).unwrap().contains("links"));
        outcome
            .links
            .push(Link::new("activity 7 on Strava", "https://s/a/7"));
        let json = serde_json::to_string(&outcome).unwrap();
        assert!(
            json.contains(r#""links":[{"label":"activity 7 on Strava","url":"https://s/a/7"}]"#)
        );
    }
}
