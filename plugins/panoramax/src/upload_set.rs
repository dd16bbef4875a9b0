//! Finding or creating the one upload set of a sequence.
//!
//! The record is written with a fresh nonce before `POST /api/upload_sets`, and with the id as soon as the
//! answer arrives, before any picture is sent. A run that finds a nonce without an id (the process died,
//! or the answer was lost, between the two) looks the set up among the account's open upload sets by that
//! nonce before creating one, so a sequence never gets a second upload set.

use plugin_api::prelude::*;
use plugin_api::serde_json::Value;

use crate::api::{self, Api, UploadSet};
use crate::set_options::SetOptions;
use crate::state::{SequenceStore, SetRecord};

/// The option (flag `--republish`) that lets a published sequence whose set is gone go again.
pub const REPUBLISH: &str = "republish";

/// What [`ensure`] found.
pub enum Ensured {
    /// The set to send the pictures to.
    Set(UploadSet),
    /// The set of a published sequence no longer exists, and it is not to be uploaded again.
    Gone(String),
}

/// What the run knows of the sequence's past, for a set that is gone.
pub struct Restart {
    /// The host's record says the sequence was published.
    pub was_published: bool,
    /// The user asks for a new upload set even so (`--republish`).
    pub republish: bool,
}

/// The sequence's upload set (for `files` of its pictures), created if it has none. A published sequence whose set was deleted on
/// the server (on purpose, or by a server that lost it) only gets a new one with `--republish`.
pub async fn ensure(
    ctx: &Context,
    api: &Api,
    store: &SequenceStore<'_>,
    sequence: &SequenceDescriptor,
    files: usize,
    options: &SetOptions,
    restart: Restart,
) -> Result<Ensured, PluginError> {
    let record = match store.set()? {
        Some(SetRecord {
            id: Some(id),
            nonce,
            published_gone,
        }) => match api.upload_set(ctx, &id).await? {
            Some(set) => return Ok(Ensured::Set(set)),
            None if !restart.republish && (restart.was_published || published_gone) => {
                if !published_gone {
                    store.put_set(&SetRecord {
                        nonce,
                        id: Some(id.clone()),
                        published_gone: true,
                    })?;
                }
                return Ok(Ensured::Gone(id));
            }
            None => {
                // Deleted on the server (by the user, on the website): start again, saying so.
                ctx.warn(format!(
                    "Panoramax upload set {id} of this sequence no longer exists; starting a new one"
                ));
                store.clear()?;
                new_record(store)?
            }
        },
        Some(record) => {
            if let Some(found) = find_by_nonce(ctx, api, &record.nonce).await? {
                store.put_set(&SetRecord {
                    nonce: record.nonce,
                    id: Some(found.id.clone()),
                    published_gone: false,
                })?;
                return Ok(Ensured::Set(found));
            }
            record
        }
        None => new_record(store)?,
    };
    let body = api::upload_set_body(sequence, files, &record.nonce, options);
    let set = match api.create_upload_set(ctx, &body).await {
        Ok(set) => set,
        // The request left and no answer came: the set may exist. Look before anything else.
        Err(err) if err.kind == ErrorKind::Transient => {
            match find_by_nonce(ctx, api, &record.nonce).await? {
                Some(found) => found,
                None => return Err(err),
            }
        }
        Err(err) => return Err(err),
    };
    store.put_set(&SetRecord {
        nonce: record.nonce,
        id: Some(set.id.clone()),
        published_gone: false,
    })?;
    ctx.info(format!("created Panoramax upload set {}", set.id));
    Ok(Ensured::Set(set))
}

/// Remembers that the set of a published sequence is gone, so a later upload says so again instead of
/// starting a new one (only `--republish` does).
pub fn remember_gone(store: &SequenceStore<'_>) -> Result<(), PluginError> {
    if let Some(record) = store.set()? {
        store.put_set(&SetRecord {
            published_gone: true,
            ..record
        })?;
    }
    Ok(())
}

fn new_record(store: &SequenceStore<'_>) -> Result<SetRecord, PluginError> {
    let record = SetRecord {
        nonce: plugin_api::sdk::redirect::random_state(),
        id: None,
        published_gone: false,
    };
    store.put_set(&record)?;
    Ok(record)
}

async fn find_by_nonce(
    ctx: &Context,
    api: &Api,
    nonce: &str,
) -> Result<Option<UploadSet>, PluginError> {
    Ok(api.my_open_upload_sets(ctx).await?.into_iter().find(|set| {
        set.metadata
            .as_ref()
            .and_then(|m| m.get("mtp_nonce"))
            .and_then(Value::as_str)
            == Some(nonce)
    }))
}
