//! What a plugin says about itself, and the plugin-API version rules the host applies to it.

use serde::{Deserialize, Serialize};

/// The plugin-API version this copy of `plugin-api` implements (the crate's own semver).
///
/// The export macro stamps it into every plugin, so the host knows what each plugin was built against.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything the host needs to know about an integration before running it.
///
/// Sent across the boundary as JSON, so fields can be added in minor versions without changing the ABI;
/// every field added after 1.0 must carry `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Manifest {
    /// Every `.env` key the integration declared, required first.
    pub fn declared_env(&self) -> impl Iterator<Item = &str> {
        self.required_env
            .iter()
            .chain(self.optional_env.iter())
            .map(String::as_str)
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
        // The crate version is always a valid semver, so this cannot fail.
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
