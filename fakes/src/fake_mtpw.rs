//! A local fake of the Map the Paths Web API (trek-view/mtp-web `api/views.py`, `api/urls.py`), with
//! switchable faults.
//!
//! Faithful where clients get it wrong: errors are HTTP 200 with `{"error", "status": false}`,
//! the old endpoints and `sequence/create/` read form fields only (a JSON body means "Sequence
//! Name is missing"), a `PUT sequence/import/<id>/` naming an unknown sequence is a 500 like the real
//! view's uncaught `DoesNotExist`, `create` is not idempotent, and a repeated import strips the
//! sequence's tags (see [`new_import`]).
//!
//! The real server's rules, each from its source in trek-view/mtp-web:
//! - `SequenceCreate` (`api/views.py`) saves the sequence row *before* its tag loop. A name longer than
//!   100 characters fails that save (`Sequence.name` is `CharField(max_length=100)`, `sequence/models.py`;
//!   PostgreSQL refuses the value): HTTP 500, no row. A tag longer than 50 characters fails the tag's own
//!   save (`Tag.name` is `CharField(max_length=50)`, `sys_setting/models.py`) after the row exists: HTTP
//!   500 with the row kept, so a client that repeats the create makes a second sequence.
//! - Tags: the form field `tag` is split on `,` without trimming; an empty value attaches a tag named `""`;
//!   `Tag.save()` lower-cases the name, and the loop after it removes every tag whose stored name is not
//!   literally in the split list, so a tag with capitals is added and removed again. The `^[0-9a-zA-Z-]*$`
//!   `RegexValidator` on `Tag.name` is not run by `save()` (Django runs validators only in `full_clean`), so
//!   the API stores tags the web forms would refuse (assumption from Django's documented behaviour).
//! - Login: django-oauth-toolkit is mounted under `accounts/` (`config/urls.py`, `accounts/urls.py`), so the
//!   consent page is `/accounts/authorize/`; `OAUTH2_PROVIDER.ALLOWED_REDIRECT_URI_SCHEMES` is
//!   `["app.mtp.desktop"]` and `ACCESS_TOKEN_EXPIRE_SECONDS` is 600000000 (`config/settings/base.py`); a
//!   `redirect_uri` must equal one registered for the application (django-oauth-toolkit's
//!   `Application.redirect_uri_allowed`), else the page answers 400 without redirecting.
//! - Mapillary: the server checks the user's Mapillary token and fetches the sequence through Mapillary's
//!   API v3 (`lib/mapillary.py`, `root_url = 'https://a.mapillary.com/v3/'`), which Mapillary retired.
//!   [`MapillaryCheck`] chooses between a server whose check works and the public code as it is.
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

/// How the fake's import checks the Mapillary token and sequence (trek-view/mtp-web `lib/mapillary.py`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum MapillaryCheck {
    /// The check works (a server whose Mapillary calls reach a live API): the token and key are checked
    /// against [`MtpwConfig::mapillary_token`] / the linked fake Mapillary. An assumption: the public code
    /// cannot do this any more.
    #[default]
    Works,
    /// The public code against the retired v3 API: `get_mapillary_user()` finds no user, so every import and
    /// token verify answers `{"error": "Mapillary token is invalid", "status": false}` whatever the token.
    V3Retired,
    /// The v3 host does not answer at all: the uncaught `requests` error is an HTTP 500.
    V3Unreachable,
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
    /// Handle the next N `PUT sequence/import/<id>/` calls, then drop the connection without an answer
    /// (the answer is lost; whatever the import did stays done).
    pub lose_import_answers: u32,
    /// Answer the next N `POST sequence/create/` calls 503 before the view runs (nothing is created):
    /// an assumption, as for `error_5xx_ratio` (any call of a Django app behind a proxy can fail so),
    /// aimed at the one call that must never be repeated blindly.
    pub fail_create_next: u32,
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
            lose_import_answers: 0,
            fail_create_next: 0,
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
    /// Redirect URIs registered for the OAuth application; a `redirect_uri` must be one of them, and
    /// only the `app.mtp.desktop` scheme is allowed at all.
    pub registered_redirect_uris: Vec<String>,
    /// How imports check Mapillary (changeable with [`FakeMtpw::set_mapillary_check`]).
    pub mapillary_check: MapillaryCheck,
}

