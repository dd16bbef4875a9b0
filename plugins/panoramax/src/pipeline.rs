//! One `run`: find or create the upload set, send what the server lacks, complete the set, and report
//! where it stands; or, in a re-check, only look at the set.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use plugin_api::prelude::*;

use crate::api::{Api, UploadSet};
use crate::config::{self, Config};
use crate::set_options::{self, SetOptions};
use crate::state::{SequenceStore, TOKEN_SECRET};
use crate::upload::{self, rejection_line, Tally};
use crate::upload_set;

fn token(ctx: &Context) -> Result<String, PluginError> {
    ctx.secret(TOKEN_SECRET)?.ok_or_else(|| {
        PluginError::auth(
            "not authorised with Panoramax: run `mtp auth panoramax` (or --token JWT)",
        )
    })
}

/// Runs the integration on one sequence, whose images are where `images` says (lent by the host, read
/// a page at a time, or in the request).
pub async fn run(
    ctx: &Context,
    request: RunRequest,
    images: RunImages,
) -> Result<RunOutcome, PluginError> {
    let config = Config::from_context(ctx)?;
    let api = Api::new(config.clone())?.with_token(&token(ctx)?);
    let sequence = &request.sequence;
    let store = SequenceStore::new(ctx, &sequence.id);
    let was_published = request
        .previous
        .as_ref()
        .is_some_and(|p| p.state == SequenceState::Published);
    let republish = request
        .options
        .get(upload_set::REPUBLISH)
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if request.mode == RunMode::Recheck {
        return recheck(ctx, &api, &store, was_published).await;
    }
    let images = images.read(ctx, sequence);
    // What eligibility refuses, run refuses too (the host never asks, a caller of the library may):
    // no empty upload set is created for it. Files the server would refuse are left out, said once;
    // the rest of the sequence goes (each pass below skips them: no copy of the sequence is made).
    let accepted = crate::eligibility::accepted(&images)?;
    if let Some(reason) = accepted.refusal {
        return Err(PluginError::invalid_input(reason));
    }
    if let Some(message) = accepted.left_out {
        ctx.progress(ProgressEvent::Note { message });
    }
    let options = SetOptions::from_options(&request.options)?;
    if request.dry_run {
        let me = api.me(ctx).await?.ok_or_else(|| {
            PluginError::auth("Panoramax refused the stored token: run `mtp auth panoramax` again")
        })?;
        let plan = what_the_instance_will_do(ctx, &api, &options, sequence).await?;
        return Ok(RunOutcome::new(
            SequenceState::DryRun,
            format!(
                "would upload {} pictures to {} as {}: {plan}",
                accepted.count, config.url, me.name
            ),
        ));
    }
    if republish {
        // Asked to upload again: whatever the record says, the server is asked.
    } else if let Some(published) = already_published(&store, &request, &images)? {
        return Ok(published);
    }
    let fresh = store.set()?.and_then(|r| r.id).is_none();
    if fresh {
        let plan = what_the_instance_will_do(ctx, &api, &options, sequence).await?;
        ctx.progress(ProgressEvent::Step {
            step: "upload set".into(),
            message: Some(plan),
        });
    }
    let set = match upload_set::ensure(
        ctx,
        &api,
        &store,
        sequence,
        accepted.count,
        &options,
        upload_set::Restart {
            was_published,
            republish,
        },
    )
    .await?
    {
        upload_set::Ensured::Set(set) => set,
        upload_set::Ensured::Gone(id) => return Ok(vanished(&id)),
    };
    let tally =
        upload::send_all(ctx, &api, &store, &set.id, &images, config::jobs(&request)).await?;
    let set = match api.upload_set(ctx, &set.id).await? {
        Some(set) => set,
        None => return Ok(vanished(&set.id)),
    };
    // The server completes a set by itself when as many files arrived as announced; but a set whose
    // files were all refused is never dispatched unless completed explicitly, and a set announced with
    // more files than arrived waits forever.
    let set = if !set.completed || (tally.accepted == 0 && !set.dispatched) {
        ctx.progress(ProgressEvent::Step {
            step: "complete".into(),
            message: Some(format!("completing upload set {}", set.id)),
        });
        api.complete(ctx, &set.id).await?
    } else {
        set
    };
    Ok(outcome(&config, &set, Some(&tally)))
}

