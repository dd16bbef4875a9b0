//! The suite can fail: a toy provider that keeps the contract passes every case, and the same provider
//! with its faults switched on (a key without help, a dry run that sends, cancellation ignored, state
//! ignored so everything is sent again, its token logged) fails exactly the cases it breaks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugin_api::http::reqwest;
use plugin_api::prelude::*;
use provider_tests::conformance::{self, Case, Login, Pace, Subject, Verdict};
use provider_tests::FakeService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "toy-secret-token-123";

/// A service that stores `PUT /{sequence}/{file}` and answers 200 to anything (an assumption of this
/// test: no real service behind it).
#[derive(Clone)]
struct ToyService {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ToyService {
    async fn start(pace: Pace) -> ToyService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let latency = match pace {
            Pace::Quick => Duration::ZERO,
            Pace::Slow => Duration::from_millis(300),
        };
        let seen = log.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..read]).to_string();
                    let line: Vec<&str> = head.lines().next().unwrap_or("").split(' ').collect();
                    seen.lock().unwrap().push(format!(
                        "{} {}",
                        line[0],
                        line.get(1).unwrap_or(&"")
                    ));
                    tokio::time::sleep(latency).await;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        ToyService { url, log }
    }
}

impl FakeService for ToyService {
    fn env(&self) -> Vec<(String, String)> {
        vec![("TOY_URL".into(), self.url.clone())]
    }
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for r in self.log.lock().unwrap().iter() {
            *counts.entry(r.clone()).or_default() += 1;
        }
        counts
    }
    fn uploads(&self) -> u64 {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("PUT "))
            .count() as u64
    }
    /// PUTs of a file already stored.
    fn resent(&self) -> u64 {
        let log = self.log.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        log.iter()
            .filter(|r| r.starts_with("PUT ") && !seen.insert(*r))
            .count() as u64
    }
}

/// Sends each image's name with a PUT, remembering what was acknowledged.
#[derive(Clone, Copy, Default)]
struct Toy {
    /// Every fault below at once.
    broken: bool,
    /// Only this one: forgets what the service acknowledged, so it sends everything again.
    forgetful: bool,
}

#[plugin_api::async_trait]
impl Integration for Toy {
    fn manifest(&self) -> Manifest {
        let mut env_help = vec![EnvKeyHelp::new("TOY_TOKEN", "The account's token.").secret()];
        if !self.broken {
            env_help.push(EnvKeyHelp::new("TOY_URL", "The service."));
        }
        Manifest {
            id: "toy".into(),
            name: "Toy".into(),
            version: "0.1.0".into(),
            required_env: vec!["TOY_URL".into(), "TOY_TOKEN".into()],
            env_help,
            ..Default::default()
        }
    }

    fn eligibility(&self, sequence: &SequenceDescriptor) -> Eligibility {
        if sequence.images.is_empty() {
            Eligibility::not_eligible("a sequence without images")
        } else {
            Eligibility::eligible()
        }
    }

    async fn run(&self, ctx: &Context, request: RunRequest) -> Result<RunOutcome, PluginError> {
        let eligibility = self.eligibility(&request.sequence);
        if let Some(reason) = eligibility.reason.filter(|_| !eligibility.eligible) {
            return Err(PluginError::invalid_input(reason));
        }
        let url = ctx.require_env("TOY_URL")?;
        let token = ctx.require_env("TOY_TOKEN")?;
        if self.broken {
            ctx.info(format!("sending with token {token}"));
        }
        if request.dry_run && !self.broken {
            return Ok(RunOutcome::new(SequenceState::DryRun, "would send"));
        }
        if request.mode == RunMode::Recheck {
            return Ok(RunOutcome::new(SequenceState::Pending, "nothing sent yet"));
        }
        let client = reqwest::Client::new();
        let id = &request.sequence.id;
        for image in &request.sequence.images {
            let key = format!("{id}/{}", image.file_name);
            if !self.broken && !self.forgetful && ctx.state().get(&key)?.is_some() {
                continue;
            }
            if !self.broken && ctx.is_cancelled() {
                return Err(PluginError::new(ErrorKind::Cancelled, "cancelled"));
            }
            client
                .put(format!("{url}/{key}"))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| PluginError::transient(e.to_string()))?;
            ctx.state().put(&key, "sent")?;
        }
        let mut outcome = RunOutcome::new(
            if request.dry_run {
                SequenceState::DryRun
            } else {
                SequenceState::Published
            },
            "sent",
        );
        outcome.keys.insert("id".into(), id.clone());
        Ok(outcome)
    }
}

