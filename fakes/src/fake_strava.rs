//! A fake of Strava's OAuth and the parts of API v3 the Strava provider uses.
//!
//! Sources, cited per behaviour below: Strava's published API spec (`swagger.json`, as kept in stravalib
//! `src/stravalib/tests/resources/strava_swagger.json`: operations `createUpload`, `getUploadById`,
//! `getActivityById`, `updateActivityById`, `getLoggedInAthlete`, and the `SportType` enumeration
//! generated into stravalib `strava_model.py`), Strava's authentication, uploads and rate-limit pages
//! (developers.strava.com/docs/authentication, /docs/uploads, /docs/rate-limits), and the stravalib
//! client (`client.py` `upload_activity` / `ActivityUploader`, `protocol.py` token exchange and refresh,
//! `util/limiter.py` rate-limit headers, `tests/integration/strava_api_stub.py`). Where the fake
//! simplifies or the sources are silent, it says "assumption". Facts are summarised in
//! `docs/providers/strava.md`.
//!
//! Not modelled: FIT/TCX parsing, segments, privacy, photos, the webhook API, scopes other than
//! `activity:write`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::fake_mapillary::server::{self, lock, ConnControl, Running};
use crate::fake_panoramax::multipart_parts;

/// Strava's `SportType` values (swagger `SportType`, stravalib `strava_model.py`).
pub const SPORT_TYPES: &[&str] = &[
    "AlpineSki",
    "BackcountrySki",
    "Badminton",
    "Basketball",
    "Canoeing",
    "Cricket",
    "Crossfit",
    "Dance",
    "EBikeRide",
    "Elliptical",
    "EMountainBikeRide",
    "Golf",
    "GravelRide",
    "Handcycle",
    "HighIntensityIntervalTraining",
    "Hike",
    "IceSkate",
    "InlineSkate",
    "Kayaking",
    "Kitesurf",
    "MountainBikeRide",
    "NordicSki",
    "Padel",
    "PhysicalTherapy",
    "Pickleball",
    "Pilates",
    "Racquetball",
    "Ride",
    "RockClimbing",
    "RollerSki",
    "Rowing",
    "Run",
    "Sail",
    "Skateboard",
    "Snowboard",
    "Snowshoe",
    "Soccer",
    "Squash",
    "StairStepper",
    "StandUpPaddling",
    "Surfing",
    "Swim",
    "TableTennis",
    "Tennis",
    "TrailRun",
    "Velomobile",
    "VirtualRide",
    "VirtualRow",
    "VirtualRun",
    "Volleyball",
    "Walk",
    "WeightTraining",
    "Wheelchair",
    "Windsurf",
    "Workout",
    "Yoga",
];

/// Upload status texts (stravalib `ActivityUploader` and its integration tests).
const STATUS_PROCESSING: &str = "Your activity is still being processed.";
const STATUS_READY: &str = "Your activity is ready.";
const STATUS_ERROR: &str = "There was an error processing your activity.";
const STATUS_DELETED: &str = "The created activity has been deleted.";

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct StravaFaults {
    /// Create the next `n` uploads, then drop the connection without an answer (the answer is lost).
    pub lose_upload_answers: u32,
    /// Answer the next `n` API requests with 503 (assumption: a proxy in front of the API).
    pub api_503: u32,
    /// The consent page denies: the redirect carries `error=access_denied` (docs/authentication).
    pub deny_consent: bool,
    /// The athlete unticks "Upload your activities": the redirect's `scope` is `read` only
    /// (docs/authentication: `scope` lists the scopes the athlete accepted).
    pub grant_read_only: bool,
    /// The next upload fails processing with this error text (stravalib's integration tests answer
    /// `"error": "Error processing your activity"`).
    pub fail_next_processing: Option<String>,
}

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct StravaConfig {
    /// Port (0 = any).
    pub port: u16,
    /// The API application's client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The athlete who logs in (swagger `getLoggedInAthlete` example: id 1234567890987654321 is too big
    /// for some JSON readers; assumption: a smaller id).
    pub athlete_id: u64,
    /// Their user name.
    pub username: String,
    /// Access token lifetime (docs/authentication: six hours).
    pub token_ttl: Duration,
    /// How long an upload takes to process (assumption: seconds for a small GPX).
    pub processing: Duration,
    /// The short rate-limit window (docs/rate-limits: 15 minutes; tests scale it down).
    pub window: Duration,
    /// `(15-minute, daily)` limits of all requests (docs/rate-limits: 200, 2,000).
    pub limits: (u64, u64),
    /// `(15-minute, daily)` limits of reads (docs/rate-limits: 100, 1,000 for non-upload requests).
    pub read_limits: (u64, u64),
    /// The type an activity gets when nobody sets one (swagger `createUpload`: the file's, else the
    /// athlete's default; assumption: `Ride`).
    pub default_sport_type: String,
    /// Faults.
    pub faults: StravaFaults,
}

