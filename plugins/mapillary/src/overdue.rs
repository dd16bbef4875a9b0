//! A published part that Mapillary has not shown within the deadline (72 h, `docs/providers/mapillary.md`,
//! "Finding the sequence key") is *overdue*, not failed: Mapillary accepted it, so publishing it again on
//! a slow day would make a duplicate. It is still looked for, less and less often, and only
//! `mtp upload --republish` publishes it again, after one more lookup.

use std::time::Duration;

use crate::state::{PartState, Publish};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

pub use plugin_api::time::human_span;

/// How long to wait between lookups of a part overdue for `late`: hourly during the first day past the
/// deadline, then daily (our decision: one lookup per waiting part per re-check, as the documented graph
/// limits ask, and fewer as it becomes unlikely that the next hour changes anything).
pub fn lookup_interval(late: Duration) -> Duration {
    if late < DAY {
        HOUR
    } else {
        DAY
    }
}

/// When `part` was accepted (Unix ms), if it was.
fn published_at(part: &PartState) -> Option<i64> {
    match part.publish {
        Publish::Published { at_ms, .. } => Some(at_ms),
        _ => None,
    }
}

/// How long past the deadline `part` is at `now_ms`, if it is overdue (accepted, no key, past it).
pub fn overdue_for(part: &PartState, now_ms: i64, deadline: Duration) -> Option<Duration> {
    if part.sequence_key.is_some() {
        return None;
    }
    let waited = now_ms.saturating_sub(published_at(part)?);
    let deadline_ms = i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX);
    (waited > deadline_ms).then(|| Duration::from_millis((waited - deadline_ms).unsigned_abs()))
}

/// When the next lookup of an overdue part is due (Unix ms), `None` when it is not overdue.
pub fn next_lookup_ms(part: &PartState, now_ms: i64, deadline: Duration) -> Option<i64> {
    let late = overdue_for(part, now_ms, deadline)?;
    let interval = i64::try_from(lookup_interval(late).as_millis()).unwrap_or(i64::MAX);
    Some(
        part.last_lookup_ms
            .map_or(now_ms, |last| last.saturating_add(interval)),
    )
}

/// Whether a lookup of `part` is due now: always before the deadline (once per re-check), then by
/// [`lookup_interval`].
pub fn lookup_due(part: &PartState, now_ms: i64, deadline: Duration) -> bool {
    next_lookup_ms(part, now_ms, deadline).is_none_or(|next| now_ms >= next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(at_ms: i64, last_lookup_ms: Option<i64>) -> PartState {
        PartState {
            publish: Publish::Published {
                at_ms,
                cluster_id: "c".into(),
            },
            last_lookup_ms,
            ..PartState::default()
        }
    }

    #[test]
    fn backs_off_hourly_then_daily() {
        let h = 3_600_000i64;
        let deadline = Duration::from_secs(72 * 3600);
        // Within the deadline: every re-check looks.
        assert!(lookup_due(&published(0, Some(71 * h)), 71 * h, deadline));
        // 2 h late, looked 30 min ago: not yet; 61 min ago: due.
        assert!(!lookup_due(
            &published(0, Some(74 * h - h / 2)),
            74 * h,
            deadline
        ));
        assert!(lookup_due(
            &published(0, Some(74 * h - h - 60_000)),
            74 * h,
            deadline
        ));
        // 3 days late: daily.
        let now = 72 * h + 72 * h;
        assert!(!lookup_due(
            &published(0, Some(now - 23 * h)),
            now,
            deadline
        ));
        assert!(lookup_due(&published(0, Some(now - 24 * h)), now, deadline));
        assert_eq!(
            next_lookup_ms(&published(0, Some(now - 23 * h)), now, deadline),
            Some(now + h)
        );
        // Found parts and unsent parts are never overdue.
        let mut found = published(0, None);
        found.sequence_key = Some("k".into());
        assert_eq!(overdue_for(&found, now, deadline), None);
        assert_eq!(overdue_for(&PartState::default(), now, deadline), None);
    }
}
