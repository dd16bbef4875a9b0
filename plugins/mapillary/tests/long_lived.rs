//! An upload that lives for days: expiring tokens and their refresh, upload handles that age, processing
//! longer than the deadline, a renamed user, and a dry run that sends nothing. Time is moved, not waited
//! for: the plugin's clock through `MTP_TEST_NOW` ([`common::later`]), the fake's with `advance_clock`.

mod common;

use std::time::Duration;

use common::*;
use mtp_fakes::fake_mapillary::{AgingConfig, FinishFault, MapillaryConfig, MapillaryFaults};
use mtp_mapillary::Mapillary;
use mtp_sequence::generate::GenerateOptions;
use plugin_api::prelude::*;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn small(count: usize) -> GenerateOptions {
    GenerateOptions {
        count,
        ..GenerateOptions::default()
    }
}

fn token_of(host: &BrowserHost) -> String {
    host.inner.secret("user_token").expect("a token is stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_its_expiry_is_refreshed_before_the_run_and_the_old_one_is_refused() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(60 * DAY),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_oauth().await;
    let old = token_of(&setup.host);
    let status = Mapillary.auth_status(&setup.ctx()).await.unwrap();
    let detail = status.detail.unwrap();
    assert!(
        status.authorised
            && detail.contains("token expires")
            && (detail.contains("(in 59 days 23 h") || detail.contains("(in 60 days;")),
        "{detail}"
    );

    // 55 days later (within the week before expiry) an upload refreshes first.
    setup.fake.advance_clock(55 * DAY);
    let day55 = later(&setup, &setup.host, 55 * DAY);
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("refresh", &[&generate(dir.path(), small(3))]);
    let outcome = Mapillary
        .run(&day55.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let fresh = token_of(&day55);
    assert_ne!(fresh, old);
    assert!(
        !outcome.exports.contains_key("user_token"),
        "never in an outcome"
    );
    assert!(setup.fake.link().token_is_valid(&fresh));
    assert!(
        !setup.fake.link().token_is_valid(&old),
        "the fake refuses the old token after a refresh"
    );
    let status = Mapillary.auth_status(&day55.context()).await.unwrap();
    let detail = status.detail.unwrap();
    assert!(detail.contains("(in 60 days"), "{detail}");
    assert_token_hidden(&setup, &fresh, &[&outcome]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_refresh_that_fails_is_told_once_and_the_working_token_is_used() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(60 * DAY),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_oauth().await;
    setup.fake.advance_clock(55 * DAY);
    // The refresh grant is refused (here: a client secret that no longer matches), while the token
    // itself works for five more days.
    let day55 = BrowserHost {
        inner: later(&setup, &setup.host, 55 * DAY)
            .inner
            .with_env("MAPILLARY_SECRET", "MLY|4242424242424242|not0the0secret"),
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["first", "second"] {
        let sequence = descriptor(
            name,
            &[&generate(dir.path().join(name).as_path(), small(2))],
        );
        let outcome = Mapillary
            .run(&day55.context(), request(&sequence, RunMode::Upload))
            .await
            .unwrap();
        assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    }
    let logs = day55.inner.logs();
    let told: Vec<&String> = logs
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.contains("refresh"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("the planned refresh of the Mapillary token failed")
            && told[0].contains("the token still works until")
            && !told[0].contains("log in again"),
        "{}",
        told[0]
    );
    assert_eq!(
        setup.fake.stats().request_count("POST /token"),
        2,
        "login and one refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_mid_run_is_refreshed_once_and_the_run_carries_on() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            revoke_token_after: Some(9),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let old = token_of(&setup.host);
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("mid-run", &[&generate(dir.path(), small(8))]);
    let mut one_at_a_time = request(&sequence, RunMode::Upload);
    one_at_a_time.options.insert("jobs".into(), 1.into());
    let outcome = setup.run(one_at_a_time).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_ne!(token_of(&setup.host), old);
    let stats = setup.fake.stats();
    assert_eq!(stats.tokens_issued.len(), 1, "one refresh");
    assert_eq!(stats.bytes_resent, 0);
    assert!(
        stats.entities.values().all(|e| e.completions == 1),
        "an acknowledged image was sent twice"
    );
    assert!(setup
        .host
        .inner
        .logs()
        .iter()
        .any(|(_, l)| l.contains("refreshed the Mapillary token")));
    assert!(
        Mapillary
            .auth_status(&setup.ctx())
            .await
            .unwrap()
            .authorised
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_that_cannot_be_refreshed_asks_for_a_new_login() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(HOUR),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_oauth().await;
    setup.fake.advance_clock(2 * HOUR);
    let hours2 = later(&setup, &setup.host, 2 * HOUR);
    let status = Mapillary.auth_status(&hours2.context()).await.unwrap();
    let detail = status.detail.unwrap();
    assert!(detail.contains("token expired"), "{detail}");

    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("expired", &[&generate(dir.path(), small(2))]);
    let err = Mapillary
        .run(&hours2.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message
            .contains("log in again with `mtp auth mapillary`"),
        "{err}"
    );
    assert_eq!(setup.fake.stats().request_count("POST /upload/:key"), 0);
    let status = Mapillary.auth_status(&hours2.context()).await.unwrap();
    assert!(!status.authorised);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_older_than_two_days_are_asked_again_and_the_manifest_is_rebuilt() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            handle_ttl: Some(2 * DAY),
            ..AgingConfig::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("aged", &[&generate(dir.path(), small(4))]);
    let mut upload_only = request(&sequence, RunMode::Upload);
    upload_only.options.insert("no_publish".into(), true.into());
    let first = setup.run(upload_only).await.unwrap();
    assert_eq!(first.state, SequenceState::DryRun, "{first:?}");
    let stats = setup.fake.stats();
    let old_manifest: Vec<String> = stats
        .entities
        .iter()
        .filter(|(k, _)| k.ends_with(".json"))
        .filter_map(|(_, e)| e.handle.clone())
        .collect();
    assert_eq!(old_manifest.len(), 1);
    let received = stats.upload_bytes_received;

    // Three days later the service has forgotten the entities; the stored handles are not trusted.
    setup.fake.advance_clock(3 * DAY);
    let day3 = later(&setup, &setup.host, 3 * DAY);
    let outcome = Mapillary
        .run(&day3.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert!(
        stats.upload_bytes_received > received,
        "the images were sent again"
    );
    assert_eq!(stats.finish_upload_calls.len(), 1);
    assert!(
        !stats.finish_upload_calls.contains_key(&old_manifest[0]),
        "the stale manifest handle was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_an_unknown_publication_days_later_builds_a_fresh_manifest() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            handle_ttl: Some(2 * DAY),
            ..AgingConfig::default()
        },
        faults: MapillaryFaults {
            finish: FinishFault::Fail500,
            finish_fault_calls: Some(1),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("doubt", &[&generate(dir.path(), small(3))]);
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unknown, "{first:?}");
    let old: Vec<String> = setup
        .fake
        .stats()
        .finish_upload_calls
        .keys()
        .cloned()
        .collect();

    setup.fake.advance_clock(3 * DAY);
    let day3 = later(&setup, &setup.host, 3 * DAY);
    let outcome = Mapillary
        .run(
            &day3.context(),
            republish(request(&sequence, RunMode::Upload)),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let calls = setup.fake.stats().finish_upload_calls;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[&old[0]], 1, "the old manifest handle was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_handle_the_service_still_holds_costs_an_offset_query_not_the_bytes() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("kept", &[&generate(dir.path(), small(3))]);
    let mut upload_only = request(&sequence, RunMode::Upload);
    upload_only.options.insert("no_publish".into(), true.into());
    setup.run(upload_only).await.unwrap();
    let stats = setup.fake.stats();
    let (received, offsets) = (
        stats.upload_bytes_received,
        stats.request_count("GET /upload/:key"),
    );

    let day3 = later(&setup, &setup.host, 3 * DAY);
    let outcome = Mapillary
        .run(&day3.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    // No image byte is sent again; the stale manifest is rebuilt as a new entity under a fresh key
    // (one manifest entity per upload), so only its bytes are new.
    let manifests: Vec<u64> = stats
        .entities
        .iter()
        .filter(|(k, _)| k.starts_with("uuid_"))
        .map(|(_, e)| e.bytes_received_total)
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let new_manifest = manifests.iter().sum::<u64>() - manifests.iter().copied().min().unwrap_or(0);
    assert_eq!(stats.upload_bytes_received, received + new_manifest);
    assert!(
        stats.request_count("GET /upload/:key") >= offsets + 3,
        "the 3 images asked again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_exactly_what_would_be_sent_and_contacts_nothing() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let sequence = descriptor("dry", &[&generate(dir.path(), small(5))]);
    let mut dry = request(&sequence, RunMode::Upload);
    dry.dry_run = true;
    dry.options.insert(
        "dry_run_dir".into(),
        out.path().to_string_lossy().into_owned().into(),
    );
    // No login needed: nothing is sent.
    let outcome = setup.run(dry).await.unwrap();
    assert_eq!(outcome.state, SequenceState::DryRun, "{outcome:?}");
    let message = outcome.message.clone().unwrap();
    assert!(
        message.contains("nothing sent; wrote 5 images")
            && message.contains("would publish 1 Mapillary sequence(s)"),
        "{message}"
    );
    assert!(
        setup.fake.stats().requests.is_empty(),
        "the fake was contacted"
    );
    assert!(setup.state_keys().is_empty(), "{:?}", setup.state_keys());
    let mut written: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mtp_b3_"))
        .collect();
    written.sort();
    assert_eq!(written.len(), 6, "{written:?}");
    for name in written.iter().filter(|n| n.ends_with(".jpg")) {
        let bytes = std::fs::read(out.path().join(name)).unwrap();
        assert_eq!(
            *name,
            format!("mtp_b3_{}.jpg", blake3::hash(&bytes).to_hex())
        );
        assert!(out.path().join("file_handles").join(name).is_file());
    }

    // A real upload sends exactly those images (same session keys, same bytes).
    setup.authorise_with_token().await;
    let real = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(real.state, SequenceState::Published, "{real:?}");
    let sent: Vec<String> = setup
        .fake
        .stats()
        .entities
        .keys()
        .filter(|k| k.ends_with(".jpg"))
        .cloned()
        .collect();
    let dry_images: Vec<String> = written
        .iter()
        .filter(|n| n.ends_with(".jpg"))
        .cloned()
        .collect();
    assert_eq!(sent, dry_images);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_user_is_looked_up_under_the_new_name() {
    let setup = Setup::start(MapillaryConfig {
        publish_after_lookups: 1,
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("renamed", &[&generate(dir.path(), small(3))]);
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");

    setup.fake.rename_user("renamed_user");
    let mut recheck = request(&sequence, RunMode::Recheck);
    recheck.previous = Some(first);
    let found = setup.run(recheck).await.unwrap();
    assert_eq!(found.state, SequenceState::Published, "{found:?}");
    let status = Mapillary.auth_status(&setup.ctx()).await.unwrap();
    assert_eq!(status.account.as_deref(), Some("renamed_user"));
}

/// Everything at once: a token that lives 4 days, handles that live 2, processing that takes 100 h
/// (past the 72 h deadline) and a rename while waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_long_upload_with_expiring_tokens_and_handles_slow_processing_and_a_rename() {
    let setup = Setup::start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(4 * DAY),
            handle_ttl: Some(2 * DAY),
        },
        publish_delay: 100 * HOUR,
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_oauth().await;
    let first_token = token_of(&setup.host);
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("week", &[&generate(dir.path(), small(4))]);
    // Day 0: uploaded without publishing.
    let mut upload_only = request(&sequence, RunMode::Upload);
    upload_only.options.insert("no_publish".into(), true.into());
    setup.run(upload_only).await.unwrap();

    // Day 3: the handles are gone and the token is within a week of expiry: refreshed, re-sent,
    // published.
    setup.fake.advance_clock(3 * DAY);
    let day3 = later(&setup, &setup.host, 3 * DAY);
    let published = Mapillary
        .run(&day3.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(published.state, SequenceState::Unpublished, "{published:?}");
    assert!(!setup.fake.link().token_is_valid(&first_token));
    assert_eq!(
        setup.fake.stats().finish_upload_calls.values().sum::<u32>(),
        1
    );

    // Day 6 (80 h after publishing): overdue, still looked for; the user renamed their account.
    setup.fake.advance_clock(80 * HOUR);
    setup.fake.rename_user("new_name");
    let day6 = later(&setup, &day3, 3 * DAY + 80 * HOUR);
    let overdue = Mapillary
        .run(&day6.context(), request(&sequence, RunMode::Recheck))
        .await
        .unwrap();
    assert_eq!(overdue.state, SequenceState::Unpublished, "{overdue:?}");
    assert!(
        overdue.message.as_deref().unwrap().contains("overdue"),
        "{overdue:?}"
    );

    // A day later (overdue for more than a day: looked for daily) Mapillary shows it: found under
    // the new name, published once.
    setup.fake.advance_clock(24 * HOUR);
    let day7 = later(&setup, &day6, 3 * DAY + 104 * HOUR);
    let done = Mapillary
        .run(&day7.context(), request(&sequence, RunMode::Recheck))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 1);
    assert_eq!(stats.uploaded_sequences().len(), 1);
}
