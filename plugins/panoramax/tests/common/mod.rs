//! What the Panoramax provider's tests share: a generated sequence as the provider receives it, and a test
//! host pointed at a fake Panoramax.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;

use mtp_fakes::fake_panoramax::FakePanoramax;
use mtp_panoramax::Panoramax;
use mtp_sequence::generate::{generate_sequence, GenerateOptions, GeneratedSequence};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

pub fn generate(dir: &Path, count: usize, seed: u64) -> GeneratedSequence {
    generate_sequence(
        dir,
        &GenerateOptions {
            count,
            seed,
            ..GenerateOptions::default()
        },
    )
    .expect("generate a sequence")
}

pub fn descriptor(id: &str, generated: &GeneratedSequence) -> SequenceDescriptor {
    let images = generated
        .images
        .iter()
        .map(|i| ImageInfo {
            path: i.path.to_string_lossy().into_owned(),
            file_name: i.file_name.clone(),
            size_bytes: i.size_bytes,
            latitude: i.latitude,
            longitude: i.longitude,
            altitude: Some(i.altitude),
            captured_at_ms: i.captured_at_ms,
            heading: Some(i.heading),
            projection: i.projection.clone(),
            width: Some(i.width),
            height: Some(i.height),
            photo_uuid: i.photo_uuid.clone(),
            sources: None,
        })
        .collect();
    SequenceDescriptor {
        schema: 1,
        id: id.to_string(),
        root: generated.root.to_string_lossy().into_owned(),
        name: "test walk".into(),
        description: String::new(),
        transport: None,
        tags: vec![],
        source: Default::default(),
        images,
    }
}

pub fn host(fake: &FakePanoramax) -> TestHost {
    TestHost::new()
        .with_env("PANORAMAX_URL", &fake.base_url())
        .with_env("PANORAMAX_RETRY_BASE_MS", "5")
        .with_env("PANORAMAX_CLAIM_POLL_MS", "20")
}

pub async fn authorised(fake: &FakePanoramax, token: &str) -> TestHost {
    let host = host(fake);
    Panoramax
        .authorize(
            &host.context(),
            AuthRequest {
                token: Some(token.into()),
            },
        )
        .await
        .expect("the token is accepted");
    host
}

pub fn request(sequence: &SequenceDescriptor, mode: RunMode) -> RunRequest {
    let mut options = plugin_api::serde_json::Map::new();
    options.insert("jobs".into(), 3.into());
    RunRequest {
        mode,
        sequence: sequence.clone(),
        dry_run: false,
        upstream: Default::default(),
        previous: None,
        options,
    }
}
