//! Panoramax's HTTP API, as far as uploading needs it: typed answers, and one function that turns an
//! unexpected answer into an error saying what to do.
//!
//! Routes and bodies: geovisio 2.15 `geovisio/web/upload_set.py` (upload sets and their files),
//! `geovisio/utils/upload_set.py` (the `UploadSet`, `UploadSetFile` and `FileRejection` models),
//! `geovisio/web/users.py` (`/api/users/me`), `geovisio/web/tokens.py` (`/api/auth/tokens/generate`);
//! errors are `{"message", "status_code", "details"?}` (`geovisio/errors.py`).

use std::path::Path;
use std::time::Duration;

use plugin_api::http::reqwest::{self, header};
use plugin_api::http::Answer;
use plugin_api::prelude::*;
use plugin_api::serde_json::{self, json, Value};
use serde::Deserialize;

use crate::config::Config;
use crate::multipart;
use crate::retrying;
use crate::set_options::{self, InstanceDefaults, SetOptions};

/// Small requests time out after this long (a picture upload has no total timeout: see
/// `plugin_api::http::client`).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET /api/users/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// Account id.
    pub id: String,
    /// Account name.
    pub name: String,
}

/// A file's rejection (`FileRejection`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Rejection {
    /// `file_duplicate`, `invalid_metadata`, `invalid_file`, `capture_duplicate`...
    #[serde(default)]
    pub reason: String,
    /// The server's sentence.
    #[serde(default)]
    pub message: Option<String>,
    /// What the server said is missing (`details.missing_fields`: `datetime`, `location`).
    #[serde(default, deserialize_with = "missing_fields_of")]
    pub details: Vec<String>,
}

/// Reads `details.missing_fields` out of a rejection's `details` object.
fn missing_fields_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let details: Option<Value> = Option::deserialize(d)?;
    Ok(missing_fields(details.as_ref()))
}

fn missing_fields(details: Option<&Value>) -> Vec<String> {
    details
        .and_then(|d| d.get("missing_fields"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One entry of `GET /api/upload_sets/<id>/files` (`UploadSetFile`).
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteFile {
    /// The name the file was sent under.
    pub file_name: String,
    /// The picture it became (absent when rejected).
    #[serde(default)]
    pub picture_id: Option<String>,
    /// Why it was refused, if it was.
    #[serde(default)]
    pub rejected: Option<Rejection>,
    /// md5 of the bytes the server received, 32 hex digits (`UploadSetFile.serialize_md5`: `UUID.hex`);
    /// absent for a file refused before it was read (a name without `.jpg`).
    #[serde(default)]
    pub content_md5: Option<String>,
}

/// Counters of an upload set's or a collection's pictures (`AggregatedStatus`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ItemsStatus {
    /// Processed and published.
    #[serde(default)]
    pub prepared: u64,
    /// Being processed.
    #[serde(default)]
    pub preparing: Option<u64>,
    /// Processing failed.
    #[serde(default)]
    pub broken: Option<u64>,
    /// Refused.
    #[serde(default)]
    pub rejected: Option<u64>,
    /// Waiting.
    #[serde(default)]
    pub not_processed: Option<u64>,
}

/// A collection an upload set was dispatched into.
#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    /// Collection (sequence) id.
    pub id: String,
    /// Pictures in it.
    #[serde(default)]
    pub nb_items: u64,
}

/// `GET /api/upload_sets/<id>` (`UploadSet`).
#[derive(Debug, Clone, Deserialize)]
pub struct UploadSet {
    /// Its id.
    pub id: String,
    /// Every expected file arrived, or `complete` was called.
    #[serde(default)]
    pub completed: bool,
    /// Its pictures were split into collections.
    #[serde(default)]
    pub dispatched: bool,
    /// Dispatched and every collection processed.
    #[serde(default)]
    pub ready: bool,
    /// Its pictures' states.
    #[serde(default)]
    pub items_status: Option<ItemsStatus>,
    /// Where its pictures went.
    #[serde(default)]
    pub associated_collections: Vec<Collection>,
    /// What we put there at creation (holds our nonce).
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// What `POST /api/upload_sets/<id>/files` said about one picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAnswer {
    /// 202, or 409 "already added to this upload set": the server holds it in our set.
    Accepted {
        /// The picture id, when the server said.
        picture_id: Option<String>,
    },
    /// The server refused the file and recorded the refusal (it counts toward the set's files).
    Rejected(Rejection),
}

/// What `GET /api/configuration` says about an instance (`geovisio/web/configuration.py`), as far as
/// uploading needs it. Every field is optional: older instances lack `defaults` (before 2.10).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstanceConfig {
    /// `auth`: `enabled` is false when the instance has no OAuth login, so tokens cannot be claimed.
    #[serde(default)]
    pub auth: Option<InstanceAuth>,
    /// Split and deduplication defaults for upload sets that set none.
    #[serde(default)]
    pub defaults: Option<InstanceDefaults>,
}

