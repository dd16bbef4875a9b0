//! The cases. Each returns what it saw when the provider breaks the rule.

use std::time::{Duration, Instant};

use plugin_api::prelude::*;

use plugin_api::sdk::testing::TestHost;

use super::session::Session;
use super::{Case, Pace, Subject};
use crate::host::BrowserHost;

type Outcome = Result<(), String>;

/// How long a run may take to reach the service, or to end published, before the case gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long the service must be idle before an interrupted run is restarted.
const QUIET: Duration = Duration::from_millis(500);

pub(super) async fn check(subject: &Subject, case: Case) -> Outcome {
    let observes_the_service = matches!(
        case,
        Case::RecheckNeverUploads | Case::InterruptedRunResumes | Case::PublishedRerunIsSilent
    );
    if observes_the_service && subject.fake.is_none() {
        // It would pass without looking: say so instead.
        return Err("this case watches the service: give the subject a fake, or skip the case with the reason it does not apply".into());
    }
    match case {
        Case::ManifestLints => manifest_lints(&subject.integration.manifest()),
        Case::EligibilityIsPure => eligibility_is_pure(subject).await,
        Case::DryRunSendsNothing => dry_run_sends_nothing(subject).await,
        Case::RecheckNeverUploads => recheck_never_uploads(subject).await,
        Case::CancellationHonoured => {
            let session = Session::start(subject, Pace::Slow).await?;
            interrupt(subject, &session).await.map(|_| ())
        }
        Case::InterruptedRunResumes => interrupted_run_resumes(subject).await,
        Case::PublishedRerunIsSilent => published_rerun_is_silent(subject).await,
        Case::NoSecretShown => no_secret_shown(subject).await,
    }
}

