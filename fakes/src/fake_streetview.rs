//! A fake of Google's OAuth 2.0 for installed apps and the parts of the Street View Publish API the
//! Street View provider uses.
//!
//! Sources, cited per behaviour below:
//! - the API's protobuf definitions, `googleapis/googleapis` `google/streetview/publish/v1/`
//!   (`streetview_publish.proto`: methods, HTTP paths and the error codes each returns;
//!   `resources.proto`: `UploadRef`, `Photo`, `MapsPublishStatus`, `Connection`; `rpcmessages.proto`:
//!   list filters and pages, batch requests and per-photo `status`), cited as "proto";
//! - the REST reference and "Limits" page (developers.google.com/streetview/publish): 2,000 queries a
//!   day per project, 75 MB and 100 megapixels a photo;
//! - Google's OAuth 2.0 for native apps (developers.google.com/identity/protocols/oauth2/native-app):
//!   loopback redirect, PKCE, the token answers and `invalid_grant`;
//! - the API design guide's error model (`google.rpc.Status` in `{"error": {code, message, status}}`,
//!   `google/rpc/code.proto` for the HTTP status of each code);
//! - the request shapes of MTP Desktop Uploader (`app/scripts/integrations/google.ts`: startUpload with an
//!   empty body, the bytes POSTed as `image/jpeg`, create with `uploadReference`, `pose`, `captureTime`
//!   as `{seconds}`) and gopro2gsv (`src/gsv.py`: `X-Goog-Upload-Protocol: raw`).
//!
//! Where the sources are silent the fake says "assumption". Facts are summarised in
//! `docs/providers/streetview.md`. Not modelled: photo sequences (video), places, `photo.update` and
//! `photo.delete` over HTTP, download URLs, rights transfers.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use crate::fake_mapillary::server::{self, lock, ConnControl, Running};

/// The API's only scope (proto: `oauth_scopes`).
pub const SCOPE: &str = "https://www.googleapis.com/auth/streetviewpublish";

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct StreetViewFaults {
    /// The consent page denies: the redirect carries `error=access_denied` (native-app guide).
    pub deny_consent: bool,
    /// Create the next `n` photos, then drop the connection without an answer (the answer is lost).
    pub lose_create_answers: u32,
    /// Answer the next `n` API requests with 503 `UNAVAILABLE` (assumption: a front end hiccup).
    pub api_503: u32,
    /// The account's storage is full: creates answer `RESOURCE_EXHAUSTED` (proto, `CreatePhoto`).
    pub storage_full: bool,
    /// Photos created from now on are rejected by review (`REJECTED_UNKNOWN`) instead of published.
    pub reject_review: bool,
    /// The project lacks the API: every API request answers `PERMISSION_DENIED` (assumption: the
    /// message Google gives for a disabled API is not modelled word for word).
    pub api_disabled: bool,
    /// Held before each photo's bytes are read: a slow uplink (test instrumentation, so a run can
    /// be cancelled between two photos).
    pub upload_delay: Duration,
}

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct StreetViewConfig {
    /// Port (0 = any).
    pub port: u16,
    /// The OAuth client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The account's id, in upload URLs (proto `UploadRef`: `.../media/user/{account_id}/photo/{ref}`).
    pub account_id: String,
    /// Access token lifetime (native-app guide: `expires_in` 3599 s).
    pub token_ttl: Duration,
    /// Queries a day (Limits page: 2,000).
    pub daily_quota: u64,
    /// The quota day's length: a day, scaled down by tests; days start a third of the way in (08:00
    /// UTC, midnight Pacific standard time: Cloud quotas reset at midnight Pacific; assumption: the
    /// standard-time offset all year, as the provider assumes).
    pub day: Duration,
    /// How long an upload URL stays usable (assumption: the sources give no lifetime).
    pub upload_url_ttl: Duration,
    /// How long a new photo is being indexed: not listed (proto `ListPhotos`: "recently created photos
    /// that are still being indexed are not returned") and `UNAVAILABLE` to gets (proto `GetPhoto`).
    pub indexing: Duration,
    /// How long review takes before `mapsPublishStatus` is decided (assumption: hours to days in
    /// reality; tests shorten it).
    pub review: Duration,
    /// Faults.
    pub faults: StreetViewFaults,
}

