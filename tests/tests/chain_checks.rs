//! The chain as a user meets it, through the real binary against the fakes: nothing is sent before
//! every integration that will run has what it needs (`inspect` says the same), an integration that
//! needs Mapillary is skipped with the reason when Mapillary skips, fails or only dry-runs (never left
//! waiting), and an MTPDU sequence log's `destination` block is honoured.

use std::path::{Path, PathBuf};
use std::process::Output;

use mtp_fakes::fake_mapillary::{EntityKind, MapillaryConfig};
use mtp_fakes::fake_mtpw::{MtpwApi, MtpwConfig};
use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use mtp_tests::harness::mtp_command;
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

mtp_tests::suite_world!(World);

impl World {
    fn new() -> World {
        // The API the public MTPW code serves today (trek-view/mtp-web `api/urls.py`).
        World(FakesWorld::start(
            MapillaryConfig::default(),
            MtpwConfig {
                api: MtpwApi::New,
                ..MtpwConfig::default()
            },
        ))
    }

    fn run(&self, args: &[&str]) -> Output {
        mtp_command(self.home.path())
            .env("MTP_AUTH_BROWSER", "fetch")
            .args(args)
            .output()
            .unwrap()
    }

    fn auth(&self, id: &str) {
        let out = self.run(&["auth", id]);
        assert!(out.status.success(), "auth {id}: {}", text(&out));
    }

    /// A folder whose images and metadata name no transport type.
    fn folder_without_transport(&self, name: &str) -> PathBuf {
        let opts = GenerateOptions {
            count: 4,
            transport: None,
            image_description: false,
            sequence_toml: false,
            ..Default::default()
        };
        generate_sequence(&self.home.path().join(name), &opts)
            .unwrap()
            .root
    }

    fn mtpdu(&self, name: &str, seed: u64, destination: Value) -> PathBuf {
        let opts = GenerateOptions {
            count: 3,
            mtpdu: true,
            name: name.into(),
            seed,
            start_time_ms: GenerateOptions::default().start_time_ms + seed as i64 * 86_400_000,
            ..Default::default()
        };
        let g = generate_sequence(&self.home.path().join(name), &opts).unwrap();
        let log = g.root.join(format!("{name}.json"));
        let mut json: Value =
            serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
        json["sequence"]["destination"] = destination;
        std::fs::write(&log, serde_json::to_string(&json).unwrap()).unwrap();
        g.root
    }

