//! The provider in-process against the fake Panoramax: authorisation, upload, resume, refusals.

use std::collections::BTreeSet;
use std::time::Duration;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig, PanoramaxFaults};
use mtp_panoramax::Panoramax;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

mod common;
use common::{authorised, descriptor, generate, host, request};

/// Runs an upload, then re-checks until the set is no longer processing.
async fn upload_until_settled(host: &TestHost, sequence: &SequenceDescriptor) -> RunOutcome {
    let ctx = host.context();
    let mut outcome = Panoramax
        .run(&ctx, request(sequence, RunMode::Upload))
        .await
        .expect("the upload runs");
    for _ in 0..200 {
        if outcome.state != SequenceState::Unpublished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        outcome = Panoramax
            .run(&ctx, request(sequence, RunMode::Recheck))
            .await
            .expect("the re-check runs");
    }
    outcome
}

fn assert_each_once(fake: &FakePanoramax, count: usize) {
    let stats = fake.stats();
    let per_md5 = stats.stored_per_md5();
    assert_eq!(per_md5.len(), count, "every picture is stored: {per_md5:?}");
    assert!(per_md5.values().all(|n| *n == 1), "none twice: {per_md5:?}");
}

#[tokio::test]
async fn token_is_checked_with_users_me_before_it_is_stored() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let host = host(&fake);
    let refused = Panoramax
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some("not-a-token".into()),
            },
        )
        .await
        .expect_err("an unknown token is refused");
    assert_eq!(refused.kind, ErrorKind::Auth);
    assert_eq!(host.secret("token"), None);
    let outcome = Panoramax
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some("alice-token".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.account, "alice");
    assert_eq!(host.secret("token").as_deref(), Some("alice-token"));
    let status = Panoramax.auth_status(&host.context()).await.unwrap();
    assert!(status.authorised);
    assert_eq!(status.account.as_deref(), Some("alice"));
}

#[tokio::test]
async fn browser_flow_waits_until_the_generated_token_is_claimed() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let host = host(&fake);
    let ctx = host.context();
    let flow = tokio::spawn(async move { Panoramax.authorize(&ctx, AuthRequest::default()).await });
    // The person: waits for the claim page to exist, then opens it (the fake's login is automatic).
    let link = loop {
        if let Some(link) = fake.unclaimed_links().pop() {
            break link;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(!flow.is_finished(), "the flow waits for the claim");
    let page = plugin_api::http::reqwest::get(&link).await.unwrap();
    assert!(page.status().is_success());
    let outcome = flow.await.unwrap().expect("claimed");
    assert_eq!(outcome.account, "alice");
    let stored = host.secret("token").expect("the claimed token is stored");
    assert!(stored.starts_with("generated-"), "{stored}");
    let opened = host
        .progress_events()
        .into_iter()
        .any(|e| matches!(e, ProgressEvent::Step { message: Some(m), .. } if m.contains(&link)));
    assert!(opened, "the user is told which page to open");
}

#[tokio::test]
async fn uploads_one_set_completes_and_reports_collections() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 7, 11);
    let sequence = descriptor("seq-1", &generated);
    let host = authorised(&fake, "alice-token").await;
    let outcome = upload_until_settled(&host, &sequence).await;
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = fake.stats();
    assert_eq!(stats.creations, 1);
    let set_id = outcome.keys.get("upload_set_id").expect("upload set key");
    assert!(stats.upload_sets.contains_key(set_id));
    assert_eq!(
        outcome.keys.get("collection_ids"),
        Some(&format!("coll-{set_id}"))
    );
    assert!(outcome.keys["viewer"].contains(&format!("seq=coll-{set_id}")));
    // The page shows the collection from the outcome's links.
    assert_eq!(outcome.links.len(), 1, "{outcome:?}");
    assert_eq!(outcome.links[0].url, outcome.keys["viewer"]);
    assert_each_once(&fake, 7);
    // A second run sends nothing.
    let attempts = stats.upload_attempts;
    let again = Panoramax
        .run(&host.context(), request(&sequence, RunMode::Upload))
        .await
        .unwrap();
    assert_eq!(again.state, SequenceState::Published);
    assert_eq!(fake.stats().upload_attempts, attempts);
    assert_eq!(fake.stats().creations, 1);
}

