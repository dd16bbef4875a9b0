//! What Mapillary takes: a leaf the manifest's eligibility and the run's validation both ask, so the run
//! never reaches up to the crate root.

use plugin_api::prelude::*;
use plugin_api::sequence::Projection;

/// Why Mapillary cannot take `sequence`, if it cannot.
pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
    if let Some(transport) = &sequence.transport {
        if transport.is_air() {
            return Some(format!(
                "transport type {} is not accepted by Mapillary",
                transport
            ));
        }
    }
    sequence
        .projections()
        .into_iter()
        .find(|p| !matches!(p, Projection::Flat | Projection::Equirectangular))
        .map(|p| {
            format!(
                "projection {} is not accepted by Mapillary (only flat and equirectangular)",
                p.as_str()
            )
        })
}
