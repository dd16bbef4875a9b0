//! Calling a loaded plugin through the ABI, in-process: host services (declared env only, state, secrets,
//! progress, log forwarding into `tracing`) and panic containment.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use mtp_host::env::EnvValues;
use mtp_host::registry::Registry;
use mtp_host::services::PluginServices;
use mtp_host::state::StateStore;
use mtp_tests::harness::fixture_plugin;
use plugin_api::protocol::{
    Eligibility, Method, ProgressEvent, RunOutcome, RunRequest, SequenceState,
};
use plugin_api::sequence::SequenceDescriptor;
use plugin_api::ErrorKind;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sequence(name: &str) -> SequenceDescriptor {
    serde_json::from_value(serde_json::json!({
        "schema": 1, "id": "seq-1", "root": "/nowhere", "name": name, "description": "",
        "tags": [], "source": "folder", "images": []
    }))
    .expect("a minimal descriptor parses")
}

fn request(name: &str) -> RunRequest {
    RunRequest {
        mode: Default::default(),
        sequence: sequence(name),
        dry_run: false,
        upstream: BTreeMap::new(),
        previous: None,
        options: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_plugin_uses_host_services_and_its_panics_become_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Global, not thread-local: the plugin calls the log service from its own runtime's threads.
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber in this test binary");

    let env = EnvValues::from_map(
        [
            ("ECHO_GREETING".to_string(), "hello".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]
        .into(),
    );
    let registry = Registry::from_files(&[fixture_plugin("out_of_tree_provider")], &env);
    let echo = registry.chain().next().expect("echo is enabled").clone();
    let state_dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(state_dir.path()).unwrap();
    let events: Arc<Mutex<Vec<ProgressEvent>>> = Arc::default();
    let sink_events = events.clone();
    let services = PluginServices::new("echo", env.restricted_to(echo.manifest.declared_env()))
        .with_store(store.clone())
        .with_progress(Arc::new(move |_, event| {
            sink_events.lock().unwrap().push(event)
        }));

    let outcome: RunOutcome = echo
        .call_json(services.to_ffi(), Method::Run, &request("walk"))
        .await
        .expect("echo runs");
    assert_eq!(outcome.state, SequenceState::Published);
    assert_eq!(outcome.message.as_deref(), Some("hello #1"));
    // PATH is in the host's environment but echo did not declare it.
    assert_eq!(outcome.keys["undeclared_env_visible"], "false");
    assert_eq!(outcome.exports["greeting"], "hello");
    assert_eq!(
        *events.lock().unwrap(),
        [ProgressEvent::Advance { bytes: 7, files: 1 }]
    );
    // State and secrets persist in the store, per plugin.
    assert_eq!(
        store.get("echo", "runs", false).unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        store.get("echo", "last", true).unwrap().as_deref(),
        Some("s3cr3t-value")
    );
    let again: RunOutcome = echo
        .call_json(services.to_ffi(), Method::Run, &request("walk"))
        .await
        .unwrap();
    assert_eq!(again.keys["runs"], "2");

    // The plugin's log record reached the host's tracing output.
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("echo says hello to walk"), "{logs}");
    assert!(logs.contains("plugin=\"echo\""), "{logs}");

    // A panic inside the plugin is an error in the host, and the plugin keeps working.
    let err = echo
        .call_json::<_, RunOutcome>(services.to_ffi(), Method::Run, &request("panic"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(
        err.message.contains("echo was asked to panic"),
        "{}",
        err.message
    );
    let after: RunOutcome = echo
        .call_json(services.to_ffi(), Method::Run, &request("walk"))
        .await
        .unwrap();
    assert_eq!(after.keys["runs"], "3");

    // Eligibility is the plugin's own decision.
    let eligible: Eligibility = echo
        .call_json(
            services.to_ffi(),
            Method::Eligibility,
            &sequence("refuse me"),
        )
        .await
        .unwrap();
    assert!(!eligible.eligible);
    assert_eq!(
        eligible.reason.as_deref(),
        Some("echo refuses sequences named refuse")
    );
}
