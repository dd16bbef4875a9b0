//! The compatibility policy, proven on plugins compiled from source against older and newer variants of
//! the plugin API (docs/writing-a-plugin.md, "Compatibility"):
//! - same major, older or equal minor: accepted — and a real 1.0 plugin from this repository's history
//!   (the archive provider at commit ca9646c, built against that commit's plugin-api) runs: upload,
//!   status, resume;
//! - newer minor: refused (the plugin may rely on what this host lacks), naming both versions;
//! - another major (a new ABI): refused by abi_stable's version check, naming both versions;
//! - a root module with fewer fields than the host's — what every old plugin would be if the root module
//!   grew within a major — is refused by abi_stable, which is why it never grows within a major;
//! - a changed type anywhere reachable from the root module: refused by abi_stable's layout check.

use mtp_tests::harness::{
    build_workspace, compat_plugin, compat_plugin_of_crate, mtp_command, plugin_api_1_0_archive,
    plugins_dir_with, SourcePatch,
};
use serde_json::Value;

fn check(library: &std::path::Path) -> Value {
    let home = tempfile::tempdir().unwrap();
    let output = mtp_command(home.path())
        .args(["plugin", "check", "--json"])
        .arg(library)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)))
}

fn host_version() -> plugin_api::manifest::ApiVersion {
    plugin_api::manifest::ApiVersion::current()
}

#[test]
fn an_older_minor_plugin_is_accepted() {
    assert!(
        host_version().minor >= 1,
        "the host must be newer than 1.0 for this test"
    );
    let report = check(&compat_plugin("older-minor", "1.0.0", &[]));
    assert_eq!(report["accepted"], true, "{report}");
    assert_eq!(report["manifest"]["api_version"], "1.0.0");
}

