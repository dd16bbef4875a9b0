//! The sequence descriptor as it crosses the plugin boundary. A plugin of plugin API 1.4 or later gets
//! the descriptor's header and reads the images a range at a time through the host's
//! `sequence_images` service ([`crate::services::PluginServices::with_images`]), so a 100,000-image
//! sequence is never one 35 MB document on either side; an older plugin gets the whole document, as it
//! expects. `mtp upload` asks each integration whether it takes the sequence before sending anything
//! (`preflight`) and again in the run loop, and `mtp sequence inspect` asks the enabled ones in its plan
//! and every loaded one beside it: the runner keeps the answers, so each integration is asked once per
//! descriptor. The host holds the sequence packed ([`PackedSequence`]): a range is the packed pages'
//! JSON, and a whole document is written from the pages, a page at a time, into the one buffer the
//! plugin receives, never kept (docs/architecture.md, "Memory").
//!
//! Answers are kept for one descriptor at a time, recognised by a hash of its content (not its address):
//! `mtp serve` keeps one runner for many requests, and a folder read again may have changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use plugin_api::manifest::ApiVersion;
use plugin_api::protocol::{Eligibility, Method, PagedSequence, RunMode, RunOutcome};
use plugin_api::PluginError;
use serde::Serialize;

use crate::packed_images::PackedSequence;
use crate::registry::LoadedPlugin;
use crate::sequence_content::SequenceContent;
use crate::services::PluginServices;

/// The eligibility answers for the last descriptor the runner was asked about.
#[derive(Default)]
pub(crate) struct AskedOnce(Mutex<Option<Asked>>);

struct Asked {
    fingerprint: u64,
    answers: BTreeMap<String, Result<Eligibility, PluginError>>,
}

impl AskedOnce {
    fn entry(&self, fingerprint: u64) -> MutexGuard<'_, Option<Asked>> {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.as_ref().map(|a| a.fingerprint) != Some(fingerprint) {
            *guard = Some(Asked {
                fingerprint,
                answers: BTreeMap::new(),
            });
        }
        guard
    }

    /// The answer `integration` gave earlier for the descriptor whose [`fingerprint`] is `fingerprint`,
    /// if it was asked.
    pub(crate) fn answer(
        &self,
        integration: &str,
        fingerprint: u64,
    ) -> Option<Result<Eligibility, PluginError>> {
        self.entry(fingerprint)
            .as_ref()
            .and_then(|a| a.answers.get(integration).cloned())
    }

    /// Keeps `answer` as `integration`'s for the descriptor whose [`fingerprint`] is `fingerprint`.
    pub(crate) fn remember(
        &self,
        integration: &str,
        fingerprint: u64,
        answer: &Result<Eligibility, PluginError>,
    ) {
        if let Some(asked) = self.entry(fingerprint).as_mut() {
            asked
                .answers
                .insert(integration.to_string(), answer.clone());
        }
    }
}

impl AskedOnce {
    /// Whether `integration` takes `sequence`, asked once per descriptor (see the module's docs);
    /// `services` are the host services the call gets when it has to be made.
    pub(crate) async fn ask_eligibility(
        &self,
        integration: &LoadedPlugin,
        services: impl FnOnce() -> PluginServices,
        sequence: &Arc<PackedSequence>,
    ) -> Result<Eligibility, PluginError> {
        // Hashed once for both the look and the keeping.
        let fingerprint = sequence.fingerprint();
        if let Some(answer) = self.answer(integration.id(), fingerprint) {
            return answer;
        }
        let (arg, services) = SequenceArg::for_call(integration, sequence, services());
        let payload = to_json(&arg, arg.images_inline());
        let answer = integration
            .call_parsed(services.to_ffi(), Method::Eligibility, payload?)
            .await;
        crate::allocator::release_freed_memory();
        self.remember(integration.id(), fingerprint, &answer);
        answer
    }
}

impl LoadedPlugin {
    /// Runs the integration with `request` about `sequence`, on `services`.
    pub(crate) async fn run(
        &self,
        services: PluginServices,
        sequence: &Arc<PackedSequence>,
        request: RunRequestRef<'_>,
    ) -> Result<RunOutcome, PluginError> {
        let (arg, services) = SequenceArg::for_call(self, sequence, services);
        let inline = arg.images_inline();
        let request = to_json(
            &RunRequestBody {
                head: request,
                sequence: arg,
            },
            inline,
        )?;
        let outcome = self
            .call_parsed(services.to_ffi(), Method::Run, request)
            .await;
        crate::allocator::release_freed_memory();
        outcome
    }

    /// Whether it reads a sequence's images by range (plugin API 1.4 and later) rather than in one
    /// document.
    pub(crate) fn reads_images_by_range(&self) -> bool {
        ApiVersion::parse(&self.manifest.api_version).is_some_and(|v| (v.major, v.minor) >= (1, 4))
    }
}

