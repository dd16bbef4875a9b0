//! The loop on tokio's paused clock: hours of waits pass at once, and the waits the loop took are read
//! from that clock exactly.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::sdk::testing::TestHost;

/// A failure that says how it wants to be treated.
#[derive(Debug, Clone, PartialEq)]
struct Fake(Verdict);

impl Display for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fake {:?}", self.0)
    }
}

fn by_itself(failure: &Fake) -> Verdict {
    failure.0.clone()
}

fn wait(secs: u64) -> Fake {
    Fake(Verdict::Retry {
        after: Some(Duration::from_secs(secs)),
    })
}

/// Runs `script` (one entry per attempt; `None` = success) and returns the result, the attempts made and
/// the time the loop spent on tokio's clock.
async fn run(
    host: &TestHost,
    backoff: &mut Backoff,
    script: Vec<Option<Fake>>,
) -> (Result<usize, Stop<Fake>>, usize, Duration) {
    let ctx = host.context();
    let calls = Cell::new(0usize);
    let start = Instant::now();
    let result = retry(&ctx, backoff, "the call", by_itself, |_| {
        let n = calls.get();
        calls.set(n + 1);
        let step = script.get(n).cloned().flatten();
        async move {
            match step {
                None => Ok(n),
                Some(failure) => Err(failure),
            }
        }
    })
    .await;
    (result, calls.get(), start.elapsed())
}

fn backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(16), 200)
        .within(Duration::from_secs(7200))
}

#[tokio::test(start_paused = true)]
async fn server_waits_are_honoured_and_announced() {
    let host = TestHost::new();
    let (result, calls, spent) = run(
        &host,
        &mut backoff(),
        vec![Some(wait(10)), Some(wait(3)), None],
    )
    .await;
    assert_eq!(result.ok(), Some(2));
    assert_eq!(calls, 3);
    assert!(spent >= Duration::from_secs(13), "{spent:?}");
    assert!(spent < Duration::from_secs(14), "{spent:?}");
    let notes: Vec<String> = host
        .progress_events()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Note { message } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("the call") && notes[0].contains("retrying in 10.0 s"),
        "{notes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn final_verdicts_stop_at_once() {
    let host = TestHost::new();
    let (result, calls, spent) = run(&host, &mut backoff(), vec![Some(Fake(Verdict::Fail))]).await;
    assert!(matches!(
        result,
        Err(Stop::Final {
            verdict: Verdict::Fail,
            ..
        })
    ));
    assert_eq!((calls, spent), (1, Duration::ZERO));
    let (result, _, _) = run(
        &host,
        &mut backoff(),
        vec![Some(wait(1)), Some(Fake(Verdict::Auth))],
    )
    .await;
    let err = result.unwrap_err().into_plugin_error("the call");
    assert_eq!(err.kind, ErrorKind::Auth);
}

#[tokio::test(start_paused = true)]
async fn the_retry_count_is_bounded() {
    let host = TestHost::new();
    let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(20), 4);
    let (result, calls, _) = run(
        &host,
        &mut b,
        vec![Some(Fake(Verdict::Retry { after: None })); 10],
    )
    .await;
    match result {
        Err(Stop::GaveUp { retries, .. }) => assert_eq!(retries, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls, 5);
}

#[tokio::test(start_paused = true)]
async fn the_time_since_progress_is_bounded_and_the_message_says_progress_is_kept() {
    let host = TestHost::new();
    // 200 retries allowed, but a 10-minute rate limit each time exhausts a 2-hour window after 12.
    let (result, calls, spent) = run(&host, &mut backoff(), vec![Some(wait(600)); 100]).await;
    assert_eq!(calls, 13);
    assert!(spent <= Duration::from_secs(7200), "{spent:?}");
    let err = result.unwrap_err().into_plugin_error("upload of a.jpg");
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.message.contains("upload of a.jpg"), "{err}");
    assert!(err.message.contains("gave up after 12 retries"), "{err}");
    assert!(
        err.message.contains("progress made so far is kept"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn progress_resets_the_budget() {
    let host = TestHost::new();
    let ctx = host.context();
    let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(20), 3);
    let calls = Cell::new(0u32);
    // Ten failures in a row, each after some progress: more than the 3 retries allowed in a row.
    let result = retry(&ctx, &mut b, "the upload", by_itself, |headway| {
        let n = calls.get();
        calls.set(n + 1);
        async move {
            if n < 10 {
                headway.made();
                Err(Fake(Verdict::Retry { after: None }))
            } else {
                Ok(n)
            }
        }
    })
    .await;
    assert_eq!(result.ok(), Some(10));
}

#[tokio::test(start_paused = true)]
async fn a_requery_goes_at_once_the_first_time() {
    let host = TestHost::new();
    let requery = Some(Fake(Verdict::Requery));
    let (result, _, spent) = run(&host, &mut backoff(), vec![requery.clone(), None]).await;
    assert_eq!(result.ok(), Some(1));
    assert_eq!(spent, Duration::ZERO);
    let (_, _, spent) = run(&host, &mut backoff(), vec![requery.clone(), requery, None]).await;
    assert!(spent >= Duration::from_millis(750), "{spent:?}");
}

#[tokio::test(start_paused = true)]
async fn cancelling_ends_a_long_wait() {
    let host = TestHost::new();
    let canceller = host.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        canceller.cancel();
    });
    let (result, calls, spent) = run(&host, &mut backoff(), vec![Some(wait(3600)), None]).await;
    assert!(matches!(result, Err(Stop::Cancelled)), "{result:?}");
    assert_eq!(calls, 1);
    assert!(spent < Duration::from_secs(31), "{spent:?}");
}
