//! What an upload set is created with: how the server may split and thin the sequence, who sees it,
//! and its semantic tags.
//!
//! Since GeoVisio 2.10 an upload set that does not say otherwise gets the instance's defaults at dispatch
//! (`geovisio/utils/upload_set.py` `dispatch`: `default_split_distance`/`default_split_time`, then
//! `default_duplicate_distance`/`default_duplicate_rotation` from the `configurations` table, shown by
//! `GET /api/configuration` under `defaults`): one mtp sequence could become several collections and lose
//! its stationary frames (deleted as `capture_duplicate`). An mtp sequence is one sequence, so by default
//! we send `no_split` and `no_deduplication` (as panoramax_cli 1.4.1 sends `no_deduplication` always and
//! `no_split` unless given split values, `panoramax_cli/upload.py` `create_upload_set`); the user may ask
//! for the instance's rules or their own.

use plugin_api::prelude::*;
use plugin_api::serde_json::{json, Map, Value};

/// Option names, as `--option panoramax.<name>=...`.
pub const SPLIT: &str = "split";
/// See [`SPLIT`].
pub const DEDUP: &str = "dedup";
/// See [`SPLIT`].
pub const VISIBILITY: &str = "visibility";

/// The visibilities GeoVisio 2.15 knows (`geovisio/web/params.py` `Visibility`).
pub const VISIBILITIES: [&str; 3] = ["anyone", "owner-only", "logged-only"];

/// How the server may cut the sequence into collections.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    /// One collection (`no_split: true`), the default: an mtp sequence is one sequence.
    Never,
    /// The instance's defaults (nothing sent).
    Instance,
    /// Cut where two pictures are more than `seconds` or `meters` apart (`split_time`, `split_distance`).
    Custom {
        /// `split_time`, in seconds.
        seconds: u64,
        /// `split_distance`, in metres.
        meters: u64,
    },
}

/// Whether the server deletes near-identical consecutive pictures (`capture_duplicate`).
#[derive(Debug, Clone, PartialEq)]
pub enum Dedup {
    /// Keep every picture (`no_deduplication: true`), the default.
    Never,
    /// The instance's defaults (nothing sent).
    Instance,
    /// Delete a picture within `meters` and `degrees` of the one before (`duplicate_distance`,
    /// `duplicate_rotation`).
    Custom {
        /// `duplicate_distance`, in metres.
        meters: f64,
        /// `duplicate_rotation`, in degrees.
        degrees: u64,
    },
}

/// The upload set's settings for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOptions {
    /// Splitting.
    pub split: Split,
    /// Deduplication.
    pub dedup: Dedup,
    /// `visibility`, when the user chose one (else the account's, else the instance's default).
    pub visibility: Option<String>,
}

impl Default for SetOptions {
    fn default() -> Self {
        SetOptions {
            split: Split::Never,
            dedup: Dedup::Never,
            visibility: None,
        }
    }
}

