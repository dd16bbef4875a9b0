//! An in-process host for unit-testing an integration without building or loading its library.
//!
//! ```
//! use plugin_api::sdk::testing::TestHost;
//! let host = TestHost::new().with_env("HELLO_NAME", "world");
//! let ctx = host.context();
//! assert_eq!(ctx.env("HELLO_NAME").as_deref(), Some("world"));
//! ctx.state().put("k", "v").unwrap();
//! assert_eq!(host.state("k").as_deref(), Some("v"));
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};

use super::Context;
use crate::ffi::{HostServices, HostServicesBox, HostServices_TO};
use crate::protocol::{
    state_page, ImageRange, LogLevel, ProgressEvent, StatePage, StatePageRequest, StateReads,
    StateValues, StateWrite, IMAGES_SERVICE, MAX_STATE_PAGE_BYTES, MAX_STATE_READS,
    STATE_BATCH_SERVICE, STATE_PAGE_SERVICE, STATE_READ_SERVICE,
};

#[derive(Default)]
struct Inner {
    env: BTreeMap<String, String>,
    state: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    logs: Vec<(LogLevel, String)>,
    progress: Vec<ProgressEvent>,
    redirect: Option<String>,
    /// Behaves like a host older than plugin API 1.3 (no state batches).
    without_batches: bool,
    /// Batches committed whole.
    batches: usize,
    /// Behaves like a host older than plugin API 1.5 (no batched state reads, no pages).
    without_batched_reads: bool,
    /// Batched state reads answered.
    batched_reads: usize,
    /// Pages of entries answered, and the bytes of their keys and values.
    pages_read: usize,
    paged_bytes: usize,
    /// The images lent by range ([`crate::protocol::IMAGES_SERVICE`]), and how many ranges were read.
    lent: Vec<crate::sequence::ImageInfo>,
    ranges_read: usize,
}

/// A fake host keeping everything in memory; clones share the same data.
#[derive(Clone, Default)]
pub struct TestHost {
    inner: Arc<Mutex<Inner>>,
    cancelled: Arc<AtomicBool>,
}

impl TestHost {
    /// An empty host.
    pub fn new() -> TestHost {
        TestHost::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets an `.env` value the integration will see.
    pub fn with_env(self, key: &str, value: &str) -> TestHost {
        self.with(|i| i.env.insert(key.to_string(), value.to_string()));
        self
    }

    /// The URL the next authorisation prompt "redirects" to.
    pub fn with_redirect(self, url: &str) -> TestHost {
        self.with(|i| i.redirect = Some(url.to_string()));
        self
    }

    /// Behaves like a host older than plugin API 1.3, which has no batched state writes (nor reads).
    pub fn without_batches(self) -> TestHost {
        self.with(|i| {
            i.without_batches = true;
            i.without_batched_reads = true;
        });
        self
    }

    /// Behaves like a host older than plugin API 1.5, which has no batched state reads nor pages of
    /// entries.
    pub fn without_batched_reads(self) -> TestHost {
        self.with(|i| i.without_batched_reads = true);
        self
    }

    /// How many pages of entries ([`crate::sdk::State::for_each_entry`]) the host answered.
    pub fn pages_read(&self) -> usize {
        self.with(|i| i.pages_read)
    }

    /// The bytes of the keys and values those pages held: what a walk read.
    pub fn paged_bytes(&self) -> usize {
        self.with(|i| i.paged_bytes)
    }

    /// How many batched state reads ([`crate::sdk::State::get_many`]) the host answered.
    pub fn batched_reads(&self) -> usize {
        self.with(|i| i.batched_reads)
    }

    /// Lends `images` by range, as a host of plugin API 1.4 does for a call's sequence.
    pub fn lending(self, images: Vec<crate::sequence::ImageInfo>) -> TestHost {
        self.with(|i| i.lent = images);
        self
    }

    /// How many ranges of lent images were read.
    pub fn ranges_read(&self) -> usize {
        self.with(|i| i.ranges_read)
    }

    /// How many batches of state writes ([`crate::sdk::State::write_all`]) were committed whole.
    pub fn batches(&self) -> usize {
        self.with(|i| i.batches)
    }

    /// A [`Context`] on this host.
    pub fn context(&self) -> Context {
        let services: HostServicesBox = HostServices_TO::from_value(self.clone(), TD_Opaque);
        Context::new(services)
    }

    /// Makes [`Context::is_cancelled`] return `true`.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// A state value the integration stored.
    pub fn state(&self, key: &str) -> Option<String> {
        self.with(|i| i.state.get(key).cloned())
    }

    /// A secret the integration stored.
    pub fn secret(&self, key: &str) -> Option<String> {
        self.with(|i| i.secrets.get(key).cloned())
    }

    /// Every secret the integration stored, by name.
    pub fn secrets(&self) -> BTreeMap<String, String> {
        self.with(|i| i.secrets.clone())
    }

    /// Every state value the integration stored, by key.
    pub fn states(&self) -> BTreeMap<String, String> {
        self.with(|i| i.state.clone())
    }

    /// A host with this one's `.env`, state and secrets that is not cancelled, as after a restart (a
    /// cancelled host stays cancelled; clones share everything, this copy shares nothing).
    pub fn restarted(&self) -> TestHost {
        let copy = self.with(|i| Inner {
            env: i.env.clone(),
            state: i.state.clone(),
            secrets: i.secrets.clone(),
            redirect: i.redirect.clone(),
            without_batches: i.without_batches,
            without_batched_reads: i.without_batched_reads,
            ..Inner::default()
        });
        TestHost {
            inner: Arc::new(Mutex::new(copy)),
            cancelled: Arc::default(),
        }
    }

    /// Log records received so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.with(|i| i.logs.clone())
    }

