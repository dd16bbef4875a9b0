//! The provider in-process against the fake Street View: login, upload, exactly once after a lost
//! answer, the daily quota, eligibility and Google's errors.

mod common;

use std::time::Duration;

use common::{quick, walk, Setup};
use mtp_fakes::fake_streetview::{StreetViewConfig, StreetViewFaults};
use mtp_streetview::state::{PhotoRecord, SequenceStore};
use mtp_streetview::tokens;
use plugin_api::prelude::*;

#[tokio::test]
async fn login_uses_pkce_and_stores_a_refresh_token() {
    let setup = Setup::authorised(quick(), &[]).await;
    let status = mtp_streetview::StreetView
        .auth_status(&setup.host.context())
        .await
        .unwrap();
    assert!(status.authorised);
    assert!(
        status.detail.unwrap().contains("access token valid until"),
        "the detail says how long the token lasts"
    );
    let stored = tokens::load(&setup.host.context()).unwrap().unwrap();
    assert!(stored.refresh_token.starts_with("1//"));
    // The fake checked the verifier against the challenge: one grant, no refusal.
    assert_eq!(setup.fake.stats().token_grants, 1);
}

#[tokio::test]
async fn a_refused_consent_is_explained_and_stores_nothing() {
    let setup = Setup::start(
        StreetViewConfig {
            faults: StreetViewFaults {
                deny_consent: true,
                ..Default::default()
            },
            ..quick()
        },
        &[],
    )
    .await;
    let err = mtp_streetview::StreetView
        .authorize(&setup.host.context(), AuthRequest { token: None })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("access_denied"), "{err}");
    assert!(tokens::load(&setup.host.context()).unwrap().is_none());
}

#[tokio::test]
async fn photos_are_published_once_and_connected_and_a_rerun_asks_nothing() {
    let setup = Setup::authorised(quick(), &[]).await;
    let sequence = setup.walk("s1", 5);
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert!(outcome
        .message
        .as_deref()
        .unwrap()
        .contains("5 photos, connected"));
    let stats = setup.fake.stats();
    assert_eq!(stats.photos.len(), 5);
    assert_eq!(setup.creates(), 5);
    // Each photo links to its neighbours, in sequence order.
    let mut photos: Vec<_> = stats.photos.values().collect();
    photos.sort_by(|a, b| a.capture_time.cmp(&b.capture_time));
    assert_eq!(photos[0].connections, [photos[1].id.clone()]);
    assert_eq!(
        photos[2].connections,
        [photos[1].id.clone(), photos[3].id.clone()]
    );
    assert_eq!(photos[0].capture_time, "2020-05-10T06:45:03Z");
    assert_eq!(outcome.keys.len(), 5);
    assert!(outcome.keys["photo/0000.jpg"].contains(&photos[0].id));

    let before = setup.fake.stats().requests.len();
    let again = setup.run(&sequence).await.unwrap();
    assert_eq!(again.state, SequenceState::Published);
    assert_eq!(
        setup.fake.stats().requests.len(),
        before,
        "a published sequence asks Google nothing"
    );
}

#[tokio::test]
async fn publication_is_polled_until_google_decides() {
    let setup = Setup::authorised(
        StreetViewConfig {
            review: Duration::from_millis(400),
            ..quick()
        },
        &[],
    )
    .await;
    let sequence = setup.walk("s1", 3);
    let first = setup.run(&sequence).await.unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");
    assert!(first
        .message
        .unwrap()
        .contains("0 published on Maps so far"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let creates = setup.creates();
    let later = setup.run_in(&sequence, RunMode::Recheck).await.unwrap();
    assert_eq!(later.state, SequenceState::Published, "{later:?}");
    assert_eq!(setup.creates(), creates, "a re-check creates nothing");
}

#[tokio::test]
async fn a_lost_create_answer_is_found_in_the_photo_list_not_created_again() {
    let setup = Setup::authorised(
        StreetViewConfig {
            faults: StreetViewFaults {
                lose_create_answers: 1,
                ..Default::default()
            },
            ..quick()
        },
        &[],
    )
    .await;
    let sequence = setup.walk("s1", 3);
    let err = setup.run(&sequence).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(setup.creates(), 1);
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.fake.stats().photos.len(), 3, "no photo twice");
    assert_eq!(setup.creates(), 3);
    let logs: Vec<String> = setup
        .host
        .inner
        .logs()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert!(logs.iter().any(|l| l.contains("adopted photo")), "{logs:?}");
}

#[tokio::test]
async fn a_lost_create_answer_not_listed_yet_is_left_alone() {
    let setup = Setup::authorised(
        StreetViewConfig {
            // Indexing takes longer than the test: the new photo is not listed.
            indexing: Duration::from_secs(600),
            faults: StreetViewFaults {
                lose_create_answers: 1,
                ..Default::default()
            },
            ..quick()
        },
        &[],
    )
    .await;
    let sequence = setup.walk("s1", 2);
    setup.run(&sequence).await.unwrap_err();
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Uploading, "{outcome:?}");
    assert!(
        outcome
            .message
            .unwrap()
            .contains("not listed by Google yet"),
        "the user is told why"
    );
    assert_eq!(
        setup.fake.stats().photos.len(),
        2,
        "the unanswered photo is not created again"
    );
    assert_eq!(setup.fake.stats().count("GET /v1/photos"), 1);
}

