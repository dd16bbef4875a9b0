//! What the integration persists in the host's store. Every write is committed when it returns.
//!
//! | key | value |
//! |---|---|
//! | `account` | [`Account`]: who is authorised (the tokens are the secret `tokens`) |
//! | `seq/<id>/upload` | [`UploadRecord`]: the sequence's activity: written before the track is sent, with the upload id as soon as Strava answers (before polling), then with the activity |

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

const ACCOUNT_KEY: &str = "account";

/// Who is authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Strava athlete id.
    pub id: u64,
    /// A name to show (`Firstname Lastname (username)`).
    pub name: String,
    /// When (Unix ms).
    pub authorised_at_ms: i64,
}

/// The stored account.
pub fn account(ctx: &Context) -> Result<Option<Account>, PluginError> {
    ctx.state().get_json(ACCOUNT_KEY)
}

/// Stores the account.
pub fn put_account(ctx: &Context, account: &Account) -> Result<(), PluginError> {
    ctx.state().put_json(ACCOUNT_KEY, account)
}

/// A sequence's activity, as far as it got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The `external_id` sent: the sequence's content identity.
    pub external_id: String,
    /// `true` from just before the track is sent: a record with this and no upload id means an answer
    /// was lost, and the next run's upload is answered as a duplicate.
    #[serde(default)]
    pub sent: bool,
    /// Strava's upload id, once it answered.
    #[serde(default)]
    pub upload_id: Option<u64>,
    /// The activity, once processed (or adopted from a duplicate answer).
    #[serde(default)]
    pub activity_id: Option<u64>,
    /// The activity was already on Strava (a duplicate answer named it).
    #[serde(default)]
    pub adopted: bool,
    /// The `sport_type` set on it, or why none was.
    #[serde(default)]
    pub sport: Option<String>,
    /// Nothing is left to do.
    #[serde(default)]
    pub done: bool,
}

/// The record of sequence `id`.
pub struct SequenceStore<'a> {
    ctx: &'a Context,
    key: String,
}

impl<'a> SequenceStore<'a> {
    /// The store of sequence `id`.
    pub fn new(ctx: &'a Context, id: &str) -> SequenceStore<'a> {
        SequenceStore {
            ctx,
            key: format!("seq/{id}/upload"),
        }
    }

    /// The record.
    pub fn get(&self) -> Result<Option<UploadRecord>, PluginError> {
        self.ctx.state().get_json(&self.key)
    }

    /// Stores the record.
    pub fn put(&self, record: &UploadRecord) -> Result<(), PluginError> {
        self.ctx.state().put_json(&self.key, record)
    }

    /// Forgets the record (the activity was deleted, or the upload failed: the next run starts over).
    pub fn clear(&self) -> Result<(), PluginError> {
        self.ctx.state().delete(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    #[test]
    fn records_are_per_sequence() {
        let host = TestHost::new();
        let ctx = host.context();
        let one = SequenceStore::new(&ctx, "s1");
        let record = UploadRecord {
            external_id: "mtp-x".into(),
            sent: true,
            upload_id: Some(7),
            ..UploadRecord::default()
        };
        one.put(&record).unwrap();
        assert_eq!(one.get().unwrap(), Some(record));
        assert_eq!(SequenceStore::new(&ctx, "s10").get().unwrap(), None);
        one.clear().unwrap();
        assert_eq!(one.get().unwrap(), None);
    }
}
