//! `.env.example` and README's key table say what the bundled integrations' manifests declare: every
//! key, whether it is required or secret, its default and its help. `MTP_BLESS=1 cargo test -p mtp-tests
//! --test env_docs` rewrites both after a manifest changes.

use mtp_tests::env_docs::{env_example, readme_table, with_table};
use mtp_tests::harness::{build_workspace, mtp_command, workspace_root};
use serde_json::Value;

fn integrations() -> Value {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp_command(home.path())
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bless() -> bool {
    std::env::var_os("MTP_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn every_declared_key_has_help_and_the_secret_ones_are_marked() {
    let list = integrations();
    let mut keys = 0;
    for integration in list.as_array().unwrap() {
        for key in integration["env"].as_array().unwrap() {
            keys += 1;
            assert!(
                !key["help"].as_str().unwrap().is_empty(),
                "{} declares {} without help",
                integration["id"],
                key["key"]
            );
        }
    }
    assert!(
        keys >= 16,
        "the bundled integrations declare their keys: {list}"
    );
    let secret: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["env"].as_array().unwrap())
        .filter(|k| k["secret"] == true)
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        secret,
        [
            "MAPILLARY_SECRET",
            "MTP_WEB_APP_SECRET",
            "STRAVA_CLIENT_SECRET",
            "GOOGLE_CLIENT_SECRET"
        ]
    );
}

#[test]
fn env_example_is_generated_from_the_manifests() {
    let expected = env_example(&integrations());
    let path = workspace_root().join(".env.example");
    if bless() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap();
    assert!(
        actual == expected,
        ".env.example differs from the manifests; run MTP_BLESS=1 cargo test -p mtp-tests --test env_docs\n--- expected ---\n{expected}"
    );
}

#[test]
fn env_example_copied_unchanged_enables_nothing() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(
        workspace_root().join(".env.example"),
        home.path().join(".env"),
    )
    .unwrap();
    let out = mtp_command(home.path())
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let enabled: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["enabled"] == true)
        .map(|i| &i["id"])
        .collect();
    assert!(enabled.is_empty(), "enabled by the example: {enabled:?}");
    assert!(!home.path().join("path").exists());
}

#[test]
fn readme_key_table_is_generated_from_the_manifests() {
    let table = readme_table(&integrations());
    let path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let expected = with_table(&readme, &table).expect("README.md has the env-table markers");
    if bless() {
        std::fs::write(&path, &expected).unwrap();
    }
    assert!(
        readme == expected,
        "README's key table differs from the manifests; run MTP_BLESS=1 cargo test -p mtp-tests --test env_docs\n--- expected ---\n{table}"
    );
}
