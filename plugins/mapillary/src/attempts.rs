//! One manifest entity per publish attempt.
//!
//! mapillary_tools uploads a new manifest entity, under a random session key (`uuid_<hex>.json`), for
//! every upload it finishes (mapillary/mapillary_tools `mapillary_tools/uploader.py`), so two publish
//! attempts are two distinct handles on the server. We do the same: the session key is fresh
//! ([`crate::bundle::fresh_manifest_key`]); "at most once" comes from the recorded publication state
//! (`crate::publish`), not from the key. A manifest uploaded but never sent to `finish_upload` is reused
//! while its content (the image handles) is unchanged; that content's digest is kept here.

use plugin_api::prelude::*;

use crate::error::Result;

fn content_key(sequence_id: &str, index: usize) -> String {
    // Under the sequence's prefix, so forgetting the sequence forgets this too.
    format!("seq/{sequence_id}/manifest/{index}")
}

/// The content digest of part `index`'s uploaded, not yet sent manifest.
pub fn uploaded_content(ctx: &Context, sequence_id: &str, index: usize) -> Result<Option<String>> {
    Ok(ctx.state().get_json(&content_key(sequence_id, index))?)
}

/// Records the content digest of part `index`'s new manifest.
pub fn put_uploaded_content(
    ctx: &Context,
    sequence_id: &str,
    index: usize,
    digest: &str,
) -> Result<()> {
    Ok(ctx
        .state()
        .put_json(&content_key(sequence_id, index), &digest)?)
}

/// Forgets it: the next attempt uploads a new manifest entity.
pub fn forget(ctx: &Context, sequence_id: &str, index: usize) -> Result<()> {
    Ok(ctx.state().delete(&content_key(sequence_id, index))?)
}
