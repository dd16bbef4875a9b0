//! A local fake of the Map the Paths Web API (docs/providers/mtpw.md, trek-view/mtp-web `api/views.py`),
//! with switchable faults.
//!
//! Faithful where clients get it wrong: errors are HTTP 200 with `{"error", "status": false}`,
//! the old endpoints and `sequence/create/` read form fields only (a JSON body means "Sequence
//! Name is missing"), a `PUT sequence/import/<id>/` missing a key or naming an unknown sequence is
//! a 500 like the real view's uncaught `KeyError`/`DoesNotExist`, and `create` is not idempotent.
//!
//! Besides the real API the server answers `GET /__fake/stats` with [`MtpwStats`] as JSON.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::fake_mapillary::server::{self, lock, ConnControl, Running};
use crate::fake_mapillary::MapillaryLink;

/// Which generation(s) of the MTPW API the server speaks; the other's paths answer 404.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum MtpwApi {
    /// Sept 2020: `mapillary/token/verify` + `POST sequence/import`.
    Old,
    /// Later: `POST sequence/create/` + `PUT sequence/import/<unique_id>/`.
    New,
    /// Both.
    #[default]
    Both,
}

/// Faults, all off by default. Changeable at run time with [`FakeMtpw::set_faults`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MtpwFaults {
    /// Seed for the random choices; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Fraction of API calls answered 500 or 503.
    pub error_5xx_ratio: f64,
    /// Fraction of API calls whose connection is dropped without a response.
    pub drop_connection_ratio: f64,
    /// Drop the connection of the next N API calls.
    pub drop_next: u32,
    /// Answer the next N authenticated API calls with HTTP 200 `{"error", "status": false}`.
    pub error_as_200_next: u32,
    /// The `error` text of those answers.
    pub error_as_200_message: String,
    /// The MTPW token is revoked after this many successful authenticated API calls.
    pub revoke_token_after: Option<u64>,
    /// Added latency before every request is handled.
    pub latency_ms: u64,
}

impl Default for MtpwFaults {
    fn default() -> Self {
        MtpwFaults {
            seed: None,
            error_5xx_ratio: 0.0,
            drop_connection_ratio: 0.0,
            drop_next: 0,
            error_as_200_next: 0,
            error_as_200_message: "Temporary failure, please try again".to_string(),
            revoke_token_after: None,
            latency_ms: 0,
        }
    }
}

/// Configuration of a [`FakeMtpw`].
#[derive(Clone, Debug)]
pub struct MtpwConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The user's MTPW token (`Authorization: Bearer`), valid from the start and what the consent
    /// page issues unless revoked.
    pub token: String,
    /// The OAuth app's client id; `None` accepts any.
    pub client_id: Option<String>,
    /// Where the consent page redirects when the request has no `redirect_uri` (the app's
    /// registered one).
    pub default_redirect_uri: String,
    /// The consent page redirects with `#error=access_denied`.
    pub deny_consent: bool,
    /// API generation(s) spoken.
    pub api: MtpwApi,
    /// Accept only parent transport types (Earth, Snow, ...), not children (Paraglide, ...).
    pub parents_only: bool,
    /// The valid Mapillary token. `None`: ask `mapillary` if linked, else accept any non-empty one.
    pub mapillary_token: Option<String>,
    /// Checks Mapillary tokens and sequence keys against a running fake Mapillary.
    pub mapillary: Option<MapillaryLink>,
    /// Mapillary username reported by `token/verify` when not linked.
    pub mapillary_username: String,
    /// Mapillary user key reported by `token/verify` when not linked.
    pub mapillary_user_key: String,
    /// Sequence keys owned by someone else ("You are not owner of this sequence").
    pub foreign_sequence_keys: Vec<String>,
    /// Sequence keys Mapillary knows nothing of ("Sequence is empty"); when linked, every key not
    /// published on the fake Mapillary is empty too.
    pub empty_sequence_keys: Vec<String>,
    /// Faults.
    pub faults: MtpwFaults,
}

