//! The MTPW integration against the fake MTPW taught the real server's rules (trek-view/mtp-web; see the
//! fake's module docs for each rule's source): no second create after an answer that may hide one, fields
//! checked before any request, a verified login, the retired-v3 Mapillary check, part names, and reuse of
//! an MTPW sequence MTPDU created.

use mtp_fakes::fake_mtpw::{MapillaryCheck, MtpwFaults};
use mtp_mtpw::Mtpw;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

mod common;

use common::{creates, host, later_api_fake};

fn request(keys: &str, tags: &[&str]) -> RunRequest {
    common::after_mapillary(common::canal_walk("Walk", tags), Some(keys))
}

#[tokio::test]
async fn a_create_answered_with_a_5xx_is_never_sent_again_blindly() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    let ctx = host.context();
    fake.set_faults(MtpwFaults {
        seed: Some(1),
        error_5xx_ratio: 1.0,
        ..MtpwFaults::default()
    });
    let unknown = Mtpw::default().run(&ctx, request("K1", &[])).await.unwrap();
    assert_eq!(unknown.state, SequenceState::Unknown, "{unknown:?}");
    let message = unknown.message.clone().unwrap();
    assert!(message.contains("HTTP 5"), "{message}");
    assert!(message.contains("not created again blindly"), "{message}");
    assert!(unknown
        .next_action
        .as_deref()
        .unwrap()
        .contains("--republish"));
    assert_eq!(creates(&fake), 1, "one create, not retried");

    // Neither a plain re-run nor a re-check repeats it, even with the server healthy again.
    fake.set_faults(MtpwFaults::default());
    let again = Mtpw::default().run(&ctx, request("K1", &[])).await.unwrap();
    assert_eq!(again.state, SequenceState::Unknown);
    let mut recheck = request("K1", &[]);
    recheck.mode = RunMode::Recheck;
    assert_eq!(
        Mtpw::default().run(&ctx, recheck).await.unwrap().state,
        SequenceState::Unknown
    );
    assert_eq!(creates(&fake), 1);

    // The user looked on MTPW, found nothing, and asks for it.
    let mut republish = request("K1", &[]);
    republish
        .options
        .insert("republish".into(), serde_json::Value::Bool(true));
    let done = Mtpw::default().run(&ctx, republish).await.unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(creates(&fake), 2);
    assert_eq!(fake.stats().sequences.len(), 1);
}

#[tokio::test]
async fn what_the_server_would_refuse_is_refused_before_any_request() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    let long = "a".repeat(51);
    let mut bad = request("K1", &[&long, "two words"]);
    bad.sequence.name = "n".repeat(101);
    let needs = Mtpw::default().eligibility(&bad.sequence).needs;
    assert_eq!(needs.len(), 3, "{needs:?}");
    assert!(
        needs[0].contains("101 characters") && needs[0].contains("--name"),
        "{needs:?}"
    );
    assert!(
        needs[1].contains("at most 50") && needs[1].contains("--tag"),
        "{needs:?}"
    );
    assert!(needs[2].contains("two-words"), "{needs:?}");
    let err = Mtpw::default().run(&host.context(), bad).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        fake.stats().requests.is_empty(),
        "{:?}",
        fake.stats().requests
    );

    let mut no_transport = request("K1", &[]);
    no_transport.sequence.transport = None;
    let needs = Mtpw::default().eligibility(&no_transport.sequence).needs;
    assert!(needs[0].contains("pass --transport"), "{needs:?}");

    // No tags: no `tag` field (an empty one would attach a tag named ""); capitals sent lower-cased,
    // because the server would drop them.
    let done = Mtpw::default()
        .run(&host.context(), request("K1", &[]))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let mut tagged = request("K2", &["Canal", "morning"]);
    tagged.sequence.id = "seq-2".into();
    Mtpw::default().run(&host.context(), tagged).await.unwrap();
    let stats = fake.stats();
    assert!(stats.sequence_by_key("K1").unwrap().tags.is_empty());
    assert_eq!(
        stats.sequence_by_key("K2").unwrap().tags,
        ["canal", "morning"]
    );
}

#[tokio::test]
async fn each_part_gets_its_own_name() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    let done = Mtpw::default()
        .run(&host.context(), request("K1,K2,K3", &[]))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let stats = fake.stats();
    let names: Vec<&str> = ["K1", "K2", "K3"]
        .iter()
        .map(|k| stats.sequence_by_key(k).unwrap().name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Canal walk Part 1",
            "Canal walk Part 2",
            "Canal walk Part 3"
        ]
    );

    let mut mtpdu_part = request("K9", &[]);
    mtpdu_part.sequence.id = "seq-9".into();
    mtpdu_part.sequence.name = "Canal walk_part_2".into();
    Mtpw::default()
        .run(&host.context(), mtpdu_part)
        .await
        .unwrap();
    assert_eq!(
        fake.stats().sequence_by_key("K9").unwrap().name,
        "Canal walk Part 2"
    );
}