impl Default for StreetViewConfig {
    fn default() -> Self {
        StreetViewConfig {
            port: 0,
            client_id: "123456789012-fakefakefakefakefakefakefakefake.apps.googleusercontent.com"
                .into(),
            client_secret: "GOCSPX-fake-street-view-secret".into(),
            account_id: "104711".into(),
            token_ttl: Duration::from_secs(3599),
            daily_quota: 2000,
            day: Duration::from_secs(86_400),
            upload_url_ttl: Duration::from_secs(3600),
            indexing: Duration::from_millis(200),
            review: Duration::from_millis(500),
            faults: StreetViewFaults::default(),
        }
    }
}

/// A photo as the fake holds it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldPhoto {
    /// Id.
    pub id: String,
    /// The upload reference it was made from.
    pub upload_url: String,
    /// `pose.latLngPair`.
    pub latitude: f64,
    /// `pose.latLngPair`.
    pub longitude: f64,
    /// `captureTime`, RFC 3339.
    pub capture_time: String,
    /// Bytes received.
    pub bytes: usize,
    /// Connections' target ids.
    pub connections: Vec<String>,
    /// Rejected by review.
    pub rejected: bool,
    #[serde(skip)]
    created: Instant,
}

/// What the fake saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreetViewStats {
    /// Every request, `METHOD /path`, in order.
    pub requests: Vec<String>,
    /// Photos by id, in creation order of ids.
    pub photos: BTreeMap<String, HeldPhoto>,
    /// Code exchanges and refreshes answered.
    pub token_grants: u32,
    /// API requests counted against the quota.
    pub counted: u64,
    /// Answers `RESOURCE_EXHAUSTED` for the quota.
    pub quota_refusals: u32,
}

impl StreetViewStats {
    /// Requests whose whole line is `line` (`POST /v1/photo` counts creates only).
    pub fn count(&self, line: &str) -> usize {
        self.requests.iter().filter(|r| *r == line).count()
    }
}

struct Upload {
    created: Instant,
    bytes: Option<Vec<u8>>,
    used: bool,
}

struct Consent {
    redirect_uri: String,
    challenge: Option<String>,
}

struct StreetViewState {
    faults: StreetViewFaults,
    stats: StreetViewStats,
    codes: BTreeMap<String, Consent>,
    access: BTreeMap<String, Instant>,
    refresh: BTreeSet<String>,
    uploads: BTreeMap<String, Upload>,
    quota_day: i64,
    quota_used: u64,
    next_id: u64,
}

struct Shared {
    config: StreetViewConfig,
    state: Mutex<StreetViewState>,
    base_url: Mutex<String>,
}

type Sh = Arc<Shared>;

/// A running fake. Dropping it stops the server.
pub struct FakeStreetView {
    shared: Sh,
    running: Running,
    base_url: String,
}

impl FakeStreetView {
    /// Start on the current tokio runtime, on 127.0.0.1.
    pub async fn start(config: StreetViewConfig) -> io::Result<FakeStreetView> {
        let listener = server::bind(config.port).await?;
        let (shared, router) = build(config);
        let running = Running::spawn(listener, router)?;
        let base_url = format!("http://{}", running.addr());
        *lock(&shared.base_url) = base_url.clone();
        Ok(FakeStreetView {
            shared,
            running,
            base_url,
        })
    }

    /// The API root (`GOOGLE_STREETVIEW_API_URL`).
    pub fn api_url(&self) -> String {
        self.base_url.clone()
    }

    /// The consent page (`GOOGLE_OAUTH_AUTH_URL`).
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url)
    }

    /// The token endpoint (`GOOGLE_OAUTH_TOKEN_URL`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// The settings.
    pub fn config(&self) -> &StreetViewConfig {
        &self.shared.config
    }

    /// What the fake has seen.
    pub fn stats(&self) -> StreetViewStats {
        lock(&self.shared.state).stats.clone()
    }

    /// Replace the faults from now on.
    pub fn set_faults(&self, faults: StreetViewFaults) {
        lock(&self.shared.state).faults = faults;
    }

    /// Every access token issued so far stops working (expired early or revoked).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.state).access.clear();
    }

    /// The user revokes mtp's access: refresh tokens stop working too.
    pub fn revoke(&self) {
        let mut st = lock(&self.shared.state);
        st.access.clear();
        st.refresh.clear();
    }

    /// Another client of the same project used `n` queries of today's quota (the quota is per project).
    pub fn use_quota(&self, n: u64) {
        let day = quota_day(&self.shared.config);
        let mut st = lock(&self.shared.state);
        roll(&mut st, day);
        st.quota_used += n;
    }

    /// Stop the server.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

