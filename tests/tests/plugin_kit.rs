//! The provider author kit: the template builds, passes its own tests and loads; `mtp plugin new` makes
//! a crate that does the same under its own name.

use mtp_tests::harness::{
    cargo_standalone, library_file_name, mtp_command, plugins_dir_with, target_dir, template_plugin,
};
use serde_json::Value;

fn check(home: &std::path::Path, library: &std::path::Path) -> Value {
    let output = mtp_command(home)
        .args(["plugin", "check", "--json"])
        .arg(library)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn the_template_passes_its_tests_and_is_accepted_by_the_host() {
    let home = tempfile::tempdir().unwrap();
    let library = template_plugin();
    let report = check(home.path(), &library);
    assert_eq!(report["accepted"], true, "{report}");
    assert_eq!(report["manifest"]["id"], "template");
    let plugins = plugins_dir_with(home.path(), &[library]);
    std::fs::write(
        home.path().join(".env"),
        "TEMPLATE_URL=http://127.0.0.1:9\n",
    )
    .unwrap();
    let output = mtp_command(home.path())
        .args(["integrations", "list", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list[0]["enabled"], true, "{list:?}");
}

#[test]
fn plugin_new_makes_a_provider_that_builds_and_loads_under_its_own_name() {
    let home = tempfile::tempdir().unwrap();
    let made = mtp_command(home.path())
        .args(["plugin", "new", "street-cam", "--dir"])
        .arg(home.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let manifest = home.path().join("mtp-street-cam/Cargo.toml");
    // Same target dir as the template: the dependencies are built once.
    cargo_standalone(&manifest, "template", &["build"]);
    let library = target_dir()
        .join("template/debug")
        .join(library_file_name("mtp_street_cam"));
    let report = check(home.path(), &library);
    assert_eq!(report["accepted"], true, "{report}");
    assert_eq!(report["manifest"]["id"], "street-cam");
    assert_eq!(
        report["manifest"]["required_env"],
        serde_json::json!(["STREET_CAM_URL"])
    );
    let again = mtp_command(home.path())
        .args(["plugin", "new", "street-cam", "--dir"])
        .arg(home.path())
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing crate is never overwritten"
    );
}
