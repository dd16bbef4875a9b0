//! Declare once, read typed: an integration's `.env` keys and run options, each written in one place.
//!
//! A key or an option is declared once, with its help, whether it is secret, its default and its range
//! (as rclone declares a backend's options once and reads them back into a typed struct with
//! `configstruct`). The manifest's lists (`required_env`, `optional_env`, `env_help`, `options`) are made
//! from the declaration ([`Settings::declare`]), and every read applies it: a missing key falls back to the
//! declared default, a number outside its range or a URL without a scheme is an error naming the key, once.
//! Nothing here crosses the plugin boundary: the manifest the host receives is the same as one written by
//! hand, so a plugin using this loads on any host of the same protocol.
//!
//! ```
//! use plugin_api::prelude::*;
//! use plugin_api::sdk::settings::{EnvKey, RunOption, Settings};
//!
//! let settings = Settings::new()
//!     .key(EnvKey::required("TOY_TOKEN", "Your token.").secret().example("toy-0123"))
//!     .key(EnvKey::optional("TOY_URL", "The API root.").url().default("https://toy.example"))
//!     .key(EnvKey::optional("TOY_POLL_SECS", "Seconds between two looks.").number(1, 3600).default(60))
//!     .option(RunOption::integer("jobs", "Files in parallel.", 4, 1, 32).flag("jobs"));
//! let manifest = settings.declare(Manifest { id: "toy".into(), ..Default::default() });
//! assert_eq!(manifest.required_env, ["TOY_TOKEN"]);
//! assert_eq!(manifest.optional_env, ["TOY_URL", "TOY_POLL_SECS"]);
//! assert_eq!(manifest.options[0].default.as_deref(), Some("4"));
//! let options = serde_json::Map::new();
//! assert_eq!(settings.integer_option(&options, "jobs"), 4);
//! ```

use serde_json::{Map, Value};

use crate::error::PluginError;
use crate::manifest::{EnvKeyHelp, Manifest, OptionKind, RunOptionSpec};
use crate::sdk::Context;

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// `http://` or `https://`; read without a trailing slash.
    Url,
    /// A whole number within the range (inclusive).
    Number {
        min: u64,
        max: u64,
    },
    /// Yes or no (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, any case); read as `true` or `false`.
    Switch,
}

/// One `.env` key, declared once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    help: EnvKeyHelp,
    required: bool,
    kind: Kind,
}

impl EnvKey {
    /// A key that must be present for the integration to be enabled.
    pub fn required(key: &str, help: &str) -> EnvKey {
        EnvKey {
            help: EnvKeyHelp::new(key, help),
            required: true,
            kind: Kind::Text,
        }
    }

    /// A key read when present.
    pub fn optional(key: &str, help: &str) -> EnvKey {
        EnvKey {
            required: false,
            ..EnvKey::required(key, help)
        }
    }

    /// The value is a credential: never shown, logged or written to an example file.
    pub fn secret(mut self) -> EnvKey {
        self.help = self.help.secret();
        self
    }

    /// A placeholder for `.env.example`.
    pub fn example(mut self, example: &str) -> EnvKey {
        self.help = self.help.example(example);
        self
    }

    /// The value is a file or directory path (the host expands `~` and resolves it against `.env`).
    pub fn path(mut self) -> EnvKey {
        self.help = self.help.path();
        self
    }

    /// The value is a URL (`http://` or `https://`), read without a trailing slash.
    pub fn url(mut self) -> EnvKey {
        self.kind = Kind::Url;
        self
    }

    /// The value is a whole number from `min` to `max`.
    pub fn number(mut self, min: u64, max: u64) -> EnvKey {
        self.kind = Kind::Number { min, max };
        self
    }

    /// The value is yes or no, off unless set (`true`, `yes`, `on`, `1` or their opposites, any case).
    pub fn switch(mut self) -> EnvKey {
        self.kind = Kind::Switch;
        self.default("false")
    }

    /// What applies when the key is absent (shown as its default, and read as its value).
    pub fn default(mut self, value: impl ToString) -> EnvKey {
        self.help = self.help.default_value(value.to_string());
        self
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.help.key
    }
}

