//! Whether mtp may create an MTPW sequence on a server. A create always succeeds, but against the public
//! mtp-web code no import can (its `lib/mapillary.py` checks the Mapillary token with Mapillary's retired
//! API v3), so each create could leave an MTPW sequence that never gets its imagery. mtp therefore creates
//! only on a server that has imported for it before, or where the user chose to create
//! (docs/providers/mtpw.md, "No sequence MTPW cannot fill").

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config;

/// What mtp knows of one server's imports, remembered per server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ServerImports {
    /// No import on this server has gone through for mtp yet, and the user has not chosen to create.
    #[default]
    Unproven,
    /// The user chose to create on this server (`--option mtpw.create=true`), until an import fails.
    Chosen,
    /// An import went through: the server can import.
    Imported,
    /// The last import refused the Mapillary token (the retired-v3 check).
    Refused,
}

fn slot(base: &str) -> String {
    format!("api/{base}/imports")
}

/// Where versions before the explicit choice remembered a refusal.
fn legacy_refused_slot(base: &str) -> String {
    format!("api/{base}/import_refused")
}

/// What is remembered of `base`.
pub(crate) fn load(ctx: &Context, base: &str) -> Result<ServerImports, PluginError> {
    if let Some(known) = ctx.state().get_json(&slot(base))? {
        return Ok(known);
    }
    let refused: bool = ctx
        .state()
        .get_json(&legacy_refused_slot(base))?
        .unwrap_or(false);
    Ok(if refused {
        ServerImports::Refused
    } else {
        ServerImports::Unproven
    })
}

/// Remembers `imports` for `base`.
pub(crate) fn remember(
    ctx: &Context,
    base: &str,
    imports: ServerImports,
) -> Result<(), PluginError> {
    ctx.state().put_json(&slot(base), &imports)?;
    ctx.state().delete(&legacy_refused_slot(base))
}

/// One run's view of the choice.
#[derive(Debug, Clone)]
pub(crate) struct CreateChoice {
    /// What the server has shown.
    pub(crate) server: ServerImports,
    /// `--option mtpw.create=true` on this run.
    pub(crate) on_this_run: bool,
    /// `MTP_WEB_CREATE_SEQUENCES=true`: create on any server that has not refused an import.
    pub(crate) in_env: bool,
    /// The sequence's folder, for the command to type.
    pub(crate) root: String,
}

impl CreateChoice {
    /// The choice as this run sees it; the option given on a run is remembered for the server (made
    /// once, not per run), unless the server already showed it imports.
    pub(crate) fn read(
        ctx: &Context,
        base: &str,
        request: &RunRequest,
    ) -> Result<CreateChoice, PluginError> {
        let mut server = load(ctx, base)?;
        let on_this_run = config::settings().switch_option(&request.options, config::CREATE);
        if on_this_run && !request.dry_run && server != ServerImports::Imported {
            server = ServerImports::Chosen;
            remember(ctx, base, server)?;
        }
        Ok(CreateChoice {
            server,
            on_this_run,
            in_env: config::create_sequences(ctx)?,
            root: request.sequence.root.clone(),
        })
    }

    /// Whether a new MTPW sequence may be created.
    pub(crate) fn allows_create(&self) -> bool {
        self.on_this_run
            || match self.server {
                ServerImports::Imported | ServerImports::Chosen => true,
                ServerImports::Unproven => self.in_env,
                ServerImports::Refused => false,
            }
    }

    /// The record while no create is allowed: why, and what to type to create anyway.
    pub(crate) fn waiting(&self, name: &str) -> RunOutcome {
        let why = match self.server {
            ServerImports::Refused => {
                "this MTPW server's import refused the Mapillary token last time (the public MTPW code \
                 checks it with Mapillary's retired API v3)"
            }
            _ => {
                "this MTPW server has not yet shown that it can import (against the public mtp-web code \
                 no import can succeed: its lib/mapillary.py checks the Mapillary token with Mapillary's \
                 retired API v3)"
            }
        };
        let mut outcome = RunOutcome::new(
            SequenceState::Waiting,
            format!(
                "no MTPW sequence created for \"{name}\": {why}, so the MTPW sequence created would stay \
                 empty"
            ),
        );
        let folder = if self.root.contains(char::is_whitespace) {
            format!("\"{}\"", self.root)
        } else {
            self.root.clone()
        };
        let command = format!("mtp upload {folder} --option mtpw.create=true");
        outcome.next_action = Some(match self.server {
            ServerImports::Refused => format!(
                "nothing: mtp creates it once an import on this server works (it keeps trying the \
                 sequence already created on every mtp upload and mtp status); to create it now \
                 anyway: {command}"
            ),
            _ => format!(
                "to create it anyway: {command} (remembered for this server until an import there \
                 fails; {}=true in .env chooses it for every server)",
                config::CREATE_SEQUENCES
            ),
        });
        outcome
    }
}
