//! Creating MTPW sequences is the user's choice until a server has imported one (docs/providers/mtpw.md,
//! "No sequence MTPW cannot fill"), through the real binary against the fakes with mtp as installed: no
//! `MTP_WEB_CREATE_SEQUENCES` in `.env`.

use std::path::PathBuf;

use mtp_fakes::fake_mapillary::MapillaryConfig;
use mtp_fakes::fake_mtpw::{MtpwApi, MtpwConfig};
use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

const CREATE: &str = "POST /api/v1/sequence/create/";

/// The fakes with the later MTPW API (the one the public mtp-web code serves), without the choice the
/// harness makes for the other suites.
fn world_without_choice() -> FakesWorld {
    let world = FakesWorld::start(
        MapillaryConfig::default(),
        MtpwConfig {
            api: MtpwApi::New,
            ..MtpwConfig::default()
        },
    );
    let path = world.path().join(".env");
    let env = std::fs::read_to_string(&path).unwrap();
    assert!(env.contains("MTP_WEB_CREATE_SEQUENCES=true\n"), "{env}");
    std::fs::write(&path, env.replace("MTP_WEB_CREATE_SEQUENCES=true\n", "")).unwrap();
    world.authorise();
    world
}

fn walk(world: &FakesWorld, name: &str, seed: u64) -> PathBuf {
    let opts = GenerateOptions {
        count: 3,
        name: name.into(),
        seed,
        start_time_ms: GenerateOptions::default().start_time_ms + seed as i64 * 86_400_000,
        ..Default::default()
    };
    generate_sequence(&world.dir(name), &opts).unwrap().root
}

/// The MTPW row of `name` in `mtp status --json`, once it no longer waits for Mapillary's key.
fn mtpw_row(world: &FakesWorld, name: &str) -> Value {
    for _ in 0..20 {
        let out = world.run(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let row = rows
            .into_iter()
            .find(|r| r["name"] == name && r["integration"] == "mtpw")
            .unwrap_or_else(|| panic!("no MTPW row for {name}"));
        let waiting_for_key = row["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting for Mapillary"));
        if !waiting_for_key {
            return row;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("Mapillary never gave {name} a key");
}

fn creates(world: &FakesWorld) -> u64 {
    world
        .mtpw
        .stats()
        .requests
        .get(CREATE)
        .copied()
        .unwrap_or(0)
}

#[test]
fn without_the_choice_nothing_is_created_and_status_says_why_then_the_option_creates() {
    let world = world_without_choice();
    // `mtp auth mtpw` checked the token with a create without a name, which MTPW refuses before storing
    // anything (docs/providers/mtpw.md, "Logging in"): the creates counted below come after it.
    let login = creates(&world);
    let dir = walk(&world, "canal", 1);
    let dir_arg = dir.to_str().unwrap();
    let out = world.run(&["upload", dir_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let row = mtpw_row(&world, "canal");
    assert_eq!(row["state"], "waiting", "{row}");
    let message = row["message"].as_str().unwrap();
    assert!(
        message.contains("this MTPW server has not yet shown that it can import"),
        "{message}"
    );
    let next = row["next_action"].as_str().unwrap();
    assert!(
        next.contains(&format!("mtp upload {dir_arg} --option mtpw.create=true")),
        "{next}"
    );
    // The table says the same in the row's one line.
    let table = text(&world.run(&["status"]));
    assert!(
        table.contains("no MTPW sequence created for \"canal\"")
            && table.contains("next: to create it anyway: mtp upload"),
        "{table}"
    );
    assert_eq!(
        creates(&world) - login,
        0,
        "{:?}",
        world.mtpw.stats().requests
    );
    assert!(world.mtpw.stats().sequences.is_empty());

    // The user chooses, once: this upload creates and imports.
    let out = world.run(&["upload", dir_arg, "--option", "mtpw.create=true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mtpw_row(&world, "canal")["state"], "published");
    assert_eq!(creates(&world) - login, 1);

    // The server has imported: the next sequence is created without being asked.
    let other = walk(&world, "towpath", 2);
    let out = world.run(&["upload", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mtpw_row(&world, "towpath")["state"], "published");
    assert_eq!(creates(&world) - login, 2);
}
