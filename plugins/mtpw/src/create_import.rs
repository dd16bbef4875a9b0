//! The later MTPW API's two steps for one Mapillary key: `POST sequence/create/` (not idempotent) and
//! `PUT sequence/import/<unique_id>/` (not harmless to repeat: it strips the sequence's tags). Neither is
//! sent again after an answer that never came unless the user says so (`--republish`).

use plugin_api::prelude::*;

use crate::api::{ApiError, MtpwApi};
use crate::create_choice::CreateChoice;
use crate::{api_error, unique_id_of, with_transport_fallback, KeyState, SequenceFields, Step};

/// When a create may be sent.
#[derive(Clone, Copy)]
pub(crate) struct CreateRules<'a> {
    /// The user checked MTPW and asks for a new create after an unknown outcome (`--republish`).
    pub(crate) repeat_unknown: bool,
    /// Whether this server may get a new MTPW sequence at all (it imported before, or the user chose).
    pub(crate) choice: &'a CreateChoice,
}

fn unknown_create(name: &str, why: &str) -> RunOutcome {
    let mut outcome = RunOutcome::new(
        SequenceState::Unknown,
        format!(
            "MTPW may or may not have created sequence \"{name}\" ({why}); it is not created again \
             blindly, which could make a second one"
        ),
    );
    outcome.next_action = Some(format!(
        "look for \"{name}\" among your sequences on Map the Paths Web; if it is not there (or you \
         deleted it), run mtp upload again with --republish"
    ));
    outcome
}

/// The record to keep, with nothing sent, when the key's MTPW sequence would have to be created and the
/// choice does not allow it: it would stay empty (create_choice.rs). A create already sent is left to
/// the rules for an unknown outcome.
pub(crate) fn held(choice: &CreateChoice, state: &KeyState, name: &str) -> Option<RunOutcome> {
    let must_create = state.unique_id.is_none() && !state.create_sent;
    (must_create && !choice.allows_create()).then(|| choice.waiting(name))
}

pub(crate) async fn create_then_import(
    ctx: &Context,
    api: &MtpwApi<'_>,
    fields: &SequenceFields<'_>,
    transport: &TransportType,
    slot: &str,
    state: &mut KeyState,
    rules: CreateRules<'_>,
) -> Result<Step, PluginError> {
    let mut note = None;
    let unique_id = match state.unique_id.clone() {
        Some(id) => id,
        None => {
            if let Some(outcome) = held(rules.choice, state, fields.name) {
                return Ok(Step::Unsettled(outcome));
            }
            if state.create_sent && !rules.repeat_unknown {
                // An earlier create left without an answer we could trust (5xx, timeout, or mtp stopped
                // before storing the answer): only the user can tell whether it exists.
                let why = state.create_unknown.clone().unwrap_or_else(|| {
                    "an earlier run stopped before storing MTPW's answer".into()
                });
                return Ok(Step::Unsettled(unknown_create(fields.name, &why)));
            }
            state.create_sent = true;
            state.create_unknown = None;
            ctx.state().put_json(slot, state)?;
            let created = with_transport_fallback(transport, |transport_type| async move {
                let mut form = vec![
                    ("name", fields.name),
                    ("transport_type", transport_type.as_str()),
                    ("description", fields.description),
                ];
                form.extend(fields.tags.map(|tags| ("tag", tags)));
                form.push(("source", "mtpdu"));
                api.create(ctx, &form).await
            })
            .await;
            let (answer, sent, fallback_note) = match created {
                Ok(created) => created,
                Err(ApiError::OutcomeUnknown(why)) => {
                    state.create_unknown = Some(why.clone());
                    ctx.state().put_json(slot, state)?;
                    return Ok(Step::Unsettled(unknown_create(fields.name, &why)));
                }
                Err(err) => {
                    // Refused before anything was stored (an error in a 200, a 4xx): safe to try again.
                    state.create_sent = false;
                    ctx.state().put_json(slot, state)?;
                    return Err(api_error(err, "sequence create"));
                }
            };
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
        // A sequence without tags loses nothing when MTPW repeats the import, so it may be sent again
        // freely. With tags, a repeat after an answer that never came makes MTPW drop them if the first
        // import went through (docs/providers/mtpw.md), and there is no call to ask whether it did: the
        // import is repeated (anything else leaves the sequence unimported for good), and the user is told.
        let repeat_safe = fields.tags.is_none();
        let mut lost = state
            .import_sent
            .then(|| {
                state
                    .import_unknown
                    .clone()
                    .unwrap_or_else(|| "an earlier run stopped before MTPW's answer arrived".into())
            })
            .filter(|_| !repeat_safe);
        state.import_sent = true;
        state.import_unknown = None;
        ctx.state().put_json(slot, state)?;
        let mut imported = api
            .import_into(
                ctx,
                &unique_id,
                fields.mapillary_token,
                fields.key,
                repeat_safe,
            )
            .await;
        if let Err(ApiError::OutcomeUnknown(why)) = &imported {
            state.import_unknown = Some(why.clone());
            ctx.state().put_json(slot, state)?;
            lost = Some(why.clone());
            imported = api
                .import_into(ctx, &unique_id, fields.mapillary_token, fields.key, true)
                .await;
        }
        if let Err(err) = imported {
            if !matches!(err, ApiError::OutcomeUnknown(_)) && lost.is_none() {
                // Answered: whatever it said, it did not import (its errors come before the deletion).
                state.import_sent = false;
                ctx.state().put_json(slot, state)?;
            }
            return Err(api_error(err, "sequence import"));
        }
        if let Some(why) = lost {
            let warning = format!(
                "MTPW's import of \"{}\" was sent again after an answer that never came ({why}): if the \
                 first one went through, MTPW dropped the sequence's tags ({}) and tour links; add them \
                 again on the site",
                fields.name,
                fields.tags.unwrap_or_default()
            );
            ctx.warn(warning.clone());
            note = Some(match note {
                Some(n) => format!("{n}; {warning}"),
                None => warning,
            });
        }
        state.imported = true;
        state.import_sent = false;
        ctx.state().put_json(slot, state)?;
    }
    Ok(Step::Synced(unique_id, note))
}
