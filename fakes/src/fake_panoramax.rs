//! A fake of a Panoramax instance's upload API (GeoVisio 2.15), for the provider's tests.
//!
//! Sources, cited per behaviour below: geovisio 2.15.1 from PyPI — `geovisio/web/upload_set.py` (routes,
//! status codes, duplicate detection, completion), `geovisio/utils/upload_set.py` (the JSON models),
//! `geovisio/web/tokens.py` and `geovisio/utils/tokens.py` (generated tokens and their claim),
//! `geovisio/utils/auth.py` (Bearer only) — and panoramax_cli 1.4.1 (`panoramax_cli/upload.py`,
//! `panoramax_cli/auth.py`) for what a client sends. Where the fake simplifies, it says "assumption".
//! Facts are summarised in `docs/providers/panoramax.md`.
//!
//! Pictures are refused with `missing_fields` by geopic-tag-reader's acceptance rules
//! ([`crate::panoramax_reader`]), or when a fault names them. Not modelled: splitting a set into several
//! collections by time or distance and capture deduplication (assumption: one collection per set, every
//! accepted picture kept, whatever `no_split`/`no_deduplication` say: the fake records the creation body in
//! [`HeldUploadSet::creation`] for tests to check what a client asked for), pictures' derivatives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::fake_mapillary::server::{self, lock, ConnControl, Running};

/// Faults and answers to inject.
#[derive(Debug, Clone, Default)]
pub struct PanoramaxFaults {
    /// Answer the next `n` picture uploads with HTTP 503 before reading them (assumption: a proxy in front
    /// of the instance; panoramax_cli retries 502/503/504, `panoramax_cli/http.py`).
    pub uploads_503: u32,
    /// Store the next `n` pictures, then drop the connection without an answer (the answer is lost).
    pub lose_upload_answers: u32,
    /// Drop the connection without an answer for the next `n` upload set creations, after creating the set.
    pub lose_create_answers: u32,
    /// Files (by name) answered 400 with `details.missing_fields: ["datetime", "location"]`, as the server
    /// does for a JPEG without GPS or date (`addFilesToUploadSet`, `MetadataReadingError`).
    pub missing_fields: BTreeSet<String>,
    /// Every upload waits this long before answering (to kill a client mid-way).
    pub upload_delay: Duration,
    /// Uploads of these files (by name) wait this long more before they are stored, as over a link where
    /// some files take longer (a bigger file, a slower connection among parallel ones): pictures then
    /// arrive in another order than they were sent.
    pub slow_files: BTreeMap<String, Duration>,
    /// A set completed by its file count with every file refused is never dispatched until `complete`
    /// is called: observed on geovisio 2.15.1 with the in-process picture worker
    /// (`PICTURE_PROCESS_THREADS_LIMIT` > 0), not the rule (the `upload_sets_completion_trg` trigger of
    /// `migrations/20240708_01_Xn7IH-job-queue.sql` queues the dispatch on any completion).
    pub stall_all_refused: bool,
}

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct PanoramaxConfig {
    /// Port (0 = any).
    pub port: u16,
    /// Tokens already issued, with the account they belong to (`token → account name`).
    pub tokens: BTreeMap<String, String>,
    /// The account that claims generated tokens when their claim page is opened (assumption: stands in
    /// for the instance's OAuth login, which a person does in a browser).
    pub claiming_account: String,
    /// How long a completed set takes to be dispatched and ready (assumption: the real server takes about
    /// a second for a few small pictures).
    pub processing: Duration,
    /// `auth.enabled` of `GET /api/configuration`: false for an instance without an OAuth provider,
    /// where generated tokens cannot be claimed (`geovisio/web/configuration.py` `_auth_configuration`).
    pub auth_enabled: bool,
    /// Faults.
    pub faults: PanoramaxFaults,
}

impl Default for PanoramaxConfig {
    fn default() -> Self {
        PanoramaxConfig {
            port: 0,
            tokens: BTreeMap::from([
                ("alice-token".to_string(), "alice".to_string()),
                ("bob-token".to_string(), "bob".to_string()),
            ]),
            claiming_account: "alice".into(),
            processing: Duration::from_millis(200),
            auth_enabled: true,
            faults: PanoramaxFaults::default(),
        }
    }
}

/// A file the fake holds in an upload set.
#[derive(Debug, Clone, Serialize)]
pub struct HeldFile {
    /// Name it was sent under.
    pub file_name: String,
    /// md5 of its bytes (hex).
    pub md5: String,
    /// Picture id, when accepted.
    pub picture_id: Option<String>,
    /// Rejection reason, when refused.
    pub rejected: Option<String>,
    /// Rejection message and details, as `GET .../files` shows them.
    #[serde(skip)]
    rejection: Option<(String, Value)>,
    /// The picture's capture time as the server stores it (`ts`), Unix ms UTC, when accepted.
    pub captured_at_ms: Option<i64>,
    /// When it arrived, counted per fake: the order of pictures with equal times in a collection.
    pub arrival: u64,
    /// The `override_capture_time` it was sent with, if any.
    pub override_capture_time: Option<String>,
}