impl Default for MtpwConfig {
    fn default() -> Self {
        MtpwConfig {
            port: 0,
            token: "mtpw-fake-user-token".to_string(),
            client_id: None,
            default_redirect_uri: "app.mtp.desktop://oauth".to_string(),
            deny_consent: false,
            api: MtpwApi::Both,
            parents_only: false,
            mapillary_token: None,
            mapillary: None,
            mapillary_username: "fake_user".to_string(),
            mapillary_user_key: "104200000000001".to_string(),
            foreign_sequence_keys: Vec::new(),
            empty_sequence_keys: Vec::new(),
            faults: MtpwFaults::default(),
        }
    }
}

/// Transport types MTPW knows, parent → children (docs/providers/mtpw.md). `Powered` and `Land` are legacy
/// parents without children.
pub const TRANSPORT_TYPES: &[(&str, &[&str])] = &[
    (
        "Earth",
        &[
            "Bicycle",
            "Walk",
            "Scooter",
            "Skateboard",
            "Rollerskate",
            "Rock Climbing",
            "Wheelchair",
            "Car",
            "Electric Car",
            "Electric Bicycle",
            "Electric Scooter",
        ],
    ),
    (
        "Snow",
        &["Ski", "Snowboard", "Snowshoe", "Ice Skating", "Snowmobile"],
    ),
    (
        "Water",
        &[
            "Swim",
            "Paddleboard",
            "Scuba Dive",
            "Surf",
            "Windsurf",
            "Kiteboard",
            "Canoe",
            "Freedive",
            "Kayak",
            "Row",
            "Sail",
            "Boat",
        ],
    ),
    (
        "Air",
        &[
            "Parachute",
            "Paraglide",
            "Hang Glide",
            "Wingsuit",
            "BASE Jump",
            "Glider",
            "Plane",
            "Helicopter",
            "Drone",
        ],
    ),
    ("Other", &["Unlisted"]),
    ("Powered", &[]),
    ("Land", &[]),
];

/// Canonical name of a transport type, matched case-insensitively like MTPW's `name__iexact`.
pub fn canonical_transport(name: &str, parents_only: bool) -> Option<&'static str> {
    for (parent, children) in TRANSPORT_TYPES {
        if parent.eq_ignore_ascii_case(name) {
            return Some(parent);
        }
        if !parents_only {
            if let Some(c) = children.iter().find(|c| c.eq_ignore_ascii_case(name)) {
                return Some(c);
            }
        }
    }
    None
}

/// Which flow stored a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CreatedBy {
    /// `POST sequence/import` (old).
    OldImport,
    /// `POST sequence/create/` (new).
    Create,
}

/// A sequence stored on the fake MTPW.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MtpwSequence {
    /// MTPW's id (uuid).
    pub unique_id: String,
    /// Mapillary sequence key, once imported.
    pub sequence_key: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Canonical transport type name.
    pub transport_type: String,
    /// Tags.
    pub tags: Vec<String>,
    /// `source` form field of `create` (e.g. `mtpdu`).
    pub source: Option<String>,
    /// Which flow created it.
    pub created_by: CreatedBy,
    /// Successful imports of a Mapillary sequence into it.
    pub imports: u32,
    /// Whether it is published (imported).
    pub is_published: bool,
}

/// Snapshot of what the fake MTPW saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MtpwStats {
    /// Stored sequences in creation order (import of a key already stored elsewhere deletes the
    /// other record, as MTPW does).
    pub sequences: Vec<MtpwSequence>,
    /// `POST sequence/create/` calls (including failed ones).
    pub create_calls: u64,
    /// Import calls, old and new (including failed ones).
    pub import_calls: u64,
    /// `mapillary/token/verify` calls.
    pub verify_calls: u64,
    /// Answers with `"status": false`.
    pub errors_as_200: u64,
    /// Tokens issued by the consent page.
    pub tokens_issued: Vec<String>,
    /// Connections dropped by the fault.
    pub connections_dropped: u64,
    /// Requests per route (`"METHOD /route"`).
    pub requests: BTreeMap<String, u64>,
    /// Responses per HTTP status.
    pub responses_by_status: BTreeMap<u16, u64>,
}