#[tokio::test]
async fn the_daily_quota_stops_cleanly_and_the_next_day_goes_on() {
    // Two-second quota days: 3 requests a photo, so a quota of 8 takes two photos a day.
    let day_ms = 2000;
    let setup = Setup::authorised(
        quick(),
        &[
            ("GOOGLE_STREETVIEW_DAILY_QUOTA", "8"),
            ("GOOGLE_STREETVIEW_QUOTA_DAY_MS", &day_ms.to_string()),
        ],
    )
    .await;
    let sequence = setup.walk("s1", 5);
    let mut days = 0;
    let outcome = loop {
        let outcome = setup.run(&sequence).await.unwrap();
        if outcome.state != SequenceState::Uploading {
            break outcome;
        }
        days += 1;
        let message = outcome.message.clone().unwrap();
        assert!(message.contains("can go on after"), "{message}");
        assert!(outcome
            .next_action
            .unwrap()
            .contains("run mtp upload again after"));
        // Again the same day: nothing is sent.
        let before = setup.fake.stats().requests.len();
        let same_day = setup.run(&sequence).await.unwrap();
        if same_day.state == SequenceState::Uploading {
            assert_eq!(setup.fake.stats().requests.len(), before, "{same_day:?}");
        }
        tokio::time::sleep(Duration::from_millis(day_ms)).await;
        assert!(days < 6, "the sequence should be done in three days");
    };
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert!(days >= 2, "the quota stopped the run on {days} days");
    assert_eq!(setup.creates(), 5, "each photo created once");
    assert_eq!(setup.fake.stats().photos.len(), 5);
}

#[tokio::test]
async fn google_s_resource_exhausted_stops_for_the_day() {
    let setup = Setup::authorised(
        StreetViewConfig {
            daily_quota: 4,
            ..quick()
        },
        &[],
    )
    .await;
    let sequence = setup.walk("s1", 3);
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Uploading, "{outcome:?}");
    let message = outcome.message.unwrap();
    assert!(message.contains("RESOURCE_EXHAUSTED"), "{message}");
    assert!(message.contains("1 of 3 photos"), "{message}");
    let before = setup.fake.stats().requests.len();
    setup.run(&sequence).await.unwrap();
    assert_eq!(
        setup.fake.stats().requests.len(),
        before,
        "after Google said so, nothing more is sent that day"
    );
}

#[tokio::test]
async fn a_create_refused_for_the_quota_is_sent_the_next_day_without_a_lookup() {
    // Google's quota (5) runs out on the second photo's create; both sides count two-second days.
    let setup = Setup::authorised(
        StreetViewConfig {
            daily_quota: 5,
            day: Duration::from_millis(2000),
            ..quick()
        },
        &[("GOOGLE_STREETVIEW_QUOTA_DAY_MS", "2000")],
    )
    .await;
    let sequence = setup.walk("s1", 3);
    let first = setup.run(&sequence).await.unwrap();
    assert_eq!(first.state, SequenceState::Uploading, "{first:?}");
    assert_eq!(setup.fake.stats().photos.len(), 1);
    let mut outcome = first;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        outcome = setup.run(&sequence).await.unwrap();
        if outcome.state != SequenceState::Uploading {
            break;
        }
    }
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.fake.stats().photos.len(), 3);
    assert_eq!(
        setup.fake.stats().count("GET /v1/photos"),
        0,
        "a create Google refused needs no lookup"
    );
}

