//! What the integration persists in the host's store. Every write is committed when it returns, so a
//! `kill -9` at any moment loses nothing acknowledged.
//!
//! | key | value |
//! |---|---|
//! | `account` | who is authorised ([`crate::auth::Account`]; the tokens are the secret `tokens`) |
//! | `quota` | requests used in the current quota day ([`crate::quota`]) |
//! | `seq/<id>/photo/<file name>` | [`PhotoRecord`]: one photo, step by step: its upload URL as soon as Google gives it, the bytes sent, the time the create was sent (before it leaves), then the photo id as soon as Google answers |
//! | `seq/<id>/connected` | the photo ids, in order, that were last connected |
//! | `seq/<id>/polled_ms` | when publication was last looked at |

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

/// One photo, as far as it got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoRecord {
    /// The upload URL the bytes went (or go) to.
    #[serde(default)]
    pub upload_url: Option<String>,
    /// The bytes were accepted at `upload_url`.
    #[serde(default)]
    pub bytes_sent: bool,
    /// When the create request was sent (Unix ms), written before it leaves; with no `photo_id` it
    /// means the answer was lost, and the photo may exist.
    #[serde(default)]
    pub create_sent_ms: Option<i64>,
    /// Google's photo id.
    #[serde(default)]
    pub photo_id: Option<String>,
    /// The photo's share link.
    #[serde(default)]
    pub share_link: Option<String>,
    /// `mapsPublishStatus` as last seen.
    #[serde(default)]
    pub publish_status: Option<String>,
    /// Found in the user's photo list after a lost answer, not created by this record.
    #[serde(default)]
    pub adopted: bool,
    /// Why Google refused it (`INVALID_ARGUMENT`): not sent again.
    #[serde(default)]
    pub refused: Option<String>,
    /// Deleted on Google's side (`NOT_FOUND` when looked at).
    #[serde(default)]
    pub deleted: bool,
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

    /// One photo's record.
    pub fn photo(&self, file_name: &str) -> Result<Option<PhotoRecord>, PluginError> {
        self.ctx
            .state()
            .get_json(&format!("{}photo/{file_name}", self.prefix))
    }

    /// Stores one photo's record.
    pub fn put_photo(&self, file_name: &str, record: &PhotoRecord) -> Result<(), PluginError> {
        self.ctx
            .state()
            .put_json(&format!("{}photo/{file_name}", self.prefix), record)
    }

    /// The photo ids last connected.
    pub fn connected(&self) -> Result<Vec<String>, PluginError> {
        Ok(self
            .ctx
            .state()
            .get_json(&format!("{}connected", self.prefix))?
            .unwrap_or_default())
    }

    /// Stores the photo ids connected.
    pub fn put_connected(&self, ids: &[String]) -> Result<(), PluginError> {
        self.ctx
            .state()
            .put_json(&format!("{}connected", self.prefix), &ids)
    }

    /// When publication was last looked at.
    pub fn polled_ms(&self) -> Result<Option<i64>, PluginError> {
        self.ctx
            .state()
            .get_json(&format!("{}polled_ms", self.prefix))
    }

    /// Stores when publication was looked at.
    pub fn put_polled_ms(&self, at: i64) -> Result<(), PluginError> {
        self.ctx
            .state()
            .put_json(&format!("{}polled_ms", self.prefix), &at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    #[test]
    fn records_are_per_sequence_and_photo() {
        let host = TestHost::new();
        let ctx = host.context();
        let one = SequenceStore::new(&ctx, "s1");
        let record = PhotoRecord {
            photo_id: Some("p".into()),
            ..PhotoRecord::default()
        };
        one.put_photo("a.jpg", &record).unwrap();
        assert_eq!(one.photo("a.jpg").unwrap(), Some(record));
        assert_eq!(
            SequenceStore::new(&ctx, "s10").photo("a.jpg").unwrap(),
            None
        );
        one.put_connected(&["p".into()]).unwrap();
        assert_eq!(one.connected().unwrap(), ["p"]);
    }
}
