//! The Map the Paths Web (MTPW) integration: chained after Mapillary, it hands MTPW the Mapillary token and
//! imports the published sequence (key, name, description, transport type, tags).
//!
//! It never reads Mapillary's state: the host passes it what Mapillary exported (`sequence_key`,
//! `user_token`). While Mapillary has no key yet, the sequence waits here and is synced by the re-check
//! that finds it.

mod api;
mod auth;

use std::time::Duration;

use plugin_api::manifest::EnvKeyHelp;
use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use api::{ApiError, ApiGeneration, MtpwApi};

/// The `.env` keys the integration cannot work without.
pub const REQUIRED_ENV: [&str; 4] = [
    "MTP_WEB_URL",
    "MTP_WEB_AUTH_URL",
    "MTP_WEB_APP_ID",
    "MTP_WEB_APP_SECRET",
];

/// Optional keys: the login redirect, and the first retry delay (tests shorten it).
pub const OPTIONAL_ENV: [&str; 2] = ["MTP_WEB_REDIRECT_URI", "MTP_WEB_RETRY_BASE_MS"];

/// What is kept per sequence key, so a re-run (or a run after `kill -9`) never creates a second sequence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    /// MTPW's id of the sequence, stored the moment MTPW answers the create.
    unique_id: Option<String>,
    /// A create request was sent (set before sending).
    create_sent: bool,
    /// The import (or update) went through.
    imported: bool,
    /// The transport name MTPW accepted.
    transport_sent: Option<String>,
}

/// The integration.
#[derive(Debug, Default)]
pub struct Mtpw {
    client: std::sync::OnceLock<plugin_api::http::reqwest::Client>,
}

impl Mtpw {
    fn client(&self) -> Result<&plugin_api::http::reqwest::Client, PluginError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = plugin_api::http::client(concat!("mtp-mtpw/", env!("CARGO_PKG_VERSION")))?;
        Ok(self.client.get_or_init(|| client))
    }
}

fn state_key(sequence_id: &str, key: &str) -> String {
    format!("seq/{sequence_id}/{key}")
}

fn retry_base(ctx: &Context) -> Duration {
    ctx.env("MTP_WEB_RETRY_BASE_MS")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_millis(1000))
}

fn refused(message: String) -> PluginError {
    if message.contains("Mapillary token") {
        return PluginError::new(
            ErrorKind::Rejected,
            format!("MTPW: {message}: re-authorise with `mtp auth mapillary`, then run mtp upload again"),
        );
    }
    PluginError::new(ErrorKind::Rejected, format!("MTPW: {message}"))
}

fn api_error(err: ApiError, what: &str) -> PluginError {
    match err {
        ApiError::NotFound => PluginError::new(
            ErrorKind::Rejected,
            format!("MTPW has no {what} endpoint (is MTP_WEB_URL right?)"),
        ),
        ApiError::Refused(message) => refused(message),
        ApiError::Plugin(err) => err,
    }
}

