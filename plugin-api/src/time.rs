//! Time formatting shared by the host, the sequence reader and providers.

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2020-05-10T06:45:03.000Z`): the form MTPDU
/// files and Mapillary's `start_captured_at`/`end_captured_at` use. Out of range: the number with ` ms`.
///
/// ```
/// assert_eq!(plugin_api::time::format_utc(1_589_093_103_000), "2020-05-10T06:45:03.000Z");
/// ```
pub fn format_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `3 days 4 h`, `5 h 10 min`, `12 min`, `40 s`.
pub fn human_span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (1, 0, _) => "1 day".into(),
        (1, h, _) => format!("1 day {h} h"),
        (d, 0, _) => format!("{d} days"),
        (d, h, _) => format!("{d} days {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spans() {
        assert_eq!(human_span(Duration::from_secs(40)), "40 s");
        assert_eq!(
            human_span(Duration::from_secs(3600 * 5 + 600)),
            "5 h 10 min"
        );
        assert_eq!(
            human_span(Duration::from_secs(86_400 * 3 + 3600 * 4)),
            "3 days 4 h"
        );
        assert_eq!(human_span(Duration::from_secs(86_400 + 60)), "1 day");
    }
}
