//! A test host whose authorisation prompt behaves like a browser: it opens the consent URL and
//! returns where the service redirects to (the fakes' consent pages approve at once).

use plugin_api::ffi::abi_stable::sabi_trait::TD_Opaque;
use plugin_api::ffi::abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use plugin_api::ffi::{HostServices, HostServices_TO};
use plugin_api::http::reqwest;
use plugin_api::prelude::*;
use plugin_api::protocol::AuthorizePrompt;
use plugin_api::sdk::testing::TestHost;

/// A [`TestHost`] (env, state, secrets, logs, progress) that answers authorisation prompts as a
/// browser would.
#[derive(Clone, Default)]
pub struct BrowserHost {
    /// Everything but the prompt.
    pub inner: TestHost,
}

impl BrowserHost {
    /// A browser host over `inner`.
    pub fn new(inner: TestHost) -> BrowserHost {
        BrowserHost { inner }
    }

    /// A [`Context`] on this host.
    pub fn context(&self) -> Context {
        Context::new(HostServices_TO::from_value(self.clone(), TD_Opaque))
    }

    /// The same `.env`, state and secrets, not cancelled: as after a restart.
    pub fn restarted(&self) -> BrowserHost {
        BrowserHost::new(self.inner.restarted())
    }

    /// Every log line and progress event, as text, for secret checks.
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

/// Follows the consent page's redirect and returns where it points (the fakes approve at once).
async fn consent_redirect(url: String) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("no redirect from the consent page ({})", response.status()))
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
        match tokio::runtime::Handle::current().block_on(consent_redirect(prompt.url)) {
            Ok(url) => RResult::ROk(url.into()),
            Err(err) => RResult::RErr(err.into()),
        }
    }
    fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        self.inner.extension(method, payload)
    }
}
