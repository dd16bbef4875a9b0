//! The host services lent to a plugin for a call: its declared `.env` values only, its own slice of the
//! state store, log forwarding into `tracing`, progress, cancellation and the authorisation prompt.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use plugin_api::ffi::{HostServices, HostServicesBox, HostServices_TO};
use plugin_api::protocol::{
    AuthorizePrompt, ImageRange, LogLevel, ProgressEvent, StatePage, StatePageRequest, StateReads,
    StateValues, StateWrite, IMAGES_SERVICE, MAX_STATE_PAGE_BYTES, MAX_STATE_READS,
    STATE_BATCH_SERVICE, STATE_PAGE_SERVICE, STATE_READ_SERVICE, UNKNOWN_SERVICE_ERROR,
};

use crate::packed_images::PackedSequence;
use crate::state::{StateError, StateStore};
use crate::write_failure::WriteFailure;

/// Where a progress event comes from: set by the runner for each call, so every event is attributable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressOrigin<'a> {
    /// The integration that sent it.
    pub integration: &'a str,
    /// The sequence the call is about; `None` for calls about no sequence (`mtp auth`).
    pub sequence: Option<&'a str>,
}

/// Receives the progress events of every plugin call.
pub type ProgressSink = Arc<dyn Fn(ProgressOrigin<'_>, ProgressEvent) + Send + Sync>;

/// Shows the user an authorisation page and returns the URL they were redirected to.
pub type Authorizer = Arc<dyn Fn(&AuthorizePrompt) -> Result<String, String> + Send + Sync>;

/// The host services for one plugin.
#[derive(Clone)]
pub struct PluginServices {
    plugin_id: Arc<str>,
    sequence_id: Option<Arc<str>>,
    env: Arc<BTreeMap<String, String>>,
    store: Option<StateStore>,
    progress: Option<ProgressSink>,
    authorizer: Option<Authorizer>,
    cancelled: Arc<AtomicBool>,
    /// Where a failed write of the run is noted: a second reason to stop at the next safe point.
    write_failure: Option<Arc<WriteFailure>>,
    /// The sequence whose images the call reads by range ([`IMAGES_SERVICE`]).
    images: Option<Arc<PackedSequence>>,
}

impl PluginServices {
    /// Services for `plugin_id`, which may read exactly the `env` given (its declared keys).
    pub fn new(plugin_id: &str, env: BTreeMap<String, String>) -> PluginServices {
        PluginServices {
            plugin_id: Arc::from(plugin_id),
            sequence_id: None,
            env: Arc::new(env),
            store: None,
            progress: None,
            authorizer: None,
            cancelled: Arc::new(AtomicBool::new(false)),
            write_failure: None,
            images: None,
        }
    }

    /// Backs the plugin's state and secrets with `store`.
    pub fn with_store(mut self, store: StateStore) -> PluginServices {
        self.store = Some(store);
        self
    }

    /// Attributes this call's progress events to `sequence_id`.
    pub fn for_sequence(mut self, sequence_id: &str) -> PluginServices {
        self.sequence_id = Some(Arc::from(sequence_id));
        self
    }

    /// Lends `sequence`'s images to the call, a range at a time.
    pub fn with_images(mut self, sequence: Arc<PackedSequence>) -> PluginServices {
        self.images = Some(sequence);
        self
    }

    /// Sends progress events to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> PluginServices {
        self.progress = Some(sink);
        self
    }

    /// Uses `authorizer` for authorisation prompts.
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> PluginServices {
        self.authorizer = Some(authorizer);
        self
    }

    /// Shares `flag` as the cancellation flag.
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> PluginServices {
        self.cancelled = flag;
        self
    }

    /// Notes each failed write of the plugin's state in `failure`, and reports the call as cancelled
    /// once any write of the run (the plugin's or the run's record) has failed.
    pub fn with_write_failure(mut self, failure: Arc<WriteFailure>) -> PluginServices {
        self.write_failure = Some(failure);
        self
    }

    /// The FFI trait object handed to the plugin.
    pub fn to_ffi(&self) -> HostServicesBox {
        HostServices_TO::from_value(self.clone(), TD_Opaque)
    }

    fn store(&self) -> Result<&StateStore, RString> {
        self.store
            .as_ref()
            .ok_or_else(|| RString::from("no state store is open for this command"))
    }

    /// The message the plugin gets for a write that failed, the failure noted for the run first.
    fn failed_write(&self, err: StateError) -> RString {
        let message = RString::from(err.to_string());
        if let Some(failure) = &self.write_failure {
            failure.record(err);
        }
        message
    }
}

