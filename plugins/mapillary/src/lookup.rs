//! Finding the key Mapillary gave a published part (`docs/providers/mapillary.md`, "Finding the sequence
//! key"): Mapillary does not say, so we
//! search the user's images by capture-time window and bounding box, group them by sequence, and pick the
//! sequence whose capture times match ours — not the first one in the window, as the desktop
//! uploader we replace (trek-view/mtp-desktop-uploader) did.

use std::collections::{BTreeMap, BTreeSet};

use plugin_api::prelude::*;
use plugin_api::sequence::BoundingBox;
use serde_json::Value;

use crate::api::Api;
use crate::error::{MlyError, Result};
use plugin_api::time::format_utc as format_ms;

/// A capture time within this of ours is the same image (Mapillary keeps milliseconds; this absorbs
/// rounding).
pub const EXACT_MS: i64 = 5;
/// A capture time within this of ours may be the same image, shifted.
pub const NEAR_MS: i64 = 1000;
/// Padding of the search window, each side.
const WINDOW_PAD_MS: i64 = 1000;
/// Padding of the search box, each side (about 110 m): Mapillary may move positions a little.
const BBOX_PAD_DEG: f64 = 0.001;
/// A position within this of ours (degrees, about 11 m) is the same place. An assumption: Mapillary's
/// `geometry` field is the position the upload carried (API documentation, image fields: `geometry`
/// as uploaded, `computed_geometry` after processing); the margin absorbs rounding of what we wrote.
pub const POSITION_DEG: f64 = 1e-4;
/// Page size (the API's maximum).
const PAGE: usize = 2000;
/// Pages followed at most per lookup (a part has at most 1000 images).
const MAX_PAGES: usize = 20;

/// What to search for.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The user's Mapillary user name.
    pub username: String,
    /// Our capture times (Unix ms), any order: only the earliest and latest matter (the window searched).
    pub times: Vec<i64>,
    /// Our images' bounding box.
    pub bbox: BoundingBox,
}

impl Query {
    /// The search for the images of a planned part, by `username`.
    pub fn for_part(username: &str, part: &crate::state::PartPlan) -> Query {
        Query {
            username: username.to_string(),
            times: vec![part.first_ms, part.last_ms],
            bbox: part.bbox,
        }
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Query {
    /// `images?creator_username=..&start_captured_at=..&end_captured_at=..&bbox=..&fields=..&limit=..`
    pub fn path_and_query(&self) -> String {
        let first = self.times.iter().min().copied().unwrap_or(0) - WINDOW_PAD_MS;
        let last = self.times.iter().max().copied().unwrap_or(0) + WINDOW_PAD_MS;
        let b = &self.bbox;
        let bbox = format!(
            "{:.6},{:.6},{:.6},{:.6}",
            (b.min_lon - BBOX_PAD_DEG).max(-180.0),
            (b.min_lat - BBOX_PAD_DEG).max(-90.0),
            (b.max_lon + BBOX_PAD_DEG).min(180.0),
            (b.max_lat + BBOX_PAD_DEG).min(90.0)
        );
        format!(
            "images?creator_username={}&start_captured_at={}&end_captured_at={}&bbox={}&fields=id,sequence,captured_at,geometry&limit={PAGE}",
            encode(&self.username),
            encode(&format_ms(first)),
            encode(&format_ms(last)),
            encode(&bbox),
        )
    }
}

/// A `captured_at` value: Unix ms as a number (what v4 answers) or an RFC 3339 text.
fn captured_at(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis())
        }),
        _ => None,
    }
}

/// One image Mapillary showed: its capture time and, when given, its position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    /// Capture time (Unix ms).
    pub ms: i64,
    /// `(lat, lon)` from `geometry` (GeoJSON `[lon, lat]`).
    pub position: Option<(f64, f64)>,
}

fn position(image: &Value) -> Option<(f64, f64)> {
    let c = image.pointer("/geometry/coordinates")?.as_array()?;
    Some((c.get(1)?.as_f64()?, c.first()?.as_f64()?))
}

/// The capture times of each candidate, for [`choose`].
pub fn times(candidates: &BTreeMap<String, Vec<Seen>>) -> BTreeMap<String, Vec<i64>> {
    candidates
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|s| s.ms).collect()))
        .collect()
}

