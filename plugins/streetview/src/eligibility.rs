//! Which photos Street View takes, from the host's one reading of each file.
//!
//! The reference (`photo.startUpload`) asks for Photo Sphere XMP metadata and a photo that is "a full
//! 360 horizontally"; `photo.create` answers `INVALID_ARGUMENT` for anything else. The "Limits" page
//! caps a photo at 75 MB and 100 megapixels. So a photo goes when the host read `GPano:ProjectionType`
//! `equirectangular` from it, it is a JPEG within both limits, and it has a position. A sequence with no
//! such photo is not eligible (a flat sequence: with the reason); the others are left out with one note.

use plugin_api::prelude::*;
use plugin_api::sdk::refusals::Refusals;

/// The size limit: 75 MB (taken as 75,000,000 bytes: the stricter reading).
pub const MAX_BYTES: u64 = 75_000_000;
/// The resolution limit: 100 megapixels.
pub const MAX_PIXELS: u64 = 100_000_000;
/// At most this many files are named in a note or refusal.
const NAMED_FILES: usize = 3;

/// The name a photo is known by.
pub fn name_of(image: &ImageInfo) -> &str {
    if image.file_name.is_empty() {
        image.path.as_str()
    } else {
        image.file_name.as_str()
    }
}

/// Why Street View would refuse `image`, if it would.
pub fn refusal_of(image: &ImageInfo) -> Option<String> {
    if image.projection != Projection::Equirectangular {
        return Some(
            "not a 360° photo (no Photo Sphere XMP GPano:ProjectionType=\"equirectangular\")"
                .into(),
        );
    }
    let lower = name_of(image).to_ascii_lowercase();
    if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg")) {
        return Some("not a .jpg/.jpeg file".into());
    }
    if image.size_bytes > MAX_BYTES {
        return Some(format!(
            "{:.1} MB, over Google's 75 MB a photo",
            image.size_bytes as f64 / 1e6
        ));
    }
    if let (Some(w), Some(h)) = (image.width, image.height) {
        let pixels = u64::from(w) * u64::from(h);
        if pixels > MAX_PIXELS {
            return Some(format!(
                "{w}×{h} is {:.1} megapixels, over Google's 100",
                pixels as f64 / 1e6
            ));
        }
    }
    let (lat, lon) = (image.latitude, image.longitude);
    if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0)
        || (lat == 0.0 && lon == 0.0)
    {
        return Some("no GPS position".into());
    }
    None
}

fn describe(refused: &Refusals) -> String {
    refused
        .groups()
        .iter()
        .map(|group| {
            let more = group.unnamed();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{}{tail}: {}", group.names.join(", "), group.reason)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The photos Street View would take, and a note naming those left out (`None` when none is); `Err`
/// with the reason when none would go.
pub fn accepted_part(
    sequence: &SequenceDescriptor,
) -> Result<(SequenceDescriptor, Option<String>), String> {
    let mut kept = sequence.clone();
    let mut count = Count::default();
    kept.images.retain(|image| count.take(image));
    count.verdict().map(|note| (kept, note))
}

/// What a pass over the images found: how many, which Street View would refuse, whether all are flat.
struct Count {
    total: usize,
    refused: Refusals,
    flat: bool,
}

impl Default for Count {
    fn default() -> Count {
        Count {
            total: 0,
            refused: Refusals::naming(NAMED_FILES),
            flat: true,
        }
    }
}

impl Count {
    /// Counts `image`; whether Street View would take it.
    fn take(&mut self, image: &ImageInfo) -> bool {
        self.total += 1;
        self.flat &= image.projection != Projection::Equirectangular;
        match refusal_of(image) {
            Some(why) => {
                self.refused.add(name_of(image), why);
                false
            }
            None => true,
        }
    }

    /// The note naming the photos left out (`None` when none is); `Err` when none would go.
    fn verdict(self) -> Result<Option<String>, String> {
        let Count {
            total,
            refused,
            flat,
        } = self;
        if refused.len() == total {
            return Err(if total == 0 {
                "the sequence has no photos".into()
            } else if flat {
                format!(
                    "Google Street View takes only 360° equirectangular photos (Photo Sphere XMP \
                     GPano:ProjectionType=\"equirectangular\"); the {total} photos of this sequence are flat"
                )
            } else {
                format!(
                    "Google Street View would take none of its {total} photos: {}",
                    describe(&refused)
                )
            });
        }
        if refused.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "Google Street View would refuse {} of {total} photos, left out: {}",
            refused.len(),
            describe(&refused)
        )))
    }
}

/// [`eligibility`] for a sequence whose images are read a page at a time.
pub fn eligibility_paged(images: &Images<'_>) -> Result<Eligibility, PluginError> {
    let mut count = Count::default();
    images.for_each(|image| {
        count.take(image);
    })?;
    Ok(answer(count.verdict()))
}

/// Whether `sequence` can go to Street View (pure: `run` refuses the same).
pub fn eligibility(sequence: &SequenceDescriptor) -> Eligibility {
    answer(accepted_part(sequence).map(|(_, note)| note))
}

fn answer(verdict: Result<Option<String>, String>) -> Eligibility {
    match verdict {
        Err(reason) => Eligibility::not_eligible(reason),
        Ok(None) => Eligibility::eligible(),
        Ok(Some(note)) => Eligibility::eligible().with_note(note),
    }
}