/// An upload set as the fake holds it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldUploadSet {
    /// Id.
    pub id: String,
    /// Owner (account name).
    pub account: String,
    /// Title.
    pub title: String,
    /// `estimated_nb_files`.
    pub estimated_nb_files: Option<u64>,
    /// `metadata`.
    pub metadata: Value,
    /// The whole creation body (`no_split`, `no_deduplication`, `visibility`, `semantics`...).
    pub creation: Value,
    /// Completed.
    pub completed: bool,
    /// Files in arrival order.
    pub files: Vec<HeldFile>,
    /// `complete` calls received.
    pub complete_calls: u32,
    #[serde(skip)]
    ready_at: Option<Instant>,
    /// Pictures its collection held when a file arrived after it was dispatched: until it is dispatched
    /// again the set still shows as dispatched and ready with that collection (observed on geovisio
    /// 2.15.1: a file added to a ready set, and `complete` called, leave `dispatched` and `ready` true and
    /// the old collection listed until the dispatch job runs; `dispatched` is never reset).
    #[serde(skip)]
    dispatched_before: Option<usize>,
    /// Where each file name and each accepted picture's md5 sit in `files`: the lookups every upload
    /// makes (geovisio's are indexed queries), not scans of the whole set, so that a 100,000-file set
    /// costs the fake the same per file as a small one. Not a rule of the server: its speed only.
    #[serde(skip)]
    index: FileIndex,
}

/// [`HeldUploadSet::index`].
#[derive(Debug, Clone, Default)]
struct FileIndex {
    by_name: HashMap<String, usize>,
    accepted_md5: HashMap<String, usize>,
    accepted: usize,
}

impl HeldUploadSet {
    /// The file named `name`, if the set holds one.
    fn file_named(&self, name: &str) -> Option<&HeldFile> {
        self.index.by_name.get(name).map(|&at| &self.files[at])
    }

    /// The accepted picture with these bytes, if the set holds one.
    fn accepted_with_md5(&self, md5: &str) -> Option<&HeldFile> {
        self.index.accepted_md5.get(md5).map(|&at| &self.files[at])
    }

    /// Records `held`, replacing a refused file of the same name (see [`record`]).
    fn hold(&mut self, held: HeldFile) {
        let at = match self.index.by_name.get(&held.file_name) {
            Some(&at) if self.files[at].picture_id.is_none() => {
                self.files[at] = held;
                at
            }
            _ => {
                self.files.push(held);
                self.files.len() - 1
            }
        };
        let file = &self.files[at];
        self.index.by_name.insert(file.file_name.clone(), at);
        if file.picture_id.is_some() {
            self.index.accepted += 1;
            self.index
                .accepted_md5
                .entry(file.md5.clone())
                .or_insert(at);
        }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PanoramaxStats {
    /// Upload sets, by id.
    pub upload_sets: BTreeMap<String, HeldUploadSet>,
    /// `POST /api/upload_sets` received.
    pub creations: u32,
    /// Picture uploads received (every attempt, answered or not).
    pub upload_attempts: u32,
    /// Tokens generated and whether they were claimed.
    pub generated_tokens: u32,
    /// Requests per route (`"METHOD /route"`). Test instrumentation.
    pub requests: BTreeMap<String, u64>,
}

impl PanoramaxStats {
    /// Accepted pictures per md5, instance-wide: each must be 1.
    pub fn stored_per_md5(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for set in self.upload_sets.values() {
            for f in set.files.iter().filter(|f| f.picture_id.is_some()) {
                *counts.entry(f.md5.clone()).or_default() += 1;
            }
        }
        counts
    }
}

struct Generated {
    jwt: String,
    account: Option<String>,
}

struct PanoramaxState {
    tokens: BTreeMap<String, String>,
    /// Tokens their owner deleted.
    revoked: BTreeSet<String>,
    generated: BTreeMap<String, Generated>,
    faults: PanoramaxFaults,
    stats: PanoramaxStats,
    next_id: u64,
    arrivals: u64,
}

struct Shared {
    config: PanoramaxConfig,
    state: Mutex<PanoramaxState>,
}

type Sh = Arc<Shared>;

/// A running fake Panoramax. Dropping it stops the server.
pub struct FakePanoramax {
    shared: Sh,
    running: Running,
    base_url: String,
}

impl FakePanoramax {
    /// Start on the current tokio runtime, on 127.0.0.1.
    pub async fn start(config: PanoramaxConfig) -> io::Result<FakePanoramax> {
        let listener = server::bind(config.port).await?;
        let (shared, router) = build(config);
        let running = Running::spawn(listener, router)?;
        Ok(FakePanoramax::new(shared, running))
    }

    /// Start on a dedicated thread with its own runtime, for synchronous tests.
    pub fn spawn_blocking_thread(config: PanoramaxConfig) -> io::Result<FakePanoramax> {
        let (shared, running) = Running::spawn_thread("fake-panoramax", move || async move {
            let listener = server::bind(config.port).await?;
            let (shared, router) = build(config);
            Ok((shared, listener, router))
        })?;
        Ok(FakePanoramax::new(shared, running))
    }

    fn new(shared: Sh, running: Running) -> FakePanoramax {
        let base_url = format!("http://{}", running.addr());
        FakePanoramax {
            shared,
            running,
            base_url,
        }
    }

    /// `http://127.0.0.1:PORT` (`PANORAMAX_URL`); the API is under `/api`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// What the fake has seen.
    pub fn stats(&self) -> PanoramaxStats {
        lock(&self.shared.state).stats.clone()
    }

    /// The claim pages of the generated tokens not claimed yet (what a person would open).
    pub fn unclaimed_links(&self) -> Vec<String> {
        lock(&self.shared.state)
            .generated
            .iter()
            .filter(|(_, g)| g.account.is_none())
            .map(|(id, _)| format!("{}/api/auth/tokens/{id}/claim", self.base_url))
            .collect()
    }

    /// Deletes `token`, as its owner does from the account's settings (`DELETE /api/users/me/tokens/<id>`):
    /// from now on it is answered 403 "Token not valid" (`geovisio/utils/tokens.py`).
    pub fn revoke_token(&self, token: &str) {
        let mut st = lock(&self.shared.state);
        st.tokens.remove(token);
        st.revoked.insert(token.to_string());
    }

    /// Test control: upload set `id` is gone, as after its owner deleted it on the website or a server
    /// was set up again without its data; from now on `GET /api/upload_sets/<id>` answers 404
    /// (`getUploadSet`). No request of the fake's API does this.
    pub fn lose_upload_set(&self, id: &str) {
        lock(&self.shared.state).stats.upload_sets.remove(id);
    }

    /// Replace the faults from now on.
    pub fn set_faults(&self, faults: PanoramaxFaults) {
        lock(&self.shared.state).faults = faults;
    }

    /// Stop the server.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

fn build(config: PanoramaxConfig) -> (Sh, Router) {
    let state = PanoramaxState {
        tokens: config.tokens.clone(),
        revoked: BTreeSet::new(),
        generated: BTreeMap::new(),
        faults: config.faults.clone(),
        stats: PanoramaxStats::default(),
        next_id: 1,
        arrivals: 0,
    };
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(state),
    });
    let router = Router::new()
        .route("/api", get(landing))
        .route("/api/configuration", get(configuration))
        .route("/api/users/me", get(me))
        .route("/api/auth/tokens/generate", post(generate_token))
        .route("/api/auth/tokens/:id/claim", get(claim_token))
        .route("/api/upload_sets", post(create_upload_set))
        .route("/api/users/me/upload_sets", get(my_upload_sets))
        .route("/api/upload_sets/:id", get(get_upload_set))
        .route("/api/upload_sets/:id/files", get(list_files).post(add_file))
        .route("/api/upload_sets/:id/complete", post(complete))
        .route("/api/collections/:id/items", get(collection_items))
        .route("/__fake/stats", get(fake_stats))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            observe,
        ))
        .with_state(shared.clone());
    (shared, router)
}

