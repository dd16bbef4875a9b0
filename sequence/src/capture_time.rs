//! The capture time of one image from its EXIF and XMP, by the policy in `docs/capture-time.md`:
//!
//! 1. the GPS date and time (`GPSDateStamp` + `GPSTimeStamp`, fractional seconds kept; else XMP
//!    `exif:GPSTimeStamp`), when plausible: it is UTC by definition, and both the official Mapillary client
//!    and Panoramax prefer it;
//! 2. else the local time `DateTimeOriginal` (+ `SubSecTimeOriginal`), then `DateTimeDigitized`, then XMP
//!    `exif:DateTimeOriginal`/`exif:DateTimeDigitized`, at the offset the file records
//!    (`OffsetTimeOriginal`, or the offset of XMP's `exif:DateTimeOriginal` when it shows the same clock
//!    time), else at the offset the user gave (`--time-offset`, `time_offset` in `sequence.toml`), else as
//!    UTC with a [`ProblemKind::LocalTimeWithoutOffset`] problem naming that fix.
//!
//! When both are there and the local time differs from the GPS time by what looks like a UTC offset (a
//! multiple of 15 minutes, up to 14 h, within [`OFFSET_TOLERANCE_MS`]), the GPS time is used and a
//! [`ProblemKind::ClockDiffersFromGps`] problem asks the user to confirm that offset.

use std::fmt;
use std::str::FromStr;

use exif::{Exif, In, Tag, Value};
use serde::Serialize;

use crate::exif_values::{ascii, f64s};
use crate::format_utc;
use crate::model::ProblemKind;
use crate::time_zone::{self, ZoneOffset};
use crate::xmp::{self, Xmp};

/// How far from a multiple of 15 minutes the difference between the local and the GPS time may be and
/// still count as a UTC offset: a GPS time stamp is the time of the last fix, often a second or two before
/// the shot (up to a minute or two when the fix is poor).
pub const OFFSET_TOLERANCE_MS: i64 = 120_000;

/// A fixed offset from UTC, `-12:00` to `+14:00` (the range of real time zones), as given with
/// `--time-offset` or `time_offset` in `sequence.toml`. Parses `+02:00`, `-0530`, `+2`, `5`, `Z`, `UTC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffset {
    minutes: i16,
}

impl TimeOffset {
    /// The offset of `minutes` east of UTC, if it is within `-12:00..=+14:00`.
    pub fn from_minutes(minutes: i32) -> Option<TimeOffset> {
        (-12 * 60..=14 * 60)
            .contains(&minutes)
            .then_some(TimeOffset {
                minutes: minutes as i16,
            })
    }

    /// Minutes east of UTC.
    pub fn minutes(self) -> i32 {
        i32::from(self.minutes)
    }
}

impl fmt::Display for TimeOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minutes < 0 { '-' } else { '+' };
        let a = self.minutes.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", a / 60, a % 60)
    }
}

impl FromStr for TimeOffset {
    type Err = String;

    fn from_str(s: &str) -> Result<TimeOffset, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "{s:?} is not a UTC offset: write it as +02:00, -05:30 or UTC (zone names such as \
                 Europe/Paris are not accepted: their offset changes with daylight saving time)"
            )
        };
        if ["z", "utc", "gmt"].contains(&t.to_ascii_lowercase().as_str()) {
            return Ok(TimeOffset { minutes: 0 });
        }
        let (sign, body) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => (1, t),
        };
        if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == ':') {
            return Err(bad());
        }
        let (h, m) = match body.split_once(':') {
            Some((h, m)) if m.len() == 2 => (h, m),
            Some(_) => return Err(bad()),
            None if body.len() == 4 => (&body[..2], &body[2..]),
            None if body.len() <= 2 => (body, "0"),
            None => return Err(bad()),
        };
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 {
            return Err(bad());
        }
        TimeOffset::from_minutes(sign * (h * 60 + m)).ok_or_else(bad)
    }
}