/// `auth` of `GET /api/configuration`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstanceAuth {
    /// An OAuth provider is configured (browser login and token claims work).
    #[serde(default)]
    pub enabled: bool,
}

/// An unclaimed token from `POST /api/auth/tokens/generate`.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    /// The JWT, usable once claimed.
    pub jwt: String,
    /// The page where the user claims it.
    pub claim_url: String,
}

pub use crate::refusal::{is_token_refusal, server_message, terms_page, unexpected};

fn parse<T: serde::de::DeserializeOwned>(what: &str, answer: &Answer) -> Result<T, PluginError> {
    serde_json::from_str(&answer.body).map_err(|err| {
        PluginError::transient(format!(
            "{what}: Panoramax's answer is not what its API documents ({err})"
        ))
    })
}

/// A client for one instance, with or without a token.
#[derive(Clone)]
pub struct Api {
    /// Endpoints and tuning.
    pub config: Config,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// A client for `config`'s instance.
    pub fn new(config: Config) -> Result<Api, PluginError> {
        let http = plugin_api::http::client(concat!("mtp-panoramax/", env!("CARGO_PKG_VERSION")))?;
        Ok(Api {
            config,
            http,
            token: None,
        })
    }

    /// The same client, sending `token` as `Authorization: Bearer` (the only scheme GeoVisio takes).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        // GeoVisio translates its `message`s by `Accept-Language` (flask_babel); two 409s are told apart
        // by their English text (see `file_answer`).
        let request = self
            .http
            .request(method, self.config.api(path))
            .header(header::ACCEPT_LANGUAGE, "en");
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn call(
        &self,
        ctx: &Context,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, PluginError> {
        retrying::send(ctx, &self.config, what, || {
            let mut request = self
                .request(method.clone(), path)
                .timeout(SMALL_REQUEST_TIMEOUT);
            if let Some(body) = body {
                request = request.json(body);
            }
            async move { Ok(request) }
        })
        .await
    }

    /// `GET /api/users/me`; `None` when the token is refused (401/403: unknown, or not claimed yet).
    pub async fn me(&self, ctx: &Context) -> Result<Option<Me>, PluginError> {
        let what = "checking the Panoramax token";
        let answer = self
            .call(ctx, what, reqwest::Method::GET, "/users/me", None)
            .await?;
        match answer.status {
            200 => parse(what, &answer).map(Some),
            401 | 403 => Ok(None),
            _ => Err(unexpected(what, &answer)),
        }
    }

    /// `GET /api/configuration` (no authentication); `None` when the instance does not serve it.
    pub async fn configuration(
        &self,
        ctx: &Context,
    ) -> Result<Option<InstanceConfig>, PluginError> {
        let what = "reading the Panoramax instance's configuration";
        let answer = self
            .call(ctx, what, reqwest::Method::GET, "/configuration", None)
            .await?;
        match answer.status {
            200 => Ok(serde_json::from_str(&answer.body).ok()),
            404 => Ok(None),
            _ => Err(unexpected(what, &answer)),
        }
    }

    /// `POST /api/auth/tokens/generate`: a token nobody owns yet, and the page to claim it.
    pub async fn generate_token(&self, ctx: &Context) -> Result<GeneratedToken, PluginError> {
        let what = "asking Panoramax for a token";
        let answer = self
            .call(
                ctx,
                what,
                reqwest::Method::POST,
                "/auth/tokens/generate?description=mtp",
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(unexpected(what, &answer));
        }
        let body: Value = parse(what, &answer)?;
        let jwt = body.get("jwt_token").and_then(Value::as_str);
        let claim = body
            .get("links")
            .and_then(Value::as_array)
            .and_then(|links| {
                links
                    .iter()
                    .find(|l| l.get("rel").and_then(Value::as_str) == Some("claim"))
            })
            .and_then(|l| l.get("href"))
            .and_then(Value::as_str);
        match (jwt, claim) {
            (Some(jwt), Some(claim)) => Ok(GeneratedToken {
                jwt: jwt.to_string(),
                claim_url: claim.to_string(),
            }),
            _ => Err(PluginError::transient(format!(
                "{what}: the answer holds no token or no claim link"
            ))),
        }
    }

    /// `POST /api/upload_sets`.
    pub async fn create_upload_set(
        &self,
        ctx: &Context,
        body: &Value,
    ) -> Result<UploadSet, PluginError> {
        let what = "creating the Panoramax upload set";
        let answer = retrying::send_once(ctx, &self.config, what, || {
            let request = self
                .request(reqwest::Method::POST, "/upload_sets")
                .timeout(SMALL_REQUEST_TIMEOUT)
                .json(body);
            async move { Ok(request) }
        })
        .await?;
        // GeoVisio answers 200 (not 201) with a Location header.
        if !answer.is_success() {
            return Err(unexpected(what, &answer));
        }
        parse(what, &answer)
    }

    /// `GET /api/users/me/upload_sets`: the account's upload sets not yet dispatched (the server's
    /// default filter), at most 1000.
    pub async fn my_open_upload_sets(&self, ctx: &Context) -> Result<Vec<UploadSet>, PluginError> {
        let what = "listing the account's Panoramax upload sets";
        let answer = self
            .call(
                ctx,
                what,
                reqwest::Method::GET,
                "/users/me/upload_sets?limit=1000",
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(unexpected(what, &answer));
        }
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            upload_sets: Vec<UploadSet>,
        }
        Ok(parse::<List>(what, &answer)?.upload_sets)
    }