#[plugin_api::async_trait]
impl Integration for Mtpw {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "mtpw".into(),
            name: "Map the Paths Web".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Syncs Mapillary sequences to Map the Paths Web".into(),
            api_version: String::new(),
            required_env: REQUIRED_ENV.iter().map(|k| k.to_string()).collect(),
            optional_env: OPTIONAL_ENV.iter().map(|k| k.to_string()).collect(),
            after: vec!["mapillary".into()],
            exports: vec!["unique_id".into()],
            consumes: vec![
                "mapillary.sequence_key".into(),
                "mapillary.user_token".into(),
            ],
            env_help: vec![
                EnvKeyHelp::new("MTP_WEB_URL", "The MTPW server.")
                    .example("https://www.mapthepaths.com"),
                EnvKeyHelp::new("MTP_WEB_AUTH_URL", "MTPW's OAuth authorisation page.")
                    .example("https://www.mapthepaths.com/o/authorize/"),
                EnvKeyHelp::new("MTP_WEB_APP_ID", "The client id of your MTPW application.")
                    .example("your-mtpw-client-id"),
                EnvKeyHelp::new("MTP_WEB_APP_SECRET", "The application's client secret.")
                    .secret()
                    .example("your-mtpw-client-secret"),
                EnvKeyHelp::new(
                    "MTP_WEB_REDIRECT_URI",
                    "Where MTPW redirects after login (a loopback URL, or anything else to paste the URL back).",
                )
                .default_value("app.mtp.desktop://app"),
                EnvKeyHelp::new("MTP_WEB_RETRY_BASE_MS", "First retry delay in ms.")
                    .default_value("1000"),
            ],
            ..Manifest::default()
        }
    }

    async fn authorize(
        &self,
        ctx: &Context,
        request: AuthRequest,
    ) -> Result<AuthOutcome, PluginError> {
        auth::authorize(ctx, request).await
    }

    async fn auth_status(&self, ctx: &Context) -> Result<AuthStatus, PluginError> {
        auth::status(ctx)
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        let upstream = request.upstream.get("mapillary");
        let keys: Vec<String> = upstream
            .and_then(|e| e.get("sequence_key"))
            .map(|k| {
                k.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mapillary_token = upstream.and_then(|e| e.get("user_token")).cloned();
        let (Some(mapillary_token), false) = (mapillary_token, keys.is_empty()) else {
            let mut outcome = RunOutcome::new(
                SequenceState::Waiting,
                "waiting for Mapillary to publish the sequence and give it a key",
            );
            outcome.next_action = Some(
                "nothing: it syncs on the re-check that finds the key (mtp upload or mtp status)"
                    .into(),
            );
            return Ok(outcome);
        };
        if request.dry_run {
            return Ok(RunOutcome::new(
                SequenceState::DryRun,
                format!("would import {} sequence(s) into MTPW", keys.len()),
            ));
        }
        let token = ctx.secret("token")?.ok_or_else(|| {
            PluginError::auth("not logged in to Map the Paths Web: run `mtp auth mtpw`")
        })?;
        let base = ctx.require_env("MTP_WEB_URL")?;
        let client = self.client()?;
        let api = MtpwApi::new(client, &base, &token, retry_base(ctx));
        let generation = detect_generation(ctx, &api, &base, &mapillary_token).await?;
        let transport = request.sequence.transport.clone().ok_or_else(|| {
            PluginError::invalid_input(
                "MTPW needs a transport type: set it in the sequence or pass --transport",
            )
        })?;
        let tags = request.sequence.tags.join(",");
        let mut unique_ids = Vec::new();
        let mut notes = Vec::new();
        for key in &keys {
            ctx.check_cancelled()?;
            ctx.progress(ProgressEvent::Step {
                step: "sync".into(),
                message: Some(format!("importing Mapillary sequence {key} into MTPW")),
            });
            let slot = state_key(&request.sequence.id, key);
            let mut state: KeyState = ctx.state().get_json(&slot)?.unwrap_or_default();
            let fields = SequenceFields {
                key,
                name: &request.sequence.name,
                description: &request.sequence.description,
                tags: &tags,
                mapillary_token: &mapillary_token,
            };
            let (unique_id, note) = match generation {
                ApiGeneration::TokenVerifyImport => {
                    import_by_key(ctx, &api, &fields, &transport, &slot, &mut state).await?
                }
                ApiGeneration::CreateThenImport => {
                    create_then_import(ctx, &api, &fields, &transport, &slot, &mut state).await?
                }
            };
            notes.extend(note);
            unique_ids.push(unique_id);
        }
        let joined = unique_ids.join(",");
        let mut message = format!("synced to MTPW as {joined}");
        if !notes.is_empty() {
            message = format!("{message} ({})", notes.join("; "));
        }
        let mut outcome = RunOutcome::new(SequenceState::Published, message);
        outcome.keys.insert("unique_id".into(), joined.clone());
        outcome.keys.insert(
            "api".into(),
            match generation {
                ApiGeneration::TokenVerifyImport => "token-verify+import".into(),
                ApiGeneration::CreateThenImport => "create+import".into(),
            },
        );
        outcome.exports.insert("unique_id".into(), joined);
        Ok(outcome)
    }
}

/// The sequence's fields as MTPW takes them.
struct SequenceFields<'a> {
    key: &'a str,
    name: &'a str,
    description: &'a str,
    tags: &'a str,
    mapillary_token: &'a str,
}

