//! The properties of an XMP packet, looked up by namespace URI and name (so any prefix works), and the
//! value forms XMP uses for EXIF data: GPS coordinates (`51,30.5N`), rationals (`1763/10`) and ISO 8601
//! dates. Used where a file's EXIF lacks a value (XMP is the fallback, as in the official Mapillary client).

use std::collections::HashMap;

/// Namespace of the EXIF properties in XMP (`exif:GPSLatitude`, `exif:DateTimeOriginal`, ...).
pub(crate) const NS_EXIF: &str = "http://ns.adobe.com/exif/1.0/";
const NS_RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";

/// Every simple property of every `rdf:Description`: attributes and text-only child elements.
#[derive(Debug, Default)]
pub(crate) struct Xmp {
    props: HashMap<(String, String), String>,
}

impl Xmp {
    /// Parses the payload of an XMP APP1 segment (after its identifier). `None` if it is not XML.
    pub(crate) fn parse(packet: &[u8]) -> Option<Xmp> {
        let text = String::from_utf8_lossy(packet);
        // The packet wraps the document in `<?xpacket ...?>` processing instructions and pads it with
        // whitespace; parse from the root element to its end.
        let start = text.find("<x:xmpmeta").or_else(|| text.find("<rdf:RDF"))?;
        let end = text
            .rfind("</x:xmpmeta>")
            .map(|e| e + "</x:xmpmeta>".len())
            .or_else(|| text.rfind("</rdf:RDF>").map(|e| e + "</rdf:RDF>".len()))
            .filter(|e| *e > start)?;
        let doc = roxmltree::Document::parse(&text[start..end]).ok()?;
        let mut props = HashMap::new();
        for desc in doc
            .descendants()
            .filter(|n| n.has_tag_name((NS_RDF, "Description")))
        {
            for a in desc.attributes() {
                if let Some(ns) = a.namespace() {
                    props
                        .entry((ns.to_string(), a.name().to_string()))
                        .or_insert_with(|| a.value().to_string());
                }
            }
            for child in desc.children().filter(|c| c.is_element()) {
                let name = child.tag_name();
                let (Some(ns), Some(value)) = (name.namespace(), child.text()) else {
                    continue;
                };
                if !value.trim().is_empty() {
                    props
                        .entry((ns.to_string(), name.name().to_string()))
                        .or_insert_with(|| value.trim().to_string());
                }
            }
        }
        Some(Xmp { props })
    }

