//! The integration's persisted state: what each key of the host's per-plugin store holds. Every write is a
//! committed transaction in the host (several at once in one, `State::write_all`), made as soon as
//! something is acknowledged, so a `kill -9` at any moment loses nothing acknowledged.
//!
//! | key | value |
//! |---|---|
//! | `account` | [`Account`]: who is authorised (the token itself is the secret `user_token`) |
//! | `token` | [`crate::token::TokenInfo`]: when the token was obtained and when it expires |
//! | `hash/<path>` | [`HashEntry`]: the session key of a file's outgoing bytes, valid while size, mtime and the new EXIF are unchanged (written before the first byte is sent, for images over `crate::upload::KEY_WITH_HANDLE_LIMIT`) |
//! | `seq/<id>/plan` | [`Plan`]: how the sequence was split into parts, without their images (`crate::stored_plan`) |
//! | `seq/<id>/plan/<n>` | the paths and capture times of part `n`'s images |
//! | `seq/<id>/img/<path>` | [`ImageEntry`]: the entity handle of an acknowledged image (a small image's also says what its key was derived from) |
//! | `seq/<id>/part/<n>` | [`PartState`]: manifest, publication and sequence key of part `n` |

use plugin_api::prelude::*;
use plugin_api::protocol::StateWrite;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::error::{MlyError, Result};
use crate::outgoing::Outgoing;
pub use crate::stored_plan::{PartPlan, Plan, PlannedPart};

/// The secret holding the user's access token.
pub const TOKEN_SECRET: &str = "user_token";
const ACCOUNT_KEY: &str = "account";

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Who is authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Mapillary user id.
    pub id: String,
    /// Mapillary user name (`creator_username` in image searches).
    pub username: String,
    /// When the token was stored (Unix ms).
    pub authorised_at: i64,
    /// When Mapillary last refused the token, if it did since (Unix ms).
    #[serde(default)]
    pub refused_at: Option<i64>,
    /// When a refresh planned ahead of the expiry last failed (Unix ms): not tried again, nor told
    /// again, for [`crate::token::PLANNED_RETRY`], while the token still works.
    #[serde(default)]
    pub planned_refresh_failed_at: Option<i64>,
}

/// Reads the stored account.
pub fn account(ctx: &Context) -> Result<Option<Account>> {
    Ok(ctx.state().get_json(ACCOUNT_KEY)?)
}

/// Stores the account.
pub fn put_account(ctx: &Context, account: &Account) -> Result<()> {
    Ok(ctx.state().put_json(ACCOUNT_KEY, account)?)
}

/// Notes that Mapillary refused the stored token (shown by `mtp auth status`).
pub fn mark_token_refused(ctx: &Context) -> Result<()> {
    if let Some(mut account) = account(ctx)? {
        account.refused_at = Some(now_ms());
        put_account(ctx, &account)?;
    }
    Ok(())
}

/// The session key of a file's outgoing bytes, cached so that a resumed run does not hash the file again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashEntry {
    /// File size when hashed.
    pub size: u64,
    /// File mtime when hashed (ns, as text: JSON numbers cannot hold it).
    pub mtime_ns: String,
    /// [`crate::outgoing::Outgoing::fingerprint`] when hashed.
    pub fingerprint: String,
    /// Length of the outgoing bytes.
    pub length: u64,
    /// `mly_tools_<md5>.jpg`.
    pub key: String,
}

impl HashEntry {
    /// The entry for `out`, whose session key is `key`.
    pub fn new(out: &Outgoing, key: String) -> HashEntry {
        HashEntry {
            size: out.file_size,
            mtime_ns: out.file_mtime_ns.to_string(),
            fingerprint: out.fingerprint.clone(),
            length: out.length,
            key,
        }
    }

    /// Whether this cached key still names `out`: the one test of a cached hash. The file is unchanged
    /// (size and mtime), its new EXIF is the same (fingerprint) and so is the total length.
    pub fn describes(&self, out: &Outgoing) -> bool {
        self.size == out.file_size
            && self.mtime_ns == out.file_mtime_ns.to_string()
            && self.fingerprint == out.fingerprint
            && self.length == out.length
    }
}

fn hash_key(path: &str) -> String {
    format!("hash/{path}")
}

