//! Rate limits as the official client treats them (mapillary/mapillary_tools `mapillary_tools/uploader.py`,
//! `_is_retriable_exception`): both shapes are waited out, and a run that outlasts its budget stops with a
//! transient error that keeps every acknowledged step.

mod common;

use common::*;
use mtp_fakes::fake_mapillary::{MapillaryConfig, MapillaryFaults, RateLimitShape};
use mtp_sequence::generate::GenerateOptions;
use plugin_api::prelude::*;

fn small(count: usize) -> GenerateOptions {
    GenerateOptions {
        count,
        ..GenerateOptions::default()
    }
}

fn limited(ratio: f64, shape: RateLimitShape, backoff_secs: u64) -> MapillaryConfig {
    MapillaryConfig {
        faults: MapillaryFaults {
            seed: Some(11),
            rate_limit_ratio: ratio,
            rate_limit_shape: shape,
            retry_after_secs: backoff_secs,
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    }
}

fn retry_notes(setup: &Setup) -> Vec<String> {
    setup
        .host
        .inner
        .progress_events()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Note { message } if message.contains("retrying") => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_rate_limit_that_says_not_retriable_is_waited_out() {
    let setup = Setup::start(limited(0.3, RateLimitShape::Status400, 0)).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("limited-400", &[&generate(dir.path(), small(8))]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    let limited = stats.responses_by_status.get(&400).copied().unwrap_or(0);
    assert!(
        limited > 0,
        "no rate limit was injected: {:?}",
        stats.responses_by_status
    );
    assert_eq!(stats.bytes_resent, 0);
    assert_eq!(stats.uploaded_sequences().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_rate_limit_waits_the_backoff_it_names() {
    let setup = Setup::start(limited(0.25, RateLimitShape::Status429, 1)).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("limited-429", &[&generate(dir.path(), small(6))]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert!(stats.responses_by_status.get(&429).copied().unwrap_or(0) > 0);
    let notes = retry_notes(&setup);
    // The wait is the server's (1 s), not the test backoff's (5 ms doubling).
    assert!(
        !notes.is_empty() && notes.iter().all(|n| n.contains("retrying in 1.0 s")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_outlasting_the_budget_stop_the_run_and_keep_its_state() {
    let setup = Setup::start(limited(1.0, RateLimitShape::Status400, 0)).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("outage", &[&generate(dir.path(), small(3))]);
    let err = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.message.contains("upload of"), "{err}");
    assert!(err.message.contains("gave up after 200 retries"), "{err}");
    assert!(err.message.contains("is kept"), "{err}");
    // The sequence is not failed: its plan stays, and the next run carries on.
    assert!(
        setup.state_keys().iter().any(|k| k.ends_with("/plan")),
        "{:?}",
        setup.state_keys()
    );
    setup.fake.set_faults(MapillaryFaults::default());
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
}
