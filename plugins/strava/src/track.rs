//! The sequence's track: checked, identified, and written as GPX 1.1.
//!
//! Every image is one trackpoint, in capture order, at the position and time the sequence reader gives
//! it. Strava needs a `<time>` on every trackpoint (developers.strava.com/docs/uploads: "GPX files must
//! contain time information for each trackpoint"), so a track Strava would refuse is refused here, before
//! anything is sent, with the reason.
//!
//! Why the GPX is written by hand and not with the `gpx` crate: the document is one `trkseg` of
//! `lat`/`lon`/`ele`/`time` points plus two escaped names; the crate would add `geo-types`, `time` and an
//! XML writer to the plugin for that, and its types would need converting from ours point by point.

use std::fmt::Write as _;

use plugin_api::prelude::*;

/// The GPX 1.1 namespace (topografix.com/GPX/1/1).
const GPX_NS: &str = "http://www.topografix.com/GPX/1/1";

/// Why a track cannot be uploaded, if it cannot.
pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
    let mut check = match TrackCheck::new(sequence.images.len() as u64) {
        Ok(check) => check,
        Err(reason) => return Some(reason),
    };
    if let Some(reason) = sequence.images.iter().find_map(|image| check.take(image)) {
        return Some(reason);
    }
    check.finish()
}

/// [`refusal`] for a sequence whose images are read a page at a time: the same checks, in one pass
/// that keeps only the image before.
pub fn refusal_paged(images: &Images<'_>) -> Result<Option<String>, PluginError> {
    let mut check = match TrackCheck::new(images.len()) {
        Ok(check) => check,
        Err(reason) => return Ok(Some(reason)),
    };
    let mut found = None;
    images.for_each_page(plugin_api::sdk::images::PAGE, |_, page| {
        found = page.iter().find_map(|image| check.take(image));
        if found.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })?;
    Ok(found.or_else(|| check.finish()))
}

/// One pass over a track's points: each point's own faults at once (the first one found), and at the
/// end the first pair whose time goes backwards, then a track that takes no time.
struct TrackCheck {
    previous: Option<(String, i64)>,
    backwards: Option<(String, String)>,
    min_ms: i64,
    max_ms: i64,
}

impl TrackCheck {
    /// A check of a track of `points` points; the reason when there are too few.
    fn new(points: u64) -> Result<TrackCheck, String> {
        if points < 2 {
            return Err(format!(
                "a Strava activity needs a track of at least 2 points; this sequence has {points}"
            ));
        }
        Ok(TrackCheck {
            previous: None,
            backwards: None,
            min_ms: i64::MAX,
            max_ms: i64::MIN,
        })
    }

    /// Checks one point; the reason when the point itself cannot be written.
    fn take(&mut self, image: &ImageInfo) -> Option<String> {
        let name = if image.file_name.is_empty() {
            image.path.as_str()
        } else {
            image.file_name.as_str()
        };
        let (lat, lon) = (image.latitude, image.longitude);
        if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
            return Some(format!(
                "{name}: position {lat}, {lon} is not a WGS 84 latitude/longitude, so the track \
                 cannot be written"
            ));
        }
        if image.altitude.is_some_and(|a| !a.is_finite()) {
            return Some(format!("{name}: its altitude is not a number"));
        }
        if chrono::DateTime::from_timestamp_millis(image.captured_at_ms).is_none() {
            return Some(format!("{name}: its capture time is out of range"));
        }
        let at = image.captured_at_ms;
        if let Some((before, before_ms)) = &self.previous {
            if self.backwards.is_none() && at < *before_ms {
                self.backwards = Some((image.file_name.clone(), before.clone()));
            }
        }
        self.previous = Some((image.file_name.clone(), at));
        self.min_ms = self.min_ms.min(at);
        self.max_ms = self.max_ms.max(at);
        None
    }

    /// The reason found over the whole track, if any.
    fn finish(self) -> Option<String> {
        if let Some((later, earlier)) = self.backwards {
            return Some(format!(
                "{later} was captured before {earlier}, which comes earlier in the sequence: a track's times must \
                 not go backwards"
            ));
        }
        if self.previous.is_some() && self.max_ms == self.min_ms {
            return Some(
                "every image has the same capture time: Strava cannot make an activity of a track \
                 that takes no time"
                    .into(),
            );
        }
        None
    }
}

/// The sequence's content identity, sent as `external_id`: the same images (names, times, positions)
/// give the same id on every machine and after any crash, and a changed sequence a new one.
pub fn external_id(sequence: &SequenceDescriptor) -> String {
    let mut hasher = blake3::Hasher::new();
    for image in &sequence.images {
        hasher.update(
            format!(
                "{}\t{}\t{:.7}\t{:.7}\n",
                image.file_name, image.captured_at_ms, image.latitude, image.longitude
            )
            .as_bytes(),
        );
    }
    let hex = hasher.finalize().to_hex();
    format!("mtp-{}", &hex.as_str()[..32])
}

/// `2020-05-10T06:45:03.000Z`.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Text safe inside an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids are dropped rather than sent to a parser that refuses them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The activity's name: the sequence's, or one made of its start time.
pub fn activity_name(sequence: &SequenceDescriptor) -> String {
    let name = sequence.name.trim();
    if !name.is_empty() {
        return name.to_string();
    }
    match sequence.first_capture_ms() {
        Some(ms) => format!("Sequence of {}", plugin_api::time::format_utc(ms)),
        None => "Sequence".into(),
    }
}

