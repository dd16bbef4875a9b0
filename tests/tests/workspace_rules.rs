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

/// The conformance suite runs in every provider's tests, which build without the host: no crate it
/// depends on, directly or through another workspace crate, is `mtp-host`.
#[test]
fn the_conformance_suite_does_not_depend_on_the_host() {
    let meta = metadata();
    let members = workspace_names(&meta);
    let packages = meta["packages"].as_array().expect("packages");
    let deps_of = |name: &str| -> Vec<String> {
        packages
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| {
                p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter(|d| d["kind"].is_null())
                    .filter_map(|d| d["name"].as_str())
                    .filter(|n| members.iter().any(|m| m == n))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        members.iter().any(|m| m == "mtp-provider-tests"),
        "the mtp-provider-tests package"
    );
    let mut reached = vec!["mtp-provider-tests".to_string()];
    let mut next = 0;
    while next < reached.len() {
        for dep in deps_of(&reached[next]) {
            if !reached.contains(&dep) {
                reached.push(dep);
            }
        }
        next += 1;
    }
    assert!(
        !reached.iter().any(|r| r == "mtp-host"),
        "mtp-provider-tests reaches mtp-host: {reached:?}"
    );
}

/// A host source file: its module path and its code outside `#[cfg(test)]` (the tests module closes
/// each file) and outside comments.
struct HostFile {
    path: String,
    module: Vec<String>,
    code: String,
}

fn host_files() -> Vec<HostFile> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read host/src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = workspace_root().join("host/src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).expect("under host/src");
            let mut module: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module
                .last()
                .is_some_and(|m| m == "mod" || m == "lib" || m == "main")
            {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read a host source file");
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|line| match line.find("//") {
                    // A `//` inside a string (a URL) is not a comment.
                    Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
                    _ => line,
                })
                .collect::<Vec<_>>()
                .join("\n");
            HostFile {
                path: relative.display().to_string(),
                module,
                code,
            }
        })
        .collect()
}

/// The modules `code` names through `crate::` and `super::` paths (`use` lists included), as absolute
/// module paths of their first segment beyond the prefix.
fn referenced_modules(module: &[String], code: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let starts_word = at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        let (mut base, mut tail) = if starts_word && rest.starts_with("crate::") {
            (Vec::new(), &rest["crate::".len()..])
        } else if starts_word && rest.starts_with("super::") {
            let mut base = module.to_vec();
            base.pop();
            (base, &rest["super::".len()..])
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        while let Some(more) = tail.strip_prefix("super::") {
            base.pop();
            tail = more;
        }
        let mut names = Vec::new();
        if let Some(list) = tail.strip_prefix('{') {
            // `use crate::{a::X, b}`: the first segment of each item at depth one.
            let mut depth = 1;
            let mut expecting = true;
            for (i, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expecting = true,
                    c if expecting && depth == 1 && (c.is_ascii_alphabetic() || c == '_') => {
                        names.push(ident(&list[i..]));
                        expecting = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(tail));
        }
        for name in names.into_iter().filter(|n| !n.is_empty() && n != "self") {
            let mut path = base.clone();
            path.push(name);
            found.push(path);
        }
        at += "crate::".len();
    }
    found
}

/// The first cycle in `edges` (node → the nodes it uses), as `a → b → a`.
fn find_cycle(
    edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<String> {
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" → "));
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

/// The host's modules depend on each other one way: no cycle among the library's top-level modules
/// (`runner`, `exit`, `registry`...; a module's own submodules count as the module), nor among the
/// CLI's (`cli::upload`, `cli::serve`...). Edges are the `crate::` and `super::` paths each file
/// names outside its tests.
#[test]
fn the_host_has_no_module_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let files = host_files();
    // (graph, node of a module path): the library's top level, and the CLI's children.
    let node_of = |module: &[String]| -> Option<(&'static str, String)> {
        match module {
            [] => None,
            [first, second, ..] if first == "cli" => Some(("cli", second.clone())),
            [first] if first == "cli" => None,
            [first, ..] => Some(("library", first.clone())),
        }
    };
    let mut graphs: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let Some((graph, from)) = node_of(&file.module) else {
            continue;
        };
        for target in referenced_modules(&file.module, &file.code) {
            if let Some((target_graph, to)) = node_of(&target) {
                if target_graph == graph && to != from {
                    graphs
                        .entry(graph)
                        .or_default()
                        .entry(from.clone())
                        .or_default()
                        .insert(to);
                }
            }
        }
    }
    let library = &graphs["library"];
    assert!(
        library
            .get("upload")
            .is_some_and(|uses| uses.contains("runner")),
        "the edges are read (upload uses runner): {library:?}"
    );
    for (graph, edges) in &graphs {
        assert_eq!(
            find_cycle(edges),
            None,
            "a module cycle in the host's {graph}"
        );
    }
}

/// The ids of the bundled providers the host must not know.
const PROVIDER_IDS: [&str; 6] = [
    "mapillary",
    "mtpw",
    "panoramax",
    "strava",
    "archive",
    "streetview",
];

