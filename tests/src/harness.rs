//! Builds what the end-to-end tests run (the `mtp` binary, the bundled plugins, the ABI fixture plugins)
//! and finds it. `cargo test` does not build cdylibs for its tests (cargo#8311), so the tests do it here;
//! cargo releases its build lock while tests run, so a nested `cargo build` is safe and a no-op when fresh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run_build(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run cargo to build {what}: {err}"));
    assert!(
        output.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds (once per test process) the `mtp` binary, `mtp-fakes` and the bundled plugins, in the debug
/// profile, and returns the directory holding them.
pub fn build_workspace() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = cargo();
        command.current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "-p",
            "mtp-host",
            "-p",
            "mtp-mapillary",
            "-p",
            "mtp-mtpw",
            "-p",
            "mtp-archive",
            "-p",
            "mtp-panoramax",
            "-p",
            "mtp-strava",
            "-p",
            "mtp-streetview",
            "-p",
            "mtp-fakes",
            "--bins",
            "--lib",
        ]);
        run_build(command, "the workspace");
        target_dir().join("debug")
    })
}

/// The path of the `mtp` binary, built if needed.
pub fn mtp_binary() -> PathBuf {
    build_workspace().join(format!("mtp{}", std::env::consts::EXE_SUFFIX))
}

/// The file name of a library called `name` on this platform (`libname.so`, `name.dll`, ...).
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    )
}

/// A bundled plugin library (`mtp_mapillary`, `mtp_mtpw`), built if needed.
pub fn bundled_plugin(crate_lib_name: &str) -> PathBuf {
    build_workspace().join(library_file_name(crate_lib_name))
}

/// An ABI fixture plugin from `tests/fixtures` (`future_api_plugin`, `no_root_module`, ...), built (once
/// per test process, into `target/fixtures` so that it never lands beside the real binary) if needed.
pub fn fixture_plugin(lib_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let fixtures_target = target_dir().join("fixtures");
        let mut command = cargo();
        command
            .current_dir(workspace_root())
            .arg("build")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(workspace_root().join("tests/fixtures/Cargo.toml"))
            .arg("--target-dir")
            .arg(&fixtures_target);
        run_build(command, "the fixture plugins");
        fixtures_target.join("debug")
    });
    dir.join(library_file_name(lib_name))
}

/// A fresh plugins directory holding copies of `libraries` (copies, as a user would install them).
pub fn plugins_dir_with(dir: &Path, libraries: &[PathBuf]) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("create the plugins directory");
    for library in libraries {
        let name = library.file_name().expect("a library file name");
        std::fs::copy(library, plugins.join(name))
            .unwrap_or_else(|err| panic!("copy {}: {err}", library.display()));
    }
    plugins
}

/// The `.env` that enables both bundled plugins (placeholder values, never real credentials).
pub const FULL_ENV: &str = "MAPILLARY_APP_ID=test-app\nMAPILLARY_SECRET=test-secret\nMAPILLARY_REDIRECT_URI=http://127.0.0.1:9/cb\nMTP_WEB_URL=http://127.0.0.1:9\nMTP_WEB_AUTH_URL=http://127.0.0.1:9/accounts/authorize/\nMTP_WEB_APP_ID=mtpw-app\nMTP_WEB_APP_SECRET=mtpw-secret\n";