/// Which API generation the server speaks: remembered per server; probed with the old flow's first call,
/// which is needed anyway (a 404 means the later API).
async fn detect_generation(
    ctx: &Context,
    api: &MtpwApi<'_>,
    base: &str,
    mapillary_token: &str,
) -> Result<ApiGeneration, PluginError> {
    let slot = format!("api/{base}");
    let known: Option<ApiGeneration> = ctx.state().get_json(&slot)?;
    if known == Some(ApiGeneration::CreateThenImport) {
        return Ok(ApiGeneration::CreateThenImport);
    }
    let generation = match api.verify_mapillary_token(ctx, mapillary_token).await {
        Ok(_) => ApiGeneration::TokenVerifyImport,
        Err(ApiError::NotFound) => ApiGeneration::CreateThenImport,
        Err(err) => return Err(api_error(err, "token verify")),
    };
    if known != Some(generation) {
        ctx.state().put_json(&slot, &generation)?;
        ctx.info(format!("MTPW at {base} speaks the {generation:?} API"));
    }
    Ok(generation)
}

/// Runs `call` with the transport's own name (MTPDU's choice: the child), and once more with its parent
/// when MTPW says the type is invalid. Returns the answer and a note when the fallback was used.
async fn with_transport_fallback<F, Fut>(
    transport: &TransportType,
    mut call: F,
) -> Result<(serde_json::Value, String, Option<String>), ApiError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ApiError>>,
{
    let first = transport.name().to_string();
    match call(first.clone()).await {
        Err(ApiError::Refused(message))
            if message.contains("Transport type") && transport.child().is_some() =>
        {
            let parent = transport.parent().to_string();
            let answer = call(parent.clone()).await?;
            let note = format!(
                "MTPW refused transport type {first} ({message}); sent its parent {parent}"
            );
            Ok((answer, parent, Some(note)))
        }
        other => other.map(|answer| (answer, first, None)),
    }
}

fn unique_id_of(answer: &serde_json::Value) -> Option<String> {
    match answer.get("unique_id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

async fn import_by_key(
    ctx: &Context,
    api: &MtpwApi<'_>,
    fields: &SequenceFields<'_>,
    transport: &TransportType,
    slot: &str,
    state: &mut KeyState,
) -> Result<(String, Option<String>), PluginError> {
    // Importing the same key again is an update on MTPW's side, so this is safe to repeat.
    let (answer, sent, note) = with_transport_fallback(transport, |transport_type| async move {
        api.import_by_key(
            ctx,
            &[
                ("sequence_key", fields.key),
                ("name", fields.name),
                ("description", fields.description),
                ("transport_type", &transport_type),
                ("tag", fields.tags),
            ],
        )
        .await
    })
    .await
    .map_err(|err| api_error(err, "sequence import"))?;
    let unique_id = unique_id_of(&answer)
        .or_else(|| state.unique_id.clone())
        .ok_or_else(|| PluginError::other("MTPW imported the sequence but sent no unique_id"))?;
    state.unique_id = Some(unique_id.clone());
    state.imported = true;
    state.transport_sent = Some(sent);
    ctx.state().put_json(slot, state)?;
    Ok((unique_id, note))
}

async fn create_then_import(
    ctx: &Context,
    api: &MtpwApi<'_>,
    fields: &SequenceFields<'_>,
    transport: &TransportType,
    slot: &str,
    state: &mut KeyState,
) -> Result<(String, Option<String>), PluginError> {
    let mut note = None;
    let unique_id = match state.unique_id.clone() {
        Some(id) => id,
        None => {
            if state.create_sent {
                ctx.warn(
                    "an earlier run sent MTPW a create request and stopped before its answer was stored; creating again",
                );
            }
            state.create_sent = true;
            ctx.state().put_json(slot, state)?;
            let (answer, sent, fallback_note) =
                with_transport_fallback(transport, |transport_type| async move {
                    api.create(
                        ctx,
                        &[
                            ("name", fields.name),
                            ("transport_type", &transport_type),
                            ("description", fields.description),
                            ("tag", fields.tags),
                            ("source", "mtpdu"),
                        ],
                    )
                    .await
                })
                .await
                .map_err(|err| api_error(err, "sequence create"))?;
            let id = unique_id_of(&answer).ok_or_else(|| {
                PluginError::other("MTPW created a sequence but sent no unique_id")
            })?;
            // Stored before anything else happens: a re-run must never create a second sequence.
            state.unique_id = Some(id.clone());
            state.transport_sent = Some(sent);
            ctx.state().put_json(slot, state)?;
            note = fallback_note;
            id
        }
    };
    if !state.imported {
        api.import_into(ctx, &unique_id, fields.mapillary_token, fields.key)
            .await
            .map_err(|err| api_error(err, "sequence import"))?;
        state.imported = true;
        ctx.state().put_json(slot, state)?;
    }
    Ok((unique_id, note))
}

plugin_api::export_plugin!(Mtpw::default());
