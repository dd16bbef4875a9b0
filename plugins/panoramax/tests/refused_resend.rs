//! A picture Panoramax refused goes again, once, into the same upload set after the user fixed the file;
//! an unchanged one is not sent again.

use std::time::Duration;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_panoramax::Panoramax;
use mtp_sequence::generate::{write_image, ImageSpec};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

mod common;
use common::{authorised, descriptor, generate};

/// One `mtp upload` as the host runs it (with the last outcome), then re-checks until the set is no
/// longer processing, as `mtp status` would. Returns the settled outcome and the upload's own.
async fn upload(
    host: &TestHost,
    sequence: &SequenceDescriptor,
    previous: Option<RunOutcome>,
) -> (RunOutcome, RunOutcome) {
    let ctx = host.context();
    let mut request = common::request(sequence, RunMode::Upload);
    request.previous = previous;
    let first = Panoramax.run(&ctx, request).await.expect("the upload runs");
    let mut outcome = first.clone();
    for _ in 0..200 {
        if outcome.state != SequenceState::Unpublished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        outcome = Panoramax
            .run(&ctx, common::request(sequence, RunMode::Recheck))
            .await
            .expect("the re-check runs");
    }
    (outcome, first)
}

#[tokio::test]
async fn a_refused_picture_goes_again_once_after_its_file_is_fixed() {
    let fake = FakePanoramax::start(PanoramaxConfig {
        processing: Duration::from_millis(20),
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 3, 77);
    let broken = &generated.images[1];
    let fixed = std::fs::read(&broken.path).unwrap();
    // The same picture without its GPS position: geopic-tag-reader's rules refuse it (the fake reads it).
    write_image(
        &broken.path,
        &ImageSpec {
            latitude: None,
            longitude: None,
            captured_at_ms: Some(broken.captured_at_ms),
            seed: 77,
            ..ImageSpec::default()
        },
    )
    .unwrap();
    // A host that does not say which tags hold what: the server decides (the prediction is tested apart).
    let sequence = descriptor("seq-fix", &generated);
    let host = authorised(&fake, "alice-token").await;

    let (first, _) = upload(&host, &sequence, None).await;
    assert_eq!(first.state, SequenceState::Published, "{first:?}");
    let message = first.message.clone().unwrap_or_default();
    assert!(message.contains("2 pictures"), "{message}");
    assert!(
        message.contains(&format!(
            "{}: refused by Panoramax (invalid_metadata)",
            broken.file_name
        )) && message.contains("missing_fields: location"),
        "{message}"
    );
    let attempts = fake.stats().upload_attempts;
    assert_eq!(attempts, 3);

    // Unchanged: not sent again, and the refusal is still said, once.
    let before = host.progress_events().len();
    let (again, _) = upload(&host, &sequence, Some(first.clone())).await;
    let notes = format!("{:?}", &host.progress_events()[before..]);
    assert!(!notes.contains("changed since"), "{notes}");
    assert_eq!(fake.stats().upload_attempts, attempts, "not sent again");
    let message = again.message.clone().unwrap_or_default();
    assert_eq!(
        message
            .matches(&format!("{}: refused", broken.file_name))
            .count(),
        1,
        "{message}"
    );

    // Fixed as told (its GPS position written back): sent once more, into the same set.
    std::fs::write(&broken.path, &fixed).unwrap();
    let before = host.progress_events().len();
    let (fixed_outcome, upload_outcome) = upload(&host, &sequence, Some(again.clone())).await;
    assert_eq!(fake.stats().upload_attempts, attempts + 1, "sent once");
    let notes = format!("{:?}", &host.progress_events()[before..]);
    assert!(
        notes.contains(&format!(
            "1 refused picture(s) changed since Panoramax refused them: sending them again into the same upload set: {}",
            broken.file_name
        )),
        "{notes}"
    );
    assert_eq!(
        upload_outcome.keys.get("upload_set_id"),
        first.keys.get("upload_set_id")
    );
    assert_eq!(
        fixed_outcome.state,
        SequenceState::Published,
        "{fixed_outcome:?}"
    );
    let message = fixed_outcome.message.clone().unwrap_or_default();
    assert!(message.contains("3 pictures"), "{message}");
    assert!(!message.contains("refused"), "{message}");
    let stats = fake.stats();
    assert_eq!(stats.upload_sets.len(), 1, "the same upload set");
    let set = stats.upload_sets.values().next().unwrap();
    assert_eq!(
        set.files.len(),
        3,
        "the refused row was replaced: {:?}",
        set.files
    );
    assert!(set.files.iter().all(|f| f.picture_id.is_some()));
    assert!(set.complete_calls >= 1, "completed again after the re-send");

    // And never again.
    upload(&host, &sequence, Some(fixed_outcome)).await;
    assert_eq!(fake.stats().upload_attempts, attempts + 1);
}
