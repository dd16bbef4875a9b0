//! HTTP handlers of the fake Mapillary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::server::{lock, ConnControl};
use super::state::{BeginError, Injected, Lease, Shared};
use super::{EntityKind, FinishFault, RateLimitShape};

type Sh = Arc<Shared>;

pub(crate) fn router(shared: Sh) -> Router {
    Router::new()
        .route("/connect", get(connect))
        .route("/token", post(token))
        .route("/login", post(login))
        .route("/logging", post(logging))
        .route("/me", get(me))
        .route("/finish_upload", post(finish_upload))
        .route("/images", get(images))
        .route("/image_ids", get(image_ids))
        .route("/:id", get(object_by_id))
        .route("/upload/:key", get(upload_offset).post(upload_post))
        .route("/__fake/stats", get(fake_stats))
        .route("/__fake/advance_clock", post(fake_advance_clock))
        .route_layer(middleware::from_fn_with_state(shared.clone(), observe))
        .fallback(fallback)
        .with_state(shared)
}

/// Counts requests per route and statuses, and applies the latency fault.
async fn observe(State(sh): State<Sh>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => format!("{} {}", req.method(), p.as_str()),
        None => format!("{} ?", req.method()),
    };
    let latency = lock(&sh.state).count_request(route);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let resp = next.run(req).await;
    lock(&sh.state).count_status(resp.status().as_u16());
    resp
}

async fn fallback(State(sh): State<Sh>, method: Method) -> Response {
    let mut st = lock(&sh.state);
    st.count_request(format!("{method} (unmatched)"));
    st.count_status(404);
    graph_error(
        StatusCode::NOT_FOUND,
        100,
        "GraphMethodException",
        "Unsupported request - method type or path not supported",
    )
}

// ---- response shapes ------------------------------------------------------------------------

/// Graph API error: `{"error":{"message","type","code","fbtrace_id"}}`.
fn graph_error(status: StatusCode, code: u32, kind: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            "fbtrace_id": "FakeMapillaryTrace",
        }
    });
    (status, Json(body)).into_response()
}

fn oauth_error(status: StatusCode, message: &str) -> Response {
    graph_error(status, 190, "OAuthException", message)
}

fn param_error(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, "OAuthException", message)
}

/// Upload-service error: `{"debug_info":{"type","message","retriable"}}`.
fn upload_error(status: StatusCode, kind: &str, message: &str, retriable: bool) -> Response {
    let body = json!({
        "debug_info": {"type": kind, "message": message, "retriable": retriable}
    });
    (status, Json(body)).into_response()
}

fn injected_upload_response(sh: &Shared, fault: Injected) -> Response {
    match fault {
        Injected::Flapping => upload_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            "Service temporarily unavailable (flapping)",
            true,
        ),
        Injected::Status5xx(code) => upload_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "ProcessingFailedError",
            "Injected server error",
            true,
        ),
        Injected::RateLimited => {
            let (secs, shape) = {
                let st = lock(&sh.state);
                (st.faults.retry_after_secs, st.faults.rate_limit_shape)
            };
            let body = json!({
                "backoff": secs * 1000,
                "debug_info": {
                    "type": "RequestRateLimitedError",
                    "message": "Request rate limit has been exceeded",
                    "retriable": false,
                }
            });
            if shape == RateLimitShape::Status400 {
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Injected::OffsetMismatch => offset_invalid(sh),
    }
}

fn injected_graph_response(fault: Injected) -> Response {
    let status = match fault {
        Injected::Status5xx(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "error": {
            "message": "An unexpected error has occurred. Please retry your request later.",
            "type": "OAuthException",
            "code": 2,
            "is_transient": true,
            "fbtrace_id": "FakeMapillaryTrace",
        }
    });
    (status, Json(body)).into_response()
}

fn offset_invalid(sh: &Shared) -> Response {
    lock(&sh.state).offset_mismatches += 1;
    upload_error(
        StatusCode::PRECONDITION_FAILED,
        "OffsetInvalidError",
        "Request starting offset is invalid",
        true,
    )
}

