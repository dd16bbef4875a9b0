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