impl MtpwStats {
    /// The stored sequence for a Mapillary key.
    pub fn sequence_by_key(&self, key: &str) -> Option<&MtpwSequence> {
        self.sequences
            .iter()
            .find(|s| s.sequence_key.as_deref() == Some(key))
    }
}

struct MtpwState {
    faults: MtpwFaults,
    rng: StdRng,
    token: String,
    revoked: bool,
    token_uses: u64,
    fresh_tokens: u64,
    verified_mapillary_token: Option<String>,
    stats: MtpwStats,
}

struct Shared {
    config: MtpwConfig,
    state: Mutex<MtpwState>,
}

type Sh = Arc<Shared>;

fn make_rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    }
}

/// A running fake MTPW. Dropping it stops the server.
pub struct FakeMtpw {
    shared: Sh,
    running: Running,
    base_url: String,
}

impl FakeMtpw {
    /// Start on the current tokio runtime, bound to 127.0.0.1 (`config.port`, 0 = any).
    pub async fn start(config: MtpwConfig) -> io::Result<FakeMtpw> {
        let listener = server::bind(config.port).await?;
        let (shared, router) = build(config);
        let running = Running::spawn(listener, router)?;
        Ok(FakeMtpw::new(shared, running))
    }

    /// Start on a dedicated thread with its own tokio runtime, for synchronous tests.
    pub fn spawn_blocking_thread(config: MtpwConfig) -> io::Result<FakeMtpw> {
        let (shared, running) = Running::spawn_thread("fake-mtpw", move || async move {
            let listener = server::bind(config.port).await?;
            let (shared, router) = build(config);
            Ok((shared, listener, router))
        })?;
        Ok(FakeMtpw::new(shared, running))
    }

    fn new(shared: Sh, running: Running) -> FakeMtpw {
        let base_url = format!("http://{}", running.addr());
        FakeMtpw {
            shared,
            running,
            base_url,
        }
    }

    /// `http://127.0.0.1:PORT` (`MTP_WEB_URL`); the API is under `/api/v1/`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The implicit-grant consent page (`MTP_WEB_AUTH_URL`): `{base}/o/authorize/`.
    pub fn auth_url(&self) -> String {
        format!("{}/o/authorize/", self.base_url)
    }

    /// The user's currently valid MTPW token.
    pub fn token(&self) -> String {
        lock(&self.shared.state).token.clone()
    }

    /// Snapshot of what the fake has seen so far.
    pub fn stats(&self) -> MtpwStats {
        lock(&self.shared.state).stats.clone()
    }

    /// Replace the faults from now on (the random generator is reseeded from `faults.seed`).
    pub fn set_faults(&self, faults: MtpwFaults) {
        let mut st = lock(&self.shared.state);
        st.rng = make_rng(faults.seed);
        st.faults = faults;
    }

    /// Answer the next `n` authenticated API calls with HTTP 200 `{"error", "status": false}`.
    pub fn inject_errors_as_200(&self, n: u32) {
        lock(&self.shared.state).faults.error_as_200_next = n;
    }

    /// Revoke the current token; the consent page then issues a new one.
    pub fn revoke_token(&self) {
        lock(&self.shared.state).revoked = true;
    }

