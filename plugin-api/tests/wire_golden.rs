//! Golden wire documents (`tests/wire/*.json`, see its README): the JSON that crosses the plugin boundary
//! as plugins built against plugin API 1.0/1.1 write and read it. Each must parse with today's types,
//! keep its meaning (checked value by value), and serialise again with every field it had, spelled as it
//! was — so a renamed field, a renamed wire value without its old spelling, or a field that became
//! required fails here before it breaks an installed plugin.

use std::path::Path;

use plugin_api::prelude::*;
use plugin_api::protocol::{
    AuthOutcome, AuthRequest, AuthStatus, AuthorizePrompt, Eligibility, Method,
};
use plugin_api::sequence::SequenceSource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wire")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `old` is contained in `new`: every key of every object in `old` is in `new` with a contained value,
/// arrays have the same length and contained elements, scalars are equal. `new` may have more keys
/// (optional fields added since).
fn assert_contained(old: &Value, new: &Value, at: &str) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (key, value) in o {
                let Some(again) = n.get(key) else {
                    panic!("{at}.{key}: no longer written (was {value})");
                };
                assert_contained(value, again, &format!("{at}.{key}"));
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(o.len(), n.len(), "{at}: array length");
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                assert_contained(a, b, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{at}: {a} became {b}");
        }
        _ => assert_eq!(old, new, "{at}: {old} became {new}"),
    }
}

/// Parses `doc` as `T`, re-serialises it, checks the old document is contained in the new one.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let parsed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|err| panic!("{what} no longer parses: {err}"));
    let again = serde_json::to_value(&parsed).expect("serialise");
    assert_contained(doc, &again, what);
    parsed
}

#[test]
fn a_run_request_keeps_its_meaning() {
    let request: RunRequest = round_trip(&golden("run_request.json"), "run_request");
    assert_eq!(request.mode, RunMode::Recheck);
    assert!(request.dry_run);
    let seq = &request.sequence;
    assert_eq!(seq.schema, 1);
    assert_eq!(seq.id, "3f2c9a1e-8d4b-4f6a-9c1e-2b7d5a0e4c11");
    assert_eq!(seq.root, "/home/walker/sequences/dyke");
    assert_eq!(seq.name, "Dyke walk");
    assert_eq!(seq.description, "Along the river dyke");
    let transport = seq.transport.as_ref().expect("a transport type");
    assert_eq!(
        (transport.parent.as_str(), transport.child.as_deref()),
        ("Air", Some("Paraglide"))
    );
    assert_eq!(seq.tags, ["river", "dyke"]);
    assert_eq!(seq.source, SequenceSource::Mtpdu);
    assert_eq!(seq.images.len(), 2);
    let first = &seq.images[0];
    assert_eq!(first.file_name, "IMG_000001.jpg");
    assert_eq!(first.size_bytes, 412_345);
    assert_eq!((first.latitude, first.longitude), (52.255262, 6.7798662));
    assert_eq!(first.altitude, Some(12.5));
    assert_eq!(first.captured_at_ms, 1_606_780_800_123);
    assert_eq!(first.heading, Some(271.5));
    assert_eq!(first.projection, Projection::Equirectangular);
    assert_eq!((first.width, first.height), (Some(5760), Some(2880)));
    assert_eq!(
        first.photo_uuid.as_deref(),
        Some("a1b2c3d4-0000-4000-8000-000000000001")
    );
    let second = &seq.images[1];
    assert_eq!(second.projection, Projection::Other("cylindrical".into()));
    assert_eq!((second.altitude, second.heading), (None, None));
    assert_eq!(
        request.upstream["mapillary"]["sequence_key"],
        "AbCdEfGhIjKlMnOpQrStUv"
    );
    let previous = request.previous.as_ref().expect("a previous outcome");
    assert_eq!(previous.state, SequenceState::Unpublished);
    assert_eq!(previous.keys["cluster_id"], "1234567890123456");
    assert_eq!(
        previous.progress,
        Some(Progress {
            files_done: 2,
            files_total: 2,
            bytes_done: 822_221,
            bytes_total: 822_221
        })
    );
    assert_eq!(request.options["jobs"], 4);
}

#[test]
fn a_minimal_run_request_gets_the_defaults() {
    let request: RunRequest =
        round_trip(&golden("run_request_minimal.json"), "run_request_minimal");
    assert_eq!(request.mode, RunMode::Upload);
    assert!(!request.dry_run);
    assert!(
        request.upstream.is_empty() && request.previous.is_none() && request.options.is_empty()
    );
    let seq = &request.sequence;
    assert_eq!((seq.schema, seq.id.as_str()), (1, "seq-7"));
    assert_eq!(seq.source, SequenceSource::Folder);
    assert!(seq.transport.is_none() && seq.tags.is_empty() && seq.name.is_empty());
    let image = &seq.images[0];
    assert_eq!(image.projection, Projection::Flat);
    assert_eq!((image.size_bytes, image.file_name.as_str()), (0, ""));
    assert_eq!(image.captured_at_ms, 1_600_000_000_000);
}

