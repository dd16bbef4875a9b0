//! The routes: the page and its assets, the JSON API under `/api/` (docs/api.md), and the login callback
//! on every other path.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use mtp_host::logout::{LoggedOut, LogoutError};

use super::super::sequence::OverrideArgs;
use super::events::{self, Hub};
use super::folders;
use super::host_adapter::Host;
use super::login::{self, Logins};
use super::security::{self, Guard};
use super::thumbnails::{Inspected, ThumbnailError};
use super::tiles::{self, Tiles};
use super::uploads::{UploadOptions, Uploads};

/// Everything the handlers share.
pub(crate) struct App {
    pub(crate) host: Host,
    pub(crate) hub: Arc<Hub>,
    pub(crate) uploads: Arc<Uploads>,
    pub(crate) logins: Logins,
    pub(crate) guard: Guard,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The folders inspected so far: the only ones whose thumbnails are served.
    pub(crate) inspected: Inspected,
    /// The map tiles the page draws under a track (`None`: the track alone).
    pub(crate) tiles: Option<Tiles>,
}

type Shared = State<Arc<App>>;

/// An API error: a status and `{"error": message}` (plus details).
struct ApiError(StatusCode, Value);

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError(status, json!({ "error": message.to_string() }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The whole application.
pub(crate) fn router(app: Arc<App>) -> Router {
    let guard = app.guard.clone();
    let api = Router::new()
        .route("/integrations", get(integrations))
        .route("/sequences", get(sequences))
        .route("/inspect", post(inspect))
        .route("/config", get(page_config))
        .route("/folders", get(list_folders))
        .route("/thumbnail", get(thumbnail))
        .route("/uploads", get(list_uploads).post(start_upload))
        .route("/uploads/:id/cancel", post(cancel_upload))
        .route("/recheck", post(recheck))
        .route("/auth", get(auth_status))
        .route("/auth/:integration", post(login_start))
        .route("/auth/:integration/redirect", post(login_paste))
        .route("/auth/:integration/logout", post(logout))
        .route("/events", get(event_stream))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API route") })
        .layer(from_fn_with_state(guard.clone(), security::require_token));
    // The tile origin is checked to be a plain host, so the policy is a valid header value.
    let csp = HeaderValue::from_str(&tiles::content_security_policy(app.tiles.as_ref()))
        .unwrap_or(HeaderValue::from_static("default-src 'self'"));
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(|| asset("text/javascript", APP_JS)))
        .route("/app.css", get(|| asset("text/css", APP_CSS)))
        .route("/favicon.svg", get(|| asset("image/svg+xml", FAVICON)))
        .nest("/api", api)
        .fallback(callback)
        .with_state(app)
        .layer(map_response(move |mut response: Response| {
            // A response with a policy of its own (the login callback's fragment page) keeps it.
            response
                .headers_mut()
                .entry(header::CONTENT_SECURITY_POLICY)
                .or_insert(csp.clone());
            async move { response }
        }))
        .layer(from_fn_with_state(guard, security::check_host_and_origin))
}

const INDEX_HTML: &str = include_str!("../../../ui/index.html");
const APP_JS: &str = include_str!("../../../ui/app.js");
const APP_CSS: &str = include_str!("../../../ui/app.css");
const FAVICON: &str = include_str!("../../../ui/favicon.svg");

/// Never sniffed, never cached, never sending a referrer; the Content-Security-Policy (our own files only,
/// and the map tiles' images; never framed) is set by the router for every response (`tiles.rs`).
fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

const NEED_TOKEN_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>mtp</title>\
<p>This page needs its access token: open the URL that <code>mtp serve</code> printed.</p>";

/// `/?token=T` sets the cookie and sends the browser to `/` (so the token leaves the address bar); `/`
/// with the cookie is the page.
async fn index(State(app): Shared, Query(q): Query<TokenQuery>, headers: HeaderMap) -> Response {
    if let Some(token) = q.token {
        if !app.guard.is_token(&token) {
            return hardened((StatusCode::UNAUTHORIZED, Html(NEED_TOKEN_PAGE)).into_response());
        }
        let mut response = Redirect::to("/").into_response();
        if let Ok(cookie) = HeaderValue::from_str(&app.guard.set_cookie()) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return hardened(response);
    }
    if !app.guard.has_token(&headers) {
        return hardened((StatusCode::UNAUTHORIZED, Html(NEED_TOKEN_PAGE)).into_response());
    }
    hardened(Html(INDEX_HTML).into_response())
}

async fn callback(State(app): Shared, request: Request) -> Response {
    hardened(login::callback(State(app.logins.clone()), request).await)
}

async fn integrations(State(app): Shared) -> ApiResult {
    Ok(Json(app.host.integrations()))
}

async fn sequences(State(app): Shared) -> ApiResult {
    Ok(Json(app.host.sequences()?))
}

/// What the page needs to know of the server's settings: the map tiles.
async fn page_config(State(app): Shared) -> ApiResult {
    Ok(Json(json!({ "tiles": app.tiles })))
}

#[derive(Deserialize)]
struct FolderQuery {
    path: Option<PathBuf>,
}

/// The folder picker: one folder under the user's home (docs/api.md).
async fn list_folders(Query(q): Query<FolderQuery>) -> ApiResult {
    let path = q.path;
    tokio::task::spawn_blocking(move || folders::list(path.as_deref()))
        .await
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err))?
        .map(|listing| Json(json!(listing)))
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, err))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectRequest {
    path: PathBuf,
    /// The metadata fields of the page, checked as `mtp sequence inspect --name ... --time-offset` checks
    /// them (the upload options of the same names).
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    time_offset: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not the expected JSON: {err}"),
        )
    })
}