/// The capture time of one image, and a problem when the user should confirm or supply its offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CaptureTime {
    /// Unix ms, UTC.
    pub(crate) ms: i64,
    /// Where it came from.
    pub(crate) source: TimeSource,
    /// (kind, field, message) of the problem, if any.
    pub(crate) problem: Option<(ProblemKind, &'static str, String)>,
}

/// Where an image's capture time came from: for `inspect`'s notes, for keeping one clock offset per camera,
/// and for predicting what Panoramax's reader will make of the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum TimeSource {
    /// MTPDU's `MAPCaptureTime` (UTC) in the `ImageDescription` JSON.
    Mtpdu,
    /// The GPS date and time (UTC): `field` is `GPSDateStamp/GPSTimeStamp` or `XMP exif:GPSTimeStamp`.
    Gps {
        /// The tag read.
        field: &'static str,
        /// The camera clock's UTC offset in minutes that its local time shows against the GPS time, when
        /// it is a whole quarter of an hour (within [`OFFSET_TOLERANCE_MS`]): evidence for the images of
        /// the same camera that have no GPS time.
        clock_minutes: Option<i32>,
    },
    /// The camera's local time (`DateTimeOriginal`, ...) at `offset_minutes` east of UTC, which came from
    /// `offset`.
    Local {
        /// The tag read.
        field: &'static str,
        /// The wall-clock time read as if it were UTC, Unix ms.
        wall_ms: i64,
        /// Minutes east of UTC used (0 when [`OffsetBasis::None`]).
        offset_minutes: i32,
        /// Where that offset came from.
        offset: OffsetBasis,
    },
}

/// Where the UTC offset of a local capture time came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OffsetBasis {
    /// The file: an `OffsetTime*` tag, or XMP's date with an offset.
    File,
    /// `--time-offset` / `time_offset` in `sequence.toml`.
    User,
    /// The IANA time zone at the photo's position on its date.
    Zone {
        /// IANA zone name (static: not one string per image of a scan).
        zone: &'static str,
        /// Whether summer time was in force.
        summer: bool,
        /// The zone's offset at this image's own position and date, in minutes; differs from the offset
        /// used when the rest of the camera's images gave another one (see `camera_clock`).
        zone_minutes: i32,
    },
    /// None could be found (no position, or no zone there): read as UTC.
    None,
}

/// Where the offset of a local time came from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OffsetFrom {
    /// The file: an `OffsetTime*` tag, or XMP's date with an offset.
    File,
    /// `--time-offset` / `time_offset`.
    User,
    /// The time zone at the position.
    Zone,
}

/// A local date and time as the camera wrote it.
#[derive(Debug, Clone, PartialEq)]
struct LocalTime {
    field: &'static str,
    /// As written, for messages.
    text: String,
    /// The wall-clock time read as if it were UTC, Unix ms.
    wall_ms: i64,
    offset: Option<(i32, OffsetFrom)>,
    /// The zone the offset came from, when it came from the position.
    zone: Option<ZoneOffset>,
}

impl LocalTime {
    fn utc_ms(&self) -> i64 {
        self.wall_ms - i64::from(self.offset.map_or(0, |o| o.0)) * 60_000
    }

    fn source(&self) -> TimeSource {
        TimeSource::Local {
            field: self.field,
            wall_ms: self.wall_ms,
            offset_minutes: self.offset.map_or(0, |o| o.0),
            offset: match (&self.offset, &self.zone) {
                (Some((_, OffsetFrom::File)), _) => OffsetBasis::File,
                (Some((_, OffsetFrom::User)), _) => OffsetBasis::User,
                (Some((_, OffsetFrom::Zone)), Some(z)) => OffsetBasis::Zone {
                    zone: z.zone,
                    summer: z.summer,
                    zone_minutes: z.minutes,
                },
                _ => OffsetBasis::None,
            },
        }
    }
}

