//! The integrations the host knows about: discovered, loaded, gated by `.env`, and ordered into a chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plugin_api::ffi::HostServicesBox;
use plugin_api::manifest::{Manifest, RunOptionSpec};
use plugin_api::protocol::Method;
use plugin_api::PluginError;
use serde::Serialize;

use crate::env::EnvValues;
use crate::library_names::LibraryNaming;
use crate::loader::{library_files, load_libraries, load_timeout, LoadedLibrary};

/// Where plugins are looked for, in order.
#[derive(Debug, Clone)]
pub struct PluginDirs(pub Vec<PathBuf>);

impl PluginDirs {
    /// The documented order: `--plugins-dir`, else `MTP_PLUGINS_DIR`, else [`PluginDirs::defaults`] for
    /// this executable.
    pub fn resolve(flag: Option<&Path>) -> PluginDirs {
        if let Some(dir) = flag {
            return PluginDirs(vec![dir.to_path_buf()]);
        }
        if let Some(dir) = std::env::var_os("MTP_PLUGINS_DIR").filter(|v| !v.is_empty()) {
            return PluginDirs(vec![PathBuf::from(dir)]);
        }
        let exe = std::env::current_exe().ok();
        // A symbolic link to mtp (Homebrew's bin/mtp → Cellar/mtp/<version>/bin/mtp) finds the plugins
        // of the tree it points into; Windows paths are left alone (no `\\?\` verbatim prefixes shown).
        #[cfg(unix)]
        let exe = exe.map(|exe| exe.canonicalize().unwrap_or(exe));
        PluginDirs(PluginDirs::defaults(
            exe.as_deref(),
            dirs::data_dir().as_deref(),
            cfg!(windows),
            Path::is_dir,
        ))
    }

    /// Where plugins are looked for without a flag or `MTP_PLUGINS_DIR`: except on Windows,
    /// `<prefix>/lib/mtp/plugins` for an executable `<prefix>/bin/mtp` when that directory exists (the
    /// installed layout: a release archive unpacked anywhere, the Debian package's `/usr/lib/mtp/plugins`)
    /// and then *not* the executable's own directory (`/usr/bin` holds `ld.so`, which is no plugin to
    /// open); otherwise the executable's directory (a cargo build: `target/release`; Windows releases put
    /// the plugins beside `mtp.exe`, and a folder above it, `Downloads\lib` say, is no place to load code
    /// from); then `<data>/mtp/plugins`. `is_dir` is [`Path::is_dir`] but for tests.
    pub fn defaults(
        exe: Option<&Path>,
        data_dir: Option<&Path>,
        windows: bool,
        is_dir: impl Fn(&Path) -> bool,
    ) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(exe_dir) = exe.and_then(Path::parent) {
            let installed = exe_dir
                .parent()
                .filter(|_| !windows)
                .map(|prefix| prefix.join("lib").join("mtp").join("plugins"))
                .filter(|dir| is_dir(dir));
            dirs.push(installed.unwrap_or_else(|| exe_dir.to_path_buf()));
        }
        if let Some(data) = data_dir {
            dirs.push(data.join("mtp").join("plugins"));
        }
        dirs
    }

    /// [`PluginDirs::resolve`], refusing a directory given explicitly (`--plugins-dir`, `MTP_PLUGINS_DIR`)
    /// that does not exist or is not a directory: the default ones may be absent.
    pub fn resolve_checked(flag: Option<&Path>) -> Result<PluginDirs, crate::exit::ConfigError> {
        let explicit = flag
            .map(|dir| (dir.to_path_buf(), "--plugins-dir"))
            .or_else(|| {
                std::env::var_os("MTP_PLUGINS_DIR")
                    .filter(|v| !v.is_empty())
                    .map(|dir| (PathBuf::from(dir), "MTP_PLUGINS_DIR"))
            });
        if let Some((dir, from)) = explicit {
            let problem = match std::fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => None,
                Ok(_) => Some("is not a directory"),
                Err(_) => Some("does not exist"),
            };
            if let Some(problem) = problem {
                return Err(crate::exit::ConfigError(format!(
                    "the plugins directory {} ({from}) {problem}",
                    dir.display()
                )));
            }
        }
        Ok(PluginDirs::resolve(flag))
    }
}

