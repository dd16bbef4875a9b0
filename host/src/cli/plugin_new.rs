//! `mtp plugin new NAME`: a new provider crate, copied from `plugins/template` with its names changed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use mtp_host::exit::UsageError;

use super::{print_json, GlobalArgs};

const TEMPLATE_CARGO: &str = include_str!("../../../plugins/template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");
const TEMPLATE_TEST: &str = include_str!("../../../plugins/template/tests/upload.rs");
const TEMPLATE_CONFORMANCE: &str = include_str!("../../../plugins/template/tests/conformance.rs");
const PROVIDER_TESTS_LINE: &str = "mtp-provider-tests = { path = \"../../provider-tests\" }";

/// The names a provider called `name` gets: crate, id, type, env prefix.
struct Names {
    crate_name: String,
    id: String,
    type_name: String,
    env_prefix: String,
}

/// The ids of the providers bundled with mtp (and the template's): a new provider must not take one, or
/// it would shadow (and its build instructions overwrite) the bundled library.
const BUNDLED_IDS: &[&str] = &[
    "archive",
    "mapillary",
    "mtpw",
    "panoramax",
    "strava",
    "streetview",
    "template",
];

fn names(name: &str) -> Result<Names> {
    let id = name.trim().to_lowercase().replace([' ', '_'], "-");
    if BUNDLED_IDS.contains(&id.as_str()) {
        return Err(UsageError(format!(
            "{id:?} is the id of a provider bundled with mtp: choose another name (e.g. \"my-{id}\")"
        ))
        .into());
    }
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || id.starts_with(|c: char| c.is_ascii_digit() || c == '-')
    {
        bail!("{name:?} is not a usable provider name: use letters, digits and dashes, starting with a letter");
    }
    let type_name: String = id
        .split('-')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect();
    Ok(Names {
        crate_name: format!("mtp-{id}"),
        env_prefix: id.to_uppercase().replace('-', "_"),
        type_name,
        id,
    })
}

/// Where the new crate finds `plugin-api`, decided on the user's machine when the command runs: the
/// checkout this mtp was built from, if it is still there (a developer building mtp from source: the
/// new provider builds against exactly the API of this host); else a version requirement on the
/// published crate, compatible with this host's plugin API (an installed mtp, no checkout around). A
/// comment in the file says which and how to switch.
fn plugin_api_dependency() -> String {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
    match local.join("Cargo.toml").canonicalize() {
        Ok(manifest) => {
            let dir = manifest.parent().unwrap_or(&manifest).display().to_string();
            format!(
                "# The plugin API of the mtp checkout found on this machine (the host you run).\n\
                 mtp-plugin-api = {{ path = {dir:?}, features = [\"http\"] }}"
            )
        }
        Err(_) => format!(
            "# The plugin API crate this mtp was built with ({version}, speaking plugin protocol {protocol}),\n\
             # from crates.io; with an mtp source checkout, use\n\
             # {{ path = \"<checkout>/plugin-api\", features = [\"http\"] }} instead.\n\
             mtp-plugin-api = {{ version = \"{version}\", features = [\"http\"] }}",
            version = plugin_api::manifest::CRATE_VERSION,
            protocol = plugin_api::manifest::PLUGIN_API_VERSION
        ),
    }
}

/// The conformance suite (`provider-tests`, not published) of the checkout this mtp was built from, if
/// it is still there: the new crate then runs it (`tests/conformance.rs`); without a checkout the
/// dependency and that test are left out, with a comment saying how to add them.
fn provider_tests_dependency() -> Option<String> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provider-tests");
    let manifest = local.join("Cargo.toml").canonicalize().ok()?;
    let dir = manifest.parent().unwrap_or(&manifest).display().to_string();
    Some(format!("mtp-provider-tests = {{ path = {dir:?} }}"))
}

fn rename(text: &str, n: &Names) -> String {
    text.replace("mtp-template", &n.crate_name)
        .replace("mtp_template", &n.crate_name.replace('-', "_"))
        .replace("TEMPLATE_", &format!("{}_", n.env_prefix))
        .replace("Template provider", &n.type_name)
        .replace("Template", &n.type_name)
        .replace("\"template\"", &format!("{:?}", n.id))
}

pub(crate) fn new_plugin(
    global: &GlobalArgs,
    name: &str,
    parent: Option<&Path>,
) -> Result<ExitCode> {
    let n = names(name)?;
    let dir: PathBuf = parent.unwrap_or(Path::new(".")).join(&n.crate_name);
    if dir.exists() {
        // A refused argument, like a bundled id: usage (exit code 2).
        return Err(UsageError(format!(
            "{} already exists: choose another name or directory",
            dir.display()
        ))
        .into());
    }
    let suite = provider_tests_dependency();
    let cargo = rename(TEMPLATE_CARGO, &n)
        .replace(
            PROVIDER_TESTS_LINE,
            suite.as_deref().unwrap_or(
                "# mtp-provider-tests = { path = \"<mtp checkout>/provider-tests\" }: the conformance suite \
                 (copy tests/conformance.rs from plugins/template too)",
            ),
        )
        .replace(
            "mtp-plugin-api = { path = \"../../plugin-api\", features = [\"http\"] }",
            &plugin_api_dependency(),
        )
        .replace(
            "# A minimal mtp provider to copy: `mtp plugin new NAME` writes a copy of this crate.\n",
            &format!("# {}: an mtp provider, made with `mtp plugin new`.\n", n.id),
        );
    let mut files = vec![
        (dir.join("Cargo.toml"), cargo),
        (dir.join("src/lib.rs"), rename(TEMPLATE_LIB, &n)),
        (dir.join("tests/upload.rs"), rename(TEMPLATE_TEST, &n)),
    ];
    if suite.is_some() {
        files.push((
            dir.join("tests/conformance.rs"),
            rename(TEMPLATE_CONFORMANCE, &n),
        ));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if global.json {
        print_json(&serde_json::json!({"dir": dir, "id": n.id, "crate": n.crate_name}))?;
    } else {
        println!("created {} (integration id {:?})", dir.display(), n.id);
        println!(
            "next: cd {} && cargo test && cargo build --release",
            dir.display()
        );
        println!(
            "then copy target/release/{}{}{} into your plugins directory and run mtp integrations list",
            std::env::consts::DLL_PREFIX,
            n.crate_name.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_every_name() {
        let n = names("Street cam").unwrap();
        assert_eq!(
            (n.crate_name.as_str(), n.id.as_str()),
            ("mtp-street-cam", "street-cam")
        );
        assert_eq!(
            (n.type_name.as_str(), n.env_prefix.as_str()),
            ("StreetCam", "STREET_CAM")
        );
        assert!(names("9lives").is_err());
        for bundled in ["mapillary", "MTPW", "archive", "panoramax"] {
            let err = names(bundled).err().expect("a bundled id is refused");
            assert!(err.is::<UsageError>(), "{err}");
        }
        assert!(
            TEMPLATE_CARGO.contains(PROVIDER_TESTS_LINE),
            "the template's dev-dependency on the suite is rewritten"
        );
        let suite = rename(TEMPLATE_CONFORMANCE, &n);
        assert!(
            suite.contains("mtp_street_cam::StreetCam") && suite.contains("\"STREET_CAM_URL\""),
            "{suite}"
        );
        let lib = rename(TEMPLATE_LIB, &n);
        assert!(
            lib.contains("pub struct StreetCam;") && lib.contains("\"STREET_CAM_URL\""),
            "{lib}"
        );
        assert!(lib.contains("id: \"street-cam\".into()"), "{lib}");
    }
}