/// Reads the capture time; `Err` says why there is none. `position` is where the photo was taken, for the
/// time zone of a local time without offset.
pub(crate) fn capture_time(
    exif: Option<&Exif>,
    xmp: Option<&Xmp>,
    given: Option<TimeOffset>,
    position: Option<(f64, f64)>,
) -> Result<CaptureTime, String> {
    let exif_gps = exif
        .and_then(gps_datetime)
        .filter(|ms| plausible_gps_time(*ms));
    let gps = match exif_gps {
        Some(ms) => Some((ms, "GPSDateStamp/GPSTimeStamp")),
        None => xmp
            .and_then(xmp_gps_datetime)
            .filter(|ms| plausible_gps_time(*ms))
            .map(|ms| (ms, "XMP exif:GPSTimeStamp")),
    };
    let local = local_time(exif, xmp, given, position);
    match (gps, local) {
        (Some((gps_ms, field)), local) => {
            let local = local.ok().flatten();
            Ok(CaptureTime {
                ms: gps_ms,
                source: TimeSource::Gps {
                    field,
                    clock_minutes: local.as_ref().and_then(|l| clock_offset(l.wall_ms, gps_ms)),
                },
                problem: local.and_then(|l| disagreement(&l, gps_ms, given)),
            })
        }
        (None, Ok(Some(l))) => {
            // Without a position the image is refused anyway (`no_gps`); the note would only add noise.
            let problem = (l.offset.is_none() && position.is_some()).then(|| {
                (
                    ProblemKind::LocalTimeWithoutOffset,
                    l.field,
                    format!(
                        "{:?} has no UTC offset, the file has no GPS time and no time zone is known at \
                         its position, so it is read as UTC; pass the camera clock's offset with \
                         --time-offset (e.g. --time-offset +02:00) or time_offset in sequence.toml",
                        l.text
                    ),
                )
            });
            Ok(CaptureTime {
                ms: l.utc_ms(),
                source: l.source(),
                problem,
            })
        }
        (None, Ok(None)) => Err(
            "no capture time (no MAPCaptureTime, GPS date/time, DateTimeOriginal or DateTimeDigitized)"
                .to_string(),
        ),
        (None, Err(e)) => Err(e),
    }
}

/// The offset (minutes) of a clock that showed `wall_ms` at the GPS time `gps_ms`, if it is a whole
/// quarter of an hour within [`OFFSET_TOLERANCE_MS`] and a real zone's offset.
fn clock_offset(wall_ms: i64, gps_ms: i64) -> Option<i32> {
    let diff = wall_ms - gps_ms;
    let quarters = (diff as f64 / 900_000.0).round() as i64;
    if (diff - quarters * 900_000).abs() > OFFSET_TOLERANCE_MS {
        return None;
    }
    TimeOffset::from_minutes(i32::try_from(quarters * 15).ok()?).map(TimeOffset::minutes)
}

/// The problem to report when the local time looks like the GPS time at an unconfirmed UTC offset.
fn disagreement(
    l: &LocalTime,
    gps_ms: i64,
    given: Option<TimeOffset>,
) -> Option<(ProblemKind, &'static str, String)> {
    let diff = l.utc_ms() - gps_ms;
    let quarters = (diff as f64 / 900_000.0).round() as i64;
    if quarters == 0 || (diff - quarters * 900_000).abs() > OFFSET_TOLERANCE_MS {
        return None;
    }
    let implied = TimeOffset::from_minutes(l.offset.map_or(0, |o| o.0) + (quarters * 15) as i32)?;
    let ahead = describe_minutes(quarters * 15);
    let message = match l.offset {
        // The file's own offset disagrees with its GPS time (typically a camera that did not switch to
        // summer time): nothing the user passes would change the reading, and the GPS time is used.
        Some((_, OffsetFrom::File)) => return None,
        None => format!(
            "{:?} has no UTC offset and is {ahead} the GPS time {}: the camera clock was set to local \
             time (UTC{implied}) without recording it. The GPS time is used; confirm the offset with \
             --time-offset {implied} (or time_offset = \"{implied}\" in sequence.toml) so that images \
             without GPS time are read alike",
            l.text,
            format_utc(gps_ms)
        ),
        // The zone at the position was only a guess for a clock that said nothing; the GPS time is used,
        // and the clock's offset it shows is what this camera's images without GPS time get
        // (`camera_clock`).
        Some((_, OffsetFrom::Zone)) => return None,
        Some((_, OffsetFrom::User)) => format!(
            "{:?} at the given offset {} is {ahead} the GPS time {}: the camera clock was at \
             UTC{implied}. The GPS time is used; correct the offset (--time-offset {implied} or \
             time_offset in sequence.toml), which images without GPS time are read with",
            l.text,
            given.map(|g| g.to_string()).unwrap_or_default(),
            format_utc(gps_ms)
        ),
    };
    Some((ProblemKind::ClockDiffersFromGps, l.field, message))
}