/// One run option (`mtp upload --option <id>.<name>=<value>`), declared once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOption(RunOptionSpec);

impl RunOption {
    /// A switch, off unless given.
    pub fn switch(name: &str, help: &str) -> RunOption {
        RunOption(RunOptionSpec {
            name: name.into(),
            help: help.into(),
            kind: OptionKind::Bool,
            default: Some("false".into()),
            flag: None,
        })
    }

    /// A whole number from `min` to `max`, `default` when not given.
    pub fn integer(name: &str, help: &str, default: i64, min: i64, max: i64) -> RunOption {
        RunOption(RunOptionSpec {
            name: name.into(),
            help: help.into(),
            kind: OptionKind::Integer { min, max },
            default: Some(default.to_string()),
            flag: None,
        })
    }

    /// Free text, absent unless given.
    pub fn text(name: &str, help: &str) -> RunOption {
        RunOption(RunOptionSpec {
            name: name.into(),
            help: help.into(),
            kind: OptionKind::Text,
            default: None,
            flag: None,
        })
    }

    /// The value when not given, as the user would type it (for a text option: `none`).
    pub fn default(mut self, value: &str) -> RunOption {
        self.0.default = Some(value.into());
        self
    }

    /// The host flag that sets it too (`jobs` for `mtp upload --jobs 8`): a declared alias.
    pub fn flag(mut self, flag: &str) -> RunOption {
        self.0.flag = Some(flag.into());
        self
    }
}

/// An integration's keys and options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    keys: Vec<EnvKey>,
    options: Vec<RunOptionSpec>,
}

impl Settings {
    /// Nothing declared yet.
    pub fn new() -> Settings {
        Settings::default()
    }

    /// Declares a `.env` key (in the order `mtp integrations list` and `.env.example` show them).
    pub fn key(mut self, key: EnvKey) -> Settings {
        self.keys.push(key);
        self
    }

    /// Declares a run option.
    pub fn option(mut self, option: RunOption) -> Settings {
        self.options.push(option.0);
        self
    }

    /// `manifest` with its keys, their help and its options taken from this declaration.
    pub fn declare(&self, manifest: Manifest) -> Manifest {
        let names = |required: bool| {
            self.keys
                .iter()
                .filter(|k| k.required == required)
                .map(|k| k.name().to_string())
                .collect()
        };
        Manifest {
            required_env: names(true),
            optional_env: names(false),
            env_help: self.keys.iter().map(|k| k.help.clone()).collect(),
            options: self.options.clone(),
            ..manifest
        }
    }

    fn declared(&self, key: &str) -> Result<&EnvKey, PluginError> {
        self.keys
            .iter()
            .find(|k| k.name() == key)
            .ok_or_else(|| PluginError::other(format!("{key} is read but was never declared")))
    }

    /// Key `key`'s value, trimmed: `None` when an optional key without a default is absent; a required
    /// key that is absent is an error naming it.
    pub fn text(&self, ctx: &Context, key: &str) -> Result<Option<String>, PluginError> {
        self.read(self.declared(key)?, ctx.env(key))
    }

    /// Key `key`'s value, which is there (required, or with a default).
    pub fn required_text(&self, ctx: &Context, key: &str) -> Result<String, PluginError> {
        self.text(ctx, key)?
            .ok_or_else(|| PluginError::invalid_input(format!("{key} is not set in .env")))
    }

    /// URL key `key`: its value or default, without a trailing slash.
    pub fn url(&self, ctx: &Context, key: &str) -> Result<String, PluginError> {
        self.required_text(ctx, key)
    }

    /// Number key `key`: its value or default, within its range.
    pub fn number(&self, ctx: &Context, key: &str) -> Result<u64, PluginError> {
        let text = self.required_text(ctx, key)?;
        text.parse()
            .map_err(|_| PluginError::other(format!("{key}: {text:?} was checked as a number")))
    }