fn build(config: StreetViewConfig) -> (Sh, Router) {
    let state = StreetViewState {
        faults: config.faults.clone(),
        stats: StreetViewStats::default(),
        codes: BTreeMap::new(),
        access: BTreeMap::new(),
        refresh: BTreeSet::new(),
        uploads: BTreeMap::new(),
        quota_day: 0,
        quota_used: 0,
        next_id: 7000,
    };
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(state),
        base_url: Mutex::new(String::new()),
    });
    // The API's paths carry colons mid-segment (`/v1/photo:startUpload`), which the router's path
    // syntax reads as parameters: the API is dispatched by hand in `api`.
    let router = Router::new()
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/token", axum::routing::post(token))
        .route("/__fake/stats", get(fake_stats))
        .fallback(api)
        .with_state(shared.clone());
    (shared, router)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn quota_day(config: &StreetViewConfig) -> i64 {
    let day = config.day.as_millis().max(1) as i64;
    (now_ms() - day / 3).div_euclid(day)
}

fn roll(st: &mut StreetViewState, day: i64) {
    if st.quota_day != day {
        st.quota_day = day;
        st.quota_used = 0;
    }
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The `google.rpc.Status` envelope (design guide "Errors"): HTTP status from `code.proto`.
fn rpc_error(http: u16, status: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({"error": {"code": http, "message": message, "status": status}})),
    )
        .into_response()
}

/// An OAuth error (native-app guide: `{"error": "invalid_grant", "error_description": ...}`).
fn oauth_error(http: u16, error: &str, description: &str) -> Response {
    (
        StatusCode::from_u16(http).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `GET /o/oauth2/v2/auth`: the consent page, approving at once (assumption: stands in for the user
/// pressing Allow). Checks (native-app guide): a known `client_id`, `response_type=code`, a loopback
/// `redirect_uri` on `http://127.0.0.1` (any port) and the scope; the PKCE challenge is kept for the
/// exchange. An invalid request is a 400 page (assumption: Google shows an error page instead of
/// redirecting).
async fn authorize(
    State(shared): State<Sh>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect = get("redirect_uri");
    if get("client_id") != shared.config.client_id
        || get("response_type") != "code"
        || !(redirect.starts_with("http://127.0.0.1:") || redirect.starts_with("http://localhost:"))
        || !get("scope").split(' ').any(|s| s == SCOPE)
    {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response();
    }
    let challenge = match get("code_challenge_method").as_str() {
        "S256" => Some(get("code_challenge")),
        "" => None,
        _ => return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response(),
    };
    let state = get("state");
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let query = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap_or_default();
    let mut st = lock(&shared.state);
    if st.faults.deny_consent {
        let q = query(&[("error", "access_denied"), ("state", &state)]);
        return Redirect::to(&format!("{redirect}{sep}{q}")).into_response();
    }
    let code = format!("4/{}", random_token());
    st.codes.insert(
        code.clone(),
        Consent {
            redirect_uri: redirect.clone(),
            challenge,
        },
    );
    let q = query(&[("state", &state), ("code", &code), ("scope", SCOPE)]);
    Redirect::to(&format!("{redirect}{sep}{q}")).into_response()
}

fn issue(shared: &Sh, st: &mut StreetViewState, with_refresh: bool) -> Value {
    let access = format!("ya29.{}", random_token());
    st.access
        .insert(access.clone(), Instant::now() + shared.config.token_ttl);
    st.stats.token_grants += 1;
    let mut answer = json!({"access_token": access, "expires_in": shared.config.token_ttl.as_secs(),
                            "scope": SCOPE, "token_type": "Bearer"});
    if with_refresh {
        let refresh = format!("1//{}", random_token());
        st.refresh.insert(refresh.clone());
        answer["refresh_token"] = json!(refresh);
    }
    answer
}

/// `POST /token` (native-app guide, "Exchange authorization code for refresh and access tokens" and
/// "Refreshing an access token"): a wrong client is 401 `invalid_client`; a code works once, with the
/// `redirect_uri` it was issued for and the verifier of its PKCE challenge, else 400 `invalid_grant`;
/// the exchange answers a refresh token (the consent asked `access_type=offline`), a refresh answers an
/// access token only; a revoked refresh token is 400 `invalid_grant`.
async fn token(State(shared): State<Sh>, body: Bytes) -> Response {
    let params: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let mut st = lock(&shared.state);
    st.stats.requests.push("POST /token".into());
    if get("client_id") != shared.config.client_id
        || get("client_secret") != shared.config.client_secret
    {
        return oauth_error(401, "invalid_client", "The OAuth client was not found.");
    }
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some(consent) = st.codes.remove(&get("code")) else {
                return oauth_error(400, "invalid_grant", "Malformed auth code.");
            };
            if consent.redirect_uri != get("redirect_uri") {
                return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
            }
            if let Some(challenge) = consent.challenge {
                let verifier = get("code_verifier");
                let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                    &ring::digest::SHA256,
                    verifier.as_bytes(),
                ));
                if computed != challenge {
                    return oauth_error(400, "invalid_grant", "Invalid code verifier.");
                }
            }
            Json(issue(&shared, &mut st, true)).into_response()
        }
        "refresh_token" => {
            if !st.refresh.contains(&get("refresh_token")) {
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
            }
            Json(issue(&shared, &mut st, false)).into_response()
        }
        _ => oauth_error(400, "unsupported_grant_type", "Invalid grant_type."),
    }
}

