//! The scan keeps what it reads in a scratch file (in `TMPDIR`): when it cannot make one, the scan
//! fails with an error that says so and where, not with a panic or a wrong result. Alone in its own
//! test binary, as it changes the process's environment.

use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use mtp_sequence::{read_sequence, Overrides, SequenceError};

#[test]
fn a_scratch_folder_that_cannot_be_written_is_the_error_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 3,
        ..GenerateOptions::default()
    };
    let dir = generate_sequence(&tmp.path().join("walk"), &opts)
        .unwrap()
        .root;
    let missing = tmp.path().join("no-such-folder");
    std::env::set_var("TMPDIR", &missing);
    let err = read_sequence(&dir, &Overrides::default()).unwrap_err();
    std::env::remove_var("TMPDIR");
    assert!(matches!(err, SequenceError::Scratch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("scratch file") && message.contains("no-such-folder"),
        "{message}"
    );
    // With somewhere to write, the same folder reads.
    let scanned = read_sequence(&dir, &Overrides::default()).unwrap();
    assert_eq!(scanned.images.len(), 3);
}