// ---- auth helpers ---------------------------------------------------------------------------

/// Token from `Authorization: OAuth <t>` (or `Bearer <t>`), else from `?access_token=`.
fn request_token<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer"))
                .then(|| rest.trim())
        });
    from_header.or_else(|| query.get("access_token").map(String::as_str))
}

/// Authenticate a graph read and draw its fault.
fn graph_gate(
    sh: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let token = request_token(headers, query);
    let mut st = lock(&sh.state);
    if !st.authenticate(token) {
        return Some(oauth_error(
            StatusCode::UNAUTHORIZED,
            "Invalid OAuth access token - Cannot parse access token",
        ));
    }
    let flapping = st.flapping_now();
    st.graph_fault(flapping).map(injected_graph_response)
}

// ---- OAuth ----------------------------------------------------------------------------------

async fn connect(State(sh): State<Sh>, Query(q): Query<HashMap<String, String>>) -> Response {
    let cfg = &sh.config;
    if q.get("client_id") != Some(&cfg.client_id) {
        return param_error("Invalid client_id");
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return param_error("Missing redirect_uri");
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return param_error("response_type must be \"code\"");
    }
    let mut params: Vec<(&str, String)> = Vec::new();
    if cfg.deny_consent {
        params.push(("error", "user_denied".to_string()));
        params.push((
            "error_description",
            "The user denied the request".to_string(),
        ));
    } else {
        let code = lock(&sh.state).new_code(&cfg.client_id);
        params.push(("code", code));
    }
    if let Some(state) = q.get("state") {
        params.push(("state", state.clone()));
    }
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    redirect(&append_query(redirect_uri, &query))
}

/// Add a query string to a URL that may already have one and may have a fragment.
fn append_query(url: &str, query: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}{query}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => param_error("redirect_uri is not a valid header value"),
    }
}

/// Parameters from the query string and a JSON or form body (the body wins).
fn merged_params(
    query: HashMap<String, String>,
    body: &[u8],
) -> Result<HashMap<String, String>, &'static str> {
    let mut params = query;
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(params);
    }
    if trimmed.first() == Some(&b'{') {
        let v: Map<String, Value> =
            serde_json::from_slice(trimmed).map_err(|_| "Invalid JSON body")?;
        for (k, v) in v {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.insert(k, s);
        }
    } else {
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(trimmed).map_err(|_| "Invalid form body")?;
        params.extend(form);
    }
    Ok(params)
}

async fn token(
    State(sh): State<Sh>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = &sh.config;
    let empty = HashMap::new();
    if request_token(&headers, &empty) != Some(cfg.client_secret.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "Invalid client secret");
    }
    let params = match merged_params(q, &body) {
        Ok(p) => p,
        Err(msg) => return param_error(msg),
    };
    if params.get("client_id") != Some(&cfg.client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "Invalid client_id");
    }
    let mut st = lock(&sh.state);
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = params.get("code") else {
                return oauth_error(StatusCode::BAD_REQUEST, "Missing code");
            };
            if st.take_code(code).as_deref() != Some(cfg.client_id.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "Invalid verification code format or the code has been used",
                );
            }
        }
        Some("refresh_token") => {
            let Some(old) = params.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "Missing refresh_token");
            };
            // Assumption: an expired token cannot be refreshed (the grant takes the *current* token:
            // API documentation, "Authentication").
            let usable = st.was_issued(old)
                && !st.aging.token_expired(old)
                && (cfg.revoked_tokens_refreshable || st.token_is_valid(old));
            if !usable {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            }
            // Assumption: the refreshed token replaces the old one, which is refused from now on (the
            // safe reading of a refresh for a client: it must use the new token at once).
            st.revoked.insert(old.clone());
        }
        _ => return param_error("Unsupported grant_type"),
    }
    let access_token = st.issue_token();
    Json(json!({
        "access_token": access_token,
        "expires_in": st.aging.expires_in(cfg.token_expires_in),
        "token_type": "bearer",
    }))
    .into_response()
}

