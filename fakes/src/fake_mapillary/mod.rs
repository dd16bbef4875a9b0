//! A local fake of the Mapillary v4 graph API, its OAuth consent page and its resumable upload
//! service (`docs/providers/mapillary.md`), with switchable faults.
//!
//! One server answers all three roles on different path roots:
//! [`FakeMapillary::graph_url`] (`/token`, `/me`, `/finish_upload`, `/images`, `/image_ids`, ...),
//! [`FakeMapillary::upload_url`] (`/upload/{key}`) and [`FakeMapillary::authorize_url`]
//! (`/connect`). Point `MAPILLARY_GRAPH_API_ENDPOINT` and `MAPILLARY_UPLOAD_ENDPOINT` of
//! mapillary_tools at the first two and it uploads here unchanged.
//!
//! State lives in memory only. Upload bodies are streamed and hashed incrementally; the fake keeps
//! the md5 state, counters and the first 128 KiB of each entity, never the whole entity.
//!
//! Besides the real API the server answers `GET /__fake/stats` with [`MapillaryStats`] as JSON and
//! `POST /__fake/advance_clock?secs=N` (moves its clock: token and handle expiry, publication delays), for
//! callers that run the `mtp-fakes` binary out of process.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

mod check;
mod desc;
mod handlers;
pub(crate) mod server;
mod state;

pub use check::{IncompleteUpload, Received};
pub use desc::{format_capture_time, ImageMeta};

use server::{lock, Running};
use state::Shared;

/// How `POST /finish_upload` misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum FinishFault {
    /// Works: answers `{"cluster_id"}` and the images are published later.
    #[default]
    None,
    /// Answers 500 and publishes nothing.
    Fail500,
    /// Answers 500 *after* accepting: the images are published anyway. A client that retries
    /// `finish_upload` on this will publish twice.
    Fail500ButPublished,
    /// Answers `{"cluster_id"}` but the sequence never appears in `/images` (processing failed).
    AcceptedNeverPublished,
    /// Accepts (the images are published later), then drops the connection without an answer. Not a
    /// behaviour of the service but of the network between (a proxy timeout, a dropped Wi-Fi): an
    /// assumption any HTTP exchange is open to, which leaves the client unsure whether it counted.
    DroppedAnswerButPublished,
}

/// Which of the two rate-limit answers the upload service gives. Both carry
/// `{"backoff": <ms>, "debug_info": {"type": "RequestRateLimitedError", "retriable": false, ..}}`, as
/// quoted in mapillary/mapillary_tools `mapillary_tools/uploader.py` (`_is_retriable_exception`: its
/// examples and its comment "The server may respond 429 RequestRateLimitedError but with
/// retryable=False"); which status the real service uses when is not documented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum RateLimitShape {
    /// HTTP 429 with `Retry-After` and the body.
    #[default]
    Status429,
    /// HTTP 400 with the body alone (no `Retry-After`): only the body says it is a rate limit, and it
    /// says `retriable: false`.
    Status400,
}

/// Drop the client's connection after it has sent `after_bytes` bytes of an upload `POST` body.
/// The bytes received before the drop are kept (the entity's offset advances), as on the real
/// service. If the body is shorter than `after_bytes`, the connection is dropped at its end,
/// before the entity completes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ResetFault {
    /// Bytes of the body to accept before dropping the connection.
    pub after_bytes: u64,
    /// Apply to every Kth upload `POST` received, rejected ones included (1 = every POST,
    /// 0 = only by `ratio`).
    pub every_nth_post: u32,
    /// Apply at random to this fraction of upload `POST`s (in addition to `every_nth_post`).
    pub ratio: f64,
}

/// Alternate failing and healthy windows, counted from the first request after the fault is
/// set (failing first). In a failing window the
/// upload service and the graph read endpoints answer 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Flapping {
    /// Length of each healthy window.
    pub healthy_ms: u64,
    /// Length of each failing window.
    pub failing_ms: u64,
}

