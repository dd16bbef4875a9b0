//! Publishing: the look at the user's account before anything is sent (`crate::prepublish`), each part
//! published once, overdue parts forgotten on `--republish`, and the record of a run that publishes
//! nothing.

use super::*;

impl Run<'_> {
    /// What Mapillary shows for the parts `due` for the look before publishing (`crate::prepublish`).
    pub(super) async fn fetch_survey(
        &self,
        plan: &Plan,
        due: &[usize],
        token: &str,
    ) -> Result<Vec<(usize, crate::lookup::Candidates)>> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let username = self.username(token).await?;
        crate::prepublish::fetch_survey(&self.api, self.ctx, token, &username, plan, due).await
    }

    /// The look at Mapillary before publishing (`crate::prepublish`), from what it showed (`fetched`).
    pub(super) fn survey(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        fetched: Vec<(usize, crate::lookup::Candidates)>,
    ) -> Result<Vec<String>> {
        crate::prepublish::apply_survey(
            self.ctx,
            &self.request.sequence.id,
            &self.images,
            plan,
            parts,
            crate::prepublish::SurveyMode {
                may_adopt: !self.options.republish,
            },
            fetched,
        )
    }

    /// Publishes every part not published yet (and, with `--republish`, those whose publication is in
    /// doubt). A refusal fails the sequence.
    pub(super) async fn publish_parts(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        token: &str,
    ) -> Result<()> {
        let due: Vec<usize> = (0..plan.parts.len())
            .filter(|&i| {
                parts[i].sequence_key.is_none()
                    && match parts[i].publish {
                        Publish::NotSent => true,
                        Publish::OutcomeUnknown { .. } => self.options.republish,
                        Publish::Published { .. } => false,
                    }
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        step(self.ctx, "publish", "publishing on Mapillary");
        let uploader = self.uploader(token, false)?;
        for index in due {
            if let Publish::OutcomeUnknown { .. } = parts[index].publish {
                // A new attempt gets a new manifest entity, never the handle already sent.
                crate::attempts::forget(self.ctx, &self.request.sequence.id, index)?;
                self.upload_manifest(&uploader, plan, index, &mut parts[index])
                    .await?;
            }
            let part = &mut parts[index];
            match publish_part(&self.api, self.ctx, token, &self.store, index, part).await {
                Ok(Published::Accepted) => self.ctx.info(format!(
                    "part {} of {} published ({} images)",
                    index + 1,
                    plan.parts.len(),
                    plan.parts[index].len
                )),
                Ok(Published::Unknown) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// `--republish` on overdue parts: one more lookup each, and those still not found are forgotten so
    /// that this run uploads and publishes them again.
    pub(super) async fn forget_overdue(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        token: &str,
    ) -> Result<()> {
        let (now, deadline) = (self.api.config.now_ms(), self.api.config.publish_deadline);
        let late = |p: &PartState| {
            p.ambiguous.is_empty() && overdue::overdue_for(p, now, deadline).is_some()
        };
        if !parts.iter().any(late) {
            return Ok(());
        }
        self.find_keys(plan, parts, token, true).await?;
        for (index, part) in parts.iter_mut().enumerate() {
            if late(part) {
                self.ctx.warn(format!(
                    "part {} is still not on Mapillary after the deadline: publishing it again \
                     (--republish)",
                    index + 1
                ));
                self.forget_part(plan, index)?;
                *part = PartState::default();
            }
        }
        Ok(())
    }

    pub(super) fn no_publish_outcome(
        &self,
        plan: &Plan,
        to_send: &[usize],
        progress: Progress,
    ) -> RunOutcome {
        let images: usize = to_send.iter().map(|&i| plan.parts[i].len).sum();
        let detail = if plan.parts.len() == 1 {
            String::new()
        } else {
            let parts: Vec<String> = to_send
                .iter()
                .map(|&i| {
                    let p = &plan.parts[i];
                    format!(
                        "part {} ({} images, {} – {})",
                        i + 1,
                        p.len,
                        plugin_api::time::format_utc(p.first_ms),
                        plugin_api::time::format_utc(p.last_ms)
                    )
                })
                .collect();
            format!(": {}", parts.join("; "))
        };
        let mut outcome = RunOutcome::new(
            SequenceState::DryRun,
            format!(
                "not published (no_publish): uploaded {images} images and {} manifest(s); would have \
                 published {} Mapillary sequence(s){detail}",
                to_send.len(),
                to_send.len()
            ),
        );
        outcome.progress = Some(progress);
        outcome.next_action = Some(
            "run mtp upload to publish (handles older than 2 days are checked with Mapillary again)"
                .into(),
        );
        outcome
    }
}