/// mapillary_tools' email/password login (`authenticate` without `--jwt`). Any credentials work.
async fn login(State(sh): State<Sh>, body: Bytes) -> Response {
    let params = match merged_params(HashMap::new(), &body) {
        Ok(p) => p,
        Err(msg) => return param_error(msg),
    };
    if params.get("email").is_none_or(|e| e.is_empty()) {
        return param_error("Missing email");
    }
    let token = lock(&sh.state).issue_token();
    Json(json!({"access_token": token, "user_id": sh.config.user_id})).into_response()
}

/// mapillary_tools' telemetry; accepted and ignored.
async fn logging() -> Response {
    Json(json!({"success": true})).into_response()
}

// ---- graph reads ----------------------------------------------------------------------------

fn requested_fields(q: &HashMap<String, String>) -> Option<Vec<String>> {
    q.get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
}

fn user_json(sh: &Shared, q: &HashMap<String, String>) -> Value {
    let cfg = &sh.config;
    let mut m = Map::new();
    m.insert("id".into(), json!(cfg.user_id));
    let fields = requested_fields(q);
    if fields
        .as_ref()
        .is_none_or(|f| f.iter().any(|x| x == "username"))
    {
        m.insert("username".into(), json!(*lock(&sh.username)));
    }
    Value::Object(m)
}

async fn me(
    State(sh): State<Sh>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = graph_gate(&sh, &headers, &q) {
        return resp;
    }
    Json(user_json(&sh, &q)).into_response()
}

/// `GET /{id}`: the user, one of our images, or a configured organization.
async fn object_by_id(
    State(sh): State<Sh>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = graph_gate(&sh, &headers, &q) {
        return resp;
    }
    if id == sh.config.user_id {
        return Json(user_json(&sh, &q)).into_response();
    }
    if sh.config.organization_ids.contains(&id) {
        return Json(json!({
            "id": id,
            "slug": format!("org-{id}"),
            "name": format!("Organization {id}"),
            "description": "Fake organization",
        }))
        .into_response();
    }
    let mut st = lock(&sh.state);
    st.promote(false);
    let fields = requested_fields(&q).unwrap_or_default();
    for seq in &st.sequences {
        for img in &seq.images {
            if img.id == id {
                return Json(image_json(&sh, &seq.key, img, &fields)).into_response();
            }
        }
    }
    param_error(&format!(
        "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
    ))
}

fn image_json(sh: &Shared, seq_key: &str, img: &super::PublishedImage, fields: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(img.id));
    for f in fields {
        match f.as_str() {
            "sequence" => {
                m.insert("sequence".into(), json!(seq_key));
            }
            "captured_at" => {
                if let Some(t) = img.captured_at_ms {
                    m.insert("captured_at".into(), json!(t));
                }
            }
            "geometry" => {
                if let (Some(lat), Some(lon)) = (img.lat, img.lon) {
                    m.insert(
                        "geometry".into(),
                        json!({"type": "Point", "coordinates": [lon, lat]}),
                    );
                }
            }
            "creator" => {
                m.insert(
                    "creator".into(),
                    json!({"id": sh.config.user_id, "username": *lock(&sh.username)}),
                );
            }
            _ => {}
        }
    }
    Value::Object(m)
}

/// ISO 8601 (with or without zone, zone-less = UTC), a date, or epoch milliseconds.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis());
    }
    s.parse::<i64>().ok()
}

const MAX_LIMIT: usize = 2000;

