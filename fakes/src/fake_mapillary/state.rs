//! In-memory state of the fake Mapillary: tokens, upload entities, publications.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::desc::{find_image_meta, ImageMeta};

mod aging;
use super::server::lock;
use super::{
    EntityKind, EntityStats, FinishFault, MapillaryConfig, MapillaryFaults, MapillaryStats,
    PublishedImage, PublishedSequence, SequenceOrigin,
};
use aging::Aging;

/// Prefix kept of binary entities: enough for the EXIF APP1 segment holding ImageDescription.
const IMAGE_PREFIX_CAP: usize = 128 * 1024;
/// Prefix kept of entities that start like JSON, so manifests can be read whole.
const JSON_PREFIX_CAP: usize = 4 * 1024 * 1024;

pub(crate) struct Shared {
    pub config: MapillaryConfig,
    pub base_url: String,
    pub state: Mutex<State>,
    /// The user's current name (tests may rename the user: [`super::FakeMapillary::rename_user`]).
    /// Locked on its own, never while waiting for `state`.
    pub username: Mutex<String>,
    /// When the shared upload "uplink" is next free (throttle fault).
    throttle_next: Mutex<Instant>,
}

impl Shared {
    pub fn new(config: MapillaryConfig, addr: SocketAddr) -> Arc<Shared> {
        let state = State::new(&config);
        Arc::new(Shared {
            base_url: format!("http://{addr}"),
            state: Mutex::new(state),
            username: Mutex::new(config.username.clone()),
            throttle_next: Mutex::new(Instant::now()),
            config,
        })
    }

    pub fn stats(&self) -> MapillaryStats {
        let mut st = lock(&self.state);
        st.promote(false);
        st.snapshot()
    }

    pub fn set_faults(&self, faults: MapillaryFaults) {
        let mut st = lock(&self.state);
        st.rng = make_rng(faults.seed);
        st.graph_rng = make_rng(faults.seed.map(graph_seed));
        st.faults = faults;
        st.flap_epoch = None;
    }

    /// Pace upload bytes to the configured bandwidth, shared by all connections.
    pub async fn throttle(&self, n: usize) {
        let rate = lock(&self.state).faults.throttle_bytes_per_sec;
        let Some(rate) = rate.filter(|r| *r > 0) else {
            return;
        };
        let until = {
            let mut next = lock(&self.throttle_next);
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

/// The graph reads' own seed, derived from the faults' seed: graph and upload-service faults draw from
/// two streams, so a client that sends a graph read beside an upload request (Mapillary's look before
/// sending goes out with the first offset request) meets the same faults on every run whichever
/// arrives first (test instrumentation, no claim about the service).
fn graph_seed(seed: u64) -> u64 {
    seed ^ 0x9e37_79b9_7f4a_7c15
}

fn make_rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    }
}

pub(crate) struct Entity {
    offset: u64,
    received_total: u64,
    resent: u64,
    busy: bool,
    /// Taken out by the upload in progress (`busy`), so hashing happens outside the lock.
    md5: Option<md5::Context>,
    prefix: Vec<u8>,
    handle: String,
    complete: bool,
    completions: u32,
    /// Test instrumentation: completions by an empty `POST` on an already complete entity.
    refinishes: u32,
    /// Test instrumentation: body bytes received while the entity was complete.
    bytes_after_complete: u64,
    kind: EntityKind,
    md5_hex: Option<String>,
    image: Option<ImageMeta>,
}

impl Entity {
    fn new(handle: String) -> Entity {
        Entity {
            offset: 0,
            received_total: 0,
            resent: 0,
            busy: false,
            md5: Some(md5::Context::new()),
            prefix: Vec::new(),
            handle,
            complete: false,
            completions: 0,
            refinishes: 0,
            bytes_after_complete: 0,
            kind: EntityKind::Incomplete,
            md5_hex: None,
            image: None,
        }
    }