fn describe_minutes(m: i64) -> String {
    let a = m.unsigned_abs();
    let span = if a.is_multiple_of(60) {
        format!("{} h", a / 60)
    } else {
        format!("{} h {:02} min", a / 60, a % 60)
    };
    format!("{span} {}", if m > 0 { "ahead of" } else { "behind" })
}

/// A GPS time is plausible from the GPS epoch (1980-01-06; receivers without a fix write 1970-01-01 or
/// 0000:00:00) to a day from now.
fn plausible_gps_time(ms: i64) -> bool {
    const GPS_EPOCH_MS: i64 = 315_964_800_000;
    let tomorrow = chrono::Utc::now().timestamp_millis() + 86_400_000;
    (GPS_EPOCH_MS..=tomorrow).contains(&ms)
}

/// Whether the EXIF date/time `tag` holds a valid date and time.
pub(crate) fn exif_time_parses(exif: &Exif, tag: Tag) -> bool {
    matches!(
        exif_local_time(exif, tag, Tag::SubSecTime, Tag::OffsetTime, "time"),
        Some(Ok(_))
    )
}

/// `GPSDateStamp` + `GPSTimeStamp` (UTC), keeping fractional seconds.
pub(crate) fn gps_datetime(exif: &Exif) -> Option<i64> {
    let date = ascii(exif, Tag::GPSDateStamp)?;
    let parts: Vec<u32> = date
        .trim()
        .split([':', '-'])
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let [y, m, d] = parts[..] else { return None };
    let hms = f64s(&exif.get_field(Tag::GPSTimeStamp, In::PRIMARY)?.value);
    let secs =
        hms.first()? * 3600.0 + hms.get(1).unwrap_or(&0.0) * 60.0 + hms.get(2).unwrap_or(&0.0);
    if !secs.is_finite() || !(0.0..86_401.0).contains(&secs) {
        return None;
    }
    let day = chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    let midnight = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(midnight + (secs * 1000.0).round() as i64)
}

/// XMP keeps the GPS date and time together in `exif:GPSTimeStamp` (ISO 8601, UTC when no offset).
pub(crate) fn xmp_gps_datetime(x: &Xmp) -> Option<i64> {
    let (wall, offset) = xmp::date_time(x.exif("GPSTimeStamp")?)?;
    Some(wall - i64::from(offset.unwrap_or(0)) * 60_000)
}

