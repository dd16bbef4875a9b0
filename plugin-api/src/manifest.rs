//! What a plugin says about itself, and the plugin-API version rules the host applies to it.

use serde::{Deserialize, Serialize};

/// The plugin protocol this copy of `plugin-api` speaks: what a plugin and the host agree on across the
/// boundary (the manifest's fields, the methods and their JSON, the host's services).
///
/// It is a number of its own, not the crate's semver ([`CRATE_VERSION`]): the crate may gain SDK helpers
/// in a minor release (`sdk::settings` in 1.4) that change nothing on the wire, and a plugin built with
/// them must still load on every host of the same protocol. Its minor moves only when the wire gains
/// something a host must understand; the export macro stamps it into every plugin, so the host knows
/// what each plugin speaks, and the host refuses a plugin whose protocol minor is newer than its own.
pub const PLUGIN_API_VERSION: &str = "1.5.0";

/// The `mtp-plugin-api` crate's own semver: what a plugin's `Cargo.toml` asks for.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything the host needs to know about an integration before running it.
///
/// Sent across the boundary as JSON, so fields can be added in minor versions without changing the ABI;
/// every field added after 1.0 must carry `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Stable identifier, lower-case, used on the command line and in `after` lists (`mapillary`).
    pub id: String,
    /// Human name (`Mapillary`).
    pub name: String,
    /// The integration's own version (usually its crate version).
    pub version: String,
    /// One line saying what the integration does.
    #[serde(default)]
    pub description: String,
    /// The plugin-API version the plugin was built against; filled in by [`crate::export_plugin!`].
    #[serde(default)]
    pub api_version: String,
    /// `.env` keys that must all be present and non-empty for the integration to be enabled.
    #[serde(default)]
    pub required_env: Vec<String>,
    /// `.env` keys the integration reads when present (endpoints, tuning).
    #[serde(default)]
    pub optional_env: Vec<String>,
    /// Ids of the integrations this one runs after, in a sequence's chain.
    #[serde(default)]
    pub after: Vec<String>,
    /// Names of the values this integration hands to integrations chained after it (`sequence_key`).
    #[serde(default)]
    pub exports: Vec<String>,
    /// Names of the values this integration needs from upstream integrations (`mapillary.sequence_key`).
    #[serde(default)]
    pub consumes: Vec<String>,
    /// Which of [`Manifest::exports`] are secrets (`user_token`). Each is also held in the integration's
    /// secret store under the same key; the host never persists it in a sequence record and hands it to
    /// downstream integrations fresh from the secret store on every run (plugin API 1.2).
    #[serde(default)]
    pub secret_exports: Vec<String>,
    /// What each `.env` key in [`Manifest::required_env`] and [`Manifest::optional_env`] means, for
    /// `mtp integrations list`, `.env.example` and the README (plugin API 1.2).
    #[serde(default)]
    pub env_help: Vec<EnvKeyHelp>,
    /// The options the integration accepts per run (`mtp upload --option mapillary.jobs=8`); the host
    /// validates them and hands the integration its own in [`crate::protocol::RunRequest::options`]
    /// (plugin API 1.2).
    #[serde(default)]
    pub options: Vec<RunOptionSpec>,
}

/// One `.env` key described for users (as rclone describes each backend option).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvKeyHelp {
    /// The key (`MAPILLARY_APP_ID`).
    pub key: String,
    /// One or two sentences for the user.
    #[serde(default)]
    pub help: String,
    /// The value is a credential: never shown, logged or written to an example file.
    #[serde(default)]
    pub secret: bool,
    /// What applies when the key is absent, in words or as a value (`https://graph.mapillary.com`).
    #[serde(default)]
    pub default: Option<String>,
    /// A placeholder value for `.env.example` (for required keys).
    #[serde(default)]
    pub example: Option<String>,
    /// The value is a file or directory path: the host expands a leading `~` and resolves a relative
    /// path from the `.env` file against that file's directory (a host that predates this field passes
    /// the value as written).
    #[serde(default)]
    pub path: bool,
}

impl EnvKeyHelp {
    /// A key with its help text.
    pub fn new(key: impl Into<String>, help: impl Into<String>) -> EnvKeyHelp {
        EnvKeyHelp {
            key: key.into(),
            help: help.into(),
            secret: false,
            default: None,
            example: None,
            path: false,
        }
    }

