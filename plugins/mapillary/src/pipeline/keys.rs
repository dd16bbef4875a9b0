//! Finding each published part's sequence key (`crate::lookup`), in part order.

use super::*;

impl Run<'_> {
    /// One lookup per part that is (or may be) published and has no key yet; overdue parts only when
    /// their backoff allows (`crate::overdue`) or `force` says so.
    pub(super) async fn find_keys(
        &self,
        plan: &Plan,
        parts: &mut [PartState],
        token: &str,
        force: bool,
    ) -> Result<()> {
        let (now, deadline) = (self.api.config.now_ms(), self.api.config.publish_deadline);
        let wanted: Vec<usize> = (0..parts.len())
            .filter(|&i| {
                parts[i].sequence_key.is_none()
                    && matches!(
                        parts[i].publish,
                        Publish::Published { .. } | Publish::OutcomeUnknown { .. }
                    )
                    && (force || overdue::lookup_due(&parts[i], now, deadline))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        step(
            self.ctx,
            "lookup",
            "looking for the sequence key on Mapillary",
        );
        let username = self.username(token).await?;
        let held_elsewhere = crate::prepublish::local_keys(self.ctx)?;
        // The searches go out `jobs` at a time, ahead of the decisions, which stay in part order (each
        // excludes the keys earlier parts took); a failed search stops at its part, as one at a time did.
        let queries: Vec<Query> = wanted
            .iter()
            .map(|&index| Query::for_part(&username, &plan.parts[index]))
            .collect();
        let (api, ctx) = (&self.api, self.ctx);
        let mut searches = futures::stream::iter(queries)
            .map(move |query| async move { lookup::candidates(api, ctx, token, &query).await })
            .buffered(self.options.jobs.max(1));
        for index in wanted {
            // Never another record's key, nor one Mapillary showed before this part was published.
            let mut taken: BTreeSet<String> = parts
                .iter()
                .filter_map(|p| p.sequence_key.clone())
                .collect();
            taken.extend(held_elsewhere.iter().cloned());
            taken.extend(crate::prepublish::known_before(
                self.ctx,
                &self.request.sequence.id,
                index,
            )?);
            let planned = self.planned(plan, index)?;
            let candidates = searches.next().await.ok_or_else(|| {
                MlyError::Invalid(format!("no search was made for part {}", index + 1))
            })??;
            let ours = crate::prepublish::our_images(&planned, &self.images.part(&planned)?);
            let part = &mut parts[index];
            part.lookups += 1;
            part.last_lookup_ms = Some(now);
            match lookup::choose(&planned.times, &lookup::times(&candidates), &taken) {
                Choice::Found(key) if !crate::prepublish::verified(&ours, candidates.get(&key)) => {
                    // Close in time, but not our images at our places: recorded, not guessed.
                    self.ctx.warn(format!(
                        "part {}: Mapillary sequence {key} is near in time but does not hold these images at their capture times and places; not assigned (looked at again later)",
                        index + 1
                    ));
                    part.ambiguous = vec![key];
                }
                Choice::Found(key) => {
                    if let Publish::OutcomeUnknown { .. } = part.publish {
                        // It did go through: the lookup settles the unknown outcome.
                        part.publish = Publish::Published {
                            at_ms: now,
                            cluster_id: String::new(),
                        };
                    }
                    self.ctx
                        .info(format!("part {} is Mapillary sequence {key}", index + 1));
                    part.sequence_key = Some(key);
                    part.ambiguous.clear();
                }
                Choice::Ambiguous(keys) => part.ambiguous = keys,
                Choice::NotFound => part.ambiguous.clear(),
            }
            self.store.put_part(index, part)?;
        }
        Ok(())
    }
}
