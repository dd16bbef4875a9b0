//! The archive keeps the provider contract (provider-tests' conformance suite), where it applies: it
//! copies to a local directory and talks to no service.

use mtp_archive::Archive;
use provider_tests::conformance::{self, Case, Subject};
use provider_tests::sequences;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_conforms() {
    let no_service = "the archive talks to no service: there is nothing to watch for requests";
    let subject = Subject::new("archive", Archive)
        .env("ARCHIVE_DIR", "{dir}")
        // Large enough that a copy is still running when the suite cancels it.
        .sequence(|dir| sequences::plain(dir, "abcdef123456", 20, 2_000_000))
        .skip(Case::RecheckNeverUploads, no_service)
        .skip(
            Case::PublishedRerunIsSilent,
            &format!("{no_service}; tests/archive.rs checks a re-run copies nothing"),
        )
        .skip(
            Case::InterruptedRunResumes,
            &format!(
                "{no_service}; tests/archive.rs checks a partial copy is resumed, not copied again"
            ),
        );
    conformance::run(subject).await;
}
