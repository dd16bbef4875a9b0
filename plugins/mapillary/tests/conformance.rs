//! Mapillary keeps the provider contract (provider-tests' conformance suite).

mod common;

use mtp_sequence::generate::GenerateOptions;
use plugin_api::prelude::*;
use provider_tests::conformance::{self, Login, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapillary_conforms() {
    let six = |dir: &std::path::Path| {
        let generated = common::generate(
            dir,
            GenerateOptions {
                count: 6,
                ..GenerateOptions::default()
            },
        );
        common::descriptor("s1", &[&generated])
    };
    let subject = Subject::new("mapillary", mtp_mapillary::Mapillary)
        .fake(common::started)
        .env("MAPILLARY_REDIRECT_URI", "http://127.0.0.1:9/callback")
        .env("MAPILLARY_RETRY_BASE_MS", "5")
        .login(Login::Browser)
        .sequence(six)
        .ineligible(move |dir| {
            let mut flown = six(dir);
            flown.transport = TransportType::parse("Air/Paraglide").ok();
            flown
        })
        .request(|sequence, mode, dry_run| RunRequest {
            dry_run,
            ..common::request(&sequence, mode)
        });
    conformance::run(subject).await;
}