/// GeoVisio's error body: `{"message", "status_code", "details"?}` (`geovisio/errors.py`).
fn error(status: u16, message: &str, extra: Value) -> Response {
    let mut body = json!({"message": message, "status_code": status});
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

fn new_id(st: &mut PanoramaxState) -> String {
    st.next_id += 1;
    format!("00000000-0000-4000-8000-{:012x}", st.next_id)
}

/// The account of the request's token. `geovisio/utils/auth.py`: only `Bearer` is accepted (401 "Only
/// Bearer token are supported"); a token that does not decode is 401 "Token not valid";
/// `geovisio/utils/tokens.py` `get_account_from_jwt_token`: a deleted token and a generated token not yet
/// claimed are 403 "Token not valid", with the reason in `details.error`.
fn account(shared: &Sh, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err(Box::new(error(
            401,
            "Only Bearer token are supported",
            json!({}),
        )));
    };
    let st = lock(&shared.state);
    if let Some(name) = st.tokens.get(token) {
        return Ok(name.clone());
    }
    match st.generated.values().find(|g| g.jwt == token) {
        Some(Generated {
            account: Some(name),
            ..
        }) => Ok(name.clone()),
        Some(_) => Err(Box::new(error(
            403,
            "Token not valid",
            json!({"details": {"error": "Token not yet claimed, this token cannot be used yet. Either claim this token or generate a new one"}}),
        ))),
        None if st.revoked.contains(token) => Err(Box::new(error(
            403,
            "Token not valid",
            json!({"details": {"error": "Token does not exist anymore"}}),
        ))),
        None => Err(Box::new(error(
            401,
            "Token not valid",
            json!({"details": {"error": "Impossible to decode token"}}),
        ))),
    }
}

async fn landing() -> Json<Value> {
    Json(json!({"id": "geovisio", "type": "Catalog", "stac_version": "1.0.0"}))
}

/// `GET /api/configuration`, the fields a client reads (`geovisio/web/configuration.py`): `auth.enabled`,
/// and `defaults` as a fresh 2.15 database holds them (`migrations/20250513_01_8WkZC-upload-sets-default-config.sql`:
/// split 100 m / 5 min, duplicates 1 m / 60°; `split_time` in seconds). `visibility.possible_values`
/// assumes registration is open (no `logged-only`).
async fn configuration(State(shared): State<Sh>) -> Json<Value> {
    Json(json!({
        "name": {"label": "Fake Panoramax", "langs": {"en": "Fake Panoramax"}},
        "auth": {"enabled": shared.config.auth_enabled},
        "defaults": {"collaborative_metadata": null, "split_distance": 100, "split_time": 300.0,
                     "duplicate_distance": 1.0, "duplicate_rotation": 60, "default_visibility": "anyone"},
        "visibility": {"possible_values": ["anyone", "owner-only"]},
    }))
}

