//! Transport types: how a sequence was captured (`Earth/Walk`, `Air/Paraglide`, ...).
//!
//! The tree is MTPDU's `transports/transport-methods.json` with two corrections and two additions:
//! - `Plane`, `Helicopter` and `Drone` sit under `Air` (the MTPW API guide's placement; MTPDU's file misfiled
//!   them under `Water`, so `Water-Plane` etc. found in old data are read as `Air/Plane`);
//! - the names MTPDU wrote from September to December 2020 (its `transports/transport-methods.json` before the
//!   `Earth` tree of 21 December 2020) are read and mapped onto today's tree ([`legacy_2020_mapping`]): parent
//!   `Powered` with Car, Electric Car, Electric Bicycle, Electric Scooter (→ `Earth`), Boat (→ `Water`),
//!   Snowmobile (→ `Snow`), Plane, Helicopter, Drone (→ `Air`, which Mapillary refuses); parent `Land` (→
//!   `Earth`); and the spelling `Hanglide` (→ `Air/Hang Glide`). `Powered` and `Land` alone stay legacy
//!   parents, so that old sequences still parse.
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
        children: &[],
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

/// Children of the 2020 parent `Powered` (trek-view/mtp-desktop-uploader `transports/transport-methods.json`,
/// September to December 2020), with the parent each has in today's tree (its `secondary_parent` there, with
/// `Land` become `Earth`).
const POWERED_2020: &[(&str, &str)] = &[
    ("Car", "Earth"),
    ("Electric Car", "Earth"),
    ("Electric Bicycle", "Earth"),
    ("Electric Scooter", "Earth"),
    ("Plane", "Air"),
    ("Helicopter", "Air"),
    ("Drone", "Air"),
    ("Boat", "Water"),
    ("Snowmobile", "Snow"),
];

/// Child spellings of MTPDU's September 2020 file that were renamed since: `Hanglide` is today's `Hang Glide`.
const RENAMED_2020: &[(&str, &str)] = &[("Hanglide", "Hang Glide")];

/// How a transport name MTPDU wrote in 2020 maps onto today's tree, as a sentence for `inspect`; `None` when
/// `parent`/`child` is not a 2020 name. The mapping itself is what [`TransportType::from_parts`] returns.
///
/// ```
/// use plugin_api::transport::legacy_2020_mapping;
/// let note = legacy_2020_mapping("Powered", Some("Drone")).unwrap();
/// assert!(note.contains("Air/Drone"), "{note}");
/// assert!(note.contains("Mapillary"), "{note}");
/// assert!(legacy_2020_mapping("Earth", Some("Walk")).is_none());
/// ```
pub fn legacy_2020_mapping(parent: &str, child: Option<&str>) -> Option<String> {
    let child = child.map(str::trim).filter(|c| !c.is_empty());
    let old = match child {
        Some(c) if !parent.trim().is_empty() => format!("{}-{}", parent.trim(), c),
        Some(c) => c.to_string(),
        None => parent.trim().to_string(),
    };
    let is_powered = normalise(parent) == "powered";
    let is_land = normalise(parent) == "land";
    let renamed = child.or(Some(parent)).is_some_and(|c| {
        RENAMED_2020
            .iter()
            .any(|(o, _)| normalise(o) == normalise(c))
    });
    if !(renamed || (child.is_some() && (is_powered || is_land))) {
        return None;
    }
    let mapped = TransportType::from_parts(parent, child)
        .or_else(|_| TransportType::parse(&old))
        .ok()?;
    let mut note = format!(
        "transport {old} is a name MTP Desktop Uploader used in 2020; read as today's {mapped}"
    );
    if mapped.is_air() {
        note.push_str(
            " (Air: Mapillary accepts no Air transport, so Mapillary skips this sequence; if it was not captured in the air, pass --transport with the right type)",
        );
    }
    Some(note)
}

fn map_2020(parent: &TransportParent, child: &str) -> Option<TransportType> {
    let n = normalise(child);
    let renamed = RENAMED_2020
        .iter()
        .find(|(old, _)| normalise(old) == n)
        .map(|(_, new)| *new);
    match parent.name {
        "Powered" => {
            let (name, today) = POWERED_2020.iter().find(|(c, _)| normalise(c) == n)?;
            let p = find_parent(today)?;
            Some(TransportType::of_child(p, find_child_in(p, name)?))
        }
        "Land" => {
            let earth = find_parent("Earth")?;
            Some(TransportType::of_child(earth, find_child_in(earth, child)?))
        }
        _ => {
            let new = renamed?;
            Some(TransportType::of_child(parent, find_child_in(parent, new)?))
        }
    }
}

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
            return map_2020(p, child).ok_or_else(unknown);
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
        if let Some((_, new)) = RENAMED_2020
            .iter()
            .find(|(old, _)| normalise(old) == normalise(name))
        {
            return Self::from_single_name(new);
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
        assert_eq!(p("Powered-Car"), "Earth/Car");
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
    fn mtpdu_2020_names_map_onto_todays_tree() {
        for (old, new) in [
            ("Powered-Car", "Earth/Car"),
            ("Powered-Electric Car", "Earth/Electric Car"),
            ("Powered-Electric Bicycle", "Earth/Electric Bicycle"),
            ("Powered-Electric Scooter", "Earth/Electric Scooter"),
            ("Powered-Boat", "Water/Boat"),
            ("Powered-Snowmobile", "Snow/Snowmobile"),
            ("Powered-Plane", "Air/Plane"),
            ("Powered-Helicopter", "Air/Helicopter"),
            ("Powered-Drone", "Air/Drone"),
            ("Air-Hanglide", "Air/Hang Glide"),
            ("Hanglide", "Air/Hang Glide"),
            ("Land-Wheelchair", "Earth/Wheelchair"),
        ] {
            assert_eq!(p(old), new, "{old}");
            let (parent, child) = old.split_once('-').unwrap_or((old, ""));
            let note = legacy_2020_mapping(parent, Some(child).filter(|c| !c.is_empty()))
                .unwrap_or_else(|| legacy_2020_mapping("", Some(old)).unwrap_or_default());
            assert!(note.contains(new), "{old}: {note}");
            assert_eq!(
                note.contains("Mapillary"),
                new.starts_with("Air/"),
                "{note}"
            );
        }
        assert_eq!(p("Powered-Walk"), "ERR Powered-Walk");
        assert_eq!(legacy_2020_mapping("Earth", Some("Car")), None);
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
