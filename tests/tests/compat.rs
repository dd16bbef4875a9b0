//! The compatibility policy, proven on plugins compiled from source against older and newer variants of
//! the plugin API (docs/writing-a-plugin.md, "Compatibility"):
//! - same major, older or equal minor: accepted;
//! - newer minor: refused (the plugin may rely on what this host lacks), naming both versions;
//! - another major (a new ABI): refused by abi_stable's version check, naming both versions;
//! - a root module with fewer fields than the host's — what every old plugin would be if the root module
//!   grew within a major — is refused by abi_stable, which is why it never grows within a major;
//! - a changed type anywhere reachable from the root module: refused by abi_stable's layout check.

use mtp_tests::harness::{compat_plugin, mtp_command, SourcePatch};
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