fn two_numbers(name: &str, text: &str, units: (&str, &str)) -> Result<(f64, f64), PluginError> {
    let bad = || {
        let form = match name {
            SPLIT => "SECONDS,METERS (e.g. 300s,100m)",
            _ => "METERS,DEGREES (e.g. 1m,60deg)",
        };
        PluginError::invalid_input(format!(
            "option panoramax.{name}: expected none, instance or {form}, not {text:?}"
        ))
    };
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    let number = |s: &str, unit: &str| {
        let s = s.trim();
        s.strip_suffix(unit)
            .unwrap_or(s)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    Ok((
        number(a, units.0).ok_or_else(bad)?,
        number(b, units.1).ok_or_else(bad)?,
    ))
}

impl SetOptions {
    /// Reads `split`, `dedup` and `visibility` from the run's options; absent ones keep the defaults.
    pub fn from_options(options: &Map<String, Value>) -> Result<SetOptions, PluginError> {
        // The declared defaults apply (`none` for split and dedup, nothing for visibility).
        let settings = crate::config::settings();
        let (split, dedup, visibility) = (
            settings.text_option(options, SPLIT),
            settings.text_option(options, DEDUP),
            settings.text_option(options, VISIBILITY),
        );
        let split = match split.as_deref() {
            None | Some("none") => Split::Never,
            Some("instance") => Split::Instance,
            Some(other) => {
                let (s, m) = two_numbers(SPLIT, other, ("s", "m"))?;
                Split::Custom {
                    seconds: s.round() as u64,
                    meters: m.round() as u64,
                }
            }
        };
        let dedup = match dedup.as_deref() {
            None | Some("none") => Dedup::Never,
            Some("instance") => Dedup::Instance,
            Some(other) => {
                let (m, d) = two_numbers(DEDUP, other, ("m", "deg"))?;
                Dedup::Custom {
                    meters: m,
                    degrees: d.round() as u64,
                }
            }
        };
        let visibility = match visibility.as_deref() {
            None | Some("") => None,
            Some(v) if VISIBILITIES.contains(&v) => Some(v.to_string()),
            Some(v) => {
                return Err(PluginError::invalid_input(format!(
                    "option panoramax.{VISIBILITY}: expected one of {}, not {v:?}",
                    VISIBILITIES.join(", ")
                )))
            }
        };
        Ok(SetOptions {
            split,
            dedup,
            visibility,
        })
    }

    /// Adds the creation fields these settings mean to `body` (`UploadSetCreationParameter`).
    pub fn apply(&self, body: &mut Map<String, Value>) {
        match self.split {
            Split::Never => {
                body.insert("no_split".into(), true.into());
            }
            Split::Instance => {}
            Split::Custom { seconds, meters } => {
                body.insert("split_time".into(), seconds.into());
                body.insert("split_distance".into(), meters.into());
            }
        }
        match self.dedup {
            Dedup::Never => {
                body.insert("no_deduplication".into(), true.into());
            }
            Dedup::Instance => {}
            Dedup::Custom { meters, degrees } => {
                body.insert("duplicate_distance".into(), meters.into());
                body.insert("duplicate_rotation".into(), degrees.into());
            }
        }
        if let Some(v) = &self.visibility {
            body.insert("visibility".into(), v.clone().into());
        }
    }

    /// What the server will do with the sequence, in words; `defaults` is the instance's
    /// `GET /api/configuration` `defaults` when known.
    pub fn describe(&self, defaults: Option<&InstanceDefaults>) -> String {
        let split = match (&self.split, defaults) {
            (Split::Never, _) => "one collection (no split)".to_string(),
            (Split::Custom { seconds, meters }, _) => {
                format!("split where pictures are over {seconds} s or {meters} m apart")
            }
            (Split::Instance, Some(d)) => match (d.split_time, d.split_distance) {
                (Some(t), Some(m)) => {
                    format!("split at the instance's {t} s / {m} m")
                }
                _ => "one collection (the instance sets no split)".to_string(),
            },
            (Split::Instance, None) => "split by the instance's rule".to_string(),
        };
        let dedup = match (&self.dedup, defaults) {
            (Dedup::Never, _) => "every picture kept (no deduplication)".to_string(),
            (Dedup::Custom { meters, degrees }, _) => {
                format!("pictures within {meters} m and {degrees}° of the previous deleted")
            }
            (Dedup::Instance, Some(d)) => match (d.duplicate_distance, d.duplicate_rotation) {
                (Some(m), Some(r)) => {
                    format!("pictures within the instance's {m} m and {r}° of the previous deleted")
                }
                _ => "every picture kept (the instance sets no deduplication)".to_string(),
            },
            (Dedup::Instance, None) => "duplicates deleted by the instance's rule".to_string(),
        };
        let visibility = self
            .visibility
            .as_deref()
            .map(|v| format!(", visible to {v}"))
            .unwrap_or_default();
        format!("{split}, {dedup}{visibility}")
    }
}

/// The instance's defaults for upload sets that set none (`GET /api/configuration` `defaults`, GeoVisio
/// 2.10+: `geovisio/web/configuration.py` `Config`). Absent on older instances.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct InstanceDefaults {
    /// Metres.
    #[serde(default)]
    pub split_distance: Option<f64>,
    /// Seconds.
    #[serde(default)]
    pub split_time: Option<f64>,
    /// Metres.
    #[serde(default)]
    pub duplicate_distance: Option<f64>,
    /// Degrees.
    #[serde(default)]
    pub duplicate_rotation: Option<f64>,
}

