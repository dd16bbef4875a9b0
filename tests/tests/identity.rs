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

    /// Asserts that nothing was sent or published anywhere since `before` (MTPW's sync of a published
    /// sequence may import into its record again, as it always did, but never adds one).
    fn nothing_sent_since(&self, before: &Held) {
        let held = self.held();
        let held = Held {
            mtpw_writes: before.mtpw_writes,
            ..held
        };
        assert_eq!(&held, before, "nothing sent, nothing published");
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

/// A generated folder's photos as written, file names in order.
fn photos(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    found.sort();
    found
}

/// Case 2: a generated folder renamed is reported as a move by `mtp upload` and `mtp status` (plain
/// camera JPEGs, `mtp sequence generate`'s default with its MTPDU description in each photo, and an
/// MTPDU folder), and photos renumbered inside it are the same photos: neither added nor removed,
/// nothing sent anywhere.
#[test]
fn a_renamed_generated_folder_and_its_renumbered_photos_are_a_move_and_a_rename() {
    for (mtpdu, description) in [(false, false), (false, true), (true, true)] {
        let world = World::new();
        let old = world.dir("walk");
        let mut generate = options(4, 4, mtpdu);
        generate.image_description = description;
        generate.sequence_toml = !mtpdu;
        generate_sequence(&old, &generate).unwrap();
        let first = world.upload(&old);
        assert!(first.contains("mapillary: published"), "{first}");
        let before = world.held();
        let key = world.status()[0]["keys"]["sequence_key"]
            .as_str()
            .unwrap()
            .to_string();

        let renamed = world.dir("walk-2008");
        std::fs::rename(&old, &renamed).unwrap();
        if mtpdu {
            std::fs::rename(renamed.join("walk.json"), renamed.join("walk-2008.json")).unwrap();
        }
        let out = world.upload(&renamed);
        let expected = format!(
            "moved from {}: already published as {key}; nothing sent",
            old.display()
        );
        assert!(out.contains(&expected), "wanted `{expected}` in:\n{out}");
        assert!(!out.contains("added") && !out.contains("removed"), "{out}");
        world.nothing_sent_since(&before);
        for row in world.status() {
            assert_eq!(row["root"], renamed.display().to_string(), "{row}");
            assert!(row["folder_changed"].is_null(), "{row}");
        }
        if mtpdu {
            // MTPDU's log names its photos: they are not renamed behind its back.
            continue;
        }

        // Renumbered, last first, as a photo manager does.
        for (i, photo) in photos(&renamed).iter().rev().enumerate() {
            std::fs::rename(photo, renamed.join(format!("DSC_{:04}.jpg", i + 1))).unwrap();
        }
        let out = world.upload(&renamed);
        let expected = format!(
            "4 photo(s) renamed in the folder since: the same photos, already published as {key}; \
             nothing sent"
        );
        assert!(out.contains(&expected), "wanted `{expected}` in:\n{out}");
        assert!(!out.contains("added") && !out.contains("removed"), "{out}");
        world.nothing_sent_since(&before);
        for row in world.status() {
            assert!(row["folder_changed"].is_null(), "{row}");
        }

        // A new photo from another generated folder (with its own sequence UUID, when it has one, which
        // may give the folder another id): the folder is still the published sequence, one photo added.
        let elsewhere = world.dir("elsewhere");
        let mut other = options(5, 1, false);
        other.image_description = description;
        generate_sequence(&elsewhere, &other).unwrap();
        std::fs::copy(&photos(&elsewhere)[0], renamed.join("NEW_0001.jpg")).unwrap();
        let out = world.upload(&renamed);
        assert!(out.contains(&key), "{out}");
        assert!(
            out.contains("1 added (NEW_0001.jpg); nothing was sent"),
            "{out}"
        );
        assert!(!out.contains("removed"), "{out}");
        world.nothing_sent_since(&before);
    }
}

/// Case 2 and 6: `--add-new-images` sends only photos whose content is not published yet (a photo
/// copied in from another published folder is not new, and it says so when none is), and the
/// additional Mapillary sequence gets its own MTPW record, exactly once, shown by `mtp status`; also when
/// the folder moved in the same run.
#[test]
fn add_new_images_sends_only_new_content_and_syncs_it_to_mtpw_once() {
    let world = World::new();
    let plain = |seed: u64, count: usize| {
        let mut generate = options(seed, count, false);
        generate.image_description = false;
        generate.sequence_toml = true;
        generate
    };
    let other = world.dir("other");
    generate_sequence(&other, &plain(11, 5)).unwrap();
    let walk = world.dir("walk");
    generate_sequence(&walk, &plain(12, 3)).unwrap();
    let fresh = world.dir("fresh");
    generate_sequence(&fresh, &plain(13, 2)).unwrap();
    world.upload(&other);
    world.upload(&walk);
    let other_key = world
        .status()
        .iter()
        .find(|r| r["root"] == other.display().to_string() && r["integration"] == "mapillary")
        .unwrap()["keys"]["sequence_key"]
        .as_str()
        .unwrap()
        .to_string();
    let published = world.held();
    let add_new = |dir: &Path| {
        let out = world
            .mtp()
            .args(["upload", "--add-new-images"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };

    // A copy of a photo published with the other folder.
    std::fs::copy(other.join("IMG_000005.jpg"), walk.join("IMG_000005.jpg")).unwrap();
    let out = add_new(&walk);
    let expected = format!(
        "the 1 added image(s) (IMG_000005.jpg) are already published (as sequence {other_key}); \
         nothing to send"
    );
    assert!(out.contains(&expected), "wanted `{expected}` in:\n{out}");
    world.nothing_sent_since(&published);

    // A new photo: reported, and sent alone only when asked.
    std::fs::copy(&photos(&fresh)[0], walk.join("IMG_000009.jpg")).unwrap();
    let out = world.upload(&walk);
    assert!(out.contains("1 added (IMG_000009.jpg)"), "{out}");
    assert!(out.contains("--add-new-images"), "{out}");
    world.nothing_sent_since(&published);
    let out = add_new(&walk);
    assert!(
        out.contains("the 1 added image(s) as an additional sequence: published"),
        "{out}"
    );
    let sent = world.held();
    assert_eq!(sent.published, published.published + 1, "{sent:?}");
    assert_eq!(
        sent.finish_uploads,
        published.finish_uploads + 1,
        "{sent:?}"
    );
    // One image and the manifest of its sequence.
    assert_eq!(sent.entities, published.entities + 2, "{sent:?}");
    assert_eq!(sent.mtpw_records, published.mtpw_records + 1, "{sent:?}");
    let rows = world.status();
    let row = |integration: &str| {
        rows.iter()
            .find(|r| r["root"] == walk.display().to_string() && r["integration"] == integration)
            .unwrap()
            .clone()
    };
    let added_key = row("mapillary")["keys"]["added_sequence_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{:#}", row("mapillary")))
        .to_string();
    let mtpw = row("mtpw");
    assert_eq!(mtpw["state"], "published", "{mtpw}");
    let unique_ids = mtpw["keys"]["unique_id"].as_str().unwrap();
    assert_eq!(unique_ids.split(',').count(), 2, "{mtpw}");
    assert!(world.mtpw.stats().sequences.len() == sent.mtpw_records);

    // Again: nothing new, nothing sent, no second MTPW record.
    let out = add_new(&walk);
    assert!(out.contains("nothing to send"), "{out}");
    assert!(!out.contains("additional sequence: "), "{out}");
    world.nothing_sent_since(&sent);

    // Moved, with one more new photo, sent in the same run: one more sequence, one more MTPW record.
    let moved = world.dir("walk-moved");
    std::fs::rename(&walk, &moved).unwrap();
    std::fs::copy(&photos(&fresh)[1], moved.join("IMG_000010.jpg")).unwrap();
    let out = add_new(&moved);
    assert!(
        out.contains(&format!("moved from {}", walk.display())),
        "{out}"
    );
    assert!(
        out.contains("the 1 added image(s) as an additional sequence: published"),
        "{out}"
    );
    let last = world.held();
    assert_eq!(last.published, sent.published + 1, "{last:?}");
    assert_eq!(last.mtpw_records, sent.mtpw_records + 1, "{last:?}");
    let rows = world.status();
    let mtpw = rows
        .iter()
        .find(|r| r["root"] == moved.display().to_string() && r["integration"] == "mtpw")
        .unwrap();
    assert_eq!(
        mtpw["keys"]["unique_id"]
            .as_str()
            .unwrap()
            .split(',')
            .count(),
        3,
        "{mtpw}"
    );
    let mapillary = rows
        .iter()
        .find(|r| r["root"] == moved.display().to_string() && r["integration"] == "mapillary")
        .unwrap();
    let keys = mapillary["keys"]["added_sequence_key"].as_str().unwrap();
    assert!(
        keys.starts_with(&added_key) && keys.split(',').count() == 2,
        "{mapillary}"
    );
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

/// Case 6: the images `--skip-invalid` left out are remembered with the run as images it saw, so `mtp
/// status` says the folder changed only once it really does.
#[test]
fn images_left_out_as_invalid_are_not_added_on_every_status() {
    let world = World::new();
    let dir = world.dir("walk");
    let mut generate = options(8, 3, false);
    generate.sequence_toml = true;
    generate_sequence(&dir, &generate).unwrap();
    // Not a JPEG at all: a blocking problem that --skip-invalid leaves out.
    std::fs::write(dir.join("IMG_broken.jpg"), b"not a jpeg").unwrap();
    let out = world
        .mtp()
        .args(["upload", "--skip-invalid"])
        .arg(&dir)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("IMG_broken.jpg"), "named as left out: {said}");
    assert!(said.contains("mapillary: published"), "{said}");
    for _ in 0..2 {
        for row in world.status() {
            assert!(row["folder_changed"].is_null(), "{row}");
        }
    }

    let other = world.dir("other");
    generate_sequence(&other, &options(9, 1, false)).unwrap();
    let photo = std::fs::read_dir(&other)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    std::fs::copy(&photo, dir.join("IMG_later.jpg")).unwrap();
    for row in world.status() {
        let changed = row["folder_changed"].as_str().unwrap_or_default();
        assert!(changed.contains("(1 added, 0 removed, 0 changed)"), "{row}");
    }
}
