//! `.env` loading: the file's values, overridden by the process environment, and the rule that a plugin
//! sees only the keys it declared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the `.env` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The file named by `--env-file` does not exist or cannot be read.
    #[error("cannot read env file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `KEY=value`.
    #[error("{path}:{line}: malformed line {text:?} (expected KEY=value)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
}

/// The environment integrations are configured from.
#[derive(Debug, Clone, Default)]
pub struct EnvValues {
    file: BTreeMap<String, String>,
    /// Whether the process environment overrides the file (off in tests that need isolation).
    use_process_env: bool,
}

impl EnvValues {
    /// Reads `explicit` (which must exist) or else `./.env` (which may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<EnvValues, EnvError> {
        let (path, must_exist) = match explicit {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(".env"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if !must_exist && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(EnvValues {
                    use_process_env: true,
                    ..EnvValues::default()
                });
            }
            Err(source) => return Err(EnvError::Unreadable { path, source }),
        };
        let file = parse_env_text(&path, &text)?;
        Ok(EnvValues {
            file,
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
            use_process_env: false,
        }
    }

    /// The value of `key`: the process environment first, then the file; empty counts as missing.
    pub fn get(&self, key: &str) -> Option<String> {
        let from_process = if self.use_process_env {
            std::env::var(key).ok()
        } else {
            None
        };
        from_process
            .or_else(|| self.file.get(key).cloned())
            .filter(|value| !value.trim().is_empty())
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
}

fn parse_env_text(path: &Path, text: &str) -> Result<BTreeMap<String, String>, EnvError> {
    let mut values = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                values.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(bad, _)) => {
                let wanted = bad.trim();
                let line = text
                    .lines()
                    .position(|l| l.trim() == wanted || (!wanted.is_empty() && l.contains(wanted)))
                    .map_or(0, |i| i + 1);
                return Err(EnvError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    text: bad,
                });
            }
            Err(other) => {
                return Err(EnvError::Unreadable {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(other.to_string()),
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
    fn empty_values_count_as_missing() {
        let env = EnvValues::from_map(
            [("A".to_string(), " ".to_string()), ("B".into(), "b".into())].into(),
        );
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B").as_deref(), Some("b"));
        assert_eq!(env.restricted_to(["B", "C"]).len(), 1);
    }
}