/// How many of `ours` (capture time, lat, lon) have an image in `theirs` (sorted by time) at the same
/// capture time (within [`EXACT_MS`]) and the same place (within [`POSITION_DEG`]). An image Mapillary
/// shows without a position never counts: a key is only ever assigned on both.
pub fn exact_matches(ours: &[(i64, f64, f64)], theirs: &[Seen]) -> usize {
    ours.iter()
        .filter(|&&(t, lat, lon)| {
            let from = theirs.partition_point(|s| s.ms < t - EXACT_MS);
            theirs[from..]
                .iter()
                .take_while(|s| s.ms <= t + EXACT_MS)
                .any(|s| {
                    s.position.is_some_and(|(a, b)| {
                        (a - lat).abs() <= POSITION_DEG && (b - lon).abs() <= POSITION_DEG
                    })
                })
        })
        .count()
}

/// The images of each sequence an image search found, by sequence key.
pub type Candidates = BTreeMap<String, Vec<Seen>>;

/// Every sequence with images in the window and box, with those images (sorted by capture time).
pub async fn candidates(
    api: &Api,
    ctx: &Context,
    token: &str,
    query: &Query,
) -> Result<Candidates> {
    let what = "looking for the sequence key";
    let mut found: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    let mut page = api
        .graph_get(ctx, token, what, &query.path_and_query())
        .await?;
    for _ in 0..MAX_PAGES {
        let data =
            page.get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| MlyError::BadAnswer {
                    what: what.into(),
                    why: "no data in the image search answer".into(),
                })?;
        for image in data {
            let sequence = image.get("sequence").and_then(Value::as_str);
            let time = image.get("captured_at").and_then(captured_at);
            if let (Some(sequence), Some(ms)) = (sequence, time) {
                found.entry(sequence.to_string()).or_default().push(Seen {
                    ms,
                    position: position(image),
                });
            }
        }
        let next = page
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && !data.is_empty())
            .map(str::to_string);
        let Some(next) = next else { break };
        page = api.get_with_retries(ctx, token, what, &next).await?;
    }
    for seen in found.values_mut() {
        seen.sort_unstable_by_key(|s| s.ms);
    }
    Ok(found)
}

/// How well a candidate's capture times match ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// Our images with a candidate image within [`EXACT_MS`].
    pub exact: usize,
    /// Our images with a candidate image within [`NEAR_MS`].
    pub near: usize,
}

/// Scores `theirs` (sorted) against `ours`.
pub fn score(ours: &[i64], theirs: &[i64]) -> Score {
    let mut s = Score { exact: 0, near: 0 };
    for &t in ours {
        let i = theirs.partition_point(|&x| x < t);
        let nearest = [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| theirs.get(j))
            .map(|&x| (x - t).abs())
            .min();
        if let Some(d) = nearest {
            if d <= EXACT_MS {
                s.exact += 1;
            }
            if d <= NEAR_MS {
                s.near += 1;
            }
        }
    }
    s
}

/// The lookup's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This sequence is ours.
    Found(String),
    /// Several sequences match about equally well: recorded, not guessed.
    Ambiguous(Vec<String>),
    /// None matches (yet).
    NotFound,
}