#[tokio::test]
async fn lost_answers_and_503s_store_each_picture_once_in_one_set() {
    let fake = FakePanoramax::start(PanoramaxConfig {
        faults: PanoramaxFaults {
            uploads_503: 3,
            lose_upload_answers: 3,
            lose_create_answers: 1,
            ..PanoramaxFaults::default()
        },
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 8, 12);
    let sequence = descriptor("seq-2", &generated);
    let host = authorised(&fake, "alice-token").await;
    let outcome = upload_until_settled(&host, &sequence).await;
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let stats = fake.stats();
    assert_eq!(
        stats.creations, 1,
        "a lost creation answer is found by nonce"
    );
    assert_eq!(stats.upload_sets.len(), 1);
    assert!(stats.upload_attempts >= 8 + 3 + 3);
    assert_each_once(&fake, 8);
}

#[tokio::test]
async fn interrupted_run_resumes_from_the_server_file_list() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 6, 13);
    let sequence = descriptor("seq-3", &generated);
    let host = authorised(&fake, "alice-token").await;
    // A run that dies after the server stored 3 pictures: their answers never reach us.
    fake.set_faults(PanoramaxFaults {
        upload_delay: Duration::from_millis(50),
        ..PanoramaxFaults::default()
    });
    let ctx = host.context();
    let seq = sequence.clone();
    let first = tokio::spawn(async move {
        let mut one_job = request(&seq, RunMode::Upload);
        one_job.options.insert("jobs".into(), 1.into());
        Panoramax.run(&ctx, one_job).await
    });
    loop {
        let held: usize = fake
            .stats()
            .upload_sets
            .values()
            .map(|s| s.files.len())
            .sum();
        if held >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.abort();
    let _ = first.await;
    fake.set_faults(PanoramaxFaults::default());
    let before = fake.stats().upload_attempts;
    let outcome = upload_until_settled(&host, &sequence).await;
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    assert_eq!(fake.stats().creations, 1);
    assert!(
        fake.stats().upload_attempts - before <= 3 + 1,
        "the resumed run sends only what the server lacks"
    );
    assert_each_once(&fake, 6);
}

#[tokio::test]
async fn duplicates_of_another_set_are_named_and_the_set_is_completed_explicitly() {
    // With the in-process worker's quirk, an all-refused set is dispatched only by `complete`.
    let fake = FakePanoramax::start(PanoramaxConfig {
        faults: PanoramaxFaults {
            stall_all_refused: true,
            ..PanoramaxFaults::default()
        },
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 4, 14);
    let host = authorised(&fake, "alice-token").await;
    let first = upload_until_settled(&host, &descriptor("seq-a", &generated)).await;
    assert_eq!(first.state, SequenceState::Published);
    // The same files as another sequence: all refused as duplicates.
    let second = upload_until_settled(&host, &descriptor("seq-b", &generated)).await;
    assert_eq!(second.state, SequenceState::Published, "{second:?}");
    let message = second.message.clone().unwrap_or_default();
    assert!(message.contains("kept no picture"), "{message}");
    assert!(
        message.contains("IMG_000001.jpg: refused by Panoramax (file_duplicate)"),
        "{message}"
    );
    let set_id = &second.keys["upload_set_id"];
    let set = &fake.stats().upload_sets[set_id];
    assert_eq!(
        set.complete_calls, 1,
        "an all-refused set is completed explicitly"
    );
    assert_each_once(&fake, 4);
}

#[tokio::test]
async fn lent_images_are_read_a_page_at_a_time_and_refused_files_are_skipped() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 6, 19);
    let mut sequence = descriptor("seq-lent", &generated);
    // One file the server would refuse (no tag it reads): left out, the rest sent.
    sequence.images[2].sources = Some(plugin_api::sequence::MetadataSources::default());
    let host = authorised(&fake, "alice-token")
        .await
        .lending(sequence.images.clone());
    // As a plugin API 1.4 host asks: the request's sequence without its images.
    let outcome = Panoramax
        .run_paged(
            &host.context(),
            request(&sequence.header(), RunMode::Upload),
            RunImages::lent(6),
        )
        .await
        .expect("the upload runs");
    assert_ne!(outcome.state, SequenceState::Failed, "{outcome:?}");
    assert_each_once(&fake, 5);
    let stats = fake.stats();
    let set = stats.upload_sets.values().next().expect("one set");
    assert!(
        set.files
            .iter()
            .all(|f| f.file_name != sequence.images[2].file_name),
        "the refused file is not sent"
    );
    assert_eq!(set.estimated_nb_files, Some(5), "announced: what is sent");
    // What is accepted, then what is due, then the sends: each a pass over the lent pages.
    assert!(host.ranges_read() >= 3, "{}", host.ranges_read());
}