#[test]
fn a_run_outcome_keeps_its_meaning() {
    let outcome: RunOutcome = round_trip(&golden("run_outcome.json"), "run_outcome");
    assert_eq!(outcome.state, SequenceState::Published);
    assert_eq!(
        outcome.message.as_deref(),
        Some("published as AbCdEfGhIjKlMnOpQrStUv")
    );
    assert_eq!(outcome.keys.len(), 2);
    assert_eq!(outcome.exports["sequence_key"], "AbCdEfGhIjKlMnOpQrStUv");
    assert_eq!(outcome.progress.map(|p| p.bytes_total), Some(6_400_000));
    assert_eq!(outcome.next_action, None);

    let minimal: RunOutcome =
        round_trip(&golden("run_outcome_minimal.json"), "run_outcome_minimal");
    assert_eq!(minimal.state, SequenceState::Unknown);
    assert!(minimal.message.is_none() && minimal.keys.is_empty() && minimal.progress.is_none());
}

#[test]
fn every_state_and_method_keeps_its_wire_name() {
    let states: Vec<SequenceState> = round_trip(&golden("states.json"), "states");
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "pending",
            "uploading",
            "unpublished",
            "waiting",
            "published",
            "dry_run",
            "unknown",
            "failed"
        ]
    );
    let methods: Vec<Method> = round_trip(&golden("methods.json"), "methods");
    assert_eq!(
        methods,
        [
            Method::Eligibility,
            Method::Authorize,
            Method::AuthStatus,
            Method::Run
        ]
    );
    for method in methods {
        assert_eq!(Method::parse(method.as_str()), Some(method));
    }
}

#[test]
fn progress_events_keep_their_meaning() {
    let events: Vec<ProgressEvent> = round_trip(&golden("progress_events.json"), "progress_events");
    assert_eq!(
        events,
        [
            ProgressEvent::Step {
                step: "upload".into(),
                message: Some("uploading 16 images".into())
            },
            ProgressEvent::Totals {
                files_total: 16,
                bytes_total: 6_400_000,
                files_done: 3,
                bytes_done: 1_200_000
            },
            ProgressEvent::Advance {
                bytes: 262_144,
                files: 0
            },
            ProgressEvent::Advance { bytes: 0, files: 1 },
            ProgressEvent::Note {
                message: "retrying in 4 s after HTTP 503".into()
            },
        ]
    );
    let minimal: Vec<ProgressEvent> = round_trip(
        &golden("progress_events_minimal.json"),
        "progress_events_minimal",
    );
    assert_eq!(
        minimal,
        [
            ProgressEvent::Step {
                step: "lookup".into(),
                message: None
            },
            ProgressEvent::Totals {
                files_total: 5,
                bytes_total: 500,
                files_done: 0,
                bytes_done: 0
            },
            ProgressEvent::Advance {
                bytes: 100,
                files: 0
            },
            ProgressEvent::Advance { bytes: 0, files: 1 },
        ]
    );
}

#[test]
fn a_manifest_keeps_its_meaning() {
    let manifest: Manifest = round_trip(&golden("manifest.json"), "manifest");
    assert_eq!(
        (manifest.id.as_str(), manifest.version.as_str()),
        ("mtpw", "0.1.0")
    );
    assert_eq!(manifest.api_version, "1.0.0");
    assert_eq!(manifest.required_env.len(), 4);
    assert_eq!(manifest.optional_env, ["MTP_WEB_REDIRECT_URI"]);
    assert_eq!(manifest.after, ["mapillary"]);
    assert_eq!(manifest.consumes, ["sequence_key", "user_token"]);
    let minimal: Manifest = round_trip(&golden("manifest_minimal.json"), "manifest_minimal");
    assert_eq!(minimal.name, "Local archive");
    assert!(minimal.api_version.is_empty() && minimal.required_env.is_empty());
}

#[test]
fn errors_and_auth_documents_keep_their_meaning() {
    let errors: Vec<PluginError> = round_trip(&golden("plugin_errors.json"), "plugin_errors");
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Auth,
            ErrorKind::InvalidInput,
            ErrorKind::Transient,
            ErrorKind::Rejected,
            ErrorKind::Unsupported,
            ErrorKind::Cancelled,
            ErrorKind::Panic,
            ErrorKind::Other
        ]
    );
    assert_eq!(errors[1].message, "IMG_000003.jpg: no GPS position");

    let auth = golden("auth.json");
    let request: AuthRequest = round_trip(&auth["request"], "auth.request");
    assert_eq!(request.token.as_deref(), Some("placeholder-not-a-token"));
    let request: AuthRequest = round_trip(&auth["request_minimal"], "auth.request_minimal");
    assert_eq!(request.token, None);
    let outcome: AuthOutcome = round_trip(&auth["outcome"], "auth.outcome");
    assert_eq!(outcome.account, "fake_user");
    let status: AuthStatus = round_trip(&auth["status"], "auth.status");
    assert!(status.authorised);
    assert_eq!(status.detail.as_deref(), Some("token valid for 59 days"));
    let status: AuthStatus = round_trip(&auth["status_minimal"], "auth.status_minimal");
    assert!(!status.authorised && status.account.is_none());
    let eligibility: Eligibility = round_trip(&auth["eligibility"], "auth.eligibility");
    assert!(!eligibility.eligible);
    assert!(eligibility.reason.unwrap().contains("Paraglide"));
    let eligibility: Eligibility = round_trip(&auth["eligibility_minimal"], "eligibility_minimal");
    assert!(eligibility.eligible && eligibility.reason.is_none());
    let prompt: AuthorizePrompt = round_trip(&auth["prompt"], "auth.prompt");
    assert_eq!(prompt.redirect_uri, "http://127.0.0.1:8765/callback");
    assert_eq!(prompt.provider, "Mapillary");
}