    /// Stop the server and drop open connections.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

fn build(config: MtpwConfig) -> (Sh, Router) {
    let state = MtpwState {
        rng: make_rng(config.faults.seed),
        faults: config.faults.clone(),
        token: config.token.clone(),
        revoked: false,
        token_uses: 0,
        fresh_tokens: 0,
        verified_mapillary_token: None,
        stats: MtpwStats::default(),
    };
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(state),
    });
    let mut api = Router::new();
    if matches!(shared.config.api, MtpwApi::Old | MtpwApi::Both) {
        api = api
            .route("/api/v1/mapillary/token/verify", post(token_verify))
            .route("/api/v1/mapillary/token/verify/", post(token_verify))
            .route("/api/v1/sequence/import", post(old_import))
            .route("/api/v1/sequence/import/", post(old_import));
    }
    if matches!(shared.config.api, MtpwApi::New | MtpwApi::Both) {
        api = api
            .route("/api/v1/sequence/create", post(create))
            .route("/api/v1/sequence/create/", post(create))
            .route("/api/v1/sequence/import/:unique_id/", put(new_import));
    }
    let api = api.route_layer(middleware::from_fn_with_state(shared.clone(), api_gate));
    let other = Router::new()
        .route("/o/authorize", get(authorize))
        .route("/o/authorize/", get(authorize))
        .route("/__fake/stats", get(fake_stats))
        .route_layer(middleware::from_fn_with_state(shared.clone(), observe));
    let router = api
        .merge(other)
        .fallback(not_found)
        .with_state(shared.clone());
    (shared, router)
}

// ---- middleware ------------------------------------------------------------------------------

fn route_of(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>() {
        Some(p) => format!("{} {}", req.method(), p.as_str()),
        None => format!("{} ?", req.method()),
    }
}

async fn observe(State(sh): State<Sh>, req: Request, next: Next) -> Response {
    let latency = {
        let mut st = lock(&sh.state);
        *st.stats.requests.entry(route_of(&req)).or_default() += 1;
        st.faults.latency_ms
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let resp = next.run(req).await;
    count_status(&sh, resp.status());
    resp
}

fn count_status(sh: &Shared, status: StatusCode) {
    *lock(&sh.state)
        .stats
        .responses_by_status
        .entry(status.as_u16())
        .or_default() += 1;
}

enum Gate {
    Pass,
    Drop,
    Respond(Response),
}

/// Faults and authentication for API calls, in the order a client would meet them on the real
/// stack: network, server errors, DRF authentication, then the view.
async fn api_gate(State(sh): State<Sh>, req: Request, next: Next) -> Response {
    let (latency, gate) = {
        let mut st = lock(&sh.state);
        *st.stats.requests.entry(route_of(&req)).or_default() += 1;
        let f = st.faults.clone();
        let gate = if f.drop_next > 0 {
            st.faults.drop_next -= 1;
            Gate::Drop
        } else if f.drop_connection_ratio > 0.0 && st.rng.gen::<f64>() < f.drop_connection_ratio {
            Gate::Drop
        } else if f.error_5xx_ratio > 0.0 && st.rng.gen::<f64>() < f.error_5xx_ratio {
            let status = if st.rng.gen::<bool>() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Gate::Respond(server_error(status))
        } else if !authenticated(&mut st, req.headers()) {
            // django-oauth-toolkit ignores a bad token, so DRF reports it as missing.
            Gate::Respond(
                (
                    StatusCode::FORBIDDEN,
                    Json(json!({"detail": "Authentication credentials were not provided."})),
                )
                    .into_response(),
            )
        } else if f.error_as_200_next > 0 {
            st.faults.error_as_200_next -= 1;
            st.stats.errors_as_200 += 1;
            Gate::Respond(
                Json(json!({"error": f.error_as_200_message, "status": false})).into_response(),
            )
        } else {
            Gate::Pass
        };
        (f.latency_ms, gate)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let resp = match gate {
        Gate::Pass => next.run(req).await,
        Gate::Respond(resp) => resp,
        Gate::Drop => {
            lock(&sh.state).stats.connections_dropped += 1;
            match req.extensions().get::<ConnControl>().cloned() {
                Some(conn) => conn.kill().await,
                None => server_error(StatusCode::INTERNAL_SERVER_ERROR),
            }
        }
    };
    count_status(&sh, resp.status());
    resp
}

fn authenticated(st: &mut MtpwState, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if st.revoked || token != Some(st.token.as_str()) {
        return false;
    }
    st.token_uses += 1;
    if st
        .faults
        .revoke_token_after
        .is_some_and(|n| st.token_uses >= n)
    {
        st.revoked = true;
    }
    true
}

fn server_error(status: StatusCode) -> Response {
    let body = format!("<h1>Server Error ({})</h1>", status.as_u16());
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found(State(sh): State<Sh>, method: axum::http::Method) -> Response {
    *lock(&sh.state)
        .stats
        .requests
        .entry(format!("{method} (unmatched)"))
        .or_default() += 1;
    count_status(&sh, StatusCode::NOT_FOUND);
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>",
    )
        .into_response()
}

async fn fake_stats(State(sh): State<Sh>) -> Response {
    Json(lock(&sh.state).stats.clone()).into_response()
}

// ---- consent page ----------------------------------------------------------------------------

async fn authorize(State(sh): State<Sh>, Query(q): Query<HashMap<String, String>>) -> Response {
    let cfg = &sh.config;
    if let Some(expected) = &cfg.client_id {
        if q.get("client_id") != Some(expected) {
            return (
                StatusCode::BAD_REQUEST,
                "Invalid client_id parameter value.",
            )
                .into_response();
        }
    }
    if q.get("response_type").map(String::as_str) != Some("token") {
        return (StatusCode::BAD_REQUEST, "Unsupported response_type.").into_response();
    }
    let redirect_uri = q
        .get("redirect_uri")
        .filter(|r| !r.is_empty())
        .cloned()
        .unwrap_or_else(|| cfg.default_redirect_uri.clone());
    let mut params: Vec<(&str, String)> = Vec::new();
    if cfg.deny_consent {
        params.push(("error", "access_denied".to_string()));
    } else {
        let mut st = lock(&sh.state);
        if st.revoked {
            st.fresh_tokens += 1;
            st.token = format!("{}-{}", cfg.token, st.fresh_tokens);
            st.revoked = false;
            st.token_uses = 0;
        }
        let token = st.token.clone();
        st.stats.tokens_issued.push(token.clone());
        params.push(("access_token", token));
        params.push(("expires_in", "36000".to_string()));
        params.push(("token_type", "Bearer".to_string()));
        params.push(("scope", "read write".to_string()));
    }
    if let Some(state) = q.get("state") {
        params.push(("state", state.clone()));
    }
    let fragment = serde_urlencoded::to_string(&params).unwrap_or_default();
    let base = redirect_uri.split('#').next().unwrap_or_default();
    match HeaderValue::from_str(&format!("{base}#{fragment}")) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "Invalid redirect_uri.").into_response(),
    }
}