    fn reset_content(&mut self) {
        self.offset = 0;
        self.md5 = Some(md5::Context::new());
        self.prefix.clear();
        self.complete = false;
        self.kind = EntityKind::Incomplete;
        self.md5_hex = None;
        self.image = None;
    }
}

struct Pending {
    manifest_handle: String,
    cluster_id: String,
    images: Vec<(String, String, Option<ImageMeta>)>,
    ready_at: Instant,
    lookups_remaining: u32,
    never: bool,
}

/// Which fault, if any, a request draws.
pub(crate) enum Injected {
    Status5xx(u16),
    RateLimited,
    OffsetMismatch,
    Flapping,
}

pub(crate) struct State {
    pub faults: MapillaryFaults,
    /// When the flapping fault's windows began: at the first request after the fault was set,
    /// so a run always meets a failing window first (test instrumentation, no real behaviour).
    flap_epoch: Option<Instant>,
    rng: StdRng,
    /// The graph reads' fault draws (see [`graph_seed`]).
    graph_rng: StdRng,
    user_token: String,
    issue_fresh_tokens: bool,
    client_id: String,
    publish_delay: Duration,
    publish_after_lookups: u32,
    publish_after_lookups_by_call: Vec<u32>,
    publications_queued: usize,
    overlap_decoys: u32,
    valid_tokens: HashSet<String>,
    pub revoked: HashSet<String>,
    user_token_uses: u64,
    fresh_tokens: u64,
    codes: HashMap<String, String>,
    entities: HashMap<String, Entity>,
    /// handle -> session key
    handles: HashMap<String, String>,
    finish_calls: BTreeMap<String, u32>,
    finish_calls_by_content: BTreeMap<String, u32>,
    finish_accepted: u32,
    pending: Vec<Pending>,
    pub sequences: Vec<PublishedSequence>,
    image_ids: HashSet<String>,
    tokens_issued: Vec<String>,
    requests: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    upload_posts: u64,
    pub upload_bytes_received: u64,
    pub bytes_resent: u64,
    pub bytes_discarded: u64,
    pub connections_reset: u64,
    pub offset_mismatches: u64,
    /// Test instrumentation: injected faults by name (see [`MapillaryStats::faults_fired`]).
    faults_fired: BTreeMap<&'static str, u64>,
    /// The fake's clock, token and handle expiry (`state/aging.rs`).
    pub aging: Aging,
}

impl State {
    fn new(cfg: &MapillaryConfig) -> State {
        let mut st = State {
            faults: cfg.faults.clone(),
            flap_epoch: None,
            rng: make_rng(cfg.faults.seed),
            graph_rng: make_rng(cfg.faults.seed.map(graph_seed)),
            user_token: cfg.user_token.clone(),
            issue_fresh_tokens: cfg.issue_fresh_tokens,
            client_id: cfg.client_id.clone(),
            publish_delay: cfg.publish_delay,
            publish_after_lookups: cfg.publish_after_lookups,
            publish_after_lookups_by_call: cfg.publish_after_lookups_by_call.clone(),
            publications_queued: 0,
            overlap_decoys: cfg.overlap_decoys,
            valid_tokens: HashSet::from([cfg.user_token.clone()]),
            revoked: HashSet::new(),
            user_token_uses: 0,
            fresh_tokens: 0,
            codes: HashMap::new(),
            entities: HashMap::new(),
            handles: HashMap::new(),
            finish_calls: BTreeMap::new(),
            finish_calls_by_content: BTreeMap::new(),
            finish_accepted: 0,
            pending: Vec::new(),
            sequences: Vec::new(),
            image_ids: HashSet::new(),
            tokens_issued: Vec::new(),
            requests: BTreeMap::new(),
            statuses: BTreeMap::new(),
            upload_posts: 0,
            upload_bytes_received: 0,
            bytes_resent: 0,
            bytes_discarded: 0,
            connections_reset: 0,
            offset_mismatches: 0,
            faults_fired: BTreeMap::new(),
            aging: Aging::new(&cfg.aging, &cfg.user_token),
        };
        for extra in &cfg.extra_sequences {
            let n = extra.image_count.max(1);
            let images = (0..n)
                .map(|i| {
                    let f = if n == 1 {
                        0.0
                    } else {
                        f64::from(i) / f64::from(n - 1)
                    };
                    let t = extra.start_ms + ((extra.end_ms - extra.start_ms) as f64 * f) as i64;
                    let [min_lon, min_lat, max_lon, max_lat] = extra.bbox;
                    PublishedImage {
                        id: st.new_image_id(),
                        entity_key: None,
                        handle: None,
                        captured_at_ms: Some(t),
                        lat: Some(min_lat + (max_lat - min_lat) * f),
                        lon: Some(min_lon + (max_lon - min_lon) * f),
                    }
                })
                .collect();
            let key = st.new_sequence_key();
            st.sequences.push(PublishedSequence {
                key,
                origin: SequenceOrigin::Seeded,
                manifest_handle: None,
                cluster_id: None,
                images,
            });
        }
        for seeded in &cfg.seeded_sequences {
            st.seed_sequence(seeded);
        }
        st
    }

