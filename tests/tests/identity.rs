//! One photo, published once, wherever it sits on disk (issue 23): a sequence is its photos, recognised
//! by content, not by its folder's path or the UUID written into it. Each test runs the real binary
//! against the fakes and counts what reached them.

use std::path::Path;

use mtp_fakes::fake_mapillary::{MapillaryConfig, SeededImage};
use mtp_fakes::fake_mtpw::MtpwConfig;
use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

mtp_tests::suite_world!(World);

/// What the fakes hold, to compare before and after a run that must send and publish nothing.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    finish_uploads: u32,
    body_bytes: u64,
    entities: usize,
    published: usize,
    mtpw_records: usize,
    mtpw_writes: u64,
}

impl World {
    fn new() -> World {
        let world = World(FakesWorld::start(
            MapillaryConfig::default(),
            MtpwConfig::default(),
        ));
        world.authorise();
        world
    }

    fn held(&self) -> Held {
        let m = self.mapillary.stats();
        let w = self.mtpw.stats();
        Held {
            finish_uploads: m.finish_upload_calls.values().sum(),
            body_bytes: m.upload_bytes_received,
            entities: m.entities.len(),
            published: m.sequences.len(),
            mtpw_records: w.sequences.len(),
            mtpw_writes: w.create_calls + w.import_calls,
        }
    }