/// One integration as `mtp integrations list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationInfo {
    /// Manifest id (for a library that did not load: derived from the file name).
    pub id: String,
    /// Human name.
    pub name: String,
    /// The integration's version (empty when not loaded).
    pub version: String,
    /// What it does.
    pub description: String,
    /// Loaded, enabled and in the chain.
    pub enabled: bool,
    /// The library loaded and passed the ABI and version checks.
    pub loaded: bool,
    /// Why it is disabled or not loaded; `null` when enabled.
    pub reason: Option<String>,
    /// `.env` keys it requires.
    pub required_env: Vec<String>,
    /// `.env` keys it reads when present.
    pub optional_env: Vec<String>,
    /// Integrations it runs after.
    pub after: Vec<String>,
    /// Values it hands downstream.
    pub exports: Vec<String>,
    /// Values it takes from upstream.
    pub consumes: Vec<String>,
    /// Which exports are secrets (handed downstream from the secret store, never kept in records).
    pub secret_exports: Vec<String>,
    /// Every `.env` key it declared, required first, with its help.
    pub env: Vec<EnvKeyListing>,
    /// The options it accepts per run (`mtp upload --option <id>.<name>=<value>`).
    pub options: Vec<RunOptionSpec>,
    /// Plugin-API version it was built for.
    pub api_version: String,
    /// The library file.
    pub path: PathBuf,
}

impl IntegrationInfo {
    /// `enabled`, `disabled: <reason>` or `not loaded: <reason>`.
    pub fn status_text(&self) -> String {
        match (&self.reason, self.enabled, self.loaded) {
            (_, true, _) => "enabled".to_string(),
            (Some(reason), false, true) => format!("disabled: {reason}"),
            (None, false, true) => "disabled".to_string(),
            (Some(reason), false, false) => format!("not loaded: {reason}"),
            (None, false, false) => "not loaded".to_string(),
        }
    }
}

/// One `.env` key of an integration as `mtp integrations list --json` shows it: the manifest's help
/// where it gives one (never a value).
#[derive(Debug, Clone, Serialize)]
pub struct EnvKeyListing {
    /// The key.
    pub key: String,
    /// The integration is disabled without it.
    pub required: bool,
    /// What it means (empty when the manifest does not say).
    pub help: String,
    /// It holds a credential.
    pub secret: bool,
    /// What applies when it is absent.
    pub default: Option<String>,
    /// A placeholder value, for `.env.example`.
    pub example: Option<String>,
}

/// A loaded plugin library the host can call (its [`plugin_api::sdk::Integration`] behind the ABI).
#[derive(Clone)]
pub struct LoadedPlugin {
    /// Its manifest.
    pub manifest: Manifest,
    library: LoadedLibrary,
}

impl LoadedPlugin {
    /// The manifest id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Calls `method` with a JSON payload; a panic or a malformed answer becomes an error.
    pub async fn call(
        &self,
        services: HostServicesBox,
        method: Method,
        payload: String,
    ) -> Result<String, PluginError> {
        let call = self.library.module.call();
        let future = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(services, method.as_str().into(), payload.into())
        }))
        .map_err(|payload| {
            PluginError::new(
                plugin_api::ErrorKind::Panic,
                format!(
                    "{} panicked: {}",
                    self.manifest.id,
                    plugin_api::error::panic_message(&*payload)
                ),
            )
        })?;
        future
            .await
            .into_result()
            .map(|json| json.into_string())
            .map_err(|err| PluginError::from_wire(&err))
    }

    /// Calls `method` with a serialisable request and parses the answer.
    pub async fn call_json<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        services: HostServicesBox,
        method: Method,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        let payload = serde_json::to_string(request)
            .map_err(|err| PluginError::other(format!("cannot encode the request: {err}")))?;
        self.call_parsed(services, method, payload).await
    }

    /// Calls `method` with a request already encoded as JSON and parses the answer.
    pub async fn call_parsed<Resp: serde::de::DeserializeOwned>(
        &self,
        services: HostServicesBox,
        method: Method,
        payload: String,
    ) -> Result<Resp, PluginError> {
        let answer = self.call(services, method, payload).await?;
        serde_json::from_str(&answer).map_err(|err| {
            PluginError::other(format!(
                "{} answered {} with a malformed document: {err}",
                self.manifest.id,
                method.as_str()
            ))
        })
    }
}

/// Every integration found, and the enabled ones in chain order.
pub struct Registry {
    infos: Vec<IntegrationInfo>,
    loaded: BTreeMap<String, LoadedPlugin>,
    chain: Vec<String>,
}

impl Registry {
    /// Discovers and loads every library in `dirs`, then gates them by `env` and orders the chain.
    pub fn discover(dirs: &PluginDirs, env: &EnvValues) -> Registry {
        let files: Vec<PathBuf> = dirs.0.iter().flat_map(|dir| library_files(dir)).collect();
        Registry::from_files(&files, env)
    }

