//! A sequence's images as an integration reads them: lent by the host a range at a time (plugin API
//! 1.4), or the whole list when the request carried it (an in-process test, an older host's document).
//!
//! Reading a page at a time is what keeps a long sequence's cost flat: an eligibility question that
//! only counts or checks each image holds one page, never the 100,000 images of a four-hour
//! time-lapse.

use std::borrow::Cow;
use std::ops::ControlFlow;

use abi_stable::std_types::{RResult, RStr};

use super::Context;
use crate::error::PluginError;
use crate::protocol::{ImageRange, IMAGES_SERVICE, MAX_IMAGE_RANGE};
use crate::sequence::ImageInfo;

/// How many images [`Images::for_each_page`] reads at a time by default (about 350 KB of JSON).
pub const PAGE: u64 = 1_000;

/// The images of the sequence a call is about.
pub struct Images<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    Whole(&'a [ImageInfo]),
    Lent { ctx: &'a Context, count: u64 },
}

impl<'a> Images<'a> {
    /// Images the request carried.
    pub fn whole(images: &'a [ImageInfo]) -> Images<'a> {
        Images {
            source: Source::Whole(images),
        }
    }

    /// `count` images the host lends through `ctx`.
    pub fn lent(ctx: &'a Context, count: u64) -> Images<'a> {
        Images {
            source: Source::Lent { ctx, count },
        }
    }

    /// How many there are.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Whole(images) => images.len() as u64,
            Source::Lent { count, .. } => *count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `count` images from index `from` (fewer at the end).
    pub fn range(&self, from: u64, count: u64) -> Result<Cow<'a, [ImageInfo]>, PluginError> {
        let end = from.saturating_add(count).min(self.len());
        if from >= end {
            return Ok(Cow::Borrowed(&[]));
        }
        match &self.source {
            Source::Whole(images) => Ok(Cow::Borrowed(&images[from as usize..end as usize])),
            Source::Lent { ctx, .. } => {
                let mut read = Vec::with_capacity((end - from) as usize);
                let mut at = from;
                while at < end {
                    let page = ctx.image_range(ImageRange {
                        from: at,
                        count: (end - at).min(MAX_IMAGE_RANGE),
                    })?;
                    if page.is_empty() {
                        return Err(PluginError::other(format!(
                            "the host lent no image at index {at} of {}",
                            self.len()
                        )));
                    }
                    at += page.len() as u64;
                    read.extend(page);
                }
                Ok(Cow::Owned(read))
            }
        }
    }

    /// The images in pages of `page` (the index of its first image, the page), in order; an error
    /// ends them.
    pub fn pages(
        &self,
        page: u64,
    ) -> impl Iterator<Item = Result<(u64, Cow<'a, [ImageInfo]>), PluginError>> + '_ {
        let page = page.max(1);
        let mut from = 0;
        std::iter::from_fn(move || {
            if from >= self.len() {
                return None;
            }
            let at = from;
            let images = self.range(at, page);
            // A short lend is the range's error; either way an error is the last item.
            from = match &images {
                Ok(images) if !images.is_empty() => at + images.len() as u64,
                _ => u64::MAX,
            };
            Some(images.map(|images| (at, images)))
        })
    }

    /// Calls `visit` with each page of `page` images (the index of its first image, the page) in
    /// order, until it breaks or the images end.
    pub fn for_each_page(
        &self,
        page: u64,
        mut visit: impl FnMut(u64, &[ImageInfo]) -> ControlFlow<()>,
    ) -> Result<(), PluginError> {
        for read in self.pages(page) {
            let (from, images) = read?;
            if visit(from, &images).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Calls `visit` with each image in order, a page at a time.
    pub fn for_each(&self, mut visit: impl FnMut(&ImageInfo)) -> Result<(), PluginError> {
        self.for_each_page(PAGE, |_, page| {
            page.iter().for_each(&mut visit);
            ControlFlow::Continue(())
        })
    }

    /// The distinct projections, in the order they first appear (as
    /// [`crate::sequence::SequenceDescriptor::projections`]).
    pub fn projections(&self) -> Result<Vec<crate::sequence::Projection>, PluginError> {
        let mut out = Vec::new();
        self.for_each(|image| {
            if !out.contains(&image.projection) {
                out.push(image.projection.clone());
            }
        })?;
        Ok(out)
    }

    /// Every image, in one list (what a run that needs them all at once reads).
    pub fn collect(&self) -> Result<Vec<ImageInfo>, PluginError> {
        Ok(self.range(0, self.len())?.into_owned())
    }
}

/// Where a run's images are ([`crate::sdk::Integration::run_paged`]): lent by the host, or in the
/// request's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunImages {
    lent: Option<u64>,
}

impl RunImages {
    /// The images are the request's own (an in-process call, an older host's document).
    pub fn carried() -> RunImages {
        RunImages { lent: None }
    }

    /// The host lends `count` images.
    pub fn lent(count: u64) -> RunImages {
        RunImages { lent: Some(count) }
    }

    /// Whether the host lends them (the request's sequence then carries none).
    pub fn is_lent(&self) -> bool {
        self.lent.is_some()
    }

    /// The images of the run whose sequence is `sequence`.
    pub fn read<'a>(
        &self,
        ctx: &'a Context,
        sequence: &'a crate::sequence::SequenceDescriptor,
    ) -> Images<'a> {
        match self.lent {
            Some(count) => Images::lent(ctx, count),
            None => Images::whole(&sequence.images),
        }
    }
}

impl Context {
    /// The images `range` names, from the host ([`IMAGES_SERVICE`]).
    pub(crate) fn image_range(&self, range: ImageRange) -> Result<Vec<ImageInfo>, PluginError> {
        let payload = serde_json::to_string(&range)
            .map_err(|err| PluginError::other(format!("cannot encode an image range: {err}")))?;
        match self
            .host()
            .extension(RStr::from_str(IMAGES_SERVICE), RStr::from_str(&payload))
        {
            RResult::ROk(json) => serde_json::from_str(json.as_str()).map_err(|err| {
                PluginError::other(format!(
                    "the host answered images {}..{} with a malformed document: {err}",
                    range.from,
                    range.from + range.count
                ))
            }),
            RResult::RErr(err) => Err(PluginError::other(format!(
                "the host could not lend images {}..{}: {err}",
                range.from,
                range.from + range.count
            ))),
        }
    }
}
