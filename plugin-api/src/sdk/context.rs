use abi_stable::std_types::{RResult, RStr};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{ErrorKind, PluginError};
use crate::ffi::HostServicesBox;
use crate::protocol::{
    AuthorizePrompt, LogLevel, ProgressEvent, StatePage, StatePageRequest, StateReads, StateValues,
    StateWrite, MAX_STATE_READS, STATE_BATCH_SERVICE, STATE_PAGE_SERVICE, STATE_READ_SERVICE,
    UNKNOWN_SERVICE_ERROR,
};

/// What a running integration can ask of the host: its `.env` values, logging, progress, persisted state
/// and secrets, cancellation, and user authorisation.
///
/// Cheap to clone; clones share the same host services.
#[derive(Clone)]
pub struct Context {
    host: HostServicesBox,
}

fn host_error(err: abi_stable::std_types::RString) -> PluginError {
    PluginError::other(format!("host state store: {err}"))
}

fn into_result<T>(result: RResult<T, abi_stable::std_types::RString>) -> Result<T, PluginError> {
    result.into_result().map_err(host_error)
}

impl Context {
    /// Wraps the services the host handed to this call.
    pub fn new(host: HostServicesBox) -> Context {
        Context { host }
    }

    /// The host's services, for the SDK's own modules.
    pub(crate) fn host(&self) -> &HostServicesBox {
        &self.host
    }

    /// The value of an `.env` key this integration declared in its manifest; `None` when missing or empty.
    ///
    /// Keys the manifest did not declare are never visible, whatever the environment holds.
    pub fn env(&self, key: &str) -> Option<String> {
        self.host
            .env(RStr::from_str(key))
            .into_option()
            .map(|v| v.into_string())
            .filter(|v| !v.is_empty())
    }

    /// Like [`Context::env`], but a missing key is an [`ErrorKind::InvalidInput`] error naming it.
    pub fn require_env(&self, key: &str) -> Result<String, PluginError> {
        self.env(key)
            .ok_or_else(|| PluginError::invalid_input(format!("{key} is not set in .env")))
    }

    /// Forwards a log record to the host's log output.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        self.host.log(
            level as u8,
            RStr::from_str("plugin"),
            RStr::from_str(message.as_ref()),
        );
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }

    /// Reports progress (shown as a progress bar, or as JSON lines with `--json`).
    pub fn progress(&self, event: ProgressEvent) {
        if let Ok(json) = serde_json::to_string(&event) {
            self.host.progress(RStr::from_str(&json));
        }
    }

    /// This integration's persisted key-value state (committed on every write).
    pub fn state(&self) -> State<'_> {
        State { host: &self.host }
    }

    /// Reads one of this integration's secrets (tokens).
    pub fn secret(&self, key: &str) -> Result<Option<String>, PluginError> {
        into_result(self.host.secret_get(RStr::from_str(key)))
            .map(|v| v.into_option().map(|s| s.into_string()))
    }

    /// Stores a secret: kept readable by the user only, never logged or printed.
    pub fn set_secret(&self, key: &str, value: &str) -> Result<(), PluginError> {
        into_result(
            self.host
                .secret_put(RStr::from_str(key), RStr::from_str(value)),
        )
    }

    /// Deletes a secret.
    pub fn delete_secret(&self, key: &str) -> Result<(), PluginError> {
        into_result(self.host.secret_delete(RStr::from_str(key)))
    }

    /// `true` once the user asked to stop; stop at the next point where state is consistent.
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }

    /// Returns a [`ErrorKind::Cancelled`] error when the user asked to stop.
    pub fn check_cancelled(&self) -> Result<(), PluginError> {
        if self.is_cancelled() {
            Err(PluginError::new(
                ErrorKind::Cancelled,
                "cancelled by the user",
            ))
        } else {
            Ok(())
        }
    }

    /// Sends the user to `prompt.url` and returns the URL the provider redirected back to.
    ///
    /// Runs the host's blocking prompt on a blocking thread of the plugin's runtime.
    pub async fn authorize(&self, prompt: &AuthorizePrompt) -> Result<String, PluginError> {
        let host = self.host.clone();
        let json = serde_json::to_string(prompt)
            .map_err(|err| PluginError::other(format!("cannot encode the prompt: {err}")))?;
        let answer = tokio::task::spawn_blocking(move || {
            host.authorize(RStr::from_str(&json)).into_result()
        })
        .await
        .map_err(|err| PluginError::other(format!("authorisation prompt failed: {err}")))?;
        answer
            .map(|url| url.into_string())
            .map_err(|err| PluginError::auth(err.into_string()))
    }
}

