//! The whole Mapillary pipeline, in-process, against the fake Mapillary: authorisation, upload, publish,
//! lookup, and every fault the fake can inject.

mod common;

use std::time::Duration;

use common::*;
use mtp_fakes::fake_mapillary::{
    ExtraSequence, FinishFault, MapillaryConfig, MapillaryFaults, ResetFault, SeededImage,
    SequenceOrigin,
};
use mtp_mapillary::Mapillary;
use mtp_sequence::generate::GenerateOptions;
use plugin_api::prelude::*;

fn small(count: usize) -> GenerateOptions {
    GenerateOptions {
        count,
        ..GenerateOptions::default()
    }
}

fn uploaded_keys(setup: &Setup) -> Vec<String> {
    setup
        .fake
        .stats()
        .uploaded_sequences()
        .iter()
        .map(|s| s.key.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_upload_publish_delayed_publication_and_key() {
    let config = MapillaryConfig {
        publish_after_lookups: 1,
        issue_fresh_tokens: true,
        ..MapillaryConfig::default()
    };
    let setup = Setup::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(
        dir.path(),
        GenerateOptions {
            target_bytes: Some(120_000),
            ..small(6)
        },
    );
    let sequence = descriptor("seq-1", &[&generated]);

    // Not authorised yet.
    let err = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("mtp auth mapillary"), "{err}");

    // OAuth through the fake's consent page: state checked, code exchanged, token verified and stored.
    let outcome = setup.authorise_with_oauth().await;
    assert_eq!(outcome.account, setup.config.username);
    let token = setup.host.inner.secret("user_token").expect("token stored");
    assert_eq!(setup.fake.stats().tokens_issued, vec![token.clone()]);
    let status = Mapillary.auth_status(&setup.ctx()).await.unwrap();
    assert!(status.authorised);
    assert_eq!(status.account.as_deref(), Some("fake_user"));

    // Upload: everything sent and published; Mapillary has not processed it at the first lookup.
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");
    assert!(first
        .message
        .as_deref()
        .unwrap_or("")
        .contains("still processing"));
    let stats = setup.fake.stats();
    assert_eq!(stats.finish_upload_calls.len(), 1);
    assert_eq!(stats.bytes_resent, 0);
    // `/me` once at login and once for the run (the look before publishing and the key lookup
    // share the user name).
    assert_eq!(
        stats.requests.get("GET /me"),
        Some(&2),
        "{:?}",
        stats.requests
    );
    // Images this state never sent go without an offset query, and so does the manifest, whose key is
    // new and random.
    assert_eq!(
        stats.requests.get("GET /upload/:key"),
        None,
        "{:?}",
        stats.requests
    );
    assert_eq!(
        stats.requests.get("POST /upload/:key"),
        Some(&7),
        "{:?}",
        stats.requests
    );
    let images: Vec<_> = stats
        .entities
        .iter()
        .filter(|(k, _)| k.ends_with(".jpg"))
        .collect();
    assert_eq!(images.len(), 6);
    for (key, entity) in &images {
        // Content-addressed: `mtp_b3_<BLAKE3 of the bytes sent>.jpg` (the hash itself is checked by the
        // unit tests of `outgoing` and `bundle`; the fake computes only md5), one key per content.
        let hex = key
            .strip_prefix("mtp_b3_")
            .and_then(|k| k.strip_suffix(".jpg"))
            .unwrap_or_else(|| panic!("{key} is not an mtp_b3_ key"));
        assert!(
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{key}"
        );
        assert!(entity.md5_hex.is_some(), "{key} is complete");
        assert!(
            entity.image.is_some(),
            "the description was readable in {key}"
        );
    }
    let mut times: Vec<i64> = images
        .iter()
        .map(|(_, e)| e.image.as_ref().unwrap().captured_at_ms)
        .collect();
    times.sort();
    assert_eq!(
        times,
        generated
            .images
            .iter()
            .map(|i| i.captured_at_ms)
            .collect::<Vec<_>>()
    );
    // The files on disk were not touched.
    for (image, info) in generated.images.iter().zip(&sequence.images) {
        assert_eq!(
            std::fs::metadata(&image.path).unwrap().len(),
            info.size_bytes
        );
    }

    // Progress: totals, then exactly that many bytes and files.
    let (bytes, files, totals) = setup.progress_sums();
    let Some(ProgressEvent::Totals {
        files_total,
        bytes_total,
        files_done: 0,
        bytes_done: 0,
    }) = totals
    else {
        panic!("no totals: {totals:?}")
    };
    assert_eq!((files, files_total), (6, 6));
    assert_eq!(bytes, bytes_total);
    let image_bytes: u64 = images.iter().map(|(_, e)| e.offset).sum();
    assert_eq!(bytes_total, image_bytes);

    // The start-up re-check finds it.
    let mut recheck = request(&sequence, RunMode::Recheck);
    recheck.previous = Some(first.clone());
    let second = setup.run(recheck).await.unwrap();
    assert_eq!(second.state, SequenceState::Published, "{second:?}");
    let keys = uploaded_keys(&setup);
    assert_eq!(keys.len(), 1);
    assert_eq!(second.keys["sequence_key"], keys[0]);
    assert_eq!(second.exports["sequence_key"], keys[0]);
    // The token is never in an outcome: the host hands it to MTPW from the secret store.
    assert!(!second.exports.contains_key("user_token"));
    assert_eq!(
        second.links,
        [Link::new(
            format!("sequence {} on Mapillary", keys[0]),
            format!("https://www.mapillary.com/app/?pKey={}", keys[0])
        )]
    );
    assert_token_hidden(&setup, &token, &[&first, &second]).await;

    // Published is final: another upload sends nothing and asks nothing.
    let before = setup.fake.stats().requests;
    let third = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(third.state, SequenceState::Published);
    assert_eq!(third.keys, second.keys);
    assert_eq!(setup.fake.stats().requests, before);
    // Only the plan (and its parts' images), the parts and each image's content entry (its identity:
    // docs/architecture.md, "Identity") stay.
    assert!(
        setup.state_keys().iter().all(|k| k == "account"
            || k == "token"
            || k.ends_with("/plan")
            || k.contains("/plan/")
            || k.contains("/part/")
            || k.starts_with("content/")),
        "{:?}",
        setup.state_keys()
    );
    let content = setup
        .state_keys()
        .iter()
        .filter(|k| k.starts_with("content/mtp_b3_"))
        .count();
    assert_eq!(content, 6, "{:?}", setup.state_keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_refuses_a_mismatched_state_and_a_denial() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    let forged = plugin_api::sdk::testing::TestHost::new()
        .with_env("MAPILLARY_APP_ID", "4242424242424242")
        .with_env("MAPILLARY_SECRET", "s")
        .with_env("MAPILLARY_REDIRECT_URI", "http://127.0.0.1:9/callback")
        .with_env("MAPILLARY_GRAPH_URL", &setup.fake.graph_url())
        .with_redirect("http://127.0.0.1:9/callback?code=AQx&state=forged");
    let err = Mapillary
        .authorize(&forged.context(), AuthRequest { token: None })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("state"), "{err}");
    assert_eq!(setup.fake.stats().request_count("POST /token"), 0);

    let denied = Setup::start(MapillaryConfig {
        deny_consent: true,
        ..MapillaryConfig::default()
    })
    .await;
    let err = Mapillary
        .authorize(&denied.ctx(), AuthRequest { token: None })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("user_denied"), "{err}");

    // A token the user pastes is verified before it is stored.
    let err = Mapillary
        .authorize(
            &setup.ctx(),
            AuthRequest {
                token: Some("MLY|not|valid".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(setup.host.inner.secret("user_token").is_none());
    assert!(!err.message.contains("MLY|not|valid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_publish_does_everything_but_publish() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), small(5));
    let sequence = descriptor("dry", &[&generated]);
    let mut dry = request(&sequence, RunMode::Upload);
    dry.options.insert("no_publish".into(), true.into());
    let outcome = setup.run(dry).await.unwrap();
    assert_eq!(outcome.state, SequenceState::DryRun, "{outcome:?}");
    let message = outcome.message.unwrap();
    assert!(
        message.contains("5 images") && message.contains("1 manifest"),
        "{message}"
    );
    let stats = setup.fake.stats();
    assert!(stats.finish_upload_calls.is_empty());
    assert_eq!(stats.entities.len(), 6, "5 images and a manifest");
    assert!(stats.entities.values().all(|e| e.handle.is_some()));

    // The real run afterwards sends no byte again: it only publishes.
    let received = stats.upload_bytes_received;
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.upload_bytes_received, received);
    assert_eq!(stats.request_count("POST /upload/:key"), 6);
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 1);
}

/// State written by versions that stored the plan whole, images included, under `seq/<id>/plan`: a
/// half-done upload (every image and manifest sent, nothing published) carries on from it after the
/// upgrade, sending no byte again and publishing each part once, and the plan is rewritten a part at a
/// time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_upload_in_an_earlier_versions_state_resumes_without_sending_again() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let (_dirs, sequence) = two_minute_gap("old");
    let mut first = request(&sequence, RunMode::Upload);
    first.options.insert("no_publish".into(), true.into());
    assert_eq!(setup.run(first).await.unwrap().state, SequenceState::DryRun);
    // The plan as earlier versions stored it.
    let ctx = setup.ctx();
    let state = ctx.state();
    let header: serde_json::Value =
        serde_json::from_str(&state.get("seq/old/plan").unwrap().unwrap()).unwrap();
    let mut parts = Vec::new();
    for (n, part) in header["parts"].as_array().unwrap().iter().enumerate() {
        let key = format!("seq/old/plan/{n}");
        let images: serde_json::Value =
            serde_json::from_str(&state.get(&key).unwrap().unwrap()).unwrap();
        state.delete(&key).unwrap();
        parts.push(serde_json::json!({
            "images": images["images"],
            "times": images["times"],
            "bbox": part["bbox"],
        }));
    }
    assert_eq!(parts.len(), 2);
    let whole = serde_json::json!({"digest": header["digest"], "parts": parts});
    state.put("seq/old/plan", &whole.to_string()).unwrap();
    let stats = setup.fake.stats();
    let received = stats.upload_bytes_received;
    assert_eq!(
        stats.request_count("POST /upload/:key"),
        9,
        "7 images, 2 manifests"
    );

    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.upload_bytes_received, received, "nothing sent again");
    assert_eq!(stats.request_count("POST /upload/:key"), 9);
    assert_eq!(stats.finish_upload_calls.len(), 2);
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 2);
    let stored = state.get("seq/old/plan").unwrap().unwrap();
    assert!(
        !stored.contains(".jpg"),
        "rewritten without the images: {stored}"
    );
    assert!(state.get("seq/old/plan/1").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_with_only_the_remainder() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            throttle_bytes_per_sec: Some(1_500_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(
        dir.path(),
        GenerateOptions {
            target_bytes: Some(500_000),
            ..small(6)
        },
    );
    let sequence = descriptor("resume", &[&generated]);

    // "kill -9" in the middle: the run is dropped while bodies are in flight.
    let run = setup.run(request(&sequence, RunMode::Upload));
    let watch = async {
        while setup.fake.stats().upload_bytes_received < 1_200_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        result = run => panic!("finished before the interruption: {result:?}"),
        _ = watch => {}
    }
    // Let the server take in what was already on the wire, as it would after a real crash: until no
    // upload body is still streaming.
    setup.fake.set_faults(MapillaryFaults::default());
    wait_until_no_upload_in_flight(&setup).await;
    let interrupted = setup.fake.stats();
    let acknowledged = interrupted
        .entities
        .values()
        .filter(|e| e.handle.is_some())
        .count();
    assert!(acknowledged < 6, "interrupted too late");
    assert!(interrupted.bytes_held() > 0);

    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.bytes_resent, 0, "acknowledged bytes were sent again");
    // Every byte was sent once: nothing re-sent, nothing thrown away.
    assert_eq!(
        stats.upload_bytes_received,
        stats.bytes_held() + stats.bytes_discarded
    );
    assert_eq!(stats.bytes_discarded, 0);
    // The second run's progress started from what it had recorded as acknowledged (the server may have
    // completed an entity whose answer never reached the client).
    let totals: Vec<ProgressEvent> = setup
        .host
        .inner
        .progress_events()
        .into_iter()
        .filter(|e| matches!(e, ProgressEvent::Totals { .. }))
        .collect();
    assert!(matches!(
        totals.last(),
        Some(ProgressEvent::Totals { files_done, .. }) if *files_done as usize <= acknowledged
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_rate_limits_are_retried() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            seed: Some(7),
            upload_5xx_ratio: 0.25,
            graph_5xx_ratio: 0.25,
            rate_limit_ratio: 0.08,
            retry_after_secs: 1,
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("flaky", &[&generate(dir.path(), small(8))]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    let failures: u64 = [500, 503, 429]
        .iter()
        .map(|s| stats.responses_by_status.get(s).copied().unwrap_or(0))
        .sum();
    assert!(
        failures > 0,
        "no fault was injected: {:?}",
        stats.responses_by_status
    );
    assert_eq!(stats.bytes_resent, 0);
    let notes = setup
        .host
        .inner
        .progress_events()
        .into_iter()
        .filter(|e| matches!(e, ProgressEvent::Note { message } if message.contains("retrying")))
        .count();
    assert!(notes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_mid_body_and_offset_mismatches_resume_from_the_server_offset() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            seed: Some(3),
            reset: Some(ResetFault {
                after_bytes: 40_000,
                every_nth_post: 2,
                ratio: 0.0,
            }),
            offset_mismatch_ratio: 0.2,
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(
        dir.path(),
        GenerateOptions {
            target_bytes: Some(150_000),
            ..small(5)
        },
    );
    let sequence = descriptor("resets", &[&generated]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert!(stats.connections_reset > 0);
    assert!(stats.offset_mismatches > 0);
    assert_eq!(stats.bytes_resent, 0);
    assert_eq!(uploaded_keys(&setup).len(), 1);
    let (bytes, files, _) = setup.progress_sums();
    let image_bytes: u64 = stats
        .entities
        .iter()
        .filter(|(k, _)| k.ends_with(".jpg"))
        .map(|(_, e)| e.offset)
        .sum();
    assert_eq!(
        (bytes, files),
        (image_bytes, 5),
        "progress counts each byte once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_with_an_auth_error_and_keeps_progress() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            // Each never-sent image is one request (no offset query), so 5 requests end mid-upload.
            revoke_token_after: Some(5),
            ..MapillaryFaults::default()
        },
        // The refresh after the refusal fails too: only a new login helps.
        revoked_tokens_refreshable: false,
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("revoked", &[&generate(dir.path(), small(8))]);
    let mut one_at_a_time = request(&sequence, RunMode::Upload);
    one_at_a_time.options.insert("jobs".into(), 1.into());
    let err = setup.run(one_at_a_time).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message
            .contains("log in again with `mtp auth mapillary`; everything uploaded so far is kept"),
        "{err}"
    );
    let kept = setup
        .state_keys()
        .iter()
        .filter(|k| k.contains("/img/"))
        .count();
    assert!(kept > 0 && kept < 8, "{kept} images kept");
    let status = Mapillary.auth_status(&setup.ctx()).await.unwrap();
    assert!(!status.authorised);
    assert!(status.detail.unwrap().contains("refused"));

    // Re-authorise (the fake issues a fresh token now) and continue where it stopped.
    setup.authorise_with_oauth().await;
    let held = setup.fake.stats().bytes_held();
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.bytes_resent, 0);
    let images_resent: u64 = stats
        .entities
        .values()
        .filter(|e| e.completions > 1)
        .count() as u64;
    assert_eq!(
        images_resent, 0,
        "an acknowledged image was completed twice"
    );
    assert!(stats.bytes_held() > held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_finish_upload_is_unknown_until_the_user_republishes() {
    let setup = Setup::start(MapillaryConfig {
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
    let sequence = descriptor("unknown", &[&generate(dir.path(), small(4))]);

    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unknown, "{first:?}");
    assert!(first.message.as_deref().unwrap().contains("unknown"));
    assert_eq!(
        first.next_action.as_deref(),
        Some("check Mapillary, then run mtp upload --republish if it did not go through")
    );
    // Never re-published blindly.
    let mut again = request(&sequence, RunMode::Upload);
    again.previous = Some(first.clone());
    let second = setup.run(again).await.unwrap();
    assert_eq!(second.state, SequenceState::Unknown);
    assert_eq!(
        setup.fake.stats().finish_upload_calls.values().sum::<u32>(),
        1
    );

    // The user checked: it did not go through.
    let third = setup
        .run(republish(request(&sequence, RunMode::Upload)))
        .await
        .unwrap();
    assert_eq!(third.state, SequenceState::Published, "{third:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 2);
    assert_eq!(stats.uploaded_sequences().len(), 1);
}

/// A `finish_upload` that Mapillary accepted but whose answer mtp never read (`fault`): the outcome is
/// unknown, and the next run finds the sequence by lookup instead of publishing it again.
async fn an_unanswered_publish_is_found_without_republishing(fault: FinishFault, name: &str) {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            finish: fault,
            ..MapillaryFaults::default()
        },
        publish_after_lookups: 1,
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor(name, &[&generate(dir.path(), small(4))]);
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unknown, "{first:?}");
    let second = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(second.state, SequenceState::Published, "{second:?}");
    let stats = setup.fake.stats();
    assert_eq!(
        stats.finish_upload_calls.values().sum::<u32>(),
        1,
        "published twice"
    );
    assert_eq!(second.keys["sequence_key"], uploaded_keys(&setup)[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_publish_that_went_through_is_found_without_republishing() {
    an_unanswered_publish_is_found_without_republishing(
        FinishFault::Fail500ButPublished,
        "went-through",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_answer_was_lost_on_the_way_is_found_without_republishing() {
    // The connection drops after finish_upload was accepted: no status at all, unlike the 500 above.
    an_unanswered_publish_is_found_without_republishing(
        FinishFault::DroppedAnswerButPublished,
        "answer-lost",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_that_never_arrives_is_overdue_and_republished_only_on_request() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            finish: FinishFault::AcceptedNeverPublished,
            finish_fault_calls: Some(1),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("never", &[&generate(dir.path(), small(4))]);
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");
    assert!(first.message.as_deref().unwrap().contains("up to 72 h"));

    // 80 h later: overdue, not failed; nothing is cleared and nothing published again.
    let h80 = later(&setup, &setup.host, Duration::from_secs(80 * 3600));
    let mut recheck = request(&sequence, RunMode::Recheck);
    recheck.previous = Some(first);
    let overdue = Mapillary.run(&h80.context(), recheck).await.unwrap();
    assert_eq!(overdue.state, SequenceState::Unpublished, "{overdue:?}");
    let message = overdue.message.clone().unwrap();
    assert!(
        message.contains("overdue, waiting 3 days 8 h since it was published")
            && message.contains("looked 2 time(s)"),
        "{message}"
    );
    assert!(
        overdue
            .next_action
            .as_deref()
            .unwrap()
            .contains("mtp upload --republish"),
        "{overdue:?}"
    );
    let lookups = setup.fake.stats().request_count("GET /images");
    // A plain upload right after neither publishes again nor looks again (hourly backoff).
    let again = Mapillary
        .run(&h80.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(again.state, SequenceState::Unpublished, "{again:?}");
    let stats = setup.fake.stats();
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 1);
    assert_eq!(stats.request_count("GET /images"), lookups);

    // --republish looks once more, then publishes again, without sending the images' bytes again
    // (the server still holds them).
    let received = stats.upload_bytes_received;
    let republished = Mapillary
        .run(
            &h80.context(),
            republish(request(&sequence, RunMode::Upload)),
        )
        .await
        .unwrap();
    assert_eq!(
        republished.state,
        SequenceState::Published,
        "{republished:?}"
    );
    let stats = setup.fake.stats();
    assert!(stats.request_count("GET /images") > lookups);
    // Only the new attempt's fresh manifest entity is sent (one entity per publish attempt).
    let manifests: Vec<u64> = stats
        .entities
        .iter()
        .filter(|(k, _)| k.starts_with("uuid_"))
        .map(|(_, e)| e.bytes_received_total)
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let first_manifest = manifests.iter().copied().min().unwrap_or(0);
    assert_eq!(
        stats.upload_bytes_received,
        received + (manifests.iter().sum::<u64>() - first_manifest)
    );
    assert_eq!(stats.finish_upload_calls.values().sum::<u32>(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_sequences_of_the_user_are_told_apart_by_capture_times() {
    let setup = Setup::start(MapillaryConfig {
        overlap_decoys: 2,
        faults: MapillaryFaults {
            seed: Some(DECOYS_FIRST_SEED),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("decoys", &[&generate(dir.path(), small(6))]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    assert_eq!(
        stats
            .sequences
            .iter()
            .filter(|s| s.origin == SequenceOrigin::Decoy)
            .count(),
        2
    );
    assert_others_sort_first(&setup);
    assert_eq!(outcome.keys["sequence_key"], uploaded_keys(&setup)[0]);
}

/// A seed under which the fake's other sequences get keys that sort before ours, so a client that
/// takes the first sequence of the lookup window (in key order) gets the wrong one every time.
const DECOYS_FIRST_SEED: u64 = 6;

/// The precondition of the seeded tests: every sequence not uploaded by us sorts before ours.
fn assert_others_sort_first(setup: &Setup) {
    let stats = setup.fake.stats();
    let ours = uploaded_keys(setup);
    let others: Vec<&str> = stats
        .sequences
        .iter()
        .filter(|s| s.origin != SequenceOrigin::Upload)
        .map(|s| s.key.as_str())
        .collect();
    assert!(!others.is_empty());
    assert!(
        others.iter().all(|o| ours.iter().all(|k| *o < k.as_str())),
        "the seed no longer puts the other sequences first: {others:?} vs ours {ours:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indistinguishable_sequence_is_recorded_as_ambiguous_not_guessed() {
    // A twin at our capture times and places that appears after we published (so it was not there
    // before: nothing tells the two apart) is recorded as ambiguous, not guessed.
    let setup = Setup::start(MapillaryConfig {
        publish_after_lookups: 1,
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("twin", &[&generate(dir.path(), small(6))]);
    let first = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Unpublished, "{first:?}");
    let twin: Vec<SeededImage> = sequence
        .images
        .iter()
        .map(|i| SeededImage {
            captured_at_ms: i.captured_at_ms,
            lat: i.latitude,
            lon: i.longitude,
        })
        .collect();
    setup.fake.seed_sequence(&twin);
    let outcome = setup
        .run(request(&sequence, RunMode::Recheck))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Unpublished, "{outcome:?}");
    let message = outcome.message.unwrap();
    let stats = setup.fake.stats();
    assert_eq!(stats.sequences.len(), 2);
    for s in &stats.sequences {
        assert!(message.contains(&s.key), "{message} lacks {}", s.key);
    }
    assert!(message.contains("not guessed"), "{message}");
    assert!(outcome.keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_that_was_there_before_publishing_is_never_our_key() {
    // Photos already on Mapillary at exactly our capture times and places (an earlier MTPDU/v3 upload):
    // seen before publishing, so never assigned; our own sequence is found instead.
    let bbox_pad = 0.0001;
    let start = GenerateOptions::default().start;
    let setup = Setup::start(MapillaryConfig {
        extra_sequences: vec![ExtraSequence {
            start_ms: T0,
            end_ms: T0 + 5000,
            bbox: [
                start.1 - bbox_pad,
                start.0 - bbox_pad,
                start.1 + bbox_pad,
                start.0 + bbox_pad,
            ],
            image_count: 6,
        }],
        faults: MapillaryFaults {
            seed: Some(DECOYS_FIRST_SEED),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("twin", &[&generate(dir.path(), small(6))]);
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    let ours = uploaded_keys(&setup);
    assert_eq!(ours.len(), 1);
    assert_others_sort_first(&setup);
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(outcome.keys["sequence_key"], ours[0]);
}

/// Four images, two minutes, three more: a sequence Mapillary takes as two parts (the folders are kept
/// while the first value lives).
fn two_minute_gap(id: &str) -> ([tempfile::TempDir; 2], SequenceDescriptor) {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = generate(a_dir.path(), small(4));
    let b = generate(
        b_dir.path(),
        GenerateOptions {
            start_time_ms: T0 + 3000 + 120_000,
            start: a.images.last().map(|i| (i.latitude, i.longitude)).unwrap(),
            seed: 2,
            ..small(3)
        },
    );
    let sequence = descriptor(id, &[&a, &b]);
    ([a_dir, b_dir], sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_minute_gap_makes_two_manifests_and_two_keys() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let (_dirs, sequence) = two_minute_gap("split");
    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    let uploaded = stats.uploaded_sequences();
    assert_eq!(uploaded.len(), 2);
    assert_eq!(stats.finish_upload_calls.len(), 2);
    // In capture order: the first key is the sequence of the first four images.
    let first = uploaded
        .iter()
        .find(|s| s.images.len() == 4)
        .map(|s| s.key.clone())
        .unwrap();
    let second = uploaded
        .iter()
        .find(|s| s.images.len() == 3)
        .map(|s| s.key.clone())
        .unwrap();
    assert_eq!(outcome.keys["sequence_key"], format!("{first},{second}"));
    let message = outcome.message.unwrap();
    assert!(
        message.contains("part 1 (4 images") && message.contains("part 2 (3 images"),
        "{message}"
    );
}

/// Each part's images are found acknowledged from that part's records (read a part at a time): with the
/// manifests forgotten, a run sends the two manifests again and not one image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_of_every_part_are_found_acknowledged_from_their_records() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let (_dirs, sequence) = two_minute_gap("parts");
    let mut unpublished = request(&sequence, RunMode::Upload);
    unpublished.options.insert("no_publish".into(), true.into());
    let outcome = setup.run(unpublished).await.unwrap();
    assert_eq!(outcome.state, SequenceState::DryRun, "{outcome:?}");
    let sent = setup.fake.stats().request_count("POST /upload/:key");
    assert_eq!(sent, 9, "7 images and 2 manifests");
    let ctx = setup.host.inner.context();
    for part in 0..2 {
        ctx.state()
            .delete(&format!("seq/parts/part/{part}"))
            .unwrap();
    }

    let outcome = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(
        setup.fake.stats().request_count("POST /upload/:key"),
        sent + 2,
        "the manifests only"
    );
    let totals = setup
        .host
        .inner
        .progress_events()
        .into_iter()
        .rfind(|e| matches!(e, ProgressEvent::Totals { .. }));
    assert!(
        matches!(
            totals,
            Some(ProgressEvent::Totals {
                files_done: 7,
                files_total: 7,
                ..
            })
        ),
        "{totals:?}"
    );
    assert!(
        ctx.state().list("seq/parts/img/").unwrap().is_empty(),
        "the records go once published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_anything_is_sent() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sequence = descriptor("air", &[&generate(dir.path(), small(2))]);
    sequence.transport = plugin_api::transport::TransportType::parse("Air/Paraglide").ok();
    let err = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);

    // A cancelled run stops before sending anything.
    sequence.transport = None;
    setup.host.inner.cancel();
    let err = setup
        .run(request(&sequence, RunMode::Upload))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
    assert_eq!(setup.fake.stats().upload_bytes_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_upload_stops_promptly_and_resumes_cleanly() {
    let setup = Setup::start(MapillaryConfig {
        faults: MapillaryFaults {
            throttle_bytes_per_sec: Some(1_000_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(
        dir.path(),
        GenerateOptions {
            target_bytes: Some(400_000),
            ..small(8)
        },
    );
    let sequence = descriptor("cancel", &[&generated]);
    let total: u64 = sequence.images.iter().map(|i| i.size_bytes).sum();
    let cancel = async {
        while setup.fake.stats().upload_bytes_received < 600_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        setup.host.inner.cancel();
    };
    let (result, ()) = tokio::join!(setup.run(request(&sequence, RunMode::Upload)), cancel);
    let err = result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    // Promptly: the run returned long before the (throttled) upload could have finished, not by a
    // clock but by what the server had received when it returned.
    let at_return = setup.fake.stats();
    assert!(
        at_return.upload_bytes_received < total,
        "stopped late: {} of {total} bytes already sent",
        at_return.upload_bytes_received
    );
    assert!(at_return.finish_upload_calls.is_empty());

    // After a restart the upload goes on where it stopped.
    setup.fake.set_faults(MapillaryFaults::default());
    wait_until_no_upload_in_flight(&setup).await;
    let restarted = setup.restarted();
    let outcome = Mapillary
        .run(&restarted.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(setup.fake.stats().bytes_resent, 0);
}

/// Polls the fake until no upload body is still streaming (what a dropped or cancelled run left on the
/// wire has been taken in); gives up after 10 s as a safety net, not a timing assertion.
async fn wait_until_no_upload_in_flight(setup: &Setup) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while setup.fake.stats().uploads_in_flight > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "an upload is still streaming"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_local_sequence_holds_is_never_taken() {
    // Two local sequences of the same photos (the folder copied and its files touched again): B is
    // published and visible first, while A's own sequence is not visible yet. B's sequence is at A's
    // capture times and places, but B's record holds its key, so A must not take it.
    let setup = Setup::start(MapillaryConfig {
        publish_after_lookups_by_call: vec![6, 0],
        ..MapillaryConfig::default()
    })
    .await;
    setup.authorise_with_token().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = descriptor("copy-a", &[&generate(a_dir.path(), small(6))]);
    let b_images = generate(
        b_dir.path(),
        GenerateOptions {
            seed: 2,
            ..small(6)
        },
    );
    let b = descriptor("copy-b", &[&b_images]);
    let places = |s: &SequenceDescriptor| -> Vec<(i64, String, String)> {
        s.images
            .iter()
            .map(|i| {
                let (lat, lon) = (i.latitude, i.longitude);
                (i.captured_at_ms, format!("{lat:.7}"), format!("{lon:.7}"))
            })
            .collect()
    };
    assert_eq!(
        places(&a),
        places(&b),
        "the copies must be at the same times and places"
    );

    let a_first = setup.run(request(&a, RunMode::Upload)).await.unwrap();
    assert_eq!(a_first.state, SequenceState::Unpublished, "{a_first:?}");
    let b_outcome = setup.run(request(&b, RunMode::Upload)).await.unwrap();
    assert_eq!(b_outcome.state, SequenceState::Published, "{b_outcome:?}");
    let b_key = b_outcome.keys["sequence_key"].clone();

    let mut a_key = None;
    for _ in 0..10 {
        let outcome = setup.run(request(&a, RunMode::Recheck)).await.unwrap();
        let key = outcome.keys.get("sequence_key").cloned();
        assert_ne!(
            key.as_deref(),
            Some(b_key.as_str()),
            "A took B's key: {outcome:?}"
        );
        if outcome.state == SequenceState::Published {
            a_key = key;
            break;
        }
    }
    let uploaded = uploaded_keys(&setup);
    assert_eq!(uploaded.len(), 2, "{uploaded:?}");
    let a_key = a_key.expect("A is published once its own sequence is visible");
    assert!(uploaded.contains(&a_key) && a_key != b_key);
}

/// A host that lends a sequence's images by range, as a host of plugin API 1.4 does, and notes every
/// read.
mod lending {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use plugin_api::ffi::abi_stable::sabi_trait::TD_Opaque;
    use plugin_api::ffi::abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
    use plugin_api::ffi::{HostServices, HostServices_TO};
    use plugin_api::prelude::*;
    use plugin_api::protocol::{ImageRange, IMAGES_SERVICE};
    use plugin_api::sdk::testing::TestHost;

    /// One read of lent images: where it began, how many it asked for, and how many images the run
    /// had acknowledged by then.
    #[derive(Debug, Clone, Copy)]
    pub struct LentRead {
        pub from: u64,
        pub count: u64,
        pub acknowledged: usize,
    }

    #[derive(Clone)]
    pub struct Lending {
        inner: TestHost,
        reads: Arc<Mutex<Vec<LentRead>>>,
        acknowledged: Arc<AtomicUsize>,
    }

    impl Lending {
        /// `inner`, lending `images`.
        pub fn new(inner: TestHost, images: Vec<ImageInfo>) -> Lending {
            Lending {
                inner: inner.lending(images),
                reads: Arc::default(),
                acknowledged: Arc::default(),
            }
        }

        pub fn context(&self) -> Context {
            Context::new(HostServices_TO::from_value(self.clone(), TD_Opaque))
        }

        pub fn reads(&self) -> Vec<LentRead> {
            self.reads.lock().unwrap().clone()
        }
    }

    impl HostServices for Lending {
        fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
            self.inner.log(level, target, message)
        }
        fn progress(&self, event: RStr<'_>) {
            self.inner.progress(event)
        }
        fn env(&self, key: RStr<'_>) -> ROption<RString> {
            HostServices::env(&self.inner, key)
        }
        fn state_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
            self.inner.state_get(key)
        }
        fn state_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
            // An image entry is written once the service acknowledged the image.
            if key.as_str().contains("/img/") {
                self.acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.state_put(key, value)
        }
        fn state_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
            self.inner.state_delete(key)
        }
        fn state_list(&self, prefix: RStr<'_>) -> RResult<RVec<Tuple2<RString, RString>>, RString> {
            self.inner.state_list(prefix)
        }
        fn secret_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
            self.inner.secret_get(key)
        }
        fn secret_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
            self.inner.secret_put(key, value)
        }
        fn secret_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
            self.inner.secret_delete(key)
        }
        fn is_cancelled(&self) -> bool {
            self.inner.is_cancelled()
        }
        fn authorize(&self, prompt: RStr<'_>) -> RResult<RString, RString> {
            self.inner.authorize(prompt)
        }
        fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
            if method.as_str() == IMAGES_SERVICE {
                if let Ok(range) = serde_json::from_str::<ImageRange>(payload.as_str()) {
                    self.reads.lock().unwrap().push(LentRead {
                        from: range.from,
                        count: range.count,
                        acknowledged: self.acknowledged.load(Ordering::SeqCst),
                    });
                }
            }
            self.inner.extension(method, payload)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lent_images_are_read_a_part_at_a_time_never_all_at_once() {
    let setup = Setup::start(MapillaryConfig::default()).await;
    setup.authorise_with_token().await;
    let dir = tempfile::tempdir().unwrap();
    // Two parts: Mapillary takes at most 1,000 images in one sequence.
    let generated = generate(dir.path(), small(1_100));
    let sequence = descriptor("seq-lent", &[&generated]);
    let host = lending::Lending::new(setup.host.inner.clone(), sequence.images.clone());
    // As a plugin API 1.4 host asks: the request's sequence without its images.
    let outcome = Mapillary
        .run_paged(
            &host.context(),
            request(&sequence.header(), RunMode::Upload),
            RunImages::lent(1_100),
        )
        .await
        .expect("the upload runs");
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = setup.fake.stats();
    let published: Vec<usize> = stats
        .uploaded_sequences()
        .iter()
        .map(|s| s.images.len())
        .collect();
    assert_eq!(published, [1_000, 100]);
    assert!(stats.entities.values().all(|e| e.offset > 0));
    let reads = host.reads();
    // Never more than a page (or a part) at once: collecting them would read all 1,100 in one go.
    assert!(reads.iter().all(|r| r.count <= 1_000), "{reads:?}");
    // The second part's images are read for sending when its turn comes, while the first part's
    // are being acknowledged: not held from the start.
    assert!(
        reads
            .iter()
            .any(|r| r.from >= 1_000 && (1..1_000).contains(&r.acknowledged)),
        "{reads:?}"
    );
}