/// Caches the session key of `path`.
pub fn put_hash_entry(ctx: &Context, path: &str, entry: &HashEntry) -> Result<()> {
    Ok(ctx.state().put_json(&hash_key(path), entry)?)
}

/// Forgets the cached session key of `path`.
pub fn delete_hash_entry(ctx: &Context, path: &str) -> Result<()> {
    Ok(ctx.state().delete(&hash_key(path))?)
}

/// The cached session keys of images `paths` (a part's), by path, read in one call: preparing a part
/// asks the host once instead of once per image, and never holds a whole sequence's keys. One this
/// version cannot read is as good as none (the file is hashed again).
pub fn hash_entries_of(ctx: &Context, paths: &[String]) -> Result<HashMap<String, HashEntry>> {
    entries_of(ctx, paths, hash_key)
}

/// The values stored at `key(path)` for each of `paths` that holds one this version can read, by
/// path, in one batched read.
fn entries_of<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    paths: &[String],
    key: impl Fn(&str) -> String,
) -> Result<HashMap<String, T>> {
    let keys: Vec<String> = paths.iter().map(|path| key(path)).collect();
    let values = ctx.state().get_many(&keys)?;
    Ok(paths
        .iter()
        .zip(values)
        .filter_map(|(path, value)| Some((path.clone(), serde_json::from_str(&value?).ok()?)))
        .collect())
}

/// [`delete_hash_entry`] as one write of a batch.
pub fn hash_entry_delete(path: &str) -> StateWrite {
    StateWrite::delete(hash_key(path))
}

/// The `hash/<path>` entry that keeps the key source an image entry (`value`) carries, if any.
fn kept_key_source(path: &str, value: &str) -> Result<Option<StateWrite>> {
    let Ok(entry) = serde_json::from_str::<ImageEntry>(value) else {
        return Ok(None);
    };
    entry
        .keyed_from
        .map(|source| encoded(StateWrite::put_json(hash_key(path), &source)))
        .transpose()
}

fn encoded(write: serde_json::Result<StateWrite>) -> Result<StateWrite> {
    write.map_err(|err| MlyError::Invalid(format!("cannot encode state: {err}")))
}

/// An image entity the upload service acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// Its session key.
    pub key: String,
    /// Its handle.
    pub handle: String,
    /// When the service acknowledged it (Unix ms); `None` in state written before this was recorded,
    /// which counts as too old ([`handle_is_fresh`]).
    #[serde(default)]
    pub acked_at_ms: Option<i64>,
    /// What the key was derived from, for an image whose key has no `hash/<path>` entry of its own
    /// (a small one, see `crate::upload::KEY_WITH_HANDLE_LIMIT`): one row per image instead of two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_from: Option<HashEntry>,
}

impl ImageEntry {
    /// The hash-cache entry that names this image's key: its own `hash/<path>` entry (`cached`) if
    /// any, else the one it carries.
    pub fn key_source<'e>(&'e self, cached: Option<&'e HashEntry>) -> Option<&'e HashEntry> {
        cached.or(self.keyed_from.as_ref())
    }
}

/// How long an acknowledged handle is trusted without asking the service again: mapillary_tools' handle
/// cache keeps an entry for 2 days (mapillary/mapillary_tools `mapillary_tools/history.py`,
/// `PersistentCache.set(.., expires_in=3600 * 24 * 2)`; `uploader.py` consults it before uploading).
pub const HANDLE_CACHE_WINDOW: std::time::Duration = std::time::Duration::from_secs(2 * 24 * 3600);

/// Whether a handle acknowledged at `acked_at_ms` may still be used at `now_ms`. An older (or undated)
/// one is treated as unknown: its entity's offset is asked again (and the rest re-sent), and the
/// manifest that names it is built and uploaded afresh.
pub fn handle_is_fresh(acked_at_ms: Option<i64>, now_ms: i64) -> bool {
    let window = i64::try_from(HANDLE_CACHE_WINDOW.as_millis()).unwrap_or(i64::MAX);
    acked_at_ms.is_some_and(|at| now_ms.saturating_sub(at) < window)
}