/// An `mtp` command isolated from the developer's machine: its own state dir, no inherited plugin dir or
/// integration keys from the environment.
pub fn mtp_command(home: &Path) -> Command {
    let mut command = Command::new(mtp_binary());
    command
        .env_remove("MTP_PLUGINS_DIR")
        .env_remove("RUST_LOG")
        // Output is fitted to COLUMNS when set: tests read whole lines unless they set it.
        .env_remove("COLUMNS")
        .env("MTP_STATE_DIR", home.join("state"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .current_dir(home);
    for key in [
        "MAPILLARY_APP_ID",
        "MAPILLARY_SECRET",
        "MAPILLARY_REDIRECT_URI",
        "MTP_WEB_URL",
        "MTP_WEB_AUTH_URL",
        "MTP_WEB_APP_ID",
        "MTP_WEB_APP_SECRET",
        "PANORAMAX_URL",
        "STRAVA_CLIENT_ID",
        "STRAVA_CLIENT_SECRET",
        "STRAVA_REDIRECT_URI",
        "GOOGLE_CLIENT_ID",
        "GOOGLE_CLIENT_SECRET",
    ] {
        command.env_remove(key);
    }
    command
}

/// Runs `cargo <args>` on the standalone crate at `manifest` with `target/<target_name>` as target dir,
/// panicking with cargo's output on failure (what a provider author would run by hand).
pub fn cargo_standalone(manifest: &Path, target_name: &str, args: &[&str]) {
    let mut command = cargo();
    command
        .current_dir(workspace_root())
        .args(args)
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir().join(target_name));
    run_build(
        command,
        &format!("{} ({})", manifest.display(), args.join(" ")),
    );
}

/// The template provider's library, after running its own tests and building it (once per process).
pub fn template_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("plugins/template/Cargo.toml");
            cargo_standalone(&manifest, "template", &["test"]);
            cargo_standalone(&manifest, "template", &["build"]);
            target_dir()
                .join("template/debug")
                .join(library_file_name("mtp_template"))
        })
        .clone()
}

/// A real plugin from this repository's history, built against the plugin API of its time
/// (`tests/fixtures/older-archive`: the archive provider and plugin-api 1.0.0 as commit ca9646c had
/// them), into `target/compat` (once per process). Returns its library.
pub fn plugin_api_1_0_archive() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("tests/fixtures/older-archive/Cargo.toml");
            cargo_standalone(&manifest, "compat", &["build"]);
            target_dir()
                .join("compat/debug")
                .join(library_file_name("mtp_archive_api_1_0"))
        })
        .clone()
}

/// A source edit applied to a copy of `plugin-api`: in `file` (relative to its `src/`), replace `from`
/// with `to`. A `from` that is not found fails the build loudly, so the fixtures follow the real code.
pub struct SourcePatch {
    /// File under `plugin-api/src/`.
    pub file: &'static str,
    /// Text to replace.
    pub from: &'static str,
    /// Replacement.
    pub to: &'static str,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory for the copy");
    for entry in std::fs::read_dir(from).expect("read plugin-api's sources") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a source file");
        }
    }
}

/// Makes the copied plugin API speak protocol `version` (its own constant, not the crate's semver).
fn set_protocol_version(manifest_rs: &Path, version: &str) {
    const DECLARATION: &str = "pub const PLUGIN_API_VERSION: &str = \"";
    let text = std::fs::read_to_string(manifest_rs).expect("read the copied manifest.rs");
    let start = text
        .find(DECLARATION)
        .expect("manifest.rs declares PLUGIN_API_VERSION as a string literal; update the fixture")
        + DECLARATION.len();
    let end = start + text[start..].find('"').expect("the literal ends");
    let patched = format!("{}{version}{}", &text[..start], &text[end..]);
    std::fs::write(manifest_rs, patched).expect("write the patched manifest.rs");
}

/// Builds a plugin against a *variant* of the plugin API compiled from source: a copy of `plugin-api`
/// declaring `version` with `patches` applied (an older or newer interface), and returns its library.
/// Variants share `target/compat`, so the common dependencies are built once.
pub fn compat_plugin(variant: &str, version: &str, patches: &[SourcePatch]) -> PathBuf {
    compat_plugin_of_crate(variant, version, version, patches)
}