/// `GET /api/users/me` → `{id, name, ...}` (`geovisio/web/users.py`).
async fn me(State(shared): State<Sh>, headers: HeaderMap) -> Response {
    match account(&shared, &headers) {
        Ok(name) => Json(json!({"id": format!("id-{name}"), "name": name})).into_response(),
        Err(response) => *response,
    }
}

/// `POST /api/auth/tokens/generate` → `{id, jwt_token, links: [{rel: "claim", href}]}`, no
/// authentication needed (`geovisio/web/tokens.py` `generate_non_associated_token`).
async fn generate_token(State(shared): State<Sh>, headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut st = lock(&shared.state);
    let id = new_id(&mut st);
    let jwt = format!("generated-{id}");
    st.generated.insert(
        id.clone(),
        Generated {
            jwt: jwt.clone(),
            account: None,
        },
    );
    st.stats.generated_tokens += 1;
    Json(json!({
        "id": id, "jwt_token": jwt, "description": "",
        "links": [{"rel": "claim", "type": "application/json",
                   "href": format!("http://{host}/api/auth/tokens/{id}/claim")}],
    }))
}

/// `GET /api/auth/tokens/<id>/claim`: associates the token with the logged-in account and answers a text
/// when the instance has no website (`claim_non_associated_token`). The login itself is an assumption:
/// the configured `claiming_account` is taken as logged in.
async fn claim_token(State(shared): State<Sh>, Path(id): Path<String>) -> Response {
    let claiming = shared.config.claiming_account.clone();
    let mut st = lock(&shared.state);
    match st.generated.get_mut(&id) {
        None => error(404, "Impossible to find token", json!({})),
        Some(g) => match &g.account {
            Some(owner) if *owner != claiming => {
                error(403, "Token already claimed by another account", json!({}))
            }
            _ => {
                g.account = Some(claiming);
                "You are now logged in the CLI, you can upload your pictures".into_response()
            }
        },
    }
}

fn upload_set_json(shared: &Sh, set: &HeldUploadSet) -> Value {
    let accepted: Vec<&HeldFile> = set
        .files
        .iter()
        .filter(|f| f.picture_id.is_some())
        .collect();
    let rejected = set.files.len() - accepted.len();
    // Dispatch follows any completion (the completion trigger queues it); a set with no picture is marked
    // dispatched with no collection (`geovisio/utils/upload_set.py` `dispatch`: "no pictures, nothing to
    // do"). `ready_at` is cleared while the `stall_all_refused` fault holds such a set back.
    let ready_now = set.ready_at.is_some_and(|t| Instant::now() >= t);
    let in_collection = if ready_now {
        Some(accepted.len())
    } else {
        set.dispatched_before
    };
    let collections: Vec<Value> = match in_collection {
        Some(n) if n > 0 => vec![json!({
            "id": format!("coll-{}", set.id), "nb_items": n, "ready": true,
            "items_status": {"prepared": n, "preparing": 0, "broken": 0, "not_processed": 0},
        })],
        _ => Vec::new(),
    };
    let dispatched = in_collection.is_some();
    let _ = shared;
    json!({
        "id": set.id, "title": set.title, "completed": set.completed,
        "dispatched": dispatched, "ready": dispatched,
        "estimated_nb_files": set.estimated_nb_files, "metadata": set.metadata,
        "sort_method": "time-asc", "nb_items": accepted.len(),
        "items_status": {
            "prepared": if ready_now { accepted.len() } else { 0 },
            "preparing": 0, "broken": 0, "rejected": rejected,
            "not_processed": if ready_now { 0 } else { accepted.len() },
        },
        "associated_collections": collections,
        "links": [{"rel": "self", "href": format!("/api/upload_sets/{}", set.id)}],
    })
}