fn wrap<T>(result: Result<T, RString>) -> RResult<T, RString> {
    result.into()
}

impl HostServices for PluginServices {
    fn log(&self, level: u8, _target: RStr<'_>, message: RStr<'_>) {
        let plugin = &*self.plugin_id;
        let message = message.as_str();
        match LogLevel::from_u8(level) {
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
        }
    }

    fn progress(&self, event: RStr<'_>) {
        let Some(sink) = &self.progress else { return };
        match serde_json::from_str::<ProgressEvent>(event.as_str()) {
            Ok(event) => sink(
                ProgressOrigin {
                    integration: &self.plugin_id,
                    sequence: self.sequence_id.as_deref(),
                },
                event,
            ),
            Err(err) => tracing::debug!(
                plugin = &*self.plugin_id,
                "ignored a malformed progress event: {err}"
            ),
        }
    }

    fn env(&self, key: RStr<'_>) -> ROption<RString> {
        self.env
            .get(key.as_str())
            .cloned()
            .map(RString::from)
            .into()
    }

    fn state_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
        wrap(self.store().and_then(|s| {
            s.get(&self.plugin_id, key.as_str(), false)
                .map(|v| v.map(RString::from).into())
                .map_err(|e| e.to_string().into())
        }))
    }

    fn state_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        wrap(self.store().and_then(|s| {
            s.put(&self.plugin_id, key.as_str(), value.as_str(), false)
                .map_err(|e| self.failed_write(e))
        }))
    }

    fn state_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
        wrap(self.store().and_then(|s| {
            s.delete(&self.plugin_id, key.as_str(), false)
                .map_err(|e| self.failed_write(e))
        }))
    }

    fn state_list(&self, prefix: RStr<'_>) -> RResult<RVec<Tuple2<RString, RString>>, RString> {
        wrap(self.store().and_then(|s| {
            s.list(&self.plugin_id, prefix.as_str())
                .map(|entries| {
                    entries
                        .into_iter()
                        .map(|(k, v)| Tuple2(RString::from(k), RString::from(v)))
                        .collect()
                })
                .map_err(|e| e.to_string().into())
        }))
    }

    fn secret_get(&self, key: RStr<'_>) -> RResult<ROption<RString>, RString> {
        wrap(self.store().and_then(|s| {
            s.get(&self.plugin_id, key.as_str(), true)
                .map(|v| v.map(RString::from).into())
                .map_err(|e| e.to_string().into())
        }))
    }

    fn secret_put(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        wrap(self.store().and_then(|s| {
            s.put(&self.plugin_id, key.as_str(), value.as_str(), true)
                .map_err(|e| self.failed_write(e))
        }))
    }

    fn secret_delete(&self, key: RStr<'_>) -> RResult<(), RString> {
        wrap(self.store().and_then(|s| {
            s.delete(&self.plugin_id, key.as_str(), true)
                .map_err(|e| self.failed_write(e))
        }))
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || self.write_failure.as_ref().is_some_and(|f| f.has_failed())
    }

    fn extension(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        match method.as_str() {
            STATE_BATCH_SERVICE => self.write_batch(payload),
            STATE_READ_SERVICE => self.read_many(payload),
            STATE_PAGE_SERVICE => self.list_page(payload),
            IMAGES_SERVICE => lend_images(self.images.as_deref(), payload.as_str())
                .map(RString::from)
                .map_err(RString::from)
                .into(),
            _ => RResult::RErr(format!("{UNKNOWN_SERVICE_ERROR} {method}").into()),
        }
    }

    fn authorize(&self, prompt: RStr<'_>) -> RResult<RString, RString> {
        let Some(authorizer) = &self.authorizer else {
            return RResult::RErr("authorisation is not possible in this command".into());
        };
        let prompt: AuthorizePrompt = match serde_json::from_str(prompt.as_str()) {
            Ok(prompt) => prompt,
            Err(err) => {
                return RResult::RErr(format!("malformed authorisation prompt: {err}").into())
            }
        };
        authorizer(&prompt)
            .map(RString::from)
            .map_err(RString::from)
            .into()
    }
}