/// Like [`compat_plugin`], with the crate's semver (`crate_version`) apart from the protocol it speaks
/// (`protocol`): an SDK release that changed nothing on the wire.
pub fn compat_plugin_of_crate(
    variant: &str,
    crate_version: &str,
    protocol: &str,
    patches: &[SourcePatch],
) -> PathBuf {
    let root = target_dir().join("compat/src").join(variant);
    let _ = std::fs::remove_dir_all(&root);
    // A directory name of its own per variant: cargo hashes path dependencies by their path relative to
    // the workspace, so same-named directories would share (and overwrite) one build in target/compat.
    let api_dir = format!("api-{variant}");
    let api = root.join(&api_dir);
    copy_tree(&workspace_root().join("plugin-api/src"), &api.join("src"));
    for patch in patches {
        let file = api.join("src").join(patch.file);
        let text = std::fs::read_to_string(&file).expect("read a file to patch");
        assert!(
            text.contains(patch.from),
            "{variant}: {} no longer contains {:?}; update the fixture",
            patch.file,
            patch.from
        );
        std::fs::write(&file, text.replace(patch.from, patch.to)).expect("write a patched file");
    }
    std::fs::write(api.join("Cargo.toml"), variant_manifest(crate_version))
        .expect("write the variant's Cargo.toml");
    set_protocol_version(&api.join("src/manifest.rs"), protocol);
    let plugin = root.join("plugin");
    std::fs::create_dir_all(plugin.join("src")).expect("create the plugin crate");
    let lib_name = format!("compat_{}", variant.replace('-', "_"));
    std::fs::write(
        plugin.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{lib_name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nmtp-plugin-api = {{ path = \"../{api_dir}\" }}\n"
        ),
    )
    .expect("write the plugin's Cargo.toml");
    std::fs::write(
        plugin.join("src/lib.rs"),
        format!(
            r#"use plugin_api::prelude::*;
struct Compat;
#[plugin_api::async_trait]
impl Integration for Compat {{
    fn manifest(&self) -> Manifest {{
        Manifest {{ id: "{variant}".into(), name: "Compat {variant}".into(), version: "0.1.0".into(),
            description: String::new(), api_version: String::new(), required_env: vec![],
            optional_env: vec![], after: vec![], exports: vec![], consumes: vec![], ..Default::default() }}
    }}
    async fn run(&self, ctx: &Context, _r: RunRequest) -> Result<RunOutcome, PluginError> {{
        ctx.info("compat plugin ran");
        Ok(RunOutcome::new(SequenceState::Published, "{variant} ran"))
    }}
}}
plugin_api::export_plugin!(Compat);
"#
        ),
    )
    .expect("write the plugin's source");
    std::fs::write(
        root.join("Cargo.toml"),
        format!("[workspace]\nresolver = \"2\"\nmembers = [\"{api_dir}\", \"plugin\"]\n\n[profile.dev]\ndebug = false\n"),
    )
    .expect("write the variant workspace");
    // The main lock file pins the same dependency versions the host was built with.
    let _ = std::fs::copy(workspace_root().join("Cargo.lock"), root.join("Cargo.lock"));
    cargo_standalone(&root.join("Cargo.toml"), "compat", &["build"]);
    target_dir()
        .join("compat/debug")
        .join(library_file_name(&lib_name))
}

/// plugin-api's own `Cargo.toml` as a standalone manifest declaring `version`: workspace-inherited fields
/// and dependencies are resolved from the root manifest, so a variant always has the real dependencies.
fn variant_manifest(version: &str) -> String {
    let read = |path: PathBuf| -> toml::Table {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        text.parse()
            .unwrap_or_else(|err| panic!("parse {}: {err}", path.display()))
    };
    let root = read(workspace_root().join("Cargo.toml"));
    let mut manifest = read(workspace_root().join("plugin-api/Cargo.toml"));
    let shared = root
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    let package = manifest
        .get_mut("package")
        .and_then(|p| p.as_table_mut())
        .expect("plugin-api has a [package]");
    package.insert("version".into(), version.into());
    package.insert("edition".into(), "2021".into());
    package.remove("license");
    manifest.remove("dev-dependencies");
    if let Some(deps) = manifest
        .get_mut("dependencies")
        .and_then(|d| d.as_table_mut())
    {
        for (name, spec) in deps.iter_mut() {
            let local = spec.as_table().cloned().unwrap_or_default();
            if local.get("workspace").and_then(|w| w.as_bool()) != Some(true) {
                continue;
            }
            let mut merged = match shared.get(name) {
                Some(toml::Value::String(version)) => toml::Table::from_iter([(
                    "version".to_string(),
                    toml::Value::String(version.clone()),
                )]),
                Some(toml::Value::Table(table)) => table.clone(),
                _ => panic!("{name} is not in [workspace.dependencies]"),
            };
            for (key, value) in local {
                if key == "features" {
                    let mut features = merged
                        .get("features")
                        .and_then(|f| f.as_array())
                        .cloned()
                        .unwrap_or_default();
                    features.extend(value.as_array().cloned().unwrap_or_default());
                    merged.insert(key, toml::Value::Array(features));
                } else if key != "workspace" {
                    merged.insert(key, value);
                }
            }
            *spec = toml::Value::Table(merged);
        }
    }
    toml::to_string(&manifest).expect("serialise the variant manifest")
}