async fn inspect(State(app): Shared, body: Bytes) -> ApiResult {
    let request: InspectRequest = parse(&body)?;
    let time_offset = request
        .time_offset
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse())
        .transpose()
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("time_offset: {err}")))?;
    let overrides = OverrideArgs {
        name: request.name.filter(|n| !n.trim().is_empty()),
        description: request.description.filter(|d| !d.trim().is_empty()),
        transport: request.transport.filter(|t| !t.trim().is_empty()),
        tags: request.tags,
        time_offset,
    };
    let path = folders::from_home(request.path);
    let (summary, images) = app
        .host
        .inspect(&path, overrides)
        .await
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("{err:#}")))?;
    app.inspected.add(&path, images);
    Ok(Json(summary))
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    path: PathBuf,
    file: String,
}

/// A photo's embedded EXIF thumbnail, for a folder inspected before (docs/api.md).
async fn thumbnail(State(app): Shared, Query(q): Query<ThumbnailQuery>) -> Response {
    let path = folders::from_home(q.path);
    let found = tokio::task::spawn_blocking(move || app.inspected.thumbnail(&path, &q.file)).await;
    let answer = match found {
        Ok(Ok(jpeg)) => return ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(Err(err @ ThumbnailError::NotAnImage(_))) => ApiError::new(StatusCode::BAD_REQUEST, err),
        Ok(Err(err)) => ApiError::new(StatusCode::NOT_FOUND, err),
        Err(err) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err),
    };
    answer.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    paths: Vec<PathBuf>,
    #[serde(default)]
    options: UploadOptions,
}

async fn start_upload(State(app): Shared, body: Bytes) -> Result<Response, ApiError> {
    let request: UploadRequest = parse(&body)?;
    let paths = request.paths.into_iter().map(folders::from_home).collect();
    match app.uploads.start(paths, request.options).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response()),
        Err(refused) => {
            let status = if refused.conflict {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(ApiError(
                status,
                json!({"error": refused.message, "problems": refused.problems}),
            ))
        }
    }
}

async fn list_uploads(State(app): Shared) -> ApiResult {
    Ok(Json(json!(app.uploads.list())))
}

