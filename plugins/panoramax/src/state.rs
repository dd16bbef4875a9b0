//! What the integration persists in the host's store. Every write is committed when it returns, so a
//! `kill -9` at any moment loses nothing acknowledged. The server's own file list is the authority on
//! what it holds; these records are what lets a resumed run find the right upload set.
//!
//! | key | value |
//! |---|---|
//! | `account` | [`Account`]: who is authorised (the JWT itself is the secret `token`) |
//! | `seq/<id>/set` | [`SetRecord`]: the sequence's upload set: written with its nonce *before* the creating request, and with its id as soon as the server answers, before any picture is sent |
//! | `seq/<id>/file/<file name>` | [`FileRecord`]: what the server said about one picture |

use plugin_api::prelude::*;
use plugin_api::serde_json;
use serde::{Deserialize, Serialize};

use crate::api::Rejection;

/// The secret holding the JWT.
pub const TOKEN_SECRET: &str = "token";
const ACCOUNT_KEY: &str = "account";

/// Who is authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Panoramax account id.
    pub id: String,
    /// Account name.
    pub name: String,
    /// The instance it belongs to.
    pub instance: String,
}

/// The stored account.
pub fn account(ctx: &Context) -> Result<Option<Account>, PluginError> {
    ctx.state().get_json(ACCOUNT_KEY)
}

/// Stores the account.
pub fn put_account(ctx: &Context, account: &Account) -> Result<(), PluginError> {
    ctx.state().put_json(ACCOUNT_KEY, account)
}

/// A sequence's upload set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRecord {
    /// Random text put into the set's `metadata.mtp_nonce`, to find it again if the creating request's
    /// answer was lost.
    pub nonce: String,
    /// The set's id, once the server answered.
    #[serde(default)]
    pub id: Option<String>,
    /// The set was gone from the server after the sequence was published: later runs say so again
    /// instead of uploading it anew (only `--republish` does that).
    #[serde(default)]
    pub published_gone: bool,
}

/// What the server said about one picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The picture id, when accepted.
    #[serde(default)]
    pub picture_id: Option<String>,
    /// Why it was refused, when it was.
    #[serde(default)]
    pub rejected: Option<Rejection>,
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

    /// The upload set record.
    pub fn set(&self) -> Result<Option<SetRecord>, PluginError> {
        self.ctx.state().get_json(&format!("{}set", self.prefix))
    }

    /// Stores the upload set record.
    pub fn put_set(&self, record: &SetRecord) -> Result<(), PluginError> {
        self.ctx
            .state()
            .put_json(&format!("{}set", self.prefix), record)
    }

    /// Records what the server said about `file_name`.
    pub fn put_file(&self, file_name: &str, record: &FileRecord) -> Result<(), PluginError> {
        self.ctx
            .state()
            .put_json(&format!("{}file/{file_name}", self.prefix), record)
    }

    /// The names of the files the server answered for (accepted or refused).
    pub fn answered_files(&self) -> Result<Vec<String>, PluginError> {
        self.files_where(|_| true)
    }

    /// The names of the files the server refused, as last recorded.
    pub fn refused_files(&self) -> Result<Vec<String>, PluginError> {
        self.files_where(|value| {
            serde_json::from_str::<FileRecord>(value).is_ok_and(|r| r.rejected.is_some())
        })
    }

    /// The names of the files whose stored record (JSON) `keep` accepts.
    fn files_where(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, PluginError> {
        let prefix = format!("{}file/", self.prefix);
        Ok(self
            .ctx
            .state()
            .list(&prefix)?
            .into_iter()
            .filter(|(_, value)| keep(value))
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// Forgets everything about the sequence (its upload set was deleted on the server).
    pub fn clear(&self) -> Result<(), PluginError> {
        let state = self.ctx.state();
        for (key, _) in state.list(&self.prefix)? {
            state.delete(&key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    #[test]
    fn records_round_trip_per_sequence() {
        let host = TestHost::new();
        let ctx = host.context();
        let one = SequenceStore::new(&ctx, "s1");
        let other = SequenceStore::new(&ctx, "s10");
        let record = SetRecord {
            nonce: "n".into(),
            id: Some("u".into()),
            published_gone: false,
        };
        one.put_set(&record).unwrap();
        other.put_set(&record).unwrap();
        one.put_file(
            "a.jpg",
            &FileRecord {
                picture_id: Some("p".into()),
                rejected: None,
            },
        )
        .unwrap();
        assert_eq!(one.set().unwrap(), Some(record.clone()));
        assert!(host.state("seq/s1/file/a.jpg").unwrap().contains("\"p\""));
        one.clear().unwrap();
        assert_eq!(one.set().unwrap(), None);
        assert_eq!(
            other.set().unwrap(),
            Some(record),
            "s10 is another sequence"
        );
    }
}
