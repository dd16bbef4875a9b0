//! The upload bundle: session keys of the entities, and the manifest (`file_type: mly_bundle_manifest`)
//! that turns uploaded images into one Mapillary sequence. (Not the plugin manifest: that is
//! `plugin_api::manifest`.)

use serde_json::json;

/// The prefix of our session keys: `mtp_b3_<BLAKE3 of the bytes, 64 hex digits>.<ext>`. Our own, because
/// `mly_tools_<32 hex digits>` is mapillary_tools' md5 form (`docs/providers/mapillary.md`).
pub const KEY_PREFIX: &str = "mtp_b3_";

/// The session key of an image whose outgoing bytes have BLAKE3 hash `blake3_hex`:
/// `mtp_b3_<hex>.jpg`. Content-addressed, so a restart (even with a lost state) resumes the same
/// server-side entity. Keys of the older md5 form (`mly_tools_<md5>.jpg`) stay in the hash cache of
/// entities hashed before and are used as they are, so those uploads resume too.
pub fn image_key(blake3_hex: &str) -> String {
    format!("{KEY_PREFIX}{blake3_hex}.jpg")
}

/// The manifest body: the image handles in capture order.
pub fn manifest_body(handles: &[String]) -> Vec<u8> {
    // serde_json sorts object keys, so the same handles always give the same bytes (and key).
    json!({
        "image_handles": handles,
        "upload_type": "images",
        "version": "1",
    })
    .to_string()
    .into_bytes()
}

/// The manifest's content identity (`mtp_b3_<BLAKE3 of the body>.json`): the same handles give the same
/// value. It tells whether an uploaded, unsent manifest still fits (`crate::attempts`); the session key a
/// manifest is uploaded under is [`fresh_manifest_key`].
pub fn manifest_key(body: &[u8]) -> String {
    format!("{KEY_PREFIX}{}.json", blake3::hash(body).to_hex())
}

/// The key earlier versions gave the same manifest (`mly_tools_<md5>.json`): a manifest acknowledged
/// under it is not sent again.
pub fn legacy_manifest_key(body: &[u8]) -> String {
    format!("mly_tools_{:x}.json", md5::compute(body))
}

/// A fresh session key for a manifest entity, `uuid_<32 random hex>.json`, the form mapillary_tools gives
/// its manifests (mapillary/mapillary_tools `mapillary_tools/uploader.py`): one new entity per publish
/// attempt (`crate::attempts`). Not `mly_tools_<32 hex>`, which promises an md5 of the bytes.
pub fn fresh_manifest_key() -> String {
    format!("uuid_{:032x}.json", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_session_keys_are_fresh() {
        let (a, b) = (fresh_manifest_key(), fresh_manifest_key());
        assert_ne!(a, b);
        assert!(
            a.starts_with("uuid_") && a.ends_with(".json") && a.len() == 42,
            "{a}"
        );
    }

    #[test]
    fn keys_are_content_addressed() {
        assert_eq!(
            image_key(&blake3::hash(b"abc").to_hex()),
            "mtp_b3_6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85.jpg"
        );
        let body = manifest_body(&["h1".into(), "h2".into()]);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"image_handles":["h1","h2"],"upload_type":"images","version":"1"}"#
        );
        assert_eq!(
            manifest_key(&body),
            manifest_key(&manifest_body(&["h1".into(), "h2".into()]))
        );
        assert_ne!(
            manifest_key(&body),
            manifest_key(&manifest_body(&["h2".into(), "h1".into()]))
        );
        assert!(
            manifest_key(&body).starts_with("mtp_b3_") && manifest_key(&body).ends_with(".json")
        );
        assert_eq!(
            legacy_manifest_key(&body),
            format!("mly_tools_{:x}.json", md5::compute(&body))
        );
    }
}
