//! Transport types: how a sequence was captured (`Earth/Walk`, `Air/Paraglide`, ...).
//!
//! The tree is MTPDU's `transports/transport-methods.json` with two corrections and two additions:
//! - `Plane`, `Helicopter` and `Drone` sit under `Air` (the MTPW API guide's placement; MTPDU's file misfiled
//!   them under `Water`, so `Water-Plane` etc. found in old data are read as `Air/Plane`);
//! - the legacy parents `Powered` (children `Car`, `Electric Car`, as in MTPDU's developer docs) and `Land`
//!   (parent only; no children are documented for it) are kept so that old sequences still parse. A child name
//!   shared with a current parent (`Car`) resolves to the current parent (`Earth/Car`); `Land-<child>` with a
//!   child of `Earth` resolves to `Earth/<child>` (MTPDU's docs use `land-hike` as the format example).
//!
//! ```
//! use plugin_api::transport::TransportType;
//!
//! let t = TransportType::parse("paraglide")?;
//! assert_eq!(t.to_string(), "Air/Paraglide");
//! assert_eq!(t.mtpdu_string(), "Air-Paraglide");
//! assert_eq!(t.name(), "Paraglide");
//! assert!(t.is_air());
//! assert_eq!(TransportType::parse("earth/walk")?, TransportType::parse("Walk")?);
//! assert!(TransportType::parse("teleport").is_err());
//! # Ok::<(), plugin_api::transport::UnknownTransport>(())
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// One parent transport type and its children, as listed in [`TRANSPORT_TREE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportParent {
    /// Canonical name of the parent (`Earth`).
    pub name: &'static str,
    /// Canonical names of its children (`Walk`, `Bicycle`, ...); empty for a parent-only type.
    pub children: &'static [&'static str],
    /// `true` for parents only found in older MTPDU data (`Powered`, `Land`).
    pub legacy: bool,
}

/// Every known transport type, current parents first, then legacy ones.
///
/// Order matters: a bare child name found under several parents resolves to the first.
pub const TRANSPORT_TREE: &[TransportParent] = &[
    TransportParent {
        name: "Earth",
        children: &[
            "Bicycle",
            "Walk",
            "Scooter",
            "Skateboard",
            "Rollerskate",
            "Rock Climbing",
            "Wheelchair",
            "Car",
            "Electric Car",
            "Electric Bicycle",
            "Electric Scooter",
        ],
        legacy: false,
    },
    TransportParent {
        name: "Snow",
        children: &["Ski", "Snowboard", "Snowshoe", "Ice Skating", "Snowmobile"],
        legacy: false,
    },
    TransportParent {
        name: "Water",
        children: &[
            "Swim",
            "Paddleboard",
            "Scuba Dive",
            "Surf",
            "Windsurf",
            "Kiteboard",
            "Canoe",
            "Freedive",
            "Kayak",
            "Row",
            "Sail",
            "Boat",
        ],
        legacy: false,
    },
    TransportParent {
        name: "Air",
        children: &[
            "Parachute",
            "Paraglide",
            "Hang Glide",
            "Wingsuit",
            "BASE Jump",
            "Glider",
            "Plane",
            "Helicopter",
            "Drone",
        ],
        legacy: false,
    },
    TransportParent {
        name: "Other",
        children: &["Unlisted"],
        legacy: false,
    },
    TransportParent {
        name: "Powered",
        children: &["Car", "Electric Car"],
        legacy: true,
    },
    TransportParent {
        name: "Land",
        children: &[],
        legacy: true,
    },
];

/// Children MTPDU's own transport file filed under `Water` although they belong under `Air`.
const MTPDU_MISFILED_UNDER_WATER: &[&str] = &["Plane", "Helicopter", "Drone"];

