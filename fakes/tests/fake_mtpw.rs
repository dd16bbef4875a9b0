//! Tests of the fake Map the Paths Web itself: consent page, auth, both API generations, the
//! error-as-200 shapes and every fault switch.

use std::io::{Read, Write};

use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig};
use mtp_fakes::fake_mtpw::{
    canonical_transport, CreatedBy, FakeMtpw, MapillaryCheck, MtpwApi, MtpwConfig, MtpwFaults,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const MLY_TOKEN: &str = "MLY|1|valid";

struct Api {
    http: Client,
    fake: FakeMtpw,
    token: String,
}

impl Api {
    async fn new(config: MtpwConfig) -> Api {
        let token = config.token.clone();
        Api {
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            fake: FakeMtpw::start(config).await.unwrap(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.fake.base_url())
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn put_import(&self, unique_id: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .put(self.url(&format!("sequence/import/{unique_id}/")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, name: &str, transport: &str) -> (StatusCode, Value) {
        self.form(
            "sequence/create/",
            &[
                ("name", name),
                ("transport_type", transport),
                ("description", "d"),
                ("tag", "a,b"),
                ("source", "mtpdu"),
            ],
        )
        .await
    }
}

fn config() -> MtpwConfig {
    MtpwConfig {
        mapillary_token: Some(MLY_TOKEN.to_string()),
        foreign_sequence_keys: vec!["someone_elses".to_string()],
        empty_sequence_keys: vec!["empty_one".to_string()],
        ..MtpwConfig::default()
    }
}

fn error_of(v: &Value) -> &str {
    assert_eq!(v["status"], false, "{v}");
    v["error"].as_str().unwrap()
}

#[tokio::test]
async fn implicit_grant_consent_page() {
    let api = Api::new(MtpwConfig {
        client_id: Some("app".to_string()),
        ..config()
    })
    .await;
    // The real server allows only the app.mtp.desktop scheme (trek-view/mtp-web config/settings/base.py)
    // and only a registered redirect_uri: a loopback listener can never receive the token.
    for refused in ["http://127.0.0.1:7777/mtpw", "app.mtp.desktop://elsewhere"] {
        let r = api
            .http
            .get(api.fake.auth_url())
            .query(&[
                ("client_id", "app"),
                ("response_type", "token"),
                ("redirect_uri", refused),
                ("state", "st"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{refused}");
        assert!(r.headers().get("location").is_none());
    }
    assert!(api.fake.auth_url().ends_with("/accounts/authorize/"));
    let r = api
        .http
        .get(api.fake.auth_url())
        .query(&[
            ("client_id", "app"),
            ("response_type", "token"),
            ("redirect_uri", "app.mtp.desktop://oauth"),
            ("state", "st"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with(&format!(
            "app.mtp.desktop://oauth#access_token={}&",
            api.token
        )),
        "{loc}"
    );
    assert!(loc.contains("expires_in=600000000"), "{loc}");
    assert!(loc.contains("token_type=Bearer"));
    assert!(loc.ends_with("state=st"));

    // No redirect_uri: the app's registered custom-scheme one.
    let r = api
        .http
        .get(format!(
            "{}?client_id=app&response_type=token",
            api.fake.auth_url()
        ))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("app.mtp.desktop://oauth#access_token="),
        "{loc}"
    );

    let r = api
        .http
        .get(format!(
            "{}?client_id=other&response_type=token",
            api.fake.auth_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let denied = Api::new(MtpwConfig {
        deny_consent: true,
        ..config()
    })
    .await;
    let r = denied
        .http
        .get(format!(
            "{}?client_id=x&response_type=token&state=s",
            denied.fake.auth_url()
        ))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.ends_with("#error=access_denied&state=s"), "{loc}");
}

#[tokio::test]
async fn unauthenticated_calls_get_403() {
    let api = Api::new(config()).await;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Token mtpw-fake-user-token"),
    ] {
        let mut req = api
            .http
            .post(api.url("sequence/create/"))
            .form(&[("name", "n")]);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v,
            json!({"detail": "Authentication credentials were not provided."})
        );
    }
    assert_eq!(api.fake.stats().create_calls, 0);
}

#[tokio::test]
async fn old_flow_verify_and_import() {
    let api = Api::new(MtpwConfig {
        api: MtpwApi::Old,
        ..config()
    })
    .await;
    let import = |key: &'static str, name: &'static str, transport: &'static str| {
        let api = &api;
        async move {
            api.form(
                "sequence/import",
                &[
                    ("sequence_key", key),
                    ("name", name),
                    ("description", "desc"),
                    ("transport_type", transport),
                    ("tag", "x,y"),
                ],
            )
            .await
        }
    };

    // Before verify, the server has no Mapillary token to look the key up with.
    let (status, v) = import("seq1", "Name", "Bicycle").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_of(&v), "Sequence is empty");

    let (_, v) = api
        .form("mapillary/token/verify", &[("mapillary_token", "bad")])
        .await;
    assert_eq!(error_of(&v), "Mapillary token is invalid");
    let (status, v) = api
        .form("mapillary/token/verify", &[("mapillary_token", MLY_TOKEN)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], true);
    assert_eq!(v["map_user_data"]["username"], "fake_user");

    assert_eq!(
        error_of(&import("", "Name", "Bicycle").await.1),
        "Sequence key is missing"
    );
    assert_eq!(
        error_of(&import("seq1", "", "Bicycle").await.1),
        "Sequence Name is missing"
    );
    assert_eq!(
        error_of(&import("seq1", "N", "Teleport").await.1),
        "Transport type is invalid"
    );
    assert_eq!(
        error_of(&import("empty_one", "N", "Walk").await.1),
        "Sequence is empty"
    );
    assert_eq!(
        error_of(&import("someone_elses", "N", "Walk").await.1),
        "You are not owner of this sequence"
    );

    let (_, v) = import("seq1", "Name", "bicycle").await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["message"], "Sequence successfully was imported.");
    let unique_id = v["unique_id"].as_str().unwrap().to_string();
    assert_eq!(unique_id.len(), 36);

    let (_, v) = import("seq1", "Renamed", "Earth").await;
    assert_eq!(v["message"], "Sequence successfully was updated.");
    assert_eq!(v["unique_id"], unique_id.as_str());

    let stats = api.fake.stats();
    assert_eq!(stats.sequences.len(), 1);
    let s = &stats.sequences[0];
    assert_eq!(s.name, "Renamed");
    assert_eq!(s.transport_type, "Earth");
    assert_eq!(s.tags, vec!["x", "y"]);
    assert_eq!(s.created_by, CreatedBy::OldImport);
    assert_eq!(s.imports, 2);
    assert_eq!(stats.verify_calls, 2);
    assert_eq!(stats.import_calls, 8);
    assert_eq!(stats.errors_as_200, 7);

    // The new generation is not spoken.
    let (status, _) = api.create("n", "Walk").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn new_flow_create_and_import() {
    let api = Api::new(MtpwConfig {
        api: MtpwApi::New,
        ..config()
    })
    .await;
    let (_, v) = api.create("Ride", "paraGLIDE").await;
    assert_eq!(v["status"], "success");
    let first = v["unique_id"].as_str().unwrap().to_string();
    // Not idempotent: a second call makes a second sequence.
    let (_, v) = api.create("Ride", "Paraglide").await;
    let second = v["unique_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    assert_eq!(
        error_of(&api.create("", "Walk").await.1),
        "Sequence Name is missing"
    );
    assert_eq!(
        error_of(&api.create("n", "Teleport").await.1),
        "Transport type is invalid"
    );
    let (_, v) = api.form("sequence/create/", &[("name", "n")]).await;
    assert_eq!(error_of(&v), "Transport type is missing");
    // A JSON body is not request.POST.
    let r = api
        .http
        .post(api.url("sequence/create/"))
        .bearer_auth(&api.token)
        .json(&json!({"name": "n", "transport_type": "Walk"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_of(&v), "Sequence Name is missing");
    // Multipart forms work.
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nMulti\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"transport_type\"\r\n\r\nWalk\r\n--{boundary}--\r\n"
    );
    let r = api
        .http
        .post(api.url("sequence/create/"))
        .bearer_auth(&api.token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "success", "{v}");

    let ok_body = json!({"mapillary_user_token": MLY_TOKEN, "mapillary_sequence_key": "seqA"});
    let (_, v) = api
        .put_import(
            &first,
            json!({"mapillary_user_token": "bad", "mapillary_sequence_key": "seqA"}),
        )
        .await;
    assert_eq!(error_of(&v), "Mapillary token is invalid");
    let (_, v) = api
        .put_import(
            &first,
            json!({"mapillary_user_token": null, "mapillary_sequence_key": "seqA"}),
        )
        .await;
    assert_eq!(
        error_of(&v),
        "Mapillary token is invalid",
        "a null token is checked"
    );
    let (status, v) = api
        .put_import(&first, json!({"mapillary_sequence_key": "seqA"}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a missing key is answered, not a 500"
    );
    assert_eq!(error_of(&v), "Mapillary token is missing");
    let (_, v) = api
        .put_import(&first, json!({"mapillary_user_token": MLY_TOKEN}))
        .await;
    assert_eq!(error_of(&v), "Sequence key is missing");
    let (_, v) = api
        .put_import(
            &first,
            json!({"mapillary_user_token": MLY_TOKEN, "mapillary_sequence_key": ""}),
        )
        .await;
    assert_eq!(error_of(&v), "Sequence is empty");
    let (_, v) = api
        .put_import(
            &first,
            json!({"mapillary_user_token": MLY_TOKEN, "mapillary_sequence_key": "empty_one"}),
        )
        .await;
    assert_eq!(error_of(&v), "Sequence is empty");
    let (_, v) = api
        .put_import(
            &first,
            json!({"mapillary_user_token": MLY_TOKEN, "mapillary_sequence_key": "someone_elses"}),
        )
        .await;
    assert_eq!(error_of(&v), "You are not owner of this sequence");
    // Uncaught DoesNotExist in the real view.
    let (status, _) = api
        .put_import("00000000-0000-4000-8000-000000000000", ok_body.clone())
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let (status, v) = api.put_import(&first, ok_body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "success");
    assert_eq!(v["unique_id"], first.as_str());
    assert!(v["message"].as_str().unwrap().contains("about 10 minutes"));
    // The same import again: the view deletes the row holding the key, its own, and re-inserts it
    // without its tags.
    let tags_before = api
        .fake
        .stats()
        .sequence_by_key("seqA")
        .unwrap()
        .tags
        .clone();
    assert_eq!(tags_before, vec!["a", "b"]);
    let (_, v) = api.put_import(&first, ok_body.clone()).await;
    assert_eq!(v["status"], "success");
    let again = api.fake.stats().sequence_by_key("seqA").unwrap().clone();
    assert_eq!(
        (again.unique_id.as_str(), again.rows_recreated),
        (first.as_str(), 1)
    );
    assert!(again.tags.is_empty(), "tags {tags_before:?} are gone");

    // Importing the same key into another record deletes the first record, like MTPW.
    let (_, v) = api.put_import(&second, ok_body).await;
    assert_eq!(v["status"], "success");
    let stats = api.fake.stats();
    assert_eq!(stats.create_calls, 7);
    assert!(stats.sequences.iter().all(|s| s.unique_id != first));
    let s = stats.sequence_by_key("seqA").unwrap();
    assert_eq!(s.unique_id, second);
    assert_eq!(s.transport_type, "Paraglide");
    assert_eq!(s.tags, vec!["a", "b"]);
    assert_eq!(s.source.as_deref(), Some("mtpdu"));
    assert!(s.is_published);

    // The old generation is not spoken.
    let (status, _) = api
        .form("mapillary/token/verify", &[("mapillary_token", MLY_TOKEN)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn parents_only_transport_types() {
    assert_eq!(canonical_transport("base jump", false), Some("BASE Jump"));
    assert_eq!(canonical_transport("base jump", true), None);
    assert_eq!(canonical_transport("LAND", true), Some("Land"));
    let api = Api::new(MtpwConfig {
        parents_only: true,
        ..config()
    })
    .await;
    assert_eq!(
        error_of(&api.create("n", "Paraglide").await.1),
        "Transport type is invalid"
    );
    assert_eq!(api.create("n", "air").await.1["status"], "success");
}

#[tokio::test]
async fn faults_error_as_200_5xx_drop_and_revoke() {
    let api = Api::new(MtpwConfig {
        faults: MtpwFaults {
            error_as_200_next: 2,
            ..MtpwFaults::default()
        },
        ..config()
    })
    .await;
    for _ in 0..2 {
        let (status, v) = api.create("n", "Walk").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(error_of(&v), "Temporary failure, please try again");
    }
    assert_eq!(api.create("n", "Walk").await.1["status"], "success");
    api.fake.inject_errors_as_200(1);
    assert_eq!(api.create("n", "Walk").await.1["status"], false);

    api.fake.set_faults(MtpwFaults {
        error_5xx_ratio: 1.0,
        ..MtpwFaults::default()
    });
    assert!(api.create("n", "Walk").await.0.is_server_error());

    api.fake.set_faults(MtpwFaults {
        drop_next: 1,
        ..MtpwFaults::default()
    });
    let r = api
        .http
        .post(api.url("sequence/create/"))
        .bearer_auth(&api.token)
        .form(&[("name", "n"), ("transport_type", "Walk")])
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(api.create("n", "Walk").await.1["status"], "success");
    assert_eq!(api.fake.stats().connections_dropped, 1);

    api.fake.set_faults(MtpwFaults {
        revoke_token_after: Some(1),
        ..MtpwFaults::default()
    });
    assert_eq!(api.create("n", "Walk").await.0, StatusCode::OK);
    assert_eq!(api.create("n", "Walk").await.0, StatusCode::FORBIDDEN);
    // Logging in again gives a new token.
    let r = api
        .http
        .get(format!(
            "{}?client_id=x&response_type=token",
            api.fake.auth_url()
        ))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap();
    let new_token = loc
        .split("access_token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_ne!(new_token, api.token);
    assert_eq!(new_token, api.fake.token());
    let stats = api.fake.stats();
    assert_eq!(stats.sequences.len(), 3);
    assert_eq!(stats.responses_by_status[&403], 1);
}

#[tokio::test]
async fn linked_to_fake_mapillary() {
    let mly_cfg = MapillaryConfig::default();
    let mapillary = FakeMapillary::start(mly_cfg.clone()).await.unwrap();
    let api = Api::new(MtpwConfig {
        mapillary: Some(mapillary.link()),
        ..MtpwConfig::default()
    })
    .await;
    let (_, v) = api
        .form(
            "mapillary/token/verify",
            &[("mapillary_token", &mly_cfg.user_token)],
        )
        .await;
    assert_eq!(v["status"], true);
    assert_eq!(v["map_user_data"]["key"], mly_cfg.user_id.as_str());
    let (_, v) = api.create("n", "Walk").await;
    let id = v["unique_id"].as_str().unwrap().to_string();
    // Unknown to the fake Mapillary: empty.
    let (_, v) = api
        .put_import(
            &id,
            json!({"mapillary_user_token": mly_cfg.user_token, "mapillary_sequence_key": "nope"}),
        )
        .await;
    assert_eq!(error_of(&v), "Sequence is empty");
    mapillary.revoke_token(&mly_cfg.user_token);
    let (_, v) = api
        .put_import(
            &id,
            json!({"mapillary_user_token": mly_cfg.user_token, "mapillary_sequence_key": "nope"}),
        )
        .await;
    assert_eq!(error_of(&v), "Mapillary token is invalid");
}

#[test]
fn runs_on_its_own_thread_for_sync_tests() {
    let fake = FakeMtpw::spawn_blocking_thread(config()).unwrap();
    let base = fake.base_url();
    let host = base.strip_prefix("http://").unwrap();
    let body = "name=n&transport_type=Walk";
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /api/v1/sequence/create/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        fake.token(),
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"status\":\"success\""));
    assert_eq!(fake.stats().create_calls, 1);
}

/// trek-view/mtp-web `api/views.py` `SequenceCreate`: the row is saved before the tag loop, so a tag the
/// database refuses (longer than `Tag.name`'s 50, `sys_setting/models.py`) is a 500 with the row kept; a
/// name longer than `Sequence.name`'s 100 (`sequence/models.py`) is a 500 with no row.
#[tokio::test]
async fn create_saves_the_row_before_the_tag_loop() {
    let api = Api::new(config()).await;
    let long_tag = "t".repeat(51);
    let tags = format!("canal,{long_tag},late");
    let (status, _) = api
        .form(
            "sequence/create/",
            &[
                ("name", "Canal"),
                ("transport_type", "Walk"),
                ("tag", &tags),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let stats = api.fake.stats();
    assert_eq!(stats.sequences.len(), 1, "the row exists despite the 500");
    assert_eq!(stats.sequences[0].tags, ["canal"]);

    let long_name = "n".repeat(101);
    let (status, _) = api
        .form(
            "sequence/create/",
            &[("name", &long_name), ("transport_type", "Walk")],
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        api.fake.stats().sequences.len(),
        1,
        "no row for a name too long"
    );

    // Capitals are saved lower-cased and then removed by the loop; an empty value is a tag named "".
    let (status, body) = api
        .form(
            "sequence/create/",
            &[
                ("name", "Tags"),
                ("transport_type", "Walk"),
                ("tag", "Canal,river"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _) = api
        .form(
            "sequence/create/",
            &[("name", "Empty"), ("transport_type", "Walk"), ("tag", "")],
        )
        .await;
    let stats = api.fake.stats();
    assert_eq!(stats.sequences[1].tags, ["river"]);
    assert_eq!(stats.sequences[2].tags, [""]);

    // Without the field, no tags at all; 100 characters are fine.
    let name = "n".repeat(100);
    let (status, _) = api
        .form(
            "sequence/create/",
            &[("name", &name), ("transport_type", "Walk")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.fake.stats().sequences[3].tags.is_empty());
}

/// trek-view/mtp-web `lib/mapillary.py` still calls Mapillary's retired v3 API: switched on, every import
/// says the token is invalid (or 500s when v3 does not answer at all).
#[tokio::test]
async fn retired_v3_mapillary_check_is_switchable() {
    let api = Api::new(MtpwConfig {
        mapillary_token: Some(MLY_TOKEN.into()),
        ..config()
    })
    .await;
    let (_, created) = api
        .form(
            "sequence/create/",
            &[("name", "S"), ("transport_type", "Walk")],
        )
        .await;
    let id = created["unique_id"].as_str().unwrap().to_string();
    let body = json!({"mapillary_user_token": MLY_TOKEN, "mapillary_sequence_key": "K1"});
    api.fake.set_mapillary_check(MapillaryCheck::V3Retired);
    let (status, answer) = api.put_import(&id, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"error": "Mapillary token is invalid", "status": false})
    );
    api.fake.set_mapillary_check(MapillaryCheck::V3Unreachable);
    let (status, _) = api.put_import(&id, body.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    api.fake.set_mapillary_check(MapillaryCheck::Works);
    let (status, answer) = api.put_import(&id, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "success", "{answer}");
}