impl Default for StravaConfig {
    fn default() -> Self {
        StravaConfig {
            port: 0,
            client_id: "12345".into(),
            client_secret: "strava-fake-secret".into(),
            athlete_id: 134_815,
            username: "marianne_t".into(),
            token_ttl: Duration::from_secs(6 * 3600),
            processing: Duration::from_millis(300),
            window: Duration::from_secs(15 * 60),
            limits: (200, 2000),
            read_limits: (100, 1000),
            default_sport_type: "Ride".into(),
            faults: StravaFaults::default(),
        }
    }
}

/// An upload as the fake holds it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldUpload {
    /// Id.
    pub id: u64,
    /// `external_id` sent.
    pub external_id: Option<String>,
    /// `name` sent.
    pub name: Option<String>,
    /// Trackpoints in the GPX.
    pub points: usize,
    /// The first trackpoint's time, as written.
    pub start_time: Option<String>,
    /// The activity it made.
    pub activity_id: Option<u64>,
    /// Why processing failed.
    pub error: Option<String>,
    #[serde(skip)]
    received: Instant,
    #[serde(skip)]
    processed: bool,
    #[serde(skip)]
    gpx_problem: Option<String>,
}

/// An activity.
#[derive(Debug, Clone, Serialize)]
pub struct HeldActivity {
    /// Id.
    pub id: u64,
    /// `external_id`.
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// `sport_type`.
    pub sport_type: String,
    /// Start time, as the first trackpoint says.
    pub start_time: Option<String>,
    /// The upload that made it.
    pub upload_id: u64,
    /// Deleted by the athlete.
    pub deleted: bool,
    /// `PUT /activities/{id}` received.
    pub updates: u32,
}

/// What the fake saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StravaStats {
    /// Every request, `METHOD /path`, in order.
    pub requests: Vec<String>,
    /// Uploads by id.
    pub uploads: BTreeMap<u64, HeldUpload>,
    /// Activities by id.
    pub activities: BTreeMap<u64, HeldActivity>,
    /// Code exchanges and refreshes answered.
    pub token_grants: u32,
    /// Refresh tokens refused (used or unknown).
    pub refused_refreshes: u32,
    /// Answers 429.
    pub rate_limited: u32,
}

impl StravaStats {
    /// Activities not deleted.
    pub fn live_activities(&self) -> Vec<&HeldActivity> {
        self.activities.values().filter(|a| !a.deleted).collect()
    }

    /// Requests to `/api/v3` (what counts against the rate limits).
    pub fn api_requests(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.contains("/api/v3"))
            .count()
    }
}

#[derive(Default)]
struct Counter {
    window: i64,
    day: i64,
    short: u64,
    long: u64,
}

impl Counter {
    fn count(&mut self, window: i64, day: i64) -> (u64, u64) {
        if day != self.day {
            self.day = day;
            self.long = 0;
        }
        if window != self.window {
            self.window = window;
            self.short = 0;
        }
        self.short += 1;
        self.long += 1;
        (self.short, self.long)
    }
}

struct StravaState {
    faults: StravaFaults,
    stats: StravaStats,
    codes: BTreeMap<String, String>,
    access: BTreeMap<String, i64>,
    refresh: BTreeSet<String>,
    used_refresh: BTreeSet<String>,
    all: Counter,
    reads: Counter,
    next_id: u64,
}

struct Shared {
    config: StravaConfig,
    state: Mutex<StravaState>,
}

type Sh = Arc<Shared>;

/// A running fake Strava. Dropping it stops the server.
pub struct FakeStrava {
    shared: Sh,
    running: Running,
    base_url: String,
}

