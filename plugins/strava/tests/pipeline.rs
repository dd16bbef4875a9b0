//! The provider in-process against the fake Strava: login, upload, exactly once, re-checks, status.
//! The rules every provider keeps (dry run, re-check, published re-run, secrets, cancellation and
//! resuming, eligibility) are checked by the conformance suite in `conformance.rs`; what is Strava's
//! own about them (the keys it requires, what a dry run says, a refreshed token kept hidden) is here.

mod common;

use std::time::Duration;

use common::{walk, Setup, T0};
use mtp_fakes::fake_strava::{StravaConfig, StravaFaults};
use mtp_strava::tokens;
use plugin_api::prelude::*;

#[tokio::test]
async fn login_stores_the_account_and_the_tokens() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let status = mtp_strava::Strava
        .auth_status(&setup.host.context())
        .await
        .unwrap();
    assert!(status.authorised);
    assert_eq!(
        status.account.as_deref(),
        Some("Marianne Teutenberg (marianne_t)")
    );
    let detail = status.detail.unwrap();
    assert!(
        detail.contains("athlete 134815") && detail.contains("access token valid until"),
        "{detail}"
    );
    let stored = tokens::load(&setup.host.context()).unwrap().unwrap();
    assert_eq!(stored.refresh_tokens.len(), 1);
}

#[tokio::test]
async fn a_refused_consent_or_a_narrowed_scope_is_explained() {
    for (faults, expected) in [
        (
            StravaFaults {
                deny_consent: true,
                ..Default::default()
            },
            "access_denied",
        ),
        (
            StravaFaults {
                grant_read_only: true,
                ..Default::default()
            },
            "activity:write",
        ),
    ] {
        let setup = Setup::start(StravaConfig {
            faults,
            ..common::quick()
        })
        .await;
        let err = mtp_strava::Strava
            .authorize(&setup.host.context(), AuthRequest { token: None })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(err.message.contains(expected), "{err}");
        assert!(tokens::load(&setup.host.context()).unwrap().is_none());
    }
}

#[tokio::test]
async fn an_upload_becomes_one_activity_with_the_transport_s_sport_type() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let sequence = walk("s1", 12, T0);
    let outcome = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    let activities = stats.live_activities();
    assert_eq!(activities.len(), 1);
    let activity = activities[0];
    assert_eq!(activity.sport_type, "Walk");
    assert_eq!(activity.name, "Morning walk");
    let upload = &stats.uploads[&activity.upload_id];
    assert_eq!(upload.points, 12, "every image is a trackpoint");
    assert_eq!(
        upload.start_time.as_deref(),
        Some("2020-05-10T06:45:03.000Z")
    );
    assert_eq!(
        outcome.keys["activity_url"],
        format!(
            "{}/activities/{}",
            setup.fake.api_url().trim_end_matches("/api/v3"),
            activity.id
        )
    );
    // The page shows the activity from the outcome's links, knowing nothing of Strava.
    assert_eq!(
        outcome.links,
        [Link::new(
            format!("activity {} on Strava", activity.id),
            outcome.keys["activity_url"].clone()
        )]
    );
    assert_eq!(
        outcome.keys["external_id"],
        mtp_strava::track::external_id(&sequence)
    );
    let message = outcome.message.unwrap();
    assert!(message.contains("sport type Walk"), "{message}");
}

#[tokio::test]
async fn an_unmapped_transport_keeps_strava_s_default_and_says_so() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let mut sequence = walk("car", 5, T0);
    sequence.transport = TransportType::parse("Car").ok();
    let outcome = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
    assert!(outcome
        .message
        .unwrap()
        .contains("no sport type for Earth/Car"));
    let stats = setup.fake.stats();
    assert_eq!(
        stats.live_activities()[0].sport_type,
        "Ride",
        "Strava's default"
    );
    assert_eq!(stats.live_activities()[0].updates, 0, "no PUT");
}

#[tokio::test]
async fn a_lost_upload_answer_is_adopted_from_strava_s_duplicate_answer() {
    let faults = StravaFaults {
        lose_upload_answers: 1,
        ..Default::default()
    };
    let setup = Setup::authorised(
        StravaConfig {
            faults,
            ..common::quick()
        },
        &[],
    )
    .await;
    let sequence = walk("s1", 6, T0);
    let outcome = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(
        stats.uploads.len(),
        2,
        "the track was sent again after the lost answer"
    );
    assert_eq!(stats.live_activities().len(), 1, "never a second activity");
    let activity = stats.live_activities()[0];
    assert_eq!(outcome.keys["activity_id"], activity.id.to_string());
    assert_eq!(
        activity.sport_type, "Walk",
        "our own activity gets its sport type"
    );
    assert!(outcome.message.unwrap().contains("Strava already had it"));
}