    /// Marks the value as a path (see [`EnvKeyHelp::path`]).
    pub fn path(mut self) -> EnvKeyHelp {
        self.path = true;
        self
    }

    /// Marks the key as a credential.
    pub fn secret(mut self) -> EnvKeyHelp {
        self.secret = true;
        self
    }

    /// What applies when the key is absent.
    pub fn default_value(mut self, default: impl Into<String>) -> EnvKeyHelp {
        self.default = Some(default.into());
        self
    }

    /// A placeholder for `.env.example`.
    pub fn example(mut self, example: impl Into<String>) -> EnvKeyHelp {
        self.example = Some(example.into());
        self
    }
}

/// The type of a run option's value, which the host checks before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptionKind {
    /// `true` or `false` (given without a value: `true`).
    Bool,
    /// A whole number within `min..=max`.
    Integer {
        /// The smallest value accepted.
        min: i64,
        /// The largest value accepted.
        max: i64,
    },
    /// Any text.
    Text,
}

/// The run option (a [`OptionKind::Bool`]) by which an integration says it handles a sequence that the
/// sequence's own log (MTPDU's `destination` block, `options.prior_uploads.<id>`) says is already
/// published there: while it is true (its value, else its declared default) the host calls the
/// integration instead of skipping it, and the integration must send nothing unless `options.force`.
/// An integration that does not declare it is skipped as before.
pub const HANDLES_PRIOR_UPLOADS: &str = "look_up_prior_upload";

/// One option an integration accepts per run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptionSpec {
    /// The name after the integration id (`jobs` in `--option mapillary.jobs=8`); also the key in
    /// [`crate::protocol::RunRequest::options`].
    pub name: String,
    /// One sentence for the user.
    #[serde(default)]
    pub help: String,
    /// The value's type.
    pub kind: OptionKind,
    /// The value when not given, as the user would type it (`4`, `false`).
    #[serde(default)]
    pub default: Option<String>,
    /// A host flag that sets this option (`jobs` for `mtp upload --jobs 8`): the host knows `--jobs` and
    /// `--republish`, kept from before options were declared.
    #[serde(default)]
    pub flag: Option<String>,
}

impl RunOptionSpec {
    /// Parses `text` as this option's value; the error names the option and what it expects.
    pub fn parse(&self, text: &str) -> Result<serde_json::Value, String> {
        match self.kind {
            OptionKind::Bool => match text.trim() {
                "" | "true" | "yes" | "1" => Ok(true.into()),
                "false" | "no" | "0" => Ok(false.into()),
                other => Err(format!(
                    "option {} expects true or false, not {other:?}",
                    self.name
                )),
            },
            OptionKind::Integer { min, max } => match text.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.into()),
                _ => Err(format!(
                    "option {} expects a whole number from {min} to {max}, not {text:?}",
                    self.name
                )),
            },
            OptionKind::Text => Ok(text.into()),
        }
    }
}

impl Manifest {
    /// Every `.env` key the integration declared, required first.
    pub fn declared_env(&self) -> impl Iterator<Item = &str> {
        self.required_env
            .iter()
            .chain(self.optional_env.iter())
            .map(String::as_str)
    }

    /// Whether the export `name` is a secret (see [`Manifest::secret_exports`]).
    pub fn is_secret_export(&self, name: &str) -> bool {
        self.secret_exports.iter().any(|s| s == name)
    }

    /// The help of `.env` key `key`, if the manifest describes it.
    pub fn env_help_for(&self, key: &str) -> Option<&EnvKeyHelp> {
        self.env_help.iter().find(|h| h.key == key)
    }

    /// The declared run option `name`.
    pub fn option(&self, name: &str) -> Option<&RunOptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// Whether the integration handles a sequence its log says is already published there
    /// ([`HANDLES_PRIOR_UPLOADS`]), given the options of the run (`options`, as it receives them).
    pub fn handles_prior_uploads(
        &self,
        options: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let Some(spec) = self.option(HANDLES_PRIOR_UPLOADS) else {
            return false;
        };
        match options.get(HANDLES_PRIOR_UPLOADS) {
            Some(value) => value.as_bool() == Some(true),
            None => spec
                .default
                .as_deref()
                .and_then(|d| spec.parse(d).ok())
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        }
    }
}

