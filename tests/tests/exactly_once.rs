//! Exactly once, whatever the user does (issue 12): concurrent `mtp upload` runs of the same and of
//! different sequences with `kill -9` at random moments, overlapping sequences (two cameras 0.5 s apart on
//! one track; photos already on Mapillary), state deleted between runs, signals, and `status --json`
//! checked after every kill. Every scenario ends with each local sequence on the fake exactly once, with
//! its own key, and MTPW holding exactly one record per Mapillary key, under the right name.
//!
//! No assertion is about time: waits poll for a condition, and a kill lands wherever it lands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use mtp_fakes::fake_mapillary::{
    FinishFault, MapillaryConfig, MapillaryFaults, SeededImage, SequenceOrigin,
};
use mtp_fakes::fake_mtpw::MtpwConfig;
use mtp_sequence::generate::{generate_sequence, GenerateOptions, GeneratedSequence};
use mtp_tests::world::{output_text as text, FakesWorld};
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// One local sequence: where it is, its name, its capture times (what identifies it on the fake).
#[derive(Clone)]
struct Local {
    dir: PathBuf,
    name: String,
    times: BTreeSet<i64>,
    images: Vec<SeededImage>,
}

/// What a scenario counted.
#[derive(Default, Debug)]
struct Counts {
    rounds: u32,
    kills: u32,
    concurrent_runs: u32,
    refused_as_busy: u32,
    status_checks: u32,
}

/// A sequence generated into `dir` (small images: this suite is about bookkeeping, not bytes).
fn generate(dir: &Path, name: &str, opts: GenerateOptions) -> Local {
    let generated: GeneratedSequence = generate_sequence(
        dir,
        &GenerateOptions {
            name: name.to_string(),
            ..opts
        },
    )
    .unwrap();
    Local {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        times: generated.images.iter().map(|i| i.captured_at_ms).collect(),
        images: generated
            .images
            .iter()
            .map(|i| SeededImage {
                captured_at_ms: i.captured_at_ms,
                lat: i.latitude,
                lon: i.longitude,
            })
            .collect(),
    }
}

/// Options for sequence number `n` of a scenario: its own day, so sequences never overlap by accident.
fn nth(n: u64, count: usize) -> GenerateOptions {
    let defaults = GenerateOptions::default();
    GenerateOptions {
        count,
        seed: 100 + n,
        start_time_ms: defaults.start_time_ms + n as i64 * 86_400_000,
        target_bytes: Some(60_000),
        ..defaults
    }
}

mtp_tests::suite_world!(World);

impl World {
    fn new(mapillary: MapillaryConfig) -> World {
        World(FakesWorld::start(mapillary, MtpwConfig::default()))
    }

