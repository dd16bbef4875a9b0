//! The check of a sequence and its plan (`crate::state::Plan`), made together in one pass over its
//! images, a page at a time: the digest and each part's range, times and box are kept; the images are
//! not, nor their paths (a part's are read from its range when its turn comes, `crate::stored_plan`).

use plugin_api::prelude::*;
use plugin_api::sequence::BoundingBox;

use crate::eligibility::{projection_refusal, transport_refusal};
use crate::error::{MlyError, Result};
use crate::exif_rewrite::map_capture_time;
use crate::sequence_images::SequenceImages;
use crate::split::{Splitter, MAPILLARY_LIMITS};
use crate::state::{PartPlan, Plan};
use crate::stored_plan::NO_BOX;

/// Refuses what Mapillary cannot take, before anything is sent, and plans the parts of what it can.
/// What is refused is said as a separate check of each would say it: the transport, a projection, an
/// empty sequence, then the first image without a usable position or time.
pub fn checked_plan(sequence: &SequenceDescriptor, images: &SequenceImages<'_>) -> Result<Plan> {
    if let Some(reason) = transport_refusal(sequence) {
        return Err(MlyError::Invalid(reason));
    }
    let mut projections = Vec::new();
    let mut unusable = None;
    let mut planner = Planner::default();
    images.for_each(|_, image| {
        if !projections.contains(&image.projection) {
            projections.push(image.projection.clone());
        }
        if unusable.is_none() {
            unusable = unusable_because(image);
            planner.push(image);
        }
        Ok(())
    })?;
    if let Some(reason) = projection_refusal(&projections) {
        return Err(MlyError::Invalid(reason));
    }
    if images.is_empty() {
        return Err(MlyError::Invalid("the sequence has no images".into()));
    }
    if let Some(reason) = unusable {
        return Err(MlyError::Invalid(reason));
    }
    Ok(planner.finish())
}

/// Why Mapillary cannot take `image`, if it cannot.
fn unusable_because(image: &ImageInfo) -> Option<String> {
    let (lat, lon) = (image.latitude, image.longitude);
    let position_ok = lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
        && !(lat == 0.0 && lon == 0.0);
    if !position_ok {
        return Some(format!(
            "{}: Mapillary needs a valid GPS position, not ({lat}, {lon})",
            image.path
        ));
    }
    if map_capture_time(image.captured_at_ms).is_none() {
        return Some(format!(
            "{}: capture time {} is out of range",
            image.path, image.captured_at_ms
        ));
    }
    None
}

/// A plan made one image at a time.
struct Planner {
    splitter: Splitter,
    digest: md5::Context,
    parts: Vec<PartPlan>,
    /// The positions of the part being cut, for its bounding box.
    points: Vec<(f64, f64)>,
    /// How many images were planned.
    count: u64,
}

impl Default for Planner {
    fn default() -> Planner {
        Planner {
            splitter: Splitter::new(MAPILLARY_LIMITS),
            digest: md5::Context::new(),
            parts: Vec::new(),
            points: Vec::new(),
            count: 0,
        }
    }
}

impl Planner {
    fn push(&mut self, i: &ImageInfo) {
        if self.splitter.starts_part(i) {
            self.close_part();
            self.parts.push(PartPlan {
                start: self.count,
                len: 0,
                first_ms: i.captured_at_ms,
                last_ms: i.captured_at_ms,
                bbox: NO_BOX,
            });
            self.digest.consume(b"part\0");
        }
        // Everything that goes into the outgoing description, so that a change re-plans.
        let line = format!(
            "{}\0{}\0{}\0{}\0{}\0{:?}\0{:?}\0{}\n",
            i.path,
            i.file_name,
            i.captured_at_ms,
            i.latitude,
            i.longitude,
            i.altitude,
            i.heading,
            i.size_bytes
        );
        self.digest.consume(line.as_bytes());
        if let Some(part) = self.parts.last_mut() {
            part.len += 1;
            part.first_ms = part.first_ms.min(i.captured_at_ms);
            part.last_ms = part.last_ms.max(i.captured_at_ms);
        }
        self.count += 1;
        self.points.push((i.latitude, i.longitude));
    }