/// Where the host names a provider on purpose, and why (file, id, reason).
const PROVIDER_IDS_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "cli/plugin_new.rs",
        "*",
        "`mtp plugin new` refuses the bundled ids, so a new provider cannot shadow one",
    ),
    (
        "cli/demo.rs",
        "mapillary",
        "the demo's narration names the fakes it starts and waits on",
    ),
    (
        "cli/demo.rs",
        "streetview",
        "the demo adds a 360° sample only when Street View, which takes nothing else, is ready",
    ),
    (
        "options.rs",
        "mapillary",
        "an example in the message of a malformed --option (mapillary.jobs=8)",
    ),
];

/// "The host knows no provider": no bundled provider's id in `host/src` code outside tests (comments
/// may name one as an example), but for the short allow-list above, each with its reason.
#[test]
fn the_host_names_no_provider() {
    let mut offences = Vec::new();
    for file in host_files() {
        let lower = file.code.to_ascii_lowercase();
        for id in PROVIDER_IDS {
            let allowed = PROVIDER_IDS_ALLOWED.iter().any(|(path, allowed, _)| {
                file.path == *path && (*allowed == "*" || *allowed == id)
            });
            if allowed {
                continue;
            }
            let bytes = lower.as_bytes();
            for (at, _) in lower.match_indices(id) {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + id.len()).copied();
                let word = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
                if !word(before) && !word(after) {
                    let line = lower[..at].lines().count().max(1);
                    offences.push(format!("host/src/{}:{line}: {id}", file.path));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "provider ids in the host:\n{}",
        offences.join("\n")
    );
}

/// Every `.rs` file under `dir`, recursively, with its text.
fn rust_sources(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            found.push((path, text));
        }
    }
    found
}

/// Every `.rs` file of every provider (`plugins/*/src`), with its text.
fn provider_sources() -> Vec<(std::path::PathBuf, String)> {
    let plugins = std::fs::read_dir(workspace_root().join("plugins")).expect("read plugins/");
    plugins
        .flatten()
        .flat_map(|plugin| rust_sources(&plugin.path().join("src")))
        .collect()
}

/// "Declare once, read typed": every bundled provider (and the template) declares its `.env` keys and run
/// options through `plugin_api::sdk::settings`, never as hand-written manifest entries, so a key's help,
/// default and range live in one place and every read applies them.
#[test]
fn bundled_providers_declare_keys_and_options_once() {
    let mut offences = Vec::new();
    for (path, text) in provider_sources() {
        for written in ["EnvKeyHelp::new(", "RunOptionSpec {", "required_env: vec!"] {
            if text.contains(written) {
                offences.push(format!("{}: {written}", path.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "keys or options written by hand (declare them with plugin_api::sdk::settings):\n{}",
        offences.join("\n")
    );
}

/// What a provider's own code would have to contain to read `Retry-After` itself or build its own HTTP
/// client, with what to use instead.
const OWN_HTTP_LAYER: &[(&str, &str)] = &[
    (
        "RETRY_AFTER",
        "read `Answer::retry_after` (plugin_api::http)",
    ),
    (
        "\"retry-after\"",
        "read `Answer::retry_after` (plugin_api::http)",
    ),
    (
        "parse_retry_after(",
        "read `Answer::retry_after` (plugin_api::http)",
    ),
    ("Client::builder", "use `plugin_api::http::client`"),
    ("Client::new(", "use `plugin_api::http::client`"),
    ("ClientBuilder", "use `plugin_api::http::client`"),
    ("reqwest::get(", "use `plugin_api::http::client`"),
];

/// "One HTTP layer": no provider under `plugins/*/src` reads the `Retry-After` header itself or builds its
/// own `reqwest::Client`; answers are read by `plugin_api::http` (`exchange`, `send`) and clients come from
/// `plugin_api::http::client`, so a fix to either reaches every provider. Comments are skipped, and so is
/// a file's `#[cfg(test)]` tail (a unit test may talk to a listener of its own with a plain client).
#[test]
fn providers_share_one_http_layer() {
    let root = workspace_root();
    let mut offences = Vec::new();
    for (path, text) in provider_sources() {
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in shipped.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let lower = code.to_ascii_lowercase();
            for (written, instead) in OWN_HTTP_LAYER {
                let found = if written.starts_with('"') {
                    lower.contains(written)
                } else {
                    code.contains(written)
                };
                if found {
                    let shown = path.strip_prefix(&root).unwrap_or(&path);
                    offences.push(format!(
                        "{}:{}: {written}: {instead}",
                        shown.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "providers with an HTTP layer of their own:\n{}",
        offences.join("\n")
    );
}

/// Modules stay small: no file of the host or of a provider is over 600 lines before its tests (a
/// `#[cfg(test)]` tail), so that each says one thing and a reader finds it. A file that grows past it is
/// split by what its parts do (the state store's opening went to `state/open.rs`).
#[test]
fn host_and_provider_files_stay_under_600_lines_outside_their_tests() {
    const MOST: usize = 600;
    let mut sources = rust_sources(&workspace_root().join("host/src"));
    sources.extend(provider_sources());
    let too_long: Vec<String> = sources
        .iter()
        .filter_map(|(path, text)| {
            let lines = text
                .lines()
                .take_while(|line| !line.starts_with("#[cfg(test)]"))
                .count();
            (lines > MOST).then(|| format!("{}: {lines} lines", path.display()))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "over {MOST} lines outside tests (split by what the parts do):\n{}",
        too_long.join("\n")
    );
}
