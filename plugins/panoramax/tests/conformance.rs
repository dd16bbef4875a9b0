//! Panoramax keeps the provider contract (provider-tests' conformance suite).

mod common;

use plugin_api::prelude::*;
use provider_tests::conformance::{self, Login, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panoramax_conforms() {
    let six = |dir: &std::path::Path| common::descriptor("s1", &common::generate(dir, 6, 7));
    let subject = Subject::new("panoramax", mtp_panoramax::Panoramax)
        .fake(common::started)
        .env("PANORAMAX_RETRY_BASE_MS", "5")
        .env("PANORAMAX_CLAIM_POLL_MS", "20")
        .login(Login::Token("alice-token".into()))
        .sequence(six)
        .ineligible(move |dir| {
            let mut not_jpeg = six(dir);
            not_jpeg
                .images
                .iter_mut()
                .for_each(|i| i.file_name = i.file_name.replace(".jpg", ".png"));
            not_jpeg
        })
        .request(|sequence, mode, dry_run| RunRequest {
            dry_run,
            ..common::request(&sequence, mode)
        });
    conformance::run(subject).await;
}