    /// The value of `exif:<name>`, trimmed.
    pub(crate) fn exif(&self, name: &str) -> Option<&str> {
        self.props
            .get(&(NS_EXIF.to_string(), name.to_string()))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A number written as a decimal or as an XMP rational (`136169/100`).
pub(crate) fn number(value: &str) -> Option<f64> {
    let v = value.trim();
    let n = match v.split_once('/') {
        Some((num, den)) => {
            let (num, den): (f64, f64) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
            (den != 0.0).then(|| num / den)?
        }
        None => v.parse().ok()?,
    };
    n.is_finite().then_some(n)
}

/// A GPS coordinate in degrees. XMP's `GPSCoordinate` is `DDD,MM,SSk` or `DDD,MM.mmk` with `k` one of
/// N, S, E, W (XMP Specification Part 2, EXIF schema); a plain decimal number with a separate
/// `GPSLatitudeRef`/`GPSLongitudeRef` (`reference`) is accepted too.
pub(crate) fn coordinate(value: &str, reference: Option<&str>) -> Option<f64> {
    let v = value.trim();
    let negative_ref = |r: &str| matches!(r.trim().to_ascii_uppercase().as_str(), "S" | "W");
    if let Ok(d) = v.parse::<f64>() {
        let d = if reference.is_some_and(negative_ref) {
            -d.abs()
        } else {
            d
        };
        return d.is_finite().then_some(d);
    }
    let dir = v.chars().last()?;
    if !matches!(dir.to_ascii_uppercase(), 'N' | 'S' | 'E' | 'W') {
        return None;
    }
    let body = &v[..v.len() - dir.len_utf8()];
    let parts: Vec<f64> = body
        .split(',')
        .map(|p| p.trim().parse::<f64>().ok())
        .collect::<Option<_>>()?;
    let deg = match parts[..] {
        [d, m] => d + m / 60.0,
        [d, m, s] => d + m / 60.0 + s / 3600.0,
        _ => return None,
    };
    let deg = if negative_ref(&dir.to_string()) {
        -deg
    } else {
        deg
    };
    deg.is_finite().then_some(deg)
}

/// An ISO 8601 date and time as XMP writes it (`2014-09-21T16:00:56.000000+02:00`, `2021-07-15T05:37:30Z`,
/// `2019-07-16T10:26:11`, `2019-07-16T10:26`): the wall-clock time as Unix ms read as UTC, and the offset in
/// minutes when one is written.
pub(crate) fn date_time(value: &str) -> Option<(i64, Option<i32>)> {
    let v = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        let offset = t.offset().local_minus_utc() / 60;
        return Some((t.naive_local().and_utc().timestamp_millis(), Some(offset)));
    }
    // Offsets without seconds in the time part, or no offset at all.
    for fmt in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%MZ"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(&v.replace('Z', "+00:00"), fmt) {
            let offset = t.offset().local_minus_utc() / 60;
            return Some((t.naive_local().and_utc().timestamp_millis(), Some(offset)));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Some((t.and_utc().timestamp_millis(), None));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_in_every_xmp_form() {
        assert_eq!(coordinate("51,30.5N", None), Some(51.0 + 30.5 / 60.0));
        assert_eq!(coordinate("0,4.21601S", None), Some(-(4.21601 / 60.0)));
        assert_eq!(
            coordinate("122,34,30W", None),
            Some(-(122.0 + 34.0 / 60.0 + 0.5 / 60.0))
        );
        assert_eq!(coordinate("12.5", Some("S")), Some(-12.5));
        assert_eq!(coordinate("-12.5", None), Some(-12.5));
        assert_eq!(coordinate("51,30.5", None), None);
        assert_eq!(coordinate("N", None), None);
        assert_eq!(coordinate("a,bN", None), None);
        assert_eq!(coordinate("1,2,3,4N", None), None);
    }

    #[test]
    fn rationals_and_dates() {
        assert_eq!(number("1763/10"), Some(176.3));
        assert_eq!(number("5/0"), None);
        assert_eq!(number(" 12.5 "), Some(12.5));
        let (ms, off) = date_time("2014-09-21T16:00:56.250+02:00").unwrap();
        assert_eq!((ms, off), (1_411_315_256_250, Some(120)));
        assert_eq!(date_time("2014-09-21T16:00:56Z").unwrap().1, Some(0));
        assert_eq!(
            date_time("2014-09-21T16:00:56").unwrap(),
            (1_411_315_256_000, None)
        );
        assert_eq!(
            date_time("2014-09-21T16:00").unwrap(),
            (1_411_315_200_000, None)
        );
        assert_eq!(date_time("2014-09-21T16:00+01:00").unwrap().1, Some(60));
        assert_eq!(date_time("yesterday"), None);
    }

    #[test]
    fn properties_by_namespace_whatever_the_prefix() {
        let packet = br#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:e="http://ns.adobe.com/exif/1.0/" e:GPSLatitude="51,30.5N">
<e:DateTimeOriginal>2014-09-21T16:00:56+02:00</e:DateTimeOriginal></rdf:Description>
</rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"#;
        let x = Xmp::parse(packet).unwrap();
        assert_eq!(x.exif("GPSLatitude"), Some("51,30.5N"));
        assert_eq!(
            x.exif("DateTimeOriginal"),
            Some("2014-09-21T16:00:56+02:00")
        );
        assert_eq!(x.exif("GPSLongitude"), None);
        assert!(Xmp::parse(b"<x:xmpmeta><unclosed").is_none());
        assert!(Xmp::parse(b"not xml").is_none());
    }
}
