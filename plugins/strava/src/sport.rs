//! The activity's `sport_type`, from the sequence's transport.
//!
//! The values are Strava's `SportType` enumeration (the API's swagger document, as generated into
//! stravalib's `strava_model.py`). A transport with no counterpart there (a car, a boat, anything in the
//! air) is left to Strava, which then uses the athlete's default type; the outcome says so. The table is
//! repeated, with its reasons, in `docs/providers/strava.md`.

use plugin_api::transport::TransportType;

/// `(transport child, sport_type)`; a child not listed has no Strava sport type.
pub const SPORT_TYPES: &[(&str, &str)] = &[
    ("Bicycle", "Ride"),
    ("Electric Bicycle", "EBikeRide"),
    ("Walk", "Walk"),
    ("Skateboard", "Skateboard"),
    ("Rollerskate", "InlineSkate"),
    ("Rock Climbing", "RockClimbing"),
    ("Wheelchair", "Wheelchair"),
    ("Ski", "AlpineSki"),
    ("Snowboard", "Snowboard"),
    ("Snowshoe", "Snowshoe"),
    ("Ice Skating", "IceSkate"),
    ("Swim", "Swim"),
    ("Paddleboard", "StandUpPaddling"),
    ("Surf", "Surfing"),
    ("Windsurf", "Windsurf"),
    ("Kiteboard", "Kitesurf"),
    ("Canoe", "Canoeing"),
    ("Kayak", "Kayaking"),
    ("Row", "Rowing"),
    ("Sail", "Sail"),
];

/// What the activity's type becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sport {
    /// Set to this `sport_type`.
    Mapped(&'static str),
    /// Left to Strava; the sentence says why.
    Unmapped(String),
}

/// The sport type for `transport`.
pub fn for_transport(transport: Option<&TransportType>) -> Sport {
    let Some(transport) = transport else {
        return Sport::Unmapped(
            "the sequence has no transport type, so Strava's default type was kept".into(),
        );
    };
    match transport
        .child()
        .and_then(|child| SPORT_TYPES.iter().find(|(c, _)| *c == child))
    {
        Some((_, sport)) => Sport::Mapped(sport),
        None => Sport::Unmapped(format!(
            "Strava has no sport type for {transport}, so its default type was kept"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_transports_strava_knows() {
        let t = |s: &str| TransportType::parse(s).unwrap();
        assert_eq!(for_transport(Some(&t("Walk"))), Sport::Mapped("Walk"));
        assert_eq!(for_transport(Some(&t("Bicycle"))), Sport::Mapped("Ride"));
        assert_eq!(for_transport(Some(&t("Kayak"))), Sport::Mapped("Kayaking"));
        assert!(
            matches!(for_transport(Some(&t("Car"))), Sport::Unmapped(why) if why.contains("Earth/Car"))
        );
        assert!(matches!(
            for_transport(Some(&t("Earth"))),
            Sport::Unmapped(_)
        ));
        assert!(matches!(for_transport(None), Sport::Unmapped(_)));
        // Every child named in the table exists in the transport tree.
        for (child, _) in SPORT_TYPES {
            assert!(TransportType::parse(child).is_ok(), "{child}");
        }
    }
}
