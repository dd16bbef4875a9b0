//! The rules every provider keeps (the conformance suite the bundled providers run too): keep this file,
//! describe your provider and the fake of its service here, and `cargo test` proves what the host relies
//! on. A rule that cannot apply to your provider is `.skip(Case::..., "why")`, never left out.

use std::time::Duration;

use mtp_template::Template;
use provider_tests::conformance::{self, Pace, Subject};
use provider_tests::mtp_fakes::fake_files::{FakeFiles, FilesConfig};
use provider_tests::sequences;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_conforms() {
    let subject = Subject::new("template", Template)
        .fake(|pace| async move {
            let latency = if pace == Pace::Slow {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            };
            let config = FilesConfig {
                url_key: "TEMPLATE_URL".into(),
                latency,
                ..FilesConfig::default()
            };
            FakeFiles::start(config).await.expect("the fake starts")
        })
        .env("TEMPLATE_RETRY_BASE_MS", "1")
        .sequence(|dir| sequences::plain(dir, "seq-7", 5, 1000))
        .ineligible(|dir| sequences::plain(dir, "empty", 0, 0));
    conformance::run(subject).await;
}
