//! The HTTP calls, and the one loop every call goes through: network failures and 5xx are retried with
//! the SDK's backoff, and Strava's rate limits are waited out ([`crate::rate_limit`]).
//!
//! Why a loop of its own and not `plugin_api::http::send`: the SDK's answer carries the status, body and
//! `Retry-After` only, and Strava says where a client stands in `X-RateLimit-*` headers (it sends no
//! `Retry-After`), which decide how long to wait. The loop uses the SDK's `Backoff` and its cancellable
//! sleep, so the policy and Ctrl-C behave as everywhere else.

use std::sync::Mutex;
use std::time::Duration;

use plugin_api::http::reqwest::{self, RequestBuilder};
use plugin_api::http::{describe, Repeat};
use plugin_api::prelude::*;
use plugin_api::sdk::retry::{human_wait, sleep_unless_cancelled, Backoff};
use plugin_api::serde_json::{json, Value};

use crate::config::Config;
use crate::rate_limit::{self, Exhausted, Rates};

/// Retries in a row of one request after network failures and 5xx.
const RETRY_MAX_ATTEMPTS: u32 = 8;
/// 429s in a row before a request gives up (each waits for the next window).
const RATE_LIMITED_MAX: u32 = 4;

/// An answer Strava gave.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        plugin_api::serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Strava's `Fault` (`{"message", "errors": [{"resource", "field", "code"}]}`, the swagger's
    /// `fault.json`) as one line; the raw body when it is not one.
    pub fn fault(&self) -> String {
        let json = self.json();
        let Some(message) = json.get("message").and_then(Value::as_str) else {
            let text: String = self.body.chars().take(200).collect();
            return format!("HTTP {}: {}", self.status, text.trim());
        };
        let errors: Vec<String> = json
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                        format!("{} {} {}", field("resource"), field("field"), field("code"))
                            .trim()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if errors.is_empty() {
            format!("HTTP {}: {message}", self.status)
        } else {
            format!("HTTP {}: {message} ({})", self.status, errors.join("; "))
        }
    }
}

/// The client of one call.
pub struct Api {
    /// Endpoints and tuning.
    pub config: Config,
    http: reqwest::Client,
    /// The last rates Strava reported for reads and for everything else.
    rates: Mutex<(Option<Rates>, Option<Rates>)>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Api {
    /// A client for `config`.
    pub fn new(config: Config) -> Result<Api, PluginError> {
        Ok(Api {
            config,
            http: plugin_api::http::client(concat!("mtp-strava/", env!("CARGO_PKG_VERSION")))?,
            rates: Mutex::new((None, None)),
        })
    }

    /// Keeps what an answer said: the overall rates (every request counts against them) and, for a
    /// read, the read rates.
    fn remember(&self, headers: &reqwest::header::HeaderMap, read: bool) {
        let mut slot = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        slot.1 = rate_limit::from_headers(headers, false);
        if read {
            slot.0 = rate_limit::from_headers(headers, true);
        }
    }

    fn forget(&self) {
        *self.rates.lock().unwrap_or_else(|p| p.into_inner()) = (None, None);
    }

    /// The used-up window that applies to a request (a read counts against both limits).
    fn exhausted(&self, read: bool) -> Option<(Exhausted, Rates)> {
        let slot = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let overall = slot.1.and_then(|r| Some((r.exhausted()?, r)));
        let reads = slot
            .0
            .filter(|_| read)
            .and_then(|r| Some((r.exhausted()?, r)));
        match (overall, reads) {
            (Some((Exhausted::Daily, r)), _) | (_, Some((Exhausted::Daily, r))) => {
                Some((Exhausted::Daily, r))
            }
            (overall, reads) => overall.or(reads),
        }
    }

    /// Waits for the next window, saying why and for how long.
    async fn wait_for_window(
        &self,
        ctx: &Context,
        what: &str,
        which: Exhausted,
        rates: Option<&Rates>,
    ) -> Result<(), PluginError> {
        let wait = rate_limit::wait_for_next(now_ms(), self.config.rate_window, which);
        let message = format!(
            "{what}: Strava's rate limit is reached ({}); waiting {} for the next window",
            rate_limit::describe(which, rates),
            human_wait(wait)
        );
        ctx.warn(&message);
        ctx.progress(ProgressEvent::Note { message });
        if sleep_unless_cancelled(ctx, wait).await {
            Ok(())
        } else {
            ctx.check_cancelled()
        }
    }

    /// Sends the request `build` makes (afresh per attempt) until Strava answers something retrying
    /// cannot change; that answer is returned for the caller to read. `read` says which rate limit the
    /// request counts against (GET); `repeat` whether it may be sent again after a lost answer.
    pub async fn send(
        &self,
        ctx: &Context,
        what: &str,
        read: bool,
        repeat: Repeat,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, PluginError> {
        let base = self.config.retry_base;
        let mut backoff = Backoff::new(base, base.saturating_mul(32), RETRY_MAX_ATTEMPTS);
        let mut limited = 0;
        loop {
            ctx.check_cancelled()?;
            if let Some((which, rates)) = self.exhausted(read) {
                self.wait_for_window(ctx, what, which, Some(&rates)).await?;
                self.forget();
            }
            let failure = match build().send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    self.remember(response.headers(), read);
                    match response.text().await {
                        Ok(_) if status == 429 => {
                            limited += 1;
                            if limited > RATE_LIMITED_MAX {
                                return Err(PluginError::transient(format!(
                                    "{what}: Strava still refuses with HTTP 429 (rate limit) after \
                                     waiting for {RATE_LIMITED_MAX} windows; run mtp upload again later"
                                )));
                            }
                            let (which, rates) = match self.exhausted(read) {
                                Some((which, rates)) => (which, Some(rates)),
                                None => (Exhausted::Short, None),
                            };
                            self.wait_for_window(ctx, what, which, rates.as_ref())
                                .await?;
                            self.forget();
                            continue;
                        }
                        Ok(body) if status >= 500 || status == 408 => format!(
                            "HTTP {status}: {}",
                            body.chars().take(120).collect::<String>()
                        ),
                        Ok(body) => return Ok(Reply { status, body }),
                        Err(err) if repeat == Repeat::Safe => {
                            format!("the answer was cut off: {}", describe(&err))
                        }
                        Err(err) => return Err(unknown(what, &describe(&err))),
                    }
                }
                Err(err) if repeat == Repeat::Safe || err.is_connect() => describe(&err),
                Err(err) => return Err(unknown(what, &describe(&err))),
            };
            let Some(delay) = backoff.next_delay(None) else {
                return Err(PluginError::transient(format!(
                    "{what}: {failure}; gave up after {} retries",
                    backoff.attempts()
                )));
            };
            ctx.progress(ProgressEvent::Note {
                message: format!("{what}: {failure}; retrying in {}", human_wait(delay)),
            });
            if !sleep_unless_cancelled(ctx, delay).await {
                ctx.check_cancelled()?;
            }
        }
    }