async fn fake_stats(State(shared): State<Sh>) -> Response {
    Json(lock(&shared.state).stats.clone()).into_response()
}

/// Every API request: logged; counted against the project's daily quota, beyond which it is 429
/// `RESOURCE_EXHAUSTED` (Limits page: queries per day; the byte upload counts too: assumption); then
/// the Bearer token is checked, 401 `UNAUTHENTICATED` when unknown or expired (design guide: code 16,
/// HTTP 401).
fn gate(shared: &Sh, line: String, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let day = quota_day(&shared.config);
    let mut st = lock(&shared.state);
    st.stats.requests.push(line);
    roll(&mut st, day);
    if st.quota_used >= shared.config.daily_quota {
        st.stats.quota_refusals += 1;
        return Err(Box::new(rpc_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service \
             'streetviewpublish.googleapis.com'.",
        )));
    }
    st.quota_used += 1;
    st.stats.counted += 1;
    if st.faults.api_503 > 0 {
        st.faults.api_503 -= 1;
        return Err(Box::new(rpc_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = st
        .access
        .get(token)
        .is_some_and(|until| *until > Instant::now());
    if !valid {
        return Err(Box::new(rpc_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )));
    }
    if st.faults.api_disabled {
        return Err(Box::new(rpc_error(
            403,
            "PERMISSION_DENIED",
            "Street View Publish API has not been used in project 0 before or it is disabled.",
        )));
    }
    Ok(())
}

/// The API, dispatched by method and path (proto `google.api.http` options).
async fn api(State(shared): State<Sh>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let control = req.extensions().get::<ConnControl>().cloned();
    let known = matches!(
        (&method, path.as_str()),
        (&Method::POST, "/v1/photo:startUpload")
            | (&Method::POST, "/v1/photo")
            | (&Method::GET, "/v1/photos")
            | (&Method::GET, "/v1/photos:batchGet")
            | (&Method::POST, "/v1/photos:batchUpdate")
    ) || (method == Method::POST && path.starts_with("/media/user/"));
    if !known {
        return rpc_error(404, "NOT_FOUND", "Requested entity was not found.");
    }
    if let Err(response) = gate(&shared, format!("{method} {path}"), &headers) {
        return *response;
    }
    if path.starts_with("/media/user/") {
        let delay = lock(&shared.state).faults.upload_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    // The photo bytes stay under 80 MB here: anything larger is refused at create (Limits page).
    let body = match axum::body::to_bytes(req.into_body(), 80 << 20).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_error(
                400,
                "INVALID_ARGUMENT",
                "Request payload size exceeds the limit.",
            )
        }
    };
    match (method, path.as_str()) {
        (Method::POST, "/v1/photo:startUpload") => start_upload(&shared),
        (Method::POST, "/v1/photo") => create_photo(&shared, &body, control).await,
        (Method::GET, "/v1/photos") => list_photos(&shared, &query),
        (Method::GET, "/v1/photos:batchGet") => batch_get(&shared, &query),
        (Method::POST, "/v1/photos:batchUpdate") => batch_update(&shared, &body),
        (_, path) => upload_bytes(&shared, path, &body),
    }
}