#[tokio::test]
async fn a_flat_sequence_is_not_eligible_with_the_reason() {
    let setup = Setup::authorised(quick(), &[]).await;
    let flat = walk(setup.dir.path(), "flat", 3, false);
    let eligibility = mtp_streetview::StreetView.eligibility(&flat);
    assert!(!eligibility.eligible);
    let reason = eligibility.reason.unwrap();
    assert!(
        reason.contains("360° equirectangular") && reason.contains("flat"),
        "{reason}"
    );
    let err = setup.run(&flat).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(setup
        .fake
        .stats()
        .requests
        .iter()
        .all(|r| r == "POST /token"));

    // A mixed sequence goes without its flat photos, said once.
    let mut mixed = setup.walk("mixed", 3);
    mixed.images[1].projection = Projection::Flat;
    mixed.images[2].size_bytes = 80_000_000;
    let eligibility = mtp_streetview::StreetView.eligibility(&mixed);
    assert!(eligibility.eligible);
    let note = &eligibility.notes[0];
    assert!(
        note.contains("0001.jpg") && note.contains("0002.jpg") && note.contains("75 MB"),
        "{note}"
    );
}

#[tokio::test]
async fn a_photo_google_finds_not_360_is_refused_and_the_others_go() {
    let setup = Setup::authorised(quick(), &[]).await;
    let sequence = setup.walk("s1", 3);
    // Declared 360° by the sequence, but the file has no Photo Sphere XMP.
    std::fs::write(&sequence.images[1].path, common::jpeg(640, 320, false)).unwrap();
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert!(outcome
        .message
        .unwrap()
        .contains("1 refused as not 360° (INVALID_ARGUMENT)"));
    assert_eq!(setup.fake.stats().photos.len(), 2);
    let creates = setup.creates();
    setup.run(&sequence).await.unwrap();
    assert_eq!(
        setup.creates(),
        creates,
        "a refused photo is not sent again"
    );
}

#[tokio::test]
async fn a_stale_upload_reference_is_replaced() {
    let setup = Setup::authorised(quick(), &[]).await;
    let sequence = setup.walk("s1", 1);
    // A run of an earlier day left the bytes at an upload URL Google no longer knows.
    let ctx = setup.host.context();
    SequenceStore::new(&ctx, "s1")
        .put_photo(
            "0000.jpg",
            &PhotoRecord {
                upload_url: Some(format!("{}/media/user/1/photo/old", setup.fake.api_url())),
                bytes_sent: true,
                ..PhotoRecord::default()
            },
        )
        .unwrap();
    let outcome = setup.run(&sequence).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.creates(), 2, "the stale reference, then a fresh one");
    assert_eq!(setup.fake.stats().photos.len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_revoked_one_asks_for_a_login() {
    let setup = Setup::authorised(quick(), &[]).await;
    setup.fake.expire_access_tokens();
    let outcome = setup.run(&setup.walk("s1", 1)).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.fake.stats().token_grants, 2);

    setup.fake.revoke();
    let err = setup.run(&setup.walk("s2", 1)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("mtp auth streetview"), "{err}");
}

#[tokio::test]
async fn a_disabled_api_says_how_to_enable_it() {
    let setup = Setup::authorised(
        StreetViewConfig {
            faults: StreetViewFaults {
                api_disabled: true,
                ..Default::default()
            },
            ..quick()
        },
        &[],
    )
    .await;
    let err = setup.run(&setup.walk("s1", 1)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert!(err.message.contains("PERMISSION_DENIED"), "{err}");
    assert!(
        err.message.contains("Enable the Street View Publish API"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_keys_disable_it_with_the_reason_and_secrets_are_never_shown() {
    let manifest = mtp_streetview::StreetView.manifest();
    assert_eq!(
        manifest.required_env,
        ["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"]
    );
    assert!(
        manifest
            .env_help_for("GOOGLE_CLIENT_SECRET")
            .unwrap()
            .secret
    );
    let help = &manifest.env_help_for("GOOGLE_CLIENT_ID").unwrap().help;
    assert!(
        help.contains("Desktop app") && help.contains("Street View Publish API"),
        "{help}"
    );
    let host = plugin_api::sdk::testing::TestHost::new();
    let err = mtp_streetview::config::Config::from_context(&host.context()).unwrap_err();
    assert!(err.message.contains("GOOGLE_CLIENT_ID"), "{err}");

    let setup = Setup::authorised(quick(), &[]).await;
    setup.run(&setup.walk("s1", 2)).await.unwrap();
    let shown = setup.host.everything_shown();
    let tokens = tokens::load(&setup.host.context()).unwrap().unwrap();
    for secret in [
        tokens.access_token.as_str(),
        tokens.refresh_token.as_str(),
        setup.fake.config().client_secret.as_str(),
    ] {
        assert!(!shown.contains(secret), "a secret was shown: {shown}");
    }
}
