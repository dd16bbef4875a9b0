//! Against a REAL Panoramax server (GeoVisio, `scripts/geovisio/start.sh`): a picture the server refused
//! (no GPS position) is sent again once its file is fixed, into the same upload set, after the set was
//! published; the set is dispatched again and the sequence ends published with every picture.
//!
//! Runs only when `MTP_PANORAMAX_REAL_URL` and `MTP_PANORAMAX_REAL_TOKEN_FILE` are set (start.sh prints
//! them); otherwise it says it skipped.

use std::time::{Duration, Instant};

use mtp_panoramax::Panoramax;
use mtp_sequence::generate::{write_image, GenerateOptions, ImageSpec};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

mod common;

/// One `mtp upload` (with the last outcome, as the host passes it), then re-checks as `mtp status` does
/// until the set is no longer processing.
async fn upload(
    host: &TestHost,
    sequence: &SequenceDescriptor,
    previous: Option<RunOutcome>,
) -> RunOutcome {
    let ctx = host.context();
    let mut request = common::request(sequence, RunMode::Upload);
    request.previous = previous;
    let mut outcome = Panoramax.run(&ctx, request).await.expect("the upload runs");
    let deadline = Instant::now() + Duration::from_secs(180);
    while outcome.state == SequenceState::Unpublished && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        outcome = Panoramax
            .run(&ctx, common::request(sequence, RunMode::Recheck))
            .await
            .expect("the re-check runs");
    }
    outcome
}

#[tokio::test]
async fn a_fixed_refused_picture_joins_its_published_sequence_on_a_real_panoramax() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(token_file)) = (
        var("MTP_PANORAMAX_REAL_URL"),
        var("MTP_PANORAMAX_REAL_TOKEN_FILE"),
    ) else {
        eprintln!(
            "real_resend: skipped (set MTP_PANORAMAX_REAL_URL and MTP_PANORAMAX_REAL_TOKEN_FILE, e.g. \
             with eval \"$(scripts/geovisio/start.sh)\")"
        );
        return;
    };
    let token = std::fs::read_to_string(&token_file).unwrap();
    let host = TestHost::new()
        .with_env("PANORAMAX_URL", &url)
        .with_env("PANORAMAX_RETRY_BASE_MS", "50");
    Panoramax
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some(token.trim().to_string()),
            },
        )
        .await
        .expect("the token is accepted");

    // The server refuses the same bytes twice instance-wide: pictures of this run only.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let dir = tempfile::tempdir().unwrap();
    let generated = provider_tests::sequences::generate(
        dir.path(),
        GenerateOptions {
            count: 3,
            seed,
            width: 320,
            height: 160,
            ..GenerateOptions::default()
        },
    );
    let broken = &generated.images[1];
    let fixed = std::fs::read(&broken.path).unwrap();
    write_image(
        &broken.path,
        &ImageSpec {
            latitude: None,
            longitude: None,
            captured_at_ms: Some(broken.captured_at_ms),
            width: 320,
            height: 160,
            seed,
            ..ImageSpec::default()
        },
    )
    .unwrap();
    // A host that does not say which tags hold what: the server decides.
    let sequence = common::descriptor(&format!("real-fix-{seed}"), &generated);

    let first = upload(&host, &sequence, None).await;
    let message = first.message.clone().unwrap_or_default();
    assert_eq!(first.state, SequenceState::Published, "{first:?}");
    assert!(message.contains("2 pictures"), "{message}");
    assert!(
        message.contains(&format!(
            "{}: refused by Panoramax (invalid_metadata)",
            broken.file_name
        )),
        "{message}"
    );

    std::fs::write(&broken.path, &fixed).unwrap();
    let before = host.progress_events().len();
    let fixed_outcome = upload(&host, &sequence, Some(first.clone())).await;
    let notes = format!("{:?}", &host.progress_events()[before..]);
    assert!(
        notes.contains("1 refused picture(s) changed since Panoramax refused them"),
        "{notes}"
    );
    assert_eq!(
        fixed_outcome.keys.get("upload_set_id"),
        first.keys.get("upload_set_id"),
        "the same upload set"
    );
    assert_eq!(
        fixed_outcome.state,
        SequenceState::Published,
        "{fixed_outcome:?}"
    );
    let message = fixed_outcome.message.clone().unwrap_or_default();
    assert!(message.contains("3 pictures"), "{message}");
    assert!(!message.contains("refused"), "{message}");
    eprintln!(
        "real_resend: collections before {:?}, after {:?}",
        first.keys.get("collection_ids"),
        fixed_outcome.keys.get("collection_ids")
    );
}