    /// Adds a published sequence with exactly these images (see `MapillaryConfig::seeded_sequences`).
    pub fn seed_sequence(&mut self, images: &[super::SeededImage]) -> String {
        let images = images
            .iter()
            .map(|i| PublishedImage {
                id: self.new_image_id(),
                entity_key: None,
                handle: None,
                captured_at_ms: Some(i.captured_at_ms),
                lat: Some(i.lat),
                lon: Some(i.lon),
            })
            .collect();
        let key = self.new_sequence_key();
        self.sequences.push(PublishedSequence {
            key: key.clone(),
            origin: SequenceOrigin::Seeded,
            manifest_handle: None,
            cluster_id: None,
            images,
        });
        key
    }

    pub fn random_string(&mut self, len: usize) -> String {
        (&mut self.rng)
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }

    pub fn random_digits(&mut self, len: usize) -> String {
        let first = self.rng.gen_range(1..=9u8);
        let mut s = first.to_string();
        for _ in 1..len {
            s.push(char::from(b'0' + self.rng.gen_range(0..=9u8)));
        }
        s
    }

    fn new_image_id(&mut self) -> String {
        loop {
            let id = self.random_digits(15);
            if self.image_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn new_sequence_key(&mut self) -> String {
        self.random_string(22)
    }

    /// Count a request; returns the latency (ms) the latency fault adds to it.
    pub fn count_request(&mut self, route: String) -> u64 {
        let extra = if route == "POST /finish_upload" {
            self.faults.finish_latency_ms
        } else {
            0
        };
        *self.requests.entry(route).or_default() += 1;
        self.expire_aged_handles();
        self.faults.latency_ms + extra
    }

    pub fn count_status(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    // ---- tokens -------------------------------------------------------------------------

    pub fn token_is_valid(&self, token: &str) -> bool {
        self.valid_tokens.contains(token)
            && !self.revoked.contains(token)
            && !self.aging.token_expired(token)
    }

    /// Check a token for a request; counts the use towards `revoke_token_after`.
    pub fn authenticate(&mut self, token: Option<&str>) -> bool {
        let Some(token) = token else {
            return false;
        };
        if !self.token_is_valid(token) {
            return false;
        }
        if token == self.user_token {
            self.user_token_uses += 1;
            if let Some(n) = self.faults.revoke_token_after {
                if self.user_token_uses >= n {
                    self.revoked.insert(token.to_string());
                }
            }
        }
        true
    }

    pub fn was_issued(&self, token: &str) -> bool {
        self.valid_tokens.contains(token)
    }

    pub fn issue_token(&mut self) -> String {
        let token = if !self.issue_fresh_tokens && !self.revoked.contains(&self.user_token) {
            self.user_token.clone()
        } else {
            self.fresh_tokens += 1;
            let tail = self.random_string(24);
            format!("MLY|{}|{}{}", self.client_id, self.fresh_tokens, tail)
        };
        self.valid_tokens.insert(token.clone());
        self.aging.note_token(&token);
        self.tokens_issued.push(token.clone());
        token
    }

    pub fn new_code(&mut self, client_id: &str) -> String {
        let code = format!("AQ{}", self.random_string(40));
        self.codes.insert(code.clone(), client_id.to_string());
        code
    }

    /// Codes are single-use.
    pub fn take_code(&mut self, code: &str) -> Option<String> {
        self.codes.remove(code)
    }

    // ---- faults -------------------------------------------------------------------------

    /// Whether we are inside a failing window of the flapping fault. The windows are counted
    /// from the first request that asks, failing window first: a run that started at an
    /// arbitrary moment of a wall-clock cycle could fit in one healthy window and prove nothing.
    pub fn flapping_now(&mut self) -> bool {
        let Some(f) = self.faults.flapping else {
            return false;
        };
        let period = f.healthy_ms + f.failing_ms;
        if period == 0 || f.failing_ms == 0 {
            return false;
        }
        let epoch = *self.flap_epoch.get_or_insert_with(Instant::now);
        let t = epoch.elapsed().as_millis() as u64 % period;
        t < f.failing_ms
    }

    /// Draw the fault for one upload-service request.
    pub fn upload_fault(&mut self, flapping: bool, is_post: bool) -> Option<Injected> {
        let fault = self.draw_upload_fault(flapping, is_post);
        if let Some(f) = &fault {
            self.count_fault(match f {
                Injected::Status5xx(_) => "upload_5xx",
                Injected::RateLimited => "rate_limited",
                Injected::OffsetMismatch => "offset_mismatch",
                Injected::Flapping => "flapping",
            });
        }
        fault
    }

    /// Count one injected fault (test instrumentation).
    pub fn count_fault(&mut self, name: &'static str) {
        *self.faults_fired.entry(name).or_default() += 1;
    }

    fn draw_upload_fault(&mut self, flapping: bool, is_post: bool) -> Option<Injected> {
        if flapping {
            return Some(Injected::Flapping);
        }
        let f = self.faults.clone();
        if f.upload_5xx_ratio > 0.0 && self.rng.gen::<f64>() < f.upload_5xx_ratio {
            let code = if self.rng.gen::<bool>() { 500 } else { 503 };
            return Some(Injected::Status5xx(code));
        }
        if f.rate_limit_ratio > 0.0 && self.rng.gen::<f64>() < f.rate_limit_ratio {
            return Some(Injected::RateLimited);
        }
        if is_post
            && f.offset_mismatch_ratio > 0.0
            && self.rng.gen::<f64>() < f.offset_mismatch_ratio
        {
            return Some(Injected::OffsetMismatch);
        }
        None
    }

    /// Draw the fault for one graph read.
    pub fn graph_fault(&mut self, flapping: bool) -> Option<Injected> {
        if flapping {
            self.count_fault("flapping");
            return Some(Injected::Flapping);
        }
        let ratio = self.faults.graph_5xx_ratio;
        if ratio > 0.0 && self.graph_rng.gen::<f64>() < ratio {
            self.count_fault("graph_5xx");
            let code = if self.graph_rng.gen::<bool>() {
                500
            } else {
                503
            };
            return Some(Injected::Status5xx(code));
        }
        None
    }

    /// Count an upload POST and decide whether the reset fault hits it; returns the byte limit.
    pub fn next_post_reset(&mut self) -> Option<u64> {
        self.upload_posts += 1;
        let r = self.faults.reset?;
        let nth = r.every_nth_post > 0
            && self
                .upload_posts
                .is_multiple_of(u64::from(r.every_nth_post));
        let random = r.ratio > 0.0 && self.rng.gen::<f64>() < r.ratio;
        (nth || random).then_some(r.after_bytes)
    }

    // ---- uploads ------------------------------------------------------------------------

    pub fn entity_offset(&self, key: &str) -> u64 {
        self.entities.get(key).map_or(0, |e| e.offset)
    }

    /// Account for body bytes read from a rejected request.
    pub fn discard(&mut self, key: Option<&str>, bytes: u64, resent: u64) {
        self.upload_bytes_received += bytes;
        self.bytes_discarded += bytes;
        self.bytes_resent += resent;
        if let Some(e) = key.and_then(|k| self.entities.get_mut(k)) {
            e.received_total += bytes;
            e.resent += resent;
            if e.complete {
                e.bytes_after_complete += bytes;
            }
        }
    }

    // ---- publication --------------------------------------------------------------------

    /// Record a `finish_upload` call; returns the number of calls for this handle so far.
    pub fn count_finish(&mut self, handle: &str) -> u32 {
        if let Some(mut keys) = self
            .handles
            .get(handle)
            .and_then(|k| self.entities.get(k))
            .and_then(|e| manifest_handles(&e.prefix))
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| self.handles.get(h).cloned())
                    .collect::<Vec<_>>()
            })
        {
            keys.sort();
            *self
                .finish_calls_by_content
                .entry(keys.join(","))
                .or_default() += 1;
        }
        let n = self.finish_calls.entry(handle.to_string()).or_default();
        *n += 1;
        *n
    }

