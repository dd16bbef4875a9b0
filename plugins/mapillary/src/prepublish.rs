//! Exactly once and with the right key (`docs/providers/mapillary.md`, "Exactly once"):
//!
//! - **Before anything is sent** for a part we look at what Mapillary shows under this user in its capture
//!   window and box, once. If one sequence there, held by no other local record, holds *all* of the
//!   part's images (same capture times and positions), the part is already on the user's account (a run
//!   whose state was lost, mapillary_tools, another machine): it is adopted, with a note, and nothing of
//!   it is sent. Several such sequences: reported, nothing published, no key. Otherwise every sequence
//!   seen is remembered as "there before this publish" and can never become this part's key.
//! - **Assigning a key** after publishing skips keys another local record holds and keys seen before the
//!   publish, and requires that the chosen sequence holds our own images at the same capture times *and*
//!   positions; anything less is recorded as ambiguous and looked at again later, never guessed.

use std::collections::{BTreeMap, BTreeSet};

use plugin_api::prelude::*;

use crate::api::Api;
use crate::error::Result;
use crate::lookup::{self, Candidates, Query, Seen};
use crate::sequence_images::SequenceImages;
use crate::state::{now_ms, PartState, Plan, PlannedPart, Publish, SequenceStore};

/// Our images of a part: (capture time, lat, lon), in plan order, from the part's `images` as the
/// sequence holds them now ([`SequenceImages::part`]). Images no longer in the sequence are left out
/// (they cannot be compared).
pub fn our_images(part: &PlannedPart, images: &[Option<ImageInfo>]) -> Vec<(i64, f64, f64)> {
    images
        .iter()
        .zip(&part.times)
        .filter_map(|(image, &ms)| image.as_ref().map(|i| (ms, i.latitude, i.longitude)))
        .collect()
}

/// Every Mapillary sequence key a part of any local sequence holds (`seq/<id>/part/<n>` records).
///
/// A sequence at a time: the first entry after the previous sequence names the next one, then only its
/// `part/` records are read. Its per-image records and its plan (8 MB at 100,000 images) are skipped,
/// not read and thrown away.
pub fn local_keys(ctx: &Context) -> Result<BTreeSet<String>> {
    const SEQUENCES: &str = "seq/";
    let state = ctx.state();
    let mut keys = BTreeSet::new();
    let mut after: Option<String> = None;
    while let Some((first, _)) = state
        .page_after(SEQUENCES, after.as_deref())?
        .into_iter()
        .next()
    {
        let Some((id, _)) = first[SEQUENCES.len()..].split_once('/') else {
            // Not a sequence's record (no `seq/<id>/`): nothing of ours, go on after it.
            after = Some(first);
            continue;
        };
        state.for_each_entry(&format!("{SEQUENCES}{id}/part/"), |key, value| {
            let is_part = key
                .rsplit_once("/part/")
                .is_some_and(|(_, n)| n.parse::<usize>().is_ok());
            if is_part {
                if let Ok(part) = serde_json::from_str::<PartState>(&value) {
                    keys.extend(part.sequence_key);
                }
            }
            Ok(())
        })?;
        // After every key of this sequence: no character sorts after `char::MAX`.
        after = Some(format!("{SEQUENCES}{id}/{}", char::MAX));
    }
    Ok(keys)
}

fn before_key(sequence_id: &str, index: usize) -> String {
    // Under the sequence's prefix, so forgetting the sequence forgets this too.
    format!("seq/{sequence_id}/before/{index}")
}

/// The sequence keys Mapillary showed in part `index`'s window before it was published.
pub fn known_before(ctx: &Context, sequence_id: &str, index: usize) -> Result<BTreeSet<String>> {
    Ok(ctx
        .state()
        .get_json::<BTreeSet<String>>(&before_key(sequence_id, index))?
        .unwrap_or_default())
}

/// Remembers what Mapillary showed before publishing part `index` (added to what an earlier attempt saw).
pub fn remember_before(
    ctx: &Context,
    sequence_id: &str,
    index: usize,
    seen: &BTreeSet<String>,
) -> Result<()> {
    let mut all = known_before(ctx, sequence_id, index)?;
    all.extend(seen.iter().cloned());
    Ok(ctx
        .state()
        .put_json(&before_key(sequence_id, index), &all)?)
}

/// What the look before publishing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Survey {
    /// One sequence, held by no other local record, has every one of our images: it is ours already.
    AlreadyThere(String),
    /// More than one sequence has every one of our images: recorded, nothing is published or assigned.
    Duplicated(Vec<String>),
    /// Not there: publish. These keys were there before and are never this part's.
    Absent {
        /// Every key Mapillary showed in the part's window and box.
        seen: BTreeSet<String>,
        /// The sequence holding the most (but not all) of our images at the same time and place, and how
        /// many: said in one line, since publishing makes a second copy of those.
        overlap: Option<(String, usize)>,
    },
}