/// Faults, all off by default. Changeable at run time with [`FakeMapillary::set_faults`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MapillaryFaults {
    /// Seed for the random choices below; `None` seeds from the OS. With a seed and a
    /// sequential client the faults hit the same requests on every run.
    pub seed: Option<u64>,
    /// Fraction of upload-service requests (`GET`/`POST {upload}/{key}`) answered 500 or 503.
    pub upload_5xx_ratio: f64,
    /// Fraction of graph reads (`/me`, `/images`, `/image_ids`) answered 500 or 503.
    pub graph_5xx_ratio: f64,
    /// Fraction of upload-service requests answered `RequestRateLimitedError` (see `rate_limit_shape`).
    pub rate_limit_ratio: f64,
    /// `Retry-After` (seconds) of those 429s; the body's `backoff` says the same in ms.
    pub retry_after_secs: u64,
    /// Which status the rate-limit answers carry.
    pub rate_limit_shape: RateLimitShape,
    /// Drop connections mid-body.
    pub reset: Option<ResetFault>,
    /// Fraction of upload `POST`s answered 412 `OffsetInvalidError` although the offset is right.
    pub offset_mismatch_ratio: f64,
    /// The configured user token is revoked after this many successful authenticated requests.
    /// Tokens issued later by `/token` are not revoked automatically.
    pub revoke_token_after: Option<u64>,
    /// How `finish_upload` misbehaves.
    pub finish: FinishFault,
    /// Apply `finish` only to the first N `finish_upload` calls (`None` = to all).
    pub finish_fault_calls: Option<u32>,
    /// Alternating healthy/failing windows.
    pub flapping: Option<Flapping>,
    /// Upload-body bandwidth shared by all connections (bytes/s), for slow-uplink benchmarks.
    pub throttle_bytes_per_sec: Option<u64>,
    /// Added latency before every request is handled.
    pub latency_ms: u64,
    /// Further latency before `POST /finish_upload` is handled (counted on arrival, handled after it),
    /// so a test can kill a run while its publish is in flight. A test knob, not a claim about the
    /// service (how long the real `finish_upload` takes is not documented).
    pub finish_latency_ms: u64,
}

/// A published sequence seeded into the user's account at start, e.g. to overlap in time and
/// space with what a test uploads (the client must then pick the right one).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtraSequence {
    /// Capture time of the first image (ms since epoch).
    pub start_ms: i64,
    /// Capture time of the last image (ms since epoch).
    pub end_ms: i64,
    /// `[min_lon, min_lat, max_lon, max_lat]`; images lie on its diagonal.
    pub bbox: [f64; 4],
    /// Number of images (at least 1).
    pub image_count: u32,
}

/// One image of a [`MapillaryConfig::seeded_sequences`] sequence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SeededImage {
    /// Capture time (ms since epoch).
    pub captured_at_ms: i64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Configuration of a [`FakeMapillary`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MapillaryConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The user's access token. Valid from the start (tests may skip OAuth) and what `/token`
    /// issues, unless `issue_fresh_tokens` is set or it has been revoked.
    pub user_token: String,
    /// Username returned by `/me` and matched by `/images?creator_username=`.
    pub username: String,
    /// User id returned by `/me`.
    pub user_id: String,
    /// The OAuth app's client id (`/connect`, `/token`).
    pub client_id: String,
    /// The OAuth app's secret (`Authorization: OAuth <secret>` on `/token`).
    pub client_secret: String,
    /// Issue a new distinct token on every `/token` call.
    pub issue_fresh_tokens: bool,
    /// `expires_in` of issued tokens (seconds).
    pub token_expires_in: u64,
    /// A revoked token may still be exchanged through the `refresh_token` grant.
    pub revoked_tokens_refreshable: bool,
    /// The consent page redirects with `error=user_denied` instead of a code.
    pub deny_consent: bool,
    /// Time between `finish_upload` and the sequence appearing in `/images`.
    pub publish_delay: Duration,
    /// Number of `/images` requests after `finish_upload` that do not yet see the sequence.
    pub publish_after_lookups: u32,
    /// Per published upload, this many extra sequences are published alongside with images
    /// interleaved in time and space (the account has overlapping sequences).
    pub overlap_decoys: u32,
    /// Sequences already in the user's account.
    pub extra_sequences: Vec<ExtraSequence>,
    /// Sequences already in the user's account, image by image: e.g. photos uploaded earlier by another
    /// client (MTPDU with API v3, whose sequence keys live on in v4: an assumption stated by our issue
    /// tracker, not a documented API fact) at exactly the capture times and places of a new upload.
    pub seeded_sequences: Vec<Vec<SeededImage>>,
    /// Per accepted `finish_upload`, in order (0 = the first): how many `/images` requests must pass
    /// before that sequence appears, overriding `publish_after_lookups` for it. So one publication can
    /// stay invisible while an older, overlapping one is already visible, as happens on Mapillary, whose
    /// processing takes from minutes to days per sequence (Mapillary's API documentation and help centre
    /// say processing can take up to 72 h; the order is not promised).
    pub publish_after_lookups_by_call: Vec<u32>,
    /// Accept an upload `POST` whose `Offset` is below the entity's offset by skipping the
    /// overlap (counted in [`MapillaryStats::bytes_resent`]) instead of answering 412.
    pub accept_overlapping_offsets: bool,
    /// Organization ids `GET /{id}` knows (mapillary_tools' `--organization_key`).
    pub organization_ids: Vec<String>,
    /// Faults.
    pub faults: MapillaryFaults,
    /// Tokens and handles that expire (off by default).
    pub aging: AgingConfig,
}