/// The first local time the file has, with its offset resolved as far as possible; `Err` if the only
/// candidates are unreadable.
fn local_time(
    exif: Option<&Exif>,
    xmp: Option<&Xmp>,
    given: Option<TimeOffset>,
    position: Option<(f64, f64)>,
) -> Result<Option<LocalTime>, String> {
    let mut first_error = None;
    let mut found = None;
    if let Some(e) = exif {
        for (dt, sub, off, name) in [
            (
                Tag::DateTimeOriginal,
                Tag::SubSecTimeOriginal,
                Tag::OffsetTimeOriginal,
                "DateTimeOriginal",
            ),
            (
                Tag::DateTimeDigitized,
                Tag::SubSecTimeDigitized,
                Tag::OffsetTimeDigitized,
                "DateTimeDigitized",
            ),
        ] {
            match exif_local_time(e, dt, sub, off, name) {
                Some(Ok(t)) => {
                    found = Some(t);
                    break;
                }
                Some(Err(msg)) => {
                    first_error.get_or_insert(msg);
                }
                None => {}
            }
        }
    }
    if found.is_none() {
        if let Some(x) = xmp {
            for name in ["DateTimeOriginal", "DateTimeDigitized"] {
                let Some(text) = x.exif(name) else { continue };
                match xmp::date_time(text) {
                    Some((wall_ms, offset)) => {
                        found = Some(LocalTime {
                            field: if name == "DateTimeOriginal" {
                                "XMP exif:DateTimeOriginal"
                            } else {
                                "XMP exif:DateTimeDigitized"
                            },
                            text: text.to_string(),
                            wall_ms,
                            offset: offset.map(|o| (o, OffsetFrom::File)),
                            zone: None,
                        });
                        break;
                    }
                    None => {
                        first_error.get_or_insert(format!(
                            "XMP exif:{name} {text:?} is not a valid date and time"
                        ));
                    }
                }
            }
        }
    }
    if found.is_none() {
        // Last, IFD0 `DateTime`: the time of the last edit, but the only time some phones write (a Samsung
        // SM-G930F in tests/data/real), and both official readers fall back to it (mapillary_tools
        // `exif_read.py` `extract_exif_datetime`, geopic-tag-reader `reader.py` `getPictureMetadata`).
        if let Some(Ok(t)) = exif.and_then(|e| {
            exif_local_time(
                e,
                Tag::DateTime,
                Tag::SubSecTime,
                Tag::OffsetTime,
                "DateTime",
            )
        }) {
            found = Some(t);
        }
    }
    let Some(mut t) = found else {
        return first_error.map_or(Ok(None), Err);
    };
    if t.offset.is_none() {
        // Some phones write the offset only into XMP's copy of the same time.
        t.offset = xmp
            .and_then(|x| x.exif("DateTimeOriginal"))
            .and_then(xmp::date_time)
            .filter(|(wall, _)| (wall - t.wall_ms).abs() < 1000)
            .and_then(|(_, o)| o)
            .map(|o| (o, OffsetFrom::File))
            .or_else(|| given.map(|g| (g.minutes(), OffsetFrom::User)));
    }
    if t.offset.is_none() {
        // The camera clock was on local time without saying which: the zone at the photo's position on
        // its date, as Panoramax's reader does (see `time_zone`).
        if let Some(z) = position.and_then(|(lat, lon)| time_zone::offset_at(lat, lon, t.wall_ms)) {
            t.offset = Some((z.minutes, OffsetFrom::Zone));
            t.zone = Some(z);
        }
    }
    Ok(Some(t))
}