/// The last outcome, when it was published for the set this sequence has, the server answered for
/// every picture of it and refused none: a re-run then asks the server nothing (new pictures still go to
/// the set; `mtp status` re-checks a set that may have changed). With a refused picture the run asks the
/// server's file list, to send again one whose file changed since ([`crate::resend`]).
fn already_published(
    store: &SequenceStore<'_>,
    request: &RunRequest,
    images: &Images<'_>,
) -> Result<Option<RunOutcome>, PluginError> {
    let Some(previous) = request
        .previous
        .as_ref()
        .filter(|p| p.state == SequenceState::Published)
    else {
        return Ok(None);
    };
    let set_id = store.set()?.and_then(|r| r.id);
    if set_id.is_none() || previous.keys.get("upload_set_id") != set_id.as_ref() {
        return Ok(None);
    }
    if !store.refused_files()?.is_empty() {
        return Ok(None);
    }
    let answered: std::collections::BTreeSet<String> =
        store.answered_files()?.into_iter().collect();
    let mut all_answered = true;
    images.for_each_page(plugin_api::sdk::images::PAGE, |_, page| {
        all_answered = page
            .iter()
            .filter(|i| crate::eligibility::is_taken(i))
            .all(|i| answered.contains(upload::file_name(i).as_ref()));
        if all_answered {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    })?;
    Ok(all_answered.then(|| previous.clone()))
}

/// The upload set's settings in words, with the instance's own defaults when it says them, and which tags
/// are not sent (said once per sequence, not per picture).
async fn what_the_instance_will_do(
    ctx: &Context,
    api: &Api,
    options: &SetOptions,
    sequence: &SequenceDescriptor,
) -> Result<String, PluginError> {
    let instance = api.configuration(ctx).await?.unwrap_or_default();
    let defaults = instance.defaults.as_ref();
    let mut plan = options.describe(defaults);
    if let Some(d) = defaults.filter(|_| *options == SetOptions::default()) {
        if let (Some(t), Some(m)) = (d.split_time, d.split_distance) {
            plan.push_str(&format!(
                " (the instance's defaults, not used: split at {t} s / {m} m"
            ));
            match (d.duplicate_distance, d.duplicate_rotation) {
                (Some(dm), Some(r)) => plan.push_str(&format!(
                    ", delete pictures within {dm} m and {r}° of the previous)"
                )),
                _ => plan.push(')'),
            }
        }
    }
    let (semantic, plain) = set_options::semantics(&sequence.tags);
    if !semantic.is_empty() {
        plan.push_str(&format!("; {} tag(s) sent as semantics", semantic.len()));
    }
    if !plain.is_empty() {
        plan.push_str(&format!(
            "; tags without key=value not sent: {}",
            plain.join(", ")
        ));
    }
    Ok(plan)
}

async fn recheck(
    ctx: &Context,
    api: &Api,
    store: &SequenceStore<'_>,
    was_published: bool,
) -> Result<RunOutcome, PluginError> {
    let Some(id) = store.set()?.and_then(|r| r.id) else {
        return Ok(RunOutcome::new(
            SequenceState::Pending,
            "no Panoramax upload set yet: run mtp upload",
        ));
    };
    match api.upload_set(ctx, &id).await? {
        Some(set) => {
            let tally = upload::tally_of(api.files(ctx, &id).await?);
            Ok(outcome(&api.config, &set, Some(&tally)))
        }
        None => {
            if was_published {
                upload_set::remember_gone(store)?;
            }
            Ok(vanished(&id))
        }
    }
}

fn vanished(id: &str) -> RunOutcome {
    let mut outcome = RunOutcome::new(
        SequenceState::Failed,
        format!("Panoramax upload set {id} no longer exists (deleted on the server)"),
    );
    outcome.next_action = Some(
        "nothing, if it was deleted on purpose; mtp upload --republish uploads the sequence again as \
         a new upload set"
            .into(),
    );
    outcome
}

/// The record `mtp status` shows for the set's current state.
pub fn outcome(config: &Config, set: &UploadSet, tally: Option<&Tally>) -> RunOutcome {
    let mut keys = BTreeMap::new();
    keys.insert("upload_set_id".to_string(), set.id.clone());
    let rejected_lines: Vec<String> = tally
        .map(|t| {
            t.rejected
                .iter()
                .map(|(name, r)| rejection_line(name, r))
                .collect()
        })
        .unwrap_or_default();
    let refused = if rejected_lines.is_empty() {
        String::new()
    } else {
        // A few named; a long list would make a line of kilobytes (the server lists every one).
        const NAMED: usize = 3;
        let more = rejected_lines.len().saturating_sub(NAMED);
        let tail = if more > 0 {
            format!(
                " | and {more} more (all listed by {}/api/upload_sets/{}/files)",
                config.url.trim_end_matches('/'),
                set.id
            )
        } else {
            String::new()
        };
        format!(
            "; {} refused: {}{tail}",
            rejected_lines.len(),
            rejected_lines[..rejected_lines.len().min(NAMED)].join(" | ")
        )
    };
    // A set that received pictures after it was dispatched (a refused one sent again) still says `ready`
    // with its old collections until the dispatch job ran again (observed on geovisio 2.15.1:
    // `dispatched` is never reset, and `complete` only queues the dispatch): it is processing while its
    // collections hold fewer pictures than it accepted. Only where the instance counts them (`nb_items`).
    let in_collections: u64 = set.associated_collections.iter().map(|c| c.nb_items).sum();
    let accepted_pictures = tally.map_or(0, |t| t.accepted_with_picture);
    let redispatching = in_collections > 0 && in_collections < accepted_pictures;
    if set.ready && !redispatching {
        let ids: Vec<&str> = set
            .associated_collections
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        let pictures: u64 = set.associated_collections.iter().map(|c| c.nb_items).sum();
        if ids.is_empty() {
            let all_duplicates = tally.is_some_and(|t| {
                !t.rejected.is_empty() && t.rejected.values().all(|r| r.reason == "file_duplicate")
            });
            let mut outcome = RunOutcome::new(
                if all_duplicates {
                    SequenceState::Published
                } else {
                    SequenceState::Failed
                },
                format!(
                    "Panoramax kept no picture of upload set {}{refused}",
                    set.id
                ),
            );
            outcome.keys = keys;
            return outcome;
        }
        keys.insert("collection_ids".to_string(), ids.join(","));
        keys.insert("viewer".to_string(), config.viewer_link(ids[0]));
        let mut outcome = RunOutcome::new(
            SequenceState::Published,
            format!(
                "published on Panoramax: {pictures} pictures in {} collection(s) {}{refused}",
                ids.len(),
                ids.join(", ")
            ),
        );
        outcome.keys = keys;
        outcome.links = ids
            .iter()
            .map(|id| {
                Link::new(
                    format!("collection {id} on Panoramax"),
                    config.viewer_link(id),
                )
            })
            .collect();
        return outcome;
    }
    let status = set.items_status.clone().unwrap_or_default();
    let mut outcome = RunOutcome::new(
        SequenceState::Unpublished,
        format!(
            "Panoramax is processing upload set {}: {} prepared, {} preparing, {} waiting{}{refused}",
            set.id,
            status.prepared,
            status.preparing.unwrap_or(0),
            status.not_processed.unwrap_or(0),
            if redispatching {
                format!(
                    " (putting its pictures into collections again: {in_collections} of \
                     {accepted_pictures} there)"
                )
            } else if set.dispatched {
                String::new()
            } else {
                " (not dispatched yet)".to_string()
            }
        ),
    );
    outcome.keys = keys;
    outcome.next_action = Some("run mtp status later to see it published".into());
    outcome
}