    /// The fault that applies to the next accepted `finish_upload`.
    pub fn finish_fault(&mut self) -> FinishFault {
        self.finish_accepted += 1;
        let fault = match self.faults.finish_fault_calls {
            Some(n) if self.finish_accepted > n => FinishFault::None,
            _ => self.faults.finish,
        };
        if fault != FinishFault::None {
            self.count_fault("finish");
        }
        fault
    }

    /// The completed entity behind a handle, with its kind.
    pub fn completed_entity_kind(&self, handle: &str) -> Option<EntityKind> {
        let key = self.handles.get(handle)?;
        let e = self.entities.get(key)?;
        e.complete.then_some(e.kind)
    }

    /// Queue the publication of a manifest's images; returns the cluster id.
    pub fn queue_publication(&mut self, manifest_handle: &str, never: bool) -> String {
        let cluster_id = self.random_digits(16);
        let queued = self.publications_queued;
        self.publications_queued += 1;
        let images = self
            .handles
            .get(manifest_handle)
            .and_then(|k| self.entities.get(k))
            .and_then(|e| manifest_handles(&e.prefix))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| {
                let key = self.handles.get(&h)?;
                let e = self.entities.get(key)?;
                Some((key.clone(), h, e.image.clone()))
            })
            .collect();
        self.pending.push(Pending {
            manifest_handle: manifest_handle.to_string(),
            cluster_id: cluster_id.clone(),
            images,
            ready_at: self.aging.now() + self.publish_delay,
            lookups_remaining: self
                .publish_after_lookups_by_call
                .get(queued)
                .copied()
                .unwrap_or(self.publish_after_lookups),
            never,
        });
        cluster_id
    }