// ---- request bodies --------------------------------------------------------------------------

/// Django's `request.POST`: url-encoded or multipart form fields; anything else is empty.
fn form_fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
    }
    if mime.eq_ignore_ascii_case("multipart/form-data") {
        let boundary = content_type.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("boundary")
                .then(|| v.trim_matches('"').to_string())
        });
        if let Some(b) = boundary {
            return multipart_fields(body, &b);
        }
    }
    HashMap::new()
}

/// Text fields of a multipart body (enough for the forms MTPDU-like clients send).
fn multipart_fields(body: &[u8], boundary: &str) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut out = HashMap::new();
    for part in text.split(delimiter.as_str()) {
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head.lines().find_map(|l| {
            let lower = l.to_ascii_lowercase();
            if !lower.starts_with("content-disposition:") {
                return None;
            }
            let at = lower.find("name=\"")? + 6;
            let rest = &l[at..];
            Some(rest[..rest.find('"')?].to_string())
        });
        if let Some(name) = name {
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            out.insert(name, value.to_string());
        }
    }
    out
}

/// DRF's `request.data`: JSON, url-encoded or multipart. `None` for JSON that is not an object.
fn request_data(headers: &HeaderMap, body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.to_ascii_lowercase().contains("json") {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        };
    }
    Some(
        form_fields(headers, body)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

// ---- views -----------------------------------------------------------------------------------

fn fail(sh: &Shared, message: &str) -> Response {
    lock(&sh.state).stats.errors_as_200 += 1;
    Json(json!({"error": message, "status": false})).into_response()
}

fn mapillary_token_ok(sh: &Shared, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    match (&sh.config.mapillary_token, &sh.config.mapillary) {
        (Some(valid), _) => token == valid,
        (None, Some(link)) => link.token_is_valid(token),
        (None, None) => true,
    }
}

enum Lookup {
    Found,
    Empty,
    NotOwner,
}

fn lookup_sequence(sh: &Shared, key: &str) -> Lookup {
    let cfg = &sh.config;
    if cfg.foreign_sequence_keys.iter().any(|k| k == key) {
        return Lookup::NotOwner;
    }
    if cfg.empty_sequence_keys.iter().any(|k| k == key) {
        return Lookup::Empty;
    }
    match &cfg.mapillary {
        Some(link) if !link.sequence_is_published(key) => Lookup::Empty,
        _ => Lookup::Found,
    }
}

fn map_user_data(sh: &Shared) -> Value {
    let (username, key) = match &sh.config.mapillary {
        Some(link) => (link.username(), link.user_id()),
        None => (
            sh.config.mapillary_username.clone(),
            sh.config.mapillary_user_key.clone(),
        ),
    };
    json!({
        "about": "",
        "avatar": format!("https://images.mapillary.com/avatars/{key}.png"),
        "created_at": "2020-01-01T00:00:00.000Z",
        "email": format!("{username}@example.com"),
        "key": key,
        "username": username,
    })
}

fn new_unique_id(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.gen();
    // A version-4, RFC 4122 variant uuid, like Django's uuid4 default.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn split_tags(tags: Option<&String>) -> Vec<String> {
    tags.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// `POST /api/v1/mapillary/token/verify` (old flow), form `mapillary_token`.
async fn token_verify(State(sh): State<Sh>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&sh.state).stats.verify_calls += 1;
    let form = form_fields(&headers, &body);
    let token = form.get("mapillary_token").cloned().unwrap_or_default();
    if !mapillary_token_ok(&sh, &token) {
        return fail(&sh, "Mapillary token is invalid");
    }
    lock(&sh.state).verified_mapillary_token = Some(token);
    Json(json!({"status": true, "map_user_data": map_user_data(&sh)})).into_response()
}

/// `POST /api/v1/sequence/import` (old flow): form `sequence_key, name, description,
/// transport_type, tag`. Re-importing a key updates the stored sequence.
async fn old_import(State(sh): State<Sh>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&sh.state).stats.import_calls += 1;
    let form = form_fields(&headers, &body);
    let Some(key) = form.get("sequence_key").filter(|k| !k.is_empty()) else {
        return fail(&sh, "Sequence key is missing");
    };
    let Some(name) = form.get("name").filter(|n| !n.is_empty()) else {
        return fail(&sh, "Sequence Name is missing");
    };
    // The real server looks the key up with the Mapillary token saved by token/verify; without
    // one (or with one revoked since) the lookup finds nothing.
    let verified = lock(&sh.state).verified_mapillary_token.clone();
    if !verified.is_some_and(|t| mapillary_token_ok(&sh, &t)) {
        return fail(&sh, "Sequence is empty");
    }
    match lookup_sequence(&sh, key) {
        Lookup::Found => {}
        Lookup::Empty => return fail(&sh, "Sequence is empty"),
        Lookup::NotOwner => return fail(&sh, "You are not owner of this sequence"),
    }
    let transport = form
        .get("transport_type")
        .and_then(|t| canonical_transport(t, sh.config.parents_only));
    let Some(transport) = transport else {
        return fail(&sh, "Transport type is invalid");
    };
    let description = form.get("description").cloned().unwrap_or_default();
    let tags = split_tags(form.get("tag"));
    let mut st = lock(&sh.state);
    let st = &mut *st;
    if let Some(seq) = st
        .stats
        .sequences
        .iter_mut()
        .find(|s| s.sequence_key.as_deref() == Some(key.as_str()))
    {
        seq.name = name.clone();
        seq.description = description;
        seq.transport_type = transport.to_string();
        seq.tags = tags;
        seq.imports += 1;
        seq.is_published = true;
        return Json(json!({
            "status": "success",
            "message": "Sequence successfully was updated.",
            "unique_id": seq.unique_id,
        }))
        .into_response();
    }
    let unique_id = new_unique_id(&mut st.rng);
    st.stats.sequences.push(MtpwSequence {
        unique_id: unique_id.clone(),
        sequence_key: Some(key.clone()),
        name: name.clone(),
        description,
        transport_type: transport.to_string(),
        tags,
        source: None,
        created_by: CreatedBy::OldImport,
        imports: 1,
        is_published: true,
    });
    Json(json!({
        "status": "success",
        "message": "Sequence successfully was imported.",
        "unique_id": unique_id,
    }))
    .into_response()
}

