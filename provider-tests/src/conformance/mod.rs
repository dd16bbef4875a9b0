//! The contract every provider proves, as one suite: `conformance::run(subject)`.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conforms() {
//!     let subject = Subject::new("strava", Strava)
//!         .fake(|pace| FakeStrava::start(config(pace)))
//!         .login(Login::Browser)
//!         .sequence(|_dir| walk("s1", 6));
//!     conformance::run(subject).await;
//! }
//! ```
//!
//! Each [`Case`] can fail, and says what it saw when it does. A case that cannot apply to a provider
//! (the archive talks to no service) is [`Subject::skip`]ped with the reason, which the report prints:
//! nothing passes silently.

mod cases;
mod session;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mtp_fakes::FakeService;
use plugin_api::prelude::*;

pub use session::Session;

/// One rule of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    /// Every `.env` key and option has help; `secret_exports` ⊆ `exports`; every `consumes` id is in
    /// `after`.
    ManifestLints,
    /// Eligibility gives the same answer twice and sends nothing; `run` refuses what it refuses.
    EligibilityIsPure,
    /// A dry run sends nothing to the service (no request but `GET`/`HEAD`: it may check the login) and
    /// writes no state.
    DryRunSendsNothing,
    /// A re-check never uploads.
    RecheckNeverUploads,
    /// A cancelled run stops within the subject's bound, with an error of kind `Cancelled`.
    CancellationHonoured,
    /// A run interrupted mid-way, run again after a restart, finishes without re-sending what the
    /// service acknowledged.
    InterruptedRunResumes,
    /// A run of a sequence already published makes no request at all.
    PublishedRerunIsSilent,
    /// No secret (stored secrets, secret `.env` values) in progress events, logs, messages, keys,
    /// next actions or the login status.
    NoSecretShown,
}

impl Case {
    /// Every case, in the order they run.
    pub const ALL: [Case; 8] = [
        Case::ManifestLints,
        Case::EligibilityIsPure,
        Case::DryRunSendsNothing,
        Case::RecheckNeverUploads,
        Case::CancellationHonoured,
        Case::InterruptedRunResumes,
        Case::PublishedRerunIsSilent,
        Case::NoSecretShown,
    ];

    fn title(self) -> &'static str {
        match self {
            Case::ManifestLints => "manifest lints",
            Case::EligibilityIsPure => "eligibility is pure and run refuses the same",
            Case::DryRunSendsNothing => "a dry run sends nothing and writes no state",
            Case::RecheckNeverUploads => "a re-check never uploads",
            Case::CancellationHonoured => "cancellation is honoured within the bound",
            Case::InterruptedRunResumes => {
                "an interrupted run resumes without re-sending acknowledged data"
            }
            Case::PublishedRerunIsSilent => "a published re-run makes no requests",
            Case::NoSecretShown => "no secret in progress, logs, messages or keys",
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// How the fake should behave for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Answers at once and finishes processing at once: a run ends published.
    Quick,
    /// Slow enough (a latency per upload, a long processing) that a run can be cancelled after the
    /// service received its first upload and before the run ends.
    Slow,
}

/// How a session logs in before its runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The integration needs no login.
    None,
    /// Through the fake's consent page (`authorize` without a token).
    Browser,
    /// `authorize` with this token (`mtp auth ID --token T`).
    Token(String),
}

type StartFake =
    Box<dyn Fn(Pace) -> Pin<Box<dyn Future<Output = Box<dyn FakeService>> + Send>> + Send + Sync>;
type MakeSequence = Box<dyn Fn(&Path) -> SequenceDescriptor + Send + Sync>;
type MakeRequest = Box<dyn Fn(SequenceDescriptor, RunMode, bool) -> RunRequest + Send + Sync>;

/// A provider under test: the integration, the fake it talks to, how to log in, and sequences.
pub struct Subject {
    name: String,
    integration: Arc<dyn Integration>,
    fake: Option<StartFake>,
    env: Vec<(String, String)>,
    login: Login,
    sequence: MakeSequence,
    ineligible: Option<MakeSequence>,
    request: MakeRequest,
    skips: BTreeMap<Case, String>,
    cancel_within: Duration,
}

impl Subject {
    /// `integration`, named `name` in the report, with no fake, no login and an empty sequence.
    pub fn new(name: &str, integration: impl Integration) -> Subject {
        Subject {
            name: name.to_string(),
            integration: Arc::new(integration),
            fake: None,
            env: Vec::new(),
            login: Login::None,
            sequence: Box::new(|_| empty_sequence()),
            ineligible: None,
            request: Box::new(plain_request),
            skips: BTreeMap::new(),
            cancel_within: Duration::from_secs(2),
        }
    }

    /// The fake the integration talks to, started afresh for each case at `pace`; its
    /// [`FakeService::env`] goes into the host's `.env`.
    pub fn fake<F, Fut, S>(mut self, start: F) -> Subject
    where
        F: Fn(Pace) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + Send + 'static,
        S: FakeService + 'static,
    {
        let start = Arc::new(start);
        self.fake = Some(Box::new(move |pace| {
            let start = start.clone();
            Box::pin(async move { Box::new(start(pace).await) as Box<dyn FakeService> })
        }));
        self
    }