/// Picks the candidate whose capture times match ours, ignoring keys in `taken` (other parts' keys).
///
/// The measure is the number of exact time matches when any candidate has some, else the number of near
/// ones. A candidate qualifies when it matches at least half of our images; the best wins only when the
/// runner-up has fewer than 90 % of its matches.
pub fn choose(
    ours: &[i64],
    candidates: &BTreeMap<String, Vec<i64>>,
    taken: &BTreeSet<String>,
) -> Choice {
    let scored: Vec<(&String, Score)> = candidates
        .iter()
        .filter(|(key, _)| !taken.contains(*key))
        .map(|(key, theirs)| (key, score(ours, theirs)))
        .collect();
    let use_exact = scored.iter().any(|(_, s)| s.exact > 0);
    let measure = |s: &Score| if use_exact { s.exact } else { s.near };
    let mut qualified: Vec<(&String, usize)> = scored
        .iter()
        .map(|(key, s)| (*key, measure(s)))
        .filter(|(_, m)| *m > 0 && m * 2 >= ours.len())
        .collect();
    qualified.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    match qualified.as_slice() {
        [] => Choice::NotFound,
        [(key, _)] => Choice::Found((*key).clone()),
        [(best, b), rest @ ..] => {
            let close: Vec<String> = rest
                .iter()
                .filter(|(_, m)| m * 10 >= b * 9)
                .map(|(k, _)| (*k).clone())
                .collect();
            if close.is_empty() {
                Choice::Found((*best).clone())
            } else {
                let mut all = vec![(*best).clone()];
                all.extend(close);
                Choice::Ambiguous(all)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<i64> {
        (0..10).map(|i| 1_000_000 + i * 1000).collect()
    }

    fn map(entries: &[(&str, Vec<i64>)]) -> BTreeMap<String, Vec<i64>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn exact_times_beat_interleaved_decoys() {
        let decoy: Vec<i64> = ours().iter().map(|t| t + 251).collect();
        let c = map(&[("decoy", decoy), ("mine", ours())]);
        assert_eq!(
            choose(&ours(), &c, &BTreeSet::new()),
            Choice::Found("mine".into())
        );
        assert_eq!(
            score(&ours(), &c["mine"]),
            Score {
                exact: 10,
                near: 10
            }
        );
        assert_eq!(score(&ours(), &c["decoy"]), Score { exact: 0, near: 10 });
    }

    #[test]
    fn identical_candidates_are_ambiguous() {
        let c = map(&[("a", ours()), ("b", ours()), ("far", vec![1])]);
        assert_eq!(
            choose(&ours(), &c, &BTreeSet::new()),
            Choice::Ambiguous(vec!["a".into(), "b".into()])
        );
        // A key another part already took is not a candidate.
        let taken = BTreeSet::from(["a".to_string()]);
        assert_eq!(choose(&ours(), &c, &taken), Choice::Found("b".into()));
    }

    #[test]
    fn partial_and_missing() {
        assert_eq!(
            choose(&ours(), &BTreeMap::new(), &BTreeSet::new()),
            Choice::NotFound
        );
        // Fewer than half of our images: not ours.
        let c = map(&[("other", ours()[..4].to_vec())]);
        assert_eq!(choose(&ours(), &c, &BTreeSet::new()), Choice::NotFound);
        // Mapillary dropped two duplicates: still ours, and clearly better than a small overlap.
        let c = map(&[
            ("mine", ours()[2..].to_vec()),
            ("other", ours()[..5].to_vec()),
        ]);
        assert_eq!(
            choose(&ours(), &c, &BTreeSet::new()),
            Choice::Found("mine".into())
        );
        // Times shifted by 300 ms (no exact match anywhere): the near matches decide.
        let shifted: Vec<i64> = ours().iter().map(|t| t + 300).collect();
        let c = map(&[("mine", shifted)]);
        assert_eq!(
            choose(&ours(), &c, &BTreeSet::new()),
            Choice::Found("mine".into())
        );
    }

    #[test]
    fn exact_matches_need_time_and_place() {
        let ours = [(1000, 52.0, 6.0), (2000, 52.0, 6.001)];
        let seen = |ms, lat, lon| Seen {
            ms,
            position: Some((lat, lon)),
        };
        assert_eq!(
            exact_matches(&ours, &[seen(1002, 52.0, 6.0), seen(2000, 52.0, 6.001)]),
            2
        );
        // The other camera on the same track, 0.5 s later: same places, other times.
        assert_eq!(
            exact_matches(&ours, &[seen(1500, 52.0, 6.0), seen(2500, 52.0, 6.001)]),
            0
        );
        // Same times elsewhere.
        assert_eq!(exact_matches(&ours, &[seen(1000, 53.0, 6.0)]), 0);
        let unplaced = Seen {
            ms: 1000,
            position: None,
        };
        assert_eq!(exact_matches(&ours, &[unplaced]), 0);
    }

    #[test]
    fn query_shape() {
        let q = Query {
            username: "a b".into(),
            times: vec![1_589_093_104_000, 1_589_093_103_000],
            bbox: BoundingBox {
                min_lat: 52.0,
                min_lon: 6.0,
                max_lat: 52.1,
                max_lon: 6.1,
            },
        };
        let p = q.path_and_query();
        assert!(p.starts_with("images?creator_username=a+b&start_captured_at=2020-05-10T06%3A45%3A02.000Z&end_captured_at=2020-05-10T06%3A45%3A05.000Z&bbox=5.999000%2C51.999000%2C6.101000%2C52.101000&fields=id,sequence,captured_at,geometry&limit=2000"), "{p}");
        assert_eq!(captured_at(&serde_json::json!(5)), Some(5));
        assert_eq!(
            captured_at(&serde_json::json!("2020-05-10T06:45:03Z")),
            Some(1_589_093_103_000)
        );
    }
}