async fn images(
    State(sh): State<Sh>,
    Query(q): Query<HashMap<String, String>>,
    raw_query: axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = graph_gate(&sh, &headers, &q) {
        return resp;
    }
    let start = match q.get("start_captured_at").map(|s| parse_time(s)) {
        Some(None) => return param_error("Invalid start_captured_at"),
        Some(t) => t,
        None => None,
    };
    let end = match q.get("end_captured_at").map(|s| parse_time(s)) {
        Some(None) => return param_error("Invalid end_captured_at"),
        Some(t) => t,
        None => None,
    };
    let bbox = match q.get("bbox") {
        None => None,
        Some(b) => {
            let parts: Result<Vec<f64>, _> =
                b.split(',').map(|p| p.trim().parse::<f64>()).collect();
            match parts {
                Ok(p) if p.len() == 4 && p[0] <= p[2] && p[1] <= p[3] => {
                    Some([p[0], p[1], p[2], p[3]])
                }
                _ => return param_error("Invalid bbox: expected minLon,minLat,maxLon,maxLat"),
            }
        }
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => MAX_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => return param_error("Invalid limit"),
    };
    let after = match q.get("after") {
        None => 0,
        Some(c) => match c
            .strip_prefix("AQ")
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        {
            Some(i) => i,
            None => return param_error("Invalid cursor"),
        },
    };
    let fields = requested_fields(&q).unwrap_or_default();
    let creator_ok = q
        .get("creator_username")
        .is_none_or(|u| *u == *lock(&sh.username));
    let sequence_filter = q.get("sequence_id");

    let mut st = lock(&sh.state);
    // Promote before counting this lookup, so that `publish_after_lookups = N` hides the sequence from
    // exactly N lookups (counting first let the N-th lookup already see it).
    st.promote(false);
    st.count_lookup();
    let mut hits: Vec<(i64, &str, &super::PublishedImage)> = Vec::new();
    if creator_ok {
        for seq in &st.sequences {
            if sequence_filter.is_some_and(|s| *s != seq.key) {
                continue;
            }
            for img in &seq.images {
                let Some(t) = img.captured_at_ms else {
                    continue;
                };
                if start.is_some_and(|s| t < s) || end.is_some_and(|e| t > e) {
                    continue;
                }
                if let Some([min_lon, min_lat, max_lon, max_lat]) = bbox {
                    let (Some(lat), Some(lon)) = (img.lat, img.lon) else {
                        continue;
                    };
                    if lon < min_lon || lon > max_lon || lat < min_lat || lat > max_lat {
                        continue;
                    }
                }
                hits.push((t, &seq.key, img));
            }
        }
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.id.cmp(&b.2.id)));
    let page: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|(_, key, img)| image_json(&sh, key, img, &fields))
        .collect();
    let mut body = json!({ "data": page });
    let next_index = after + limit;
    if next_index < hits.len() {
        let mut pairs: Vec<(String, String)> = raw_query
            .0
            .as_deref()
            .and_then(|r| serde_urlencoded::from_str(r).ok())
            .unwrap_or_default();
        pairs.retain(|(k, _)| k != "after");
        pairs.push(("after".to_string(), format!("AQ{next_index:x}")));
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        body["paging"] = json!({
            "cursors": {"after": format!("AQ{next_index:x}")},
            "next": format!("{}/images?{qs}", sh.base_url),
        });
    }
    Json(body).into_response()
}

async fn image_ids(
    State(sh): State<Sh>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = graph_gate(&sh, &headers, &q) {
        return resp;
    }
    let Some(seq_id) = q.get("sequence_id").filter(|s| !s.is_empty()) else {
        return param_error("Missing sequence_id");
    };
    let mut st = lock(&sh.state);
    st.promote(false);
    let data: Vec<Value> = st
        .sequences
        .iter()
        .filter(|s| s.key == *seq_id)
        .flat_map(|s| s.images.iter().map(|i| json!({"id": i.id})))
        .collect();
    Json(json!({ "data": data })).into_response()
}

// ---- publish ---------------------------------------------------------------------------------

