//! A picture the server refused goes again once its file changed, into the same upload set.
//!
//! What the server allows: `insertFileInDatabase` (geovisio 2.15.1 `geovisio/utils/upload_set.py`) keeps one
//! row per name in a set and replaces a refused one ("If there is no picture (because the picture has been
//! rejected), we accept that the file is overridden", `ON CONFLICT (upload_set_id, file_name) DO UPDATE ...
//! WHERE files.picture_id IS NULL`); only a name that holds a picture is a 409. `addFilesToUploadSet`
//! does not look at `completed` or `dispatched`: a file added to a completed set un-completes it
//! (`handle_completion`), and completing it again queues a new dispatch, which puts the pictures back into
//! the collection they were in (`dispatch`: "if some of the pictures were already in a sequence, we
//! should not create a new one"; the `PATCH /api/upload_sets/<id>` documentation: call `complete` "to
//! dispatch the upload set afterward"). So a fixed picture joins its published collection; the run then
//! completes the set (it is no longer completed) and the sequence shows as processing until it is ready.
//!
//! When: as panoramax_cli 1.4.1 decides (`panoramax_cli/model.py` `UploadFile.has_to_be_sent`: a file the
//! set lists as rejected goes again when `hash_differs`, the md5 of the local file against the server's
//! `content_md5`). Unchanged bytes would be refused again, so they are not sent; a changed file is sent
//! once, after which the server's `content_md5` is that of the new bytes. Unlike panoramax_cli, a
//! refusal without `content_md5` (a name without `.jpg`, refused before the bytes were read) is not
//! re-sent: the name is what was wrong, and it cannot change under the same name.

use std::path::Path;

use plugin_api::prelude::*;
use plugin_api::tokio::io::AsyncReadExt;

use crate::api::RemoteFile;

/// Bytes read per chunk while hashing.
const CHUNK: usize = 256 * 1024;

/// Whether `held`, a file the server refused, is to be sent again: its local bytes differ from those the
/// server refused.
pub async fn changed_since_refused(path: &Path, held: &RemoteFile) -> Result<bool, PluginError> {
    let Some(refused) = held
        .content_md5
        .as_deref()
        .filter(|_| held.rejected.is_some())
    else {
        return Ok(false);
    };
    Ok(!md5_hex(path).await?.eq_ignore_ascii_case(refused))
}

/// The md5 of the file at `path`, 32 lowercase hex digits, read in chunks.
pub async fn md5_hex(path: &Path) -> Result<String, PluginError> {
    let io = |err: std::io::Error| PluginError::other(format!("{}: {err}", path.display()));
    let mut file = plugin_api::tokio::fs::File::open(path).await.map_err(io)?;
    let mut context = md5::Context::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        context.consume(&chunk[..n]);
    }
    Ok(format!("{:x}", context.compute()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Rejection;

    fn refused(md5: Option<&str>) -> RemoteFile {
        RemoteFile {
            file_name: "a.jpg".into(),
            picture_id: None,
            rejected: Some(Rejection {
                reason: "invalid_metadata".into(),
                ..Rejection::default()
            }),
            content_md5: md5.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn only_changed_bytes_of_a_refused_file_go_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"abc").unwrap();
        // md5("abc"), RFC 1321's test suite.
        let abc = "900150983cd24fb0d6963f7d28e17f72";
        assert_eq!(md5_hex(&path).await.unwrap(), abc);
        assert!(!changed_since_refused(&path, &refused(Some(abc)))
            .await
            .unwrap());
        std::fs::write(&path, b"abd").unwrap();
        assert!(changed_since_refused(&path, &refused(Some(abc)))
            .await
            .unwrap());
        assert!(!changed_since_refused(&path, &refused(None)).await.unwrap());
        let mut accepted = refused(Some(abc));
        accepted.rejected = None;
        assert!(!changed_since_refused(&path, &accepted).await.unwrap());
    }
}