fn sequence(files: usize) -> SequenceDescriptor {
    let images: Vec<_> = (0..files)
        .map(|i| {
            plugin_api::serde_json::json!({
                "path": format!("/toy/img{i}.jpg"), "file_name": format!("img{i}.jpg"),
                "size_bytes": 10, "latitude": 52.0, "longitude": 6.0,
                "captured_at_ms": 1_600_000_000_000i64 + i as i64 * 1000, "projection": "flat"
            })
        })
        .collect();
    plugin_api::serde_json::from_value(plugin_api::serde_json::json!({
        "schema": 1, "id": "toy-seq", "root": "/toy", "name": "Toy walk", "description": "",
        "tags": [], "source": "folder", "images": images
    }))
    .unwrap()
}

fn subject(name: &str, toy: Toy) -> Subject {
    Subject::new(name, toy)
        .fake(ToyService::start)
        .env("TOY_TOKEN", TOKEN)
        .login(Login::None)
        .sequence(|_| sequence(5))
        .ineligible(|_| sequence(0))
        .cancel_within(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_keeps_the_contract_passes() {
    conformance::run(subject("toy", Toy::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_reports_every_broken_rule() {
    let broken = Toy {
        broken: true,
        ..Toy::default()
    };
    let report = conformance::check(subject("broken-toy", broken)).await;
    print!("{report}");
    let failure = |case| match report.verdict(case) {
        Verdict::Failed(why) => why.clone(),
        other => panic!("{case} should fail for the broken toy, got {other:?}\n{report}"),
    };
    assert!(failure(Case::ManifestLints).contains("the .env key TOY_URL has no help"));
    assert!(failure(Case::DryRunSendsNothing).contains("the dry run sent 5 request(s) that write"));
    assert!(failure(Case::CancellationHonoured).contains("cancelled, it ended Published"));
    assert!(failure(Case::InterruptedRunResumes).contains("could not interrupt a run"));
    assert!(failure(Case::PublishedRerunIsSilent).contains("sent 5 request(s)"));
    assert!(failure(Case::NoSecretShown).contains("a secret (toy-…) was shown"));
    // What it does keep is not reported as broken.
    assert_eq!(report.verdict(Case::EligibilityIsPure), &Verdict::Passed);
    assert_eq!(report.verdict(Case::RecheckNeverUploads), &Verdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_sends_acknowledged_data_again_fails_the_resume_case() {
    let forgetful = Toy {
        forgetful: true,
        ..Toy::default()
    };
    let report = conformance::check(subject("forgetful-toy", forgetful)).await;
    print!("{report}");
    assert_eq!(
        report.failed(),
        [Case::InterruptedRunResumes, Case::PublishedRerunIsSilent],
        "{report}"
    );
    match report.verdict(Case::InterruptedRunResumes) {
        Verdict::Failed(why) => assert!(why.contains("acknowledged unit(s) again"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_case_is_reported_with_its_reason() {
    let report = conformance::check(
        subject(
            "broken-toy",
            Toy {
                broken: true,
                ..Toy::default()
            },
        )
        .skip(Case::ManifestLints, "a reason the subject gives"),
    )
    .await;
    assert_eq!(
        report.verdict(Case::ManifestLints),
        &Verdict::Skipped("a reason the subject gives".into())
    );
    assert!(report.to_string().contains(
        "conformance broken-toy: manifest lints ... skipped: a reason the subject gives"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_that_watches_the_service_fails_without_a_fake_unless_skipped() {
    let report = conformance::check(
        Subject::new("toy-without-fake", Toy::default())
            .env("TOY_URL", "http://127.0.0.1:9")
            .env("TOY_TOKEN", TOKEN)
            .sequence(|_| sequence(1)),
    )
    .await;
    for case in [
        Case::RecheckNeverUploads,
        Case::InterruptedRunResumes,
        Case::PublishedRerunIsSilent,
    ] {
        match report.verdict(case) {
            Verdict::Failed(why) => assert!(why.contains("give the subject a fake"), "{why}"),
            other => panic!("{case}: {other:?}\n{report}"),
        }
    }
}