#[tokio::test]
async fn state_lost_after_the_post_adopts_the_existing_activity() {
    // A crash between the POST and recording its id is the same as a second machine with no record:
    // the same external_id is sent and answered as a duplicate.
    let setup = Setup::authorised(common::quick(), &[]).await;
    let sequence = walk("s1", 6, T0);
    setup.run(&sequence, RunMode::Upload).await.unwrap();
    let other = common::host_for(&setup.fake, &[]);
    mtp_strava::Strava
        .authorize(&other.context(), AuthRequest { token: None })
        .await
        .unwrap();
    let second = Setup {
        fake: setup.fake,
        host: other,
    };
    let outcome = second.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
    assert_eq!(second.fake.stats().live_activities().len(), 1);
}

#[tokio::test]
async fn another_recording_of_the_same_outing_is_linked_but_not_changed() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let mut watch = walk("watch", 6, T0);
    watch.transport = TransportType::parse("Car").ok();
    setup.run(&watch, RunMode::Upload).await.unwrap();
    // Same start time, other files: another external_id, a duplicate by start time.
    let mut photos = walk("photos", 8, T0);
    for image in &mut photos.images {
        image.file_name = format!("IMG_{}", image.file_name);
    }
    let outcome = setup.run(&photos, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
    let message = outcome.message.unwrap();
    assert!(message.contains("left as it is"), "{message}");
    let stats = setup.fake.stats();
    assert_eq!(stats.live_activities().len(), 1);
    assert_eq!(
        stats.live_activities()[0].updates,
        0,
        "the other recording is not changed"
    );
}

#[tokio::test]
async fn strava_s_processing_error_is_reported_with_its_text() {
    let faults = StravaFaults {
        fail_next_processing: Some("Error processing your activity".into()),
        ..Default::default()
    };
    let setup = Setup::authorised(
        StravaConfig {
            faults,
            ..common::quick()
        },
        &[],
    )
    .await;
    let sequence = walk("s1", 6, T0);
    let outcome = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Failed);
    assert!(outcome
        .message
        .unwrap()
        .contains("Error processing your activity"));
    // The next upload starts over and succeeds.
    let again = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(again.state, SequenceState::Published, "{again:?}");
}

#[tokio::test]
async fn a_malformed_track_is_refused_before_sending() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let mut sequence = walk("s1", 4, T0);
    sequence.images[2].captured_at_ms = T0 - 1000;
    let reason = mtp_strava::Strava.eligibility(&sequence);
    assert!(!reason.eligible);
    let err = setup.run(&sequence, RunMode::Upload).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("0002.jpg") && err.message.contains("backwards"),
        "{err}"
    );
    assert_eq!(setup.fake.stats().api_requests(), 0, "nothing was sent");
}