impl PluginServices {
    fn write_batch(&self, payload: RStr<'_>) -> RResult<RString, RString> {
        wrap(self.store().and_then(|s| {
            let writes: Vec<StateWrite> = serde_json::from_str(payload.as_str())
                .map_err(|e| RString::from(format!("malformed state writes: {e}")))?;
            s.write_all(&self.plugin_id, &writes)
                .map(|()| RString::new())
                .map_err(|e| self.failed_write(e))
        }))
    }
}

impl PluginServices {
    /// A read of the state store asked as JSON: `payload` parsed as a `Req` (`asked` names it when it
    /// does not parse), answered by `answer` on the open store, the answer (`answered`) written back
    /// as JSON.
    fn state_read<'p, Req: serde::Deserialize<'p>, Answer: serde::Serialize>(
        &self,
        payload: &'p str,
        (asked, answered): (&str, &str),
        answer: impl FnOnce(&StateStore, Req) -> Result<Answer, StateError>,
    ) -> RResult<RString, RString> {
        wrap(self.store().and_then(|s| {
            let request: Req = serde_json::from_str(payload)
                .map_err(|e| RString::from(format!("malformed {asked}: {e}")))?;
            let answer = answer(s, request).map_err(|e| RString::from(e.to_string()))?;
            serde_json::to_string(&answer)
                .map(RString::from)
                .map_err(|e| format!("cannot encode {answered}: {e}").into())
        }))
    }

    /// The values of the keys `payload` (a [`StateReads`]) names, the first [`MAX_STATE_READS`] of
    /// them, as a [`StateValues`].
    fn read_many(&self, payload: RStr<'_>) -> RResult<RString, RString> {
        self.state_read(
            payload.as_str(),
            ("state keys", "state values"),
            |s, reads: StateReads<'_>| {
                let keys = &reads.keys[..reads.keys.len().min(MAX_STATE_READS)];
                let values = s.get_many(&self.plugin_id, keys)?;
                Ok(StateValues { values })
            },
        )
    }

    /// The page of entries `payload` (a [`StatePageRequest`]) asks for, at most [`MAX_STATE_READS`] and
    /// about [`MAX_STATE_PAGE_BYTES`], as a [`StatePage`].
    fn list_page(&self, payload: RStr<'_>) -> RResult<RString, RString> {
        self.state_read(
            payload.as_str(),
            ("state page", "a state page"),
            |s, request: StatePageRequest| {
                let after = request.after.as_deref();
                let entries = s.list_page(
                    &self.plugin_id,
                    &request.prefix,
                    after,
                    MAX_STATE_READS,
                    MAX_STATE_PAGE_BYTES,
                )?;
                Ok(StatePage { entries })
            },
        )
    }
}