/// `POST /api/upload_sets`: JSON body or 415 (`postUploadSet`); answers 200 with a `Location`.
async fn create_upload_set(State(shared): State<Sh>, headers: HeaderMap, req: Request) -> Response {
    let owner = match account(&shared, &headers) {
        Ok(name) => name,
        Err(response) => return *response,
    };
    let control = req.extensions().get::<ConnControl>().cloned();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let params: Value = match serde_json::from_slice(&body) {
        Ok(v) if is_json => v,
        _ => {
            return error(
                415,
                "Parameter for creating an UploadSet should be a valid JSON",
                json!({}),
            )
        }
    };
    let Some(title) = params.get("title").and_then(Value::as_str) else {
        return error(400, "Impossible to create an UploadSet", json!({}));
    };
    // `UploadSetCreationParameter.validate` and `validate_visibility` (`geovisio/web/upload_set.py`).
    let has = |k: &str| params.get(k).is_some_and(|v| !v.is_null());
    if params.get("no_split") == Some(&Value::Bool(true))
        && (has("split_distance") || has("split_time"))
    {
        return error(400, "The `no_split` parameter is incompatible with specifying `split_distance` / `split_duration`", json!({}));
    }
    if params.get("no_deduplication") == Some(&Value::Bool(true))
        && (has("duplicate_distance") || has("duplicate_rotation"))
    {
        return error(400, "The `no_deduplication` parameter is incompatible with specifying `duplicate_distance` / `duplicate_rotation`", json!({}));
    }
    if params.get("visibility").and_then(Value::as_str) == Some("logged-only") {
        return error(400, "The logged-only visibility is not allowed on this instance since anybody can create an account", json!({}));
    }
    let (answer, lose) = {
        let mut st = lock(&shared.state);
        st.stats.creations += 1;
        let id = new_id(&mut st);
        let set = HeldUploadSet {
            id: id.clone(),
            account: owner,
            title: title.to_string(),
            estimated_nb_files: params.get("estimated_nb_files").and_then(Value::as_u64),
            metadata: params.get("metadata").cloned().unwrap_or(Value::Null),
            creation: params.clone(),
            completed: false,
            files: Vec::new(),
            complete_calls: 0,
            ready_at: None,
            dispatched_before: None,
            index: FileIndex::default(),
        };
        let answer = upload_set_json(&shared, &set);
        st.stats.upload_sets.insert(id, set);
        let lose = st.faults.lose_create_answers > 0;
        if lose {
            st.faults.lose_create_answers -= 1;
        }
        (answer, lose)
    };
    if lose {
        if let Some(control) = control {
            control.kill().await;
        }
    }
    let location = format!(
        "/api/upload_sets/{}",
        answer["id"].as_str().unwrap_or_default()
    );
    (StatusCode::OK, [(header::LOCATION, location)], Json(answer)).into_response()
}

/// `GET /api/users/me/upload_sets`: the account's sets, by default those not dispatched yet
/// (`listUserUpload`, filter `dispatched = FALSE`).
async fn my_upload_sets(State(shared): State<Sh>, headers: HeaderMap) -> Response {
    let owner = match account(&shared, &headers) {
        Ok(name) => name,
        Err(response) => return *response,
    };
    let st = lock(&shared.state);
    let sets: Vec<Value> = st
        .stats
        .upload_sets
        .values()
        .filter(|s| s.account == owner)
        .map(|s| upload_set_json(&shared, s))
        .filter(|s| s["dispatched"] == false)
        .collect();
    Json(json!({"upload_sets": sets})).into_response()
}

/// `GET /api/upload_sets/<id>`: 404 when unknown (`getUploadSet`).
async fn get_upload_set(State(shared): State<Sh>, Path(id): Path<String>) -> Response {
    let st = lock(&shared.state);
    match st.stats.upload_sets.get(&id) {
        Some(set) => Json(upload_set_json(&shared, set)).into_response(),
        None => error(404, "UploadSet doesn't exist", json!({})),
    }
}

/// `GET /api/upload_sets/<id>/files`: every file, with `rejected {reason, severity, message}`; picture
/// ids only for the owner (`getUploadSetFiles`).
async fn list_files(
    State(shared): State<Sh>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = account(&shared, &headers).ok();
    let st = lock(&shared.state);
    let Some(set) = st.stats.upload_sets.get(&id) else {
        return error(404, "UploadSet doesn't exist", json!({}));
    };
    let owner = caller.as_deref() == Some(set.account.as_str());
    let files: Vec<Value> = set
        .files
        .iter()
        .map(|f| {
            let mut v =
                json!({"file_name": f.file_name, "content_md5": f.md5, "file_type": "picture"});
            if let (Some(p), true) = (&f.picture_id, owner) {
                v["picture_id"] = json!(p);
            }
            if let Some(reason) = &f.rejected {
                let (message, details) = f.rejection.clone().unwrap_or_default();
                v["rejected"] = json!({"reason": reason, "severity": "error", "message": message,
                                       "details": details});
            }
            v
        })
        .collect();
    Json(json!({"files": files})).into_response()
}

/// One part of a form: `(name, filename, bytes)`.
pub(crate) type Part = (String, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body: `(name, filename, bytes)`. Minimal (assumption: the
/// client sends well-formed parts, as reqwest and requests do).
pub(crate) fn multipart_parts(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], from: usize| {
        hay[from..]
            .windows(d.len())
            .position(|w| w == d)
            .map(|i| i + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, 0)? + d.len();
    loop {
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        let start = at + 2; // CRLF after the delimiter
        let headers_end = body[start..].windows(4).position(|w| w == b"\r\n\r\n")? + start;
        let head = String::from_utf8_lossy(&body[start..headers_end]).to_string();
        let next = find(body, headers_end + 4)?;
        let content = body[headers_end + 4..next.saturating_sub(2)].to_vec();
        let param = |key: &str| {
            head.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{key}=\""))
                    .and_then(|v| v.split('"').next())
                    .map(str::to_string)
            })
        };
        parts.push((param("name")?, param("filename"), content));
        at = next + d.len();
    }
}