    /// Switch key `key`: its value or default.
    pub fn switch(&self, ctx: &Context, key: &str) -> Result<bool, PluginError> {
        Ok(self.required_text(ctx, key)? == "true")
    }

    /// Checks and normalises `value` (as read from `.env`) for `key`, falling back to its default.
    fn read(&self, key: &EnvKey, value: Option<String>) -> Result<Option<String>, PluginError> {
        let name = key.name();
        let value = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .or_else(|| key.help.default.clone());
        let Some(value) = value else {
            return if key.required {
                Err(PluginError::invalid_input(format!(
                    "{name} is not set in .env"
                )))
            } else {
                Ok(None)
            };
        };
        match key.kind {
            Kind::Text => Ok(Some(value)),
            Kind::Url => {
                if value.starts_with("http://") || value.starts_with("https://") {
                    Ok(Some(value.trim_end_matches('/').to_string()))
                } else {
                    Err(PluginError::invalid_input(format!(
                        "{name} in .env must start with http:// or https://, not {value:?}"
                    )))
                }
            }
            Kind::Number { min, max } => match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n.to_string())),
                _ => {
                    let range = match (min, max) {
                        (0, u64::MAX) => String::new(),
                        (min, u64::MAX) => format!(" of at least {min}"),
                        (min, max) => format!(" from {min} to {max}"),
                    };
                    Err(PluginError::invalid_input(format!(
                        "{name} in .env must be a whole number{range}, not {value:?}"
                    )))
                }
            },
            Kind::Switch => match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(Some("true".into())),
                "false" | "no" | "off" | "0" => Ok(Some("false".into())),
                _ => Err(PluginError::invalid_input(format!(
                    "{name} in .env must be true or false, not {value:?}"
                ))),
            },
        }
    }

    fn spec(&self, name: &str) -> Option<&RunOptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// Switch `name` from a run's options (the host checked its type), or its default.
    pub fn switch_option(&self, options: &Map<String, Value>, name: &str) -> bool {
        options
            .get(name)
            .and_then(Value::as_bool)
            .or_else(|| {
                self.spec(name)
                    .and_then(|s| s.default.as_deref())
                    .map(|d| d == "true")
            })
            .unwrap_or(false)
    }

    /// Whole number `name` from a run's options, or its default, kept within its declared range.
    pub fn integer_option(&self, options: &Map<String, Value>, name: &str) -> i64 {
        let spec = self.spec(name);
        let default = spec
            .and_then(|s| s.default.as_deref())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let value = options.get(name).and_then(Value::as_i64).unwrap_or(default);
        match spec.map(|s| &s.kind) {
            Some(OptionKind::Integer { min, max }) => value.clamp(*min, *max),
            _ => value,
        }
    }

    /// Text `name` from a run's options, trimmed, or its default; `None` when neither is there.
    pub fn text_option(&self, options: &Map<String, Value>, name: &str) -> Option<String> {
        options
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .or_else(|| self.spec(name).and_then(|s| s.default.as_deref()))
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Settings {
        Settings::new()
            .key(EnvKey::required("TOY_ID", "The id.").example("1234"))
            .key(EnvKey::required("TOY_SECRET", "The secret.").secret())
            .key(
                EnvKey::optional("TOY_URL", "The root.")
                    .url()
                    .default("https://toy.example/"),
            )
            .key(
                EnvKey::optional("TOY_PORT", "A port.")
                    .number(0, 65_535)
                    .default(0),
            )
            .key(EnvKey::optional("TOY_ORG", "An organisation."))
            .key(
                EnvKey::optional("TOY_QUOTA", "A quota.")
                    .number(1, u64::MAX)
                    .default(2000),
            )
            .key(EnvKey::optional("TOY_BOLD", "Be bold.").switch())
            .option(RunOption::switch("republish", "Again.").flag("republish"))
            .option(RunOption::integer("jobs", "In parallel.", 4, 1, 32))
            .option(RunOption::text("dir", "Where."))
            .option(RunOption::text("split", "How.").default("none"))
    }

    fn read(settings: &Settings, key: &str, value: Option<&str>) -> Result<Option<String>, String> {
        let declared = settings.declared(key).map_err(|e| e.message.clone())?;
        settings
            .read(declared, value.map(str::to_string))
            .map_err(|e| e.message)
    }

    #[test]
    fn the_manifest_lists_come_from_the_one_declaration() {
        let manifest = toy().declare(Manifest::default());
        assert_eq!(manifest.required_env, ["TOY_ID", "TOY_SECRET"]);
        assert_eq!(
            manifest.optional_env,
            ["TOY_URL", "TOY_PORT", "TOY_ORG", "TOY_QUOTA", "TOY_BOLD"]
        );
        let help: Vec<_> = manifest.env_help.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(
            help,
            [
                "TOY_ID",
                "TOY_SECRET",
                "TOY_URL",
                "TOY_PORT",
                "TOY_ORG",
                "TOY_QUOTA",
                "TOY_BOLD"
            ]
        );
        assert!(manifest.env_help[1].secret);
        assert_eq!(manifest.env_help[3].default.as_deref(), Some("0"));
        assert_eq!(manifest.options.len(), 4);
        assert_eq!(manifest.options[3].default.as_deref(), Some("none"));
        assert_eq!(manifest.options[0].flag.as_deref(), Some("republish"));
        assert_eq!(
            manifest.options[1].kind,
            OptionKind::Integer { min: 1, max: 32 }
        );
    }

    #[test]
    fn reads_apply_defaults_ranges_and_schemes_and_name_the_key() {
        let s = toy();
        assert_eq!(
            read(&s, "TOY_URL", None).unwrap().as_deref(),
            Some("https://toy.example")
        );
        assert_eq!(
            read(&s, "TOY_URL", Some(" http://127.0.0.1:9/ "))
                .unwrap()
                .as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            read(&s, "TOY_URL", Some("toy.example")).unwrap_err(),
            "TOY_URL in .env must start with http:// or https://, not \"toy.example\""
        );
        assert_eq!(
            read(&s, "TOY_PORT", Some("")).unwrap().as_deref(),
            Some("0")
        );
        assert_eq!(
            read(&s, "TOY_PORT", Some("70000")).unwrap_err(),
            "TOY_PORT in .env must be a whole number from 0 to 65535, not \"70000\""
        );
        assert_eq!(
            read(&s, "TOY_QUOTA", Some("0")).unwrap_err(),
            "TOY_QUOTA in .env must be a whole number of at least 1, not \"0\""
        );
        assert_eq!(read(&s, "TOY_ORG", None).unwrap(), None);
        assert_eq!(
            read(&s, "TOY_ID", None).unwrap_err(),
            "TOY_ID is not set in .env"
        );
        assert_eq!(
            read(&s, "TOY_BOLD", None).unwrap().as_deref(),
            Some("false")
        );
        assert_eq!(
            read(&s, "TOY_BOLD", Some(" Yes ")).unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(
            read(&s, "TOY_BOLD", Some("0")).unwrap().as_deref(),
            Some("false")
        );
        assert_eq!(
            read(&s, "TOY_BOLD", Some("maybe")).unwrap_err(),
            "TOY_BOLD in .env must be true or false, not \"maybe\""
        );
        assert!(read(&s, "TOY_NEVER", None)
            .unwrap_err()
            .contains("never declared"));
    }

    #[test]
    fn options_read_back_typed_with_their_defaults() {
        let s = toy();
        let mut options = Map::new();
        assert!(!s.switch_option(&options, "republish"));
        assert_eq!(s.integer_option(&options, "jobs"), 4);
        assert_eq!(s.text_option(&options, "dir"), None);
        assert_eq!(s.text_option(&options, "split").as_deref(), Some("none"));
        options.insert("republish".into(), true.into());
        options.insert("jobs".into(), 99.into());
        options.insert("dir".into(), " /tmp/x ".into());
        assert!(s.switch_option(&options, "republish"));
        assert_eq!(s.integer_option(&options, "jobs"), 32);
        assert_eq!(s.text_option(&options, "dir").as_deref(), Some("/tmp/x"));
    }
}
