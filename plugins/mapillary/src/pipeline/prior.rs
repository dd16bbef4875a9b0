//! A sequence MTP Desktop Uploader published to Mapillary before it learnt the key (its sequence log's
//! `destination.mapillary` is a session key or `true`: `mtp_sequence::mtpdu::PriorUpload`). Publishing
//! it again would make a second copy, and skipping it leaves it without a key (so MTPW never gets it).
//! Instead nothing is sent: its parts are recorded as published with the key unknown, exactly as after
//! our own publish, and the key lookup (`crate::lookup`) looks for them under the user's account now
//! and on every later `mtp status` / `mtp upload`.

use plugin_api::prelude::*;

use super::{step, Run};
use crate::error::Result;
use crate::state::Publish;
use crate::token;

/// The first line of the record while the key is not found.
const NOT_FOUND: &str = "MTP Desktop Uploader published it to Mapillary before it learnt the \
     sequence key; not found under your Mapillary account yet (Mapillary may still be processing it); \
     nothing sent";

impl Run<'_> {
    /// Whether this run is the first on a sequence the log says MTPDU published (nothing of ours is
    /// recorded as sent or published yet).
    pub(super) fn prior_due(&self) -> Result<bool> {
        if !self.options.prior_published {
            return Ok(false);
        }
        let stored = self.store.stored_parts()?;
        Ok(stored.iter().all(|(_, p)| p.publish == Publish::NotSent))
    }

    /// Records every part as published by MTPDU (key unknown), sending nothing, and looks the keys up.
    pub(super) async fn prior_upload(&self) -> Result<RunOutcome> {
        step(self.ctx, "validate", "checking the sequence");
        let plan = self.resolve_plan()?;
        // No survey ran: nothing Mapillary showed may be excluded as "there before this publish" (the
        // sequence MTPDU published is there before us by definition). An earlier run's records go.
        crate::prepublish::forget_attempts(self.ctx, &self.request.sequence.id)?;
        let token = token::usable(&self.api, self.ctx).await?;
        let mut parts = self.parts(&plan)?;
        let now = self.api.config.now_ms();
        for (index, part) in parts.iter_mut().enumerate() {
            if part.sequence_key.is_none() && part.publish == Publish::NotSent {
                part.publish = Publish::Published {
                    at_ms: now,
                    cluster_id: String::new(),
                };
                self.store.put_part(index, part)?;
            }
        }
        self.find_keys(&plan, &mut parts, &token, true).await?;
        let mut outcome = self.record_outcome(&plan, &parts)?;
        if outcome.state == SequenceState::Published {
            let found = outcome.message.take().unwrap_or_default();
            outcome.message = Some(format!(
                "published by MTP Desktop Uploader; found on your account: {found}; nothing sent"
            ));
        } else if parts.iter().all(|p| p.ambiguous.is_empty()) {
            outcome.message = Some(NOT_FOUND.into());
            outcome.next_action = Some(
                "mtp status and mtp upload look for it again; mtp upload --force publishes it again"
                    .into(),
            );
        }
        Ok(outcome)
    }
}