    /// An `/images` lookup: publications still counting lookups don't see this one.
    pub fn count_lookup(&mut self) {
        for p in &mut self.pending {
            if p.lookups_remaining > 0 {
                p.lookups_remaining -= 1;
            }
        }
    }

    /// Publish what is due (everything not marked "never" when `force`).
    pub fn promote(&mut self, force: bool) {
        let now = self.aging.now();
        let (due, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| !p.never && (force || (p.lookups_remaining == 0 && now >= p.ready_at)));
        self.pending = rest;
        for p in due {
            self.publish(p);
        }
    }

    fn publish(&mut self, p: Pending) {
        let images: Vec<PublishedImage> = p
            .images
            .iter()
            .map(|(key, handle, meta)| PublishedImage {
                id: self.new_image_id(),
                entity_key: Some(key.clone()),
                handle: Some(handle.clone()),
                captured_at_ms: meta.as_ref().map(|m| m.captured_at_ms),
                lat: meta.as_ref().map(|m| m.lat),
                lon: meta.as_ref().map(|m| m.lon),
            })
            .collect();
        let key = self.new_sequence_key();
        let decoy_source: Vec<(i64, f64, f64)> = images
            .iter()
            .filter_map(|i| Some((i.captured_at_ms?, i.lat?, i.lon?)))
            .collect();
        self.sequences.push(PublishedSequence {
            key,
            origin: SequenceOrigin::Upload,
            manifest_handle: Some(p.manifest_handle),
            cluster_id: Some(p.cluster_id),
            images,
        });
        if decoy_source.is_empty() {
            return;
        }
        // Decoys sit between the real images in time and space, so a time-window + bbox query
        // returns them too and only exact capture times tell the sequences apart.
        let step = if decoy_source.len() > 1 {
            ((decoy_source[decoy_source.len() - 1].0 - decoy_source[0].0)
                / (decoy_source.len() as i64 - 1)
                / 2)
            .max(1)
        } else {
            500
        };
        for d in 0..self.overlap_decoys {
            let shift = step * i64::from(d + 1) / i64::from(self.overlap_decoys + 1) + 1;
            let images = decoy_source
                .iter()
                .map(|&(t, lat, lon)| PublishedImage {
                    id: self.new_image_id(),
                    entity_key: None,
                    handle: None,
                    captured_at_ms: Some(t + shift),
                    lat: Some(lat + 1e-6),
                    lon: Some(lon + 1e-6),
                })
                .collect();
            let key = self.new_sequence_key();
            self.sequences.push(PublishedSequence {
                key,
                origin: SequenceOrigin::Decoy,
                manifest_handle: None,
                cluster_id: None,
                images,
            });
        }
    }