impl FakeStrava {
    /// Start on the current tokio runtime, on 127.0.0.1.
    pub async fn start(config: StravaConfig) -> io::Result<FakeStrava> {
        let listener = server::bind(config.port).await?;
        let (shared, router) = build(config);
        let running = Running::spawn(listener, router)?;
        let base_url = format!("http://{}", running.addr());
        Ok(FakeStrava {
            shared,
            running,
            base_url,
        })
    }

    /// `http://127.0.0.1:PORT/api/v3` (`STRAVA_API_URL`).
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.base_url)
    }

    /// `http://127.0.0.1:PORT/oauth` (`STRAVA_OAUTH_URL`).
    pub fn oauth_url(&self) -> String {
        format!("{}/oauth", self.base_url)
    }

    /// The settings.
    pub fn config(&self) -> &StravaConfig {
        &self.shared.config
    }

    /// What the fake has seen.
    pub fn stats(&self) -> StravaStats {
        lock(&self.shared.state).stats.clone()
    }

    /// Replace the faults from now on.
    pub fn set_faults(&self, faults: StravaFaults) {
        lock(&self.shared.state).faults = faults;
    }

    /// The athlete deletes an activity.
    pub fn delete_activity(&self, id: u64) {
        if let Some(a) = lock(&self.shared.state).stats.activities.get_mut(&id) {
            a.deleted = true;
        }
    }

    /// Every access token issued so far stops working (as if expired early or revoked).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.state).access.clear();
    }

    /// Another client used up `n` requests of the current windows (the limits are per application).
    pub fn use_requests(&self, n: u64) {
        let (window, day) = windows(&self.shared.config);
        let mut st = lock(&self.shared.state);
        for _ in 0..n {
            st.all.count(window, day);
        }
    }

    /// Stop the server.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

fn build(config: StravaConfig) -> (Sh, Router) {
    let state = StravaState {
        faults: config.faults.clone(),
        stats: StravaStats::default(),
        codes: BTreeMap::new(),
        access: BTreeMap::new(),
        refresh: BTreeSet::new(),
        used_refresh: BTreeSet::new(),
        all: Counter::default(),
        reads: Counter::default(),
        next_id: 1000,
    };
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(state),
    });
    let router = Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/api/v3/athlete", get(athlete))
        .route("/api/v3/uploads", post(create_upload))
        .route("/api/v3/uploads/:id", get(get_upload))
        .route(
            "/api/v3/activities/:id",
            get(get_activity).put(update_activity),
        )
        .route("/__fake/stats", get(fake_stats))
        .with_state(shared.clone());
    (shared, router)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The current short window and day, as indices: windows start at :00, :15, :30, :45 and days at
/// midnight UTC (docs/rate-limits), i.e. at multiples of their length since the epoch; a scaled-down
/// window keeps 96 windows a day.
fn windows(config: &StravaConfig) -> (i64, i64) {
    let length = config.window.as_millis().max(1) as i64;
    let now = now_ms();
    (now / length, now / (length * 96))
}

/// Strava's `Fault` (swagger `fault.json`: `{message, errors: [{resource, field, code}]}`).
fn fault(status: u16, message: &str, resource: &str, field: &str, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({"message": message,
                    "errors": [{"resource": resource, "field": field, "code": code}]})),
    )
        .into_response()
}

fn new_id(st: &mut StravaState) -> u64 {
    st.next_id += 1;
    st.next_id
}

fn random_token() -> String {
    format!("{:040x}", rand::random::<u128>())
}