/// `POST /api/v1/sequence/create/` (new flow): form `name, transport_type, description, tag,
/// source`. Every successful call stores a new sequence.
async fn create(State(sh): State<Sh>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&sh.state).stats.create_calls += 1;
    let form = form_fields(&headers, &body);
    let Some(name) = form.get("name").filter(|n| !n.is_empty()) else {
        return fail(&sh, "Sequence Name is missing");
    };
    let Some(transport) = form.get("transport_type") else {
        return fail(&sh, "Transport type is missing");
    };
    let Some(transport) = canonical_transport(transport, sh.config.parents_only) else {
        return fail(&sh, "Transport type is invalid");
    };
    let mut st = lock(&sh.state);
    let st = &mut *st;
    let unique_id = new_unique_id(&mut st.rng);
    st.stats.sequences.push(MtpwSequence {
        unique_id: unique_id.clone(),
        sequence_key: None,
        name: name.clone(),
        description: form.get("description").cloned().unwrap_or_default(),
        transport_type: transport.to_string(),
        tags: split_tags(form.get("tag")),
        source: form.get("source").cloned(),
        created_by: CreatedBy::Create,
        imports: 0,
        is_published: false,
    });
    Json(json!({
        "status": "success",
        "message": "Sequence successfully was created.",
        "unique_id": unique_id,
    }))
    .into_response()
}

