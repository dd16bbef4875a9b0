//! What Mapillary takes: a leaf the manifest's eligibility and the run's validation both ask, so the run
//! never reaches up to the crate root.

use plugin_api::prelude::*;
use plugin_api::sdk::Images;
use plugin_api::sequence::Projection;

/// Why Mapillary cannot take `sequence`, if it cannot.
pub fn refusal(sequence: &SequenceDescriptor) -> Option<String> {
    transport_refusal(sequence).or_else(|| projection_refusal(&sequence.projections()))
}

/// [`refusal`] for a sequence whose images are read by range (none is read for a refused transport).
pub fn refusal_paged(
    sequence: &SequenceDescriptor,
    images: &Images<'_>,
) -> Result<Option<String>, PluginError> {
    match transport_refusal(sequence) {
        Some(reason) => Ok(Some(reason)),
        None => Ok(projection_refusal(&images.projections()?)),
    }
}

/// Why Mapillary cannot take `sequence`'s transport, if it cannot.
pub fn transport_refusal(sequence: &SequenceDescriptor) -> Option<String> {
    let transport = sequence.transport.as_ref()?;
    transport
        .is_air()
        .then(|| format!("transport type {} is not accepted by Mapillary", transport))
}

/// Why Mapillary cannot take a sequence of `projections`, if it cannot.
pub fn projection_refusal(projections: &[Projection]) -> Option<String> {
    projections
        .iter()
        .find(|p| !matches!(p, Projection::Flat | Projection::Equirectangular))
        .map(|p| {
            format!(
                "projection {} is not accepted by Mapillary (only flat and equirectangular)",
                p.as_str()
            )
        })
}
