//! The runner owns the run (docs/architecture.md): every `--json` progress event names the sequence it
//! belongs to, re-checks included; secret exports (Mapillary's user token) never sit in a sequence record
//! and reach MTPW fresh from the secret store, so re-authorising Mapillary takes effect downstream at once.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use mtp_fakes::fake_mapillary::MapillaryConfig;
use mtp_fakes::fake_mtpw::{MtpwConfig, MtpwFaults};
use mtp_host::state::StateStore;
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

mtp_tests::suite_world!(World);

impl World {
    fn new(mapillary: MapillaryConfig) -> World {
        World(FakesWorld::start(mapillary, MtpwConfig::default()))
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.mtp().args(args).output().unwrap();
        assert!(out.status.success(), "mtp {args:?}: {}", text(&out));
        out
    }

    fn generate(&self, name: &str, seed: u64) -> PathBuf {
        self.run(&[
            "sequence",
            "generate",
            name,
            "--count",
            "3",
            "--bytes-per-image",
            "20000",
            "--seed",
            &seed.to_string(),
        ]);
        self.home.path().join(name)
    }

    fn sequence_id(&self, dir: &Path) -> String {
        let out = self.run(&["sequence", "inspect", "--json", dir.to_str().unwrap()]);
        let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
        inspect["id"].as_str().unwrap().to_string()
    }

    fn state_of(&self, integration: &str) -> String {
        let out = self.run(&["status", "--json"]);
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.iter()
            .find(|r| r["integration"] == integration)
            .map(|r| r["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// Every record in the state database, as the state module reads it, encoded back to JSON.
    fn records_json(&self) -> String {
        let store = StateStore::open(&self.home.path().join("state")).unwrap();
        let records: Vec<String> = store
            .records()
            .unwrap()
            .into_iter()
            .map(|r| serde_json::to_string(&r.record).unwrap())
            .collect();
        records.join("\n")
    }
}

fn progress_events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["type"] == "progress")
        .collect()
}

#[test]
fn every_progress_event_of_an_upload_and_of_a_recheck_names_its_sequence() {
    let world = World::new(MapillaryConfig {
        // Published sequences stay "processing" until the test says otherwise, so the second upload
        // re-checks the first sequence.
        publish_delay: Duration::from_secs(3600),
        ..MapillaryConfig::default()
    });
    world.run(&["auth", "mapillary"]);
    world.run(&["auth", "mtpw"]);
    let first = world.generate("first", 1);
    let second = world.generate("second", 2);
    let (first_id, second_id) = (world.sequence_id(&first), world.sequence_id(&second));

    let upload = world.run(&["upload", "--json", first.to_str().unwrap()]);
    let events = progress_events(&upload);
    assert!(
        !events.is_empty(),
        "the upload sent progress: {}",
        text(&upload)
    );
    for event in &events {
        assert_eq!(event["sequence"], first_id.as_str(), "{event}");
    }
    assert_eq!(world.state_of("mapillary"), "unpublished");

    // The second upload re-checks the first sequence before uploading the second one.
    let upload = world.run(&["upload", "--json", second.to_str().unwrap()]);
    let events = progress_events(&upload);
    for event in &events {
        let sequence = event["sequence"].as_str().unwrap_or_default();
        assert!(
            sequence == first_id || sequence == second_id,
            "an event names no sequence of this run: {event}"
        );
    }
    let rechecked: Vec<&Value> = events
        .iter()
        .filter(|e| e["sequence"] == first_id.as_str())
        .collect();
    assert!(
        rechecked.iter().any(|e| e["step"] == "lookup"),
        "the re-check of the first sequence sent its lookup step: {events:?}"
    );
    assert!(events.iter().any(|e| e["sequence"] == second_id.as_str()));
}

#[test]
fn records_hold_no_token_and_mtpw_gets_the_token_of_the_latest_authorisation() {
    let world = World::new(MapillaryConfig {
        publish_delay: Duration::from_secs(3600),
        // Every authorisation gets a token of its own, so the old one can be revoked.
        issue_fresh_tokens: true,
        ..MapillaryConfig::default()
    });
    world.run(&["auth", "mapillary"]);
    world.run(&["auth", "mtpw"]);
    let first_token = world
        .mapillary
        .stats()
        .tokens_issued
        .last()
        .unwrap()
        .clone();
    let walk = world.generate("walk", 1);

    // Uploaded; Mapillary still processing, MTPW waiting for the key.
    world.run(&["upload", walk.to_str().unwrap()]);
    assert_eq!(world.state_of("mtpw"), "waiting");

    // Mapillary publishes, but MTPW is down during that re-check: Mapillary's record is final, MTPW's
    // still waits.
    world.mapillary.publish_now();
    world.mtpw.set_faults(MtpwFaults {
        error_5xx_ratio: 1.0,
        ..MtpwFaults::default()
    });
    assert_eq!(world.state_of("mapillary"), "published");
    assert_eq!(world.state_of("mtpw"), "waiting");

    // The user re-authorises Mapillary; the old token stops working.
    world.run(&["auth", "mapillary"]);
    let second_token = world
        .mapillary
        .stats()
        .tokens_issued
        .last()
        .unwrap()
        .clone();
    assert_ne!(first_token, second_token);
    world.mapillary.revoke_token(&first_token);
    world.mtpw.set_faults(MtpwFaults::default());

    // The re-check hands MTPW the token Mapillary holds now (a replayed old one would be refused).
    assert_eq!(world.state_of("mtpw"), "published");
    let records = world.records_json();
    assert!(records.contains("sequence_key"), "{records}");
    for token in [&first_token, &second_token] {
        assert!(
            !records.contains(token.as_str()),
            "a token sits in a record: {records}"
        );
    }
}