async fn cancel_upload(State(app): Shared, Path(id): Path<String>) -> ApiResult {
    match app.uploads.cancel(&id) {
        Some(status) => Ok(Json(json!({"id": id, "status": status, "cancel": true}))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no upload {id}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RecheckRequest {
    sequence: Option<String>,
}

async fn recheck(State(app): Shared, body: Bytes) -> ApiResult {
    let request: RecheckRequest = if body.is_empty() {
        RecheckRequest::default()
    } else {
        parse(&body)?
    };
    match app.uploads.recheck(request.sequence.as_deref()).await? {
        Some(count) => Ok(Json(json!({ "rechecked": count }))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no stored sequence {}",
                request.sequence.unwrap_or_default()
            ),
        )),
    }
}

async fn auth_status(State(app): Shared) -> ApiResult {
    Ok(Json(app.host.auth_status().await))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// A token the user already has (`mtp auth ID --token T`): verified and stored, no consent page.
    token: Option<String>,
}

/// Starts a login; answers with the consent page to open (or, when the plugin needed none, the result).
async fn login_start(
    State(app): Shared,
    Path(integration): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: LoginRequest = if body.is_empty() {
        LoginRequest::default()
    } else {
        parse(&body)?
    };
    let token = request.token.map(|t| t.trim().to_string());
    if token.as_deref() == Some("") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "token: empty"));
    }
    // Checked first: a request for no integration must not abandon a real login under way.
    if !app.host.has_integration(&integration) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no integration {integration} (see GET /api/integrations)"),
        ));
    }
    let (generation, prompt) = app.logins.begin(&integration);
    let (done_tx, done) = oneshot::channel();
    let (host, hub, logins, id) = (
        app.host.clone(),
        app.hub.clone(),
        app.logins.clone(),
        integration.clone(),
    );
    tokio::spawn(async move {
        let result = host.authorize(&id, token).await;
        let current = logins.end(generation);
        if !current && result.is_err() {
            // Abandoned for a newer login (a pasted token, another Log in): that one reports.
            let _ = done_tx.send(result);
            return;
        }
        hub.publish(&match &result {
            Ok(account) => {
                json!({"type": "auth", "integration": id, "authorised": true, "account": account})
            }
            Err(error) => {
                json!({"type": "auth", "integration": id, "authorised": false, "error": error})
            }
        });
        let _ = done_tx.send(result);
    });
    tokio::select! {
        Ok((prompt, landing)) = prompt => Ok(Json(json!({
            "integration": integration,
            "consent_url": prompt.url,
            "redirect_uri": prompt.redirect_uri,
            "landing": landing.as_str(),
        }))),
        Ok(result) = done => match result {
            Ok(account) => Ok(Json(json!({
                "integration": integration, "authorised": true, "account": account,
            }))),
            Err(error) => Err(ApiError::new(StatusCode::BAD_REQUEST, error)),
        },
        else => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the login stopped")),
    }
}

/// Deletes the integration's tokens (as `mtp auth logout`); the page learns it from the stream too.
async fn logout(State(app): Shared, Path(integration): Path<String>) -> ApiResult {
    let done = app.host.logout(&integration).map_err(|err| match err {
        LogoutError::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, err),
        LogoutError::State(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err),
    })?;
    let was_logged_in = done == LoggedOut::TokensDeleted;
    app.hub.publish(
        &json!({"type": "auth", "integration": integration, "authorised": false,
        "logged_out": true}),
    );
    Ok(Json(json!({"integration": integration, "logged_out": true,
        "was_logged_in": was_logged_in})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasteRequest {
    url: String,
}

async fn login_paste(
    State(app): Shared,
    Path(integration): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: PasteRequest = parse(&body)?;
    app.logins
        .paste(&integration, request.url.trim())
        .map(|()| Json(json!({"integration": integration, "accepted": true})))
        .map_err(|err| ApiError::new(StatusCode::CONFLICT, err))
}

async fn event_stream(State(app): Shared, headers: HeaderMap) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    events::stream(app.hub.clone(), last, app.shutdown.clone()).into_response()
}