/// Where a part's publication stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Publish {
    /// `finish_upload` was never sent.
    #[default]
    NotSent,
    /// `finish_upload` was (about to be) sent and no answer was recorded: the outcome is unknown.
    /// (Stored as `publishing`, the name earlier versions wrote.)
    #[serde(rename = "publishing")]
    OutcomeUnknown {
        /// When it was sent (Unix ms).
        since_ms: i64,
        /// Why the outcome is unknown, when known (`timed out`, `HTTP 500`).
        #[serde(default)]
        why: Option<String>,
    },
    /// Mapillary accepted it.
    Published {
        /// When (Unix ms); the publication deadline counts from here.
        at_ms: i64,
        /// Mapillary's `cluster_id`.
        cluster_id: String,
    },
}

/// One part (one manifest, one Mapillary sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartState {
    /// Session key of the manifest entity (content-addressed).
    #[serde(default)]
    pub manifest_key: Option<String>,
    /// Its handle, once acknowledged.
    #[serde(default)]
    pub manifest_handle: Option<String>,
    /// When the manifest handle was acknowledged (Unix ms); see [`handle_is_fresh`].
    #[serde(default)]
    pub manifest_acked_at_ms: Option<i64>,
    /// The publication.
    #[serde(default)]
    pub publish: Publish,
    /// The Mapillary sequence key, once found.
    #[serde(default)]
    pub sequence_key: Option<String>,
    /// Lookups made so far.
    #[serde(default)]
    pub lookups: u32,
    /// When the last lookup was made (Unix ms): overdue parts are looked for less often
    /// (`crate::overdue`).
    #[serde(default)]
    pub last_lookup_ms: Option<i64>,
    /// Candidates of the last lookup when it could not choose between them.
    #[serde(default)]
    pub ambiguous: Vec<String>,
}

/// The state of one sequence.
pub struct SequenceStore<'a> {
    ctx: &'a Context,
    prefix: String,
}

impl<'a> SequenceStore<'a> {
    /// The state of sequence `id`.
    pub fn new(ctx: &'a Context, id: &str) -> SequenceStore<'a> {
        SequenceStore {
            ctx,
            prefix: format!("seq/{id}/"),
        }
    }

    /// The key `rest` of this sequence (`seq/<id>/<rest>`).
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The context the state is read through.
    pub(crate) fn context(&self) -> &'a Context {
        self.ctx
    }

    fn image_key(&self, path: &str) -> String {
        format!("{}img/{path}", self.prefix)
    }

    /// Records an acknowledged image entity (one commit).
    pub fn put_image(&self, path: &str, entry: &ImageEntry) -> Result<()> {
        Ok(self.ctx.state().put_json(&self.image_key(path), entry)?)
    }

    /// Forgets image `path`, as one write of a batch.
    pub fn image_delete(&self, path: &str) -> StateWrite {
        StateWrite::delete(self.image_key(path))
    }

    /// The stored entries of images `paths` (a part's: every use reads one part at a time, so a run
    /// never holds a whole sequence's entries), by path, read in one call; one that cannot be read
    /// counts as absent.
    pub fn images_of(&self, paths: &[String]) -> Result<HashMap<String, ImageEntry>> {
        entries_of(self.ctx, paths, |path| self.image_key(path))
    }

    /// The paths of every image with a stored entry (also one that cannot be read).
    pub fn image_paths(&self) -> Result<Vec<String>> {
        Ok(self
            .image_rows()?
            .into_iter()
            .map(|(path, _)| path)
            .collect())
    }