    /// Progress events received so far.
    pub fn progress_events(&self) -> Vec<ProgressEvent> {
        self.with(|i| i.progress.clone())
    }
}

impl HostServices for TestHost {
    fn log(&self, level: u8, _target: RStr<'_>, message: RStr<'_>) {
        self.with(|i| i.logs.push((LogLevel::from_u8(level), message.to_string())));
    }

    fn progress(&self, event: RStr<'_>) {
        if let Ok(event) = serde_json::from_str(event.as_str()) {
            self.with(|i| i.progress.push(event));
        }
    }

    fn env(&self, key: RStr<'_>) -> ROption<RString> {
        self.with(|i| i.env.get(key.as_str()).cloned().map(RString::from))
            .into()
    }

    fn state_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
        RResult::ROk(
            self.with(|i| i.state.get(key.as_str()).cloned().map(RString::from))
                .into(),
        )
    }

    fn state_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        self.with(|i| i.state.insert(key.to_string(), value.to_string()));
        RResult::ROk(())
    }

    fn state_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
        self.with(|i| i.state.remove(key.as_str()));
        RResult::ROk(())
    }

    fn state_list(&self, prefix: RStr<'_>) -> RResult<RVec<Tuple2<RString, RString>>, RString> {
        RResult::ROk(self.with(|i| {
            i.state
                .iter()
                .filter(|(k, _)| k.starts_with(prefix.as_str()))
                .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
                .collect()
        }))
    }

    fn secret_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
        RResult::ROk(
            self.with(|i| i.secrets.get(key.as_str()).cloned().map(RString::from))
                .into(),
        )
    }

    fn secret_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        self.with(|i| i.secrets.insert(key.to_string(), value.to_string()));
        RResult::ROk(())
    }

    fn secret_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
        self.with(|i| i.secrets.remove(key.as_str()));
        RResult::ROk(())
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn authorize(&self, _prompt: RStr<'_>) -> RResult<RString, RString> {
        match self.with(|i| i.redirect.clone()) {
            Some(url) => RResult::ROk(url.into()),
            None => RResult::RErr("the test host has no redirect URL set".into()),
        }
    }

    fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        if method.as_str() == IMAGES_SERVICE {
            return self
                .lend(payload.as_str())
                .map(RString::from)
                .map_err(RString::from)
                .into();
        }
        if !self.with(|i| i.without_batched_reads) {
            let answer = match method.as_str() {
                STATE_READ_SERVICE => Some(self.read_many(payload.as_str())),
                STATE_PAGE_SERVICE => Some(self.page(payload.as_str())),
                _ => None,
            };
            if let Some(answer) = answer {
                return answer.map(RString::from).map_err(RString::from).into();
            }
        }
        if method.as_str() != STATE_BATCH_SERVICE || self.with(|i| i.without_batches) {
            return RResult::RErr(
                format!("{} {method}", crate::protocol::UNKNOWN_SERVICE_ERROR).into(),
            );
        }
        let writes: Vec<StateWrite> = match serde_json::from_str(payload.as_str()) {
            Ok(writes) => writes,
            Err(err) => return RResult::RErr(format!("malformed state writes: {err}").into()),
        };
        self.with(|i| {
            for write in writes {
                match write {
                    StateWrite::Put { key, value } => {
                        i.state.insert(key, value);
                    }
                    StateWrite::Delete { key } => {
                        i.state.remove(&key);
                    }
                }
            }
            i.batches += 1;
        });
        RResult::ROk(RString::new())
    }
}

impl TestHost {
    /// The values of the first [`MAX_STATE_READS`] keys asked for, as a host of plugin API 1.5 answers.
    fn read_many(&self, payload: &str) -> Result<String, String> {
        let reads: StateReads<'_> =
            serde_json::from_str(payload).map_err(|e| format!("malformed state keys: {e}"))?;
        let values = self.with(|i| {
            i.batched_reads += 1;
            reads
                .keys
                .iter()
                .take(MAX_STATE_READS)
                .map(|key| i.state.get(key).cloned())
                .collect()
        });
        serde_json::to_string(&StateValues { values })
            .map_err(|e| format!("cannot encode state values: {e}"))
    }

    /// The entries after the request's key under its prefix, at most [`MAX_STATE_READS`] and about
    /// [`MAX_STATE_PAGE_BYTES`], as the host answers.
    fn page(&self, payload: &str) -> Result<String, String> {
        let request: StatePageRequest =
            serde_json::from_str(payload).map_err(|e| format!("malformed state page: {e}"))?;
        let entries: Vec<(String, String)> = self.with(|i| {
            i.pages_read += 1;
            let entries = i
                .state
                .iter()
                .filter(|(key, _)| key.starts_with(&request.prefix))
                .filter(|(key, _)| request.after.as_ref().is_none_or(|after| *key > after))
                .map(|(key, value)| Ok::<_, Infallible>((key.clone(), value.clone())));
            let Ok(entries) = state_page(entries, MAX_STATE_READS, MAX_STATE_PAGE_BYTES);
            i.paged_bytes += entries
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
            entries
        });
        serde_json::to_string(&StatePage { entries })
            .map_err(|e| format!("cannot encode a state page: {e}"))
    }

    fn lend(&self, payload: &str) -> Result<String, String> {
        let range: ImageRange =
            serde_json::from_str(payload).map_err(|e| format!("malformed image range: {e}"))?;
        self.with(|i| {
            i.ranges_read += 1;
            serde_json::to_string(&i.lent[range.within(i.lent.len())])
                .map_err(|e| format!("cannot encode images: {e}"))
        })
    }
}
