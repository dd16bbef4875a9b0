//! The MTPW integration in-process against the fake MTPW: both API generations, waiting for Mapillary,
//! idempotence, the transport fallback, and each error shape.

use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwApi, MtpwConfig, MtpwFaults};
use mtp_mtpw::Mtpw;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

mod common;

use common::{host, MAPILLARY_TOKEN};

async fn fake(api: MtpwApi, parents_only: bool) -> FakeMtpw {
    FakeMtpw::start(MtpwConfig {
        api,
        parents_only,
        mapillary_token: Some(MAPILLARY_TOKEN.into()),
        ..MtpwConfig::default()
    })
    .await
    .unwrap()
}

fn request(key: Option<&str>, transport: &str) -> RunRequest {
    common::after_mapillary(common::canal_walk(transport, &["canal", "morning"]), key)
}

#[tokio::test]
async fn waits_for_mapillary_then_imports_once_with_the_old_api() {
    let fake = fake(MtpwApi::Old, false).await;
    let host = host(&fake);
    let ctx = host.context();
    let waiting = Mtpw::default()
        .run(&ctx, request(None, "Walk"))
        .await
        .unwrap();
    assert_eq!(waiting.state, SequenceState::Waiting);
    assert_eq!(fake.stats().import_calls, 0);

    let done = Mtpw::default()
        .run(&ctx, request(Some("KEY1"), "Walk"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let unique_id = done.keys["unique_id"].clone();
    assert_eq!(done.links.len(), 1, "{done:?}");
    assert!(
        done.links[0]
            .url
            .ends_with(&format!("/sequence/{unique_id}/detail")),
        "the sequence's page on the site: {:?}",
        done.links
    );
    let stats = fake.stats();
    let stored = stats.sequence_by_key("KEY1").unwrap();
    assert_eq!(stored.unique_id, unique_id);
    assert_eq!(stored.name, "Canal walk");
    assert_eq!(stored.description, "Along the canal");
    assert_eq!(stored.transport_type, "Walk");
    assert_eq!(stored.tags, ["canal", "morning"]);

    // A re-run updates, never duplicates.
    let again = Mtpw::default()
        .run(&ctx, request(Some("KEY1"), "Walk"))
        .await
        .unwrap();
    assert_eq!(again.keys["unique_id"], unique_id);
    assert_eq!(fake.stats().sequences.len(), 1);
    assert_eq!(done.keys["api"], "token-verify+import");
}

#[tokio::test]
async fn creates_then_imports_once_with_the_new_api_even_after_a_crash_between() {
    let fake = fake(MtpwApi::New, false).await;
    let host = host(&fake);
    let ctx = host.context();
    // A run that died after create (unique_id stored) but before import.
    ctx.state()
        .put(
            "seq/seq-1/KEY2",
            r#"{"unique_id":null,"create_sent":false,"imported":false}"#,
        )
        .unwrap();
    let done = Mtpw::default()
        .run(&ctx, request(Some("KEY2"), "Bicycle"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(done.keys["api"], "create+import");
    let stats = fake.stats();
    assert_eq!(stats.create_calls, 1);
    let unique_id = done.keys["unique_id"].clone();
    assert_eq!(stats.sequence_by_key("KEY2").unwrap().unique_id, unique_id);

    // Simulate kill -9 between create and import: unique_id stored, import not done.
    ctx.state()
        .put(
            "seq/seq-1/KEY2",
            &format!(r#"{{"unique_id":"{unique_id}","create_sent":true,"imported":false}}"#),
        )
        .unwrap();
    let resumed = Mtpw::default()
        .run(&ctx, request(Some("KEY2"), "Bicycle"))
        .await
        .unwrap();
    assert_eq!(resumed.keys["unique_id"], unique_id);
    assert_eq!(fake.stats().create_calls, 1, "no second sequence on MTPW");
    assert_eq!(fake.stats().sequences.len(), 1);
}

#[tokio::test]
async fn a_refused_child_transport_falls_back_to_its_parent() {
    let fake = fake(MtpwApi::Old, true).await;
    let host = host(&fake);
    let done = Mtpw::default()
        .run(&host.context(), request(Some("KEY3"), "Air/Paraglide"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published);
    assert!(
        done.message
            .as_deref()
            .unwrap()
            .contains("sent its parent Air"),
        "{done:?}"
    );
    assert_eq!(
        fake.stats().sequence_by_key("KEY3").unwrap().transport_type,
        "Air"
    );
}

#[tokio::test]
async fn errors_as_200_revoked_tokens_and_flaky_servers() {
    let fake = fake(MtpwApi::Old, false).await;
    let host = host(&fake);
    let ctx = host.context();

    fake.inject_errors_as_200(1);
    let err = Mtpw::default()
        .run(&ctx, request(Some("KEY4"), "Walk"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err:?}");

    fake.set_faults(MtpwFaults {
        seed: Some(7),
        error_5xx_ratio: 0.5,
        ..MtpwFaults::default()
    });
    let done = Mtpw::default()
        .run(&ctx, request(Some("KEY4"), "Walk"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published);
    fake.set_faults(MtpwFaults::default());

    fake.revoke_token();
    let err = Mtpw::default()
        .run(&ctx, request(Some("KEY4"), "Walk"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("mtp auth mtpw"), "{}", err.message);
    assert_eq!(fake.stats().sequences.len(), 1);
    // `mtp auth status` no longer calls the refused token authorised (a new login replaces the
    // record, see auth::store).
    let status = Mtpw::default().auth_status(&ctx).await.unwrap();
    let detail = status.detail.unwrap_or_default();
    assert!(!status.authorised, "{detail}");
    assert!(
        detail.contains("MTPW refused the token") && detail.contains("mtp auth mtpw"),
        "{detail}"
    );
}

#[tokio::test]
async fn login_refuses_a_state_mismatch_and_accepts_a_given_token() {
    let fake = fake(MtpwApi::Old, false).await;
    let host = TestHost::new()
        .with_env("MTP_WEB_URL", &fake.base_url())
        .with_env("MTP_WEB_AUTH_URL", &fake.auth_url())
        .with_env("MTP_WEB_APP_ID", "app")
        .with_env("MTP_WEB_APP_SECRET", "secret")
        .with_redirect("app.mtp.desktop://app#access_token=stolen&state=not-ours");
    let ctx = host.context();
    let err = Mtpw::default()
        .authorize(&ctx, AuthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("state"), "{}", err.message);
    assert_eq!(host.secret("token"), None);

    Mtpw::default()
        .authorize(
            &ctx,
            AuthRequest {
                token: Some(fake.token()),
            },
        )
        .await
        .unwrap();
    assert_eq!(host.secret("token"), Some(fake.token()));
    assert!(Mtpw::default().auth_status(&ctx).await.unwrap().authorised);
}

#[tokio::test]
async fn an_import_repeated_after_a_lost_answer_names_the_tags_mtpw_drops() {
    let fake = fake(MtpwApi::New, false).await;
    let host = host(&fake);
    let ctx = host.context();
    fake.set_faults(MtpwFaults {
        lose_import_answers: 1,
        ..MtpwFaults::default()
    });
    let done = Mtpw::default()
        .run(&ctx, request(Some("KEY7"), "Walk"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let stats = fake.stats();
    assert_eq!(stats.import_calls, 2, "the lost one, then the repeat");
    let stored = stats.sequence_by_key("KEY7").unwrap();
    assert_eq!(stored.rows_recreated, 1, "the real view's quirk fired");
    assert!(stored.tags.is_empty());
    // The user is told, in the record and as a warning, which tags to add again.
    let message = done.message.unwrap_or_default();
    assert!(
        message.contains("dropped the sequence's tags (canal,morning)"),
        "{message}"
    );
    assert!(host
        .logs()
        .iter()
        .any(|(level, m)| *level == plugin_api::protocol::LogLevel::Warn
            && m.contains("add them again on the site")));
}

#[tokio::test]
async fn without_tags_a_lost_import_answer_is_simply_repeated() {
    let fake = fake(MtpwApi::New, false).await;
    let host = host(&fake);
    let ctx = host.context();
    fake.set_faults(MtpwFaults {
        lose_import_answers: 1,
        ..MtpwFaults::default()
    });
    let mut untagged = request(Some("KEY8"), "Walk");
    untagged.sequence.tags.clear();
    let done = Mtpw::default().run(&ctx, untagged).await.unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let stats = fake.stats();
    assert_eq!(stats.import_calls, 2, "repeated at once: nothing to lose");
    assert_eq!(stats.sequences.len(), 1);
}
