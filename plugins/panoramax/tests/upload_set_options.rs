//! What an upload set is created with (no server split or deduplication unless asked, visibility,
//! semantics from tags), what the instance would do, and how the token's refusal is told apart.

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_panoramax::Panoramax;
use plugin_api::http::Answer;
use plugin_api::prelude::*;
use plugin_api::serde_json::{json, Value};

mod common;
use common::{authorised, descriptor, generate, host, request};

fn with_options(sequence: &SequenceDescriptor, pairs: &[(&str, &str)]) -> RunRequest {
    let mut r = request(sequence, RunMode::Upload);
    for (k, v) in pairs {
        r.options.insert(k.to_string(), Value::from(*v));
    }
    r
}

fn creation(fake: &FakePanoramax) -> Value {
    let stats = fake.stats();
    assert_eq!(stats.upload_sets.len(), 1);
    stats.upload_sets.values().next().unwrap().creation.clone()
}

#[tokio::test]
async fn by_default_the_set_asks_for_one_collection_and_keeps_every_picture() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 3, 31);
    let mut sequence = descriptor("seq-d", &generated);
    sequence.tags = vec!["surface=asphalt".into(), "canal".into()];
    let host = authorised(&fake, "alice-token").await;
    Panoramax
        .run(&host.context(), request(&sequence, RunMode::Upload))
        .await
        .expect("the upload runs");
    let body = creation(&fake);
    assert_eq!(body["no_split"], true, "{body}");
    assert_eq!(body["no_deduplication"], true, "{body}");
    assert!(body.get("split_time").is_none() && body.get("visibility").is_none());
    assert_eq!(
        body["semantics"],
        json!([{"key": "surface", "value": "asphalt"}])
    );
    let plans: Vec<String> = host
        .progress_events()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Step { step, message } if step == "upload set" => message,
            _ => None,
        })
        .collect();
    assert_eq!(plans.len(), 1, "the plan is said once: {plans:?}");
    let plan = &plans[0];
    assert!(
        plan.contains("one collection (no split), every picture kept")
            && plan.contains("not used: split at 300 s / 100 m")
            && plan.contains("tags without key=value not sent: canal"),
        "{plan}"
    );
}

#[tokio::test]
async fn options_choose_the_instance_rules_or_the_users_own() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 32);
    let sequence = descriptor("seq-o", &generated);
    let host = authorised(&fake, "alice-token").await;
    let run = with_options(
        &sequence,
        &[
            ("split", "instance"),
            ("dedup", "0.5m,30deg"),
            ("visibility", "owner-only"),
        ],
    );
    Panoramax.run(&host.context(), run).await.unwrap();
    let body = creation(&fake);
    assert!(body.get("no_split").is_none() && body.get("split_time").is_none());
    assert!(body.get("no_deduplication").is_none());
    assert_eq!(body["duplicate_distance"], 0.5);
    assert_eq!(body["duplicate_rotation"], 30);
    assert_eq!(body["visibility"], "owner-only");
}

#[tokio::test]
async fn a_bad_option_is_refused_before_anything_is_created() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 33);
    let sequence = descriptor("seq-b", &generated);
    let host = authorised(&fake, "alice-token").await;
    let err = Panoramax
        .run(
            &host.context(),
            with_options(&sequence, &[("split", "5 minutes")]),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("panoramax.split"), "{}", err.message);
    assert_eq!(fake.stats().creations, 0);
}

#[tokio::test]
async fn a_dry_run_says_what_the_instance_would_do() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 34);
    let sequence = descriptor("seq-r", &generated);
    let host = authorised(&fake, "alice-token").await;
    let mut run = with_options(&sequence, &[("split", "instance"), ("dedup", "instance")]);
    run.dry_run = true;
    let outcome = Panoramax.run(&host.context(), run).await.unwrap();
    let message = outcome.message.unwrap_or_default();
    assert!(
        message.contains("split at the instance's 300 s / 100 m")
            && message.contains("within the instance's 1 m and 60°"),
        "{message}"
    );
    assert_eq!(fake.stats().creations, 0);
}

#[test]
fn inspect_notes_one_collection_and_every_picture_kept() {
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 35);
    let answer = Panoramax.eligibility(&descriptor("seq-i", &generated));
    assert!(answer.eligible);
    assert!(
        answer
            .notes
            .iter()
            .any(|n| n.contains("one collection, every picture kept")),
        "{:?}",
        answer.notes
    );
}

#[tokio::test]
async fn a_revoked_token_is_not_taken_for_another_accounts_set() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 36);
    let sequence = descriptor("seq-t", &generated);
    let host = authorised(&fake, "alice-token").await;
    fake.revoke_token("alice-token");
    let err = Panoramax
        .run(&host.context(), request(&sequence, RunMode::Upload))
        .await
        .expect_err("the token is gone");
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("no longer accepts the stored token")
            && err.message.contains("mtp auth panoramax")
            && !err.message.contains("another account"),
        "{}",
        err.message
    );
}

#[test]
fn the_two_409s_with_existing_item_are_told_apart_by_message() {
    let answer = |message: &str| Answer {
        status: 409,
        body: json!({"message": message, "status_code": 409, "existing_item": {"id": "p1"}})
            .to_string(),
        retry_after: None,
    };
    let same = mtp_panoramax::api::file_answer(
        "x",
        &answer("The item has already been added to this upload set"),
    )
    .unwrap();
    assert_eq!(
        same,
        mtp_panoramax::api::FileAnswer::Accepted {
            picture_id: Some("p1".into())
        }
    );
    let other = mtp_panoramax::api::file_answer(
        "x",
        &answer("A different picture with the same name has already been added to this uploadset"),
    )
    .unwrap();
    match other {
        mtp_panoramax::api::FileAnswer::Rejected(r) => assert_eq!(r.reason, "name_conflict"),
        accepted => panic!("a different picture is not ours: {accepted:?}"),
    }
}

#[tokio::test]
async fn an_instance_without_login_is_told_before_any_claim_page() {
    let fake = FakePanoramax::start(PanoramaxConfig {
        auth_enabled: false,
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let err = Panoramax
        .authorize(&host(&fake).context(), AuthRequest { token: None })
        .await
        .expect_err("no claim can come");
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("has no login") && err.message.contains("--token"),
        "{}",
        err.message
    );
    assert_eq!(fake.stats().generated_tokens, 0);
}

/// An account that has not accepted the instance's terms gets a 401 naming the page
/// (`geovisio/utils/auth.py`): mtp names the page instead of asking for a new login.
#[test]
fn a_401_for_terms_not_accepted_names_the_page_not_the_token() {
    let terms = Answer {
        status: 401,
        body: json!({
            "message": "You need to accept the terms of service before uploading any pictures. You can do \
                        so by validating them here: https://panoramax.example/tos-validation",
            "details": {"validation_page": "https://panoramax.example/tos-validation"},
            "status_code": 401
        })
        .to_string(),
        retry_after: None,
    };
    let err = mtp_panoramax::api::unexpected("upload of a.jpg", &terms);
    assert_ne!(err.kind, ErrorKind::Auth, "{err:?}");
    assert!(
        err.message
            .contains("https://panoramax.example/tos-validation")
            && err.message.contains("terms of service"),
        "{}",
        err.message
    );
    let bad_token = Answer {
        status: 401,
        body: json!({"message": "Authentication is mandatory"}).to_string(),
        retry_after: None,
    };
    assert_eq!(
        mtp_panoramax::api::unexpected("upload", &bad_token).kind,
        ErrorKind::Auth
    );
}
