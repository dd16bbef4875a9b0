//! Finding plugin libraries and loading them safely: every way a library can be wrong becomes a reason
//! string, never a crash. Libraries are never unloaded (TLS destructors would run into unmapped code).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use abi_stable::library::{lib_header_from_path, LibraryError, RootModuleError};
use plugin_api::ffi::PluginModuleRef;
use plugin_api::manifest::{check_api_compatibility, ApiVersion, Manifest};

use crate::library_names::LibraryNaming;

/// How long a library may take to load and describe itself before it is given up on.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// A plugin library that loaded and passed every check.
#[derive(Clone)]
pub struct LoadedLibrary {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Its root module.
    pub module: PluginModuleRef,
    /// What it says about itself.
    pub manifest: Manifest,
}

/// The platform's file-name suffix for dynamic libraries (`so`, `dylib`, `dll`).
pub fn library_extension() -> &'static str {
    std::env::consts::DLL_EXTENSION
}

/// The library files in `dir` (named as [`LibraryNaming::current`] says), sorted by file name so that discovery order is stable.
pub fn library_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| LibraryNaming::current().is_library(n))
        })
        .filter(|path| match not_a_library_file(path) {
            None => true,
            Some(reason) => {
                tracing::warn!("skipping {}: {reason}", path.display());
                false
            }
        })
        .collect();
    files.sort();
    files
}

/// Why an entry named like a library is not loaded: a directory, a dangling symbolic link, something
/// other than a file; `None` for a file (or a link to one).
fn not_a_library_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => None,
        Ok(meta) if meta.is_dir() => Some("a directory, not a library file".to_string()),
        Ok(_) => Some("not a regular file".to_string()),
        Err(err) => match std::fs::read_link(path) {
            Ok(target) => Some(format!(
                "a symbolic link to {}, which does not exist",
                target.display()
            )),
            Err(_) => Some(format!("cannot read it ({err})")),
        },
    }
}

/// `path` as the loader must be given it: a bare file name (`libfoo.so`) would be looked up on the
/// dynamic loader's search path (dlopen(3)), not in the current directory, so a relative path is made
/// absolute first.
pub fn explicit_library_path(path: &Path) -> std::io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// Loads the library at `path` and checks it, on a helper thread so that a library that blocks while
/// loading (or in its manifest call) is abandoned after `timeout` instead of hanging the host.
pub fn load_library(path: &Path, timeout: Duration) -> Result<LoadedLibrary, String> {
    load_libraries(std::slice::from_ref(&path.to_path_buf()), timeout)
        .pop()
        .unwrap_or_else(|| Err("the loader returned nothing".to_string()))
}

/// Loads every library in `paths` at once, one thread each, waiting at most `timeout` in all; the results
/// come back in the order of `paths`. A library still loading at the deadline is reported and abandoned
/// (its thread is left behind: a blocked foreign call cannot be interrupted, and unloading is never safe).
pub fn load_libraries(paths: &[PathBuf], timeout: Duration) -> Vec<Result<LoadedLibrary, String>> {
    let deadline = std::time::Instant::now() + timeout;
    let receivers: Vec<Result<mpsc::Receiver<Result<LoadedLibrary, String>>, String>> = paths
        .iter()
        .map(|path| {
            let (sender, receiver) = mpsc::channel();
            let owned = path.clone();
            std::thread::Builder::new()
                .name("mtp-plugin-load".into())
                .spawn(move || {
                    let result = std::panic::catch_unwind(|| load_library_now(&owned))
                        .unwrap_or_else(|_| Err("the library panicked while loading".to_string()));
                    let _ = sender.send(result);
                })
                .map(|_| receiver)
                .map_err(|err| format!("cannot start a loader thread: {err}"))
        })
        .collect();
    receivers
        .into_iter()
        .map(|receiver| {
            let receiver = receiver?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match receiver.recv_timeout(left) {
                Ok(result) => result,
                Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                    "the library did not finish loading within {} s (blocked in its initialisation or manifest)",
                    timeout.as_secs_f32()
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    Err("the library crashed its loader thread".to_string())
                }
            }
        })
        .collect()
}

/// The load timeout: [`LOAD_TIMEOUT`], or `MTP_PLUGIN_LOAD_TIMEOUT_MS` when set (tests shorten it).
pub fn load_timeout() -> Duration {
    std::env::var("MTP_PLUGIN_LOAD_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(LOAD_TIMEOUT)
}

fn load_library_now(path: &Path) -> Result<LoadedLibrary, String> {
    let path = &explicit_library_path(path)
        .map_err(|err| format!("cannot resolve {}: {err}", path.display()))?;
    let header = lib_header_from_path(path).map_err(|err| describe_library_error(&err))?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|err| describe_library_error(&err))?;
    let declared = module.api_version()().into_string();
    check_api_compatibility(ApiVersion::current(), &declared)?;
    let manifest_json = module.manifest()()
        .into_result()
        .map_err(|err| format!("its manifest call failed: {err}"))?;
    let manifest: Manifest = serde_json::from_str(&manifest_json)
        .map_err(|err| format!("its manifest is not valid: {err}"))?;
    validate_manifest(&manifest)?;
    Ok(LoadedLibrary {
        path: path.to_path_buf(),
        module,
        manifest,
    })
}

fn validate_manifest(manifest: &Manifest) -> Result<(), String> {
    let id_ok = !manifest.id.is_empty()
        && manifest
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !id_ok {
        return Err(format!(
            "its manifest id {:?} is not a lower-case name (a-z, 0-9, -, _)",
            manifest.id
        ));
    }
    Ok(())
}

/// Turns abi_stable's error (which can be 200 lines of layout dump) into one line for the user.
pub fn describe_library_error(err: &LibraryError) -> String {
    // The whole report (layout diffs included) is for plugin authors: `mtp -vv plugin check PATH`.
    tracing::debug!("abi_stable's full report:\n{err}");
    match err {
        LibraryError::OpenError { err, .. } => {
            format!(
                "not a plugin library (cannot be opened: {})",
                first_line(&err.to_string())
            )
        }
        LibraryError::GetSymbolError { .. } => "not a plugin library (no root module)".to_string(),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built for plugin ABI {actual_version}, this host supports ABI {}.x",
            expected_version.major
        ),
        LibraryError::ParseVersionError(_) => format!(
            "incompatible plugin ABI: {}",
            last_error_line(&err.to_string())
        ),
        LibraryError::RootModule { err, .. } => match err {
            RootModuleError::Unwound => "the library panicked while loading".to_string(),
            other => format!(
                "its root module failed to load: {}",
                first_line(&other.to_string())
            ),
        },
        LibraryError::AbiInstability(_) => {
            format!(
                "incompatible plugin ABI: {}",
                last_error_line(&err.to_string())
            )
        }
        LibraryError::InvalidAbiHeader(_) => {
            "not a plugin library (built with an incompatible abi_stable)".to_string()
        }
        LibraryError::InvalidCAbi { .. } => {
            "incompatible plugin ABI: built for another C ABI".to_string()
        }
        other => first_line(&other.to_string()).to_string(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

fn last_error_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Error:"))
        .map(|l| l.trim().trim_start_matches("Error:").trim().to_string())
        .unwrap_or_else(|| first_line(text).to_string())
}