    /// `POST {oauth}/token` with a form (authorisation code or refresh grant).
    pub async fn token(
        &self,
        ctx: &Context,
        what: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, PluginError> {
        let url = format!("{}/token", self.config.oauth_url);
        // Once: a code is single-use and a refresh token rotates, so a blind retry could only fail.
        self.send(ctx, what, false, Repeat::OnlyIfNotApplied, || {
            self.http
                .post(&url)
                .form(form)
                .timeout(Duration::from_secs(60))
        })
        .await
    }

    /// `GET /athlete`.
    pub async fn athlete(&self, ctx: &Context, token: &str) -> Result<Reply, PluginError> {
        let url = self.config.api("/athlete");
        self.send(
            ctx,
            "asking Strava who is logged in",
            true,
            Repeat::Safe,
            || {
                self.http
                    .get(&url)
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(60))
            },
        )
        .await
    }

    /// `POST /uploads`: the track as a multipart form (swagger `createUpload`: `file`, `name`,
    /// `description`, `data_type`, `external_id`). Sent again after a lost answer: the second upload
    /// carries the same `external_id`, and Strava's duplicate answer names the activity.
    pub async fn create_upload(
        &self,
        ctx: &Context,
        token: &str,
        upload: &NewUpload<'_>,
    ) -> Result<Reply, PluginError> {
        let url = self.config.api("/uploads");
        let (content_type, body) = upload.form();
        self.send(
            ctx,
            "uploading the track to Strava",
            false,
            Repeat::Safe,
            || {
                self.http
                    .post(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, &content_type)
                    .body(body.clone())
                    .timeout(Duration::from_secs(300))
            },
        )
        .await
    }

    /// `GET /uploads/{id}`.
    pub async fn upload(&self, ctx: &Context, token: &str, id: u64) -> Result<Reply, PluginError> {
        let url = self.config.api(&format!("/uploads/{id}"));
        self.send(ctx, "looking at the upload", true, Repeat::Safe, || {
            self.http
                .get(&url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(60))
        })
        .await
    }

    /// `GET /activities/{id}`.
    pub async fn activity(
        &self,
        ctx: &Context,
        token: &str,
        id: u64,
    ) -> Result<Reply, PluginError> {
        let url = self.config.api(&format!("/activities/{id}"));
        self.send(ctx, "looking at the activity", true, Repeat::Safe, || {
            self.http
                .get(&url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(60))
        })
        .await
    }

    /// `PUT /activities/{id}` with an `UpdatableActivity` (swagger `updateActivityById`).
    pub async fn update_activity(
        &self,
        ctx: &Context,
        token: &str,
        id: u64,
        sport_type: &str,
    ) -> Result<Reply, PluginError> {
        let url = self.config.api(&format!("/activities/{id}"));
        let body = json!({ "sport_type": sport_type });
        self.send(
            ctx,
            "setting the activity's sport type",
            false,
            Repeat::Safe,
            || {
                self.http
                    .put(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .timeout(Duration::from_secs(60))
            },
        )
        .await
    }
}

fn unknown(what: &str, why: &str) -> PluginError {
    PluginError::transient(format!(
        "{what}: {why}; whether it took effect is unknown, so it was not sent again"
    ))
}

/// What `POST /uploads` sends.
pub struct NewUpload<'a> {
    /// The GPX document.
    pub gpx: &'a str,
    /// Activity name.
    pub name: &'a str,
    /// Activity description.
    pub description: &'a str,
    /// The sequence's content identity.
    pub external_id: &'a str,
}

/// A value safe inside a quoted multipart header parameter.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl NewUpload<'_> {
    /// `(content type, body)` of the `multipart/form-data` form. Built by hand: the plugin API's
    /// reqwest has no `multipart` feature, and the track is small enough to hold in memory.
    pub fn form(&self) -> (String, Vec<u8>) {
        let boundary = format!("mtp-strava-{}", plugin_api::sdk::redirect::random_state());
        let mut body = String::new();
        for (name, value) in [
            ("data_type", "gpx"),
            ("name", self.name),
            ("description", self.description),
            ("external_id", self.external_id),
        ] {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}.gpx\"\r\n\
             Content-Type: application/gpx+xml\r\n\r\n{}\r\n--{boundary}--\r\n",
            quoted(self.external_id),
            self.gpx
        ));
        (
            format!("multipart/form-data; boundary={boundary}"),
            body.into_bytes(),
        )
    }
}
