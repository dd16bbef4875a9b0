//! The Map the Paths Web (MTPW) integration: chained after Mapillary, it hands MTPW the Mapillary token and
//! imports the published sequence (key, name, description, transport type, tags).
//!
//! It never reads Mapillary's state: the host passes it what Mapillary exported (`sequence_key`,
//! `user_token`). While Mapillary has no key yet, the sequence waits here and is synced by the re-check
//! that finds it.

mod api;
mod auth;
mod config;
mod create_choice;
mod create_import;
mod fields;

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use api::{ApiError, ApiGeneration, MtpwApi};
use create_choice::{CreateChoice, ServerImports};
use create_import::{create_then_import, CreateRules};

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
    /// Why the last create's outcome is unknown (HTTP 5xx, a timeout), when it is.
    #[serde(default)]
    create_unknown: Option<String>,
    /// An import was sent and its answer never came (set before sending, cleared by any answer).
    #[serde(default)]
    import_sent: bool,
    /// Why that import's outcome is unknown, when it is.
    #[serde(default)]
    import_unknown: Option<String>,
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

fn refused(message: String) -> PluginError {
    PluginError::new(ErrorKind::Rejected, format!("MTPW: {message}"))
}

fn api_error(err: ApiError, what: &str) -> PluginError {
    match err {
        ApiError::NotFound => PluginError::new(
            ErrorKind::Rejected,
            format!("MTPW has no {what} endpoint (is MTP_WEB_URL right?)"),
        ),
        ApiError::Refused(message) => refused(message),
        ApiError::OutcomeUnknown(why) => PluginError::transient(format!(
            "MTPW {what}: {why}; whether it took effect is unknown"
        )),
        ApiError::Plugin(err) => err,
    }
}

#[plugin_api::async_trait]
impl Integration for Mtpw {
    fn manifest(&self) -> Manifest {
        config::settings().declare(Manifest {
            id: "mtpw".into(),
            name: "Map the Paths Web".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Syncs Mapillary sequences to Map the Paths Web".into(),
            api_version: String::new(),
            after: vec!["mapillary".into()],
            exports: vec!["unique_id".into()],
            consumes: vec![
                "mapillary.sequence_key".into(),
                "mapillary.user_token".into(),
                "mapillary.added_sequence_key".into(),
            ],
            ..Manifest::default()
        })
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        Eligibility::eligible_once(fields::needs(sequence))
    }

    /// What MTPW needs is in the sequence's own fields: no image is read.
    fn eligibility_paged(
        &self,
        sequence: &SequenceDescriptor,
        _images: &Images<'_>,
    ) -> Result<Eligibility, PluginError> {
        Ok(self.eligibility(sequence))
    }

    async fn authorize(
        &self,
        ctx: &Context,
        request: AuthRequest,
    ) -> Result<AuthOutcome, PluginError> {
        auth::authorize(ctx, self.client()?, request).await
    }

    async fn auth_status(&self, ctx: &Context) -> Result<AuthStatus, PluginError> {
        auth::status(ctx)
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        let result = self.run_sequence(ctx, request).await;
        if let Err(err) = &result {
            if err.kind == ErrorKind::Auth {
                // So `mtp auth status` no longer calls a token MTPW refused authorised.
                auth::mark_refused(ctx, &err.message)?;
            }
        }
        result
    }
}