/// `GET /oauth/authorize`: the consent page, approving at once (assumption: stands in for the athlete
/// pressing Authorize) by redirecting to `redirect_uri` with `state`, `code` and `scope`, or
/// `error=access_denied` (docs/authentication). An unknown `client_id` or a `response_type` other than
/// `code` is a 400 (assumption: the page shows an error).
async fn authorize(
    State(shared): State<Sh>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != shared.config.client_id || get("response_type") != "code" {
        return fault(400, "Bad Request", "Application", "client_id", "invalid");
    }
    let redirect = get("redirect_uri");
    if !(redirect.starts_with("http://127.0.0.1") || redirect.starts_with("http://localhost")) {
        // The redirect must be on the application's callback domain; localhost and 127.0.0.1 are
        // accepted (docs/authentication); the fake's domain is the loopback.
        return fault(400, "Bad Request", "Application", "redirect_uri", "invalid");
    }
    let mut st = lock(&shared.state);
    let state = get("state");
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let query = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap_or_default();
    if st.faults.deny_consent {
        let q = query(&[("state", &state), ("error", "access_denied")]);
        return Redirect::to(&format!("{redirect}{sep}{q}")).into_response();
    }
    let scope = if st.faults.grant_read_only {
        "read".to_string()
    } else {
        // Strava lists the accepted scopes, `read` included (assumption from the docs' example).
        format!("read,{}", get("scope"))
    };
    let code = random_token();
    st.codes.insert(code.clone(), scope.clone());
    let q = query(&[("state", &state), ("code", &code), ("scope", &scope)]);
    Redirect::to(&format!("{redirect}{sep}{q}")).into_response()
}

fn athlete_json(config: &StravaConfig) -> Value {
    // Swagger `getLoggedInAthlete` example fields.
    json!({"id": config.athlete_id, "username": config.username, "resource_state": 2,
           "firstname": "Marianne", "lastname": "Teutenberg", "city": "San Francisco",
           "country": "US"})
}

fn issue(shared: &Sh, st: &mut StravaState) -> Value {
    let access = random_token();
    let refresh = random_token();
    let ttl = shared.config.token_ttl.as_secs() as i64;
    let expires_at = now_ms() / 1000 + ttl;
    st.access.insert(access.clone(), expires_at);
    st.refresh.insert(refresh.clone());
    st.stats.token_grants += 1;
    json!({"token_type": "Bearer", "access_token": access, "refresh_token": refresh,
           "expires_at": expires_at, "expires_in": ttl})
}

/// `POST /oauth/token`: parameters in the form body or the query string (stravalib `protocol.py` sends
/// them as query parameters; Strava's docs as a form). Not rate-limited and without rate headers
/// (stravalib skips the limiter for `/oauth/`). Wrong client → 401 (assumption: the fault's fields).
/// `authorization_code`: a code works once, and the answer carries the athlete (stravalib:
/// "undocumented and could change"). `refresh_token`: a fresh access token and a **new** refresh token;
/// the one sent stops working (stravalib `AccessInfo`: "Once a new refresh token code has been returned,
/// the older code will no longer work"), so a used one is refused with 400 (assumption: the fault's
/// fields).
async fn token(State(shared): State<Sh>, uri: Uri, body: Bytes) -> Response {
    let mut params: BTreeMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    params.extend(
        serde_urlencoded::from_bytes::<BTreeMap<String, String>>(&body).unwrap_or_default(),
    );
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let mut st = lock(&shared.state);
    st.stats.requests.push("POST /oauth/token".into());
    if get("client_id") != shared.config.client_id
        || get("client_secret") != shared.config.client_secret
    {
        return fault(
            401,
            "Authorization Error",
            "Application",
            "client_id",
            "invalid",
        );
    }
    match get("grant_type").as_str() {
        "authorization_code" => {
            if st.codes.remove(&get("code")).is_none() {
                return fault(400, "Bad Request", "AuthorizationCode", "code", "invalid");
            }
            let mut answer = issue(&shared, &mut st);
            answer["athlete"] = athlete_json(&shared.config);
            Json(answer).into_response()
        }
        "refresh_token" => {
            let sent = get("refresh_token");
            if !st.refresh.remove(&sent) {
                st.stats.refused_refreshes += 1;
                return fault(
                    400,
                    "Bad Request",
                    "RefreshToken",
                    "refresh_token",
                    "invalid",
                );
            }
            st.used_refresh.insert(sent);
            Json(issue(&shared, &mut st)).into_response()
        }
        _ => fault(400, "Bad Request", "Application", "grant_type", "invalid"),
    }
}