/// A transport type: a parent (`Air`) and optionally one of its children (`Paraglide`).
///
/// Serialised as `{"parent": "Air", "child": "Paraglide"}`. Deserialisation does not check the names against
/// [`TRANSPORT_TREE`], so a document written by a newer version with new types still parses; use
/// [`TransportType::parse`] or [`TransportType::from_parts`] for user input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransportType {
    /// Canonical parent name (`Air`).
    pub parent: String,
    /// Canonical child name (`Paraglide`), if the type is more specific than its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
}

/// The error returned when a transport name matches nothing in [`TRANSPORT_TREE`].
///
/// Its `Display` lists every valid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTransport {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for UnknownTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown transport type {:?}; give a child (`Walk`), a parent (`Air`) or `Parent/Child` (`Earth/Walk`), \
             case-insensitive. Valid values: ",
            self.input
        )?;
        let mut first = true;
        for parent in TRANSPORT_TREE.iter().filter(|p| !p.legacy) {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{}", parent.name)?;
            if !parent.children.is_empty() {
                write!(f, " ({})", parent.children.join(", "))?;
            }
        }
        let legacy: Vec<&str> = TRANSPORT_TREE
            .iter()
            .filter(|p| p.legacy)
            .map(|p| p.name)
            .collect();
        if !legacy.is_empty() {
            write!(f, "; legacy: {}", legacy.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownTransport {}

/// Lower-cases and folds `_`, `-` and runs of whitespace into single spaces, so that `rock-climbing`,
/// `Rock_Climbing` and `rock  climbing` all compare equal to `Rock Climbing`.
fn normalise(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

fn find_parent(name: &str) -> Option<&'static TransportParent> {
    let n = normalise(name);
    TRANSPORT_TREE.iter().find(|p| normalise(p.name) == n)
}

fn find_child_in(parent: &TransportParent, name: &str) -> Option<&'static str> {
    let n = normalise(name);
    parent.children.iter().copied().find(|c| normalise(c) == n)
}

impl TransportType {
    /// Parses a transport name, case-insensitively: a child alone (`Walk`, `paraglide`, `rock climbing`), a
    /// parent alone (`Air`), or `Parent/Child` / `Parent-Child` (`Earth/Walk`, `Air-Paraglide`).
    ///
    /// ```
    /// use plugin_api::transport::TransportType;
    /// let t = TransportType::parse("Air-Paraglide")?;
    /// assert_eq!((t.parent(), t.child()), ("Air", Some("Paraglide")));
    /// assert_eq!(TransportType::parse("air")?.child(), None);
    /// # Ok::<(), plugin_api::transport::UnknownTransport>(())
    /// ```
    pub fn parse(input: &str) -> Result<TransportType, UnknownTransport> {
        let unknown = || UnknownTransport {
            input: input.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(unknown());
        }
        // The whole text first: child names may themselves be written with '-' (`rock-climbing`).
        if let Some(t) = Self::from_single_name(trimmed) {
            return Ok(t);
        }
        let split = trimmed
            .split_once('/')
            .or_else(|| trimmed.split_once('-'))
            .ok_or_else(unknown)?;
        Self::from_parts(split.0, Some(split.1)).map_err(|_| unknown())
    }

    /// Builds a transport type from a separate parent and child, as MTPDU's sequence log stores them
    /// (`uploader_transport_type`, `uploader_transport_method`). An empty child means the parent alone, an empty
    /// parent means the child alone; MTPDU's known misfilings (`Water-Plane`, `Land-Walk`) are corrected as the
    /// module docs describe. Anything else must match the tree.
    ///
    /// ```
    /// use plugin_api::transport::TransportType;
    /// let t = TransportType::from_parts("Snow", Some("Snowboard"))?;
    /// assert_eq!(t.to_string(), "Snow/Snowboard");
    /// // MTPDU filed Plane under Water; it belongs under Air.
    /// assert_eq!(TransportType::from_parts("Water", Some("Plane"))?.to_string(), "Air/Plane");
    /// # Ok::<(), plugin_api::transport::UnknownTransport>(())
    /// ```
    pub fn from_parts(
        parent: &str,
        child: Option<&str>,
    ) -> Result<TransportType, UnknownTransport> {
        let child = child.map(str::trim).filter(|c| !c.is_empty());
        let unknown = || UnknownTransport {
            input: match child {
                Some(c) => format!("{}/{}", parent.trim(), c),
                None => parent.trim().to_string(),
            },
        };
        let parent_entry = find_parent(parent);
        let Some(child) = child else {
            return parent_entry.map(Self::of_parent).ok_or_else(unknown);
        };
        if let Some(p) = parent_entry {
            if let Some(c) = find_child_in(p, child) {
                return Ok(Self::of_child(p, c));
            }
            if p.name == "Water" {
                if let Some(c) = MTPDU_MISFILED_UNDER_WATER
                    .iter()
                    .find(|c| normalise(c) == normalise(child))
                {
                    return Self::from_single_name(c).ok_or_else(unknown);
                }
            }
            if p.name == "Land" {
                if let Some(earth) = find_parent("Earth") {
                    if let Some(c) = find_child_in(earth, child) {
                        return Ok(Self::of_child(earth, c));
                    }
                }
            }
            return Err(unknown());
        }
        if parent.trim().is_empty() {
            return Self::from_single_name(child).ok_or_else(unknown);
        }
        Err(unknown())
    }

    fn of_parent(p: &TransportParent) -> TransportType {
        TransportType {
            parent: p.name.to_string(),
            child: None,
        }
    }

    fn of_child(p: &TransportParent, child: &str) -> TransportType {
        TransportType {
            parent: p.name.to_string(),
            child: Some(child.to_string()),
        }
    }

    fn from_single_name(name: &str) -> Option<TransportType> {
        for p in TRANSPORT_TREE {
            if let Some(c) = find_child_in(p, name) {
                return Some(Self::of_child(p, c));
            }
        }
        find_parent(name).map(Self::of_parent)
    }

    /// Every known transport type: each parent alone, followed by each of its children, in
    /// [`TRANSPORT_TREE`] order (legacy parents last).
    pub fn all() -> Vec<TransportType> {
        let mut out = Vec::new();
        for p in TRANSPORT_TREE {
            out.push(Self::of_parent(p));
            out.extend(p.children.iter().map(|c| Self::of_child(p, c)));
        }
        out
    }

    /// The parent name (`Air`).
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// The child name (`Paraglide`), if any.
    pub fn child(&self) -> Option<&str> {
        self.child.as_deref()
    }

    /// The most specific name: the child if there is one, else the parent. This is the value MTPW's
    /// `transport_type` form field receives.
    pub fn name(&self) -> &str {
        self.child.as_deref().unwrap_or(&self.parent)
    }

    /// `true` for `Air` and all its children (Mapillary accepts none of them).
    pub fn is_air(&self) -> bool {
        self.parent.eq_ignore_ascii_case("Air")
    }

    /// `true` if the parent is one of the legacy parents (`Powered`, `Land`).
    pub fn is_legacy(&self) -> bool {
        find_parent(&self.parent).is_some_and(|p| p.legacy)
    }

    /// MTPDU's `MTPSequenceTransport` form: `Parent-Child` (`Air-Paraglide`), or the parent alone.
    pub fn mtpdu_string(&self) -> String {
        match &self.child {
            Some(c) => format!("{}-{}", self.parent, c),
            None => self.parent.clone(),
        }
    }
}

impl fmt::Display for TransportType {
    /// `Parent/Child` (`Air/Paraglide`), or the parent alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.child {
            Some(c) => write!(f, "{}/{}", self.parent, c),
            None => f.write_str(&self.parent),
        }
    }
}