/// `POST /v1/photo:startUpload` (proto `StartUpload`, body `google.protobuf.Empty`): a fresh
/// `UploadRef` whose `uploadUrl` has the documented form.
fn start_upload(shared: &Sh) -> Response {
    let reference = random_token();
    let url = format!(
        "{}/media/user/{}/photo/{reference}",
        lock(&shared.base_url),
        shared.config.account_id
    );
    lock(&shared.state).uploads.insert(
        url.clone(),
        Upload {
            created: Instant::now(),
            bytes: None,
            used: false,
        },
    );
    Json(json!({ "uploadUrl": url })).into_response()
}

/// `POST {uploadUrl}` with the bytes (MTP Desktop Uploader posts `image/jpeg`; gopro2gsv sends
/// `X-Goog-Upload-Protocol: raw`). An unknown, expired or already used reference is 404 `NOT_FOUND`
/// (assumption, mirroring what `CreatePhoto` says of an upload reference that does not exist); bytes
/// sent again to an unused one replace the first (assumption).
fn upload_bytes(shared: &Sh, path: &str, body: &Bytes) -> Response {
    let url = format!("{}{path}", lock(&shared.base_url));
    let ttl = shared.config.upload_url_ttl;
    let mut st = lock(&shared.state);
    match st.uploads.get_mut(&url) {
        Some(upload) if !upload.used && upload.created.elapsed() < ttl => {
            upload.bytes = Some(body.to_vec());
            StatusCode::OK.into_response()
        }
        _ => rpc_error(404, "NOT_FOUND", "The upload reference does not exist."),
    }
}

/// Whether the JPEG carries Photo Sphere XMP declaring an equirectangular projection (proto
/// `StartUpload`: "Photo Sphere XMP metadata must be included"; `CreatePhoto`: INVALID_ARGUMENT "if the
/// uploaded photo is not a 360 photo"). Assumption: the XMP's word is taken; the pixels are not looked
/// at.
fn is_photo_sphere(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some(at) = text.find("ProjectionType") else {
        return false;
    };
    text[at..]
        .chars()
        .take(60)
        .collect::<String>()
        .contains("equirectangular")
}

/// Width and height from the JPEG's start-of-frame segment.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

/// `captureTime` as RFC 3339 (proto3 JSON of `Timestamp`) or `{seconds}` (MTP Desktop Uploader).
fn capture_time(photo: &Value) -> Option<String> {
    match photo.get("captureTime")? {
        Value::String(t) => chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        }),
        Value::Object(o) => {
            let s = o
                .get("seconds")
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))?;
            chrono::DateTime::from_timestamp(s, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        }
        _ => None,
    }
}

fn share_link(id: &str) -> String {
    // Assumption: the form of Google Maps' pano links; the reference says only "share link".
    format!("https://www.google.com/maps/@?api=1&map_action=pano&pano={id}")
}

/// The `Photo` JSON of `photo` (proto `Photo`): `mapsPublishStatus` is
/// `UNSPECIFIED_MAPS_PUBLISH_STATUS` until review is over, then `PUBLISHED` or `REJECTED_UNKNOWN`.
fn photo_json(config: &StreetViewConfig, photo: &HeldPhoto) -> Value {
    let status = if photo.created.elapsed() < config.review {
        "UNSPECIFIED_MAPS_PUBLISH_STATUS"
    } else if photo.rejected {
        "REJECTED_UNKNOWN"
    } else {
        "PUBLISHED"
    };
    json!({
        "photoId": {"id": photo.id},
        "pose": {"latLngPair": {"latitude": photo.latitude, "longitude": photo.longitude}},
        "captureTime": photo.capture_time,
        "connections": photo.connections.iter().map(|t| json!({"target": {"id": t}})).collect::<Vec<_>>(),
        "shareLink": share_link(&photo.id),
        "thumbnailUrl": format!("https://lh3.googleusercontent.com/p/{}", photo.id),
        "mapsPublishStatus": status,
        "transferStatus": "NEVER_TRANSFERRED",
        "viewCount": "0",
    })
}

