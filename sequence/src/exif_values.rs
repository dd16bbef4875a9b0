//! Typed access to kamadak-exif fields, and the GPS position of a file (EXIF, else XMP).

use exif::{Exif, In, Tag, Value};

use crate::xmp::{self, Xmp};

/// The first text value of a tag (also accepts `UNDEFINED`/`BYTE` data written by some cameras).
pub(crate) fn ascii(exif: &Exif, tag: Tag) -> Option<String> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(v) => v.first().map(|b| String::from_utf8_lossy(b).into_owned()),
        Value::Undefined(b, _) | Value::Byte(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Every numeric component of a value (rationals evaluated; a zero denominator gives a non-finite number).
pub(crate) fn f64s(v: &Value) -> Vec<f64> {
    match v {
        Value::Rational(r) => r.iter().map(|x| x.to_f64()).collect(),
        Value::SRational(r) => r.iter().map(|x| x.to_f64()).collect(),
        Value::Double(d) => d.clone(),
        Value::Float(f) => f.iter().map(|x| f64::from(*x)).collect(),
        Value::Short(s) => s.iter().map(|x| f64::from(*x)).collect(),
        Value::Long(l) => l.iter().map(|x| f64::from(*x)).collect(),
        Value::SLong(l) => l.iter().map(|x| f64::from(*x)).collect(),
        Value::Byte(b) => b.iter().map(|x| f64::from(*x)).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn first_f64(exif: &Exif, tag: Tag) -> Option<f64> {
    f64s(&exif.get_field(tag, In::PRIMARY)?.value)
        .first()
        .copied()
        .filter(|v| v.is_finite())
}

pub(crate) fn first_u32(exif: &Exif, tag: Tag) -> Option<u32> {
    exif.get_field(tag, In::PRIMARY)?
        .value
        .get_uint(0)
        .filter(|v| *v > 0)
}

/// Degrees from an EXIF degrees/minutes/seconds triple (fewer components are accepted).
fn dms(v: &[f64]) -> Option<f64> {
    let d = v.first()? + v.get(1).unwrap_or(&0.0) / 60.0 + v.get(2).unwrap_or(&0.0) / 3600.0;
    d.is_finite().then_some(d)
}

/// Latitude, longitude, altitude.
pub(crate) type GpsFix = (f64, f64, Option<f64>);

/// `Ok(None)` without GPS tags, `Err` for GPS tags that cannot be interpreted.
pub(crate) fn exif_position(exif: &Exif) -> Result<Option<GpsFix>, String> {
    let (Some(lat), Some(lon)) = (
        exif.get_field(Tag::GPSLatitude, In::PRIMARY),
        exif.get_field(Tag::GPSLongitude, In::PRIMARY),
    ) else {
        return Ok(None);
    };
    let lat = dms(&f64s(&lat.value))
        .ok_or("GPSLatitude is not a valid number (e.g. a zero denominator)")?;
    let lon = dms(&f64s(&lon.value))
        .ok_or("GPSLongitude is not a valid number (e.g. a zero denominator)")?;
    let south =
        ascii(exif, Tag::GPSLatitudeRef).is_some_and(|r| r.trim().eq_ignore_ascii_case("S"));
    let west =
        ascii(exif, Tag::GPSLongitudeRef).is_some_and(|r| r.trim().eq_ignore_ascii_case("W"));
    let alt = first_f64(exif, Tag::GPSAltitude);
    let below = exif
        .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        == Some(1);
    Ok(Some((
        if south { -lat } else { lat },
        if west { -lon } else { lon },
        alt.map(|a| if below { -a } else { a }),
    )))
}

/// The position in XMP's EXIF properties (`exif:GPSLatitude="51,30.5N"` and the other forms
/// [`xmp::coordinate`] reads). `Err` when the properties are there but unreadable.
pub(crate) fn xmp_position(x: &Xmp) -> Result<Option<GpsFix>, String> {
    let (Some(lat), Some(lon)) = (x.exif("GPSLatitude"), x.exif("GPSLongitude")) else {
        return Ok(None);
    };
    let lat = xmp::coordinate(lat, x.exif("GPSLatitudeRef"))
        .ok_or_else(|| format!("XMP exif:GPSLatitude {lat:?} is not a GPS coordinate"))?;
    let lon = xmp::coordinate(lon, x.exif("GPSLongitudeRef"))
        .ok_or_else(|| format!("XMP exif:GPSLongitude {lon:?} is not a GPS coordinate"))?;
    let alt = x.exif("GPSAltitude").and_then(xmp::number).map(|a| {
        if x.exif("GPSAltitudeRef") == Some("1") {
            -a
        } else {
            a
        }
    });
    Ok(Some((lat, lon, alt)))
}