    pub fn snapshot(&self) -> MapillaryStats {
        MapillaryStats {
            entities: self
                .entities
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        EntityStats {
                            offset: e.offset,
                            bytes_received_total: e.received_total,
                            bytes_resent: e.resent,
                            handle: e.complete.then(|| e.handle.clone()),
                            completions: e.completions,
                            refinishes: e.refinishes,
                            bytes_after_complete: e.bytes_after_complete,
                            kind: e.kind,
                            md5_hex: e.md5_hex.clone(),
                            image: e.image.clone(),
                        },
                    )
                })
                .collect(),
            finish_upload_calls: self.finish_calls.clone(),
            finish_upload_calls_by_content: self.finish_calls_by_content.clone(),
            sequences: self.sequences.clone(),
            pending_publications: self.pending.len(),
            tokens_issued: self.tokens_issued.clone(),
            requests: self.requests.clone(),
            responses_by_status: self.statuses.clone(),
            upload_bytes_received: self.upload_bytes_received,
            bytes_resent: self.bytes_resent,
            bytes_discarded: self.bytes_discarded,
            connections_reset: self.connections_reset,
            offset_mismatches: self.offset_mismatches,
            uploads_in_flight: self.entities.values().filter(|e| e.busy).count(),
            faults_fired: self
                .faults_fired
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// `image_handles` of a manifest body, if it is one.
fn manifest_handles(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("image_handles")?
        .as_array()?
        .iter()
        .map(|h| h.as_str().map(str::to_string))
        .collect()
}

/// md5 hex a content-addressed key promises: `mly_tools_<32 hex>[.ext]`, mapillary_tools' naming
/// (`mapillary_tools/uploader.py`, `key = f"mly_tools_{key}..."`, `key` being the md5 of the bytes).
/// Assumption: no public source shows the upload service checking a key against the bytes; the fake
/// refuses a mismatch (`InvalidChecksumError`, a name of ours) so that a client borrowing that naming for
/// another hash is caught. Our client names its keys `mtp_b3_...` and does not rely on the check.
fn promised_md5(key: &str) -> Option<String> {
    let rest = key.strip_prefix("mly_tools_")?;
    let hex = rest.split('.').next()?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_lowercase())
}

