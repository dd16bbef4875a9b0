//! Tests of the fake Mapillary's time-dependent behaviour: its movable clock, tokens that expire and
//! are replaced by a refresh, handles that expire, processing longer than 72 h, and a renamed user.

use std::time::Duration;

use mtp_fakes::fake_mapillary::{format_capture_time, AgingConfig, FakeMapillary, MapillaryConfig};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const HOUR: Duration = Duration::from_secs(3600);
const T0: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

async fn start(config: MapillaryConfig) -> (FakeMapillary, Client) {
    (FakeMapillary::start(config).await.unwrap(), Client::new())
}

async fn me(fake: &FakeMapillary, http: &Client, token: &str) -> (StatusCode, Value) {
    let r = http
        .get(format!("{}/me?fields=id,username", fake.graph_url()))
        .header("Authorization", format!("OAuth {token}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn refresh(fake: &FakeMapillary, http: &Client, token: &str) -> (StatusCode, Value) {
    let cfg = fake.config();
    let r = http
        .post(format!("{}/token", fake.graph_url()))
        .header("Authorization", format!("OAuth {}", cfg.client_secret))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token, "client_id": cfg.client_id}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn post(fake: &FakeMapillary, http: &Client, key: &str, offset: u64, body: Vec<u8>) -> Value {
    let r = http
        .post(format!("{}/{key}", fake.upload_url()))
        .header(
            "Authorization",
            format!("OAuth {}", fake.config().user_token),
        )
        .header("Offset", offset.to_string())
        .header("X-Entity-Name", key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn offset(fake: &FakeMapillary, http: &Client, key: &str) -> u64 {
    let r = http
        .get(format!("{}/{key}", fake.upload_url()))
        .header(
            "Authorization",
            format!("OAuth {}", fake.config().user_token),
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["offset"].as_u64().unwrap()
}

async fn finish(fake: &FakeMapillary, http: &Client, handle: &str) -> StatusCode {
    http.post(format!("{}/finish_upload", fake.graph_url()))
        .header(
            "Authorization",
            format!("OAuth {}", fake.config().user_token),
        )
        .json(&json!({"file_handle": handle, "file_type": "mly_bundle_manifest"}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A JPEG-looking body whose EXIF area carries an image description, as the fake reads it.
fn image(captured_at_ms: i64, lat: f64, lon: f64) -> Vec<u8> {
    let desc = json!({
        "MAPCaptureTime": format_capture_time(captured_at_ms),
        "MAPLatitude": lat,
        "MAPLongitude": lon,
    });
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE1, 0x12, 0x34, b'E', b'x', b'i', b'f', 0, 0,
    ];
    v.extend_from_slice(desc.to_string().as_bytes());
    v.push(0);
    v.resize(2048, 0x55);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// Uploads two images and their manifest; returns the manifest handle.
async fn upload_manifest(fake: &FakeMapillary, http: &Client) -> String {
    let mut handles = Vec::new();
    for i in 0..2 {
        let body = image(T0 + i * 1000, 51.5 + i as f64 * 1e-4, -0.1);
        let key = format!("mly_tools_{:x}.jpg", md5::compute(&body));
        handles.push(
            post(fake, http, &key, 0, body).await["h"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let manifest = json!({"image_handles": handles, "upload_type": "images", "version": "1"});
    let v = post(
        fake,
        http,
        "manifest.json",
        0,
        manifest.to_string().into_bytes(),
    )
    .await;
    v["h"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_expire_after_their_ttl_and_a_refresh_replaces_the_old_one() {
    let (fake, http) = start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(10 * HOUR),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    let first = fake.config().user_token;
    assert_eq!(me(&fake, &http, &first).await.0, StatusCode::OK);

    fake.advance_clock(9 * HOUR);
    let (status, answer) = refresh(&fake, &http, &first).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["expires_in"], 36_000);
    let second = answer["access_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let (status, v) = me(&fake, &http, &first).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(190))
    );
    assert_eq!(me(&fake, &http, &second).await.0, StatusCode::OK);

    // The new token lives its own 10 h; once expired it is refused and cannot be refreshed.
    fake.advance_clock(9 * HOUR);
    assert_eq!(me(&fake, &http, &second).await.0, StatusCode::OK);
    fake.advance_clock(2 * HOUR);
    assert_eq!(me(&fake, &http, &second).await.0, StatusCode::UNAUTHORIZED);
    assert!(!fake.link().token_is_valid(&second));
    assert_eq!(
        refresh(&fake, &http, &second).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn handles_expire_after_their_ttl() {
    let (fake, http) = start(MapillaryConfig {
        aging: AgingConfig {
            handle_ttl: Some(48 * HOUR),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    let handle = upload_manifest(&fake, &http).await;
    assert!(offset(&fake, &http, "manifest.json").await > 0);
    fake.advance_clock(47 * HOUR);
    assert!(offset(&fake, &http, "manifest.json").await > 0);
    fake.advance_clock(HOUR);
    assert_eq!(offset(&fake, &http, "manifest.json").await, 0);
    assert_eq!(finish(&fake, &http, &handle).await, StatusCode::BAD_REQUEST);
    assert!(fake.stats().entities.is_empty());
}

#[tokio::test]
async fn processing_longer_than_the_deadline_ends_when_the_clock_passes_it() {
    let (fake, http) = start(MapillaryConfig {
        publish_delay: 100 * HOUR,
        ..MapillaryConfig::default()
    })
    .await;
    let handle = upload_manifest(&fake, &http).await;
    assert_eq!(finish(&fake, &http, &handle).await, StatusCode::OK);
    fake.advance_clock(80 * HOUR);
    assert_eq!(
        fake.stats().pending_publications,
        1,
        "still processing 80 h later"
    );
    assert!(fake.stats().uploaded_sequences().is_empty());
    fake.advance_clock(20 * HOUR);
    assert_eq!(fake.stats().uploaded_sequences().len(), 1);
}

#[tokio::test]
async fn a_renamed_user_is_searched_under_the_new_name() {
    let (fake, http) = start(MapillaryConfig::default()).await;
    let handle = upload_manifest(&fake, &http).await;
    assert_eq!(finish(&fake, &http, &handle).await, StatusCode::OK);
    fake.rename_user("new_name");
    let token = fake.config().user_token;
    assert_eq!(me(&fake, &http, &token).await.1["username"], "new_name");
    assert_eq!(fake.link().username(), "new_name");
    let search = |name: &'static str| {
        let (http, url, token) = (http.clone(), fake.graph_url(), token.clone());
        async move {
            let v: Value = http
                .get(format!("{url}/images"))
                .header("Authorization", format!("OAuth {token}"))
                .query(&[("creator_username", name), ("fields", "id,sequence")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].as_array().map(Vec::len).unwrap_or(0)
        }
    };
    assert_eq!(search("fake_user").await, 0);
    assert_eq!(search("new_name").await, 2);
}
