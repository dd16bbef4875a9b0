//! Provider options are declared in manifests: `mtp integrations list --json` shows them, and
//! `mtp upload --option <id>.<name>=<value>` (and the short `--jobs`/`--republish`) is checked against
//! them before anything is read or sent.

use mtp_tests::harness::{build_workspace, mtp_command};
use serde_json::Value;

fn upload_error(args: &[&str]) -> String {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp_command(home.path())
        .arg("upload")
        .args(args)
        .arg("no-such-dir")
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn integrations_list_shows_declared_options_and_env_help() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp_command(home.path())
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mapillary = list.iter().find(|i| i["id"] == "mapillary").unwrap();
    let jobs = mapillary["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "jobs")
        .unwrap();
    assert_eq!(jobs["kind"]["type"], "integer", "{jobs}");
    assert_eq!(jobs["default"], "4");
    assert_eq!(jobs["flag"], "jobs");
    assert_eq!(mapillary["secret_exports"][0], "user_token");
    let secret = mapillary["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "MAPILLARY_SECRET")
        .unwrap();
    assert_eq!(secret["secret"], true);
    assert_eq!(secret["required"], true);
}

#[test]
fn unknown_options_and_bad_values_are_errors_naming_them() {
    let err = upload_error(&["--option", "nosuch.jobs=2"]);
    assert!(err.contains("no integration nosuch is installed"), "{err}");
    let err = upload_error(&["--option", "mapillary.speed=2"]);
    assert!(
        err.contains("mapillary has no option speed (options: jobs, republish, add_new_images, bwlimit, no_publish, look_up_prior_upload, dry_run_dir)"),
        "{err}"
    );
    let err = upload_error(&["--option", "mapillary.jobs=many"]);
    assert!(
        err.contains("option jobs expects a whole number from 1 to 32, not \"many\""),
        "{err}"
    );
    let err = upload_error(&["--jobs", "0"]);
    assert!(
        err.contains("--jobs 0: mapillary: option jobs expects"),
        "{err}"
    );
    let err = upload_error(&["--option", "jobs"]);
    assert!(
        err.contains("expected <integration>.<name>=<value>"),
        "{err}"
    );
}

#[test]
fn a_valid_option_gets_past_the_check() {
    // The upload then fails on the missing directory, not on the option.
    let err = upload_error(&[
        "--option",
        "mapillary.jobs=8",
        "--option",
        "mapillary.republish",
    ]);
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!err.contains("option"), "{err}");
}
