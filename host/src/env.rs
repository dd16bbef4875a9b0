//! `.env` loading: the file's values, overridden by the process environment, and the rule that a plugin
//! sees only the keys it declared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the `.env` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The file named by `--env-file` does not exist or cannot be read.
    #[error("cannot read env file {path}: {cause}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, not a separate cause, so it is printed once).
        cause: std::io::Error,
    },
    /// A line is not `KEY=value`.
    #[error("{path}:{line}: malformed line {text:?} ({why})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The environment integrations are configured from.
#[derive(Debug, Clone, Default)]
pub struct EnvValues {
    file: BTreeMap<String, String>,
    /// The directory of the `.env` file, against which its relative path values resolve.
    base_dir: Option<PathBuf>,
    /// Whether the process environment overrides the file (off in tests that need isolation).
    use_process_env: bool,
}

impl EnvValues {
    /// Reads `explicit` (which must exist) or else `./.env` (which may be absent: said at `-v`).
    pub fn load(explicit: Option<&Path>) -> Result<EnvValues, EnvError> {
        let (path, must_exist) = match explicit {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(".env"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if !must_exist && err.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    "no .env in the current directory ({}): integration keys come from the \
                     process environment only (pass --env-file to use another file)",
                    std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|_| ".".into())
                );
                return Ok(EnvValues {
                    use_process_env: true,
                    ..EnvValues::default()
                });
            }
            Err(cause) => return Err(EnvError::Unreadable { path, cause }),
        };
        let file = parse_env_text(&path, &text)?;
        let base_dir = std::path::absolute(&path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        Ok(EnvValues {
            file,
            base_dir,
            use_process_env: true,
        })
    }

    /// Only the values of the file at `path` (which must exist): the process environment is ignored, so
    /// keys set in the shell cannot point the run elsewhere (`mtp demo`, against the local fakes).
    pub fn load_file_only(path: &Path) -> Result<EnvValues, EnvError> {
        let mut values = EnvValues::load(Some(path))?;
        values.use_process_env = false;
        Ok(values)
    }

    /// Values from a map only (no file, no process environment): for tests and embedding.
    pub fn from_map(values: BTreeMap<String, String>) -> EnvValues {
        EnvValues {
            file: values,
            base_dir: None,
            use_process_env: false,
        }
    }

    fn raw(&self, key: &str) -> Option<(String, bool)> {
        let from_process = if self.use_process_env {
            std::env::var(key).ok()
        } else {
            None
        };
        from_process
            .map(|v| (v, false))
            .or_else(|| self.file.get(key).map(|v| (v.clone(), true)))
    }

    /// The value of `key`: the process environment first, then the file; empty counts as missing.
    pub fn get(&self, key: &str) -> Option<String> {
        self.raw(key)
            .map(|(value, _)| value)
            .filter(|value| !value.trim().is_empty())
    }

    /// `key` is set (in the process environment or the file) but empty or blank.
    pub fn is_empty(&self, key: &str) -> bool {
        self.raw(key)
            .is_some_and(|(value, _)| value.trim().is_empty())
    }

    /// The value of a key that holds a path: `~` and `~/...` are the home directory; a relative path
    /// from the `.env` file resolves against the file's directory (one from the process environment
    /// stays relative to the current directory, as the shell meant it).
    pub fn get_path(&self, key: &str) -> Option<String> {
        let (value, from_file) = self.raw(key).filter(|(v, _)| !v.trim().is_empty())?;
        let expanded = expand_home(&value);
        let path = Path::new(&expanded);
        if from_file && path.is_relative() {
            if let Some(base) = &self.base_dir {
                // `./archive` is `<dir>/archive`, not `<dir>/./archive` (`..` is kept: it may cross a
                // symbolic link).
                let joined: PathBuf = base
                    .join(path)
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                return Some(joined.display().to_string());
            }
        }
        Some(expanded)
    }

    /// The keys the `.env` file sets (not the process environment's), for pointing out misspellings.
    pub fn file_keys(&self) -> impl Iterator<Item = &str> {
        self.file.keys().map(String::as_str)
    }

    /// Only the given keys (those a plugin declared), with their values where present.
    pub fn restricted_to<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, String> {
        keys.into_iter()
            .filter_map(|key| self.get(key).map(|value| (key.to_string(), value)))
            .collect()
    }

    /// The keys `manifest` declared, with their values; those it marks as paths resolved
    /// ([`EnvValues::get_path`]).
    pub fn for_manifest(
        &self,
        manifest: &plugin_api::manifest::Manifest,
    ) -> BTreeMap<String, String> {
        manifest
            .declared_env()
            .filter_map(|key| {
                let is_path = manifest.env_help.iter().any(|h| h.key == key && h.path);
                let value = if is_path {
                    self.get_path(key)
                } else {
                    self.get(key)
                };
                value.map(|value| (key.to_string(), value))
            })
            .collect()
    }
}

