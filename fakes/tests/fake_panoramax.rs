//! The fake Panoramax answers as GeoVisio 2.15 does (sources cited in `fakes/src/fake_panoramax.rs`).

use std::time::Duration;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig, PanoramaxFaults};
use serde_json::{json, Value};

/// A real phone picture with GPS position and time, which geopic-tag-reader accepts (the corpus of
/// `tests/data/real`); the fake refuses what it would refuse.
const JPEG: &[u8] = include_bytes!("../../tests/data/real/HMD_Nokia_8.3_5G.jpg");
/// A JPEG without metadata: refused with `missing_fields`.
const BARE_JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xD9];

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn picture(&self, set: &str, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
        let mut body = format!("--B\r\nContent-Disposition: form-data; name=\"isBlurred\"\r\n\r\nfalse\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
        body.extend(bytes);
        body.extend(b"\r\n--B--\r\n");
        let response = self
            .http
            .post(format!("{}/api/upload_sets/{set}/files", self.base))
            .bearer_auth(token)
            .header("Content-Type", "multipart/form-data; boundary=B")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn setup() -> (FakePanoramax, Client) {
    let fake = FakePanoramax::start(PanoramaxConfig {
        processing: Duration::from_millis(1),
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let client = Client {
        base: fake.base_url(),
        http: reqwest::Client::new(),
    };
    (fake, client)
}

#[tokio::test]
async fn tokens_bearer_only_and_claims() {
    let (fake, c) = setup().await;
    let plain = c
        .http
        .get(format!("{}/api/users/me", c.base))
        .header("Authorization", "Token alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 401);
    assert_eq!(
        c.json(reqwest::Method::GET, "/api/users/me", "nope", None)
            .await
            .0,
        401
    );
    let (status, me) = c
        .json(reqwest::Method::GET, "/api/users/me", "alice-token", None)
        .await;
    assert_eq!((status, me["name"].clone()), (200, json!("alice")));
    let (_, generated) = c
        .json(reqwest::Method::POST, "/api/auth/tokens/generate", "", None)
        .await;
    let jwt = generated["jwt_token"].as_str().unwrap().to_string();
    assert_eq!(
        c.json(reqwest::Method::GET, "/api/users/me", &jwt, None)
            .await
            .0,
        403,
        "unclaimed"
    );
    let claim = generated["links"][0]["href"].as_str().unwrap();
    assert_eq!(fake.unclaimed_links(), vec![claim.to_string()]);
    assert!(reqwest::get(claim).await.unwrap().status().is_success());
    assert_eq!(
        c.json(reqwest::Method::GET, "/api/users/me", &jwt, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn upload_set_answers_and_completion() {
    let (fake, c) = setup().await;
    let bad = c
        .http
        .post(format!("{}/api/upload_sets", c.base))
        .bearer_auth("alice-token")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 415);
    let (status, set) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "t", "estimated_nb_files": 4})),
        )
        .await;
    assert_eq!(status, 200, "200, not 201");
    let id = set["id"].as_str().unwrap().to_string();
    assert_eq!(c.picture("nope", "alice-token", "a.jpg", JPEG).await.0, 404);
    assert_eq!(c.picture(&id, "bob-token", "a.jpg", JPEG).await.0, 403);
    // Not a JPEG by name, or not an image: 400, recorded as `invalid_file` (they count toward the 4).
    assert_eq!(c.picture(&id, "alice-token", "a.png", JPEG).await.0, 400);
    assert_eq!(
        c.picture(&id, "alice-token", "c.jpg", b"GIF89a").await.0,
        400
    );
    let (status, first) = c.picture(&id, "alice-token", "a.jpg", JPEG).await;
    assert_eq!(status, 202);
    let (status, again) = c.picture(&id, "alice-token", "a.jpg", JPEG).await;
    assert_eq!(status, 409);
    assert_eq!(again["existing_item"]["id"], first["picture_id"]);
    let (status, _) = c
        .picture(&id, "alice-token", "b.jpg", &[JPEG, &[0]].concat())
        .await;
    assert_eq!(status, 202);
    let (_, set) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{id}"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(set["completed"], true, "completed by the file count");
    let (_, files) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{id}/files"),
            "alice-token",
            None,
        )
        .await;
    let reasons: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rejected"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["invalid_file", "invalid_file"]);
    // Other bytes under a name that holds a picture: the second 409 with `existing_item`, told apart by
    // its message.
    let (status, renamed) = c
        .picture(&id, "alice-token", "a.jpg", &[JPEG, &[2]].concat())
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        renamed["message"],
        "A different picture with the same name has already been added to this uploadset"
    );
    assert_eq!(
        again["message"],
        "The item has already been added to this upload set"
    );

    // The same bytes in another set: 409 with the earlier set, recorded as rejected; the completion by the
    // file count dispatches the set even so (the completion trigger).
    let (_, other) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "u", "estimated_nb_files": 1})),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    let (status, dup) = c.picture(&other, "alice-token", "a.jpg", JPEG).await;
    assert_eq!(status, 409);
    assert_eq!(dup["upload_sets"][0]["upload_set_id"], json!(id));
    let (_, files) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{other}/files"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(files["files"][0]["rejected"]["reason"], "file_duplicate");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, dispatched) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{other}"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(
        (
            dispatched["completed"].clone(),
            dispatched["dispatched"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(dispatched["associated_collections"], json!([]));

    // Under the in-process worker's quirk the same set waits for an explicit `complete`.
    fake.set_faults(PanoramaxFaults {
        stall_all_refused: true,
        ..PanoramaxFaults::default()
    });
    let (_, other) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "v", "estimated_nb_files": 1})),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();
    assert_eq!(c.picture(&other, "alice-token", "a.jpg", JPEG).await.0, 409);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, stuck) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{other}"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(
        (stuck["completed"].clone(), stuck["ready"].clone()),
        (json!(true), json!(false))
    );
    let (status, _) = c
        .json(
            reqwest::Method::POST,
            &format!("/api/upload_sets/{other}/complete"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, done) = c
        .json(
            reqwest::Method::GET,
            &format!("/api/upload_sets/{other}"),
            "alice-token",
            None,
        )
        .await;
    assert_eq!(done["ready"], true);
    assert_eq!(fake.stats().stored_per_md5().len(), 2);
}