/// Why an upload `POST` could not start.
pub(crate) enum BeginError {
    /// Another `POST` for the same key is still streaming. Answered with the same 412
    /// `OffsetInvalidError` as a wrong offset: an ASSUMPTION. No public source says what the upload
    /// service does with a second writer of one entity (mapillary_tools never opens two: one thread per
    /// file, `mapillary_tools/uploader.py`; its only 412 is `OffsetInvalidError`, `retriable: true`,
    /// `_is_immediate_retriable_exception`). mtp's speed must not depend on it: the client waits for a
    /// draining connection only after a 412 that follows body bytes it sent itself.
    Busy,
    /// `Offset` differs from what the server holds.
    Mismatch { current: u64 },
}

/// Why a complete body was refused; the entity is reset to empty.
pub(crate) struct Rejected {
    pub error_type: &'static str,
    pub message: String,
}

/// An upload `POST` in progress. Holds the entity's md5 state while streaming; dropping it (also
/// when the connection dies) hands the state back, so the bytes received so far stay.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    key: String,
    md5: Option<md5::Context>,
    prefix: Vec<u8>,
    prefix_cap: usize,
    skip: u64,
    fed: u64,
}

impl Lease {
    pub fn begin(
        shared: &Arc<Shared>,
        key: &str,
        offset: u64,
        accept_overlap: bool,
    ) -> Result<Lease, BeginError> {
        let mut st = lock(&shared.state);
        if !st.entities.contains_key(key) {
            let handle = st.random_string(40);
            st.handles.insert(handle.clone(), key.to_string());
            st.entities.insert(key.to_string(), Entity::new(handle));
        }
        let Some(e) = st.entities.get_mut(key) else {
            return Err(BeginError::Busy);
        };
        if e.busy {
            return Err(BeginError::Busy);
        }
        let skip = match offset.cmp(&e.offset) {
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Less if accept_overlap => e.offset - offset,
            _ => return Err(BeginError::Mismatch { current: e.offset }),
        };
        e.busy = true;
        let md5 = e.md5.take().unwrap_or_else(md5::Context::new);
        let prefix = std::mem::take(&mut e.prefix);
        let prefix_cap = if prefix.is_empty() {
            0 // decided on the first byte
        } else if prefix.first() == Some(&b'{') {
            JSON_PREFIX_CAP
        } else {
            IMAGE_PREFIX_CAP
        };
        Ok(Lease {
            shared: shared.clone(),
            key: key.to_string(),
            md5: Some(md5),
            prefix,
            prefix_cap,
            skip,
            fed: 0,
        })
    }