#[tokio::test]
async fn processing_left_to_recheck_then_ready() {
    let config = StravaConfig {
        processing: Duration::from_millis(400),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[("STRAVA_POLL_TIMEOUT_SECS", "0")]).await;
    let sequence = walk("s1", 6, T0);
    let first = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");
    assert!(first.message.unwrap().contains("still being processed"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let ready = setup.run(&sequence, RunMode::Recheck).await.unwrap();
    assert_eq!(ready.state, SequenceState::Published, "{ready:?}");

    let posts = setup
        .fake
        .stats()
        .requests
        .iter()
        .filter(|r| *r == "POST /api/v3/uploads")
        .count();
    assert_eq!(posts, 1, "re-checks never upload");
}

#[tokio::test]
async fn a_deleted_activity_reported_by_the_upload_is_a_failure() {
    let config = StravaConfig {
        processing: Duration::from_millis(200),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[("STRAVA_POLL_TIMEOUT_SECS", "0")]).await;
    let sequence = walk("s1", 6, T0);
    let waiting = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(waiting.state, SequenceState::Unpublished);
    let upload_id: u64 = waiting.keys["upload_id"].parse().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The athlete sees the activity on Strava and deletes it before mtp looks again.
    let api = setup.fake.api_url();
    let access = tokens::load(&setup.host.context())
        .unwrap()
        .unwrap()
        .access_token;
    let look = plugin_api::http::reqwest::Client::new()
        .get(format!("{api}/uploads/{upload_id}"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert!(look.status().is_success());
    let activity = setup.fake.stats().uploads[&upload_id].activity_id.unwrap();
    setup.fake.delete_activity(activity);
    let outcome = setup.run(&sequence, RunMode::Recheck).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Failed, "{outcome:?}");
    assert!(outcome.message.unwrap().contains("deleted on Strava"));
    assert!(outcome.next_action.unwrap().contains("mtp upload"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_newest_is_kept_first() {
    // Tokens that expire within the refresh margin: every run refreshes first.
    let config = StravaConfig {
        token_ttl: Duration::from_secs(600),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[]).await;
    let ctx = setup.host.context();
    let before = tokens::load(&ctx).unwrap().unwrap();
    setup
        .run(&walk("s1", 4, T0), RunMode::Upload)
        .await
        .unwrap();
    let after = tokens::load(&ctx).unwrap().unwrap();
    assert_ne!(after.refresh_tokens[0], before.refresh_tokens[0]);
    assert_eq!(
        after.refresh_tokens[1], before.refresh_tokens[0],
        "newest first"
    );
    assert_ne!(after.access_token, before.access_token);

    // Another process rotated the token and stored one we never saw working at the head: the refused
    // one is skipped and an older one is tried, from a fresh read of the store.
    let mut tampered = after.clone();
    tampered.refresh_tokens.insert(0, "not-a-token".into());
    tampered.expires_at = 0;
    let grant = tokens::Grant {
        access_token: tampered.access_token.clone(),
        refresh_token: "not-a-token".into(),
        expires_at: 0,
        athlete: None,
    };
    tokens::store(&ctx, &grant, &after.refresh_tokens).unwrap();
    let outcome = setup
        .run(&walk("s2", 4, T0 + 7_200_000), RunMode::Upload)
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert!(setup.fake.stats().refused_refreshes >= 1);

    // A used refresh token is refused by Strava: with nothing else stored, the user is asked to log in.
    let used = tokens::Grant {
        access_token: "expired".into(),
        refresh_token: before.refresh_tokens[0].clone(),
        expires_at: 0,
        athlete: None,
    };
    tokens::store(&ctx, &used, &[]).unwrap();
    let err = setup
        .run(&walk("s3", 4, T0 + 14_400_000), RunMode::Upload)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("mtp auth strava"), "{err}");
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let grants = setup.fake.stats().token_grants;
    setup.fake.expire_access_tokens();
    let outcome = setup
        .run(&walk("s1", 4, T0), RunMode::Upload)
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.fake.stats().token_grants, grants + 1, "one refresh");
}

#[tokio::test]
async fn a_used_up_window_is_waited_out_and_said() {
    // 15-minute windows of 1 s, 3 requests each.
    let config = StravaConfig {
        window: Duration::from_millis(1000),
        limits: (3, 1000),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[]).await;
    // Another client of the application used the window up: the first answer is 429.
    setup.fake.use_requests(3);
    let outcome = setup
        .run(&walk("s1", 4, T0), RunMode::Upload)
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(
        stats.rate_limited, 1,
        "one 429 (the window another client used up); the later windows were waited for, from the \
         headers, before they ran out"
    );
    let said = setup.host.everything_shown();
    assert!(
        said.contains("Strava's rate limit is reached (the 15-minute limit (")
            && said.contains("for the next window"),
        "{said}"
    );
    assert_eq!(stats.live_activities().len(), 1);
}

#[tokio::test]
async fn the_manifest_requires_the_application_keys_and_a_missing_one_is_named() {
    let manifest = mtp_strava::Strava.manifest();
    assert_eq!(
        manifest.required_env,
        [
            "STRAVA_CLIENT_ID",
            "STRAVA_CLIENT_SECRET",
            "STRAVA_REDIRECT_URI"
        ]
    );
    assert!(
        manifest
            .env_help_for("STRAVA_CLIENT_SECRET")
            .unwrap()
            .secret
    );
    let host = plugin_api::sdk::testing::TestHost::new();
    let err = mtp_strava::config::Config::from_context(&host.context()).unwrap_err();
    assert!(err.message.contains("STRAVA_CLIENT_ID"), "{err}");
}

#[tokio::test]
async fn a_dry_run_says_what_it_would_upload() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let outcome = mtp_strava::Strava
        .run(
            &setup.host.context(),
            common::request(&walk("s1", 6, T0), RunMode::Upload, true),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::DryRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("would upload a track of 6 points"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refreshed_token_is_never_shown_either() {
    let config = StravaConfig {
        token_ttl: Duration::from_secs(60),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[]).await;
    let ctx = setup.host.context();
    let first = tokens::load(&ctx).unwrap().unwrap();
    let outcome = setup
        .run(&walk("s1", 6, T0), RunMode::Upload)
        .await
        .unwrap();
    let last = tokens::load(&ctx).unwrap().unwrap();
    let mut shown = setup.host.everything_shown();
    shown.push_str(&format!("{outcome:?}"));
    let status = mtp_strava::Strava.auth_status(&ctx).await.unwrap();
    shown.push_str(&format!("{status:?}"));
    let secret = setup.fake.config().client_secret.clone();
    let mut secrets = vec![first.access_token, last.access_token, secret];
    secrets.extend(first.refresh_tokens);
    secrets.extend(last.refresh_tokens);
    for s in secrets {
        assert!(!shown.contains(&s), "a secret was shown: {shown}");
    }
    assert!(
        shown.contains("refreshed the Strava access token"),
        "{shown}"
    );
}