fn exif_local_time(
    exif: &Exif,
    dt: Tag,
    sub: Tag,
    off: Tag,
    name: &'static str,
) -> Option<Result<LocalTime, String>> {
    let raw = match &exif.get_field(dt, In::PRIMARY)?.value {
        Value::Ascii(v) => v.first()?.clone(),
        _ => return Some(Err(format!("{name} is not text"))),
    };
    let text = String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .to_string();
    let invalid = || format!("{name} {text:?} is not a valid date and time");
    let Ok(mut t) = exif::DateTime::from_ascii(&raw) else {
        return Some(Err(invalid()));
    };
    if let Some(s) = ascii(exif, sub) {
        // Some cameras pad sub-seconds with spaces; the digits are the fraction (mapillary_tools does the
        // same: `exif_read.py`, `_extract_exif_datetime`).
        let _ = t.parse_subsec(s.trim().replace(' ', "0").as_bytes());
    }
    let mut offset = None;
    if let Some(o) = ascii(exif, off) {
        if t.parse_offset(o.trim().as_bytes()).is_ok() {
            offset = t.offset.map(|m| (i32::from(m), OffsetFrom::File));
        }
    }
    let wall =
        chrono::NaiveDate::from_ymd_opt(i32::from(t.year), u32::from(t.month), u32::from(t.day))
            .and_then(|d| {
                d.and_hms_nano_opt(
                    u32::from(t.hour),
                    u32::from(t.minute),
                    u32::from(t.second),
                    t.nanosecond.unwrap_or(0),
                )
            });
    Some(match wall {
        Some(w) => Ok(LocalTime {
            field: name,
            text,
            wall_ms: w.and_utc().timestamp_millis(),
            offset,
            zone: None,
        }),
        None => Err(invalid()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_in_every_usual_spelling() {
        let m = |s: &str| s.parse::<TimeOffset>().map(TimeOffset::minutes);
        assert_eq!(m("+02:00"), Ok(120));
        assert_eq!(m("-05:30"), Ok(-330));
        assert_eq!(m("-0530"), Ok(-330));
        assert_eq!(m("+2"), Ok(120));
        assert_eq!(m("9"), Ok(540));
        assert_eq!(m("UTC"), Ok(0));
        assert_eq!(m("Z"), Ok(0));
        assert_eq!(m("+14:00"), Ok(840));
        assert!(m("+14:30").is_err());
        assert!(m("-13:00").is_err());
        assert!(m("+02:60").is_err());
        assert!(m("Europe/Paris").unwrap_err().contains("daylight saving"));
        assert!(m("").is_err());
        assert!(m("+").is_err());
        assert!(m("+123").is_err());
        assert_eq!(
            TimeOffset::from_minutes(-330).unwrap().to_string(),
            "-05:30"
        );
        assert_eq!(TimeOffset::from_minutes(0).unwrap().to_string(), "+00:00");
    }

    fn local(wall_ms: i64, offset: Option<(i32, OffsetFrom)>) -> LocalTime {
        LocalTime {
            field: "DateTimeOriginal",
            text: "t".into(),
            wall_ms,
            offset,
            zone: None,
        }
    }

    #[test]
    fn disagreements_that_look_like_an_offset() {
        let gps = 1_428_689_542_060; // 2015-04-10T18:12:22.060Z
        let two_h = 7_200_000;
        // An iPhone 6: local time without offset, 2 h and 0.956 s ahead of its GPS time.
        let p = disagreement(&local(gps + two_h + 956, None), gps, None).unwrap();
        assert_eq!(p.0, ProblemKind::ClockDiffersFromGps);
        assert!(
            p.2.contains("2 h ahead of") && p.2.contains("--time-offset +02:00"),
            "{}",
            p.2
        );
        // Behind, by half hours (India).
        let p = disagreement(&local(gps - 19_800_000, None), gps, None).unwrap();
        assert!(
            p.2.contains("5 h 30 min behind") && p.2.contains("-05:30"),
            "{}",
            p.2
        );
        // Confirmed by the user: no problem; a wrong confirmation: a problem naming the right offset.
        let given = TimeOffset::from_minutes(120);
        let ok = local(gps + two_h, Some((120, OffsetFrom::User)));
        assert_eq!(disagreement(&ok, gps, given), None);
        let wrong = local(gps + two_h, Some((60, OffsetFrom::User)));
        let p = disagreement(&wrong, gps, TimeOffset::from_minutes(60)).unwrap();
        assert!(
            p.2.contains("--time-offset +02:00") && p.2.contains("+01:00"),
            "{}",
            p.2
        );
        // Not an offset: seconds apart, years apart, an offset beyond +14:00, or off by 10 minutes.
        assert_eq!(disagreement(&local(gps + 1500, None), gps, None), None);
        assert_eq!(
            disagreement(&local(gps + 220_000_000_000, None), gps, None),
            None
        );
        assert_eq!(
            disagreement(&local(gps - 22 * 3_600_000, None), gps, None),
            None
        );
        assert_eq!(disagreement(&local(gps + 600_000, None), gps, None), None);
        assert_eq!(
            disagreement(
                &local(gps + two_h + OFFSET_TOLERANCE_MS + 1, None),
                gps,
                None
            ),
            None
        );
        // The file's own offset disagreeing cannot be fixed by the user: the GPS time is used silently.
        let own = local(gps + two_h + 3_600_000, Some((60, OffsetFrom::File)));
        assert_eq!(disagreement(&own, gps, None), None);
    }

    fn xmp(body: &str) -> Xmp {
        let packet = format!(
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF \
             xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description \
             xmlns:exif=\"http://ns.adobe.com/exif/1.0/\" {body}/></rdf:RDF></x:xmpmeta>"
        );
        Xmp::parse(packet.as_bytes()).unwrap()
    }

    #[test]
    fn xmp_times_when_the_file_has_no_exif() {
        // A local time with its offset (as the Jolla phone writes it).
        let x = xmp(r#"exif:DateTimeOriginal="2014-09-21T16:00:56.000000+02:00""#);
        let t = capture_time(None, Some(&x), None, None).unwrap();
        assert_eq!((t.ms, t.problem), (1_411_308_056_000, None));
        // XMP's GPS time wins over it.
        let x = xmp(
            r#"exif:DateTimeOriginal="2014-09-21T16:00:56+02:00" exif:GPSTimeStamp="2014-09-21T14:00:57.5Z""#,
        );
        assert_eq!(
            capture_time(None, Some(&x), None, None).unwrap().ms,
            1_411_308_057_500
        );
        // Without an offset: read at the given one, else as UTC with the problem.
        let x = xmp(r#"exif:DateTimeOriginal="2014-09-21T16:00:56""#);
        let t = capture_time(None, Some(&x), TimeOffset::from_minutes(120), None).unwrap();
        assert_eq!((t.ms, t.problem), (1_411_308_056_000, None));
        let t = capture_time(None, Some(&x), None, None).unwrap();
        assert_eq!((t.ms, t.problem), (1_411_315_256_000, None));
        // A position where no zone is known: read as UTC with the note.
        let t = capture_time(None, Some(&x), None, Some((f64::NAN, 0.0))).unwrap();
        assert_eq!(t.ms, 1_411_315_256_000);
        assert_eq!(t.problem.unwrap().0, ProblemKind::LocalTimeWithoutOffset);
        // Without an offset but with a position: the zone there on that date (Paris, summer time).
        let t = capture_time(None, Some(&x), None, Some((48.8566, 2.3522))).unwrap();
        assert_eq!((t.ms, t.problem), (1_411_308_056_000, None));
        assert_eq!(
            t.source,
            TimeSource::Local {
                field: "XMP exif:DateTimeOriginal",
                wall_ms: 1_411_315_256_000,
                offset_minutes: 120,
                offset: OffsetBasis::Zone {
                    zone: "Europe/Paris",
                    summer: true,
                    zone_minutes: 120,
                }
            }
        );
        // The given offset beats the zone.
        let t = capture_time(
            None,
            Some(&x),
            TimeOffset::from_minutes(60),
            Some((48.8566, 2.3522)),
        );
        assert_eq!(t.unwrap().ms, 1_411_311_656_000);
        // Unreadable, or nothing at all.
        let x = xmp(r#"exif:DateTimeOriginal="soon""#);
        assert!(capture_time(None, Some(&x), None, None)
            .unwrap_err()
            .contains("\"soon\""));
        assert!(capture_time(None, Some(&xmp("")), None, None).is_err());
    }

    #[test]
    fn gps_times_before_the_gps_epoch_or_in_the_future_are_implausible() {
        assert!(!plausible_gps_time(0));
        assert!(!plausible_gps_time(315_964_799_999));
        assert!(plausible_gps_time(1_428_689_542_060));
        assert!(!plausible_gps_time(
            chrono::Utc::now().timestamp_millis() + 2 * 86_400_000
        ));
    }
}
