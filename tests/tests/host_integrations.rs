//! `mtp integrations list`: discovery, ABI/version checks, containment, `.env` gating and the chain, run
//! as a user runs it: the real binary on copies of the built libraries.

use std::path::Path;
use std::process::Output;

use mtp_tests::harness::{
    bundled_plugin, fixture_plugin, library_file_name, mtp_command, plugins_dir_with,
    workspace_root, FULL_ENV,
};
use serde_json::Value;

fn list_json(home: &Path, plugins: &Path, env_text: &str) -> Vec<Value> {
    std::fs::write(home.join(".env"), env_text).unwrap();
    let output = mtp_command(home)
        .args(["integrations", "list", "--json", "--plugins-dir"])
        .arg(plugins)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("--json prints a JSON array")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|e| e["id"] == id && e["loaded"] == true)
        .unwrap_or_else(|| panic!("no loaded {id} in {list:#?}"))
}

fn bundled_dir(home: &Path) -> std::path::PathBuf {
    plugins_dir_with(
        home,
        &[bundled_plugin("mtp_mapillary"), bundled_plugin("mtp_mtpw")],
    )
}

fn list_table(home: &Path, plugins: &Path) -> String {
    let output = mtp_command(home)
        .env("MTP_PLUGIN_LOAD_TIMEOUT_MS", "2000")
        .args(["integrations", "list", "--plugins-dir"])
        .arg(plugins)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn both_bundled_plugins_are_enabled_and_chained_with_a_full_env() {
    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    let list = list_json(home.path(), &plugins, FULL_ENV);
    assert_eq!(list.len(), 2);
    let mapillary = entry(&list, "mapillary");
    for field in [
        "id",
        "name",
        "version",
        "enabled",
        "loaded",
        "reason",
        "required_env",
        "after",
        "path",
    ] {
        assert!(
            mapillary.get(field).is_some(),
            "missing {field} in {mapillary}"
        );
    }
    assert_eq!(mapillary["enabled"], true);
    assert_eq!(mapillary["reason"], Value::Null);
    assert_eq!(
        mapillary["required_env"],
        serde_json::json!([
            "MAPILLARY_APP_ID",
            "MAPILLARY_SECRET",
            "MAPILLARY_REDIRECT_URI"
        ])
    );
    let mtpw = entry(&list, "mtpw");
    assert_eq!(mtpw["enabled"], true);
    assert_eq!(mtpw["after"], serde_json::json!(["mapillary"]));
    assert_eq!(
        mtpw["required_env"],
        serde_json::json!([
            "MTP_WEB_URL",
            "MTP_WEB_AUTH_URL",
            "MTP_WEB_APP_ID",
            "MTP_WEB_APP_SECRET"
        ])
    );
    let text = list_table(home.path(), &plugins);
    assert!(text.contains("chain: mapillary → mtpw"), "{text}");
}

#[test]
fn removing_mapillary_app_id_disables_mapillary_and_mtpw_and_restoring_enables_them() {
    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    let without: String = FULL_ENV
        .lines()
        .filter(|l| !l.starts_with("MAPILLARY_APP_ID="))
        .map(|l| format!("{l}\n"))
        .collect();
    let list = list_json(home.path(), &plugins, &without);
    assert_eq!(entry(&list, "mapillary")["enabled"], false);
    assert_eq!(
        entry(&list, "mapillary")["reason"],
        "missing MAPILLARY_APP_ID in .env"
    );
    assert_eq!(entry(&list, "mtpw")["enabled"], false);
    assert_eq!(
        entry(&list, "mtpw")["reason"],
        "chained after mapillary, which is disabled"
    );
    let text = list_table(home.path(), &plugins);
    assert!(
        text.contains("disabled: missing MAPILLARY_APP_ID in .env"),
        "{text}"
    );
    assert!(
        text.contains("disabled: chained after mapillary, which is disabled"),
        "{text}"
    );

    let list = list_json(home.path(), &plugins, FULL_ENV);
    assert_eq!(entry(&list, "mapillary")["enabled"], true);
    assert_eq!(entry(&list, "mtpw")["enabled"], true);
}

#[test]
fn empty_keys_count_as_missing_and_mtpw_needs_its_own_keys() {
    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    let env_text = FULL_ENV.replace("MAPILLARY_SECRET=test-secret", "MAPILLARY_SECRET=");
    let list = list_json(home.path(), &plugins, &env_text);
    // Empty disables it as missing does, and the reason says which it is (issue 16: "empty", not "missing").
    assert_eq!(entry(&list, "mapillary")["enabled"], false);
    assert_eq!(
        entry(&list, "mapillary")["reason"],
        "MAPILLARY_SECRET is empty in .env"
    );
    let list = list_json(
        home.path(),
        &plugins,
        &FULL_ENV.replace("MTP_WEB_APP_SECRET=mtpw-secret\n", ""),
    );
    assert_eq!(entry(&list, "mapillary")["enabled"], true);
    assert_eq!(
        entry(&list, "mtpw")["reason"],
        "missing MTP_WEB_APP_SECRET in .env"
    );
}

#[test]
fn the_process_environment_overrides_the_env_file() {
    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    std::fs::write(
        home.path().join(".env"),
        FULL_ENV.replace("MAPILLARY_APP_ID=test-app\n", ""),
    )
    .unwrap();
    let output = mtp_command(home.path())
        .env("MAPILLARY_APP_ID", "from-process")
        .args(["integrations", "list", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(entry(&list, "mapillary")["enabled"], true);
}

#[test]
fn a_malformed_env_line_is_an_error_naming_file_and_line() {
    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    let env_file = home.path().join("broken.env");
    std::fs::write(&env_file, "MAPILLARY_APP_ID=a\n\nthis line is broken\n").unwrap();
    let output = mtp_command(home.path())
        .arg("--env-file")
        .arg(&env_file)
        .args(["integrations", "list", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("broken.env:3: malformed line"), "{err}");

    let missing = mtp_command(home.path())
        .args(["--env-file", "does-not-exist.env", "integrations", "list"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("does-not-exist.env"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn bad_libraries_are_listed_as_not_loaded_with_reasons_and_the_host_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let plugins = plugins_dir_with(
        home.path(),
        &[
            bundled_plugin("mtp_mapillary"),
            bundled_plugin("mtp_mtpw"),
            fixture_plugin("future_api_plugin"),
            fixture_plugin("no_root_module"),
            fixture_plugin("panic_in_manifest"),
            fixture_plugin("blocking_manifest"),
        ],
    );
    std::fs::write(
        plugins.join(library_file_name("text_file")),
        "I am a text file named like a library\n",
    )
    .unwrap();
    // A second copy of Mapillary, found after the first (file names sort after `libmtp_mapillary`).
    std::fs::copy(
        bundled_plugin("mtp_mapillary"),
        plugins.join(library_file_name("zz_mapillary_copy")),
    )
    .unwrap();
    std::fs::write(home.path().join(".env"), FULL_ENV).unwrap();
    let output = mtp_command(home.path())
        .env("MTP_PLUGIN_LOAD_TIMEOUT_MS", "2000")
        .args(["integrations", "list", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let reason_of = |file_part: &str| -> String {
        let e = list
            .iter()
            .find(|e| e["path"].as_str().unwrap().contains(file_part))
            .unwrap_or_else(|| panic!("no entry for {file_part}: {list:#?}"));
        assert_eq!(e["loaded"], false, "{e}");
        assert_eq!(e["enabled"], false, "{e}");
        e["reason"].as_str().unwrap().to_string()
    };
    assert_eq!(
        reason_of("future_api_plugin"),
        "built for plugin API 2.x, this host supports 1.x"
    );
    assert_eq!(
        reason_of("no_root_module"),
        "not a plugin library (no root module)"
    );
    assert!(reason_of("text_file").starts_with("not a plugin library (cannot be opened"));
    let panic = reason_of("panic_in_manifest");
    assert!(
        panic.contains("panicked") && panic.contains("deliberate panic in manifest()"),
        "{panic}"
    );
    assert!(reason_of("blocking_manifest").contains("did not finish loading"));
    assert!(reason_of("zz_mapillary_copy").contains("another library with id \"mapillary\""));
    // ... while the good ones are untouched.
    assert_eq!(entry(&list, "mapillary")["enabled"], true);
    assert_eq!(entry(&list, "mtpw")["enabled"], true);

    let table = list_table(home.path(), &plugins);
    assert!(
        table.contains("not loaded: built for plugin API 2.x, this host supports 1.x"),
        "{table}"
    );
    assert!(
        table.contains("not loaded: not a plugin library (no root module)"),
        "{table}"
    );
}

#[test]
fn an_out_of_tree_provider_appears_by_copying_its_library() {
    // Its manifest depends on nothing but the plugin API.
    let manifest = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/out-of-tree-provider/Cargo.toml"),
    )
    .unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap();
    let dep_names: Vec<&str> = deps
        .lines()
        .filter(|l| l.contains('='))
        .map(|l| l.split('=').next().unwrap().trim())
        .collect();
    assert_eq!(dep_names, ["mtp-plugin-api"]);

    let home = tempfile::tempdir().unwrap();
    let plugins = bundled_dir(home.path());
    let list = list_json(home.path(), &plugins, FULL_ENV);
    assert!(list.iter().all(|e| e["id"] != "echo"));
    std::fs::copy(
        fixture_plugin("out_of_tree_provider"),
        plugins.join(library_file_name("out_of_tree_provider")),
    )
    .unwrap();
    let list = list_json(
        home.path(),
        &plugins,
        &format!("{FULL_ENV}ECHO_GREETING=hi\n"),
    );
    let echo = entry(&list, "echo");
    assert_eq!(echo["enabled"], true);
    assert_eq!(echo["version"], "0.3.1");
    assert_eq!(
        echo["api_version"],
        plugin_api::manifest::PLUGIN_API_VERSION
    );
}

#[test]
fn discovery_order_flag_then_env_then_executable_directory() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), FULL_ENV).unwrap();
    let only_mapillary =
        plugins_dir_with(&home.path().join("a"), &[bundled_plugin("mtp_mapillary")]);
    let only_mtpw = plugins_dir_with(&home.path().join("b"), &[bundled_plugin("mtp_mtpw")]);
    let ids = |output: Output| -> Vec<String> {
        assert!(output.status.success(), "{}", stderr(&output));
        let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        list.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let from_env = mtp_command(home.path())
        .env("MTP_PLUGINS_DIR", &only_mtpw)
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(ids(from_env), ["mtpw"]);
    let from_flag = mtp_command(home.path())
        .env("MTP_PLUGINS_DIR", &only_mtpw)
        .args(["integrations", "list", "--json", "--plugins-dir"])
        .arg(&only_mapillary)
        .output()
        .unwrap();
    assert_eq!(ids(from_flag), ["mapillary"]);
    // Neither: the executable's own directory, where cargo put both bundled plugins.
    let from_exe_dir = mtp_command(home.path())
        .args(["integrations", "list", "--json"])
        .output()
        .unwrap();
    let found = ids(from_exe_dir);
    assert!(
        found.contains(&"mapillary".to_string()) && found.contains(&"mtpw".to_string()),
        "{found:?}"
    );
}

#[test]
fn plugin_check_reports_acceptance_and_refusal() {
    let home = tempfile::tempdir().unwrap();
    let ok = mtp_command(home.path())
        .args(["plugin", "check"])
        .arg(bundled_plugin("mtp_mapillary"))
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("accepted by this host"));
    let refused = mtp_command(home.path())
        .args(["plugin", "check", "--json"])
        .arg(fixture_plugin("future_api_plugin"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["accepted"], false);
    assert_eq!(
        report["reason"],
        "built for plugin API 2.x, this host supports 1.x"
    );
}
