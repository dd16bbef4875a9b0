//! The cases of the provider conformance suite (issue 25, point 1) that apply to Strava, written so
//! they can move into the shared suite: a dry run sends nothing and writes no state; a re-check never
//! uploads; a published re-run makes no requests; no secret in progress, logs, messages or keys;
//! cancellation is honoured within a bound; an interrupted run resumes without re-sending what Strava
//! acknowledged; eligibility is pure and `run` refuses the same.

mod common;

use std::time::{Duration, Instant};

use common::{request, walk, Setup, T0};
use mtp_fakes::fake_strava::StravaConfig;
use mtp_strava::tokens;
use plugin_api::prelude::*;

fn posts(setup: &Setup) -> usize {
    setup
        .fake
        .stats()
        .requests
        .iter()
        .filter(|r| *r == "POST /api/v3/uploads")
        .count()
}

#[tokio::test]
async fn the_manifest_declares_every_key_with_help() {
    let manifest = mtp_strava::Strava.manifest();
    for key in manifest.declared_env() {
        let help = manifest.env_help_for(key).expect("help for every key");
        assert!(!help.help.is_empty(), "{key}");
    }
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
    // Missing keys: the call says which.
    let host = plugin_api::sdk::testing::TestHost::new();
    let err = mtp_strava::config::Config::from_context(&host.context()).unwrap_err();
    assert!(err.message.contains("STRAVA_CLIENT_ID"), "{err}");
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_writes_no_state() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let before = setup.fake.stats().requests.len();
    let sequence = walk("s1", 6, T0);
    let outcome = mtp_strava::Strava
        .run(
            &setup.host.context(),
            request(&sequence, RunMode::Upload, true),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::DryRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("would upload a track of 6 points"),
        "{message}"
    );
    assert_eq!(setup.fake.stats().requests.len(), before, "no request");
    assert_eq!(setup.host.inner.state("seq/s1/upload"), None);
}

#[tokio::test]
async fn a_recheck_never_uploads() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let sequence = walk("s1", 6, T0);
    let outcome = setup.run(&sequence, RunMode::Recheck).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Pending);
    assert_eq!(setup.fake.stats().api_requests(), 0);
    assert_eq!(posts(&setup), 0);
}

#[tokio::test]
async fn a_published_rerun_makes_no_requests() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let sequence = walk("s1", 6, T0);
    let first = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(first.state, SequenceState::Published);
    let before = setup.fake.stats().requests.len();
    let again = setup.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(again.state, SequenceState::Published);
    assert_eq!(again.keys, first.keys);
    assert_eq!(setup.fake.stats().requests.len(), before, "no request");
}

#[tokio::test]
async fn no_secret_in_progress_logs_messages_or_keys() {
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

#[tokio::test]
async fn cancellation_is_honoured_and_the_resumed_run_sends_nothing_again() {
    // Strava takes long to process: the run is cancelled while it polls.
    let config = StravaConfig {
        processing: Duration::from_millis(1500),
        ..common::quick()
    };
    let setup = Setup::authorised(config, &[]).await;
    let sequence = walk("s1", 6, T0);
    let cancel = setup.host.inner.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        Instant::now()
    });
    let err = setup.run(&sequence, RunMode::Upload).await.unwrap_err();
    let cancelled_at = canceller.await.unwrap();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "honoured within a second"
    );
    // The upload id was recorded before polling.
    let record = setup.host.inner.state("seq/s1/upload").unwrap();
    assert!(record.contains("\"upload_id\":"), "{record}");
    assert_eq!(posts(&setup), 1);

    // A new run (a fresh host: not cancelled) polls the same upload and sends nothing again.
    let resumed = Setup {
        host: common::BrowserHost {
            inner: clone_uncancelled(&setup),
        },
        fake: setup.fake,
    };
    let outcome = resumed.run(&sequence, RunMode::Upload).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(posts(&resumed), 1, "not sent again");
    assert_eq!(resumed.fake.stats().live_activities().len(), 1);
}

/// A host with the same env, state and secrets as `setup`'s, not cancelled.
fn clone_uncancelled(setup: &Setup) -> plugin_api::sdk::testing::TestHost {
    let fresh = common::host_for(&setup.fake, &[]).inner;
    let ctx = fresh.context();
    let old = setup.host.context();
    for (key, value) in old.state().list("").unwrap() {
        ctx.state().put(&key, &value).unwrap();
    }
    let tokens = old.secret(tokens::TOKENS_SECRET).unwrap().unwrap();
    ctx.set_secret(tokens::TOKENS_SECRET, &tokens).unwrap();
    fresh
}

#[tokio::test]
async fn eligibility_is_pure_and_run_refuses_the_same() {
    let setup = Setup::authorised(common::quick(), &[]).await;
    let single = walk("one", 1, T0);
    let eligibility = mtp_strava::Strava.eligibility(&single);
    assert!(!eligibility.eligible);
    let reason = eligibility.reason.unwrap();
    let err = setup.run(&single, RunMode::Upload).await.unwrap_err();
    assert_eq!(err.message, reason);
    assert!(mtp_strava::Strava.eligibility(&walk("ok", 2, T0)).eligible);
    assert_eq!(setup.fake.stats().api_requests(), 0);
}