async fn finish_upload(
    State(sh): State<Sh>,
    Extension(conn): Extension<ConnControl>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut st = lock(&sh.state);
        if !st.authenticate(request_token(&headers, &q)) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
    }
    let params = match merged_params(q, &body) {
        Ok(p) => p,
        Err(msg) => return param_error(msg),
    };
    let Some(handle) = params.get("file_handle").filter(|h| !h.is_empty()) else {
        return param_error("Missing file_handle");
    };
    // `None`: drop the connection without an answer (the guard is released before that await).
    let answer = {
        let mut st = lock(&sh.state);
        st.count_finish(handle);
        let file_type = params.get("file_type").map(String::as_str).unwrap_or("zip");
        let kind = st.completed_entity_kind(handle);
        let publishes = match file_type {
            "mly_bundle_manifest" => {
                if kind != Some(EntityKind::Manifest) {
                    return param_error("Invalid file_handle: not a completed image manifest");
                }
                true
            }
            "zip" | "mly_camm_video" | "mly_blackvue_video" => {
                if kind.is_none() {
                    return param_error("Invalid file_handle");
                }
                // The fake does not unpack zips or videos; they are accepted but never published.
                false
            }
            _ => return param_error("Invalid file_type"),
        };
        let fault = st.finish_fault();
        let server_error = || injected_graph_response(Injected::Status5xx(500));
        match fault {
            FinishFault::Fail500 => Some(server_error()),
            FinishFault::Fail500ButPublished | FinishFault::DroppedAnswerButPublished => {
                if publishes {
                    st.queue_publication(handle, false);
                }
                (fault == FinishFault::Fail500ButPublished).then(server_error)
            }
            FinishFault::None | FinishFault::AcceptedNeverPublished => {
                let never = !publishes || fault == FinishFault::AcceptedNeverPublished;
                let cluster_id = st.queue_publication(handle, never);
                Some(Json(json!({ "cluster_id": cluster_id })).into_response())
            }
        }
    };
    match answer {
        Some(response) => response,
        None => conn.kill().await,
    }
}

// ---- upload service --------------------------------------------------------------------------

fn upload_unauthorized() -> Response {
    upload_error(
        StatusCode::UNAUTHORIZED,
        "NotAuthorizedError",
        "Invalid OAuth access token",
        false,
    )
}

async fn upload_offset(
    State(sh): State<Sh>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&sh.state);
    if !st.authenticate(request_token(&headers, &q)) {
        return upload_unauthorized();
    }
    let flapping = st.flapping_now();
    if let Some(fault) = st.upload_fault(flapping, false) {
        drop(st);
        return injected_upload_response(&sh, fault);
    }
    Json(json!({ "offset": st.entity_offset(&key) })).into_response()
}

/// Read and throw away the body of a rejected upload, so the client sees the response rather
/// than a broken pipe. Bytes for offsets the server already held count as re-sent.
async fn reject_draining(
    sh: &Shared,
    key: &str,
    headers: &HeaderMap,
    body: Body,
    resent_budget: u64,
    resp: Response,
) -> Response {
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        // The client waits for "100 Continue" before sending; answering now saves it the upload.
        return resp;
    }
    let mut stream = body.into_data_stream();
    let mut budget = resent_budget;
    while let Some(Ok(chunk)) = stream.next().await {
        sh.throttle(chunk.len()).await;
        let n = chunk.len() as u64;
        let resent = budget.min(n);
        budget -= resent;
        lock(&sh.state).discard(Some(key), n, resent);
    }
    resp
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