    fn status(&self) -> Vec<Value> {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn images_received(&self) -> usize {
        let stats = self.mapillary.stats();
        stats
            .entities
            .values()
            .filter(|e| e.kind == EntityKind::Image)
            .count()
    }
}

fn upload(world: &World, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["upload", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    world.run(&args)
}

#[test]
fn nothing_is_sent_until_every_integration_that_will_run_has_what_it_needs() {
    let world = World::new();
    world.auth("mapillary");
    let dir = world.folder_without_transport("walk");

    // Chosen destinations, and what they need, must all be ready.
    let out = upload(&world, &dir, &["--to", "mtpw"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("not ready to upload; nothing was sent"),
        "{shown}"
    );
    assert!(
        shown.contains("mtpw: not logged in to Map the Paths Web: run `mtp auth mtpw`"),
        "{shown}"
    );
    assert!(
        shown.contains("mtpw: MTPW needs a transport type: pass --transport"),
        "{shown}"
    );
    assert_eq!(
        world.images_received(),
        0,
        "not a byte before the chain is ready"
    );
    assert!(world.status().is_empty());

    // inspect says the same thing upload does.
    let inspect = world.run(&["sequence", "inspect", dir.to_str().unwrap()]);
    let shown = text(&inspect);
    assert!(shown.contains("mapillary: eligible\n"), "{shown}");
    assert!(
        shown.contains(
            "mtpw: eligible, but first: not logged in to Map the Paths Web: run `mtp auth mtpw`; \
             MTPW needs a transport type: pass --transport"
        ),
        "{shown}"
    );

    // A destination that is not enabled is a usage error.
    let out = upload(&world, &dir, &["--to", "mapillary,nobody"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out)
            .contains("destination there is no integration nobody (enabled: mapillary, mtpw)"),
        "{}",
        text(&out)
    );
    assert_eq!(world.images_received(), 0);

    // By default the ready ones run; the one that is not is left out with its reason.
    let out = upload(&world, &dir, &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("walk / mapillary: published"), "{shown}");
    assert!(
        shown.contains(
            "walk / mtpw: skipped: left out: not logged in to Map the Paths Web: run `mtp auth mtpw`; \
             MTPW needs a transport type: pass --transport"
        ),
        "{shown}"
    );
    assert_eq!(world.images_received(), 4);

    world.auth("mtpw");
    let out = upload(&world, &dir, &["--transport", "Walk"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("walk / mtpw: "), "{}", text(&out));
    assert!(!text(&out).contains("left out"), "{}", text(&out));
    assert_eq!(world.images_received(), 4);
}

#[test]
fn quiet_flags_silence_the_step_lines() {
    let world = World::new();
    world.auth("mapillary");
    world.auth("mtpw");
    let dir = world.folder_without_transport("walk");
    let out = upload(&world, &dir, &["--transport", "Walk"]);
    assert!(out.status.success(), "{}", text(&out));
    let loud = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(loud.contains("mapillary: upload: "), "{loud}");

    // -q: no step lines (they are information); -qq: nothing at all on stderr.
    let out = world.run(&["-q", "upload", dir.to_str().unwrap(), "--transport", "Walk"]);
    assert!(out.status.success(), "{}", text(&out));
    let quiet = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!quiet.contains("mapillary: "), "{quiet}");
    let out = world.run(&[
        "-qq",
        "upload",
        dir.to_str().unwrap(),
        "--transport",
        "Walk",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn mtpw_is_skipped_with_the_reason_when_mapillary_skips_or_dry_runs() {
    let world = World::new();
    world.auth("mapillary");
    world.auth("mtpw");
    let dir = world.folder_without_transport("flight");

    let out = upload(&world, &dir, &["--transport", "paraglide"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(
            "mtpw: skipped: needs mapillary, which skipped this sequence (not eligible: transport type \
             Air/Paraglide is not accepted by Mapillary)"
        ),
        "{shown}"
    );
    let rows = world.status();
    let mtpw = rows.iter().find(|r| r["integration"] == "mtpw").unwrap();
    assert_ne!(mtpw["state"], "waiting", "{rows:?}");
    assert!(
        mtpw["message"]
            .as_str()
            .unwrap()
            .starts_with("skipped: needs mapillary"),
        "{rows:?}"
    );
    // Running again cannot help an aerial sequence reach Mapillary: the row does not say it would.
    assert_eq!(
        mtpw["next_action"], "nothing to do: this sequence cannot go there",
        "{rows:?}"
    );

    let out = upload(&world, &dir, &["--transport", "Walk", "--dry-run"]);
    let shown = text(&out);
    assert!(
        shown.contains("mtpw: skipped: needs mapillary, which only did a dry run"),
        "{shown}"
    );
    let mtpw = world.mtpw.stats();
    assert!(
        mtpw.sequences.is_empty() && mtpw.import_calls == 0,
        "{mtpw:?}"
    );
}

#[test]
fn an_mtpdu_destination_block_is_honoured() {
    let world = World::new();
    world.auth("mapillary");
    world.auth("mtpw");

    let done = world.mtpdu(
        "done",
        1,
        serde_json::json!({"mapillary": true, "mtp": true}),
    );
    let out = upload(&world, &done, &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    // Mapillary looks the key up instead of skipping (issue 23, case 6(b); `tests/tests/identity.rs`
    // follows it to the end); nothing is sent.
    assert!(
        shown.contains(
            "mapillary: unpublished: MTP Desktop Uploader published it to Mapillary before it learnt \
             the sequence key"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("mtpw: skipped: already published"),
        "{shown}"
    );
    assert_eq!(world.images_received(), 0);
    assert!(world.mapillary.stats().finish_upload_calls.is_empty());
    let inspect = text(&world.run(&["sequence", "inspect", done.to_str().unwrap()]));
    assert!(
        inspect.contains("mtpw: skipped: already published"),
        "{inspect}"
    );
    // Turned off, Mapillary skips it as before.
    let off = upload(
        &world,
        &done,
        &["--option", "mapillary.look_up_prior_upload=false"],
    );
    assert!(
        text(&off).contains(
            "mapillary: skipped: already published: MTP Desktop Uploader published it to Mapillary \
             (destination.mapillary = true); pass --force to send it again"
        ),
        "{}",
        text(&off)
    );

    // MTPDU created the MTPW sequence, then failed to find the Mapillary key: mtp uploads to Mapillary
    // and imports into MTPDU's MTPW sequence instead of creating a second.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let created: Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/v1/sequence/create/", world.mtpw.base_url()))
            .bearer_auth(world.mtpw.token())
            .form(&[
                ("name", "half"),
                ("transport_type", "Walk"),
                ("source", "mtpdu"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let unique_id = created["unique_id"].as_str().unwrap().to_string();
    let half = world.mtpdu(
        "half",
        2,
        serde_json::json!({"mapillary": "Error: Network Error", "mtp": unique_id}),
    );
    let out = upload(&world, &half, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for _ in 0..20 {
        let rows = world.status();
        if rows
            .iter()
            .any(|r| r["integration"] == "mtpw" && r["state"] == "published")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let stats = world.mtpw.stats();
    assert_eq!(stats.sequences.len(), 1, "{:?}", stats.sequences);
    assert_eq!(stats.sequences[0].unique_id, unique_id);
    assert!(stats.sequences[0].is_published, "{:?}", stats.sequences);
}