    /// Take one chunk of the body.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        let total = chunk.len() as u64;
        let resent = self.skip.min(total);
        self.skip -= resent;
        chunk = &chunk[resent as usize..];
        if !chunk.is_empty() {
            if let Some(m) = self.md5.as_mut() {
                m.consume(chunk);
            }
            if self.prefix_cap == 0 {
                let first = chunk.iter().find(|b| !b.is_ascii_whitespace());
                self.prefix_cap = if first == Some(&b'{') {
                    JSON_PREFIX_CAP
                } else {
                    IMAGE_PREFIX_CAP
                };
            }
            let room = self.prefix_cap.saturating_sub(self.prefix.len());
            self.prefix
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
            self.fed += chunk.len() as u64;
        }
        let mut st = lock(&self.shared.state);
        st.upload_bytes_received += total;
        st.bytes_resent += resent;
        if let Some(e) = st.entities.get_mut(&self.key) {
            e.received_total += total;
            e.resent += resent;
            if e.complete {
                e.bytes_after_complete += total;
            }
            e.offset += chunk.len() as u64;
            if !chunk.is_empty() && e.complete {
                // New bytes after completion: the entity is a different one now.
                e.complete = false;
                e.kind = EntityKind::Incomplete;
                e.md5_hex = None;
                e.image = None;
            }
        }
    }

    /// Offset the entity has reached.
    pub fn offset(&self) -> u64 {
        lock(&self.shared.state).entity_offset(&self.key)
    }

    /// The body ended cleanly: complete the entity. Returns its handle.
    pub fn finish(mut self) -> Result<String, Rejected> {
        let digest = self.md5.clone().unwrap_or_else(md5::Context::new).compute();
        let md5_hex = format!("{digest:x}");
        let mut st = lock(&self.shared.state);
        let Some(e) = st.entities.get(&self.key) else {
            return Err(Rejected {
                error_type: "ProcessingFailedError",
                message: "entity vanished".to_string(),
            });
        };
        if e.complete && self.fed == 0 {
            let handle = e.handle.clone();
            if let Some(e) = st.entities.get_mut(&self.key) {
                e.completions += 1;
                e.refinishes += 1;
            }
            return Ok(handle);
        }
        let total_len = e.offset;
        let verdict = self.classify(&st, &md5_hex, total_len);
        let Some(e) = st.entities.get_mut(&self.key) else {
            return Err(Rejected {
                error_type: "ProcessingFailedError",
                message: "entity vanished".to_string(),
            });
        };
        match verdict {
            Ok((kind, image)) => {
                e.complete = true;
                e.completions += 1;
                e.kind = kind;
                e.md5_hex = Some(md5_hex);
                e.image = image;
                Ok(e.handle.clone())
            }
            Err(rejected) => {
                // Let the client start over with correct bytes.
                e.reset_content();
                self.md5 = Some(md5::Context::new());
                self.prefix.clear();
                Err(rejected)
            }
        }
    }

    fn classify(
        &self,
        st: &State,
        md5_hex: &str,
        total_len: u64,
    ) -> Result<(EntityKind, Option<ImageMeta>), Rejected> {
        if let Some(promised) = promised_md5(&self.key) {
            if promised != md5_hex {
                return Err(Rejected {
                    error_type: "InvalidChecksumError",
                    message: format!(
                        "md5 of the received bytes ({md5_hex}) does not match the session key ({promised})"
                    ),
                });
            }
        }
        let whole_prefix = total_len == self.prefix.len() as u64;
        if self.prefix.starts_with(&[0xFF, 0xD8]) {
            return Ok((EntityKind::Image, find_image_meta(&self.prefix)));
        }
        if !whole_prefix {
            return Ok((EntityKind::Other, None));
        }
        let json = match serde_json::from_slice::<serde_json::Value>(&self.prefix) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Ok((EntityKind::Other, None)),
        };
        if !json.contains_key("image_handles") && !json.contains_key("upload_type") {
            return Ok((EntityKind::Other, None));
        }
        // Assumption: no public source shows the service validating a manifest, nor this error's name;
        // the fields checked are those mapillary_tools writes (`mapillary_tools/uploader.py`: `version`
        // "1", `upload_type` "images", `image_handles`). Our client writes the same and relies on no
        // refusal.
        let bad = |message: String| {
            Err(Rejected {
                error_type: "InvalidManifestError",
                message,
            })
        };
        if json.get("version").and_then(|v| v.as_str()) != Some("1") {
            return bad("manifest \"version\" must be \"1\"".to_string());
        }
        if json.get("upload_type").and_then(|v| v.as_str()) != Some("images") {
            return bad("manifest \"upload_type\" must be \"images\"".to_string());
        }
        let Some(handles) = json.get("image_handles").and_then(|v| v.as_array()) else {
            return bad("manifest \"image_handles\" must be an array".to_string());
        };
        if handles.is_empty() {
            return bad("manifest has no image handles".to_string());
        }
        for h in handles {
            let Some(h) = h.as_str() else {
                return bad(format!("image handle {h} is not a string"));
            };
            match st.completed_entity_kind(h) {
                Some(EntityKind::Image) => {}
                Some(_) => return bad(format!("handle {h} is not an image")),
                None => return bad(format!("unknown or incomplete image handle {h}")),
            }
        }
        Ok((EntityKind::Manifest, None))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if let Some(e) = st.entities.get_mut(&self.key) {
            e.busy = false;
            if let Some(m) = self.md5.take() {
                e.md5 = Some(m);
                e.prefix = std::mem::take(&mut self.prefix);
            }
        }
    }
}