/// The sequence as a plugin receives it: the whole descriptor for a plugin of an older protocol, its
/// header with the images lent by range ([`plugin_api::protocol::IMAGES_SERVICE`]) for one of 1.4 and
/// later, so that neither side holds the images as one document.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum SequenceArg<'a> {
    Whole(&'a PackedSequence),
    Paged(PagedSequence),
}

impl<'a> SequenceArg<'a> {
    /// `sequence` as `integration` receives it, and the `services` of the call, which lend the
    /// images when the sequence goes without them.
    fn for_call(
        integration: &LoadedPlugin,
        sequence: &'a Arc<PackedSequence>,
        services: PluginServices,
    ) -> (SequenceArg<'a>, PluginServices) {
        if integration.reads_images_by_range() {
            let paged = PagedSequence {
                header: sequence.header().clone(),
                image_count: sequence.image_count() as u64,
            };
            (
                SequenceArg::Paged(paged),
                services.with_images(sequence.clone()),
            )
        } else {
            (SequenceArg::Whole(sequence), services)
        }
    }

    /// How many images the request itself carries (what its buffer is reserved for).
    fn images_inline(&self) -> usize {
        match self {
            SequenceArg::Whole(whole) => whole.image_count(),
            SequenceArg::Paged(_) => 0,
        }
    }
}

/// A [`plugin_api::protocol::RunRequest`]'s fields but the sequence, borrowed (plugins of any version
/// read the request they make up).
#[derive(Serialize)]
pub(crate) struct RunRequestRef<'a> {
    pub mode: RunMode,
    pub dry_run: bool,
    pub upstream: &'a BTreeMap<String, plugin_api::protocol::Exports>,
    pub previous: &'a Option<RunOutcome>,
    pub options: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct RunRequestBody<'a> {
    #[serde(flatten)]
    head: RunRequestRef<'a>,
    sequence: SequenceArg<'a>,
}

/// `value` as JSON, written into one buffer reserved up front for `images` images. The plugin takes
/// the text by value, so it is made afresh for each call rather than kept and copied: one copy alive at a
/// time. A `String` grown by doubling would hold the old and the new buffer at once at each step; the
/// reservation is generous instead, and costs nothing resident beyond the bytes written (large
/// allocations are mapped lazily).
fn to_json<T: Serialize>(value: &T, images: usize) -> Result<String, PluginError> {
    const PER_IMAGE: usize = 1024;
    let mut buffer = Vec::with_capacity(64 * 1024 + images * PER_IMAGE);
    serde_json::to_writer(&mut buffer, value)
        .map_err(|err| PluginError::other(format!("cannot encode the request: {err}")))?;
    // serde_json writes UTF-8 only.
    String::from_utf8(buffer)
        .map_err(|err| PluginError::other(format!("cannot encode the request: {err}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use plugin_api::protocol::RunRequest;
    use plugin_api::sequence::{ImageInfo, Projection, SequenceDescriptor};

    /// A sequence of `images` made-up images, for the host's unit tests.
    pub(crate) fn sequence(images: usize) -> SequenceDescriptor {
        SequenceDescriptor {
            schema: 1,
            id: "s".into(),
            root: "/r".into(),
            name: "walk".into(),
            description: String::new(),
            transport: None,
            tags: vec!["a".into()],
            source: Default::default(),
            images: (0..images)
                .map(|i| ImageInfo {
                    path: format!("/r/{i}.jpg"),
                    file_name: format!("{i}.jpg"),
                    size_bytes: 10,
                    latitude: 1.0,
                    longitude: 2.0,
                    altitude: None,
                    captured_at_ms: i as i64,
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

    #[test]
    fn answers_are_kept_for_the_same_content_only() {
        let asked = AskedOnce::default();
        let one = sequence(3);
        asked.remember("mapillary", one.fingerprint(), &Ok(Eligibility::eligible()));
        assert_eq!(
            asked.answer("mapillary", one.clone().fingerprint()),
            Some(Ok(Eligibility::eligible()))
        );
        assert_eq!(asked.answer("panoramax", one.fingerprint()), None);
        let mut moved = one.clone();
        moved.images[1].size_bytes = 11;
        assert_eq!(asked.answer("mapillary", moved.fingerprint()), None);
        // Only one descriptor is remembered: the first one is asked again.
        assert_eq!(asked.answer("mapillary", one.fingerprint()), None);
    }

    #[test]
    fn the_borrowing_request_reads_as_a_run_request() {
        let seq = sequence(2);
        let packed = PackedSequence::pack(seq.clone()).unwrap();
        let mut options = serde_json::Map::new();
        options.insert("jobs".into(), 4.into());
        let upstream = BTreeMap::new();
        let previous = None;
        let head = RunRequestRef {
            mode: RunMode::Upload,
            dry_run: true,
            upstream: &upstream,
            previous: &previous,
            options: &options,
        };
        let body = RunRequestBody {
            head,
            sequence: SequenceArg::Whole(&packed),
        };
        let request: RunRequest = serde_json::from_str(&to_json(&body, 2).unwrap()).unwrap();
        assert_eq!(request.sequence, seq);
        assert!(request.dry_run);
        assert_eq!(request.options, options);
    }
}