    fn spawn_upload(&self, dirs: &[&Path]) -> Child {
        self.mtp()
            .arg("upload")
            .args(dirs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `mtp status --json`, checked: it succeeds, every row has a state, and every row not done says
    /// what to do next.
    fn status_rows(&self, counts: &mut Counts) -> Vec<Value> {
        counts.status_checks += 1;
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", text(&out));
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("status --json is JSON ({err}): {}", text(&out)));
        for row in &rows {
            let state = row["state"].as_str().unwrap_or_default();
            assert!(!state.is_empty(), "{row}");
            if state != "published" {
                assert!(
                    row["next_action"].as_str().is_some_and(|n| !n.is_empty())
                        || row["last_error"].is_string(),
                    "a sequence not done says what to do next: {row}"
                );
            }
        }
        rows
    }

    /// Runs `mtp upload` (then `mtp status` for what Mapillary is still processing) until every row is
    /// published, as a user would; `--republish` only when mtp says an outcome is unknown and the fake
    /// shows the content was never published (what a user checks on mapillary.com).
    fn finish(&self, locals: &[&Local], counts: &mut Counts) {
        let dirs: Vec<&Path> = locals.iter().map(|l| l.dir.as_path()).collect();
        let mut republish = false;
        for _ in 0..12 {
            let mut command = self.mtp();
            command.arg("upload").args(&dirs);
            if republish {
                command.arg("--republish");
            }
            let _ = command.output().unwrap();
            let rows = self.status_rows(counts);
            let named: Vec<&Value> = rows
                .iter()
                .filter(|r| locals.iter().any(|l| r["name"] == l.name.as_str()))
                .collect();
            if named.len() == locals.len() * 2 && named.iter().all(|r| r["state"] == "published") {
                return;
            }
            let stats = self.mapillary.stats();
            republish = rows.iter().any(|r| r["state"] == "unknown")
                && locals.iter().any(|l| self.published_copies(&stats, l) == 0);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "not all published: {:#?}",
            self.status_rows(&mut Counts::default())
        );
    }

    fn published_copies(
        &self,
        stats: &mtp_fakes::fake_mapillary::MapillaryStats,
        local: &Local,
    ) -> usize {
        stats
            .sequences
            .iter()
            .filter(|s| s.origin == SequenceOrigin::Upload && times_of(s) == local.times)
            .count()
    }

    /// The invariant of the issue. Returns (duplicates, misattributed keys) — both must be 0.
    fn assert_exactly_once(&self, locals: &[&Local]) -> (usize, usize) {
        let stats = self.mapillary.stats();
        let rows = self.status_rows(&mut Counts::default());
        let mut duplicates = 0;
        let mut misattributed = 0;
        let mtpw = self.mtpw.stats();
        for local in locals {
            let copies: Vec<_> = stats
                .sequences
                .iter()
                // Ours: published by an upload, or already on the account (seeded) and adopted.
                .filter(|s| s.origin != SequenceOrigin::Decoy && times_of(s) == local.times)
                .collect();
            duplicates += copies.len().saturating_sub(1);
            assert_eq!(
                copies.len(),
                1,
                "{} is on the fake exactly once: {:?}",
                local.name,
                copies.iter().map(|s| &s.key).collect::<Vec<_>>()
            );
            let key = &copies[0].key;
            let row = rows
                .iter()
                .find(|r| r["name"] == local.name.as_str() && r["integration"] == "mapillary")
                .unwrap_or_else(|| panic!("{} has a mapillary record: {rows:?}", local.name));
            if row["keys"]["sequence_key"] != key.as_str() {
                misattributed += 1;
            }
            assert_eq!(
                row["keys"]["sequence_key"],
                key.as_str(),
                "{} has its own key",
                local.name
            );
            let records: Vec<_> = mtpw
                .sequences
                .iter()
                .filter(|s| s.sequence_key.as_deref() == Some(key.as_str()))
                .collect();
            assert_eq!(
                records.len(),
                1,
                "MTPW holds one record of {key}: {:?}",
                mtpw.sequences
            );
            if records[0].name != local.name {
                misattributed += 1;
            }
            assert_eq!(
                records[0].name, local.name,
                "MTPW's record has the right name"
            );
        }
        // MTPW never holds a key that is not one of our own sequences (uploaded or adopted).
        let ours: BTreeSet<&str> = stats
            .sequences
            .iter()
            .filter(|s| {
                s.origin == SequenceOrigin::Upload || locals.iter().any(|l| times_of(s) == l.times)
            })
            .map(|s| s.key.as_str())
            .collect();
        for record in &mtpw.sequences {
            if let Some(key) = &record.sequence_key {
                assert!(
                    ours.contains(key.as_str()),
                    "MTPW got a foreign key: {record:?}"
                );
            }
        }
        (duplicates, misattributed)
    }
}

fn times_of(s: &mtp_fakes::fake_mapillary::PublishedSequence) -> BTreeSet<i64> {
    s.images.iter().filter_map(|i| i.captured_at_ms).collect()
}

/// Waits for a child, collecting its output.
fn wait(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn kill9(child: &mut Child) {
    // SIGKILL by the child's own pid (never by name).
    let _ = child.kill();
}

#[test]
fn concurrent_runs_with_kills_publish_each_sequence_once() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let world = World::new(MapillaryConfig {
        publish_after_lookups: 1,
        ..MapillaryConfig::default()
    });
    world.authorise();
    let mut counts = Counts::default();
    let mut all: Vec<Local> = Vec::new();
    for round in 0..4u64 {
        counts.rounds += 1;
        let x = generate(
            &world.dir(&format!("x{round}")),
            &format!("X{round}"),
            nth(2 * round, 8),
        );
        let y = generate(
            &world.dir(&format!("y{round}")),
            &format!("Y{round}"),
            nth(2 * round + 1, 8),
        );
        // Rounds alternate: two runs of the same sequence; three runs (X, X, Y).
        let mut children = vec![world.spawn_upload(&[&x.dir]), world.spawn_upload(&[&x.dir])];
        if round % 2 == 1 {
            children.push(world.spawn_upload(&[&y.dir]));
        }
        counts.concurrent_runs += children.len() as u32;
        let victim = rng.gen_range(0..children.len());
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..700)));
        kill9(&mut children[victim]);
        counts.kills += 1;
        world.status_rows(&mut counts);
        for (i, child) in children.into_iter().enumerate() {
            let out = wait(child);
            if i != victim && text(&out).contains("already being worked on by process") {
                counts.refused_as_busy += 1;
                assert!(
                    !out.status.success(),
                    "a refused run says so in its exit code"
                );
            }
        }
        world.status_rows(&mut counts);
        world.finish(&[&x, &y], &mut counts);
        all.push(x);
        all.push(y);
    }
    let refs: Vec<&Local> = all.iter().collect();
    let (duplicates, misattributed) = world.assert_exactly_once(&refs);
    eprintln!(
        "concurrency: {counts:?}; {} sequences; duplicates found = {duplicates}; misattributed keys = {misattributed}",
        all.len()
    );
}