/// The only redirect scheme the real server allows (`MTPU_SCHEME`, trek-view/mtp-web
/// `config/settings/base.py`).
pub const ALLOWED_REDIRECT_SCHEME: &str = "app.mtp.desktop";

/// `ACCESS_TOKEN_EXPIRE_SECONDS` (trek-view/mtp-web `config/settings/base.py`).
pub const ACCESS_TOKEN_EXPIRE_SECONDS: u64 = 600_000_000;

/// `Sequence.name` `max_length` (trek-view/mtp-web `sequence/models.py`).
pub const MAX_NAME_CHARS: usize = 100;

/// `Tag.name` `max_length` (trek-view/mtp-web `sys_setting/models.py`).
pub const MAX_TAG_CHARS: usize = 50;

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
            registered_redirect_uris: vec!["app.mtp.desktop://oauth".to_string()],
            mapillary_check: MapillaryCheck::Works,
        }
    }
}

/// Transport types MTPW knows, parent → children: MTPDU's `transports/transport-methods.json`
/// (trek-view/mtp-desktop-uploader) with Plane, Helicopter and Drone under Air. An assumption: the real
/// server keeps its `TransType` rows in its database, not in the repository. `Powered` and `Land` are the
/// 2020 parents, kept without children.
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
    /// Times a repeated import deleted this very row and re-created it without its tags (and tour
    /// links, which the fake does not hold): the real view's quirk, see [`new_import`].
    pub rows_recreated: u32,
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
    /// 500/503 answers injected by `error_5xx_ratio`. Test instrumentation (proves the fault fired).
    pub server_errors_injected: u64,
    /// Requests per route (`"METHOD /route"`).
    pub requests: BTreeMap<String, u64>,
    /// Injected 5xx answers and dropped connections per route (test instrumentation: proves a fault
    /// reached a given call, e.g. the create).
    pub faults_by_route: BTreeMap<String, u64>,
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
    mapillary_check: MapillaryCheck,
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

    /// The implicit-grant consent page (`MTP_WEB_AUTH_URL`): `{base}/accounts/authorize/`.
    pub fn auth_url(&self) -> String {
        format!("{}/accounts/authorize/", self.base_url)
    }

    /// Switch how imports check Mapillary from now on.
    pub fn set_mapillary_check(&self, check: MapillaryCheck) {
        lock(&self.shared.state).mapillary_check = check;
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
        mapillary_check: config.mapillary_check,
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
        .route("/accounts/authorize/", get(authorize))
        .route("/__fake/stats", get(fake_stats))
        .route_layer(middleware::from_fn_with_state(shared.clone(), observe));
    let router = api
        .merge(other)
        .fallback(not_found)
        .with_state(shared.clone());
    (shared, router)
}

// ---- middleware ------------------------------------------------------------------------------