/// `POST /api/upload_sets/<id>/files` (`addFilesToUploadSet`), in its order: not multipart → 415;
/// unknown set → 404; another account's set → 403; no `file` part or not `.jpg`/`.jpeg` → 400; same
/// bytes already in this set → 409 `existing_item` (not recorded); same bytes in another set → 409
/// `upload_sets` (recorded as rejected `file_duplicate`); missing EXIF → 400 `missing_fields` (recorded as
/// `invalid_metadata`); else 202 with the file. Each recorded file counts toward `estimated_nb_files`,
/// and the set completes itself when they match (`handle_completion`); adding to a completed set
/// un-completes it.
async fn add_file(
    State(shared): State<Sh>,
    headers: HeaderMap,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let control = req.extensions().get::<ConnControl>().cloned();
    {
        let mut st = lock(&shared.state);
        st.stats.upload_attempts += 1;
        if st.faults.uploads_503 > 0 {
            st.faults.uploads_503 -= 1;
            return error(503, "Service Unavailable", json!({}));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // The route's decorators (`check_write_access`, `login_required_by_setting`) check the token before
    // the body's type is looked at: 401 comes before 415.
    let owner = match account(&shared, &headers) {
        Ok(name) => name,
        Err(response) => return *response,
    };
    if !content_type.starts_with("multipart/form-data") {
        return error(415, "Content type should be multipart/form-data", json!({}));
    }
    let body: Bytes = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(_) => return error(400, "cannot read the body", json!({})),
    };
    let delay = lock(&shared.state).faults.upload_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let parts = multipart_parts(&content_type, &body).unwrap_or_default();
    let slow = parts
        .iter()
        .find(|(name, _, _)| name == "file")
        .and_then(|(_, file_name, _)| {
            let st = lock(&shared.state);
            st.faults.slow_files.get(file_name.as_deref()?).copied()
        });
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    let (answer, lose) = {
        let mut st = lock(&shared.state);
        let answer = store_file(&shared, &mut st, &id, &owner, &parts);
        let lose = answer.status().is_success() && st.faults.lose_upload_answers > 0;
        if lose {
            st.faults.lose_upload_answers -= 1;
        }
        (answer, lose)
    };
    if lose {
        if let Some(control) = control {
            control.kill().await;
        }
    }
    answer
}

fn store_file(
    shared: &Sh,
    st: &mut PanoramaxState,
    id: &str,
    owner: &str,
    parts: &[Part],
) -> Response {
    let picture_id = new_id(st);
    st.arrivals += 1;
    let arrival = st.arrivals;
    let missing = st.faults.missing_fields.clone();
    let stall = st.faults.stall_all_refused;
    let Some(set) = st.stats.upload_sets.get_mut(id) else {
        return error(404, &format!("UploadSet {id} does not exist"), json!({}));
    };
    if set.account != owner {
        return error(
            403,
            "You're not authorized to add picture to this upload set",
            json!({}),
        );
    }
    let Some((_, Some(file_name), bytes)) = parts.iter().find(|(name, _, _)| name == "file") else {
        return error(400, "No file was sent", json!({}));
    };
    // `override_capture_time` (`AddFileToUploadSetParameter.parse_capture_time`, `geovisio/web/params.py`
    // `parse_datetime`: `datetime.fromisoformat`, else dateutil); a value it cannot parse is a 400 before
    // anything is recorded. Assumption: only RFC 3339 with an offset is modelled (fromisoformat takes more).
    let override_text = parts
        .iter()
        .find(|(name, _, _)| name == "override_capture_time")
        .map(|(_, _, value)| String::from_utf8_lossy(value).trim().to_string());
    let override_ms = match &override_text {
        None => None,
        Some(text) => {
            match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.timestamp_millis()),
                Err(_) => return error(400, "Parameter `override_capture_time` is not a valid datetime, it should be an iso formated datetime (like '2017-07-21T17:32:28Z').", json!({})),
            }
        }
    };
    let md5 = format!("{:x}", md5::compute(bytes));
    let file = Arrived {
        name: file_name,
        md5: &md5,
        arrival,
        override_capture_time: override_text,
    };
    // A name without `.jpg`/`.jpeg` (`_read_add_items_params`) and bytes PIL cannot open
    // (`addFilesToUploadSet`, `PIL.UnidentifiedImageError`) are both recorded as `invalid_file`
    // (`TrackedFileException`). The fake's "cannot open" is "does not start like a JPEG" (assumption).
    let lower = file_name.to_ascii_lowercase();
    let invalid_file = if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg")) {
        Some("Picture file is either missing or in an unsupported format (should be jpg)")
    } else if !bytes.starts_with(&[0xFF, 0xD8]) {
        Some("Impossible to open file as image. The only supported image format is jpg.")
    } else {
        None
    };
    if let Some(message) = invalid_file {
        if let Some(conflict) = name_conflict(set, file_name) {
            return conflict;
        }
        let refusal = ("invalid_file", message.to_string(), Value::Null);
        record(shared, set, file, Accepted::No(refusal), stall);
        return error(400, message, json!({}));
    }
    if let Some(existing) = set.accepted_with_md5(&md5) {
        let existing = existing.picture_id.clone();
        return error(
            409,
            "The item has already been added to this upload set",
            json!({"existing_item": {"id": existing}}),
        );
    }
    let elsewhere: Vec<Value> = st
        .stats
        .upload_sets
        .values()
        .filter(|s| s.id != id)
        .flat_map(|s| {
            s.files
                .iter()
                .filter(|f| f.md5 == md5 && f.picture_id.is_some())
                .map(|f| json!({"existing_item_id": f.picture_id, "upload_set_id": s.id}))
        })
        .collect();
    // What `GET .../files` shows for a refusal: the message, and `details` without its `error`
    // (`addFilesToUploadSet`, `TrackedFileException` handling). The metadata is read after the override
    // was written into the file (`writePictureMetadata` before `insertNewPictureInDatabase`): an
    // overridden time counts as a time.
    let missing_fields = missing
        .contains(file_name)
        .then(|| vec!["datetime", "location"])
        .or_else(|| {
            let mut fields = crate::panoramax_reader::missing_fields(bytes);
            if override_ms.is_some() {
                fields.retain(|f| *f != "datetime");
            }
            Some(fields).filter(|f| !f.is_empty())
        });
    let (rejected, rejection, answer) = if !elsewhere.is_empty() {
        (
            Some("file_duplicate"),
            Some((
                "The same picture has already been sent in a past upload".to_string(),
                Value::Null,
            )),
            error(
                409,
                "The same picture has already been sent in a past upload",
                json!({"upload_sets": elsewhere}),
            ),
        )
    } else if let Some(fields) = missing_fields {
        (
            Some("invalid_metadata"),
            Some((
                "No GPS coordinates or broken coordinates in picture EXIF tags".to_string(),
                json!({"missing_fields": fields}),
            )),
            error(
                400,
                "Impossible to parse picture metadata",
                json!({"details": {"error": "No GPS coordinates or broken coordinates in picture EXIF tags",
                                   "missing_fields": fields}}),
            ),
        )
    } else {
        (None, None, StatusCode::ACCEPTED.into_response())
    };
    let Some(set) = st.stats.upload_sets.get_mut(id) else {
        return error(404, "UploadSet does not exist", json!({}));
    };
    if let Some(conflict) = name_conflict(set, file_name) {
        return conflict;
    }
    match rejected.zip(rejection) {
        Some((reason, (message, details))) => {
            record(
                shared,
                set,
                file,
                Accepted::No((reason, message, details)),
                stall,
            );
            answer
        }
        None => {
            // The stored time: an override is written as `DateTimeOriginal` + `SubSecTimeOriginal` with
            // the GPS time in whole seconds (geopic-tag-reader `writer.py` `_date_exif_tags`), so the
            // reader's `getBest` returns the override itself.
            let captured_at_ms =
                override_ms.or_else(|| crate::panoramax_reader::capture_time_ms(bytes));
            record(
                shared,
                set,
                file,
                Accepted::Yes(picture_id.clone(), captured_at_ms),
                stall,
            );
            (
                StatusCode::ACCEPTED,
                Json(
                    json!({"picture_id": picture_id, "file_name": file_name, "content_md5": md5,
                            "file_type": "picture", "size": bytes.len()}),
                ),
            )
                .into_response()
        }
    }
}