    /// Loads exactly `files` (in order), then gates and chains them.
    pub fn from_files(files: &[PathBuf], env: &EnvValues) -> Registry {
        let mut infos = Vec::new();
        let mut loaded: BTreeMap<String, LoadedPlugin> = BTreeMap::new();
        let mut seen_paths = BTreeSet::new();
        // The same file reached through two directories is loaded once.
        let unique: Vec<PathBuf> = files
            .iter()
            .filter(|path| {
                seen_paths.insert(path.canonicalize().unwrap_or_else(|_| (*path).clone()))
            })
            .cloned()
            .collect();
        for (path, result) in unique.iter().zip(load_libraries(&unique, load_timeout())) {
            match result {
                Ok(library) => {
                    let manifest = library.manifest.clone();
                    let mut info = info_from_manifest(&manifest, path);
                    if let Some(first) = loaded.get(&manifest.id) {
                        info.loaded = false;
                        info.reason = Some(format!(
                            "another library with id {:?} was found first ({})",
                            manifest.id,
                            first.library.path.display()
                        ));
                    } else {
                        loaded.insert(manifest.id.clone(), LoadedPlugin { manifest, library });
                    }
                    infos.push(info);
                }
                Err(reason) => infos.push(not_loaded(path, reason)),
            }
        }
        let chain = gate_and_chain(&mut infos, env);
        warn_misspelt_keys(&infos, env);
        Registry {
            infos,
            loaded,
            chain,
        }
    }

    /// Every library found, in discovery order.
    pub fn infos(&self) -> &[IntegrationInfo] {
        &self.infos
    }

    /// The enabled integrations, upstream first.
    pub fn chain(&self) -> impl Iterator<Item = &LoadedPlugin> {
        self.chain.iter().filter_map(|id| self.loaded.get(id))
    }

    /// A loaded integration by id (enabled or not).
    pub fn get(&self, id: &str) -> Option<&LoadedPlugin> {
        self.loaded.get(id)
    }

    /// The listing entry for `id`.
    pub fn info(&self, id: &str) -> Option<&IntegrationInfo> {
        self.infos.iter().find(|i| i.id == id && i.loaded)
    }
}

fn info_from_manifest(manifest: &Manifest, path: &Path) -> IntegrationInfo {
    IntegrationInfo {
        id: manifest.id.clone(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        enabled: false,
        loaded: true,
        reason: None,
        required_env: manifest.required_env.clone(),
        optional_env: manifest.optional_env.clone(),
        after: manifest.after.clone(),
        exports: manifest.exports.clone(),
        consumes: manifest.consumes.clone(),
        secret_exports: manifest.secret_exports.clone(),
        env: env_listing(manifest),
        options: manifest.options.clone(),
        api_version: manifest.api_version.clone(),
        path: path.to_path_buf(),
    }
}

fn env_listing(manifest: &Manifest) -> Vec<EnvKeyListing> {
    let required = manifest.required_env.iter().map(|k| (k, true));
    let optional = manifest.optional_env.iter().map(|k| (k, false));
    required
        .chain(optional)
        .map(|(key, required)| {
            let help = manifest.env_help_for(key);
            EnvKeyListing {
                key: key.clone(),
                required,
                help: help.map(|h| h.help.clone()).unwrap_or_default(),
                secret: help.is_some_and(|h| h.secret),
                default: help.and_then(|h| h.default.clone()),
                example: help.and_then(|h| h.example.clone()),
            }
        })
        .collect()
}

fn not_loaded(path: &Path, reason: String) -> IntegrationInfo {
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = LibraryNaming::current().stem(&file_name).to_string();
    IntegrationInfo {
        id,
        name: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: String::new(),
        description: String::new(),
        enabled: false,
        loaded: false,
        reason: Some(reason),
        required_env: Vec::new(),
        optional_env: Vec::new(),
        after: Vec::new(),
        exports: Vec::new(),
        consumes: Vec::new(),
        secret_exports: Vec::new(),
        env: Vec::new(),
        options: Vec::new(),
        api_version: String::new(),
        path: path.to_path_buf(),
    }
}

/// A key of the `.env` file that no integration declares and that is one or two letters away from
/// `key` (`MAPILARY_APP_ID` for `MAPILLARY_APP_ID`).
fn misspelt_as<'a>(key: &str, env: &'a EnvValues, infos: &[IntegrationInfo]) -> Option<&'a str> {
    let declared = |k: &str| {
        infos
            .iter()
            .any(|i| i.required_env.iter().chain(&i.optional_env).any(|d| d == k))
    };
    env.file_keys()
        .filter(|k| !declared(k))
        .find(|k| strsim::damerau_levenshtein(k, key) <= 2)
}