    fn close_part(&mut self) {
        if let Some(part) = self.parts.last_mut() {
            part.bbox = BoundingBox::from_points(self.points.drain(..)).unwrap_or(NO_BOX);
        }
    }

    fn finish(mut self) -> Plan {
        self.close_part();
        Plan {
            digest: format!("{:x}", self.digest.compute()),
            parts: self.parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sequence::Projection;

    fn sequence(n: usize) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/s".into(),
            name: "s".into(),
            description: String::new(),
            transport: None,
            tags: vec![],
            source: Default::default(),
            images: (0..n)
                .map(|i| ImageInfo {
                    path: format!("/s/{i}.jpg"),
                    file_name: format!("{i}.jpg"),
                    size_bytes: 10,
                    latitude: 52.0,
                    longitude: 6.0 + i as f64 * 1e-5,
                    altitude: None,
                    captured_at_ms: 1_000_000 + i as i64 * 1000,
                    heading: None,
                    projection: Projection::Flat,
                    width: None,
                    height: None,
                    photo_uuid: None,
                    sources: None,
                })
                .collect(),
        }
    }

    fn plan(sequence: &SequenceDescriptor) -> Result<Plan> {
        checked_plan(
            sequence,
            &SequenceImages::new(Images::whole(&sequence.images)),
        )
    }

    #[test]
    fn validation() {
        assert!(plan(&sequence(2)).is_ok());
        assert!(plan(&sequence(0)).is_err());
        let mut zero = sequence(2);
        zero.images[1].latitude = 0.0;
        zero.images[1].longitude = 0.0;
        assert!(matches!(plan(&zero), Err(MlyError::Invalid(m)) if m.contains("1.jpg")));
        let mut air = sequence(2);
        air.transport = plugin_api::transport::TransportType::parse("Paraglide").ok();
        assert!(plan(&air).is_err());
        // A refused projection anywhere is said before an unusable image earlier on.
        zero.images[1].projection = Projection::Other("fisheye".into());
        assert!(matches!(plan(&zero), Err(MlyError::Invalid(m)) if m.contains("projection")));
    }

    #[test]
    fn plan_digest_follows_what_is_sent() {
        let a = plan(&sequence(3)).unwrap();
        assert_eq!(a, plan(&sequence(3)).unwrap());
        assert_eq!(a.parts.len(), 1);
        assert_eq!((a.parts[0].len, a.parts[0].first_ms), (3, 1_000_000));
        let mut moved = sequence(3);
        moved.images[2].altitude = Some(3.0);
        assert_ne!(plan(&moved).unwrap().digest, a.digest);
    }

    /// The digests and parts the plan had when it was made from the whole list of images at once:
    /// stored plans of earlier versions must still match, or a sequence being published would be
    /// planned anew.
    #[test]
    fn plans_are_those_of_earlier_versions() {
        let mut s = sequence(2600);
        for (i, image) in s.images.iter_mut().enumerate() {
            image.path = format!("/s/d/{i}.jpg");
            image.size_bytes = 1000 + i as u64;
            image.latitude = 52.0 + i as f64 * 1e-5 + if i >= 1700 { 0.01 } else { 0.0 };
            image.longitude = 6.0 - i as f64 * 3e-6;
            image.altitude = (i % 3 == 0).then_some(10.5 + i as f64);
            image.captured_at_ms += if i >= 1500 { 120_000 } else { 0 };
            image.heading = (i % 2 == 0).then_some(i as f64 * 0.7);
            image.width = Some(640);
            image.height = Some(480);
        }
        let p = plan(&s).unwrap();
        assert_eq!(p.digest, "124d63a5914cb13d8ad6642a2d0a6e24");
        let sizes: Vec<usize> = p.parts.iter().map(|p| p.len).collect();
        assert_eq!(sizes, [1000, 500, 200, 900]);
        let images = SequenceImages::new(Images::whole(&s.images));
        assert_eq!(images.planned(&p, 1).unwrap().images[0], "/s/d/1000.jpg");
        assert_eq!(p.parts[2].start, 1500);
        assert_eq!(p.parts[3].bbox.max_lat, 52.03599);
        assert_eq!(p.parts[0].bbox.min_lon, 5.997003);
        s.images.truncate(3);
        assert_eq!(plan(&s).unwrap().digest, "68af1786b520e6bece98116e9c46ac70");
    }
}
