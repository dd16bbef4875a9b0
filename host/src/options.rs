//! Run options: `mtp upload --option <integration>.<name>=<value>`, checked against the options each
//! manifest declares, and the host's short flags (`--jobs`, `--republish`) that set the declared option
//! naming them in [`RunOptionSpec::flag`].

use std::collections::BTreeMap;

use plugin_api::manifest::{Manifest, RunOptionSpec};
use serde_json::{Map, Value};

use crate::registry::Registry;

/// An option the command line gave that no manifest accepts, or a value its declaration refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Not `<integration>.<name>=<value>`.
    #[error("--option {0:?}: expected <integration>.<name>=<value> (mapillary.jobs=8)")]
    Malformed(String),
    /// No loaded integration has that id.
    #[error(
        "--option {given:?}: no integration {integration} is installed (see mtp integrations list)"
    )]
    UnknownIntegration {
        /// The option as given.
        given: String,
        /// The id it names.
        integration: String,
    },
    /// The integration declares no such option.
    #[error("--option {given:?}: {integration} has no option {name} ({known})")]
    UnknownOption {
        /// The option as given.
        given: String,
        /// The integration.
        integration: String,
        /// The unknown name.
        name: String,
        /// What it does accept.
        known: String,
    },
    /// The value does not fit the declared type.
    #[error("{given}: {integration}: {reason}")]
    BadValue {
        /// The option or flag as given.
        given: String,
        /// The integration.
        integration: String,
        /// Why (names the option and what it expects).
        reason: String,
    },
}

/// The options of one run, per integration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    declared: BTreeMap<String, Map<String, Value>>,
    /// What a plugin that declares no options receives: the short flags under their own names, as every
    /// plugin did before plugin API 1.2.
    undeclared: Map<String, Value>,
    /// Facts about the sequence that the host hands every integration with its options, not settings of
    /// any one integration: `prior_uploads` (what MTPDU's sequence log says was already published) and
    /// `force` (send even so). See `chain_check`.
    shared: Map<String, Value>,
    /// The integrations this run is limited to (the destinations of the upload and what they need);
    /// `None`: every enabled one.
    only: Option<std::collections::BTreeSet<String>>,
}

/// A short flag of `mtp upload` and its value as typed (`("jobs", "8")`, `("republish", "true")`).
pub type FlagValue<'a> = (&'a str, String);

impl RunOptions {
    /// No options at all (re-checks).
    pub fn none() -> RunOptions {
        RunOptions::default()
    }

    /// Checks `given` (`mapillary.jobs=8`) and the short `flags` against the manifests in `registry`.
    /// `undeclared` is what plugins declaring no options receive.
    pub fn parse(
        registry: &Registry,
        given: &[String],
        flags: &[FlagValue<'_>],
        undeclared: Map<String, Value>,
    ) -> Result<RunOptions, OptionError> {
        let mut options = RunOptions {
            declared: BTreeMap::new(),
            undeclared,
            shared: Map::new(),
            only: None,
        };
        for info in registry.infos().iter().filter(|i| i.loaded) {
            for (flag, value) in flags {
                if let Some(spec) = info
                    .options
                    .iter()
                    .find(|o| o.flag.as_deref() == Some(flag))
                {
                    let parsed = spec.parse(value).map_err(|reason| OptionError::BadValue {
                        given: format!("--{flag} {value}"),
                        integration: info.id.clone(),
                        reason,
                    })?;
                    options.set(&info.id, spec, parsed);
                }
            }
        }
        for text in given {
            let (path, value) = match text.split_once('=') {
                Some((path, value)) => (path, value),
                None => (text.as_str(), ""),
            };
            let Some((integration, name)) = path.split_once('.') else {
                return Err(OptionError::Malformed(text.clone()));
            };
            let Some(plugin) = registry.get(integration) else {
                return Err(OptionError::UnknownIntegration {
                    given: text.clone(),
                    integration: integration.to_string(),
                });
            };
            let Some(spec) = plugin.manifest.option(name) else {
                return Err(OptionError::UnknownOption {
                    given: text.clone(),
                    integration: integration.to_string(),
                    name: name.to_string(),
                    known: known_options(&plugin.manifest),
                });
            };
            let parsed = spec.parse(value).map_err(|reason| OptionError::BadValue {
                given: format!("--option {text}"),
                integration: integration.to_string(),
                reason,
            })?;
            options.set(integration, spec, parsed);
        }
        Ok(options)
    }

    fn set(&mut self, integration: &str, spec: &RunOptionSpec, value: Value) {
        self.declared
            .entry(integration.to_string())
            .or_default()
            .insert(spec.name.clone(), value);
    }

    /// These options with the shared fact `key` set to `value` (see [`RunOptions::shared`]).
    pub fn with_shared(mut self, key: &str, value: Value) -> RunOptions {
        self.shared.insert(key.to_string(), value);
        self
    }

    /// These options limited to the integrations `ids` (the run leaves the others alone).
    pub fn only(mut self, ids: impl IntoIterator<Item = String>) -> RunOptions {
        self.only = Some(ids.into_iter().collect());
        self
    }

    /// Whether integration `id` takes part in a run with these options.
    pub fn includes(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(id))
    }

    /// The facts about the sequence every integration receives besides its own options.
    pub fn shared(&self) -> &Map<String, Value> {
        &self.shared
    }

    /// What the integration of `manifest` receives in [`plugin_api::protocol::RunRequest::options`]: the
    /// options given for it when it declares options (a missing one means its default), else the
    /// undeclared map; plus the shared facts (an option of its own wins over a fact of the same name).
    pub fn for_integration(&self, manifest: &Manifest) -> Map<String, Value> {
        let mut options = if manifest.options.is_empty() {
            self.undeclared.clone()
        } else {
            self.declared.get(&manifest.id).cloned().unwrap_or_default()
        };
        for (key, value) in &self.shared {
            options.entry(key.clone()).or_insert_with(|| value.clone());
        }
        options
    }
}

fn known_options(manifest: &Manifest) -> String {
    if manifest.options.is_empty() {
        return "it declares none".to_string();
    }
    let names: Vec<&str> = manifest.options.iter().map(|o| o.name.as_str()).collect();
    format!("options: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use plugin_api::manifest::OptionKind;

    use super::*;

    fn jobs() -> RunOptionSpec {
        RunOptionSpec {
            name: "jobs".into(),
            help: String::new(),
            kind: OptionKind::Integer { min: 1, max: 32 },
            default: Some("4".into()),
            flag: Some("jobs".into()),
        }
    }

    #[test]
    fn values_are_checked_against_the_declared_type() {
        assert_eq!(jobs().parse("8"), Ok(Value::from(8)));
        let err = jobs().parse("0").unwrap_err();
        assert_eq!(
            err,
            "option jobs expects a whole number from 1 to 32, not \"0\""
        );
        assert!(jobs().parse("many").is_err());
    }

    #[test]
    fn a_plugin_without_declared_options_gets_the_undeclared_map() {
        let mut undeclared = Map::new();
        undeclared.insert("jobs".into(), 4.into());
        let options = RunOptions {
            declared: BTreeMap::new(),
            undeclared: undeclared.clone(),
            shared: Map::new(),
            only: None,
        };
        let old = Manifest {
            id: "old".into(),
            ..Manifest::default()
        };
        assert_eq!(options.for_integration(&old), undeclared);
        let new = Manifest {
            id: "new".into(),
            options: vec![jobs()],
            ..Manifest::default()
        };
        assert!(options.for_integration(&new).is_empty());
    }
}
