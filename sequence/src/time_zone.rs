//! The UTC offset of a camera clock set to local time, from the IANA time zone at the photo's position on
//! its date: what Panoramax's reader does for offset-less camera times (geopic-tag-reader 1.10.1,
//! `geopic_tag_reader/reader.py`, `decodeDateTimeOriginal`: `timezonefinder` for the zone, `pytz` for its
//! offset, daylight saving included). Offline: the zone boundaries are compiled in (`tzf-rs`, data from
//! timezone-boundary-builder) and the zone rules too (`chrono-tz`, the IANA database).

use std::sync::OnceLock;

use chrono::{Offset, TimeZone};
use chrono_tz::{OffsetComponents, Tz};

/// The offset a zone had at a wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZoneOffset {
    /// IANA name (`Europe/Paris`).
    pub zone: &'static str,
    /// Minutes east of UTC, daylight saving included.
    pub minutes: i32,
    /// Whether daylight saving (summer time) was in force.
    pub summer: bool,
}

fn finder() -> &'static tzf_rs::EmbeddedFinder {
    // Opening the embedded data validates it once (a few ms); lookups are then microseconds.
    static FINDER: OnceLock<tzf_rs::EmbeddedFinder> = OnceLock::new();
    FINDER.get_or_init(tzf_rs::EmbeddedFinder::new)
}

/// The zone at (`lat`, `lon`) and its offset at the wall-clock time `wall_ms` (local time written as if it
/// were UTC milliseconds); `None` where no zone is known.
///
/// A wall time that occurs twice (the hour after summer time ends) gets the standard-time offset, as
/// `pytz.localize` does by default (`is_dst=False`) in geopic-tag-reader; one that never occurs (the hour
/// skipped when summer time starts) gets the offset in force just before the gap.
pub(crate) fn offset_at(lat: f64, lon: f64, wall_ms: i64) -> Option<ZoneOffset> {
    if !(lat.is_finite() && lon.is_finite()) {
        return None;
    }
    let name = finder().get_tz_name(lon, lat);
    let tz: Tz = name.parse().ok()?;
    let wall = chrono::DateTime::from_timestamp_millis(wall_ms)?.naive_utc();
    let offset = match tz.from_local_datetime(&wall) {
        chrono::LocalResult::Single(t) => *t.offset(),
        chrono::LocalResult::Ambiguous(_, standard) => *standard.offset(),
        chrono::LocalResult::None => {
            tz.offset_from_utc_datetime(&(wall - chrono::Duration::hours(3)))
        }
    };
    Some(ZoneOffset {
        zone: tz.name(),
        minutes: offset.fix().local_minus_utc() / 60,
        summer: !offset.dst_offset().is_zero(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn zones_and_summer_time_from_the_position_and_date() {
        // Paris in July (summer time) and January.
        let p = offset_at(48.8566, 2.3522, wall("2024-07-01 12:00:00")).unwrap();
        assert_eq!((p.zone, p.minutes, p.summer), ("Europe/Paris", 120, true));
        let p = offset_at(48.8566, 2.3522, wall("2024-01-15 12:00:00")).unwrap();
        assert_eq!((p.minutes, p.summer), (60, false));
        // Southern hemisphere: Sydney's summer is in January.
        let p = offset_at(-33.8688, 151.2093, wall("2024-01-15 12:00:00")).unwrap();
        assert_eq!(
            (p.zone, p.minutes, p.summer),
            ("Australia/Sydney", 660, true)
        );
        // Half-hour zones.
        assert_eq!(
            offset_at(28.6139, 77.2090, wall("2024-03-01 09:00:00"))
                .unwrap()
                .minutes,
            330
        );
        // The repeated hour at the end of summer time: standard time, as pytz's default.
        assert_eq!(
            offset_at(48.8566, 2.3522, wall("2024-10-27 02:30:00"))
                .unwrap()
                .minutes,
            60
        );
        // The skipped hour at its start: the offset before the gap.
        assert_eq!(
            offset_at(48.8566, 2.3522, wall("2024-03-31 02:30:00"))
                .unwrap()
                .minutes,
            60
        );
        assert_eq!(offset_at(f64::NAN, 0.0, 0), None);
    }
}