    /// `GET /api/upload_sets/<id>`; `None` when it no longer exists.
    pub async fn upload_set(
        &self,
        ctx: &Context,
        id: &str,
    ) -> Result<Option<UploadSet>, PluginError> {
        let what = format!("reading Panoramax upload set {id}");
        let answer = self
            .call(
                ctx,
                &what,
                reqwest::Method::GET,
                &format!("/upload_sets/{id}"),
                None,
            )
            .await?;
        match answer.status {
            200 => parse(&what, &answer).map(Some),
            404 => Ok(None),
            _ => Err(unexpected(&what, &answer)),
        }
    }

    /// `GET /api/upload_sets/<id>/files`: every file the server holds for the set, accepted or not.
    pub async fn files(&self, ctx: &Context, id: &str) -> Result<Vec<RemoteFile>, PluginError> {
        let what = format!("listing the files of Panoramax upload set {id}");
        let answer = self
            .call(
                ctx,
                &what,
                reqwest::Method::GET,
                &format!("/upload_sets/{id}/files"),
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(unexpected(&what, &answer));
        }
        #[derive(Deserialize)]
        struct Files {
            #[serde(default)]
            files: Vec<RemoteFile>,
        }
        Ok(parse::<Files>(&what, &answer)?.files)
    }

    /// `POST /api/upload_sets/<id>/complete`.
    pub async fn complete(&self, ctx: &Context, id: &str) -> Result<UploadSet, PluginError> {
        let what = format!("completing Panoramax upload set {id}");
        let answer = self
            .call(
                ctx,
                &what,
                reqwest::Method::POST,
                &format!("/upload_sets/{id}/complete"),
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(unexpected(&what, &answer));
        }
        parse(&what, &answer)
    }

    /// `POST /api/upload_sets/<id>/files` with the picture at `path`, sent as `file_name`, with
    /// `override_capture_time` when `capture_time` is given.
    ///
    /// 4xx answers about the file itself become [`FileAnswer::Rejected`]; answers about the request or
    /// the account (401, 403, 404, 415) are errors, since every other file would get them too.
    pub async fn upload_file(
        &self,
        ctx: &Context,
        id: &str,
        path: &Path,
        file_name: &str,
        capture_time: Option<&str>,
    ) -> Result<FileAnswer, PluginError> {
        let what = format!("uploading {file_name}");
        let path_ref = path;
        let answer = retrying::send(ctx, &self.config, &what, || async move {
            let form = multipart::picture_form(path_ref, file_name, capture_time).await?;
            Ok(self
                .request(reqwest::Method::POST, &format!("/upload_sets/{id}/files"))
                .header(header::CONTENT_TYPE, form.content_type)
                .header(header::CONTENT_LENGTH, form.length)
                .body(form.body))
        })
        .await?;
        file_answer(&what, &answer)
    }
}