/// Every `/api/v3` request: logged, counted against the windows, answered with
/// `X-RateLimit-Limit`/`X-RateLimit-Usage` ("15-minute,daily") and, for reads, `X-ReadRateLimit-*`
/// (docs/rate-limits; stravalib `get_rates_from_response_headers`); beyond a limit 429 with a Fault
/// "Rate Limit Exceeded" (docs/rate-limits). Then the Bearer token is checked: unknown or expired →
/// 401 "Authorization Error" (stravalib `_handle_protocol_error` maps 401 to `AccessUnauthorized`;
/// assumption: the fault's fields).
fn gate(
    shared: &Sh,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<HeaderMap, Box<Response>> {
    let (window, day) = windows(&shared.config);
    let read = method == Method::GET;
    let mut st = lock(&shared.state);
    st.stats.requests.push(format!("{method} {path}"));
    let (short, long) = st.all.count(window, day);
    let mut out = HeaderMap::new();
    let pair = |a: u64, b: u64| {
        HeaderValue::from_str(&format!("{a},{b}")).unwrap_or(HeaderValue::from_static("0,0"))
    };
    let (limit_short, limit_long) = shared.config.limits;
    out.insert("x-ratelimit-limit", pair(limit_short, limit_long));
    out.insert("x-ratelimit-usage", pair(short, long));
    let mut over = short > limit_short || long > limit_long;
    if read {
        let (rs, rl) = st.reads.count(window, day);
        let (read_short, read_long) = shared.config.read_limits;
        out.insert("x-readratelimit-limit", pair(read_short, read_long));
        out.insert("x-readratelimit-usage", pair(rs, rl));
        over |= rs > read_short || rl > read_long;
    }
    if over {
        st.stats.rate_limited += 1;
        let mut response = fault(
            429,
            "Rate Limit Exceeded",
            "Application",
            "rate limit",
            "exceeded",
        );
        response.headers_mut().extend(out);
        return Err(Box::new(response));
    }
    if st.faults.api_503 > 0 {
        st.faults.api_503 -= 1;
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = st
        .access
        .get(token)
        .is_some_and(|exp| *exp > now_ms() / 1000);
    if !valid {
        let mut response = fault(
            401,
            "Authorization Error",
            "Athlete",
            "access_token",
            "invalid",
        );
        response.headers_mut().extend(out);
        return Err(Box::new(response));
    }
    Ok(out)
}

fn with_headers(headers: HeaderMap, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().extend(headers);
    response
}

/// `GET /athlete` (swagger `getLoggedInAthlete`).
async fn athlete(State(shared): State<Sh>, headers: HeaderMap) -> Response {
    match gate(&shared, &Method::GET, "/api/v3/athlete", &headers) {
        Ok(h) => with_headers(h, Json(athlete_json(&shared.config))),
        Err(r) => *r,
    }
}

/// The trackpoints of a GPX, and the first one's `<time>`; `Err` says why the file cannot be processed
/// (docs/uploads: GPX trackpoints need a time; assumption: the wording of the error).
fn read_gpx(text: &str) -> Result<(usize, String), String> {
    if !text.contains("<gpx") {
        return Err("Improperly formatted data.".into());
    }
    let points: Vec<&str> = text.split("<trkpt").skip(1).collect();
    if points.is_empty() {
        return Err("The file contains no trackpoints.".into());
    }
    let mut first = None;
    for point in &points {
        let body = point.split("</trkpt>").next().unwrap_or("");
        let Some(time) = body
            .split("<time>")
            .nth(1)
            .and_then(|t| t.split("</time>").next())
        else {
            return Err("Time information is missing from the file.".into());
        };
        first.get_or_insert_with(|| time.trim().to_string());
    }
    Ok((points.len(), first.unwrap_or_default()))
}

fn upload_json(upload: &HeldUpload, deleted: bool) -> Value {
    // Swagger `Upload`: {id, id_str, external_id, error, status, activity_id}.
    let (status, activity) = match (&upload.error, upload.activity_id, upload.processed) {
        (_, _, false) => (STATUS_PROCESSING, None),
        (Some(_), _, _) => (STATUS_ERROR, None),
        (None, Some(_), _) if deleted => (STATUS_DELETED, None),
        (None, id, _) => (STATUS_READY, id),
    };
    json!({"id": upload.id, "id_str": upload.id.to_string(), "external_id": upload.external_id,
           "error": upload.error, "status": status, "activity_id": activity})
}

/// `POST /uploads` (swagger `createUpload`, multipart `file`, `name`, `description`, `trainer`,
/// `commute`, `data_type`, `external_id`): `data_type` must be one of the enumeration's values, `file`
/// must be there (400 otherwise; assumption: the fault's fields); 201 with the `Upload`, still
/// processing (docs/uploads: processing is asynchronous).
async fn create_upload(State(shared): State<Sh>, headers: HeaderMap, req: Request) -> Response {
    let control = req.extensions().get::<ConnControl>().cloned();
    let rate = match gate(&shared, &Method::POST, "/api/v3/uploads", &headers) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 32 << 20).await {
        Ok(b) => b,
        Err(_) => return fault(400, "Bad Request", "Upload", "file", "invalid"),
    };
    let parts = multipart_parts(&content_type, &body).unwrap_or_default();
    let field = |name: &str| {
        parts
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, bytes)| String::from_utf8_lossy(bytes).to_string())
    };
    let data_type = field("data_type").unwrap_or_default();
    if !["fit", "fit.gz", "tcx", "tcx.gz", "gpx", "gpx.gz"].contains(&data_type.as_str()) {
        return with_headers(
            rate,
            fault(400, "Bad Request", "Upload", "data_type", "invalid"),
        );
    }
    let Some(file) = field("file") else {
        return with_headers(rate, fault(400, "Bad Request", "Upload", "file", "empty"));
    };
    let (points, start_time, gpx_problem) = match read_gpx(&file) {
        Ok((n, t)) => (n, Some(t), None),
        Err(why) => (0, None, Some(why)),
    };
    let (answer, lose) = {
        let mut st = lock(&shared.state);
        let id = new_id(&mut st);
        let upload = HeldUpload {
            id,
            external_id: field("external_id"),
            name: field("name"),
            points,
            start_time,
            activity_id: None,
            error: None,
            received: Instant::now(),
            processed: false,
            gpx_problem,
        };
        let answer = upload_json(&upload, false);
        st.stats.uploads.insert(id, upload);
        let lose = st.faults.lose_upload_answers > 0;
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
    with_headers(rate, (StatusCode::CREATED, Json(answer)))
}