#[tokio::test]
async fn files_without_metadata_are_named_and_the_rest_published() {
    let fake = FakePanoramax::start(PanoramaxConfig {
        faults: PanoramaxFaults {
            missing_fields: BTreeSet::from(["IMG_000002.jpg".to_string()]),
            ..PanoramaxFaults::default()
        },
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 3, 15);
    let host = authorised(&fake, "alice-token").await;
    let outcome = upload_until_settled(&host, &descriptor("seq-m", &generated)).await;
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let message = outcome.message.unwrap_or_default();
    assert!(message.contains("2 pictures"), "{message}");
    assert!(
        message.contains("IMG_000002.jpg: refused by Panoramax (invalid_metadata)")
            && message.contains("missing_fields")
            && message.contains("write its GPS position and capture time"),
        "{message}"
    );
}

#[tokio::test]
async fn another_account_is_refused_on_the_set_with_a_clear_line() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 3, 16);
    let sequence = descriptor("seq-o", &generated);
    let host = authorised(&fake, "alice-token").await;
    // Alice's set exists, then the user authorises as Bob and uploads again.
    fake.set_faults(PanoramaxFaults {
        uploads_503: 100,
        ..PanoramaxFaults::default()
    });
    let _ = Panoramax
        .run(&host.context(), request(&sequence, RunMode::Upload))
        .await
        .expect_err("the 503s outlast the retries");
    fake.set_faults(PanoramaxFaults::default());
    Panoramax
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some("bob-token".into()),
            },
        )
        .await
        .unwrap();
    let err = Panoramax
        .run(&host.context(), request(&sequence, RunMode::Upload))
        .await
        .expect_err("Bob may not add to Alice's set");
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("HTTP 403") && err.message.contains("uploading IMG_"),
        "{}",
        err.message
    );
    assert_eq!(fake.stats().creations, 1, "no second set");
}

#[test]
fn eligibility_predicts_missing_fields_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 2, 17);
    let mut sequence = descriptor("seq-e", &generated);
    assert!(Panoramax.eligibility(&sequence).eligible);
    // A file in which the host's reader found no tag Panoramax reads: the server would answer 400
    // missing_fields datetime + location for it alone, so it is left out and the rest stays eligible.
    let mut image = sequence.images[0].clone();
    image.file_name = "bare.jpg".into();
    image.sources = Some(plugin_api::sequence::MetadataSources::default());
    sequence.images.push(image);
    assert!(Panoramax.eligibility(&sequence).eligible);
    let accepted =
        mtp_panoramax::eligibility::accepted(&plugin_api::sdk::Images::whole(&sequence.images))
            .unwrap();
    assert_eq!(accepted.count, 2);
    let note = accepted.left_out.unwrap();
    assert!(note.contains("1 of 3 files"), "{note}");
    assert!(
        note.contains("(bare.jpg): no datetime or location Panoramax reads"),
        "{note}"
    );
    // Only when no file would be taken is the sequence not eligible.
    sequence.images.retain(|i| i.file_name == "bare.jpg");
    let answer = Panoramax.eligibility(&sequence);
    assert!(!answer.eligible);
    assert!(answer.reason.unwrap().contains("1 of 1 files"));
    let mut equirect = descriptor("seq-360", &generated);
    equirect.images[0].projection = Projection::Equirectangular;
    equirect.images[1].projection = Projection::Equirectangular;
    assert!(
        Panoramax.eligibility(&equirect).eligible,
        "360° is accepted"
    );
    equirect.images[0].projection = Projection::parse("cylindrical");
    assert!(!Panoramax.eligibility(&equirect).eligible);
}

#[tokio::test]
async fn a_published_sequence_whose_set_is_gone_is_only_said_to_be_gone() {
    let fake = FakePanoramax::start(PanoramaxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sequence = descriptor("seq-gone", &generate(dir.path(), 4, 21));
    let host = authorised(&fake, "alice-token").await;
    let published = upload_until_settled(&host, &sequence).await;
    assert_eq!(published.state, SequenceState::Published, "{published:?}");
    let set_id = published.keys["upload_set_id"].clone();
    fake.lose_upload_set(&set_id);
    let attempts = fake.stats().upload_attempts;

    // An upload of a published sequence whose pictures all have an answer asks nothing; the re-check
    // (`mtp status`) finds the set gone, and later uploads say so too.
    let mut quiet = request(&sequence, RunMode::Upload);
    quiet.previous = Some(published.clone());
    let outcome = Panoramax.run(&host.context(), quiet).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");
    let mut previous = published;
    for mode in [RunMode::Recheck, RunMode::Upload, RunMode::Upload] {
        let mut again = request(&sequence, mode);
        again.previous = Some(previous.clone());
        let outcome = Panoramax.run(&host.context(), again).await.unwrap();
        assert!(
            outcome
                .message
                .as_deref()
                .is_some_and(|m| m.contains(&format!("upload set {set_id} no longer exists"))),
            "{outcome:?}"
        );
        assert!(
            outcome
                .next_action
                .as_deref()
                .is_some_and(|n| n.contains("--republish")),
            "{outcome:?}"
        );
        assert_eq!(fake.stats().creations, 1, "a new set was created");
        assert_eq!(
            fake.stats().upload_attempts,
            attempts,
            "pictures were sent again"
        );
        previous = outcome;
    }

    // Asked for: a new set with every picture.
    let mut republish = request(&sequence, RunMode::Upload);
    republish.previous = Some(previous);
    republish.options.insert("republish".into(), true.into());
    let outcome = Panoramax.run(&host.context(), republish).await.unwrap();
    assert_ne!(outcome.state, SequenceState::Failed, "{outcome:?}");
    assert_eq!(fake.stats().creations, 2);
    assert_eq!(fake.stats().upload_attempts, attempts + 4);
}