/// The protocol has a version of its own: a plugin built with a newer `mtp-plugin-api` crate (an SDK
/// helper added, nothing on the wire) that speaks this host's protocol loads.
#[test]
fn a_newer_crate_speaking_this_hosts_protocol_is_accepted() {
    let host = host_version().to_string();
    let report = check(&compat_plugin_of_crate("newer-crate", "1.99.0", &host, &[]));
    assert_eq!(report["accepted"], true, "{report}");
    assert_eq!(report["manifest"]["api_version"], host.as_str());
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

#[test]
fn a_real_plugin_api_1_0_plugin_from_history_uploads_resumes_and_shows_in_status() {
    build_workspace();
    let library = plugin_api_1_0_archive();
    let report = check(&library);
    assert_eq!(report["accepted"], true, "{report}");
    assert_eq!(report["manifest"]["id"], "archive");
    assert_eq!(report["manifest"]["api_version"], "1.0.0", "{report}");

    let home = tempfile::tempdir().unwrap();
    let archive_dir = home.path().join("archive");
    std::fs::write(
        home.path().join(".env"),
        format!("ARCHIVE_DIR={}\n", archive_dir.display()),
    )
    .unwrap();
    let plugins = plugins_dir_with(home.path(), &[library]);
    let generated = mtp_command(home.path())
        .args([
            "sequence", "generate", "walk", "--count", "4", "--name", "Old walk",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let upload = || {
        let out = mtp_command(home.path())
            .args(["upload", "walk", "--json", "--plugins-dir"])
            .arg(&plugins)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout)
    };
    let events = upload();
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["integration"], "archive", "{events:?}");
    assert_eq!(result["state"], "published", "{events:?}");
    let files: u64 = events
        .iter()
        .filter(|e| e["type"] == "progress" && e["event"] == "advance")
        .filter_map(|e| e["files"].as_u64())
        .sum();
    assert_eq!(
        files, 4,
        "the 1.0 plugin's progress reached today's host: {events:?}"
    );
    let copies: Vec<_> = std::fs::read_dir(&archive_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1);
    // Its manifest, written by the 1.0 types, reads with today's.
    let manifest: plugin_api::sequence::SequenceDescriptor =
        serde_json::from_slice(&std::fs::read(copies[0].join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.name, "Old walk");
    assert_eq!(manifest.images.len(), 4);
    for image in &manifest.images {
        let copied = std::fs::read(copies[0].join(&image.file_name)).unwrap();
        assert_eq!(
            copied,
            std::fs::read(&image.path).unwrap(),
            "{}",
            image.file_name
        );
    }

    // A second run resumes: everything announced as done, nothing copied again.
    let again = upload();
    let totals = again
        .iter()
        .find(|e| e["event"] == "totals")
        .unwrap_or_else(|| panic!("{again:?}"));
    assert_eq!(totals["files_done"], 4, "{again:?}");
    assert!(
        !again
            .iter()
            .any(|e| e["event"] == "advance" && e["bytes"].as_u64() > Some(0)),
        "{again:?}"
    );

    let status = mtp_command(home.path())
        .args(["status", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["integration"], "archive");
    assert_eq!(rows[0]["name"], "Old walk");
    assert_eq!(rows[0]["state"], "published");
}

#[test]
fn a_newer_minor_plugin_is_refused_with_both_versions() {
    let newer = format!("{}.{}.0", host_version().major, host_version().minor + 1);
    let leaked: &'static str = Box::leak(newer.clone().into_boxed_str());
    // A newer minor may append host services (with defaults), which abi_stable tolerates; our policy
    // still refuses it, because the plugin may call what this host lacks.
    let report = check(&compat_plugin(
        "newer-minor",
        leaked,
        &[SourcePatch {
            file: "ffi.rs",
            from: "}\n\n/// The host-services trait object handed to a plugin.",
            to: "    /// A service from a newer minor, appended with a default body.\n    fn newer_service(&self) -> u32 {\n        0\n    }\n}\n\n/// The host-services trait object handed to a plugin.",
        }],
    ));
    assert_eq!(report["accepted"], false, "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains(&newer) && reason.contains(&host_version().to_string()),
        "{reason}"
    );
}

#[test]
fn a_new_major_abi_is_refused_with_both_versions() {
    let report = check(&compat_plugin(
        "next-major",
        "2.0.0",
        &[SourcePatch {
            file: "ffi.rs",
            from: "pub const ABI_VERSION: &str = \"1.0.0\";",
            to: "pub const ABI_VERSION: &str = \"2.0.0\";",
        }],
    ));
    assert_eq!(report["accepted"], false, "{report}");
    assert_eq!(
        report["reason"],
        "built for plugin ABI 2.0.0, this host supports ABI 1.x"
    );
}

#[test]
fn a_root_module_with_fewer_fields_is_refused() {
    let report = check(&compat_plugin(
        "fewer-fields",
        "1.0.0",
        &[
            SourcePatch {
                file: "ffi.rs",
                from: "    pub manifest: extern \"C\" fn() -> RResult<RString, RString>,\n    /// Runs",
                to: "    #[sabi(last_prefix_field)]\n    pub manifest: extern \"C\" fn() -> RResult<RString, RString>,\n    /// Runs",
            },
            SourcePatch {
                file: "ffi.rs",
                from: "    #[sabi(last_prefix_field)]\n    pub call: extern \"C\" fn(",
                to: "    #[allow(dead_code)]\n    pub call: extern \"C\" fn(",
            },
            SourcePatch {
                file: "ffi.rs",
                from: "pub struct PluginModule {",
                to: "pub struct PluginModule {\n    // the variant: `call` moved out of the prefix below",
            },
        ],
    ));
    // Moving `call` past the last prefix field makes it optional: the host, which requires it, refuses.
    assert_eq!(report["accepted"], false, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .starts_with("incompatible plugin ABI"),
        "{report}"
    );
}

#[test]
fn a_changed_type_in_the_host_services_is_refused() {
    let report = check(&compat_plugin(
        "changed-type",
        "1.0.0",
        &[
            SourcePatch {
                file: "ffi.rs",
                from: "fn log(&self, level: u8,",
                to: "fn log(&self, level: u32,",
            },
            SourcePatch {
                file: "sdk/context.rs",
                from: "level as u8,",
                to: "level as u32,",
            },
            SourcePatch {
                file: "sdk/testing.rs",
                from: "fn log(&self, level: u8,",
                to: "fn log(&self, level: u32,",
            },
            SourcePatch {
                file: "sdk/testing.rs",
                from: "LogLevel::from_u8(level)",
                to: "LogLevel::from_u8(level as u8)",
            },
        ],
    ));
    assert_eq!(report["accepted"], false, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .starts_with("incompatible plugin ABI"),
        "{report}"
    );
}