/// `insertFileInDatabase` (`geovisio/utils/upload_set.py`), called for accepted and refused files alike:
/// a name that already holds a picture in the set is a 409 with `existing_item`, like the same-bytes one,
/// told apart only by its message; nothing is recorded.
fn name_conflict(set: &HeldUploadSet, file_name: &str) -> Option<Response> {
    let existing = set
        .file_named(file_name)
        .filter(|f| f.picture_id.is_some())?;
    Some(error(
        409,
        "A different picture with the same name has already been added to this uploadset",
        json!({"existing_item": {"id": existing.picture_id}}),
    ))
}

/// A file as it arrived.
struct Arrived<'a> {
    name: &'a str,
    md5: &'a str,
    arrival: u64,
    override_capture_time: Option<String>,
}

/// What became of it: a picture id and its time, or a refusal `(reason, message, details)`.
enum Accepted<'a> {
    Yes(String, Option<i64>),
    No((&'a str, String, Value)),
}

/// Records a file in `set` and applies the completion rule. A name already recorded without a picture
/// (refused) is replaced, not added: "If there is no picture (because the picture has been rejected), we
/// accept that the file is overridden" (`insertFileInDatabase`, `INSERT ... ON CONFLICT (upload_set_id,
/// file_name) DO UPDATE ... WHERE files.picture_id IS NULL`). Completion (`handle_completion` in
/// `geovisio/web/upload_set.py`): a set not completed completes itself when as many files are recorded as
/// announced; a completed set that receives a file is un-completed, whatever the count. Completion queues
/// the dispatch (the completion trigger), except under the `stall_all_refused` fault.
fn record(
    shared: &Sh,
    set: &mut HeldUploadSet,
    file: Arrived<'_>,
    outcome: Accepted<'_>,
    stall_all_refused: bool,
) {
    let (picture_id, captured_at_ms, refusal) = match outcome {
        Accepted::Yes(id, at) => (Some(id), at, None),
        Accepted::No(refusal) => (None, None, Some(refusal)),
    };
    if set.ready_at.is_some_and(|t| Instant::now() >= t) {
        set.dispatched_before = Some(set.files.iter().filter(|f| f.picture_id.is_some()).count());
    }
    let held = HeldFile {
        file_name: file.name.to_string(),
        md5: file.md5.to_string(),
        picture_id,
        rejected: refusal.as_ref().map(|(r, _, _)| r.to_string()),
        rejection: refusal.map(|(_, m, d)| (m, d)),
        captured_at_ms,
        arrival: file.arrival,
        override_capture_time: file.override_capture_time,
    };
    set.hold(held);
    set.completed = !set.completed && set.estimated_nb_files == Some(set.files.len() as u64);
    let any_accepted = set.index.accepted > 0;
    if set.completed && (any_accepted || !stall_all_refused) {
        set.ready_at = Some(Instant::now() + shared.config.processing);
    } else if !set.completed {
        set.ready_at = None;
    }
}

/// The accepted pictures of a set in the order its collection holds them. `dispatch`
/// (`geovisio/utils/upload_set.py`) reads the set's pictures with a `SELECT` that has no `ORDER BY` and
/// sorts them with geopic-tag-reader 1.10.1 `sequence.py` `sort_pictures`: for `time-asc` Python's stable
/// `list.sort` on `ts.isoformat()` (UTC in a database set to UTC, so chronological), so pictures with equal
/// times keep the order the rows came in; `sequences_pictures.rank` follows that order and
/// `getCollectionItems` (`geovisio/web/items.py`) lists items `ORDER BY rank`. Assumption: the rows come
/// in the order the pictures arrived (what PostgreSQL does for a heap table only inserted into, without
/// guarantee). The fake sorts by time whatever `sort_method` asked (mtp asks `time-asc`).
fn in_collection_order(set: &HeldUploadSet) -> Vec<&HeldFile> {
    let mut pictures: Vec<&HeldFile> = set
        .files
        .iter()
        .filter(|f| f.picture_id.is_some())
        .collect();
    pictures.sort_by_key(|f| f.arrival);
    pictures.sort_by_key(|f| f.captured_at_ms);
    pictures
}

/// `POST /api/upload_sets/<id>/complete`: 404/403 checks, marks it completed and dispatches it
/// (`completeUploadSet`).
async fn complete(
    State(shared): State<Sh>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let owner = match account(&shared, &headers) {
        Ok(name) => name,
        Err(response) => return *response,
    };
    let mut st = lock(&shared.state);
    let Some(set) = st.stats.upload_sets.get_mut(&id) else {
        return error(404, &format!("UploadSet {id} does not exist"), json!({}));
    };
    if set.account != owner {
        return error(
            403,
            "You're not authorized to complete this upload set",
            json!({}),
        );
    }
    set.completed = true;
    set.complete_calls += 1;
    if set.ready_at.is_none() {
        set.ready_at = Some(Instant::now() + shared.config.processing);
    }
    let set = set.clone();
    Json(upload_set_json(&shared, &set)).into_response()
}

/// `GET /api/collections/<id>/items`: the collection's pictures in its order (`getCollectionItems`,
/// `ORDER BY rank`), as GeoJSON features with `properties.datetime` and `properties["original_file:name"]`
/// (`geovisio/web/items.py`); only once the set is dispatched. Not modelled: paging (`limit`), links,
/// assets, visibility.
async fn collection_items(State(shared): State<Sh>, Path(id): Path<String>) -> Response {
    let st = lock(&shared.state);
    let set = id.strip_prefix("coll-").and_then(|set_id| {
        st.stats
            .upload_sets
            .get(set_id)
            .filter(|s| s.ready_at.is_some_and(|t| Instant::now() >= t))
    });
    let Some(set) = set else {
        return error(404, "Collection doesn't exist", json!({}));
    };
    let features: Vec<Value> = in_collection_order(set)
        .into_iter()
        .map(|f| {
            let datetime = f
                .captured_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false));
            json!({"type": "Feature", "id": f.picture_id, "collection": id,
                   "properties": {"datetime": datetime, "original_file:name": f.file_name}})
        })
        .collect();
    Json(json!({"type": "FeatureCollection", "features": features})).into_response()
}

/// Counts requests per route (test instrumentation, as the other fakes do).
async fn observe(State(sh): State<Sh>, req: Request, next: axum::middleware::Next) -> Response {
    let route = match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(p) => format!("{} {}", req.method(), p.as_str()),
        None => format!("{} ?", req.method()),
    };
    *lock(&sh.state).stats.requests.entry(route).or_default() += 1;
    next.run(req).await
}

async fn fake_stats(State(shared): State<Sh>) -> Json<PanoramaxStats> {
    Json(lock(&shared.state).stats.clone())
}

#[cfg(test)]
mod tests {
    use super::multipart_parts;

    #[test]
    fn reads_multipart_parts() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"isBlurred\"\r\n\r\nfalse\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8xy\r\n--B--\r\n";
        let parts = multipart_parts("multipart/form-data; boundary=B", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].2, b"false");
        assert_eq!(parts[1].1.as_deref(), Some("a.jpg"));
        assert_eq!(parts[1].2, b"\xff\xd8xy");
    }
}