/// A parsed `major.minor.patch` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Incompatible changes.
    pub major: u64,
    /// Additions a newer host understands and an older one does not.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

impl ApiVersion {
    /// Parses `1`, `1.2` or `1.2.3` (a pre-release or build suffix is ignored).
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(ApiVersion {
            major,
            minor,
            patch,
        })
    }

    /// The version of this copy of `plugin-api`.
    pub fn current() -> ApiVersion {
        // A literal, checked by the tests to parse.
        ApiVersion::parse(PLUGIN_API_VERSION).unwrap_or(ApiVersion {
            major: 0,
            minor: 0,
            patch: 0,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Decides whether a host implementing `host` can run a plugin built against `plugin`.
///
/// The policy (docs/compatibility in README): same major, and the plugin's minor no newer than the host's:
/// a minor version only ever adds things (JSON fields with defaults, host-service methods with defaults,
/// plugin methods the host probes for), so an older plugin works on a newer host, while a newer plugin may
/// rely on something this host lacks.
///
/// ```
/// use plugin_api::manifest::{check_api_compatibility, ApiVersion};
/// let host = ApiVersion::parse("1.2.0").unwrap();
/// assert!(check_api_compatibility(host, "1.0.3").is_ok());
/// let err = check_api_compatibility(host, "2.0.0").unwrap_err();
/// assert_eq!(err, "built for plugin API 2.x, this host supports 1.x");
/// ```
pub fn check_api_compatibility(host: ApiVersion, plugin: &str) -> Result<(), String> {
    let Some(found) = ApiVersion::parse(plugin) else {
        return Err(format!(
            "declares plugin API version {plugin:?}, which is not a version number"
        ));
    };
    if found.major != host.major {
        return Err(format!(
            "built for plugin API {}.x, this host supports {}.x",
            found.major, host.major
        ));
    }
    if found.minor > host.minor {
        return Err(format!(
            "built for plugin API {found}, newer than this host's {host}: upgrade mtp"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_has_a_version_of_its_own_never_ahead_of_the_crate() {
        let protocol = ApiVersion::parse(PLUGIN_API_VERSION).unwrap();
        let krate = ApiVersion::parse(CRATE_VERSION).unwrap();
        assert_eq!(protocol.major, krate.major);
        assert!(
            protocol <= krate,
            "protocol {protocol} is ahead of crate {krate}"
        );
        // A plugin built with this crate loads on a host of the same protocol, whatever the crate's minor.
        assert_eq!(
            check_api_compatibility(protocol, PLUGIN_API_VERSION),
            Ok(())
        );
    }

    #[test]
    fn a_manifest_from_before_1_2_still_reads() {
        let old = r#"{"id":"old","name":"Old","version":"0.1.0","api_version":"1.1.0",
            "required_env":["OLD_KEY"],"exports":["token"]}"#;
        let manifest: Manifest = serde_json::from_str(old).unwrap();
        assert_eq!(manifest.declared_env().collect::<Vec<_>>(), ["OLD_KEY"]);
        assert!(!manifest.is_secret_export("token"));
        assert!(manifest.env_help.is_empty() && manifest.options.is_empty());
    }

    #[test]
    fn option_kinds_read_and_write_as_tagged_json() {
        let spec = RunOptionSpec {
            name: "jobs".into(),
            help: "Files in parallel.".into(),
            kind: OptionKind::Integer { min: 1, max: 32 },
            default: Some("4".into()),
            flag: None,
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["kind"],
            serde_json::json!({"type": "integer", "min": 1, "max": 32})
        );
        assert_eq!(serde_json::from_value::<RunOptionSpec>(json).unwrap(), spec);
        let flag = RunOptionSpec {
            kind: OptionKind::Bool,
            ..spec
        };
        assert_eq!(flag.parse(""), Ok(true.into()));
        assert_eq!(flag.parse("false"), Ok(false.into()));
        assert!(flag.parse("perhaps").unwrap_err().contains("true or false"));
    }
}
