//! Pictures whose files share one whole second reach Panoramax in their capture order, however they
//! arrive: the spread times go as `override_capture_time`, and only where the file's own time is not the
//! one mtp orders by.

use std::collections::BTreeMap;
use std::time::Duration;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig, PanoramaxFaults};
use mtp_panoramax::Panoramax;
use mtp_sequence::generate::GenerateOptions;
use mtp_sequence::{read_sequence, Overrides};
use plugin_api::prelude::*;
use plugin_api::serde_json::Value;

mod common;
use common::authorised;

#[tokio::test]
async fn same_second_pictures_sent_four_at_a_time_keep_the_capture_order() {
    let dir = tempfile::tempdir().unwrap();
    // A time-lapse faster than one frame a second, written in whole seconds (as MTPDU writes them).
    let generated = provider_tests::sequences::generate(
        dir.path(),
        GenerateOptions {
            count: 6,
            seed: 41,
            interval_ms: 0,
            ..GenerateOptions::default()
        },
    );
    // The sequence as the host hands it over: equal times spread within their second.
    let scanned = read_sequence(dir.path(), &Overrides::default()).unwrap();
    let (mut sequence, _) = scanned.to_descriptor(false).unwrap();
    sequence.id = "seq-order".into();
    let times: Vec<i64> = sequence.images.iter().map(|i| i.captured_at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");

    // The first pictures arrive last, as over a link where they take longer.
    let names: Vec<String> = generated
        .images
        .iter()
        .map(|i| i.file_name.clone())
        .collect();
    let fake = FakePanoramax::start(PanoramaxConfig {
        processing: Duration::from_millis(20),
        faults: PanoramaxFaults {
            slow_files: BTreeMap::from([
                (names[0].clone(), Duration::from_millis(400)),
                (names[1].clone(), Duration::from_millis(250)),
            ]),
            ..PanoramaxFaults::default()
        },
        ..PanoramaxConfig::default()
    })
    .await
    .unwrap();
    let host = authorised(&fake, "alice-token").await;
    let ctx = host.context();
    let mut request = common::request(&sequence, RunMode::Upload);
    request.options.insert("jobs".into(), 4.into());
    let mut outcome = Panoramax.run(&ctx, request).await.expect("the upload runs");
    for _ in 0..200 {
        if outcome.state != SequenceState::Unpublished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        outcome = Panoramax
            .run(&ctx, common::request(&sequence, RunMode::Recheck))
            .await
            .unwrap();
    }
    assert_eq!(outcome.state, SequenceState::Published, "{outcome:?}");

    let stats = fake.stats();
    let set = stats.upload_sets.values().next().unwrap();
    let arrived: Vec<&str> = {
        let mut files: Vec<_> = set.files.iter().collect();
        files.sort_by_key(|f| f.arrival);
        files.iter().map(|f| f.file_name.as_str()).collect()
    };
    assert_ne!(
        arrived, names,
        "the test needs pictures arriving out of order"
    );
    let collection = outcome.keys.get("collection_ids").unwrap().clone();
    let items: Value = plugin_api::http::reqwest::get(format!(
        "{}/api/collections/{collection}/items",
        fake.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let order: Vec<&str> = items["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["original_file:name"].as_str().unwrap())
        .collect();
    assert_eq!(order, names, "the collection holds them in capture order");

    // The first keeps the time its file gives; the others carry theirs, with milliseconds.
    let overrides: Vec<Option<String>> = names
        .iter()
        .map(|n| {
            let f = set.files.iter().find(|f| &f.file_name == n).unwrap();
            f.override_capture_time.clone()
        })
        .collect();
    assert_eq!(
        overrides[0], None,
        "a time the file gives is not overridden"
    );
    for (image, sent) in sequence.images.iter().zip(&overrides).skip(1) {
        assert_eq!(
            sent.as_deref(),
            Some(plugin_api::time::format_utc(image.captured_at_ms).as_str())
        );
    }
}
