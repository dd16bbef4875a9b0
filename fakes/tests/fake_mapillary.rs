//! Tests of the fake Mapillary itself: each endpoint, resumable uploads, manifests, publication,
//! and every fault switch.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;

use mtp_fakes::fake_mapillary::{
    format_capture_time, EntityKind, ExtraSequence, FakeMapillary, FinishFault, Flapping,
    MapillaryConfig, MapillaryFaults, ResetFault, SequenceOrigin,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const T0: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A JPEG-looking blob carrying mapillary_tools' ImageDescription JSON, padded to `size`.
fn fake_jpeg(captured_at_ms: i64, lat: f64, lon: f64, size: usize) -> Vec<u8> {
    let desc = json!({
        "MAPCaptureTime": format_capture_time(captured_at_ms),
        "MAPCompassHeading": {"TrueHeading": 0.0, "MagneticHeading": 0.0},
        "MAPLatitude": lat,
        "MAPLongitude": lon,
    });
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE1, 0x12, 0x34, b'E', b'x', b'i', b'f', 0, 0,
    ];
    v.extend_from_slice(desc.to_string().as_bytes());
    v.push(0);
    let mut x: u32 = captured_at_ms as u32;
    while v.len() + 2 < size {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.push((x >> 24) as u8);
    }
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// Polls `condition` every few milliseconds until it holds (panics naming `what` after 10 s, a safety
/// net, not a timing assertion).
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls the fake's `/__fake/stats` (usable where a `'static` stream cannot borrow the fake) until
/// `condition` holds on it.
async fn wait_for_stats(base_url: &str, what: &str, condition: impl Fn(&Value) -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = client()
            .get(format!("{base_url}/__fake/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if condition(&stats) {
            return;
        }
        assert!(Instant::now() < give_up, "never happened: {what}: {stats}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn md5_key(bytes: &[u8]) -> String {
    format!("mly_tools_{:x}.jpg", md5::compute(bytes))
}

struct Api {
    http: Client,
    fake: FakeMapillary,
    token: String,
}

impl Api {
    async fn new(config: MapillaryConfig) -> Api {
        let token = config.user_token.clone();
        Api {
            http: client(),
            fake: FakeMapillary::start(config).await.unwrap(),
            token,
        }
    }

    fn auth(&self) -> String {
        format!("OAuth {}", self.token)
    }

    async fn offset(&self, key: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/{key}", self.fake.upload_url()))
            .header("Authorization", self.auth())
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, key: &str, offset: u64, body: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/{key}", self.fake.upload_url()))
            .header("Authorization", self.auth())
            .header("Offset", offset.to_string())
            .header("X-Entity-Name", key)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// Upload a whole entity, returning its handle.
    async fn upload(&self, key: &str, body: Vec<u8>) -> String {
        let (status, v) = self.post(key, 0, body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["h"].as_str().unwrap().to_string()
    }

    async fn upload_images(&self, times: &[i64]) -> Vec<String> {
        let mut handles = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            let img = fake_jpeg(t, 51.5 + i as f64 * 1e-4, -0.1 + i as f64 * 1e-4, 4096);
            handles.push(self.upload(&md5_key(&img), img).await);
        }
        handles
    }

    async fn manifest(&self, handles: &[String]) -> (StatusCode, Value) {
        let body = json!({"image_handles": handles, "upload_type": "images", "version": "1"});
        self.post(
            "uuid_0123456789abcdef0123456789abcdef.json",
            0,
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn finish(&self, handle: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/finish_upload", self.fake.graph_url()))
            .header("Authorization", self.auth())
            .json(&json!({"file_handle": handle, "file_type": "mly_bundle_manifest"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn graph_get(&self, url: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(url)
            .header("Authorization", self.auth())
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// Upload images + manifest and finish; returns the manifest handle.
    async fn publish(&self, times: &[i64]) -> String {
        let handles = self.upload_images(times).await;
        let (status, m) = self.manifest(&handles).await;
        assert_eq!(status, StatusCode::OK, "{m}");
        let mh = m["h"].as_str().unwrap().to_string();
        let (status, f) = self.finish(&mh).await;
        assert_eq!(status, StatusCode::OK, "{f}");
        assert!(f["cluster_id"].is_string());
        mh
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn consent_page_and_token_exchange() {
    let cfg = MapillaryConfig::default();
    let api = Api::new(cfg.clone()).await;
    let http = &api.http;

    for redirect in ["http://127.0.0.1:8765/cb", "app.mtp.desktop://mapillary"] {
        let r = http
            .get(api.fake.authorize_url())
            .query(&[
                ("client_id", cfg.client_id.as_str()),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "user:read public:upload"),
                ("state", "xyz 1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with(&format!("{redirect}?code=")), "{loc}");
        assert!(loc.ends_with("&state=xyz+1"), "{loc}");
        let code = loc
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();

        let token_url = format!("{}/token", api.fake.graph_url());
        let body =
            json!({"grant_type": "authorization_code", "code": code, "client_id": cfg.client_id});
        let wrong = http
            .post(&token_url)
            .header("Authorization", "OAuth wrong-secret")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let v: Value = wrong.json().await.unwrap();
        assert_eq!(v["error"]["type"], "OAuthException");
        assert_eq!(v["error"]["code"], 190);

        let ok = http
            .post(&token_url)
            .header("Authorization", format!("OAuth {}", cfg.client_secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let v: Value = ok.json().await.unwrap();
        assert_eq!(v["access_token"], cfg.user_token.as_str());
        assert_eq!(v["token_type"], "bearer");
        assert!(v["expires_in"].as_u64().unwrap() > 0);

        // Codes are single-use.
        let again = http
            .post(&token_url)
            .header("Authorization", format!("OAuth {}", cfg.client_secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        let v: Value = again.json().await.unwrap();
        assert_eq!(v["error"]["code"], 190);
    }

    // Refresh grant, as a form body this time.
    let r = http
        .post(format!("{}/token", api.fake.graph_url()))
        .header("Authorization", format!("OAuth {}", cfg.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", cfg.user_token.as_str()),
            ("client_id", cfg.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let bad_client = http
        .get(api.fake.authorize_url())
        .query(&[
            ("client_id", "nope"),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_client.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api.fake.stats().tokens_issued.len(), 3);
}

#[tokio::test]
async fn consent_denied_and_fresh_tokens() {
    let cfg = MapillaryConfig {
        deny_consent: true,
        issue_fresh_tokens: true,
        ..MapillaryConfig::default()
    };
    let api = Api::new(cfg.clone()).await;
    let r = api
        .http
        .get(api.fake.authorize_url())
        .query(&[
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb?x=1"),
            ("response_type", "code"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("http://127.0.0.1:9/cb?x=1&error=user_denied"),
        "{loc}"
    );
    assert!(loc.ends_with("state=s"));

    let r: Value = api
        .http
        .post(format!("{}/token", api.fake.graph_url()))
        .header("Authorization", format!("OAuth {}", cfg.client_secret))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": cfg.user_token, "client_id": cfg.client_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = r["access_token"].as_str().unwrap();
    assert_ne!(fresh, cfg.user_token);
    let me = api
        .http
        .get(format!("{}/me?fields=id,username", api.fake.graph_url()))
        .header("Authorization", format!("OAuth {fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn me_object_and_auth_errors() {
    let cfg = MapillaryConfig::default();
    let api = Api::new(cfg.clone()).await;
    let url = format!("{}/me?fields=id,username", api.fake.graph_url());
    let (status, v) = api.graph_get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"id": cfg.user_id, "username": cfg.username}));

    let (status, v) = api
        .graph_get(&format!(
            "{}/{}?fields=id,username",
            api.fake.graph_url(),
            cfg.user_id
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["username"], cfg.username.as_str());

    // Token as query parameter works too.
    let r = api
        .http
        .get(format!("{url}&access_token={}", cfg.user_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = api
        .http
        .get(&url)
        .header("Authorization", "OAuth bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "OAuthException");
    assert_eq!(v["error"]["code"], 190);
    assert!(v["error"]["message"].is_string());

    // Upload service auth errors have the upload service's shape.
    let r = api
        .http
        .get(format!("{}/some_key", api.fake.upload_url()))
        .header("Authorization", "OAuth bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["debug_info"]["type"], "NotAuthorizedError");
    assert_eq!(v["debug_info"]["retriable"], false);

    // mapillary_tools' side calls are answered harmlessly.
    let r = api
        .http
        .post(format!("{}/logging", api.fake.graph_url()))
        .header(
            "Authorization",
            "OAuth MLY|5675152195860640|6b02c72e6e3c801e5603ab0495623282",
        )
        .json(&json!({"action_type": "upload_started_upload", "properties": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = api
        .http
        .post(format!("{}/login", api.fake.graph_url()))
        .json(&json!({"email": "a@b.c", "password": "pw", "locale": "en_US"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["access_token"], cfg.user_token.as_str());
    assert_eq!(v["user_id"], cfg.user_id.as_str());

    let stats = api.fake.stats();
    assert_eq!(stats.request_count("GET /me"), 3);
    assert_eq!(stats.responses_by_status[&401], 2);
}

#[tokio::test]
async fn upload_resume_offsets_and_checksum() {
    let api = Api::new(MapillaryConfig::default()).await;
    let img = fake_jpeg(T0, 51.5, -0.1, 300_000);
    let key = md5_key(&img);

    assert_eq!(
        api.offset(&key).await,
        (StatusCode::OK, json!({"offset": 0}))
    );

    // A client that dies mid-body: the server keeps what arrived.
    // The crash comes once the server has taken in the first 100000 bytes.
    let first = img[..100_000].to_vec();
    let base = api.fake.base_url();
    let watched = key.clone();
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(first),
        Err(std::io::Error::other("client crashed")),
    ])
    .then(move |item| {
        let (base, watched) = (base.clone(), watched.clone());
        async move {
            if item.is_err() {
                wait_for_stats(&base, "the first chunk arrived", |s| {
                    s["entities"][&watched]["bytes_received_total"] == 100_000
                })
                .await;
            }
            item
        }
    });
    let r = api
        .http
        .post(format!("{}/{key}", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("Offset", "0")
        .header("X-Entity-Name", &key)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    assert!(r.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = api.offset(&key).await;
        if v["offset"] == 100_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offset never reached 100000: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Wrong offsets get 412 OffsetInvalidError, retriable.
    let (status, v) = api.post(&key, 0, img.clone()).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(v["debug_info"]["type"], "OffsetInvalidError");
    assert_eq!(v["debug_info"]["retriable"], true);
    let (status, _) = api.post(&key, 200_000, img[200_000..].to_vec()).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);

    // Resume from the server's offset.
    let (status, v) = api.post(&key, 100_000, img[100_000..].to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let handle = v["h"].as_str().unwrap().to_string();

    // Finishing again at the end returns the same handle (lost-response recovery).
    let (_, v) = api.offset(&key).await;
    assert_eq!(v["offset"], 300_000);
    let (status, v) = api.post(&key, 300_000, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["h"], handle.as_str());

    let stats = api.fake.stats();
    let e = &stats.entities[&key];
    assert_eq!(e.offset, 300_000);
    assert_eq!(e.handle.as_deref(), Some(handle.as_str()));
    assert_eq!(e.kind, EntityKind::Image);
    assert_eq!(e.md5_hex.as_deref(), Some(&key[10..42]));
    assert_eq!(e.image.as_ref().unwrap().captured_at_ms, T0);
    assert_eq!(e.completions, 2);
    // The 412'd full body was drained: 100000 of its bytes were already held.
    assert_eq!(stats.bytes_resent, 100_000);
    assert_eq!(stats.bytes_discarded, 300_000 + 100_000);
    assert_eq!(stats.offset_mismatches, 2);

    // A key promising another md5 is refused and reset.
    let other = fake_jpeg(T0 + 1000, 51.5, -0.1, 5000);
    let bad_key = "mly_tools_00000000000000000000000000000000.jpg";
    let (status, v) = api.post(bad_key, 0, other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["debug_info"]["type"], "InvalidChecksumError");
    assert_eq!(v["debug_info"]["retriable"], false);
    assert_eq!(api.offset(bad_key).await.1["offset"], 0);

    // Missing headers are refused with the service's error shape.
    let r = api
        .http
        .post(format!("{}/k", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("X-Entity-Name", "k")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["debug_info"]["type"], "InvalidRequestError");
}

#[tokio::test]
async fn concurrent_posts_and_entity_length() {
    let api = Api::new(MapillaryConfig::default()).await;
    let img = fake_jpeg(T0, 51.5, -0.1, 20_000);
    let key = md5_key(&img);

    // A slow POST holds the entity; a second POST for the same key meanwhile gets 412. The slow one
    // sends its tail only once the second has been answered.
    let (head, tail) = (img[..10_000].to_vec(), img[10_000..].to_vec());
    let answered = std::sync::Arc::new(tokio::sync::Notify::new());
    let release = answered.clone();
    let stream = futures::stream::iter(vec![(0, head), (1, tail)]).then(move |(i, chunk)| {
        let release = release.clone();
        async move {
            if i == 1 {
                release.notified().await;
            }
            Ok::<_, std::io::Error>(chunk)
        }
    });
    let slow = api
        .http
        .post(format!("{}/{key}", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("Offset", "0")
        .header("X-Entity-Name", &key)
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let second = async {
        wait_until("the slow POST holds the entity", || {
            let stats = api.fake.stats();
            stats.uploads_in_flight == 1
                && stats.entities.get(&key).is_some_and(|e| e.offset == 10_000)
        })
        .await;
        let answer = api.post(&key, 10_000, img[10_000..].to_vec()).await;
        answered.notify_one();
        answer
    };
    let (slow, (status, v)) = tokio::join!(slow, second);
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{v}");
    assert_eq!(slow.unwrap().status(), StatusCode::OK);

    // X-Entity-Length must match what the entity reaches.
    let other = fake_jpeg(T0 + 1, 51.5, -0.1, 5_000);
    let other_key = md5_key(&other);
    let r = api
        .http
        .post(format!("{}/{other_key}", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("Offset", "0")
        .header("X-Entity-Name", &other_key)
        .header("X-Entity-Length", "9999")
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api
        .http
        .post(format!("{}/{other_key}", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("Offset", "5000")
        .header("X-Entity-Name", &other_key)
        .header("X-Entity-Length", "5000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn overlapping_offsets_can_be_accepted() {
    let api = Api::new(MapillaryConfig {
        accept_overlapping_offsets: true,
        faults: MapillaryFaults {
            reset: Some(ResetFault {
                after_bytes: 3000,
                every_nth_post: 0,
                ratio: 0.0,
            }),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    // Reset fault configured but never triggered (every_nth 0, ratio 0).
    let img = fake_jpeg(T0, 51.5, -0.1, 10_000);
    let key = md5_key(&img);
    api.fake.set_faults(MapillaryFaults {
        reset: Some(ResetFault {
            after_bytes: 3000,
            every_nth_post: 1,
            ratio: 0.0,
        }),
        ..MapillaryFaults::default()
    });
    let r = api
        .http
        .post(format!("{}/{key}", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .header("Offset", "0")
        .header("X-Entity-Name", &key)
        .body(img.clone())
        .send()
        .await;
    assert!(r.is_err(), "connection should have been reset");
    assert_eq!(api.offset(&key).await.1["offset"], 3000);
    api.fake.set_faults(MapillaryFaults::default());
    // A client resending from 0: the overlap is skipped and counted.
    let (status, v) = api.post(&key, 0, img.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let stats = api.fake.stats();
    assert_eq!(stats.bytes_resent, 3000);
    assert_eq!(stats.connections_reset, 1);
    assert_eq!(stats.entities[&key].md5_hex.as_deref(), Some(&key[10..42]));
}

#[tokio::test]
async fn manifest_validation_and_finish_counting() {
    let api = Api::new(MapillaryConfig::default()).await;
    let handles = api.upload_images(&[T0, T0 + 1000]).await;

    let (status, v) = api.manifest(&["not-a-handle".to_string()]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["debug_info"]["type"], "InvalidManifestError");
    let (status, _) = api.manifest(&[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad_version = json!({"image_handles": handles, "upload_type": "images", "version": "2"});
    let (status, _) = api
        .post("uuid_v2.json", 0, bad_version.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, v) = api.manifest(&handles).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let manifest = v["h"].as_str().unwrap().to_string();

    // An image handle is not a manifest.
    let (status, v) = api.finish(&handles[0]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], 100);
    let (status, _) = api.finish("unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, v) = api.finish(&manifest).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["cluster_id"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_digit()));

    let stats = api.fake.stats();
    assert_eq!(stats.finish_upload_calls[&manifest], 1);
    assert_eq!(stats.finish_upload_calls[&handles[0]], 1);
    let seqs = stats.uploaded_sequences();
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].key.len(), 22);
    assert_eq!(seqs[0].manifest_handle.as_deref(), Some(manifest.as_str()));
    let times: Vec<_> = seqs[0].images.iter().map(|i| i.captured_at_ms).collect();
    assert_eq!(times, vec![Some(T0), Some(T0 + 1000)]);
    assert_eq!(
        stats
            .entities
            .values()
            .filter(|e| e.kind == EntityKind::Manifest)
            .count(),
        1
    );
}

#[tokio::test]
async fn delayed_publication_images_filtering_and_paging() {
    let api = Api::new(MapillaryConfig {
        publish_delay: Duration::from_millis(300),
        publish_after_lookups: 1,
        ..MapillaryConfig::default()
    })
    .await;
    let times: Vec<i64> = (0..5).map(|i| T0 + i * 2000).collect();
    api.publish(&times).await;
    let graph = api.fake.graph_url();
    let query = format!(
        "{graph}/images?creator_username=fake_user&start_captured_at={}&end_captured_at={}&bbox=-0.2,51.4,0.0,51.6&fields=id,sequence,captured_at&limit=2",
        iso(T0),
        iso(T0 + 8000)
    );

    // Lookup 1 is swallowed by publish_after_lookups; the delay then still holds.
    let (_, v) = api.graph_get(&query).await;
    assert_eq!(v["data"], json!([]));
    let (_, v) = api.graph_get(&query).await;
    assert_eq!(v["data"], json!([]));
    assert_eq!(api.fake.stats().pending_publications, 1);
    // Once the delay has passed (a snapshot publishes what is due).
    wait_until("the publication is due", || {
        api.fake.stats().pending_publications == 0
    })
    .await;

    // Follow paging: 2 + 2 + 1.
    let mut url = query.clone();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, v) = api.graph_get(&url).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        pages += 1;
        for item in v["data"].as_array().unwrap() {
            assert!(item["id"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit()));
            seen.push((
                item["captured_at"].as_i64().unwrap(),
                item["sequence"].clone(),
            ));
        }
        match v["paging"]["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), times);
    let seq_key = seen[0].1.as_str().unwrap().to_string();
    assert!(seen.iter().all(|s| s.1 == seq_key.as_str()));

    // Filters: time window, bbox, creator.
    let narrow = format!(
        "{graph}/images?start_captured_at={}&end_captured_at={}&fields=captured_at",
        iso(T0 + 1000),
        iso(T0 + 4000)
    );
    let (_, v) = api.graph_get(&narrow).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v.get("paging").is_none());
    let (_, v) = api
        .graph_get(&format!("{graph}/images?bbox=10,10,11,11"))
        .await;
    assert_eq!(v["data"], json!([]));
    let (_, v) = api
        .graph_get(&format!("{graph}/images?creator_username=someone_else"))
        .await;
    assert_eq!(v["data"], json!([]));
    let (status, v) = api.graph_get(&format!("{graph}/images?bbox=1,2,3")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], 100);

    let (_, v) = api
        .graph_get(&format!("{graph}/image_ids?sequence_id={seq_key}"))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 5);
    let first_id = v["data"][0]["id"].as_str().unwrap().to_string();
    let (_, v) = api
        .graph_get(&format!(
            "{graph}/{first_id}?fields=id,sequence,captured_at,geometry"
        ))
        .await;
    assert_eq!(v["sequence"], seq_key.as_str());
    assert_eq!(v["captured_at"], T0);
    assert_eq!(v["geometry"]["type"], "Point");
}

#[tokio::test]
async fn seeded_and_decoy_sequences_overlap() {
    let api = Api::new(MapillaryConfig {
        overlap_decoys: 2,
        extra_sequences: vec![ExtraSequence {
            start_ms: T0 - 5000,
            end_ms: T0 + 5000,
            bbox: [-0.2, 51.4, 0.0, 51.6],
            image_count: 3,
        }],
        ..MapillaryConfig::default()
    })
    .await;
    let stats = api.fake.stats();
    assert_eq!(stats.sequences.len(), 1);
    assert_eq!(stats.sequences[0].origin, SequenceOrigin::Seeded);

    api.publish(&[T0, T0 + 2000, T0 + 4000]).await;
    let url = format!(
        "{}/images?start_captured_at={}&end_captured_at={}&bbox=-0.2,51.4,0.0,51.6&fields=id,sequence,captured_at",
        api.fake.graph_url(),
        iso(T0 - 10_000),
        iso(T0 + 10_000)
    );
    let (_, v) = api.graph_get(&url).await;
    let mut sequences: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sequence"].as_str().unwrap())
        .collect();
    sequences.sort();
    sequences.dedup();
    assert_eq!(sequences.len(), 4, "seeded + upload + 2 decoys");

    let stats = api.fake.stats();
    let upload = stats.uploaded_sequences()[0].clone();
    let decoys: Vec<_> = stats
        .sequences
        .iter()
        .filter(|s| s.origin == SequenceOrigin::Decoy)
        .collect();
    assert_eq!(decoys.len(), 2);
    for d in decoys {
        for (a, b) in d.images.iter().zip(&upload.images) {
            assert_ne!(a.captured_at_ms, b.captured_at_ms);
        }
    }
}

#[tokio::test]
async fn fault_5xx_429_and_spurious_412() {
    let api = Api::new(MapillaryConfig {
        faults: MapillaryFaults {
            seed: Some(7),
            upload_5xx_ratio: 1.0,
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    let (status, v) = api.offset("k").await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(v["debug_info"]["retriable"], true);
    let (status, _) = api.post("k", 0, b"abc".to_vec()).await;
    assert!(status.is_server_error());
    assert_eq!(api.fake.stats().bytes_discarded, 3);

    // Graph reads fail only with graph_5xx_ratio.
    let me = format!("{}/me", api.fake.graph_url());
    assert_eq!(api.graph_get(&me).await.0, StatusCode::OK);
    api.fake.set_faults(MapillaryFaults {
        graph_5xx_ratio: 1.0,
        ..MapillaryFaults::default()
    });
    let (status, v) = api.graph_get(&me).await;
    assert!(status.is_server_error());
    assert_eq!(v["error"]["is_transient"], true);

    api.fake.set_faults(MapillaryFaults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 3,
        ..MapillaryFaults::default()
    });
    let r = api
        .http
        .get(format!("{}/k", api.fake.upload_url()))
        .header("Authorization", api.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["backoff"], 3000);
    assert_eq!(v["debug_info"]["type"], "RequestRateLimitedError");

    api.fake.set_faults(MapillaryFaults {
        offset_mismatch_ratio: 1.0,
        ..MapillaryFaults::default()
    });
    let (status, v) = api.post("k", 0, b"abc".to_vec()).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(v["debug_info"]["type"], "OffsetInvalidError");
    assert_eq!(api.offset("k").await.1["offset"], 0);

    // With a ratio of 0.5 and a seed, the same requests fail on every run.
    let pattern = |seed| async move {
        let api = Api::new(MapillaryConfig {
            faults: MapillaryFaults {
                seed: Some(seed),
                upload_5xx_ratio: 0.5,
                ..MapillaryFaults::default()
            },
            ..MapillaryConfig::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(api.offset("k").await.0.as_u16());
        }
        statuses
    };
    let a = pattern(42).await;
    assert_eq!(a, pattern(42).await);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500));
}

#[tokio::test]
async fn fault_reset_mid_body_keeps_bytes() {
    let api = Api::new(MapillaryConfig {
        faults: MapillaryFaults {
            reset: Some(ResetFault {
                after_bytes: 4000,
                every_nth_post: 1,
                ratio: 0.0,
            }),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    let img = fake_jpeg(T0, 51.5, -0.1, 10_000);
    let key = md5_key(&img);
    // Each POST gets 4000 more bytes in; the last one (2000 bytes) is dropped at its end, and
    // an empty POST at EOF completes the entity.
    let mut offset = 0u64;
    let mut attempts = 0;
    let handle = loop {
        attempts += 1;
        assert!(attempts < 10);
        let r = api
            .http
            .post(format!("{}/{key}", api.fake.upload_url()))
            .header("Authorization", api.auth())
            .header("Offset", offset.to_string())
            .header("X-Entity-Name", &key)
            .body(img[offset as usize..].to_vec())
            .send()
            .await;
        match r {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                let v: Value = r.json().await.unwrap();
                break v["h"].as_str().unwrap().to_string();
            }
            Err(_) => offset = api.offset(&key).await.1["offset"].as_u64().unwrap(),
        }
    };
    assert_eq!(attempts, 4);
    let stats = api.fake.stats();
    assert_eq!(stats.connections_reset, 3);
    assert_eq!(
        stats.entities[&key].handle.as_deref(),
        Some(handle.as_str())
    );
    assert_eq!(stats.entities[&key].bytes_received_total, 10_000);
    assert_eq!(stats.bytes_resent, 0);
}

#[tokio::test]
async fn fault_token_revoked_after_n_requests() {
    let cfg = MapillaryConfig {
        faults: MapillaryFaults {
            revoke_token_after: Some(2),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    };
    let api = Api::new(cfg.clone()).await;
    assert_eq!(api.offset("k").await.0, StatusCode::OK);
    assert_eq!(api.offset("k").await.0, StatusCode::OK);
    let (status, v) = api.offset("k").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["debug_info"]["type"], "NotAuthorizedError");
    let (status, v) = api.graph_get(&format!("{}/me", api.fake.graph_url())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], 190);

    // Refreshing yields a new token that keeps working.
    let v: Value = api
        .http
        .post(format!("{}/token", api.fake.graph_url()))
        .header("Authorization", format!("OAuth {}", cfg.client_secret))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": cfg.user_token, "client_id": cfg.client_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = v["access_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, cfg.user_token);
    for _ in 0..3 {
        let r = api
            .http
            .get(format!("{}/k", api.fake.upload_url()))
            .header("Authorization", format!("OAuth {fresh}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    api.fake.revoke_token(&fresh);
    let r = api
        .http
        .get(format!("{}/k", api.fake.upload_url()))
        .header("Authorization", format!("OAuth {fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fault_finish_upload_modes() {
    let api = Api::new(MapillaryConfig::default()).await;
    let handles = api.upload_images(&[T0]).await;
    let (_, m) = api.manifest(&handles).await;
    let manifest = m["h"].as_str().unwrap().to_string();

    api.fake.set_faults(MapillaryFaults {
        finish: FinishFault::Fail500,
        finish_fault_calls: Some(1),
        ..MapillaryFaults::default()
    });
    let (status, _) = api.finish(&manifest).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(api.fake.stats().sequences.is_empty());
    // Only the first call was faulty.
    let (status, _) = api.finish(&manifest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.fake.stats().finish_upload_calls[&manifest], 2);
    assert_eq!(api.fake.stats().uploaded_sequences().len(), 1);

    api.fake.set_faults(MapillaryFaults {
        finish: FinishFault::Fail500ButPublished,
        ..MapillaryFaults::default()
    });
    let (status, _) = api.finish(&manifest).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(api.fake.stats().uploaded_sequences().len(), 2);

    api.fake.set_faults(MapillaryFaults {
        finish: FinishFault::AcceptedNeverPublished,
        ..MapillaryFaults::default()
    });
    let (status, v) = api.finish(&manifest).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["cluster_id"].is_string());
    api.fake.publish_now();
    let stats = api.fake.stats();
    assert_eq!(stats.uploaded_sequences().len(), 2);
    assert_eq!(stats.pending_publications, 1);
}

#[tokio::test]
async fn fault_flapping_throttle_and_latency() {
    let api = Api::new(MapillaryConfig {
        faults: MapillaryFaults {
            flapping: Some(Flapping {
                healthy_ms: 0,
                failing_ms: 60_000,
            }),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    let (status, v) = api.offset("k").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["debug_info"]["retriable"], true);
    api.fake.set_faults(MapillaryFaults {
        flapping: Some(Flapping {
            healthy_ms: 60_000,
            failing_ms: 20,
        }),
        ..MapillaryFaults::default()
    });
    // The windows start at the first request after the fault is set, failing first.
    assert_eq!(api.offset("k").await.0, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(api.offset("k").await.0, StatusCode::OK);

    api.fake.set_faults(MapillaryFaults {
        throttle_bytes_per_sec: Some(1_000_000),
        latency_ms: 50,
        ..MapillaryFaults::default()
    });
    // Observed, not timed: the latency holds a counted request before its body is read, and the
    // throttle lets the body in gradually (a partial offset is seen), then it completes.
    let img = fake_jpeg(T0, 51.5, -0.1, 250_000);
    let key = md5_key(&img);
    let upload = api.upload(&key, img.clone());
    let watch = async {
        wait_until(
            "a POST counted while its body waits for the latency",
            || {
                let stats = api.fake.stats();
                stats.request_count("POST /upload/:key") == 1
                    && stats
                        .entities
                        .get(&key)
                        .is_none_or(|e| e.bytes_received_total == 0)
            },
        )
        .await;
        wait_until("part of the body taken in", || {
            api.fake
                .stats()
                .entities
                .get(&key)
                .is_some_and(|e| e.offset > 0 && e.offset < 250_000)
        })
        .await;
    };
    tokio::join!(upload, watch);
    let stats = api.fake.stats();
    assert_eq!(stats.entities[&key].offset, 250_000);
    assert_eq!(stats.entities[&key].kind, EntityKind::Image);
}

#[tokio::test]
async fn stats_endpoint_and_fallback() {
    let api = Api::new(MapillaryConfig::default()).await;
    let v: Value = api
        .http
        .get(format!("{}/__fake/stats", api.fake.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["entities"].is_object());
    let r = api
        .http
        .post(format!("{}/nope/nope", api.fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 100);
}

/// Minimal blocking HTTP/1.1 GET, for the synchronous test.
fn blocking_get(url: &str, auth: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[test]
fn runs_on_its_own_thread_for_sync_tests() {
    let cfg = MapillaryConfig::default();
    let fake = FakeMapillary::spawn_blocking_thread(cfg.clone()).unwrap();
    let (status, body) = blocking_get(
        &format!("{}/me?fields=id,username", fake.graph_url()),
        &format!("OAuth {}", cfg.user_token),
    );
    assert_eq!(status, 200);
    assert!(body.contains(&cfg.username));
    assert_eq!(fake.stats().request_count("GET /me"), 1);
    let url = fake.graph_url();
    fake.shutdown();
    assert!(std::net::TcpStream::connect(url.strip_prefix("http://").unwrap()).is_err());
}

#[test]
fn mtp_fakes_binary_prints_urls_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mtp-fakes"))
        .args([
            "serve",
            "--seed",
            "1",
            "--publish-delay-secs",
            "0.5",
            "--exit-on-stdin-eof",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let graph = v["mapillary"]["graph_url"].as_str().unwrap();
    assert!(v["mapillary"]["upload_url"]
        .as_str()
        .unwrap()
        .ends_with("/upload"));
    assert!(v["mapillary"]["authorize_url"]
        .as_str()
        .unwrap()
        .ends_with("/connect"));
    assert!(v["mtpw"]["auth_url"]
        .as_str()
        .unwrap()
        .ends_with("/accounts/authorize/"));
    let token = v["mapillary"]["user_token"].as_str().unwrap();
    let (status, _) = blocking_get(&format!("{graph}/me"), &format!("OAuth {token}"));
    assert_eq!(status, 200);
    let mtpw = v["mtpw"]["base_url"].as_str().unwrap();
    let (status, body) = blocking_get(&format!("{mtpw}/__fake/stats"), "none");
    assert_eq!(status, 200, "{body}");
    drop(child.stdin.take());
    let exit = child.wait().unwrap();
    assert!(exit.success());
}

#[test]
fn mtp_fakes_binary_with_panoramax_prints_its_env_key() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mtp-fakes"))
        .args(["serve", "--panoramax", "--exit-on-stdin-eof"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let url = v["panoramax"]["url"].as_str().unwrap();
    assert_eq!(v["env"]["PANORAMAX_URL"], url, "{line}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