impl Mtpw {
    async fn run_sequence(
        &self,
        ctx: &Context,
        request: RunRequest,
    ) -> Result<RunOutcome, PluginError> {
        let upstream = request.upstream.get("mapillary");
        let keys_of = |export: &str| -> Vec<String> {
            upstream
                .and_then(|e| e.get(export))
                .map(|k| {
                    k.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let keys = keys_of("sequence_key");
        // Images added to the folder after publishing, sent by `mtp upload --add-new-images` as
        // additional Mapillary sequences: each is an MTPW sequence of its own, by key like the parts.
        let added = keys_of("added_sequence_key");
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
        // The same checks as eligibility, in case the host did not ask first: nothing is sent that the
        // server would refuse or half-store.
        let needs = fields::needs(&request.sequence);
        if !needs.is_empty() {
            return Err(PluginError::invalid_input(needs.join("; ")));
        }
        if request.dry_run {
            return Ok(RunOutcome::new(
                SequenceState::DryRun,
                format!(
                    "would import {} sequence(s) into MTPW",
                    keys.len() + added.len()
                ),
            ));
        }
        let token = ctx.secret("token")?.ok_or_else(|| {
            PluginError::auth("not logged in to Map the Paths Web: run `mtp auth mtpw`")
        })?;
        let base = config::base(ctx)?;
        let client = self.client()?;
        let api = MtpwApi::new(client, &base, &token, config::retry_base(ctx)?);
        let generation = match detect_generation(ctx, &api, &base, &mapillary_token).await {
            Err(err) if is_v3_refusal(&err) => return Ok(v3_waiting(None)),
            other => other?,
        };
        let transport = request.sequence.transport.clone().ok_or_else(|| {
            PluginError::invalid_input(
                "MTPW needs a transport type: set it in the sequence or pass --transport",
            )
        })?;
        let tags = fields::tag_field(&request.sequence.tags);
        let republish = config::settings().switch_option(&request.options, config::REPUBLISH);
        let prior_unique_id = prior_unique_id(&request.options);
        let mut choice = match generation {
            ApiGeneration::CreateThenImport => Some(CreateChoice::read(ctx, &base, &request)?),
            // The older API imports by key and creates nothing that could stay empty.
            ApiGeneration::TokenVerifyImport => None,
        };
        let mut synced = Vec::new();
        let mut notes = Vec::new();
        let mut unsettled: Option<RunOutcome> = None;
        let named = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                (
                    key,
                    fields::part_name(&request.sequence.name, i, keys.len()),
                )
            })
            .chain(
                added
                    .iter()
                    .enumerate()
                    .map(|(i, key)| (key, fields::added_name(&request.sequence.name, i))),
            );
        for (index, (key, name)) in named.enumerate() {
            ctx.check_cancelled()?;
            let slot = state_key(&request.sequence.id, key);
            let mut state: KeyState = ctx.state().get_json(&slot)?.unwrap_or_default();
            if index == 0 && state.unique_id.is_none() && !state.create_sent {
                if let Some(id) = &prior_unique_id {
                    // MTPDU created this MTPW sequence and stopped before importing: use it.
                    state.unique_id = Some(id.clone());
                    ctx.state().put_json(&slot, &state)?;
                    notes.push(format!(
                        "reused MTPW sequence {id} that MTP Desktop Uploader had created"
                    ));
                }
            }
            if let Some(held) = choice
                .as_ref()
                .and_then(|choice| create_import::held(choice, &state, &name))
            {
                // Nothing is sent for it: no progress line that would say otherwise.
                unsettled.get_or_insert(held);
                continue;
            }
            ctx.progress(ProgressEvent::Step {
                step: "sync".into(),
                message: Some(format!("importing Mapillary sequence {key} into MTPW")),
            });
            let fields = SequenceFields {
                key,
                name: &name,
                description: &request.sequence.description,
                tags: tags.as_deref(),
                mapillary_token: &mapillary_token,
            };
            let step = match &choice {
                None => import_by_key(ctx, &api, &fields, &transport, &slot, &mut state).await,
                Some(choice) => {
                    let create = CreateRules {
                        repeat_unknown: republish,
                        choice,
                    };
                    create_then_import(ctx, &api, &fields, &transport, &slot, &mut state, create)
                        .await
                }
            };
            // What the server showed is remembered for it (create_choice.rs): an import that went
            // through lets mtp create there without being asked; a refusal stops further creates
            // until the user chooses again or an import works.
            let shown = match step {
                Ok(Step::Synced(unique_id, note)) => {
                    notes.extend(note);
                    synced.push(unique_id);
                    Some(ServerImports::Imported)
                }
                Ok(Step::Unsettled(outcome)) => {
                    unsettled.get_or_insert(outcome);
                    None
                }
                Err(err) if is_v3_refusal(&err) => {
                    unsettled.get_or_insert(v3_waiting(state.unique_id.clone()));
                    Some(ServerImports::Refused)
                }
                Err(err) => return Err(err),
            };
            if let (Some(shown), Some(choice)) = (shown, choice.as_mut()) {
                if choice.server != shown {
                    create_choice::remember(ctx, &base, shown)?;
                    choice.server = shown;
                }
            }
        }
        let joined = synced.join(",");
        let mut outcome = match unsettled {
            Some(mut outcome) => {
                if !synced.is_empty() {
                    outcome.message = outcome
                        .message
                        .map(|m| format!("{m} (parts already synced: {joined})"));
                }
                outcome
            }
            None => {
                let mut message = format!("synced to MTPW as {joined}");
                if !notes.is_empty() {
                    message = format!("{message} ({})", notes.join("; "));
                }
                let mut outcome = RunOutcome::new(SequenceState::Published, message);
                outcome.exports.insert("unique_id".into(), joined.clone());
                outcome
            }
        };
        if !joined.is_empty() {
            outcome.keys.insert("unique_id".into(), joined);
        }
        // The sequence's page on the site (mtp-web `sequence/urls.py`, `<unique_id>/detail`, mounted
        // under `sequence/` by `config/urls.py`).
        outcome.links = synced
            .iter()
            .map(|id| {
                Link::new(
                    format!("sequence {id} on MTPW"),
                    format!("{}/sequence/{id}/detail", base.trim_end_matches('/')),
                )
            })
            .collect();
        outcome.keys.insert(
            "api".into(),
            match generation {
                ApiGeneration::TokenVerifyImport => "token-verify+import".into(),
                ApiGeneration::CreateThenImport => "create+import".into(),
            },
        );
        Ok(outcome)
    }
}

/// The MTPW `unique_id` MTPDU recorded for the sequence (`destination.mtp`), passed by the host as
/// `options.prior_uploads.mtpw.id`.
fn prior_unique_id(options: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    options
        .get("prior_uploads")?
        .get("mtpw")?
        .get("id")?
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// The answer MTPW gives when its own check of the Mapillary token fails. The token came from Mapillary,
/// which just accepted it (it published the sequence or found its key with it), so the failing check is
/// the server's: the public MTPW code still calls Mapillary's retired API v3 (trek-view/mtp-web
/// `lib/mapillary.py`, `root_url`).
fn is_v3_refusal(err: &PluginError) -> bool {
    err.kind == ErrorKind::Rejected && err.message.contains(V3_REFUSAL)
}

const V3_REFUSAL: &str = "Mapillary token is invalid";

fn v3_waiting(unique_id: Option<String>) -> RunOutcome {
    let mut outcome = RunOutcome::new(
        SequenceState::Waiting,
        "the MTPW server could not check the Mapillary token with Mapillary (it answered \"Mapillary token is \
         invalid\" for a token Mapillary itself just accepted: the public MTPW code still asks Mapillary's \
         retired API v3); nothing is wrong with your login",
    );
    outcome.next_action = Some(
        "nothing to fix on your side: mtp tries again on every mtp upload and mtp status; the MTPW \
         operators must move their server to Mapillary's API v4"
            .into(),
    );
    if let Some(id) = unique_id {
        outcome.keys.insert("unique_id".into(), id);
    }
    outcome
}

/// What one Mapillary key came to.
enum Step {
    /// Imported: MTPW's `unique_id`, and a note.
    Synced(String, Option<String>),
    /// Not done and not an error: the outcome to report (a create whose outcome is unknown).
    Unsettled(RunOutcome),
}

/// The sequence's fields as MTPW takes them.
struct SequenceFields<'a> {
    key: &'a str,
    name: &'a str,
    description: &'a str,
    tags: Option<&'a str>,
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
    // A rejected token verify on the old API is that API's own answer, not a sign of the newer one.
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
) -> Result<Step, PluginError> {
    // Importing the same key again is an update on MTPW's side, so this is safe to repeat.
    let (answer, sent, note) = with_transport_fallback(transport, |transport_type| async move {
        let mut form = vec![
            ("sequence_key", fields.key),
            ("name", fields.name),
            ("description", fields.description),
            ("transport_type", transport_type.as_str()),
        ];
        form.extend(fields.tags.map(|tags| ("tag", tags)));
        api.import_by_key(ctx, &form).await
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
    Ok(Step::Synced(unique_id, note))
}

plugin_api::export_plugin!(Mtpw::default());