/// Expiry of tokens and upload handles, measured on the fake's clock ([`FakeMapillary::advance_clock`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgingConfig {
    /// Lifetime of every token (the configured user token from start, issued ones from issue);
    /// `/token` answers it as `expires_in`. Mapillary's token answer carries `expires_in`
    /// (API documentation, "Authentication"; mapillary/mapillary_tools `mapillary_tools/authenticate.py`
    /// reads the token from the same answer). `None`: tokens do not expire.
    pub token_ttl: Option<Duration>,
    /// Lifetime of an upload handle, from when it was first answered; after it the entity is
    /// forgotten (see `state/aging.rs` for why this is an assumption). `None`: handles do not expire.
    pub handle_ttl: Option<Duration>,
}

impl Default for MapillaryConfig {
    fn default() -> Self {
        MapillaryConfig {
            port: 0,
            user_token: "MLY|4242424242424242|fake0user0token".to_string(),
            username: "fake_user".to_string(),
            user_id: "104200000000001".to_string(),
            client_id: "4242424242424242".to_string(),
            client_secret: "MLY|4242424242424242|fake0client0secret".to_string(),
            issue_fresh_tokens: false,
            token_expires_in: 5_184_000,
            revoked_tokens_refreshable: true,
            deny_consent: false,
            publish_delay: Duration::ZERO,
            publish_after_lookups: 0,
            overlap_decoys: 0,
            extra_sequences: Vec::new(),
            seeded_sequences: Vec::new(),
            publish_after_lookups_by_call: Vec::new(),
            accept_overlapping_offsets: false,
            organization_ids: Vec::new(),
            faults: MapillaryFaults::default(),
            aging: AgingConfig::default(),
        }
    }
}

/// What the fake concluded an entity is, once complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EntityKind {
    /// Not (yet) complete.
    Incomplete,
    /// A JPEG.
    Image,
    /// A valid `{"image_handles", "upload_type":"images", "version":"1"}` manifest.
    Manifest,
    /// Anything else (zip, video, ...): stored, but unusable in a manifest.
    Other,
}

/// One upload-service entity (session key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityStats {
    /// Bytes the server holds (the offset `GET` answers).
    pub offset: u64,
    /// All body bytes read for this key, including re-sent and discarded ones.
    pub bytes_received_total: u64,
    /// Bytes received for offsets the server already held.
    pub bytes_resent: u64,
    /// The handle, once complete.
    pub handle: Option<String>,
    /// How many `POST`s completed this entity (a client re-finishing a complete entity counts).
    pub completions: u32,
    /// Of those, completions by an empty `POST` at the end of an entity that was already complete
    /// (how a client that lost the handle fetches it again; no byte sent). Test instrumentation.
    pub refinishes: u32,
    /// Body bytes received for this key while it was complete (a client sending an acknowledged
    /// entity again, accepted or refused). Test instrumentation.
    pub bytes_after_complete: u64,
    /// Classification.
    pub kind: EntityKind,
    /// md5 of the bytes held, once complete.
    pub md5_hex: Option<String>,
    /// Capture time and position from the image's `ImageDescription`, if found.
    pub image: Option<ImageMeta>,
}

/// Where a published sequence came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SequenceOrigin {
    /// Published from an uploaded manifest.
    Upload,
    /// Pre-seeded from [`MapillaryConfig::extra_sequences`].
    Seeded,
    /// Published alongside an upload because of [`MapillaryConfig::overlap_decoys`].
    Decoy,
}