/// Processes an upload whose time has come: a GPX problem is an error; a track Strava already has —
/// the same `external_id`, or the same start time, among the athlete's activities — is an error naming
/// the existing activity (docs/uploads: duplicates are refused; assumption: the wording
/// "<external_id> duplicate of activity <id>", which the sources do not settle); else an activity of
/// the default type, named as sent.
fn process_due(shared: &Sh, st: &mut StravaState) {
    // In the order they arrived (assumption: Strava's queue is first in, first out), so a track sent
    // twice finds the first one's activity.
    let ids: Vec<u64> = st.stats.uploads.keys().copied().collect();
    for id in ids {
        process_if_due(shared, st, id);
    }
}

fn process_if_due(shared: &Sh, st: &mut StravaState, id: u64) {
    let due = st
        .stats
        .uploads
        .get(&id)
        .is_some_and(|u| !u.processed && u.received.elapsed() >= shared.config.processing);
    if !due {
        return;
    }
    let Some(upload) = st.stats.uploads.get(&id).cloned() else {
        return;
    };
    let duplicate = st.stats.live_activities().into_iter().find(|a| {
        (upload.external_id.is_some() && a.external_id == upload.external_id)
            || (upload.start_time.is_some() && a.start_time == upload.start_time)
    });
    let injected = st.faults.fail_next_processing.take();
    let (error, activity) = match (injected.or(upload.gpx_problem.clone()), duplicate) {
        (Some(why), _) => (Some(why), None),
        (None, Some(existing)) => (
            Some(format!(
                "{} duplicate of activity {}",
                upload.external_id.as_deref().unwrap_or("file"),
                existing.id
            )),
            None,
        ),
        (None, None) => (None, Some(new_id(st))),
    };
    if let Some(activity_id) = activity {
        st.stats.activities.insert(
            activity_id,
            HeldActivity {
                id: activity_id,
                external_id: upload.external_id.clone(),
                name: upload
                    .name
                    .clone()
                    .unwrap_or_else(|| "Morning Activity".into()),
                sport_type: shared.config.default_sport_type.clone(),
                start_time: upload.start_time.clone(),
                upload_id: id,
                deleted: false,
                updates: 0,
            },
        );
    }
    if let Some(u) = st.stats.uploads.get_mut(&id) {
        u.processed = true;
        u.error = error;
        u.activity_id = activity;
    }
}