#[test]
fn a_second_run_of_a_busy_sequence_stops_at_once_naming_the_first() {
    // A slow uplink keeps the first run busy for as long as the second needs to try.
    let world = World::new(MapillaryConfig {
        faults: MapillaryFaults {
            throttle_bytes_per_sec: Some(200_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    });
    world.authorise();
    let mut counts = Counts::default();
    let x = generate(&world.dir("busy"), "Busy", nth(40, 12));
    let other = generate(&world.dir("free"), "Free", nth(41, 2));
    let mut first = world.spawn_upload(&[&x.dir]);
    // Wait until the first run holds the sequence (its record exists).
    let mut held = false;
    for _ in 0..200 {
        if world
            .status_rows(&mut counts)
            .iter()
            .any(|r| r["name"] == "Busy")
        {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(held, "the first run recorded the sequence");
    let second = world.run(&["upload", x.dir.to_str().unwrap()]);
    let said = text(&second);
    eprintln!("second run said: {said}");
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "already being worked on by process {}",
            first.id()
        )),
        "{said}"
    );
    assert!(said.contains("upload since"), "{said}");
    // Another sequence proceeds meanwhile.
    let free = world.run(&["upload", other.dir.to_str().unwrap()]);
    assert!(free.status.success(), "{}", text(&free));
    // kill -9 of the holder: the kernel frees the lock; the next run takes over.
    kill9(&mut first);
    let _ = first.wait();
    world.mapillary.set_faults(MapillaryFaults::default());
    world.finish(&[&x, &other], &mut counts);
    world.assert_exactly_once(&[&x, &other]);
}

#[test]
fn overlapping_cameras_get_their_own_keys_and_photos_already_on_mapillary_are_adopted() {
    let dir = tempfile::tempdir().unwrap();
    // Two cameras on one walk: the same track, capture times 0.5 s apart, different pixels.
    let base = nth(60, 8);
    let cam_a = generate(&dir.path().join("cam-a"), "Camera A", base.clone());
    let cam_b = generate(
        &dir.path().join("cam-b"),
        "Camera B",
        GenerateOptions {
            seed: 500,
            start_time_ms: base.start_time_ms + 500,
            ..base.clone()
        },
    );
    // Photos already on the user's Mapillary account at exactly camera C's capture times and places (an
    // earlier MTPDU/v3 upload, mapillary_tools on another machine), before the test starts: adopted.
    let cam_c = generate(&dir.path().join("cam-c"), "Camera C", nth(61, 6));
    let world = World::new(MapillaryConfig {
        seeded_sequences: vec![cam_c.images.clone()],
        // Each new sequence stays invisible for a while, the later one longer, so the older overlapping
        // one is visible while the newer one is not.
        publish_after_lookups_by_call: vec![1, 4, 2, 2],
        ..MapillaryConfig::default()
    });
    let seeded_key = world.mapillary.stats().sequences[0].key.clone();
    world.authorise();
    let mut counts = Counts::default();
    for local in [&cam_a, &cam_b, &cam_c] {
        let out = world.run(&["upload", local.dir.to_str().unwrap()]);
        eprintln!("upload {}: {}", local.name, text(&out));
        world.status_rows(&mut counts);
    }
    // Three processes re-check the same waiting sequences at once: each sequence is re-checked (and
    // imported into MTPW) by one of them only.
    for _ in 0..3 {
        let checks: Vec<Child> = (0..3)
            .map(|_| {
                world
                    .mtp()
                    .args(["status", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        counts.concurrent_runs += 3;
        for check in checks {
            let out = wait(check);
            assert!(out.status.success(), "{}", text(&out));
        }
        let mtpw = world.mtpw.stats();
        let keys: Vec<&String> = mtpw
            .sequences
            .iter()
            .filter_map(|s| s.sequence_key.as_ref())
            .collect();
        let distinct: BTreeSet<&String> = keys.iter().copied().collect();
        assert_eq!(
            keys.len(),
            distinct.len(),
            "one MTPW record per key: {keys:?}"
        );
    }
    world.finish(&[&cam_a, &cam_b, &cam_c], &mut counts);
    let (duplicates, misattributed) = world.assert_exactly_once(&[&cam_a, &cam_b, &cam_c]);
    let mtpw = world.mtpw.stats();
    assert_eq!(
        mtpw.sequence_by_key(&seeded_key).map(|s| s.name.as_str()),
        Some(cam_c.name.as_str()),
        "camera C adopted the sequence already on the account"
    );
    assert_eq!(
        world
            .mapillary
            .stats()
            .finish_upload_calls
            .values()
            .sum::<u32>(),
        2,
        "cameras A and B published, camera C not"
    );
    // The same two cameras again, at once.
    let cam_d = generate(&dir.path().join("cam-d"), "Camera D", nth(62, 8));
    let cam_e = generate(
        &dir.path().join("cam-e"),
        "Camera E",
        GenerateOptions {
            seed: 300,
            start_time_ms: nth(62, 8).start_time_ms + 500,
            ..nth(62, 8)
        },
    );
    let d = world.spawn_upload(&[&cam_d.dir]);
    let e = world.spawn_upload(&[&cam_e.dir]);
    let (_, _) = (wait(d), wait(e));
    world.finish(&[&cam_d, &cam_e], &mut counts);
    let (d2, m2) = world.assert_exactly_once(&[&cam_a, &cam_b, &cam_c, &cam_d, &cam_e]);
    eprintln!(
        "overlap: {counts:?}; duplicates found = {}; misattributed keys = {}",
        duplicates + d2,
        misattributed + m2
    );
}

#[test]
fn kills_signals_and_lost_state_never_publish_twice() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let world = World::new(MapillaryConfig {
        faults: MapillaryFaults {
            throttle_bytes_per_sec: Some(400_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    });
    world.authorise();
    let mut counts = Counts::default();
    let s = generate(&world.dir("walk"), "Walk", nth(80, 16));

    // kill -9 in the middle of the upload: status shows how far it got and what to do.
    let mut child = world.spawn_upload(&[&s.dir]);
    let mut seen = None;
    for _ in 0..400 {
        let rows = world.status_rows(&mut counts);
        if let Some(row) = rows.iter().find(|r| {
            r["integration"] == "mapillary"
                && r["state"] == "uploading"
                && r["progress"]["files_done"].as_u64().unwrap_or(0) > 0
        }) {
            seen = Some(row.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = seen.expect("status shows the upload in progress");
    kill9(&mut child);
    let _ = child.wait();
    counts.kills += 1;
    let rows = world.status_rows(&mut counts);
    let row = rows
        .iter()
        .find(|r| r["integration"] == "mapillary")
        .expect("the killed run's record");
    eprintln!("after kill -9: {row}");
    assert_eq!(row["state"], "uploading", "{row}");
    assert!(row["message"].as_str().unwrap().starts_with("uploading "));
    assert!(
        row["progress"]["files_done"].as_u64() >= seen["progress"]["files_done"].as_u64(),
        "{row}"
    );
    let status_text = text(&world.run(&["status"]));
    eprintln!("mtp status after kill -9:\n{status_text}");
    assert!(status_text.contains("uploading"), "{status_text}");

    // SIGTERM and SIGHUP stop at the next safe point, record, and exit 143 / 129.
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let requests = |w: &World| w.mapillary.stats().requests.values().sum::<u64>();
        let before = requests(&world);
        let child = world.spawn_upload(&[&s.dir]);
        // Once the run talks to Mapillary its handlers are in place; then a random moment later.
        for _ in 0..400 {
            if requests(&world) > before {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let out = wait(child);
        eprintln!("after signal {signal}: {}", text(&out));
        if out.status.code() == Some(0) {
            break; // it had finished already
        }
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        let rows = world.status_rows(&mut counts);
        assert!(
            rows.iter().any(|r| r["integration"] == "mapillary"),
            "{rows:?}"
        );
    }

    // The publish answers 500 without publishing: outcome unknown; status says so and what to do;
    // the user checks Mapillary and republishes: a fresh manifest entity, each handle sent once.
    let calls_before = world.mapillary.stats().finish_upload_calls.len();
    world.mapillary.set_faults(MapillaryFaults {
        finish: FinishFault::Fail500,
        ..MapillaryFaults::default()
    });
    let out = world.run(&["upload", s.dir.to_str().unwrap()]);
    eprintln!("upload with a 500 on publish: {}", text(&out));
    let calls = world.mapillary.stats().finish_upload_calls.len();
    let failed_publish = calls > calls_before;
    if failed_publish {
        let status_text = text(&world.run(&["status"]));
        eprintln!("mtp status after the 500:\n{status_text}");
        assert!(status_text.contains("unknown"), "{status_text}");
    }
    world.mapillary.set_faults(MapillaryFaults::default());
    world.finish(&[&s], &mut counts);
    let stats = world.mapillary.stats();
    assert!(
        stats.finish_upload_calls.values().all(|&n| n == 1),
        "every publish attempt has its own manifest handle: {:?}",
        stats.finish_upload_calls
    );
    assert_eq!(
        stats.finish_upload_calls.len(),
        calls + usize::from(failed_publish),
        "{:?}",
        stats.finish_upload_calls
    );
    world.assert_exactly_once(&[&s]);

    // Lost state: delete it, authorise again, upload again: adopted, nothing published again.
    let state = world.home.path().join("state");
    std::fs::remove_dir_all(&state).unwrap();
    world.authorise();
    let before = world
        .mapillary
        .stats()
        .finish_upload_calls_by_content
        .clone();
    let out = world.run(&["upload", s.dir.to_str().unwrap()]);
    eprintln!("upload after the state was deleted: {}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("adopted"), "{}", text(&out));
    let after = world
        .mapillary
        .stats()
        .finish_upload_calls_by_content
        .clone();
    assert_eq!(before, after, "no finish_upload after the state was lost");
    let (duplicates, misattributed) = world.assert_exactly_once(&[&s]);
    let by_content: BTreeMap<String, u32> = after;
    eprintln!(
        "kills/signals/lost state: {counts:?}; finish_upload per content {:?}; duplicates found = {duplicates}; misattributed keys = {misattributed}",
        by_content.values().collect::<Vec<_>>()
    );
}

#[test]
fn images_added_after_publishing_are_reported_and_sent_only_on_request() {
    let world = World::new(MapillaryConfig::default());
    world.authorise();
    let mut counts = Counts::default();
    let dir = world.dir("grown");
    let first = generate(&dir, "Grown", nth(90, 6));
    world.finish(&[&first], &mut counts);
    world.assert_exactly_once(&[&first]);
    let before = world.mapillary.stats();

    // The same generator with more images: the first six are the same, two are new.
    let grown = generate(&dir, "Grown", nth(90, 8));
    let added: BTreeSet<i64> = grown.times.difference(&first.times).copied().collect();
    assert_eq!(added.len(), 2);
    let status = text(&world.run(&["status"]));
    eprintln!("mtp status after adding images:\n{status}");
    assert!(
        status.contains("the folder changed since the last run (2 added"),
        "{status}"
    );
    let out = world.run(&["upload", dir.to_str().unwrap()]);
    let said = text(&out);
    eprintln!("mtp upload after adding images:\n{said}");
    assert!(
        said.contains("the folder changed since it was published: 2 added"),
        "{said}"
    );
    assert!(said.contains("--add-new-images"), "{said}");
    assert_eq!(
        world.mapillary.stats().finish_upload_calls,
        before.finish_upload_calls,
        "nothing is published without the flag"
    );

    let out = world.run(&["upload", "--add-new-images", dir.to_str().unwrap()]);
    let said = text(&out);
    eprintln!("mtp upload --add-new-images:\n{said}");
    assert!(out.status.success(), "{said}");
    let stats = world.mapillary.stats();
    let uploaded = stats.uploaded_sequences();
    assert_eq!(uploaded.len(), 2, "one additional sequence");
    assert!(uploaded.iter().any(|s| times_of(s) == first.times));
    let extra = uploaded
        .iter()
        .find(|s| times_of(s) == added)
        .expect("the additional sequence holds exactly the added images");
    // Nothing published was sent again.
    for (key, entity) in &before.entities {
        assert_eq!(
            stats.entities[key].bytes_received_total, entity.bytes_received_total,
            "{key} was sent again"
        );
    }
    let rows = world.status_rows(&mut counts);
    let row = rows
        .iter()
        .find(|r| r["integration"] == "mapillary")
        .unwrap();
    assert_eq!(
        row["keys"]["added_sequence_key"],
        extra.key.as_str(),
        "{row}"
    );
    // A repeated run sends nothing more.
    let again = world.run(&["upload", "--add-new-images", dir.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(world.mapillary.stats().uploaded_sequences().len(), 2);
    world.assert_exactly_once(&[&first]);
}
