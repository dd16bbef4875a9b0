//! Driving the integration in-process against the fake Strava: a host whose authorisation prompt acts
//! as a browser on the fake's consent page, and sequences built in memory (the provider reads no image
//! file: only positions and times).

#![allow(dead_code)]

use std::time::Duration;

use mtp_fakes::fake_strava::{FakeStrava, StravaConfig};
use mtp_fakes::FakeService;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;
use provider_tests::conformance::Pace;
pub use provider_tests::host::BrowserHost;

/// 2020-05-10T06:45:03Z.
pub const T0: i64 = 1_589_093_103_000;

/// The fake and a host whose `.env` points at it, with short waits.
pub struct Setup {
    pub fake: FakeStrava,
    pub host: BrowserHost,
}

pub fn host_for(fake: &FakeStrava, extra: &[(&str, &str)]) -> BrowserHost {
    let config = fake.config();
    let mut host = TestHost::new();
    for (key, value) in fake.env() {
        host = host.with_env(&key, &value);
    }
    let mut host = host
        .with_env("STRAVA_REDIRECT_URI", "http://127.0.0.1:9/strava/callback")
        .with_env("STRAVA_RETRY_BASE_MS", "5")
        // Polls a few times a second: fast tests, well within the fake's 100 reads per window.
        .with_env("STRAVA_POLL_MS", "100")
        .with_env(
            "STRAVA_RATE_WINDOW_MS",
            &config.window.as_millis().to_string(),
        );
    for (k, v) in extra {
        host = host.with_env(k, v);
    }
    BrowserHost { inner: host }
}

impl Setup {
    pub async fn start(config: StravaConfig) -> Setup {
        Setup::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: StravaConfig, env: &[(&str, &str)]) -> Setup {
        let fake = FakeStrava::start(config).await.expect("the fake starts");
        let host = host_for(&fake, env);
        Setup { fake, host }
    }

    /// Logs in through the fake's consent page.
    pub async fn authorised(config: StravaConfig, env: &[(&str, &str)]) -> Setup {
        let setup = Setup::start_with_env(config, env).await;
        mtp_strava::Strava
            .authorize(&setup.host.context(), AuthRequest { token: None })
            .await
            .expect("logging in through the fake works");
        setup
    }

    pub async fn run(
        &self,
        sequence: &SequenceDescriptor,
        mode: RunMode,
    ) -> Result<RunOutcome, PluginError> {
        mtp_strava::Strava
            .run(&self.host.context(), request(sequence, mode, false))
            .await
    }
}

/// The fake at the conformance suite's pace: processing in 50 ms, or in 1.5 s (a run can be cancelled
/// while it polls).
pub async fn started(pace: Pace) -> FakeStrava {
    let processing = match pace {
        Pace::Quick => Duration::from_millis(50),
        Pace::Slow => Duration::from_millis(1500),
    };
    FakeStrava::start(StravaConfig {
        processing,
        ..StravaConfig::default()
    })
    .await
    .expect("the fake starts")
}

/// A fast fake: processing in 50 ms.
pub fn quick() -> StravaConfig {
    StravaConfig {
        processing: Duration::from_millis(50),
        ..StravaConfig::default()
    }
}

pub fn request(sequence: &SequenceDescriptor, mode: RunMode, dry_run: bool) -> RunRequest {
    RunRequest {
        mode,
        sequence: sequence.clone(),
        dry_run,
        upstream: Default::default(),
        previous: None,
        options: Default::default(),
    }
}

/// A walk of `count` images, one every 2 s, about 3 m apart, starting at `start_ms`.
pub fn walk(id: &str, count: usize, start_ms: i64) -> SequenceDescriptor {
    let images = (0..count)
        .map(|i| ImageInfo {
            path: format!("/seq/{id}/{i:04}.jpg"),
            file_name: format!("{i:04}.jpg"),
            size_bytes: 1000,
            latitude: 52.25 + i as f64 * 0.00003,
            longitude: 6.78,
            altitude: Some(12.0),
            captured_at_ms: start_ms + i as i64 * 2000,
            heading: Some(0.0),
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            sources: None,
        })
        .collect();
    SequenceDescriptor {
        schema: 1,
        id: id.into(),
        root: format!("/seq/{id}"),
        name: "Morning walk".into(),
        description: "Uploaded by mtp".into(),
        transport: TransportType::parse("Walk").ok(),
        tags: vec![],
        source: Default::default(),
        images,
    }
}