    /// `mtp upload dir`, required to succeed; its output.
    fn upload(&self, dir: &Path) -> String {
        let out = self.mtp().arg("upload").arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "upload {}: {}",
            dir.display(),
            text(&out)
        );
        text(&out)
    }

    fn status(&self) -> Vec<Value> {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn options(seed: u64, count: usize, mtpdu: bool) -> GenerateOptions {
    let defaults = GenerateOptions::default();
    GenerateOptions {
        count,
        seed,
        mtpdu,
        start_time_ms: defaults.start_time_ms + seed as i64 * 86_400_000,
        name: format!("walk {seed}"),
        ..defaults
    }
}

/// Case 1: a published folder, moved and renamed, is recognised by its photos: nothing is sent or
/// published (not on Mapillary, not on MTPW), and `status` lists it once, at its new path. Plain camera
/// JPEGs (the folder's id comes from its path) and an MTPDU folder (its id is its sequence UUID, so the
/// same id arrives with new paths: case 2's rename reported as a move, not as every file added and
/// removed).
#[test]
fn a_moved_folder_is_recognised_by_its_photos_and_sent_nowhere() {
    for mtpdu in [false, true] {
        let world = World::new();
        let old = world.dir("nikon");
        let mut generate = options(3, 5, mtpdu);
        // A camera writes no MTPDU description: the folder's id comes from its path.
        generate.image_description = mtpdu;
        // Its name and transport (MTPW needs one) in the folder's `sequence.toml`.
        generate.sequence_toml = !mtpdu;
        generate_sequence(&old, &generate).unwrap();
        let first = world.upload(&old);
        assert!(first.contains("mapillary: published"), "{first}");
        assert!(first.contains("mtpw: published"), "{first}");
        let before = world.held();
        assert_eq!(before.published, 1, "{before:?}");
        let key = world.status()[0]["keys"]["sequence_key"]
            .as_str()
            .unwrap()
            .to_string();

        let moved = world.dir("photos").join("nikon-2008");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::rename(&old, &moved).unwrap();
        if mtpdu {
            // MTPDU names the sequence log after its folder.
            std::fs::rename(moved.join("nikon.json"), moved.join("nikon-2008.json")).unwrap();
        }
        let out = world.upload(&moved);
        let expected = format!(
            "moved from {}: already published as {key}; nothing sent",
            old.display()
        );
        assert!(out.contains(&expected), "wanted `{expected}` in:\n{out}");
        assert!(!out.contains("added"), "{out}");
        assert_eq!(world.held(), before, "nothing sent, nothing published");

        let rows = world.status();
        assert_eq!(
            rows.len(),
            2,
            "one sequence, one row per integration: {rows:#?}"
        );
        for row in &rows {
            assert_eq!(row["root"], moved.display().to_string(), "{row}");
            assert_eq!(row["state"], "published", "{row}");
            assert!(row["folder_changed"].is_null(), "{row}");
        }
        assert_eq!(rows[0]["sequence_id"], rows[1]["sequence_id"]);

        // Again, from the new place: the same sequence, nothing to say, still nothing sent.
        let again = world.upload(&moved);
        assert!(
            !again.contains("error") && !again.contains("added"),
            "{again}"
        );
        // (MTPW's sync of a published sequence runs again on every upload, as before: it may
        // import into its record again, but never adds one.)
        let held = world.held();
        assert_eq!(
            Held {
                mtpw_writes: before.mtpw_writes,
                ..held
            },
            before
        );
        assert_eq!(world.status().len(), 2);
    }
}

/// The capture times and places of a generated folder, as Mapillary would show them once uploaded.
fn on_mapillary(generated: &mtp_sequence::generate::GeneratedSequence) -> Vec<SeededImage> {
    generated
        .images
        .iter()
        .map(|i| SeededImage {
            captured_at_ms: i.captured_at_ms,
            lat: i.latitude,
            lon: i.longitude,
        })
        .collect()
}

/// A camera folder (named by its `sequence.toml`, so MTPW takes it), written under `name`.
fn camera_folder(world: &World, name: &str, seed: u64) -> (std::path::PathBuf, Vec<SeededImage>) {
    let dir = world.dir(name);
    let mut generate = options(seed, 4, false);
    generate.image_description = false;
    generate.sequence_toml = true;
    let generated = generate_sequence(&dir, &generate).unwrap();
    (dir, on_mapillary(&generated))
}

/// Case 3: photos already on the user's Mapillary account (uploaded from another machine or by
/// mapillary_tools: this state store never sent them, the upload service holds none of their bytes) are
/// adopted, not published: no body byte, no `finish_upload`, the key is the one already there and MTPW
/// syncs it. Twice there: reported, nothing published. `--republish` publishes anyway.
#[test]
fn photos_already_on_the_account_are_adopted_not_published() {
    let world = World::new();
    let (dir, images) = camera_folder(&world, "from-the-other-laptop", 31);
    let key = world.mapillary.seed_sequence(&images);
    let before = world.held();
    let out = world.upload(&dir);
    eprintln!("{out}");
    let said = format!(
        "already on your Mapillary account as sequence {key} (every image at the same time and place): adopted, nothing sent (mtp upload --republish publishes it anyway)"
    );
    assert!(out.contains(&said), "wanted `{said}` in:\n{out}");
    assert_eq!(out.matches("adopted").count(), 1, "said once: {out}");
    let after = world.held();
    assert_eq!(after.finish_uploads, before.finish_uploads, "{after:?}");
    assert_eq!(after.body_bytes, 0, "no body byte sent: {after:?}");
    assert_eq!(after.entities, 0, "{after:?}");
    assert_eq!(after.published, 1, "{after:?}");
    let rows = world.status();
    let mapillary = rows
        .iter()
        .find(|r| r["integration"] == "mapillary")
        .unwrap();
    assert_eq!(mapillary["state"], "published", "{mapillary}");
    assert_eq!(
        mapillary["keys"]["sequence_key"],
        key.as_str(),
        "{mapillary}"
    );
    let mtpw = world.mtpw.stats();
    assert!(
        mtpw.sequence_by_key(&key).is_some(),
        "MTPW synced the adopted key: {:?}",
        mtpw.sequences
    );
    assert_eq!(mtpw.sequences.len(), 1);

    // The same photos twice on the account (two earlier uploads): reported, nothing published, no key.
    let (twice, images) = camera_folder(&world, "uploaded-twice", 32);
    let mut copies = [
        world.mapillary.seed_sequence(&images),
        world.mapillary.seed_sequence(&images),
    ];
    // Named in key order.
    copies.sort();
    let [first, second] = copies;
    let out = world.upload(&twice);
    eprintln!("{out}");
    assert!(
        out.contains(&format!(
            "is already on Mapillary more than once ({first}, {second}): not published again, no key assigned"
        )),
        "{out}"
    );
    let held = world.held();
    assert_eq!(held.finish_uploads, 0, "{held:?}");
    assert_eq!(held.body_bytes, 0, "{held:?}");
    let rows = world.status();
    let record = rows
        .iter()
        .find(|r| r["integration"] == "mapillary" && r["root"] == twice.display().to_string())
        .unwrap();
    assert_ne!(record["state"], "published", "{record}");
    assert!(record["keys"]["sequence_key"].is_null(), "{record}");

    // --republish publishes anyway, under a key of its own.
    let (again, images) = camera_folder(&world, "publish-anyway", 33);
    let seeded = world.mapillary.seed_sequence(&images);
    let out = world
        .mtp()
        .args(["upload", "--republish"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    eprintln!("{out}");
    assert!(!out.contains("adopted"), "{out}");
    let held = world.held();
    assert_eq!(held.finish_uploads, 1, "{held:?}");
    assert!(held.body_bytes > 0, "{held:?}");
    let rows = world.status();
    let record = rows
        .iter()
        .find(|r| r["integration"] == "mapillary" && r["root"] == again.display().to_string())
        .unwrap();
    assert_eq!(record["state"], "published", "{record}");
    assert_ne!(record["keys"]["sequence_key"], seeded.as_str(), "{record}");
}

/// An MTPDU folder whose sequence log says MTPDU published it to Mapillary as upload session `session`
/// and never learnt the sequence key (MTPDU writes the session key once it has published: its
/// `app/scripts/integrations/index.ts`), with the capture times and places Mapillary shows for it.
fn published_by_mtpdu(
    world: &World,
    name: &str,
    seed: u64,
) -> (std::path::PathBuf, Vec<SeededImage>) {
    let dir = world.dir(name);
    let generated = generate_sequence(&dir, &options(seed, 3, true)).unwrap();
    let log = dir.join(format!("{name}.json"));
    let mut json: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    json["sequence"]["destination"] = serde_json::json!({"mapillary": "uuid_0f3c2a"});
    std::fs::write(&log, serde_json::to_vec(&json).unwrap()).unwrap();
    (dir, on_mapillary(&generated))
}

/// Case 6(b): a sequence MTPDU published before it learnt its Mapillary key is looked up on the user's
/// account, never sent again: found, it gets that key and MTPW syncs it; not found yet, it waits (not
/// failed) with a line saying so, and a later `mtp status` finds it.
#[test]
fn a_sequence_mtpdu_published_is_looked_up_never_sent_again() {
    let world = World::new();
    let (dir, images) = published_by_mtpdu(&world, "ride-found", 61);
    let key = world.mapillary.seed_sequence(&images);
    let out = world.upload(&dir);
    eprintln!("{out}");
    let said = format!(
        "published by MTP Desktop Uploader; found on your account: published as Mapillary sequence {key}; nothing sent"
    );
    assert!(out.contains(&said), "wanted `{said}` in:\n{out}");
    let held = world.held();
    assert_eq!(held.finish_uploads, 0, "{held:?}");
    assert_eq!(held.body_bytes, 0, "{held:?}");
    assert_eq!(held.entities, 0, "{held:?}");
    assert!(
        world.mtpw.stats().sequence_by_key(&key).is_some(),
        "MTPW synced the key found"
    );

    let (later, images) = published_by_mtpdu(&world, "ride-not-yet", 62);
    let out = world.upload(&later);
    eprintln!("{out}");
    assert!(
        out.contains("not found under your Mapillary account yet (Mapillary may still be processing it); nothing sent"),
        "{out}"
    );
    assert!(
        out.contains("mtp status and mtp upload look for it again"),
        "{out}"
    );
    assert_eq!(world.held(), held, "nothing sent, nothing published");
    let rows = world.status();
    let waiting = rows
        .iter()
        .find(|r| r["integration"] == "mapillary" && r["root"] == later.display().to_string())
        .unwrap();
    assert_eq!(waiting["state"], "unpublished", "{waiting}");
    // Mapillary shows it now: the next re-check finds it and MTPW syncs it; still nothing sent.
    let key = world.mapillary.seed_sequence(&images);
    let out = world.run(&["status"]);
    eprintln!("{}", text(&out));
    let rows = world.status();
    let found = rows
        .iter()
        .find(|r| r["integration"] == "mapillary" && r["root"] == later.display().to_string())
        .unwrap();
    assert_eq!(found["state"], "published", "{found}");
    assert_eq!(found["keys"]["sequence_key"], key.as_str(), "{found}");
    assert!(world.mtpw.stats().sequence_by_key(&key).is_some());
    let after = world.held();
    assert_eq!(after.finish_uploads, 0, "{after:?}");
    assert_eq!(after.body_bytes, 0, "{after:?}");
}

/// Case 5: two folders holding different photos under the same MTPDU sequence UUID (a split MTPDU
/// folder) are two sequences, each published on its own.
#[test]
fn the_same_sequence_uuid_on_different_photos_is_two_sequences() {
    let world = World::new();
    let whole = world.dir("ride");
    generate_sequence(&whole, &options(5, 6, true)).unwrap();
    // Split it as a person would: a copy of the folder, each keeping half of the photos.
    let second = world.dir("ride-2");
    copy_dir(&whole, &second);
    std::fs::rename(second.join("ride.json"), second.join("ride-2.json")).unwrap();
    std::fs::rename(second.join("ride.gpx"), second.join("ride-2.gpx")).ok();
    let mut names: Vec<_> = std::fs::read_dir(whole.join("final_raw"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let keep_in_first = i < names.len() / 2;
        let drop_from = if keep_in_first { &second } else { &whole };
        std::fs::remove_file(drop_from.join("final_raw").join(name)).unwrap();
    }

    let first = world.upload(&whole);
    assert!(first.contains("mapillary: published"), "{first}");
    let out = world.upload(&second);
    assert!(
        out.contains("holds other photos under the same sequence id"),
        "{out}"
    );
    assert!(out.contains("mapillary: published"), "{out}");
    let held = world.held();
    assert_eq!(held.published, 2, "{held:?}");
    assert_eq!(held.finish_uploads, 2, "{held:?}");
    let rows = world.status();
    let ids: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["sequence_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{rows:#?}");
    let roots: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["root"].as_str().unwrap()).collect();
    assert_eq!(roots.len(), 2, "each folder listed: {rows:#?}");
}

/// Case 5, the generator: two runs without `--seed` write two different sequences (own photos, own
/// UUID); `--seed` writes the same again.
#[test]
fn generated_sequences_differ_unless_seeded() {
    mtp_tests::harness::build_workspace();
    let home = tempfile::tempdir().unwrap();
    let generate = |dir: &str, extra: &[&str]| {
        let out = mtp_tests::harness::mtp_command(home.path())
            .args(["sequence", "generate", dir, "--count", "2", "--mtpdu"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let said = generate("a", &[]);
    assert!(said.contains("--seed"), "{said}");
    generate("b", &[]);
    generate("c", &["--seed", "9"]);
    generate("d", &["--seed", "9"]);
    let log = |dir: &str| -> Value {
        let path = home.path().join(dir).join(format!("{dir}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let id = |dir: &str| log(dir)["sequence"]["id"].as_str().unwrap().to_string();
    assert_ne!(id("a"), id("b"));
    assert_eq!(id("c"), id("d"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Case 7: with Mapillary not answering (a server that accepts connections and never replies), `mtp
/// status` still answers (bounded here only as a hang check: the figure is the re-check budget, 2.5 s),
/// shows the stored state, says `not re-checked: Mapillary unreachable`, and leaves the record as it was.
#[test]
fn status_answers_when_mapillary_does_not() {
    let world = World(FakesWorld::start(
        MapillaryConfig {
            // Published, but not shown by Mapillary yet: the sequence waits for a re-check.
            publish_after_lookups: 1_000,
            ..MapillaryConfig::default()
        },
        MtpwConfig::default(),
    ));
    world.authorise();
    let dir = world.dir("walk");
    generate_sequence(&dir, &options(7, 3, false)).unwrap();
    world.upload(&dir);
    let before = world.status();
    let waiting = before
        .iter()
        .find(|r| r["integration"] == "mapillary")
        .unwrap()
        .clone();
    assert!(
        ["unpublished", "waiting"].contains(&waiting["state"].as_str().unwrap()),
        "left for a re-check: {waiting}"
    );

    // Connections are accepted (by the kernel) and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let env_path = world.path().join(".env");
    let env: String = std::fs::read_to_string(&env_path)
        .unwrap()
        .lines()
        .map(|line| match line.split_once('=') {
            Some(("MAPILLARY_GRAPH_URL" | "MAPILLARY_UPLOAD_URL", _)) => {
                format!("{}={url}\n", line.split('=').next().unwrap())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&env_path, env).unwrap();

    let mut child = world
        .mtp()
        .arg("status")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "mtp status hangs while Mapillary does not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("not re-checked: Mapillary unreachable"),
        "{said}"
    );
    assert!(said.contains("walk 7"), "the stored state is shown: {said}");
    let after = world.status();
    let record = after
        .iter()
        .find(|r| r["integration"] == "mapillary")
        .unwrap();
    assert_eq!(record["state"], waiting["state"], "{record}");
    assert_eq!(record["message"], waiting["message"], "{record}");
    assert!(record["last_error"].is_null(), "{record}");
}