/// Says once, for every key of the `.env` file that no integration declares but that is close to one
/// that is declared, which was meant (`unknown key MAPILARY_APP_ID: did you mean MAPILLARY_APP_ID?`).
pub(crate) fn warn_misspelt_keys(infos: &[IntegrationInfo], env: &EnvValues) {
    let declared: Vec<&str> = infos
        .iter()
        .flat_map(|i| i.required_env.iter().chain(&i.optional_env))
        .map(String::as_str)
        .collect();
    for key in env.file_keys() {
        if declared.contains(&key) {
            continue;
        }
        if let Some(meant) = declared
            .iter()
            .find(|d| strsim::damerau_levenshtein(d, key) <= 2)
        {
            tracing::warn!(".env: unknown key {key}: did you mean {meant}?");
        }
    }
}

/// Applies the env gate and the chain rules to `infos`; returns the enabled ids in chain order.
pub(crate) fn gate_and_chain(infos: &mut [IntegrationInfo], env: &EnvValues) -> Vec<String> {
    // Index of the first loaded entry per id: later duplicates stay "not loaded".
    let index: BTreeMap<String, usize> = infos
        .iter()
        .enumerate()
        .filter(|(_, info)| info.loaded)
        .map(|(i, info)| (info.id.clone(), i))
        .collect();

    for &i in index.values() {
        let (empty, missing): (Vec<&str>, Vec<&str>) = infos[i]
            .required_env
            .iter()
            .map(String::as_str)
            .filter(|key| env.get(key).is_none())
            .partition(|key| env.is_empty(key));
        let mut why = Vec::new();
        if !missing.is_empty() {
            let mut text = format!("missing {} in .env", missing.join(", "));
            for key in &missing {
                if let Some(typo) = misspelt_as(key, env, infos) {
                    text.push_str(&format!(" ({typo} is set: did you mean {key}?)"));
                }
            }
            why.push(text);
        }
        if !empty.is_empty() {
            let verb = if empty.len() == 1 { "is" } else { "are" };
            why.push(format!("{} {verb} empty in .env", empty.join(", ")));
        }
        if why.is_empty() {
            infos[i].enabled = true;
        } else {
            infos[i].reason = Some(why.join("; "));
        }
    }

    // Disabling one integration can disable those chained after it: repeat until nothing changes.
    loop {
        let mut changed = false;
        for &i in index.values() {
            if !infos[i].enabled {
                continue;
            }
            for upstream in infos[i].after.clone() {
                let reason = match index.get(&upstream) {
                    None => Some(format!("chained after {upstream}, which is not installed")),
                    Some(&u) if !infos[u].enabled => {
                        Some(format!("chained after {upstream}, which is disabled"))
                    }
                    Some(_) => None,
                };
                if let Some(reason) = reason {
                    infos[i].enabled = false;
                    infos[i].reason = Some(reason);
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }

    // Kahn's algorithm over the enabled ones; whatever remains sits on a cycle.
    let enabled: BTreeSet<String> = index
        .iter()
        .filter(|(_, &i)| infos[i].enabled)
        .map(|(id, _)| id.clone())
        .collect();
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    loop {
        let ready: Vec<String> = enabled
            .iter()
            .filter(|id| !placed.contains(*id))
            .filter(|id| infos[index[*id]].after.iter().all(|up| placed.contains(up)))
            .cloned()
            .collect();
        if ready.is_empty() {
            break;
        }
        for id in ready {
            placed.insert(id.clone());
            order.push(id);
        }
    }
    let cyclic: Vec<String> = enabled.difference(&placed).cloned().collect();
    for id in &cyclic {
        let i = index[id];
        infos[i].enabled = false;
        infos[i].reason = Some(format!("chained in a cycle ({})", cyclic.join(" → ")));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, required: &[&str], after: &[&str]) -> IntegrationInfo {
        let mut info = not_loaded(Path::new("x.so"), String::new());
        info.id = id.to_string();
        info.loaded = true;
        info.reason = None;
        info.required_env = required.iter().map(|s| s.to_string()).collect();
        info.after = after.iter().map(|s| s.to_string()).collect();
        info
    }

    fn env(keys: &[&str]) -> EnvValues {
        EnvValues::from_map(
            keys.iter()
                .map(|k| (k.to_string(), "v".to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_installed_prefix_is_searched_instead_of_the_executables_directory() {
        let data = Path::new("/home/ana/.local/share");
        let installed = |dir: &Path| dir.ends_with("lib/mtp/plugins");
        assert_eq!(
            PluginDirs::defaults(
                Some(Path::new("/usr/bin/mtp")),
                Some(data),
                false,
                installed
            ),
            [
                PathBuf::from("/usr/lib/mtp/plugins"),
                PathBuf::from("/home/ana/.local/share/mtp/plugins"),
            ]
        );
        assert_eq!(
            PluginDirs::defaults(
                Some(Path::new("/tmp/x/mtp-0.1.0/bin/mtp")),
                None,
                false,
                installed
            ),
            [PathBuf::from("/tmp/x/mtp-0.1.0/lib/mtp/plugins")]
        );
        // A build tree (no lib/mtp/plugins above it): the executable's own directory.
        assert_eq!(
            PluginDirs::defaults(
                Some(Path::new("/src/target/release/mtp")),
                Some(data),
                false,
                |_| false
            ),
            [
                PathBuf::from("/src/target/release"),
                PathBuf::from("/home/ana/.local/share/mtp/plugins"),
            ]
        );
        // An executable at the root has no prefix above it.
        assert_eq!(
            PluginDirs::defaults(Some(Path::new("/mtp")), None, false, installed),
            [PathBuf::from("/")]
        );
    }

    #[test]
    fn windows_looks_beside_the_executable_and_never_above_it() {
        let exe = Path::new("downloads").join("mtp-0.1.0").join("mtp.exe");
        let data = Path::new("roaming");
        assert_eq!(
            PluginDirs::defaults(Some(&exe), Some(data), true, |_| true),
            [
                Path::new("downloads").join("mtp-0.1.0"),
                data.join("mtp").join("plugins"),
            ]
        );
        assert_eq!(
            PluginDirs::defaults(None, Some(data), true, |_| true),
            [data.join("mtp").join("plugins")]
        );
    }

    #[test]
    fn a_misspelt_key_is_pointed_out() {
        let mut infos = vec![info("mapillary", &["MAPILLARY_APP_ID"], &[])];
        assert!(gate_and_chain(&mut infos, &env(&["MAPILARY_APP_ID"])).is_empty());
        assert_eq!(
            infos[0].reason.as_deref(),
            Some("missing MAPILLARY_APP_ID in .env (MAPILARY_APP_ID is set: did you mean MAPILLARY_APP_ID?)")
        );
        // A key far from every declared one is someone else's business.
        let mut infos = vec![info("mapillary", &["MAPILLARY_APP_ID"], &[])];
        gate_and_chain(&mut infos, &env(&["HOME_DIR"]));
        assert_eq!(
            infos[0].reason.as_deref(),
            Some("missing MAPILLARY_APP_ID in .env")
        );
    }

    #[test]
    fn orders_the_chain_upstream_first() {
        let mut infos = vec![
            info("c", &[], &["b"]),
            info("b", &[], &["a"]),
            info("a", &[], &[]),
        ];
        assert_eq!(gate_and_chain(&mut infos, &env(&[])), ["a", "b", "c"]);
    }

    #[test]
    fn a_disabled_upstream_disables_everything_downstream() {
        let mut infos = vec![
            info("a", &["KEY_A"], &[]),
            info("b", &[], &["a"]),
            info("c", &[], &["b"]),
        ];
        assert!(gate_and_chain(&mut infos, &env(&[])).is_empty());
        assert_eq!(infos[0].reason.as_deref(), Some("missing KEY_A in .env"));
        assert_eq!(
            infos[1].reason.as_deref(),
            Some("chained after a, which is disabled")
        );
        assert_eq!(
            infos[2].reason.as_deref(),
            Some("chained after b, which is disabled")
        );
    }

    #[test]
    fn a_missing_upstream_and_a_cycle_disable_with_reasons() {
        let mut infos = vec![
            info("x", &[], &["ghost"]),
            info("p", &[], &["q"]),
            info("q", &[], &["p"]),
            info("ok", &[], &[]),
        ];
        assert_eq!(gate_and_chain(&mut infos, &env(&[])), ["ok"]);
        assert_eq!(
            infos[0].reason.as_deref(),
            Some("chained after ghost, which is not installed")
        );
        assert_eq!(
            infos[1].reason.as_deref(),
            Some("chained in a cycle (p → q)")
        );
        assert!(!infos[2].enabled);
    }
}