/// Reads the answer to a picture upload (geovisio `addFilesToUploadSet`).
pub fn file_answer(what: &str, answer: &Answer) -> Result<FileAnswer, PluginError> {
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    match answer.status {
        200..=299 => Ok(FileAnswer::Accepted {
            picture_id: text(&body, "/picture_id"),
        }),
        // Two 409s carry `existing_item`, told apart only by `message` (`geovisio/utils/upload_set.py`
        // `insertFileInDatabase`: "A different picture with the same name has already been added to this
        // uploadset"; `geovisio/web/upload_set.py` `addFilesToUploadSet`: "The item has already been added
        // to this upload set"). The first means the set holds other bytes under this name: the local
        // file changed after it was sent.
        409 if body.pointer("/existing_item/id").is_some()
            && text(&body, "/message").is_some_and(|m| m.contains("different picture")) =>
        {
            Ok(FileAnswer::Rejected(Rejection {
                reason: "name_conflict".into(),
                message: Some(
                    "the upload set already holds a different picture under this name (the file \
                     changed after it was sent)"
                        .into(),
                ),
                details: Vec::new(),
            }))
        }
        // The same bytes already in this upload set: the server holds the picture (a retried or resumed
        // upload whose first answer was lost).
        409 if body.pointer("/existing_item/id").is_some() => Ok(FileAnswer::Accepted {
            picture_id: text(&body, "/existing_item/id"),
        }),
        409 => {
            let earlier = body
                .pointer("/upload_sets/0/upload_set_id")
                .and_then(Value::as_str)
                .map(|s| format!(" (upload set {s})"))
                .unwrap_or_default();
            let reason = if body.get("upload_sets").is_some() {
                "file_duplicate"
            } else {
                "id_conflict"
            };
            Ok(FileAnswer::Rejected(Rejection {
                reason: reason.into(),
                message: Some(format!("{}{earlier}", server_message(&answer.body))),
                details: Vec::new(),
            }))
        }
        400 => {
            let reason = if body.pointer("/details/missing_fields").is_some() {
                "invalid_metadata"
            } else {
                "invalid_file"
            };
            let message = body
                .pointer("/details/error")
                .and_then(Value::as_str)
                .or_else(|| body.get("message").and_then(Value::as_str))
                .map(str::to_string);
            Ok(FileAnswer::Rejected(Rejection {
                reason: reason.into(),
                message,
                details: missing_fields(body.get("details")),
            }))
        }
        _ => Err(unexpected(what, answer)),
    }
}

/// The JSON body creating an upload set for a sequence of which `files` are sent: the title, the count, `sort_method` and our
/// nonce in `metadata` (so that a creation whose answer was lost can be found again), then what `options`
/// mean (`no_split`/`no_deduplication` by default, see [`crate::set_options`]) and the sequence's
/// `key=value` tags as `semantics`. panoramax_cli 1.4.1 (`panoramax_cli/upload.py` `create_upload_set`)
/// sends these fields too, and also `relative_heading` when asked and its own settings under
/// `metadata.cli_configuration`; it has no nonce (it remembers the set's id in a `_panoramax.txt` written
/// into the picture folder).
pub fn upload_set_body(
    sequence: &SequenceDescriptor,
    files: usize,
    nonce: &str,
    options: &SetOptions,
) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("title".into(), sequence.name.clone().into());
    body.insert("estimated_nb_files".into(), files.into());
    body.insert("sort_method".into(), "time-asc".into());
    options.apply(&mut body);
    let (semantics, _) = set_options::semantics(&sequence.tags);
    if !semantics.is_empty() {
        body.insert("semantics".into(), Value::Array(semantics));
    }
    body.insert(
        "metadata".into(),
        json!({"mtp_nonce": nonce, "mtp_sequence_id": sequence.id}),
    );
    Value::Object(body)
}