/// The sequence's tags written `key=value`, as GeoVisio semantic tags (`{key, value}`, split at the last
/// `=` as panoramax_cli's `--semantics` does, `panoramax_cli/model.py` `get_semantics_parsed`), and the
/// plain tags, which have no key and are not sent.
pub fn semantics(tags: &[String]) -> (Vec<Value>, Vec<String>) {
    let mut semantic = Vec::new();
    let mut plain = Vec::new();
    for tag in tags {
        match tag.rsplit_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                semantic.push(json!({"key": k.trim(), "value": v.trim()}))
            }
            _ => plain.push(tag.clone()),
        }
    }
    (semantic, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect()
    }

    fn body(o: &SetOptions) -> Value {
        let mut body = Map::new();
        o.apply(&mut body);
        Value::Object(body)
    }

    #[test]
    fn by_default_one_collection_and_every_picture_kept() {
        let o = SetOptions::from_options(&Map::new()).unwrap();
        assert_eq!(
            body(&o),
            json!({"no_split": true, "no_deduplication": true})
        );
    }

    #[test]
    fn instance_rules_send_nothing_and_custom_ones_send_their_values() {
        let o = SetOptions::from_options(&options(&[
            ("split", "instance"),
            ("dedup", "0.5m,30deg"),
            ("visibility", "owner-only"),
        ]))
        .unwrap();
        assert_eq!(
            body(&o),
            json!({"duplicate_distance": 0.5, "duplicate_rotation": 30, "visibility": "owner-only"})
        );
        let o = SetOptions::from_options(&options(&[("split", "60s,50m")])).unwrap();
        assert_eq!(
            body(&o),
            json!({"split_time": 60, "split_distance": 50, "no_deduplication": true})
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        let err = SetOptions::from_options(&options(&[("split", "5 minutes")])).unwrap_err();
        assert!(err.message.contains("panoramax.split"), "{}", err.message);
        let err = SetOptions::from_options(&options(&[("visibility", "friends")])).unwrap_err();
        assert!(err.message.contains("owner-only"), "{}", err.message);
    }

    #[test]
    fn describes_what_the_instance_will_do() {
        let defaults = InstanceDefaults {
            split_distance: Some(100.0),
            split_time: Some(300.0),
            duplicate_distance: Some(1.0),
            duplicate_rotation: Some(60.0),
        };
        let o = SetOptions {
            split: Split::Instance,
            dedup: Dedup::Instance,
            visibility: None,
        };
        assert_eq!(
            o.describe(Some(&defaults)),
            "split at the instance's 300 s / 100 m, pictures within the instance's 1 m and 60° of the previous deleted"
        );
        assert_eq!(
            SetOptions::default().describe(Some(&defaults)),
            "one collection (no split), every picture kept (no deduplication)"
        );
    }

    #[test]
    fn only_key_value_tags_become_semantics() {
        let (semantic, plain) = semantics(&[
            "surface=asphalt".into(),
            "canal".into(),
            "osm|name=A=B".into(),
        ]);
        assert_eq!(
            semantic,
            vec![
                json!({"key": "surface", "value": "asphalt"}),
                json!({"key": "osm|name=A", "value": "B"})
            ]
        );
        assert_eq!(plain, vec!["canal".to_string()]);
    }
}
