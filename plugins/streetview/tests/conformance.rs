//! Google Street View keeps the provider contract (provider-tests' conformance suite).

mod common;

use std::time::Duration;

use mtp_fakes::fake_streetview::FakeStreetView;
use provider_tests::conformance::{self, Login, Pace, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streetview_conforms() {
    let subject = Subject::new("streetview", mtp_streetview::StreetView)
        .fake(|pace| async move {
            let mut config = common::quick();
            if pace == Pace::Slow {
                config.faults.upload_delay = Duration::from_millis(300);
            }
            FakeStreetView::start(config)
                .await
                .expect("the fake starts")
        })
        .env("GOOGLE_STREETVIEW_RETRY_BASE_MS", "5")
        .env("GOOGLE_STREETVIEW_POLL_SECS", "0")
        // The fake lists a new photo at once (`quick`), so a photo whose create was cut off and that
        // is not listed was never made: no reason to wait Google's hours of indexing for it.
        .env("GOOGLE_STREETVIEW_INDEX_WAIT_SECS", "0")
        .login(Login::Browser)
        .sequence(|dir| common::walk(dir, "s1", 6, true))
        .ineligible(|dir| common::walk(dir, "flat", 3, false))
        .request(|sequence, mode, dry_run| common::request(&sequence, mode, dry_run));
    conformance::run(subject).await;
}