    /// A `.env` entry beside the fake's (retry delays, a redirect URI). `{dir}` in `value` is the
    /// session's own temporary directory.
    pub fn env(mut self, key: &str, value: &str) -> Subject {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// How a session logs in.
    pub fn login(mut self, login: Login) -> Subject {
        self.login = login;
        self
    }

    /// A sequence the integration accepts, written into the given (empty) directory if it needs files.
    pub fn sequence(
        mut self,
        make: impl Fn(&Path) -> SequenceDescriptor + Send + Sync + 'static,
    ) -> Subject {
        self.sequence = Box::new(make);
        self
    }

    /// A sequence the integration refuses (without one, the purity case checks accepted sequences only).
    pub fn ineligible(
        mut self,
        make: impl Fn(&Path) -> SequenceDescriptor + Send + Sync + 'static,
    ) -> Subject {
        self.ineligible = Some(Box::new(make));
        self
    }

    /// How a run request is made (options, upstream exports); by default no options, no upstream.
    pub fn request(
        mut self,
        make: impl Fn(SequenceDescriptor, RunMode, bool) -> RunRequest + Send + Sync + 'static,
    ) -> Subject {
        self.request = Box::new(make);
        self
    }

    /// Declares that `case` does not apply to this provider, and why (printed in the report).
    pub fn skip(mut self, case: Case, reason: &str) -> Subject {
        self.skips.insert(case, reason.to_string());
        self
    }

    /// How soon after cancellation a run must end (default 2 s).
    pub fn cancel_within(mut self, bound: Duration) -> Subject {
        self.cancel_within = bound;
        self
    }
}

/// A request with no options and no upstream exports.
pub fn plain_request(sequence: SequenceDescriptor, mode: RunMode, dry_run: bool) -> RunRequest {
    RunRequest {
        mode,
        sequence,
        dry_run,
        upstream: Default::default(),
        previous: None,
        options: Default::default(),
    }
}

fn empty_sequence() -> SequenceDescriptor {
    SequenceDescriptor {
        schema: 1,
        id: "conformance".into(),
        root: String::new(),
        name: "conformance".into(),
        description: String::new(),
        transport: None,
        tags: vec![],
        source: Default::default(),
        images: vec![],
    }
}

/// What became of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The provider keeps the rule.
    Passed,
    /// It does not: what the case saw.
    Failed(String),
    /// The rule does not apply, as the subject declared.
    Skipped(String),
}

/// Every case's verdict for one subject.
#[derive(Debug, Clone)]
pub struct Report {
    /// The subject's name.
    pub subject: String,
    /// In [`Case::ALL`] order.
    pub verdicts: Vec<(Case, Verdict)>,
}

impl Report {
    /// The verdict of `case`.
    pub fn verdict(&self, case: Case) -> &Verdict {
        self.verdicts
            .iter()
            .find(|(c, _)| *c == case)
            .map(|(_, v)| v)
            .expect("every case has a verdict")
    }

    /// The cases that failed.
    pub fn failed(&self) -> Vec<Case> {
        self.verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Failed(_)))
            .map(|(c, _)| *c)
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (case, verdict) in &self.verdicts {
            let name = &self.subject;
            match verdict {
                Verdict::Passed => writeln!(f, "conformance {name}: {case} ... ok")?,
                Verdict::Failed(why) => {
                    writeln!(f, "conformance {name}: {case} ... FAILED: {why}")?
                }
                Verdict::Skipped(why) => {
                    writeln!(f, "conformance {name}: {case} ... skipped: {why}")?
                }
            }
        }
        Ok(())
    }
}

/// Runs every case against `subject` and returns the verdicts (for tests of the suite itself).
pub async fn check(subject: Subject) -> Report {
    let subject = Arc::new(subject);
    let mut verdicts = Vec::new();
    for case in Case::ALL {
        let verdict = match subject.skips.get(&case) {
            Some(reason) => Verdict::Skipped(reason.clone()),
            None => {
                // Each case in a task of its own: a panic (a fake that does not start) fails that
                // case, not the report.
                let subject = subject.clone();
                match tokio::spawn(async move { cases::check(&subject, case).await }).await {
                    Ok(Ok(())) => Verdict::Passed,
                    Ok(Err(why)) => Verdict::Failed(why),
                    Err(err) => Verdict::Failed(format!("the case panicked: {err}")),
                }
            }
        };
        verdicts.push((case, verdict));
    }
    Report {
        subject: subject.name.clone(),
        verdicts,
    }
}

/// Runs every case against `subject`, prints the report, and fails the test if a case failed.
pub async fn run(subject: Subject) {
    let report = check(subject).await;
    print!("{report}");
    let failed = report.failed();
    assert!(
        failed.is_empty(),
        "{} failed {} conformance case(s):\n{report}",
        report.subject,
        failed.len()
    );
}