#[tokio::test]
async fn token_refusals_and_the_order_of_checks() {
    let (fake, c) = setup().await;
    let (_, set) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "t"})),
        )
        .await;
    let id = set["id"].as_str().unwrap().to_string();
    // The token is checked before the body's type: 401, not 415.
    let not_multipart = c
        .http
        .post(format!("{}/api/upload_sets/{id}/files", c.base))
        .bearer_auth("nope")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status().as_u16(), 401);
    // A deleted token: 403 "Token not valid", the reason in details.
    fake.revoke_token("alice-token");
    let (status, body) = c
        .json(reqwest::Method::GET, "/api/users/me", "alice-token", None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "Token not valid");
    assert_eq!(body["details"]["error"], "Token does not exist anymore");
}

#[tokio::test]
async fn configuration_and_creation_parameters() {
    let (fake, c) = setup().await;
    let (status, conf) = c
        .json(reqwest::Method::GET, "/api/configuration", "", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(conf["auth"]["enabled"], true);
    assert_eq!(conf["defaults"]["split_time"], 300.0);
    assert_eq!(conf["defaults"]["duplicate_rotation"], 60);
    let (status, _) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "t", "no_split": true, "split_time": 60})),
        )
        .await;
    assert_eq!(status, 400, "no_split with split values");
    let (status, set) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "t", "no_split": true, "no_deduplication": true})),
        )
        .await;
    assert_eq!(status, 200);
    let held = &fake.stats().upload_sets[set["id"].as_str().unwrap()];
    assert_eq!(held.creation["no_deduplication"], true);
}

/// geopic-tag-reader's acceptance rules: a JPEG without position or date is refused with
/// `missing_fields`, per file (`crate::panoramax_reader`).
#[tokio::test]
async fn a_picture_without_metadata_is_refused_with_missing_fields() {
    let (_fake, c) = setup().await;
    let (_, set) = c
        .json(
            reqwest::Method::POST,
            "/api/upload_sets",
            "alice-token",
            Some(json!({"title": "t", "estimated_nb_files": 2})),
        )
        .await;
    let id = set["id"].as_str().unwrap().to_string();
    let (status, bare) = c.picture(&id, "alice-token", "bare.jpg", BARE_JPEG).await;
    assert_eq!(status, 400, "{bare}");
    assert_eq!(
        bare["details"]["missing_fields"],
        json!(["datetime", "location"]),
        "{bare}"
    );
    assert_eq!(c.picture(&id, "alice-token", "a.jpg", JPEG).await.0, 202);
}
