//! The upload bundle: session keys of the entities, and the manifest (`file_type: mly_bundle_manifest`)
//! that turns uploaded images into one Mapillary sequence. (Not the plugin manifest: that is
//! `plugin_api::manifest`.)

use serde_json::json;

/// The session key of an image whose outgoing bytes have md5 `md5_hex`: `mly_tools_<md5>.jpg`, as
/// mapillary_tools names it. Content-addressed, so a restart resumes the same server-side entity.
pub fn image_key(md5_hex: &str) -> String {
    format!("mly_tools_{md5_hex}.jpg")
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

/// The manifest's content identity (`mly_tools_<md5 of the body>.json`): the same handles give the same
/// value. It tells whether an uploaded, unsent manifest still fits (`crate::attempts`); the session key a
/// manifest is uploaded under is [`fresh_manifest_key`].
pub fn manifest_key(body: &[u8]) -> String {
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
            image_key(&format!("{:x}", md5::compute(b"abc"))),
            "mly_tools_900150983cd24fb0d6963f7d28e17f72.jpg"
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
            manifest_key(&body).starts_with("mly_tools_") && manifest_key(&body).ends_with(".json")
        );
    }
}
