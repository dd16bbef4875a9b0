//! What the Panoramax provider's tests share: a generated sequence as the provider receives it, and a test
//! host pointed at a fake Panoramax.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;

use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_fakes::FakeService;
use mtp_panoramax::Panoramax;
use mtp_sequence::generate::{GenerateOptions, GeneratedSequence};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;
use provider_tests::conformance::Pace;

pub fn generate(dir: &Path, count: usize, seed: u64) -> GeneratedSequence {
    let options = GenerateOptions {
        count,
        seed,
        ..GenerateOptions::default()
    };
    provider_tests::sequences::generate(dir, options)
}

pub fn descriptor(id: &str, generated: &GeneratedSequence) -> SequenceDescriptor {
    provider_tests::sequences::descriptor(id, "test walk", &[generated])
}

/// The fake at the conformance suite's pace: pictures taken at once and processed in 20 ms, or each
/// picture answered after 300 ms (a run can be cancelled mid-way through its uploads).
pub async fn started(pace: Pace) -> FakePanoramax {
    let mut config = PanoramaxConfig {
        processing: std::time::Duration::from_millis(20),
        ..PanoramaxConfig::default()
    };
    if pace == Pace::Slow {
        config.faults.upload_delay = std::time::Duration::from_millis(300);
    }
    FakePanoramax::start(config).await.expect("the fake starts")
}

pub fn host(fake: &FakePanoramax) -> TestHost {
    let mut host = TestHost::new();
    for (key, value) in fake.env() {
        host = host.with_env(&key, &value);
    }
    host.with_env("PANORAMAX_RETRY_BASE_MS", "5")
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
        options,
        ..provider_tests::conformance::plain_request(sequence.clone(), mode, false)
    }
}