async fn upload_post(
    State(sh): State<Sh>,
    Extension(conn): Extension<ConnControl>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (reset_at, authorized, fault) = {
        let mut st = lock(&sh.state);
        let reset_at = st.next_post_reset();
        let authorized = st.authenticate(request_token(&headers, &q));
        let fault = if authorized {
            let flapping = st.flapping_now();
            st.upload_fault(flapping, true)
        } else {
            None
        };
        (reset_at, authorized, fault)
    };
    let rejection = if authorized {
        fault.map(|f| injected_upload_response(&sh, f))
    } else {
        Some(upload_unauthorized())
    };
    if let Some(resp) = rejection {
        return reject_draining(&sh, &key, &headers, body, 0, resp).await;
    }

    let offset = match header_str(&headers, "offset").map(str::parse::<u64>) {
        Some(Ok(o)) => o,
        _ => {
            let resp = upload_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestError",
                "Offset header is missing or invalid",
                false,
            );
            return reject_draining(&sh, &key, &headers, body, 0, resp).await;
        }
    };
    if header_str(&headers, "x-entity-name") != Some(key.as_str()) {
        let resp = upload_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestError",
            "X-Entity-Name header is missing or does not match the session key",
            false,
        );
        return reject_draining(&sh, &key, &headers, body, 0, resp).await;
    }
    let entity_length = match header_str(&headers, "x-entity-length").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            let resp = upload_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestError",
                "X-Entity-Length header is invalid",
                false,
            );
            return reject_draining(&sh, &key, &headers, body, 0, resp).await;
        }
    };

    let mut lease = match Lease::begin(&sh, &key, offset, sh.config.accept_overlapping_offsets) {
        Ok(l) => l,
        Err(BeginError::Busy) => {
            // An assumption, not a documented behaviour: see `BeginError::Busy`.
            let resp = offset_invalid(&sh);
            return reject_draining(&sh, &key, &headers, body, 0, resp).await;
        }
        Err(BeginError::Mismatch { current }) => {
            let resp = offset_invalid(&sh);
            let resent = current.saturating_sub(offset);
            return reject_draining(&sh, &key, &headers, body, resent, resp).await;
        }
    };

    let mut stream = body.into_data_stream();
    let mut taken: u64 = 0;
    while let Some(frame) = stream.next().await {
        let Ok(chunk) = frame else {
            // The client went away or sent a short body: keep what arrived (resumable uploads keep the
            // offset reached, `upload_api_v4.py`). The answer's error name is an assumption: no public
            // source shows it, and the client that went away never reads it.
            drop(lease);
            return upload_error(
                StatusCode::BAD_REQUEST,
                "IncompleteBodyError",
                "Request body ended prematurely",
                true,
            );
        };
        if let Some(limit) = reset_at {
            let room = limit.saturating_sub(taken);
            if chunk.len() as u64 >= room {
                let part = chunk.slice(..room as usize);
                sh.throttle(part.len()).await;
                lease.feed(&part);
                drop(lease);
                lock(&sh.state).connections_reset += 1;
                conn.kill().await;
            }
        }
        sh.throttle(chunk.len()).await;
        lease.feed(&chunk);
        taken += chunk.len() as u64;
    }
    if reset_at.is_some() && taken > 0 {
        // The body was shorter than the limit: drop before completing, all bytes kept. An empty
        // body is let through, or a client finishing at EOF could never complete.
        drop(lease);
        lock(&sh.state).connections_reset += 1;
        conn.kill().await;
    }
    // Assumption: no public source shows the service comparing `X-Entity-Length` with the bytes, nor the
    // `InvalidEntityLengthError` name; our client sends a length that matches and relies on no refusal.
    if let Some(expected) = entity_length {
        let reached = lease.offset();
        if reached != expected {
            drop(lease);
            return upload_error(
                StatusCode::BAD_REQUEST,
                "InvalidEntityLengthError",
                &format!("X-Entity-Length is {expected} but the entity has {reached} bytes"),
                false,
            );
        }
    }
    match lease.finish() {
        Ok(handle) => {
            lock(&sh.state).aging.note_handle(&handle);
            Json(json!({ "h": handle })).into_response()
        }
        Err(rejected) => upload_error(
            StatusCode::BAD_REQUEST,
            rejected.error_type,
            &rejected.message,
            false,
        ),
    }
}

async fn fake_stats(State(sh): State<Sh>) -> Response {
    Json(sh.stats()).into_response()
}

/// `POST /__fake/advance_clock?secs=N`: moves the fake's clock, for callers running the `mtp-fakes`
/// binary out of process (in process: [`super::FakeMapillary::advance_clock`]).
async fn fake_advance_clock(
    State(sh): State<Sh>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(secs) = q.get("secs").and_then(|s| s.parse::<u64>().ok()) else {
        return param_error("secs must be a whole number of seconds");
    };
    lock(&sh.state).aging.advance(Duration::from_secs(secs));
    Json(json!({"advanced_secs": secs})).into_response()
}