    /// The stored image entries as text, by path.
    fn image_rows(&self) -> Result<Vec<(String, String)>> {
        let prefix = format!("{}img/", self.prefix);
        Ok(self
            .ctx
            .state()
            .list(&prefix)?
            .into_iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_string(), value)))
            .collect())
    }

    fn part_key(&self, index: usize) -> String {
        format!("{}part/{index}", self.prefix)
    }

    /// Part `index` (default when never stored).
    pub fn part(&self, index: usize) -> Result<PartState> {
        Ok(self
            .ctx
            .state()
            .get_json(&self.part_key(index))?
            .unwrap_or_default())
    }

    /// Stores part `index`.
    pub fn put_part(&self, index: usize, part: &PartState) -> Result<()> {
        Ok(self.ctx.state().put_json(&self.part_key(index), part)?)
    }

    /// Forgets part `index`.
    pub fn delete_part(&self, index: usize) -> Result<()> {
        Ok(self.ctx.state().delete(&self.part_key(index))?)
    }

    /// Every part stored, by index (also parts of an older plan).
    pub fn stored_parts(&self) -> Result<Vec<(usize, PartState)>> {
        let prefix = format!("{}part/", self.prefix);
        let mut parts = Vec::new();
        for (key, value) in self.ctx.state().list(&prefix)? {
            let Some(index) = key
                .strip_prefix(&prefix)
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            if let Ok(part) = serde_json::from_str(&value) {
                parts.push((index, part));
            }
        }
        parts.sort_by_key(|(i, _)| *i);
        Ok(parts)
    }

    /// Forgets everything about the sequence (one commit). What an image's key was derived from stays
    /// known ([`SequenceStore::forget_images`]).
    pub fn clear(&self) -> Result<()> {
        let state = self.ctx.state();
        let img = format!("{}img/", self.prefix);
        let mut writes = Vec::new();
        for (key, value) in state.list(&self.prefix)? {
            if let Some(path) = key.strip_prefix(&img) {
                writes.extend(kept_key_source(path, &value)?);
            }
            writes.push(StateWrite::delete(key));
        }
        Ok(state.write_all(&writes)?)
    }

    /// Forgets the entries of images `paths` (one commit), keeping what a small image's key was derived
    /// from as its own `hash/<path>` entry: the next upload then asks the server for the entity's offset
    /// instead of sending it again from 0.
    pub fn forget_images(&self, paths: &[String]) -> Result<()> {
        let stored = self.images_of(paths)?;
        let mut writes = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(source) = stored.get(path).and_then(|e| e.keyed_from.as_ref()) {
                writes.push(encoded(StateWrite::put_json(hash_key(path), source))?);
            }
            writes.push(self.image_delete(path));
        }
        Ok(self.ctx.state().write_all(&writes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;
    use plugin_api::sequence::BoundingBox;

    #[test]
    fn handles_older_than_two_days_are_unknown() {
        let day = 24 * 3600 * 1000;
        assert!(handle_is_fresh(Some(0), 2 * day - 1));
        assert!(!handle_is_fresh(Some(0), 2 * day));
        assert!(!handle_is_fresh(None, 0));
        let legacy: ImageEntry = serde_json::from_str(r#"{"key":"k","handle":"h"}"#).unwrap();
        assert_eq!(legacy.acked_at_ms, None);
    }

    #[test]
    fn a_parts_cached_keys_are_read_in_one_call() {
        let host = TestHost::new();
        let ctx = host.context();
        let entry = |key: &str| HashEntry {
            size: 1,
            mtime_ns: "2".into(),
            fingerprint: "f".into(),
            length: 3,
            key: key.into(),
        };
        put_hash_entry(&ctx, "/walk/a.jpg", &entry("a")).unwrap();
        put_hash_entry(&ctx, "/elsewhere/c.jpg", &entry("c")).unwrap();
        put_hash_entry(&ctx, "/walk/other.jpg", &entry("o")).unwrap();
        ctx.state()
            .put("hash//walk/broken.jpg", "not json")
            .unwrap();
        let part: Vec<String> = [
            "/walk/a.jpg",
            "/walk/broken.jpg",
            "/elsewhere/c.jpg",
            "/walk/none.jpg",
        ]
        .map(String::from)
        .to_vec();
        let keys = hash_entries_of(&ctx, &part).unwrap();
        assert_eq!(host.batched_reads(), 1);
        let key = |path: &str| keys.get(path).map(|e| e.key.as_str());
        assert_eq!(key("/walk/a.jpg"), Some("a"));
        assert_eq!(key("/elsewhere/c.jpg"), Some("c"), "wherever the file is");
        assert_eq!(key("/walk/broken.jpg"), None, "unreadable is none");
        assert_eq!(key("/walk/none.jpg"), None);
        assert_eq!(keys.len(), 2, "only the paths asked for");
    }

    #[test]
    fn a_parts_entries_are_read_by_their_keys_in_one_call() {
        let host = TestHost::new();
        let ctx = host.context();
        let store = SequenceStore::new(&ctx, "s1");
        let entry = |key: &str| ImageEntry {
            key: key.into(),
            handle: "h".into(),
            acked_at_ms: Some(1),
            keyed_from: None,
        };
        store.put_image("/a.jpg", &entry("a")).unwrap();
        store.put_image("/c.jpg", &entry("c")).unwrap();
        ctx.state().put("seq/s1/img//b.jpg", "not json").unwrap();
        SequenceStore::new(&ctx, "s10")
            .put_image("/d.jpg", &entry("d"))
            .unwrap();
        let part: Vec<String> = ["/a.jpg", "/b.jpg", "/d.jpg", "/e.jpg"]
            .map(String::from)
            .to_vec();
        let read = store.images_of(&part).unwrap();
        assert_eq!(host.batched_reads(), 1);
        assert_eq!(
            read.len(),
            1,
            "unreadable, another sequence's and absent are none"
        );
        assert_eq!(read.get("/a.jpg"), Some(&entry("a")));
        assert!(!read.contains_key("/c.jpg"), "only the paths asked for");
    }

    #[test]
    fn forgetting_images_keeps_what_their_keys_came_from() {
        let host = TestHost::new();
        let ctx = host.context();
        let store = SequenceStore::new(&ctx, "s1");
        let source = HashEntry {
            size: 1,
            mtime_ns: "2".into(),
            fingerprint: "f".into(),
            length: 3,
            key: "k".into(),
        };
        let entry = |keyed_from: Option<HashEntry>| ImageEntry {
            key: "k".into(),
            handle: "h".into(),
            acked_at_ms: Some(1),
            keyed_from,
        };
        store
            .put_image("/a.jpg", &entry(Some(source.clone())))
            .unwrap();
        store.put_image("/b.jpg", &entry(None)).unwrap();
        store
            .put_image("/c.jpg", &entry(Some(source.clone())))
            .unwrap();
        store
            .forget_images(&["/a.jpg".into(), "/b.jpg".into()])
            .unwrap();
        let all = ["/a.jpg".to_string(), "/b.jpg".into(), "/c.jpg".into()];
        let keys = hash_entries_of(&ctx, &all).unwrap();
        assert_eq!(keys.get("/a.jpg"), Some(&source));
        assert_eq!(keys.get("/b.jpg"), None);
        assert_eq!(store.images_of(&all).unwrap().len(), 1);
        store.clear().unwrap();
        assert!(store.images_of(&all).unwrap().is_empty());
        let keys = hash_entries_of(&ctx, &all).unwrap();
        assert_eq!(keys.get("/c.jpg"), Some(&source));
    }

    #[test]
    fn layout_round_trips_and_clears() {
        let host = TestHost::new();
        let ctx = host.context();
        let store = SequenceStore::new(&ctx, "s1");
        let other = SequenceStore::new(&ctx, "s10");
        let planned = PlannedPart {
            start: 0,
            images: vec!["/a.jpg".into()],
            times: vec![1],
            bbox: BoundingBox {
                min_lat: 1.0,
                min_lon: 2.0,
                max_lat: 1.0,
                max_lon: 2.0,
            },
        };
        let plan = Plan {
            digest: "d".into(),
            parts: vec![PartPlan::of(&planned)],
        };
        store.put_plan(&plan, |_| Ok(planned.clone())).unwrap();
        let entry = ImageEntry {
            key: "k".into(),
            handle: "h".into(),
            acked_at_ms: Some(1),
            keyed_from: None,
        };
        store.put_image("/a.jpg", &entry).unwrap();
        let a = ["/a.jpg".to_string()];
        assert_eq!(store.images_of(&a).unwrap().get("/a.jpg"), Some(&entry));
        let part = PartState {
            publish: Publish::Published {
                at_ms: 5,
                cluster_id: "c".into(),
            },
            ..PartState::default()
        };
        store.put_part(1, &part).unwrap();
        other.put_part(0, &PartState::default()).unwrap();
        assert_eq!(store.part(1).unwrap(), part);
        assert_eq!(store.part(0).unwrap(), PartState::default());
        assert_eq!(store.stored_parts().unwrap(), vec![(1, part)]);
        assert!(host
            .state("seq/s1/part/1")
            .unwrap()
            .contains(r#""state":"published""#));
        store.clear().unwrap();
        assert_eq!(store.plan().unwrap(), None);
        assert!(store.images_of(&a).unwrap().is_empty());
        assert_eq!(
            other.stored_parts().unwrap().len(),
            1,
            "s10 is another sequence"
        );
    }
}
