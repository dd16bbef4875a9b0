//! Driving the integration in-process against the fake Strava: a host whose authorisation prompt acts
//! as a browser on the fake's consent page, and sequences built in memory (the provider reads no image
//! file: only positions and times).

#![allow(dead_code)]

use std::time::Duration;

use mtp_fakes::fake_strava::{FakeStrava, StravaConfig};
use plugin_api::ffi::abi_stable::sabi_trait::TD_Opaque;
use plugin_api::ffi::abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use plugin_api::ffi::{HostServices, HostServices_TO};
use plugin_api::http::reqwest;
use plugin_api::prelude::*;
use plugin_api::protocol::AuthorizePrompt;
use plugin_api::sdk::testing::TestHost;

/// 2020-05-10T06:45:03Z.
pub const T0: i64 = 1_589_093_103_000;

/// A test host whose prompt opens the consent URL and returns where the fake redirects to.
#[derive(Clone)]
pub struct BrowserHost {
    pub inner: TestHost,
}

impl BrowserHost {
    pub fn context(&self) -> Context {
        Context::new(HostServices_TO::from_value(self.clone(), TD_Opaque))
    }

    /// Every log line, progress event and the given outcomes' text, for secret checks.
    pub fn everything_shown(&self) -> String {
        let mut text = String::new();
        for (_, line) in self.inner.logs() {
            text.push_str(&line);
            text.push('\n');
        }
        for event in self.inner.progress_events() {
            text.push_str(&format!("{event:?}\n"));
        }
        text
    }
}

impl HostServices for BrowserHost {
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        HostServices::log(&self.inner, level, target, message)
    }
    fn progress(&self, event: RStr<'_>) {
        HostServices::progress(&self.inner, event)
    }
    fn env(&self, key: RStr<'_>) -> ROption<RString> {
        HostServices::env(&self.inner, key)
    }
    fn state_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
        self.inner.state_get(key)
    }
    fn state_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
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
        HostServices::is_cancelled(&self.inner)
    }
    fn authorize(&self, prompt: RStr<'_>) -> RResult<RString, RString> {
        let prompt: AuthorizePrompt = match plugin_api::serde_json::from_str(prompt.as_str()) {
            Ok(p) => p,
            Err(err) => return RResult::RErr(err.to_string().into()),
        };
        // Called on a blocking thread of the test's runtime.
        let answer = tokio::runtime::Handle::current().block_on(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            let response = client
                .get(&prompt.url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| format!("no redirect from the consent page ({})", response.status()))
        });
        match answer {
            Ok(url) => RResult::ROk(url.into()),
            Err(err) => RResult::RErr(err.into()),
        }
    }
    fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        self.inner.extension(method, payload)
    }
}

/// The fake and a host whose `.env` points at it, with short waits.
pub struct Setup {
    pub fake: FakeStrava,
    pub host: BrowserHost,
}

pub fn host_for(fake: &FakeStrava, extra: &[(&str, &str)]) -> BrowserHost {
    let config = fake.config();
    let mut host = TestHost::new()
        .with_env("STRAVA_CLIENT_ID", &config.client_id)
        .with_env("STRAVA_CLIENT_SECRET", &config.client_secret)
        .with_env("STRAVA_REDIRECT_URI", "http://127.0.0.1:9/strava/callback")
        .with_env("STRAVA_API_URL", &fake.api_url())
        .with_env("STRAVA_OAUTH_URL", &fake.oauth_url())
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
