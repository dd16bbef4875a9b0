//! Which sequences Strava takes: any whose track can be written and that Strava would not refuse
//! ([`crate::track::refusal`]). Pure: it reads the descriptor only, and `run` refuses the same.

use plugin_api::prelude::*;

/// Whether `sequence` can become a Strava activity.
pub fn eligibility(sequence: &SequenceDescriptor) -> Eligibility {
    answer(crate::track::refusal(sequence))
}

/// The eligibility answer for a track's `refusal`.
pub fn answer(refusal: Option<String>) -> Eligibility {
    match refusal {
        Some(reason) => Eligibility::not_eligible(format!(
            "the track cannot become a Strava activity: {reason}"
        )),
        None => Eligibility::eligible(),
    }
}
