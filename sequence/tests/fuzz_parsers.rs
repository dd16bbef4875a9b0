//! Property tests (a fuzz target run in CI with a bounded number of cases): the MTPDU parsers never
//! panic on arbitrary input, and what they accept survives a round trip.

use mtp_sequence::mtpdu::{
    format_map_capture_time, parse_map_capture_time, MtpImageDescription, SequenceLog,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn image_description_parser_never_panics(text in ".{0,400}") {
        let _ = MtpImageDescription::parse(&text);
    }

    #[test]
    fn image_description_parser_survives_json_shaped_garbage(
        lat in proptest::num::f64::ANY,
        lon in any::<i64>(),
        time in "[0-9_]{0,30}",
        extra in "[a-zA-Z{}\\[\\]\",:0-9. ]{0,80}",
    ) {
        let text = format!(
            r#"{{"MAPLatitude": {lat:?}, "MAPLongitude": {lon}, "MAPCaptureTime": "{time}", "X": "{extra}"}}"#
        );
        let _ = MtpImageDescription::parse(&text);
        let _ = MtpImageDescription::parse(&text[..text.len() / 2]);
    }

    #[test]
    fn sequence_log_parser_never_panics(text in ".{0,400}") {
        let _ = SequenceLog::parse(&text);
    }

    #[test]
    fn capture_times_round_trip(ms in 0i64..4_102_444_800_000) {
        let text = format_map_capture_time(ms).expect("a time in range formats");
        prop_assert_eq!(parse_map_capture_time(&text), Some(ms));
    }

    #[test]
    fn capture_time_parser_never_panics(text in "[0-9_]{0,40}|.{0,40}") {
        let _ = parse_map_capture_time(&text);
    }
}
