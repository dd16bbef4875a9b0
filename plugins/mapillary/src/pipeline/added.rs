//! A published sequence whose folder changed since: what changed is reported, and the photos whose
//! content is not published yet are sent, on request, as an additional sequence, through a run of its
//! own (`crate::changes` judges the change; this, the one place that starts a run, sends).

use plugin_api::prelude::*;

use super::Run;
use crate::changes::{
    add_new_images, additional_id, additional_sequence, by_content, diff, export_additional,
    remember_additional, ADD_NEW_IMAGES,
};
use crate::error::Result;
use crate::state::{Plan, SequenceStore};

impl Run<'_> {
    /// Adds to the outcome of published sequence `id` (this run's, or the one its photos were
    /// published as) what changed since, and, when asked (or once begun), sends the images whose
    /// content is not published yet as an additional sequence; the keys of every published additional
    /// sequence are `added_sequence_key`.
    pub(super) async fn report_or_send(
        &self,
        id: &str,
        plan: &Plan,
        mut outcome: RunOutcome,
    ) -> Result<RunOutcome> {
        let (ctx, request) = (self.ctx, self.request);
        let store = SequenceStore::new(ctx, id);
        let changes = diff(plan, &self.images, |i| store.planned(plan, i))?;
        let changes = by_content(ctx, id, changes, &self.images, self.options.jobs).await?;
        export_additional(ctx, id, &mut outcome)?;
        if changes.is_empty() {
            return Ok(outcome);
        }
        let description = changes.describe();
        let message = outcome.message.take().unwrap_or_default();
        let extra_id = additional_id(id, &changes.added);
        let begun =
            !changes.added.is_empty() && SequenceStore::new(ctx, &extra_id).plan()?.is_some();
        if changes.added.is_empty() || !(add_new_images(request) || begun) {
            let sent = if changes.added.is_empty() && add_new_images(request) {
                "nothing to send"
            } else {
                "nothing was sent"
            };
            outcome.message = Some(format!("{message}; {description}; {sent}"));
            outcome.next_action = Some(if changes.added.is_empty() {
                "nothing to do: what was published stays as it is on Mapillary".into()
            } else {
                "mtp upload --add-new-images DIR sends the added images as an additional Mapillary \
                 sequence (nothing published is sent again)"
                    .into()
            });
            return Ok(outcome);
        }
        // Remembered before anything is sent, so its key is exported whatever becomes of the folder.
        remember_additional(ctx, id, &extra_id)?;
        let mut options = request.options.clone();
        options.remove(ADD_NEW_IMAGES);
        let mut extra = additional_sequence(id, &request.sequence, &self.images, &changes.added)?;
        let images = std::mem::take(&mut extra.images);
        let sub = RunRequest {
            mode: request.mode,
            sequence: extra,
            dry_run: request.dry_run,
            upstream: request.upstream.clone(),
            previous: None,
            options,
        };
        let run = Run::new(ctx, &sub, Images::whole(&images))?;
        let added = Box::pin(run.run()).await?;
        let detail = added.message.clone().unwrap_or_default();
        outcome.message = Some(format!(
            "{message}; {description}; the {} added image(s) as an additional sequence: {}: {detail}",
            changes.added.len(),
            added.state.as_str()
        ));
        export_additional(ctx, id, &mut outcome)?;
        if added.state != SequenceState::Published {
            outcome.state = added.state;
            outcome.next_action = added.next_action;
        }
        Ok(outcome)
    }
}
