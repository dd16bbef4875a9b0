//! Helpers for driving the integration in-process against the fake Mapillary.

#![allow(dead_code)]

use std::path::Path;

use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig, MapillaryFaults};
use mtp_fakes::FakeService;
use mtp_mapillary::Mapillary;
use mtp_sequence::generate::{GenerateOptions, GeneratedSequence};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;
use provider_tests::conformance::Pace;
pub use provider_tests::host::BrowserHost;

/// 2020-05-10T06:45:03Z, the generator's default start.
pub const T0: i64 = 1_589_093_103_000;

/// A fake with `config` and a host whose `.env` points at it, with short retry delays.
pub struct Setup {
    pub fake: FakeMapillary,
    pub host: BrowserHost,
    pub config: MapillaryConfig,
}

impl Setup {
    pub async fn start(config: MapillaryConfig) -> Setup {
        Setup::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: MapillaryConfig, env: &[(&str, &str)]) -> Setup {
        let fake = FakeMapillary::start(config.clone())
            .await
            .expect("fake starts");
        let mut host = TestHost::new();
        for (k, v) in fake.env() {
            host = host.with_env(&k, &v);
        }
        let mut host = host
            .with_env("MAPILLARY_REDIRECT_URI", "http://127.0.0.1:9/callback")
            .with_env("MAPILLARY_RETRY_BASE_MS", "5");
        for (k, v) in env {
            host = host.with_env(k, v);
        }
        Setup {
            fake,
            host: BrowserHost { inner: host },
            config,
        }
    }

    pub fn ctx(&self) -> Context {
        self.host.context()
    }

    /// A fresh host (as after a restart) with this one's `.env`, state and token: a cancelled
    /// [`TestHost`] stays cancelled, so resuming needs a new one.
    pub fn restarted(&self) -> BrowserHost {
        self.host.restarted()
    }

    /// Stores the fake's configured user token, verified through `/me`.
    pub async fn authorise_with_token(&self) {
        Mapillary
            .authorize(
                &self.ctx(),
                AuthRequest {
                    token: Some(self.config.user_token.clone()),
                },
            )
            .await
            .expect("token accepted");
    }

    /// Runs the OAuth flow through the fake's consent page.
    pub async fn authorise_with_oauth(&self) -> AuthOutcome {
        Mapillary
            .authorize(&self.ctx(), AuthRequest { token: None })
            .await
            .expect("oauth flow completes")
    }

    pub async fn run(&self, request: RunRequest) -> Result<RunOutcome, PluginError> {
        Mapillary.run(&self.ctx(), request).await
    }

    /// Every state key the plugin stored.
    pub fn state_keys(&self) -> Vec<String> {
        let ctx = self.ctx();
        ctx.state()
            .list("")
            .expect("state lists")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// Bytes and files of all `Advance` events, and the last `Totals`.
    pub fn progress_sums(&self) -> (u64, u64, Option<ProgressEvent>) {
        let events = self.host.inner.progress_events();
        let mut sums = (0, 0);
        let mut totals = None;
        for e in events {
            match e {
                ProgressEvent::Advance { bytes, files } => {
                    sums.0 += bytes;
                    sums.1 += files;
                }
                t @ ProgressEvent::Totals { .. } => totals = Some(t),
                _ => {}
            }
        }
        (sums.0, sums.1, totals)
    }
}

/// Writes `opts.count` images into `dir`.
pub fn generate(dir: &Path, opts: GenerateOptions) -> GeneratedSequence {
    provider_tests::sequences::generate(dir, opts)
}

/// The descriptor the host would hand over for `generated` (several generated runs may be concatenated),
/// a walk.
pub fn descriptor(id: &str, generated: &[&GeneratedSequence]) -> SequenceDescriptor {
    let mut sequence = provider_tests::sequences::descriptor(id, "test", generated);
    sequence.transport = plugin_api::transport::TransportType::parse("Walk").ok();
    sequence
}

/// The fake at the conformance suite's pace: unthrottled, or taking in 300 KB/s (a run can be
/// cancelled mid-way through its uploads).
pub async fn started(pace: Pace) -> FakeMapillary {
    let throttle_bytes_per_sec = match pace {
        Pace::Quick => None,
        Pace::Slow => Some(300_000),
    };
    let config = MapillaryConfig {
        faults: MapillaryFaults {
            throttle_bytes_per_sec,
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    };
    FakeMapillary::start(config).await.expect("fake starts")
}

/// A run request.
pub fn request(sequence: &SequenceDescriptor, mode: RunMode) -> RunRequest {
    let mut options = serde_json::Map::new();
    options.insert("jobs".into(), 4.into());
    options.insert("republish".into(), false.into());
    RunRequest {
        options,
        ..provider_tests::conformance::plain_request(sequence.clone(), mode, false)
    }
}

/// The same request with `republish` set.
pub fn republish(mut request: RunRequest) -> RunRequest {
    request.options.insert("republish".into(), true.into());
    request
}

/// Asserts nothing the host can show or log carries `token`: logs, progress, the outcomes, and what
/// `mtp auth status` shows (the plugin's `auth_status` answer, which the host prints as text and JSON).
pub async fn assert_token_hidden(setup: &Setup, token: &str, outcomes: &[&RunOutcome]) {
    let status = Mapillary
        .auth_status(&setup.host.context())
        .await
        .expect("auth status answers");
    let shown = serde_json::to_string(&status).unwrap_or_default();
    assert!(!shown.contains(token), "token in auth status: {shown}");
    for (_, line) in setup.host.inner.logs() {
        assert!(!line.contains(token), "token in a log line: {line}");
    }
    for event in setup.host.inner.progress_events() {
        let text = serde_json::to_string(&event).unwrap_or_default();
        assert!(!text.contains(token), "token in progress: {text}");
    }
    for outcome in outcomes {
        let shown = format!(
            "{:?} {:?} {:?}",
            outcome.message, outcome.keys, outcome.next_action
        );
        assert!(!shown.contains(token), "token in an outcome: {shown}");
    }
}

/// A host like `from` after a restart (`setup`'s `.env`, `from`'s state and token) whose clock reads
/// `by` later than the real one (`MTP_TEST_NOW`), so day-scale behaviour is tested without waiting.
pub fn later(setup: &Setup, from: &BrowserHost, by: std::time::Duration) -> BrowserHost {
    let now = chrono::Utc::now().timestamp_millis() + by.as_millis() as i64;
    // `from` has `setup`'s `.env` (the test clock aside, which this replaces).
    debug_assert_eq!(
        from.context().env("MAPILLARY_GRAPH_URL"),
        setup.ctx().env("MAPILLARY_GRAPH_URL")
    );
    BrowserHost::new(
        from.inner
            .restarted()
            .with_env("MTP_TEST_NOW", &now.to_string()),
    )
}