/// One image of a published sequence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublishedImage {
    /// Image id (numeric string).
    pub id: String,
    /// Upload session key it came from (uploads only).
    pub entity_key: Option<String>,
    /// Upload handle it came from (uploads only).
    pub handle: Option<String>,
    /// Capture time (ms), if known. Images without one never appear in `/images`.
    pub captured_at_ms: Option<i64>,
    /// Latitude, if known.
    pub lat: Option<f64>,
    /// Longitude, if known.
    pub lon: Option<f64>,
}

/// A sequence visible in the user's account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublishedSequence {
    /// Sequence key (22 characters, like Mapillary's).
    pub key: String,
    /// Where it came from.
    pub origin: SequenceOrigin,
    /// Manifest handle it was published from (uploads only).
    pub manifest_handle: Option<String>,
    /// `cluster_id` answered by `finish_upload` (uploads only).
    pub cluster_id: Option<String>,
    /// Images in manifest order.
    pub images: Vec<PublishedImage>,
}

/// Snapshot of everything the fake saw. Keys of `requests` are `"METHOD /route"`, e.g.
/// `"POST /upload/:key"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MapillaryStats {
    /// Upload entities by session key.
    pub entities: BTreeMap<String, EntityStats>,
    /// `finish_upload` calls per `file_handle` (including failed and unknown ones).
    pub finish_upload_calls: BTreeMap<String, u32>,
    /// `finish_upload` calls per content: the manifest's image session keys, sorted and joined with
    /// `,`. A client that uploads a fresh manifest per attempt (as mapillary_tools does) has a new
    /// handle each time, so only this count shows that the same images were published twice.
    pub finish_upload_calls_by_content: BTreeMap<String, u32>,
    /// Published sequences (seeded, uploaded and decoys) in publication order.
    pub sequences: Vec<PublishedSequence>,
    /// Accepted `finish_upload`s not yet published.
    pub pending_publications: usize,
    /// Tokens issued by `/token` and `/login`, in order.
    pub tokens_issued: Vec<String>,
    /// Requests per route.
    pub requests: BTreeMap<String, u64>,
    /// Responses per HTTP status.
    pub responses_by_status: BTreeMap<u16, u64>,
    /// All upload-body bytes read (accepted, re-sent and discarded).
    pub upload_bytes_received: u64,
    /// Upload-body bytes for offsets the server already held.
    pub bytes_resent: u64,
    /// Upload-body bytes read from rejected requests and thrown away.
    pub bytes_discarded: u64,
    /// Connections dropped by the reset fault.
    pub connections_reset: u64,
    /// 412 answers (real mismatches and injected ones).
    pub offset_mismatches: u64,
    /// Upload `POST`s still streaming a body when the snapshot was taken. Test instrumentation (lets
    /// a test wait until what a killed client left on the wire has been taken in).
    pub uploads_in_flight: usize,
    /// Injected faults that fired, by name: `upload_5xx`, `graph_5xx`, `rate_limited`,
    /// `offset_mismatch` (injected only; [`Self::offset_mismatches`] counts real ones too),
    /// `flapping`, `finish` (a [`FinishFault`] applied). Resets are [`Self::connections_reset`].
    /// Test instrumentation: lets a test prove a fault it configured actually happened.
    pub faults_fired: BTreeMap<String, u64>,
}

impl MapillaryStats {
    /// Sequences published from uploads (neither seeded nor decoys).
    pub fn uploaded_sequences(&self) -> Vec<&PublishedSequence> {
        self.sequences
            .iter()
            .filter(|s| s.origin == SequenceOrigin::Upload)
            .collect()
    }

    /// Sum of the bytes held by all entities.
    pub fn bytes_held(&self) -> u64 {
        self.entities.values().map(|e| e.offset).sum()
    }

    /// Requests seen for one route key, e.g. `stats.request_count("POST /finish_upload")`.
    pub fn request_count(&self, route: &str) -> u64 {
        self.requests.get(route).copied().unwrap_or(0)
    }
}

/// A running fake Mapillary. Dropping it stops the server.
pub struct FakeMapillary {
    shared: Arc<Shared>,
    running: Running,
}

impl FakeMapillary {
    /// Start on the current tokio runtime, bound to 127.0.0.1 (`config.port`, 0 = any).
    pub async fn start(config: MapillaryConfig) -> io::Result<FakeMapillary> {
        let listener = server::bind(config.port).await?;
        let shared = Shared::new(config, listener.local_addr()?);
        let router = handlers::router(shared.clone());
        let running = Running::spawn(listener, router)?;
        Ok(FakeMapillary { shared, running })
    }