/// A view of an integration's persisted state. Keys are free-form; values are text (use the JSON helpers
/// for structured values).
pub struct State<'a> {
    host: &'a HostServicesBox,
}

impl State<'_> {
    /// The value at `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, PluginError> {
        into_result(self.host.state_get(RStr::from_str(key)))
            .map(|v| v.into_option().map(|s| s.into_string()))
    }

    /// The values at `keys`, in the same order (`None` where a key holds nothing): one call to the host
    /// for up to [`MAX_STATE_READS`] keys instead of one per key, and only the values asked for, where
    /// [`State::list`] answers a whole prefix. On a host older than plugin API 1.5 the keys are read one
    /// by one.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, PluginError> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_STATE_READS) {
            let reads = StateReads {
                keys: std::borrow::Cow::Borrowed(chunk),
            };
            let Some(answer) = self.ask(STATE_READ_SERVICE, &reads, "state keys")? else {
                for key in chunk {
                    values.push(self.get(key)?);
                }
                continue;
            };
            let answer: StateValues = serde_json::from_str(answer.as_str())
                .map_err(|err| PluginError::other(format!("host state store: {err}")))?;
            if answer.values.len() != chunk.len() {
                return Err(PluginError::other(format!(
                    "host state store: {} values for {} keys",
                    answer.values.len(),
                    chunk.len()
                )));
            }
            values.extend(answer.values);
        }
        Ok(values)
    }

    /// Stores `value` at `key`; durable when this returns.
    pub fn put(&self, key: &str, value: &str) -> Result<(), PluginError> {
        into_result(
            self.host
                .state_put(RStr::from_str(key), RStr::from_str(value)),
        )
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> Result<(), PluginError> {
        into_result(self.host.state_delete(RStr::from_str(key)))
    }

    /// Every entry whose key starts with `prefix`, ordered by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, PluginError> {
        into_result(self.host.state_list(RStr::from_str(prefix))).map(|entries| {
            entries
                .into_iter()
                .map(|pair| (pair.0.into_string(), pair.1.into_string()))
                .collect()
        })
    }

    /// Calls `f` with every entry whose key starts with `prefix`, in key order, reading them a page of
    /// [`MAX_STATE_READS`] at a time: what [`State::list`] answers, without holding all of it. On a
    /// host older than plugin API 1.5 the prefix is listed at once. An error from `f` stops the walk.
    pub fn for_each_entry(
        &self,
        prefix: &str,
        mut f: impl FnMut(String, String) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let mut after: Option<String> = None;
        loop {
            let Some(page) = self.page(prefix, after.as_deref())? else {
                if after.is_some() {
                    // Answered the first page and not this one: not an older host, a faulty one.
                    return Err(host_error(
                        format!("{UNKNOWN_SERVICE_ERROR} {STATE_PAGE_SERVICE}").into(),
                    ));
                }
                return self
                    .list(prefix)?
                    .into_iter()
                    .try_for_each(|(key, value)| f(key, value));
            };
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (key, value) in page {
                f(key, value)?;
            }
        }
    }

    /// One page of the entries whose key starts with `prefix` and comes after `after` (from the first
    /// when `None`): at most [`MAX_STATE_READS`], in key order; empty past the last. For a plugin that
    /// skips ranges of a prefix (setting `after` past a range it does not need to read). On a host
    /// older than plugin API 1.5 the prefix is listed at once and the page taken from it.
    pub fn page_after(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Vec<(String, String)>, PluginError> {
        if let Some(page) = self.page(prefix, after)? {
            return Ok(page);
        }
        Ok(self
            .list(prefix)?
            .into_iter()
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
            .take(MAX_STATE_READS)
            .collect())
    }

    /// A page from the host's [`STATE_PAGE_SERVICE`]; `None` from a host without it.
    fn page(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Option<Vec<(String, String)>>, PluginError> {
        let request = StatePageRequest {
            prefix: prefix.to_string(),
            after: after.map(str::to_string),
        };
        let Some(answer) = self.ask(STATE_PAGE_SERVICE, &request, "a state page")? else {
            return Ok(None);
        };
        let page: StatePage = serde_json::from_str(answer.as_str())
            .map_err(|err| PluginError::other(format!("host state store: {err}")))?;
        // Each page must stay in the range asked and move forward, or a faulty host would keep a walk
        // here or hand it another prefix's entries.
        let outside = |(key, _): &(String, String)| {
            !key.starts_with(prefix) || after.is_some_and(|after| key.as_str() <= after)
        };
        if page.entries.iter().any(outside) {
            return Err(PluginError::other(
                "host state store: a page held a key outside the range asked (not under its prefix, or not after the previous page)",
            ));
        }
        Ok(Some(page.entries))
    }

    /// Applies `writes` in order, in one transaction: all of them are durable when this returns, or
    /// none is. One commit instead of one per write, for a plugin that records several things at
    /// once (a run of thousands of small images). On a host older than plugin API 1.3 the writes are
    /// made one by one (each durable when made), so the all-or-nothing promise is only this host's.
    pub fn write_all(&self, writes: &[StateWrite]) -> Result<(), PluginError> {
        match writes {
            [] => return Ok(()),
            [single] => return self.write_one(single),
            _ => {}
        }
        match self.ask(STATE_BATCH_SERVICE, writes, "state writes")? {
            Some(_) => Ok(()),
            None => writes.iter().try_for_each(|write| self.write_one(write)),
        }
    }

    /// Asks the host's state service `service` with `request` (`what` names it when it cannot be
    /// encoded): its answer, or `None` from a host older than the service, which the caller then
    /// does without.
    fn ask(
        &self,
        service: &str,
        request: &(impl Serialize + ?Sized),
        what: &str,
    ) -> Result<Option<abi_stable::std_types::RString>, PluginError> {
        let payload = serde_json::to_string(request)
            .map_err(|err| PluginError::other(format!("cannot encode {what}: {err}")))?;
        match self
            .host
            .extension(RStr::from_str(service), RStr::from_str(&payload))
        {
            RResult::ROk(answer) => Ok(Some(answer)),
            RResult::RErr(err) if err.as_str().starts_with(UNKNOWN_SERVICE_ERROR) => Ok(None),
            RResult::RErr(err) => Err(host_error(err)),
        }
    }

    fn write_one(&self, write: &StateWrite) -> Result<(), PluginError> {
        match write {
            StateWrite::Put { key, value } => self.put(key, value),
            StateWrite::Delete { key } => self.delete(key),
        }
    }

    /// The value at `key`, parsed as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, PluginError> {
        match self.get(key)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|err| {
                PluginError::other(format!("stored state {key:?} is not readable: {err}"))
            }),
        }
    }

    /// Stores `value` at `key` as JSON.
    pub fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), PluginError> {
        let text = serde_json::to_string(value)
            .map_err(|err| PluginError::other(format!("cannot encode state {key:?}: {err}")))?;
        self.put(key, &text)
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::StateWrite;
    use crate::sdk::testing::TestHost;

    fn writes() -> Vec<StateWrite> {
        vec![
            StateWrite::Put {
                key: "a".into(),
                value: "1".into(),
            },
            StateWrite::Put {
                key: "b".into(),
                value: "2".into(),
            },
            StateWrite::delete("a"),
            StateWrite::put_json("c", &[3]).unwrap(),
        ]
    }

    #[test]
    fn a_batch_is_applied_in_order_in_one_call() {
        let host = TestHost::new();
        host.context().state().write_all(&writes()).unwrap();
        assert_eq!(host.batches(), 1);
        assert_eq!(host.state("a"), None);
        assert_eq!(host.state("b").as_deref(), Some("2"));
        assert_eq!(host.state("c").as_deref(), Some("[3]"));
    }

    /// 2,500 keys, every third one stored: the values the host holds, in the order asked.
    fn many(host: &TestHost) -> (Vec<String>, Vec<Option<String>>) {
        let ctx = host.context();
        let state = ctx.state();
        let keys: Vec<String> = (0..2_500).rev().map(|i| format!("k/{i}")).collect();
        let mut expected = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            let value = (at % 3 == 0).then(|| format!("v{at}"));
            if let Some(value) = &value {
                state.put(key, value).unwrap();
            }
            expected.push(value);
        }
        (keys, expected)
    }

    #[test]
    fn a_walk_reads_pages_and_a_page_can_start_past_a_range() {
        for older in [false, true] {
            let host = if older {
                TestHost::new().without_batched_reads()
            } else {
                TestHost::new()
            };
            let (_, expected) = many(&host);
            host.context().state().put("l/other", "x").unwrap();
            let state = host.context();
            let state = state.state();
            let mut walked = Vec::new();
            state
                .for_each_entry("k/", |key, value| {
                    walked.push((key, value));
                    Ok(())
                })
                .unwrap();
            assert_eq!(walked.len(), expected.iter().flatten().count());
            assert!(walked.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
            // Past every key under "k/1": the first page starts at "k/2".
            let page = state.page_after("k/", Some("k/1\u{10FFFF}")).unwrap();
            assert!(page[0].0.starts_with("k/2"), "{:?}", page[0]);
            let past = walked.iter().filter(|(k, _)| k.as_str() > "k/1\u{10FFFF}");
            assert_eq!(page, past.take(1_000).cloned().collect::<Vec<_>>());
            assert!(state
                .page_after("k/", Some("k/9\u{10FFFF}"))
                .unwrap()
                .is_empty());
            if !older {
                assert_eq!(
                    host.pages_read(),
                    2 + 2,
                    "834 entries a page, then the two pages asked"
                );
            }
        }
    }

    #[test]
    fn many_values_are_read_in_key_order_a_capped_call_at_a_time() {
        let host = TestHost::new();
        let (keys, expected) = many(&host);
        assert_eq!(host.context().state().get_many(&keys).unwrap(), expected);
        assert_eq!(host.batched_reads(), 3, "1,000 keys a call");
        assert!(host.context().state().get_many(&[]).unwrap().is_empty());
        assert_eq!(host.batched_reads(), 3, "no keys, no call");
    }

    #[test]
    fn an_older_host_is_asked_for_one_value_at_a_time() {
        let host = TestHost::new().without_batched_reads();
        let (keys, expected) = many(&host);
        assert_eq!(host.context().state().get_many(&keys).unwrap(), expected);
        assert_eq!(host.batched_reads(), 0);
    }

    /// 2,500 entries under `p/`, and others around them: every one under `p/`, in key order.
    fn entries(host: &TestHost) -> Vec<(String, String)> {
        let ctx = host.context();
        let state = ctx.state();
        for key in ["o", "p", "p0", "q/1"] {
            state.put(key, "not under p/").unwrap();
        }
        let mut under: Vec<(String, String)> = (0..2_500)
            .map(|i| (format!("p/{i}"), format!("v{i}")))
            .collect();
        for (key, value) in &under {
            state.put(key, value).unwrap();
        }
        under.sort();
        under
    }

    fn walked(host: &TestHost) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        host.context()
            .state()
            .for_each_entry("p/", |key, value| {
                seen.push((key, value));
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn a_prefix_is_walked_a_page_at_a_time_in_key_order() {
        let host = TestHost::new();
        let expected = entries(&host);
        assert_eq!(walked(&host), expected);
        assert_eq!(
            host.pages_read(),
            4,
            "three pages of at most 1,000, then an empty one"
        );
        let mut count = 0;
        let stopped = host.context().state().for_each_entry("p/", |_, _| {
            count += 1;
            Err(crate::error::PluginError::other("enough"))
        });
        assert!(stopped.is_err());
        assert_eq!(count, 1, "an error from the callback stops the walk");
    }

    #[test]
    fn an_older_host_has_the_prefix_listed_at_once() {
        let host = TestHost::new().without_batched_reads();
        let expected = entries(&host);
        assert_eq!(walked(&host), expected);
        assert_eq!(host.pages_read(), 0);
    }

    #[test]
    fn an_older_host_gets_the_writes_one_by_one() {
        let host = TestHost::new().without_batches();
        host.context().state().write_all(&writes()).unwrap();
        assert_eq!(host.batches(), 0);
        assert_eq!(host.state("a"), None);
        assert_eq!(host.state("b").as_deref(), Some("2"));
        assert_eq!(host.state("c").as_deref(), Some("[3]"));
    }
}