#[tokio::test]
async fn the_retired_v3_check_keeps_the_record_waiting_with_the_true_reason() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    let ctx = host.context();
    fake.set_mapillary_check(MapillaryCheck::V3Retired);
    let waiting = Mtpw::default().run(&ctx, request("K1", &[])).await.unwrap();
    assert_eq!(waiting.state, SequenceState::Waiting, "{waiting:?}");
    let message = waiting.message.clone().unwrap();
    assert!(
        message.contains("the MTPW server could not check the Mapillary token with Mapillary"),
        "{message}"
    );
    assert!(!message.contains("mtp auth mapillary"), "{message}");
    assert!(waiting.keys.contains_key("unique_id"), "{waiting:?}");
    assert!(SequenceState::Waiting.needs_recheck());

    // Once the server's check works again, the same MTPW sequence is imported; nothing is created twice.
    fake.set_mapillary_check(MapillaryCheck::Works);
    let done = Mtpw::default().run(&ctx, request("K1", &[])).await.unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(done.keys["unique_id"], waiting.keys["unique_id"]);
    assert_eq!(creates(&fake), 1);
}

#[tokio::test]
async fn an_mtpw_sequence_mtpdu_created_is_reused() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    // What MTPDU's postSequenceAPI did before it stopped: a create, its unique_id in destination.mtp.
    let http = plugin_api::http::reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/sequence/create/", fake.base_url()))
        .bearer_auth(fake.token())
        .form(&[
            ("name", "Canal walk"),
            ("transport_type", "Walk"),
            ("source", "mtpdu"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unique_id = created["unique_id"].as_str().unwrap().to_string();
    let mut run = request("K1", &[]);
    run.options.insert(
        "prior_uploads".into(),
        serde_json::json!({"mtpw": {"published": false, "id": unique_id, "what": "..."}}),
    );
    let done = Mtpw::default().run(&host.context(), run).await.unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(done.keys["unique_id"], unique_id);
    assert!(done
        .message
        .unwrap()
        .contains("MTP Desktop Uploader had created"));
    assert_eq!(creates(&fake), 1, "only MTPDU's create");
    assert_eq!(
        fake.stats().sequence_by_key("K1").unwrap().unique_id,
        unique_id
    );
}

#[tokio::test]
async fn login_verifies_the_token_and_says_when_it_cannot() {
    let fake = later_api_fake().await;
    let env = |host: TestHost, url: &str| {
        host.with_env("MTP_WEB_URL", url)
            .with_env("MTP_WEB_AUTH_URL", &fake.auth_url())
            .with_env("MTP_WEB_APP_ID", "app")
            .with_env("MTP_WEB_APP_SECRET", "secret")
    };
    let host = env(TestHost::new(), &fake.base_url());
    let ctx = host.context();
    let err = Mtpw::default()
        .authorize(
            &ctx,
            AuthRequest {
                token: Some("ANYTHING".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("does not accept this token"),
        "{}",
        err.message
    );
    assert_eq!(host.secret("token"), None);
    assert_eq!(fake.stats().sequences.len(), 0, "the probe creates nothing");

    let ok = Mtpw::default()
        .authorize(
            &ctx,
            AuthRequest {
                token: Some(fake.token()),
            },
        )
        .await
        .unwrap();
    assert!(
        ok.account
            .contains("token verified with MTPW; expiry unknown"),
        "{}",
        ok.account
    );
    assert_eq!(fake.stats().sequences.len(), 0);

    // An unreachable server: stored, and said plainly.
    let host = env(TestHost::new(), "http://127.0.0.1:9");
    let stored = Mtpw::default()
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some("tok".into()),
            },
        )
        .await
        .unwrap();
    assert!(
        stored.account.contains("NOT verified"),
        "{}",
        stored.account
    );
    let status = Mtpw::default().auth_status(&host.context()).await.unwrap();
    assert!(status.detail.unwrap().contains("NOT verified"));
}

#[tokio::test]
async fn while_imports_fail_no_further_mtpw_sequence_is_created_unless_asked() {
    let fake = later_api_fake().await;
    let host = host(&fake);
    let ctx = host.context();
    fake.set_mapillary_check(MapillaryCheck::V3Retired);
    // Two Mapillary parts: the first one's import shows the server cannot import; the second is not
    // created (it would stay empty).
    let waiting = Mtpw::default()
        .run(&ctx, request("K1,K2", &[]))
        .await
        .unwrap();
    assert_eq!(waiting.state, SequenceState::Waiting, "{waiting:?}");
    assert_eq!(creates(&fake), 1, "one MTPW sequence, not one per part");
    // Another sequence on the same server: nothing created either, and it says why.
    let mut other = request("K3", &[]);
    other.sequence.id = "seq-2".into();
    let held = Mtpw::default().run(&ctx, other.clone()).await.unwrap();
    assert_eq!(held.state, SequenceState::Waiting);
    let message = held.message.clone().unwrap();
    assert!(message.contains("no MTPW sequence created"), "{message}");
    assert!(held.next_action.unwrap().contains("mtpw.create=true"));
    assert_eq!(creates(&fake), 1);
    // At the user's word it is created.
    other.options.insert("create".into(), true.into());
    Mtpw::default().run(&ctx, other.clone()).await.unwrap();
    assert_eq!(creates(&fake), 2);
    // Once an import works, creating resumes by itself.
    fake.set_mapillary_check(MapillaryCheck::Works);
    let done = Mtpw::default()
        .run(&ctx, request("K1,K2", &[]))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(creates(&fake), 3);
}