fn manifest_lints(manifest: &Manifest) -> Outcome {
    let mut problems = Vec::new();
    for key in manifest.declared_env() {
        match manifest.env_help_for(key) {
            Some(help) if !help.help.trim().is_empty() => {}
            _ => problems.push(format!("the .env key {key} has no help")),
        }
    }
    for option in &manifest.options {
        if option.help.trim().is_empty() {
            problems.push(format!("the option {} has no help", option.name));
        }
    }
    for name in &manifest.secret_exports {
        if !manifest.exports.contains(name) {
            problems.push(format!("the secret export {name} is not in exports"));
        }
    }
    for consumed in &manifest.consumes {
        let id = consumed.split('.').next().unwrap_or(consumed);
        if !manifest.after.iter().any(|a| a == id) {
            problems.push(format!(
                "it consumes {consumed} but does not run after {id}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

async fn eligibility_is_pure(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Quick).await?;
    let (requests, states) = (session.requests(), session.host.inner.states());
    let integration = &subject.integration;
    let first = integration.eligibility(&session.sequence);
    let again = integration.eligibility(&session.sequence);
    if first != again {
        return Err(format!("asked twice, it answered {first:?} then {again:?}"));
    }
    if !first.eligible {
        return Err(format!(
            "the subject's sequence is refused: {:?}",
            first.reason
        ));
    }
    paged_answers_the_same(integration.as_ref(), &session.sequence, &first)?;
    if let Some(make) = &subject.ineligible {
        let refused = make(session.dir.path());
        let first = integration.eligibility(&refused);
        let again = integration.eligibility(&refused);
        if first != again {
            return Err(format!("asked twice, it answered {first:?} then {again:?}"));
        }
        paged_answers_the_same(integration.as_ref(), &refused, &first)?;
        let reason = match (first.eligible, first.reason) {
            (false, Some(reason)) if !reason.is_empty() => reason,
            (eligible, reason) => {
                return Err(format!(
                    "the subject's ineligible sequence: eligible {eligible}, reason {reason:?}"
                ))
            }
        };
        let request = (subject.request)(refused, RunMode::Upload, false);
        match integration.run(&session.host.context(), request).await {
            Err(err) if err.message.contains(&reason) => {}
            Err(err) => {
                return Err(format!(
                    "run refused with \"{err}\", eligibility said \"{reason}\""
                ))
            }
            Ok(outcome) => {
                return Err(format!(
                    "run took a sequence eligibility refuses ({reason}): {:?}",
                    outcome.state
                ))
            }
        }
    }
    if session.requests() != requests {
        return Err(format!(
            "eligibility and the refused run sent {} request(s): {:?}",
            session.requests() - requests,
            session.routes()
        ));
    }
    if session.host.inner.states() != states {
        return Err("eligibility or the refused run wrote state".into());
    }
    Ok(())
}

/// Asked as a host of plugin API 1.4 asks (the sequence's header, its images lent by range), the
/// provider answers what it answers for the whole descriptor.
fn paged_answers_the_same(
    integration: &dyn Integration,
    sequence: &SequenceDescriptor,
    whole: &Eligibility,
) -> Outcome {
    let host = TestHost::new().lending(sequence.images.clone());
    let ctx = host.context();
    let images = Images::lent(&ctx, sequence.images.len() as u64);
    let paged = integration
        .eligibility_paged(&sequence.header(), &images)
        .map_err(|err| format!("asked with its images lent by range, it failed: {err}"))?;
    if &paged != whole {
        return Err(format!(
            "asked with its images lent by range, it answered {paged:?}; with the whole sequence {whole:?}"
        ));
    }
    Ok(())
}

async fn dry_run_sends_nothing(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Quick).await?;
    let (writes, states) = (session.writes(), session.host.inner.states());
    let outcome = session
        .run_on(subject, &session.host, RunMode::Upload, true, None)
        .await
        .map_err(|e| format!("the dry run failed: {e}"))?;
    // Reading is allowed (checking the token, the instance's defaults); sending is not.
    if session.writes() != writes {
        return Err(format!(
            "the dry run sent {} request(s) that write: {:?}",
            session.writes() - writes,
            session.routes()
        ));
    }
    let written: Vec<String> = diff_keys(&states, &session.host.inner.states());
    if !written.is_empty() {
        return Err(format!("the dry run wrote state: {written:?}"));
    }
    if outcome.state != SequenceState::DryRun {
        return Err(format!("the dry run ended {:?}", outcome.state));
    }
    Ok(())
}

fn diff_keys(
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut keys: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    keys
}

async fn recheck_never_uploads(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Quick).await?;
    let uploads = session.uploads();
    // Whatever it answers (waiting, nothing to check, an error): it must not have uploaded.
    let _ = session
        .run_on(subject, &session.host, RunMode::Recheck, false, None)
        .await;
    if session.uploads() != uploads {
        return Err(format!(
            "a re-check of a sequence never uploaded sent {} upload(s): {:?}",
            session.uploads() - uploads,
            session.routes()
        ));
    }
    Ok(())
}

/// Starts a run, cancels it once the service received an upload (without a service: once the run
/// reported progress), and checks it ends cancelled within the bound.
async fn interrupt(subject: &Subject, session: &Session) -> Outcome {
    let (integration, ctx) = (subject.integration.clone(), session.host.context());
    let request = (subject.request)(session.sequence.clone(), RunMode::Upload, false);
    let task = tokio::spawn(async move { integration.run(&ctx, request).await });
    let started = Instant::now();
    while !reached(session) {
        if task.is_finished() {
            return Err("the run ended before it reached the service: the subject's slow pace is too quick to cancel it".into());
        }
        if started.elapsed() > PATIENCE {
            task.abort();
            return Err(format!("nothing reached the service within {PATIENCE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    session.host.inner.cancel();
    let cancelled = Instant::now();
    let bound = subject.cancel_within;
    let result = match tokio::time::timeout(bound * 5, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => return Err(format!("the run panicked: {join}")),
        Err(_) => {
            return Err(format!(
                "still running {:?} after it was cancelled",
                bound * 5
            ))
        }
    };
    let took = cancelled.elapsed();
    match result {
        Err(err) if err.kind == ErrorKind::Cancelled && took <= bound => Ok(()),
        Err(err) if err.kind == ErrorKind::Cancelled => Err(format!(
            "it stopped {took:?} after it was cancelled (bound {bound:?})"
        )),
        Err(err) => Err(format!(
            "cancelled, it ended with an error of kind {:?}: {err}",
            err.kind
        )),
        Ok(outcome) => Err(format!(
            "cancelled, it ended {:?} after {took:?}: {:?}",
            outcome.state, outcome.message
        )),
    }
}

fn reached(session: &Session) -> bool {
    match session.fake {
        Some(_) => session.uploads() > 0,
        None => session
            .host
            .inner
            .progress_events()
            .iter()
            .any(|e| matches!(e, ProgressEvent::Advance { .. })),
    }
}

async fn interrupted_run_resumes(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Slow).await?;
    interrupt(subject, &session)
        .await
        .map_err(|e| format!("could not interrupt a run: {e}"))?;
    // Restarted once the service has taken in what the cancelled run left on the wire (idle for a
    // moment: a request can still be on its way to its handler), as a person would restart it after
    // Ctrl-C; not a timing assertion.
    let (started, mut idle_since) = (Instant::now(), Instant::now());
    while idle_since.elapsed() < QUIET && started.elapsed() < PATIENCE {
        if session.fake.as_ref().is_some_and(|f| f.busy()) {
            idle_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restarted = session.host.restarted();
    let outcome = run_to_end(subject, &session, &restarted).await?;
    let resent = session.resent();
    if resent > 0 {
        return Err(format!(
            "the resumed run sent {resent} acknowledged unit(s) again (ended {:?}; {:?})",
            outcome.state,
            session.routes()
        ));
    }
    Ok(())
}

/// Runs until published (re-running while the service processes), as `mtp upload` then `mtp status`.
async fn run_to_end(
    subject: &Subject,
    session: &Session,
    host: &BrowserHost,
) -> Result<RunOutcome, String> {
    let started = Instant::now();
    let mut previous = None;
    loop {
        let outcome = session
            .run_on(subject, host, RunMode::Upload, false, previous)
            .await
            .map_err(|e| format!("the run failed: {e}"))?;
        match outcome.state {
            SequenceState::Published => return Ok(outcome),
            SequenceState::DryRun | SequenceState::Failed => {
                return Err(format!(
                    "the run ended {:?}: {:?}",
                    outcome.state, outcome.message
                ))
            }
            _ if started.elapsed() > PATIENCE => {
                return Err(format!(
                    "not published after {PATIENCE:?}: {:?}, {:?}",
                    outcome.state, outcome.message
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        previous = Some(outcome);
    }
}

async fn published_rerun_is_silent(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Quick).await?;
    let published = run_to_end(subject, &session, &session.host).await?;
    let requests = session.requests();
    let again = session
        .run_on(
            subject,
            &session.host,
            RunMode::Upload,
            false,
            Some(published.clone()),
        )
        .await
        .map_err(|e| format!("the re-run failed: {e}"))?;
    if session.requests() != requests {
        return Err(format!(
            "the re-run of a published sequence sent {} request(s): {:?}",
            session.requests() - requests,
            session.routes()
        ));
    }
    if again.state != SequenceState::Published || again.keys != published.keys {
        return Err(format!(
            "the re-run answered {:?} {:?}, the first run {:?} {:?}",
            again.state, again.keys, published.state, published.keys
        ));
    }
    Ok(())
}

async fn no_secret_shown(subject: &Subject) -> Outcome {
    let session = Session::start(subject, Pace::Quick).await?;
    let outcome = run_to_end(subject, &session, &session.host).await?;
    let mut shown = session.host.everything_shown();
    shown.push_str(&format!(
        "{:?} {:?} {:?}\n",
        outcome.message, outcome.keys, outcome.next_action
    ));
    if let Ok(status) = subject
        .integration
        .auth_status(&session.host.context())
        .await
    {
        shown.push_str(&format!("{status:?}\n"));
    }
    let manifest = subject.integration.manifest();
    let mut secrets: Vec<String> = session.host.inner.secrets().into_values().collect();
    let ctx = session.host.context();
    secrets.extend(
        manifest
            .env_help
            .iter()
            .filter(|h| h.secret)
            .filter_map(|h| ctx.env(&h.key)),
    );
    for secret in secrets.iter().flat_map(|s| secret_parts(s)) {
        if shown.contains(&secret) {
            return Err(format!(
                "a secret ({}…) was shown: {shown}",
                secret.chars().take(4).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// A secret's value and, when it is a JSON document (a token set), every string in it; short strings
/// (under 8 characters) are left out, as they turn up in ordinary text.
fn secret_parts(secret: &str) -> Vec<String> {
    fn strings(value: &plugin_api::serde_json::Value, out: &mut Vec<String>) {
        use plugin_api::serde_json::Value;
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut parts = vec![secret.to_string()];
    if let Ok(value) = plugin_api::serde_json::from_str(secret) {
        strings(&value, &mut parts);
    }
    parts.retain(|p| p.chars().count() >= 8);
    parts
}