/// The images `payload` (an [`ImageRange`]) names, as JSON; an error when the call has no sequence
/// or the payload is malformed.
fn lend_images(sequence: Option<&PackedSequence>, payload: &str) -> Result<String, String> {
    let sequence = sequence.ok_or("this call lends no sequence's images")?;
    let range: ImageRange =
        serde_json::from_str(payload).map_err(|e| format!("malformed image range: {e}"))?;
    sequence
        .images()
        .range_json(range.within(sequence.image_count()))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence_payload::tests::sequence;
    use plugin_api::sequence::{ImageInfo, SequenceDescriptor};

    fn lent(sequence: &SequenceDescriptor, from: u64, count: u64) -> Vec<ImageInfo> {
        let payload = serde_json::to_string(&ImageRange { from, count }).unwrap();
        let packed = PackedSequence::pack(sequence.clone()).unwrap();
        serde_json::from_str(&lend_images(Some(&packed), &payload).unwrap()).unwrap()
    }

    #[test]
    fn images_that_cannot_be_read_back_are_an_error_for_the_plugin() {
        let packed = PackedSequence::pack(sequence(6_000)).unwrap();
        packed.images().lose_the_scratch_file();
        let payload = serde_json::to_string(&ImageRange {
            from: 0,
            count: 1_000,
        })
        .unwrap();
        let told = lend_images(Some(&packed), &payload).unwrap_err();
        assert!(
            told.starts_with("cannot read the scratch file of packed images in "),
            "{told}"
        );
    }

    #[test]
    fn images_are_lent_by_range_and_capped() {
        let seq = sequence(25_000);
        assert_eq!(lent(&seq, 10, 3), seq.images[10..13].to_vec());
        // Past the end: what there is, then nothing.
        assert_eq!(lent(&seq, 24_998, 10).len(), 2);
        assert!(lent(&seq, 30_000, 10).is_empty());
        // A larger range than the host answers at once gets the cap.
        assert_eq!(
            lent(&seq, 0, 20_000).len() as u64,
            plugin_api::protocol::MAX_IMAGE_RANGE
        );
    }

    #[test]
    fn a_state_write_that_fails_stops_the_run_and_is_the_error_it_ends_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let failure = Arc::new(WriteFailure::default());
        let services = PluginServices::new("p", BTreeMap::new())
            .with_store(store.clone())
            .with_write_failure(failure.clone());
        services
            .state_put(RStr::from_str("small"), RStr::from_str("1"))
            .into_result()
            .unwrap();
        assert!(!services.is_cancelled());

        store.fill_up();
        let big = "x".repeat(64 * 1024);
        let told = services
            .extension(
                RStr::from_str(STATE_BATCH_SERVICE),
                RStr::from_str(
                    &serde_json::json!([{ "op": "put", "key": "acked", "value": big }]).to_string(),
                ),
            )
            .into_result()
            .unwrap_err();
        assert!(told.contains("disk full"), "the plugin is told why: {told}");
        assert!(
            services.is_cancelled(),
            "the plugin stops at its next safe point"
        );
        let kept = failure.take().expect("the run ends with the failed write");
        assert_eq!(kept.to_string(), told.as_str());
        // A failed read is the plugin's to handle: it does not stop the run.
        let quiet = PluginServices::new("p", BTreeMap::new())
            .with_store(store)
            .with_write_failure(Arc::new(WriteFailure::default()));
        assert!(quiet
            .state_get(RStr::from_str("small"))
            .into_result()
            .is_ok());
        assert!(!quiet.is_cancelled());
    }

    #[test]
    fn many_state_values_are_read_in_key_order_with_none_for_absent_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put("p", "a", "1", false).unwrap();
        store.put("p", "c", "3", false).unwrap();
        store.put("other", "b", "not p's", false).unwrap();
        store.put("p", "b", "a secret", true).unwrap();
        let services = PluginServices::new("p", BTreeMap::new()).with_store(store);
        let read = |keys: &[&str]| {
            let payload = serde_json::json!({ "keys": keys }).to_string();
            let answer = services
                .extension(RStr::from_str(STATE_READ_SERVICE), RStr::from_str(&payload))
                .into_result()
                .unwrap();
            serde_json::from_str::<StateValues>(answer.as_str())
                .unwrap()
                .values
        };
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            read(&["c", "b", "a", "c"]),
            vec![some("3"), None, some("1"), some("3")],
            "another plugin's value and a secret are not this plugin's state"
        );
        // A longer request gets the first MAX_STATE_READS values.
        let keys: Vec<String> = (0..MAX_STATE_READS + 5).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(read(&keys).len(), MAX_STATE_READS);
        let malformed = services
            .extension(RStr::from_str(STATE_READ_SERVICE), RStr::from_str("[]"))
            .into_result()
            .unwrap_err();
        assert!(malformed.contains("malformed state keys"), "{malformed}");
    }

    #[test]
    fn the_sdk_reads_many_values_through_the_host_a_capped_call_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let keys: Vec<String> = (0..2 * MAX_STATE_READS + 1)
            .map(|i| format!("seq/s/img/{i}"))
            .collect();
        let writes: Vec<StateWrite> = keys
            .iter()
            .step_by(2)
            .map(|k| StateWrite::Put {
                key: k.clone(),
                value: format!("v{k}"),
            })
            .collect();
        store.write_all("p", &writes).unwrap();
        let services = PluginServices::new("p", BTreeMap::new()).with_store(store);
        let ctx = plugin_api::sdk::Context::new(services.to_ffi());
        let values = ctx.state().get_many(&keys).unwrap();
        let expected: Vec<Option<String>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i % 2 == 0).then(|| format!("v{k}")))
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn a_prefix_is_walked_through_the_host_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut expected: Vec<(String, String)> = (0..2 * MAX_STATE_READS + 1)
            .map(|i| (format!("seq/s/img/{i}"), format!("v{i}")))
            .collect();
        let writes: Vec<StateWrite> = expected
            .iter()
            .map(|(key, value)| StateWrite::Put {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        store.write_all("p", &writes).unwrap();
        store
            .put("p", "seq/s/img", "not under the prefix", false)
            .unwrap();
        store
            .put("p", "seq/t/img/1", "another prefix", false)
            .unwrap();
        store.put("other", "seq/s/img/x", "not p's", false).unwrap();
        expected.sort();
        let first = store
            .list_page("p", "seq/s/img/", None, 2, usize::MAX)
            .unwrap();
        assert_eq!(first, expected[..2].to_vec());
        let next = store
            .list_page("p", "seq/s/img/", Some(&first[1].0), 2, usize::MAX)
            .unwrap();
        assert_eq!(next, expected[2..4].to_vec());
        let services = PluginServices::new("p", BTreeMap::new()).with_store(store);
        let ctx = plugin_api::sdk::Context::new(services.to_ffi());
        let mut seen = Vec::new();
        ctx.state()
            .for_each_entry("seq/s/img/", |key, value| {
                seen.push((key, value));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_page_of_long_records_ends_at_its_byte_budget_and_the_walk_still_sees_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let long = "x".repeat(100 * 1024);
        let writes: Vec<StateWrite> = (0..10)
            .map(|i| StateWrite::Put {
                key: format!("seq/s/plan/{i}"),
                value: long.clone(),
            })
            .collect();
        store.write_all("p", &writes).unwrap();
        let services = PluginServices::new("p", BTreeMap::new()).with_store(store);
        let ctx = plugin_api::sdk::Context::new(services.to_ffi());
        // 100 KB records: the page ends with the one that reaches 256 KiB, not at 1,000 entries.
        let page = ctx.state().page_after("seq/", None).unwrap();
        assert_eq!(page.len(), 3);
        let mut seen = 0;
        ctx.state()
            .for_each_entry("seq/s/", |_, value| {
                seen += usize::from(value.len() == long.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_call_without_a_sequence_or_with_a_bad_range_is_refused() {
        assert!(lend_images(None, r#"{"from":0,"count":1}"#)
            .unwrap_err()
            .contains("lends no sequence"));
        assert!(
            lend_images(Some(&PackedSequence::pack(sequence(1)).unwrap()), "{}")
                .unwrap_err()
                .contains("malformed image range")
        );
    }
}