/// Judges the candidates Mapillary showed for our images, ignoring keys in `held` (other records').
pub fn judge_survey(
    ours: &[(i64, f64, f64)],
    candidates: &BTreeMap<String, Vec<Seen>>,
    held: &BTreeSet<String>,
) -> Survey {
    let matches: Vec<(&String, usize)> = candidates
        .iter()
        .filter(|(key, _)| !held.contains(*key))
        .map(|(key, seen)| (key, lookup::exact_matches(ours, seen)))
        .collect();
    let complete: Vec<String> = matches
        .iter()
        .filter(|(_, n)| !ours.is_empty() && *n == ours.len())
        .map(|(key, _)| (*key).clone())
        .collect();
    match complete.as_slice() {
        [] => Survey::Absent {
            seen: candidates.keys().cloned().collect(),
            overlap: matches
                .iter()
                .filter(|(_, n)| *n > 0)
                .max_by_key(|(_, n)| *n)
                .map(|(key, n)| ((*key).clone(), *n)),
        },
        [one] => Survey::AlreadyThere(one.clone()),
        _ => Survey::Duplicated(complete),
    }
}

/// How [`apply_survey`] may act.
#[derive(Debug, Clone, Copy)]
pub struct SurveyMode {
    /// Whether a part found complete on the user's account may be adopted (or, found more than once,
    /// reported instead of published): always, but with `--republish` (or `--force` on a sequence whose
    /// MTPDU log says it is published), which publish anyway. The search is scoped to the user
    /// (`creator_username`), so a sequence holding every image at its capture time and place is this
    /// user's upload of these photos, whoever sent it (mapillary_tools, another machine, a lost state).
    pub may_adopt: bool,
}

/// Forgets the survey and manifest records of a published sequence (only its plan and parts stay).
pub fn forget_attempts(ctx: &Context, sequence_id: &str) -> Result<()> {
    let mut writes = Vec::new();
    for what in ["before", "manifest"] {
        for (key, _) in ctx.state().list(&format!("seq/{sequence_id}/{what}/"))? {
            writes.push(plugin_api::protocol::StateWrite::delete(key));
        }
    }
    Ok(ctx.state().write_all(&writes)?)
}

/// The parts the look before publishing is for: never published, or in doubt and `republish`.
pub fn survey_due(parts: &[PartState], republish: bool) -> Vec<usize> {
    (0..parts.len())
        .filter(|&i| {
            parts[i].sequence_key.is_none()
                && match parts[i].publish {
                    Publish::NotSent => true,
                    Publish::OutcomeUnknown { .. } => republish,
                    Publish::Published { .. } => false,
                }
        })
        .collect()
}

/// What Mapillary showed for each part of `due` (under `username`): the network half of the look
/// before publishing, which the pipeline runs before it sends anything, so that a part already there
/// costs no body byte. [`apply_survey`] decides from it.
pub async fn fetch_survey(
    api: &Api,
    ctx: &Context,
    token: &str,
    username: &str,
    plan: &Plan,
    due: &[usize],
) -> Result<Vec<(usize, Candidates)>> {
    let mut found = Vec::with_capacity(due.len());
    for &index in due {
        let query = Query::for_part(username, &plan.parts[index]);
        found.push((index, lookup::candidates(api, ctx, token, &query).await?));
    }
    Ok(found)
}

/// Decides, once before anything is sent, from what Mapillary showed ([`fetch_survey`]) for each part
/// about to be published: a part whose images are all there already is adopted when `mode.may_adopt`
/// (marked published with that key, so nothing of it is sent); otherwise what is there is remembered.
/// Returns notes for the user (one line per part at most).
pub fn apply_survey(
    ctx: &Context,
    sequence_id: &str,
    images: &SequenceImages<'_>,
    plan: &Plan,
    parts: &mut [PartState],
    mode: SurveyMode,
    fetched: Vec<(usize, Candidates)>,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if fetched.is_empty() {
        return Ok(notes);
    }
    let store = SequenceStore::new(ctx, sequence_id);
    let held = local_keys(ctx)?;
    for (index, candidates) in fetched {
        let planned = store.planned(plan, index)?;
        let ours = our_images(&planned, &images.part(&planned)?);
        let part = &mut parts[index];
        match judge_survey(&ours, &candidates, &held) {
            Survey::AlreadyThere(key) if mode.may_adopt => {
                let note = format!(
                    "part {} is already on your Mapillary account as sequence {key} (every image at the same time and place): adopted, nothing sent (mtp upload --republish publishes it anyway)",
                    index + 1
                );
                ctx.info(note.clone());
                notes.push(note);
                part.publish = Publish::Published {
                    at_ms: now_ms(),
                    cluster_id: String::new(),
                };
                part.sequence_key = Some(key);
                part.ambiguous.clear();
                store.put_part(index, part)?;
            }
            Survey::Duplicated(keys) if mode.may_adopt => {
                let note = format!(
                    "part {} is already on Mapillary more than once ({}): not published again, no key assigned; delete the extra copies on Mapillary, then run mtp status",
                    index + 1,
                    keys.join(", ")
                );
                ctx.info(note.clone());
                notes.push(note);
                part.publish = Publish::Published {
                    at_ms: now_ms(),
                    cluster_id: String::new(),
                };
                part.ambiguous = keys;
                store.put_part(index, part)?;
            }
            Survey::Absent {
                seen,
                overlap: Some((key, n)),
            } => {
                // mapillary_tools, too, sends again a sequence that differs from what it sent before.
                let note = format!(
                    "part {}: {n} of its {} images are already on Mapillary in sequence {key} (same time and place); the part is published as a new sequence, so those are there twice",
                    index + 1,
                    ours.len()
                );
                ctx.info(note.clone());
                notes.push(note);
                remember_before(ctx, sequence_id, index, &seen)?;
            }
            Survey::Absent { seen, .. } => remember_before(ctx, sequence_id, index, &seen)?,
            Survey::AlreadyThere(_) | Survey::Duplicated(_) => {
                // --republish: publish anyway, and never take what was there as this part's key.
                let seen: BTreeSet<String> = candidates.keys().cloned().collect();
                remember_before(ctx, sequence_id, index, &seen)?;
            }
        }
    }
    Ok(notes)
}

