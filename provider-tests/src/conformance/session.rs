//! One case's world: a fresh fake, a host whose `.env` points at it, logged in, and a sequence.

use std::collections::BTreeMap;

use mtp_fakes::FakeService;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

use super::{Login, Pace, Subject};
use crate::host::BrowserHost;

/// A fake (if the provider talks to one), a logged-in host pointed at it, and the subject's sequence.
pub struct Session {
    /// The host the runs go through.
    pub host: BrowserHost,
    /// The service, if any.
    pub fake: Option<Box<dyn FakeService>>,
    /// The sequence the subject accepts.
    pub sequence: SequenceDescriptor,
    /// Holds the sequence's files and anything `{dir}` in the subject's `.env` points at.
    pub dir: tempfile::TempDir,
}

impl Session {
    pub(crate) async fn start(subject: &Subject, pace: Pace) -> Result<Session, String> {
        let fake = match &subject.fake {
            Some(start) => Some(start(pace).await),
            None => None,
        };
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let dir_text = dir.path().to_string_lossy().into_owned();
        let mut host = TestHost::new();
        for (key, value) in fake.iter().flat_map(|f| f.env()) {
            host = host.with_env(&key, &value);
        }
        for (key, value) in &subject.env {
            host = host.with_env(key, &value.replace("{dir}", &dir_text));
        }
        let photos = dir.path().join("photos");
        std::fs::create_dir_all(&photos).map_err(|e| format!("{}: {e}", photos.display()))?;
        let sequence = (subject.sequence)(&photos);
        let session = Session {
            host: BrowserHost::new(host),
            fake,
            sequence,
            dir,
        };
        let token = match &subject.login {
            Login::None => return Ok(session),
            Login::Browser => None,
            Login::Token(token) => Some(token.clone()),
        };
        subject
            .integration
            .authorize(&session.host.context(), AuthRequest { token })
            .await
            .map_err(|e| format!("logging in failed: {e}"))?;
        Ok(session)
    }

    /// Requests the fake received (0 without a fake).
    pub fn requests(&self) -> u64 {
        self.fake.as_ref().map_or(0, |f| f.request_count())
    }

    /// Requests per route (empty without a fake), for failure messages.
    pub fn routes(&self) -> BTreeMap<String, u64> {
        self.fake.as_ref().map(|f| f.requests()).unwrap_or_default()
    }

    /// Requests that write the fake received (0 without a fake).
    pub fn writes(&self) -> u64 {
        self.fake.as_ref().map_or(0, |f| f.writes())
    }

    /// Uploads the fake received (0 without a fake).
    pub fn uploads(&self) -> u64 {
        self.fake.as_ref().map_or(0, |f| f.uploads())
    }

    /// Data the fake received again after acknowledging it (0 without a fake).
    pub fn resent(&self) -> u64 {
        self.fake.as_ref().map_or(0, |f| f.resent())
    }

    /// Runs the subject's integration on `host` (this session's, or a restarted one).
    pub async fn run_on(
        &self,
        subject: &Subject,
        host: &BrowserHost,
        mode: RunMode,
        dry_run: bool,
        previous: Option<RunOutcome>,
    ) -> Result<RunOutcome, PluginError> {
        let mut request = (subject.request)(self.sequence.clone(), mode, dry_run);
        request.previous = previous;
        subject.integration.run(&host.context(), request).await
    }
}