/// `PUT /api/v1/sequence/import/<unique_id>/` (new flow): JSON `{"mapillary_user_token",
/// "mapillary_sequence_key"}`.
async fn new_import(
    State(sh): State<Sh>,
    Path(unique_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&sh.state).stats.import_calls += 1;
    let Some(data) = request_data(&headers, &body) else {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    // The view indexes `data[...]` directly: a missing key is an uncaught KeyError.
    let (Some(token), Some(seq_key)) = (
        data.get("mapillary_user_token"),
        data.get("mapillary_sequence_key"),
    ) else {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    if token.is_null() {
        return fail(&sh, "Mapillary token is missing");
    }
    if !token.as_str().is_some_and(|t| mapillary_token_ok(&sh, t)) {
        return fail(&sh, "Mapillary token is invalid");
    }
    let exists = lock(&sh.state)
        .stats
        .sequences
        .iter()
        .any(|s| s.unique_id == unique_id);
    if !exists {
        // Sequence.objects.get() raising DoesNotExist.
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Some(seq_key) = seq_key.as_str().filter(|k| !k.is_empty()) else {
        return fail(&sh, "Sequence key is missing");
    };
    match lookup_sequence(&sh, seq_key) {
        Lookup::Found => {}
        Lookup::Empty => return fail(&sh, "Sequence is empty"),
        Lookup::NotOwner => return fail(&sh, "You are not owner of this sequence"),
    }
    let mut st = lock(&sh.state);
    // MTPW deletes any other record already holding this key.
    st.stats
        .sequences
        .retain(|s| s.unique_id == unique_id || s.sequence_key.as_deref() != Some(seq_key));
    if let Some(seq) = st
        .stats
        .sequences
        .iter_mut()
        .find(|s| s.unique_id == unique_id)
    {
        seq.sequence_key = Some(seq_key.to_string());
        seq.imports += 1;
        seq.is_published = true;
    }
    Json(json!({
        "status": "success",
        "message": "Sequence successfully was imported. Sequence will be published in about 30 minutes.",
        "unique_id": unique_id,
    }))
    .into_response()
}
