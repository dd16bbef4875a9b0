//! Property tests for the JSON documents that cross the plugin boundary: arbitrary text never panics a
//! reader, and every document a peer writes reads back equal.

use plugin_api::error::PluginError;
use plugin_api::manifest::{check_api_compatibility, ApiVersion, Manifest};
use plugin_api::protocol::{ProgressEvent, RunOutcome, RunRequest, SequenceState};
use plugin_api::sequence::SequenceDescriptor;
use plugin_api::transport::TransportType;
use proptest::prelude::*;

fn state() -> impl Strategy<Value = SequenceState> {
    prop_oneof![
        Just(SequenceState::Pending),
        Just(SequenceState::Uploading),
        Just(SequenceState::Unpublished),
        Just(SequenceState::Waiting),
        Just(SequenceState::Published),
        Just(SequenceState::DryRun),
        Just(SequenceState::Unknown),
        Just(SequenceState::Failed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_on_arbitrary_text(text in ".{0,300}") {
        let _ = serde_json::from_str::<Manifest>(&text);
        let _ = serde_json::from_str::<RunRequest>(&text);
        let _ = serde_json::from_str::<RunOutcome>(&text);
        let _ = serde_json::from_str::<ProgressEvent>(&text);
        let _ = serde_json::from_str::<SequenceDescriptor>(&text);
        let _ = PluginError::from_wire(&text);
        let _ = TransportType::parse(&text);
        let _ = ApiVersion::parse(&text);
        let _ = check_api_compatibility(ApiVersion::current(), &text);
    }

    #[test]
    fn outcomes_round_trip(
        state in state(),
        message in proptest::option::of(".{0,40}"),
        keys in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,20}", 0..4),
        exports in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,20}", 0..4),
    ) {
        let outcome = RunOutcome { state, message, keys, exports, progress: None, next_action: None, same_as: None, links: vec![] };
        let text = serde_json::to_string(&outcome).unwrap();
        prop_assert_eq!(serde_json::from_str::<RunOutcome>(&text).unwrap(), outcome);
    }

    #[test]
    fn progress_events_round_trip(bytes in any::<u64>(), files in any::<u64>(), note in ".{0,40}") {
        for event in [
            ProgressEvent::Advance { bytes, files },
            ProgressEvent::Totals { files_total: files, bytes_total: bytes, files_done: 0, bytes_done: 0 },
            ProgressEvent::Note { message: note.clone() },
            ProgressEvent::Step { step: note.clone(), message: None },
        ] {
            let text = serde_json::to_string(&event).unwrap();
            prop_assert_eq!(serde_json::from_str::<ProgressEvent>(&text).unwrap(), event);
        }
    }

    #[test]
    fn manifests_round_trip(id in "[a-z][a-z0-9-]{0,12}", env in proptest::collection::vec("[A-Z_]{1,12}", 0..4)) {
        let manifest = Manifest {
            id, name: "n".into(), version: "1.0.0".into(), description: String::new(),
            api_version: "1.1.0".into(), required_env: env.clone(), optional_env: env,
            after: vec![], exports: vec![], consumes: vec![], ..Default::default()
        };
        let text = serde_json::to_string(&manifest).unwrap();
        prop_assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), manifest);
    }

    #[test]
    fn errors_round_trip_through_the_wire(message in ".{0,60}") {
        let err = PluginError::transient(message);
        prop_assert_eq!(PluginError::from_wire(&err.to_wire()), err);
    }
}

#[test]
fn unknown_fields_from_a_newer_peer_are_ignored() {
    let text = r#"{"state":"published","message":"ok","keys":{},"a_field_from_1_9":[1,2,3]}"#;
    let outcome: RunOutcome = serde_json::from_str(text).unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
}