impl std::str::FromStr for TransportType {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransportType::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        TransportType::parse(s)
            .map(|t| t.to_string())
            .unwrap_or_else(|e| format!("ERR {}", e.input))
    }

    #[test]
    fn spellings() {
        assert_eq!(p("Walk"), "Earth/Walk");
        assert_eq!(p("walk"), "Earth/Walk");
        assert_eq!(p("  WALK "), "Earth/Walk");
        assert_eq!(p("paraglide"), "Air/Paraglide");
        assert_eq!(p("rock climbing"), "Earth/Rock Climbing");
        assert_eq!(p("rock-climbing"), "Earth/Rock Climbing");
        assert_eq!(p("Rock_Climbing"), "Earth/Rock Climbing");
        assert_eq!(p("Air"), "Air");
        assert_eq!(p("earth/walk"), "Earth/Walk");
        assert_eq!(p("Earth/Walk"), "Earth/Walk");
        assert_eq!(p("Air-Paraglide"), "Air/Paraglide");
        assert_eq!(p("Earth-Rock Climbing"), "Earth/Rock Climbing");
        assert_eq!(p("earth / rock-climbing"), "Earth/Rock Climbing");
        assert_eq!(p("base jump"), "Air/BASE Jump");
        assert_eq!(p("Drone"), "Air/Drone");
        assert_eq!(p("Water-Plane"), "Air/Plane");
        assert_eq!(p("Car"), "Earth/Car");
        assert_eq!(p("Powered-Car"), "Powered/Car");
        assert_eq!(p("Powered"), "Powered");
        assert_eq!(p("Land"), "Land");
        assert_eq!(p("Land-Walk"), "Earth/Walk");
        assert_eq!(p("Other-Unlisted"), "Other/Unlisted");
        assert_eq!(p("Earth/Paraglide"), "ERR Earth/Paraglide");
        assert_eq!(p("teleport"), "ERR teleport");
        assert_eq!(p(""), "ERR ");
        assert_eq!(p("/"), "ERR /");
    }

    #[test]
    fn accessors() {
        let t = TransportType::parse("Air-Hang Glide").unwrap();
        assert_eq!(t.parent(), "Air");
        assert_eq!(t.child(), Some("Hang Glide"));
        assert_eq!(t.name(), "Hang Glide");
        assert_eq!(t.mtpdu_string(), "Air-Hang Glide");
        assert!(t.is_air());
        assert!(!t.is_legacy());
        let w = TransportType::parse("Water").unwrap();
        assert_eq!(w.name(), "Water");
        assert_eq!(w.mtpdu_string(), "Water");
        assert!(!w.is_air());
        assert!(TransportType::parse("powered").unwrap().is_legacy());
    }

    #[test]
    fn all_round_trips_through_every_spelling() {
        let all = TransportType::all();
        assert!(all.len() > 40);
        for t in &all {
            // Bare child names shared with an earlier parent resolve to that parent; every other spelling is exact.
            assert_eq!(&TransportType::parse(&t.to_string()).unwrap(), t, "{t}");
            assert_eq!(&TransportType::parse(&t.mtpdu_string()).unwrap(), t, "{t}");
            assert_eq!(
                &TransportType::parse(&t.to_string().to_uppercase()).unwrap(),
                t,
                "{t}"
            );
        }
    }

    #[test]
    fn error_lists_valid_values() {
        let e = TransportType::parse("hovercraft").unwrap_err().to_string();
        assert!(e.contains("\"hovercraft\""), "{e}");
        assert!(e.contains("Earth (Bicycle, Walk"), "{e}");
        assert!(e.contains("Air (Parachute"), "{e}");
        assert!(e.contains("Drone"), "{e}");
        assert!(e.contains("legacy: Powered, Land"), "{e}");
    }

    #[test]
    fn serde_shape() {
        let t = TransportType::parse("Air/Paraglide").unwrap();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, r#"{"parent":"Air","child":"Paraglide"}"#);
        let back: TransportType = serde_json::from_str(r#"{"parent":"Air"}"#).unwrap();
        assert_eq!(back.child, None);
        assert_eq!(serde_json::from_str::<TransportType>(&j).unwrap(), t);
    }
}