/// Whether `key`'s images hold at least half of ours at the same capture times and positions (the same
/// threshold [`lookup::choose`] uses for times alone).
pub fn verified(ours: &[(i64, f64, f64)], theirs: Option<&Vec<Seen>>) -> bool {
    let Some(theirs) = theirs else {
        return false;
    };
    let n = lookup::exact_matches(ours, theirs);
    n > 0 && n * 2 >= ours.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    fn seen(ours: &[(i64, f64, f64)], dt: i64) -> Vec<Seen> {
        ours.iter()
            .map(|&(ms, lat, lon)| Seen {
                ms: ms + dt,
                position: Some((lat, lon)),
            })
            .collect()
    }

    #[test]
    fn the_keys_held_are_read_from_the_parts_alone() {
        let host = TestHost::new();
        let ctx = host.context();
        let state = ctx.state();
        for (id, images) in [("s1", 3_000), ("s10", 10), ("s2", 0)] {
            let store = SequenceStore::new(&ctx, id);
            for i in 0..images {
                state
                    .put(&format!("seq/{id}/img//p/{i}.jpg"), "{}")
                    .unwrap();
            }
            // A plan holds every image's path and time: 100 bytes an image here.
            state
                .put(&format!("seq/{id}/plan"), &"x".repeat(100 * images))
                .unwrap();
            for n in 0..2 {
                let part = PartState {
                    sequence_key: (id != "s2").then(|| format!("{id}-key{n}")),
                    ..PartState::default()
                };
                store.put_part(n, &part).unwrap();
            }
        }
        state.put("seq/stray", "not a sequence's").unwrap();
        let keys = local_keys(&ctx).unwrap();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            ["s1-key0", "s1-key1", "s10-key0", "s10-key1"]
        );
        // The large plan (300 KB) is never read, nor most of its image records: a sequence's first
        // page (up to 1,000 records) says which it is.
        assert!(
            host.paged_bytes() < 100_000,
            "{} bytes read",
            host.paged_bytes()
        );
    }

    #[test]
    fn survey_adopts_only_a_complete_unheld_match() {
        let ours: Vec<(i64, f64, f64)> = (0..4)
            .map(|i| (1_000_000 + i * 1000, 52.0, 6.0 + i as f64 * 1e-5))
            .collect();
        let other_camera = seen(&ours, 500);
        let mut c = BTreeMap::from([("cam2".to_string(), other_camera.clone())]);
        assert_eq!(
            judge_survey(&ours, &c, &BTreeSet::new()),
            Survey::Absent {
                seen: BTreeSet::from(["cam2".to_string()]),
                overlap: None
            }
        );
        // Some of ours, not all: published, the overlap named.
        let half = BTreeMap::from([("half".to_string(), seen(&ours[..2], 0))]);
        assert_eq!(
            judge_survey(&ours, &half, &BTreeSet::new()),
            Survey::Absent {
                seen: BTreeSet::from(["half".to_string()]),
                overlap: Some(("half".to_string(), 2))
            }
        );
        c.insert("mine".into(), seen(&ours, 0));
        assert_eq!(
            judge_survey(&ours, &c, &BTreeSet::new()),
            Survey::AlreadyThere("mine".into())
        );
        // Held by another local record: not ours to adopt.
        let held = BTreeSet::from(["mine".to_string()]);
        assert!(matches!(
            judge_survey(&ours, &c, &held),
            Survey::Absent { overlap: None, .. }
        ));
        c.insert("mine2".into(), seen(&ours, 0));
        assert!(matches!(
            judge_survey(&ours, &c, &BTreeSet::new()),
            Survey::Duplicated(k) if k.len() == 2
        ));
        assert!(verified(&ours, c.get("mine")));
        assert!(!verified(&ours, Some(&other_camera)));
        assert!(!verified(&ours, None));
    }
}
