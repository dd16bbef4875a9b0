//! Strava keeps the provider contract (provider-tests' conformance suite).

mod common;

use provider_tests::conformance::{self, Login, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strava_conforms() {
    let subject = Subject::new("strava", mtp_strava::Strava)
        .fake(common::started)
        .env("STRAVA_REDIRECT_URI", "http://127.0.0.1:9/strava/callback")
        .env("STRAVA_RETRY_BASE_MS", "5")
        .env("STRAVA_POLL_MS", "100")
        .login(Login::Browser)
        .sequence(|_| common::walk("s1", 6, common::T0))
        .ineligible(|_| common::walk("one", 1, common::T0));
    conformance::run(subject).await;
}
