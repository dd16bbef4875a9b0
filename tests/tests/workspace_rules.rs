//! Structural rules of the workspace that README and the author guide promise, checked on every run.

use std::path::Path;
use std::process::Command;

use mtp_tests::harness::workspace_root;
use serde_json::Value;

fn metadata() -> Value {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(workspace_root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Names of the workspace's packages.
fn workspace_names(meta: &Value) -> Vec<String> {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect()
}

/// "A provider crate needs only `mtp-plugin-api`": no crate under `plugins/` has a normal (non-dev,
/// non-build) dependency on any other workspace crate.
#[test]
fn providers_depend_on_the_plugin_api_alone() {
    let meta = metadata();
    let members = workspace_names(&meta);
    let plugins_dir = workspace_root().join("plugins");
    let mut providers = 0;
    let mut offences = Vec::new();
    for package in meta["packages"].as_array().expect("packages") {
        let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
        if !manifest.starts_with(&plugins_dir) {
            continue;
        }
        providers += 1;
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let normal = dep["kind"].is_null();
            let name = dep["name"].as_str().expect("dependency name");
            if normal && members.iter().any(|m| m == name) && name != "mtp-plugin-api" {
                offences.push(format!("{} depends on {name}", package["name"]));
            }
        }
    }
    assert!(
        providers >= 3,
        "found only {providers} providers under plugins/"
    );
    assert!(
        offences.is_empty(),
        "providers must depend on mtp-plugin-api alone: {offences:?}"
    );
}

/// The fakes are usable from a provider's tests without building the host.
#[test]
fn fakes_do_not_depend_on_the_host() {
    let meta = metadata();
    let fakes = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "mtp-fakes")
        .expect("the mtp-fakes package");
    let members = workspace_names(&meta);
    let internal: Vec<&str> = fakes["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| d["kind"].is_null())
        .filter_map(|d| d["name"].as_str())
        .filter(|name| members.iter().any(|m| m == name))
        .collect();
    assert!(
        internal.is_empty(),
        "mtp-fakes depends on workspace crates: {internal:?}"
    );
}