    /// Start on a dedicated thread with its own tokio runtime, for synchronous tests and for
    /// driving a separate process under test.
    pub fn spawn_blocking_thread(config: MapillaryConfig) -> io::Result<FakeMapillary> {
        let (shared, running) = Running::spawn_thread("fake-mapillary", move || async move {
            let listener = server::bind(config.port).await?;
            let shared = Shared::new(config, listener.local_addr()?);
            let router = handlers::router(shared.clone());
            Ok((shared, listener, router))
        })?;
        Ok(FakeMapillary { shared, running })
    }

    /// `http://127.0.0.1:PORT` — the server root.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.running.addr())
    }

    /// Graph API root (`MAPILLARY_GRAPH_API_ENDPOINT`): `/token`, `/me`, `/finish_upload`, ...
    pub fn graph_url(&self) -> String {
        self.base_url()
    }

    /// Upload service root (`MAPILLARY_UPLOAD_ENDPOINT`): `GET`/`POST {upload_url}/{key}`.
    pub fn upload_url(&self) -> String {
        format!("{}/upload", self.base_url())
    }

    /// OAuth consent page: `{authorize_url}?client_id&redirect_uri&response_type=code&...`.
    pub fn authorize_url(&self) -> String {
        format!("{}/connect", self.base_url())
    }

    /// The configuration the fake started with (faults as last set).
    pub fn config(&self) -> MapillaryConfig {
        let st = lock(&self.shared.state);
        let mut cfg = self.shared.config.clone();
        cfg.faults = st.faults.clone();
        cfg
    }

    /// Snapshot of what the fake has seen so far. Publications whose delay has passed (and whose
    /// lookup count is used up) are published first.
    pub fn stats(&self) -> MapillaryStats {
        self.shared.stats()
    }

    /// Add a published sequence with exactly these images now (like
    /// [`MapillaryConfig::seeded_sequences`], mid-test); returns its key.
    pub fn seed_sequence(&self, images: &[SeededImage]) -> String {
        lock(&self.shared.state).seed_sequence(images)
    }

    /// Replace the faults from now on (the random generator is reseeded from `faults.seed`).
    pub fn set_faults(&self, faults: MapillaryFaults) {
        self.shared.set_faults(faults);
    }

    /// Revoke a token: requests with it get auth errors from now on.
    pub fn revoke_token(&self, token: &str) {
        lock(&self.shared.state).revoked.insert(token.to_string());
    }

    /// Publish every pending publication now, ignoring delay and lookup count (but not
    /// [`FinishFault::AcceptedNeverPublished`]).
    pub fn publish_now(&self) {
        lock(&self.shared.state).promote(true);
    }

    /// Moves the fake's clock forward: tokens and handles age, publication delays pass.
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.shared.state).aging.advance(by);
    }

    /// Renames the user: `/me`, `creator` fields and `creator_username` filters use the new name from
    /// now on (a Mapillary account can change its user name; the image search filters on the current one).
    pub fn rename_user(&self, username: &str) {
        *lock(&self.shared.username) = username.to_string();
    }

    /// A handle other fakes (MTPW) use to check tokens and sequences against this one.
    pub fn link(&self) -> MapillaryLink {
        MapillaryLink {
            shared: self.shared.clone(),
        }
    }

    /// Stop the server and drop open connections.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

/// A view into a running [`FakeMapillary`], for the MTPW fake: the real MTPW checks Mapillary
/// tokens and sequence keys against Mapillary.
#[derive(Clone)]
pub struct MapillaryLink {
    shared: Arc<Shared>,
}

impl MapillaryLink {
    /// Whether `token` is currently a valid user token (does not count as a request).
    pub fn token_is_valid(&self, token: &str) -> bool {
        lock(&self.shared.state).token_is_valid(token)
    }

    /// Whether a sequence with this key is published in the user's account.
    pub fn sequence_is_published(&self, key: &str) -> bool {
        let mut st = lock(&self.shared.state);
        st.promote(false);
        st.sequences.iter().any(|s| s.key == key)
    }

    /// The Mapillary username of the fake's user.
    pub fn username(&self) -> String {
        lock(&self.shared.username).clone()
    }

    /// The Mapillary user id of the fake's user.
    pub fn user_id(&self) -> String {
        self.shared.config.user_id.clone()
    }
}

impl std::fmt::Debug for MapillaryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapillaryLink")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}