/// `~` or `~/rest` as the home directory; anything else (`~user`, no home known) unchanged.
fn expand_home(value: &str) -> String {
    let rest = match value.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || rest.starts_with('\\') => rest,
        _ => return value.to_string(),
    };
    match dirs::home_dir() {
        Some(home) => format!("{}{rest}", home.display()),
        None => value.to_string(),
    }
}

/// The 1-based line of `text` at which `bad` (what dotenvy could not parse: a line, or for an
/// unterminated quote everything from that line to the end) starts.
fn line_of(text: &str, bad: &str) -> usize {
    let at = text
        .find(bad)
        .or_else(|| bad.lines().next().and_then(|first| text.find(first.trim())));
    at.map_or(0, |at| text[..at].matches('\n').count() + 1)
}

fn parse_env_text(path: &Path, text: &str) -> Result<BTreeMap<String, String>, EnvError> {
    // Windows editors begin UTF-8 files with a byte order mark: not part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                values.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(bad, _)) => {
                let line = line_of(text, &bad);
                let first = bad.lines().next().unwrap_or_default().to_string();
                let why = if bad.trim_end().contains('\n') {
                    "a quote is not closed: the value would run to the end of the file"
                } else {
                    "expected KEY=value"
                };
                return Err(EnvError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    text: first,
                    why: why.to_string(),
                });
            }
            Err(other) => {
                return Err(EnvError::Unreadable {
                    path: path.to_path_buf(),
                    cause: std::io::Error::other(other.to_string()),
                })
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_line_of_a_malformed_entry() {
        let text = "A=1\n# comment\nB=2\nthis is not an assignment\nC=3\n";
        let err = parse_env_text(Path::new("x/.env"), text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("x/.env:4: malformed line"), "{message}");
    }

    #[test]
    fn accepts_a_byte_order_mark() {
        let values = parse_env_text(Path::new(".env"), "\u{feff}A=1\nB=2\n").unwrap();
        assert_eq!(values.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn an_unterminated_quote_names_its_own_line() {
        let text = "A=1\nB=\"abc\nC=3\nD=4\n";
        let message = parse_env_text(Path::new(".env"), text)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(".env:2: malformed line \"B=\\\"abc\""),
            "{message}"
        );
        assert!(message.contains("quote is not closed"), "{message}");
        assert!(!message.contains("D=4"), "{message}");
    }

    #[test]
    fn path_values_resolve_against_the_file_and_home() {
        let env = EnvValues {
            file: [
                ("REL".to_string(), "out/archive".to_string()),
                ("HOME_REL".into(), "~/archive".into()),
                ("ABS".into(), "/srv/archive".into()),
                ("DOT".into(), "./archive".into()),
            ]
            .into(),
            base_dir: Some(PathBuf::from("/cfg")),
            use_process_env: false,
        };
        assert_eq!(env.get_path("REL").as_deref(), Some("/cfg/out/archive"));
        assert_eq!(env.get_path("DOT").as_deref(), Some("/cfg/archive"));
        assert_eq!(env.get_path("ABS").as_deref(), Some("/srv/archive"));
        let home = dirs::home_dir().unwrap();
        assert_eq!(
            env.get_path("HOME_REL"),
            Some(home.join("archive").display().to_string())
        );
    }

    #[test]
    fn empty_values_count_as_missing() {
        let env = EnvValues::from_map(
            [("A".to_string(), " ".to_string()), ("B".into(), "b".into())].into(),
        );
        assert_eq!(env.get("A"), None);
        assert!(env.is_empty("A") && !env.is_empty("B") && !env.is_empty("C"));
        assert_eq!(env.get("B").as_deref(), Some("b"));
        assert_eq!(env.restricted_to(["B", "C"]).len(), 1);
    }
}