/// The GPX 1.1 document of a track that passed [`refusal`].
pub fn gpx(sequence: &SequenceDescriptor) -> Result<String, PluginError> {
    if let Some(reason) = refusal(sequence) {
        return Err(PluginError::invalid_input(reason));
    }
    let name = escape(&activity_name(sequence));
    let mut out = String::with_capacity(200 + sequence.images.len() * 120);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<gpx version=\"1.1\" creator=\"mtp-strava {}\" xmlns=\"{GPX_NS}\">",
        env!("CARGO_PKG_VERSION")
    );
    let start = sequence.first_capture_ms().unwrap_or_default();
    let _ = writeln!(
        out,
        "  <metadata><name>{name}</name><time>{}</time></metadata>",
        utc(start)
    );
    let _ = writeln!(out, "  <trk><name>{name}</name><trkseg>");
    for image in &sequence.images {
        let _ = write!(
            out,
            "    <trkpt lat=\"{:.7}\" lon=\"{:.7}\">",
            image.latitude, image.longitude
        );
        if let Some(ele) = image.altitude {
            let _ = write!(out, "<ele>{ele:.2}</ele>");
        }
        let _ = writeln!(out, "<time>{}</time></trkpt>", utc(image.captured_at_ms));
    }
    out.push_str("  </trkseg></trk>\n</gpx>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, lat: f64, lon: f64, t: i64) -> ImageInfo {
        ImageInfo {
            path: format!("/seq/{name}"),
            file_name: name.into(),
            size_bytes: 1,
            latitude: lat,
            longitude: lon,
            altitude: Some(12.5),
            captured_at_ms: t,
            heading: None,
            projection: Projection::Flat,
            width: None,
            height: None,
            photo_uuid: None,
            sources: None,
        }
    }

    fn sequence(images: Vec<ImageInfo>) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/seq".into(),
            name: "Walk <by> the \"river\" & co".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: Default::default(),
            images,
        }
    }

    #[test]
    fn writes_every_point_in_order_with_its_time() {
        let s = sequence(vec![
            image("a.jpg", 52.25, 6.78, 1_589_093_103_000),
            image("b.jpg", 52.2501, 6.7801, 1_589_093_104_500),
        ]);
        let gpx = gpx(&s).unwrap();
        assert!(gpx.contains("version=\"1.1\""), "{gpx}");
        assert!(gpx.contains("<name>Walk &lt;by&gt; the &quot;river&quot; &amp; co</name>"));
        let a = gpx
            .find("<trkpt lat=\"52.2500000\" lon=\"6.7800000\"><ele>12.50</ele><time>2020-05-10T06:45:03.000Z</time></trkpt>")
            .expect("first point");
        let b = gpx
            .find("<time>2020-05-10T06:45:04.500Z</time>")
            .expect("second point");
        assert!(a < b);
        assert_eq!(gpx.matches("<trkpt ").count(), 2);
    }

    #[test]
    fn malformed_tracks_are_refused_with_the_reason() {
        let one = sequence(vec![image("a.jpg", 1.0, 1.0, 1000)]);
        assert!(refusal(&one).unwrap().contains("at least 2 points"));
        let still = sequence(vec![
            image("a.jpg", 1.0, 1.0, 1000),
            image("b.jpg", 1.0, 1.0, 1000),
        ]);
        assert!(refusal(&still).unwrap().contains("same capture time"));
        let back = sequence(vec![
            image("a.jpg", 1.0, 1.0, 2000),
            image("b.jpg", 1.0, 1.0, 1000),
        ]);
        let why = refusal(&back).unwrap();
        assert!(why.contains("b.jpg") && why.contains("backwards"), "{why}");
        let off = sequence(vec![
            image("a.jpg", 91.0, 1.0, 1000),
            image("b.jpg", 1.0, 1.0, 2000),
        ]);
        assert!(refusal(&off).unwrap().starts_with("a.jpg: position 91"));
        assert!(gpx(&off).is_err());
        // Read a page at a time, as the host lends a long sequence, each answer is the same.
        for track in [&one, &still, &back, &off] {
            assert_eq!(paged(track), refusal(track));
        }
    }

    fn paged(sequence: &SequenceDescriptor) -> Option<String> {
        let host = plugin_api::sdk::testing::TestHost::new().lending(sequence.images.clone());
        let ctx = host.context();
        let images = Images::lent(&ctx, sequence.images.len() as u64);
        let answer = refusal_paged(&images).unwrap();
        assert!(sequence.images.len() < 2 || host.ranges_read() > 0);
        answer
    }

    #[test]
    fn the_external_id_follows_the_content() {
        let a = sequence(vec![
            image("a.jpg", 1.0, 1.0, 1000),
            image("b.jpg", 1.0, 1.1, 2000),
        ]);
        let mut moved = a.clone();
        moved.root = "/elsewhere".into();
        moved.images[0].path = "/elsewhere/a.jpg".into();
        assert_eq!(external_id(&a), external_id(&moved));
        assert!(external_id(&a).starts_with("mtp-") && external_id(&a).len() == 36);
        let mut changed = a.clone();
        changed.images[1].captured_at_ms = 2001;
        assert_ne!(external_id(&a), external_id(&changed));
    }
}