/// `GET /uploads/{id}` (swagger `getUploadById`); unknown → 404 "Record Not Found" (assumption: the
/// fault's fields). After its activity is deleted, the status says so and `activity_id` is null
/// (stravalib `raise_for_error`: `CreatedActivityDeleted`; assumption: the id is dropped).
async fn get_upload(State(shared): State<Sh>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    let rate = match gate(
        &shared,
        &Method::GET,
        &format!("/api/v3/uploads/{id}"),
        &headers,
    ) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let mut st = lock(&shared.state);
    process_due(&shared, &mut st);
    let Some(upload) = st.stats.uploads.get(&id) else {
        return with_headers(
            rate,
            fault(404, "Record Not Found", "Upload", "id", "invalid"),
        );
    };
    let deleted = upload
        .activity_id
        .and_then(|a| st.stats.activities.get(&a))
        .is_some_and(|a| a.deleted);
    with_headers(rate, Json(upload_json(upload, deleted)))
}

fn activity_json(a: &HeldActivity, athlete: u64) -> Value {
    // Swagger `DetailedActivity` example fields, those the fake knows.
    json!({"id": a.id, "resource_state": 3, "external_id": a.external_id, "upload_id": a.upload_id,
           "athlete": {"id": athlete, "resource_state": 1}, "name": a.name,
           "type": a.sport_type, "sport_type": a.sport_type, "start_date": a.start_time})
}

/// `GET /activities/{id}` (swagger `getActivityById`); deleted or unknown → 404.
async fn get_activity(
    State(shared): State<Sh>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    let rate = match gate(
        &shared,
        &Method::GET,
        &format!("/api/v3/activities/{id}"),
        &headers,
    ) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let st = lock(&shared.state);
    match st.stats.activities.get(&id).filter(|a| !a.deleted) {
        Some(a) => with_headers(rate, Json(activity_json(a, shared.config.athlete_id))),
        None => with_headers(
            rate,
            fault(404, "Record Not Found", "Activity", "id", "invalid"),
        ),
    }
}

/// `PUT /activities/{id}` with a JSON `UpdatableActivity` (swagger `updateActivityById`; stravalib
/// `update_activity` sends it as a JSON body): `name`, `description` and `sport_type`, which must be a
/// `SportType` (stravalib `_validate_activity_type`; assumption: the server answers 400 otherwise).
async fn update_activity(
    State(shared): State<Sh>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let rate = match gate(
        &shared,
        &Method::PUT,
        &format!("/api/v3/activities/{id}"),
        &headers,
    ) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let update: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = lock(&shared.state);
    let athlete = shared.config.athlete_id;
    let Some(activity) = st.stats.activities.get_mut(&id).filter(|a| !a.deleted) else {
        return with_headers(
            rate,
            fault(404, "Record Not Found", "Activity", "id", "invalid"),
        );
    };
    if let Some(sport) = update.get("sport_type").and_then(Value::as_str) {
        if !SPORT_TYPES.contains(&sport) {
            return with_headers(
                rate,
                fault(400, "Bad Request", "Activity", "sport_type", "invalid"),
            );
        }
        activity.sport_type = sport.to_string();
    }
    if let Some(name) = update.get("name").and_then(Value::as_str) {
        activity.name = name.to_string();
    }
    activity.updates += 1;
    with_headers(rate, Json(activity_json(activity, athlete)))
}

async fn fake_stats(State(shared): State<Sh>) -> Json<StravaStats> {
    Json(lock(&shared.state).stats.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_gpx_track() {
        let gpx = "<gpx><trk><trkseg><trkpt lat=\"1\" lon=\"2\"><time>2020-01-01T00:00:00Z</time></trkpt>\
                   <trkpt lat=\"1\" lon=\"2\"><time>2020-01-01T00:00:01Z</time></trkpt></trkseg></trk></gpx>";
        assert_eq!(read_gpx(gpx), Ok((2, "2020-01-01T00:00:00Z".to_string())));
        let timeless = "<gpx><trkpt lat=\"1\" lon=\"2\"></trkpt></gpx>";
        assert!(read_gpx(timeless).unwrap_err().contains("Time information"));
        assert!(read_gpx("not xml").is_err());
    }
}