/// The route of the later API's create, as [`route_of`] names it.
const CREATE_ROUTE: &str = "POST /api/v1/sequence/create/";

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
        let route = route_of(&req);
        *st.stats.requests.entry(route.clone()).or_default() += 1;
        let f = st.faults.clone();
        let injected_before = st.stats.server_errors_injected;
        let gate = if f.fail_create_next > 0 && route == CREATE_ROUTE {
            st.faults.fail_create_next -= 1;
            st.stats.server_errors_injected += 1;
            Gate::Respond(server_error(StatusCode::SERVICE_UNAVAILABLE))
        } else if f.drop_next > 0 {
            st.faults.drop_next -= 1;
            Gate::Drop
        } else if f.drop_connection_ratio > 0.0 && st.rng.gen::<f64>() < f.drop_connection_ratio {
            Gate::Drop
        } else if f.error_5xx_ratio > 0.0 && st.rng.gen::<f64>() < f.error_5xx_ratio {
            st.stats.server_errors_injected += 1;
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
        if matches!(gate, Gate::Drop) || st.stats.server_errors_injected > injected_before {
            *st.stats.faults_by_route.entry(route).or_default() += 1;
        }
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
    let redirect_uri = match q.get("redirect_uri").filter(|r| !r.is_empty()) {
        Some(given) => {
            let scheme_allowed = given
                .split_once(':')
                .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(ALLOWED_REDIRECT_SCHEME));
            if !scheme_allowed || !cfg.registered_redirect_uris.iter().any(|r| r == given) {
                // django-oauth-toolkit cannot redirect to an unregistered URI: it shows its error page.
                return (StatusCode::BAD_REQUEST, "Mismatching redirect URI.").into_response();
            }
            given.clone()
        }
        None => cfg.default_redirect_uri.clone(),
    };
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
        params.push(("expires_in", ACCESS_TOKEN_EXPIRE_SECONDS.to_string()));
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