/// `POST /v1/photo` (proto `CreatePhoto`, body `Photo`): `uploadReference.uploadUrl` must name an
/// upload with bytes that was not used yet, else 404 `NOT_FOUND` ("if the upload reference does not
/// exist"); a photo that is not a 360° one is 400 `INVALID_ARGUMENT`, as is one over 75 MB or 100
/// megapixels (Limits page; assumption: refused here, with this code); a full account is 429
/// `RESOURCE_EXHAUSTED` ("if the account has reached the storage limit"). `pose.latLngPair` is required
/// (assumption: Street View places a photo by it; MTP Desktop Uploader always sends it).
async fn create_photo(shared: &Sh, body: &Bytes, control: Option<ConnControl>) -> Response {
    let photo: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let url = photo
        .pointer("/uploadReference/uploadUrl")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let lat = photo
        .pointer("/pose/latLngPair/latitude")
        .and_then(Value::as_f64);
    let lon = photo
        .pointer("/pose/latLngPair/longitude")
        .and_then(Value::as_f64);
    let (answer, lose) = {
        let ttl = shared.config.upload_url_ttl;
        let mut st = lock(&shared.state);
        if st.faults.storage_full {
            return rpc_error(
                429,
                "RESOURCE_EXHAUSTED",
                "The account has reached the storage limit.",
            );
        }
        let bytes = match st.uploads.get(&url) {
            Some(u) if !u.used && u.created.elapsed() < ttl && u.bytes.is_some() => {
                u.bytes.clone().unwrap_or_default()
            }
            _ => return rpc_error(404, "NOT_FOUND", "The upload reference does not exist."),
        };
        let (Some(lat), Some(lon)) = (lat, lon) else {
            return rpc_error(
                400,
                "INVALID_ARGUMENT",
                "Photo pose.latLngPair is required.",
            );
        };
        if !is_photo_sphere(&bytes) {
            return rpc_error(
                400,
                "INVALID_ARGUMENT",
                "Photo is not a 360 photo: Photo Sphere XMP metadata is missing.",
            );
        }
        if bytes.len() > 75_000_000 {
            return rpc_error(400, "INVALID_ARGUMENT", "Photo is larger than 75 MB.");
        }
        if jpeg_size(&bytes).is_some_and(|(w, h)| u64::from(w) * u64::from(h) > 100_000_000) {
            return rpc_error(
                400,
                "INVALID_ARGUMENT",
                "Photo is larger than 100 megapixels.",
            );
        }
        if let Some(u) = st.uploads.get_mut(&url) {
            u.used = true;
        }
        st.next_id += 1;
        let id = format!("CAoSLEFGMVFpcE{}", st.next_id);
        let held = HeldPhoto {
            id: id.clone(),
            upload_url: url,
            latitude: lat,
            longitude: lon,
            capture_time: capture_time(&photo).unwrap_or_default(),
            bytes: bytes.len(),
            connections: Vec::new(),
            rejected: st.faults.reject_review,
            created: Instant::now(),
        };
        let mut answer = photo_json(&shared.config, &held);
        answer["uploadTime"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        st.stats.photos.insert(id, held);
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
    Json(answer).into_response()
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

/// `GET /v1/photos` (proto `ListPhotos`): the user's photos, without those still being indexed;
/// `filter` with `min_latitude`, `max_latitude`, `min_longitude`, `max_longitude` (AIP-160 `AND`ed
/// comparisons; assumption: `=` means "at least" for `min_` and "at most" for `max_`); `pageSize`
/// (default 100) and `pageToken` (an offset here; assumption: opaque in reality).
fn list_photos(shared: &Sh, query: &str) -> Response {
    let pairs = query_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut bounds: BTreeMap<String, f64> = BTreeMap::new();
    for clause in get("filter").unwrap_or_default().split(" AND ") {
        if let Some((name, value)) = clause.split_once('=') {
            match value.trim().parse::<f64>() {
                Ok(v) => {
                    bounds.insert(name.trim().to_string(), v);
                }
                Err(_) => {
                    return rpc_error(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("Invalid filter: {clause}"),
                    )
                }
            }
        }
    }
    let bound = |k: &str, default: f64| bounds.get(k).copied().unwrap_or(default);
    let size = get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(100);
    let offset = get("pageToken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let st = lock(&shared.state);
    let matching: Vec<&HeldPhoto> = st
        .stats
        .photos
        .values()
        .filter(|p| p.created.elapsed() >= shared.config.indexing)
        .filter(|p| {
            p.latitude >= bound("min_latitude", -90.0)
                && p.latitude <= bound("max_latitude", 90.0)
                && p.longitude >= bound("min_longitude", -180.0)
                && p.longitude <= bound("max_longitude", 180.0)
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|p| photo_json(&shared.config, p))
        .collect();
    let next = if offset + size < matching.len() {
        (offset + size).to_string()
    } else {
        String::new()
    };
    Json(json!({"photos": page, "nextPageToken": next})).into_response()
}

/// `GET /v1/photos:batchGet?photoIds=..` (proto `BatchGetPhotos`): per photo a `PhotoResponse`,
/// `status` 5 `NOT_FOUND` for an unknown id and 14 `UNAVAILABLE` while indexing (proto `GetPhoto`).
fn batch_get(shared: &Sh, query: &str) -> Response {
    let ids: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "photoIds")
        .map(|(_, v)| v)
        .collect();
    if ids.is_empty() {
        return rpc_error(400, "INVALID_ARGUMENT", "photoIds is required.");
    }
    let st = lock(&shared.state);
    let results: Vec<Value> = ids
        .iter()
        .map(|id| match st.stats.photos.get(id) {
            None => json!({"status": {"code": 5, "message": "Photo not found."}}),
            Some(p) if p.created.elapsed() < shared.config.indexing => {
                json!({"status": {"code": 14, "message": "Photo is still being indexed."}})
            }
            Some(p) => json!({"status": {"code": 0}, "photo": photo_json(&shared.config, p)}),
        })
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// `POST /v1/photos:batchUpdate` (proto `BatchUpdatePhotos`): at most 20 requests, else 400
/// `INVALID_ARGUMENT`; each needs `photo.photoId` and an `updateMask` of valid fields (proto
/// `UpdatePhotoRequest`), and a repeated field in the mask is replaced whole. Per photo: unknown id →
/// status 5 `NOT_FOUND`; a connection to an unknown photo → status 3 `INVALID_ARGUMENT` (assumption).
fn batch_update(shared: &Sh, body: &Bytes) -> Response {
    const FIELDS: [&str; 8] = [
        "pose.heading",
        "pose.lat_lng_pair",
        "pose.pitch",
        "pose.roll",
        "pose.level",
        "pose.altitude",
        "connections",
        "places",
    ];
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(updates) = request.get("updatePhotoRequests").and_then(Value::as_array) else {
        return rpc_error(400, "INVALID_ARGUMENT", "updatePhotoRequests is required.");
    };
    if updates.len() > 20 {
        return rpc_error(
            400,
            "INVALID_ARGUMENT",
            "At most 20 UpdatePhotoRequests are allowed.",
        );
    }
    let mut st = lock(&shared.state);
    let mut results = Vec::new();
    for update in updates {
        let id = update
            .pointer("/photo/photoId/id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mask: Vec<String> = update
            .get("updateMask")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(',')
            .map(|f| f.trim().to_string())
            .collect();
        if mask.iter().any(|f| !FIELDS.contains(&f.as_str())) {
            return rpc_error(400, "INVALID_ARGUMENT", "Invalid update mask.");
        }
        let targets: Vec<String> = update
            .pointer("/photo/connections")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|c| {
                        c.pointer("/target/id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !st.stats.photos.contains_key(id) {
            results.push(json!({"status": {"code": 5, "message": "Photo not found."}}));
            continue;
        }
        if mask.iter().any(|f| f == "connections") {
            if targets.iter().any(|t| !st.stats.photos.contains_key(t)) {
                results.push(
                    json!({"status": {"code": 3, "message": "Connection target not found."}}),
                );
                continue;
            }
            if let Some(p) = st.stats.photos.get_mut(id) {
                p.connections = targets;
            }
        }
        let photo = st
            .stats
            .photos
            .get(id)
            .map(|p| photo_json(&shared.config, p));
        results.push(json!({"status": {"code": 0}, "photo": photo}));
    }
    Json(json!({ "results": results })).into_response()
}