/// What the view answers when its Mapillary v3 call cannot work ([`MapillaryCheck`]).
fn retired_v3_answer(sh: &Shared) -> Option<Response> {
    let check = lock(&sh.state).mapillary_check;
    match check {
        MapillaryCheck::Works => None,
        MapillaryCheck::V3Retired => Some(fail(sh, "Mapillary token is invalid")),
        MapillaryCheck::V3Unreachable => Some(server_error(StatusCode::INTERNAL_SERVER_ERROR)),
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

/// `SequenceCreate`'s tag loop (trek-view/mtp-web `api/views.py`): each piece of `tag.split(',')` becomes
/// a tag saved lower-cased (`Tag.save()`, `sys_setting/models.py`), then every tag whose stored name is not
/// literally one of the pieces is removed again. `Err(kept)` when a piece is longer than
/// [`MAX_TAG_CHARS`]: the tag's save fails (HTTP 500) with the tags before it attached.
fn create_tag_loop(tag: &str) -> Result<Vec<String>, Vec<String>> {
    let pieces: Vec<&str> = tag.split(',').collect();
    let mut attached: Vec<String> = Vec::new();
    for piece in &pieces {
        if piece.chars().count() > MAX_TAG_CHARS {
            return Err(attached);
        }
        let name = piece.to_lowercase();
        if !attached.contains(&name) {
            attached.push(name);
        }
    }
    attached.retain(|name| pieces.contains(&name.as_str()));
    Ok(attached)
}

/// `POST /api/v1/mapillary/token/verify` (old flow), form `mapillary_token`.
async fn token_verify(State(sh): State<Sh>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&sh.state).stats.verify_calls += 1;
    let form = form_fields(&headers, &body);
    let token = form.get("mapillary_token").cloned().unwrap_or_default();
    if token.is_empty() {
        return fail(&sh, "Mapillary token is invalid");
    }
    if let Some(answer) = retired_v3_answer(&sh) {
        return answer;
    }
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
        rows_recreated: 0,
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
    if name.chars().count() > MAX_NAME_CHARS {
        // `sequence.save()` fails on the too-long name: no row.
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut st = lock(&sh.state);
    let st = &mut *st;
    let unique_id = new_unique_id(&mut st.rng);
    // `sequence.save()` comes before the tag loop: the row exists whatever the tags do.
    st.stats.sequences.push(MtpwSequence {
        unique_id: unique_id.clone(),
        sequence_key: None,
        name: name.clone(),
        description: form.get("description").cloned().unwrap_or_default(),
        transport_type: transport.to_string(),
        tags: Vec::new(),
        source: form.get("source").cloned(),
        created_by: CreatedBy::Create,
        imports: 0,
        rows_recreated: 0,
        is_published: false,
    });
    if let Some(tag) = form.get("tag") {
        let (tags, failed) = match create_tag_loop(tag) {
            Ok(tags) => (tags, false),
            Err(kept) => (kept, true),
        };
        if let Some(row) = st.stats.sequences.last_mut() {
            row.tags = tags;
        }
        if failed {
            return server_error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    Json(json!({
        "status": "success",
        "message": "Sequence successfully was created.",
        "unique_id": unique_id,
    }))
    .into_response()
}

/// `PUT /api/v1/sequence/import/<unique_id>/` (new flow): JSON `{"mapillary_user_token",
/// "mapillary_sequence_key"}`, in the order of trek-view/mtp-web `api/views.py` `SequenceImport.put`:
/// - `Sequence.objects.get(unique_id=...)` first: an unknown id raises `DoesNotExist` (HTTP 500);
/// - no `mapillary_user_token` key: 200 `"Mapillary token is missing"`;
/// - the token is checked with Mapillary (`get_mapillary_user`) before the key is looked at:
///   `"Mapillary token is invalid"`;
/// - no `mapillary_sequence_key` key: 200 `"Sequence key is missing"`; Mapillary knows no such sequence:
///   `"Sequence is empty"`; someone else's: `"You are not owner of this sequence"`;
/// - then `Sequence.objects.filter(seq_key=seq_key)[:1]`: the first row already holding the key is
///   deleted with its tour links, unless `seq.unique_id == unique_id`; that compares a `UUID` with the
///   URL's string, which is never equal, so a repeated import deletes the sequence's *own* row (its tags,
///   a many-to-many, and `TourSequence` rows go with it); the following `sequence.save()` inserts the row
///   again (Django's save falls back to an INSERT when the UPDATE matches no row), without its tags;
/// - answers `{"status": "success", "message": "... in about 10 minutes.", "unique_id"}`.
async fn new_import(State(sh): State<Sh>, Path(unique_id): Path<String>, req: Request) -> Response {
    let control = req.extensions().get::<ConnControl>().cloned();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let answer = import_answer(&sh, &unique_id, &headers, &body);
    let lose = {
        let mut st = lock(&sh.state);
        let lose = st.faults.lose_import_answers > 0;
        if lose {
            st.faults.lose_import_answers -= 1;
        }
        lose
    };
    match (lose, control) {
        (true, Some(control)) => control.kill().await,
        _ => answer,
    }
}

fn import_answer(sh: &Sh, unique_id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    lock(&sh.state).stats.import_calls += 1;
    let exists = lock(&sh.state)
        .stats
        .sequences
        .iter()
        .any(|s| s.unique_id == unique_id);
    if !exists {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Some(data) = request_data(headers, body) else {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let Some(token) = data.get("mapillary_user_token") else {
        return fail(sh, "Mapillary token is missing");
    };
    if let Some(answer) = retired_v3_answer(sh) {
        return answer;
    }
    if !token.as_str().is_some_and(|t| mapillary_token_ok(sh, t)) {
        return fail(sh, "Mapillary token is invalid");
    }
    let Some(seq_key) = data.get("mapillary_sequence_key") else {
        return fail(sh, "Sequence key is missing");
    };
    let seq_key = seq_key.as_str().unwrap_or_default();
    match lookup_sequence(sh, seq_key) {
        Lookup::Found if !seq_key.is_empty() => {}
        Lookup::Found | Lookup::Empty => return fail(sh, "Sequence is empty"),
        Lookup::NotOwner => return fail(sh, "You are not owner of this sequence"),
    }
    let mut st = lock(&sh.state);
    let holder = st
        .stats
        .sequences
        .iter()
        .position(|s| s.sequence_key.as_deref() == Some(seq_key));
    if let Some(at) = holder {
        if st.stats.sequences[at].unique_id == unique_id {
            let own = &mut st.stats.sequences[at];
            own.tags.clear();
            own.rows_recreated += 1;
        } else {
            st.stats.sequences.remove(at);
        }
    }
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
        "message": "Sequence successfully was imported. Sequence will be published in about 10 minutes.",
        "unique_id": unique_id,
    }))
    .into_response()
}
