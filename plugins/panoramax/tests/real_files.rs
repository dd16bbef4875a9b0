//! mtp's prediction of what Panoramax accepts, on real camera files (`tests/data/real/`), against what
//! Panoramax's own reader decided (`golden_panoramax.json`, recorded with geopic-tag-reader 1.10.1 by
//! `scripts/golden/record_panoramax.py`): a file it refuses is predicted refused, a file it accepts
//! predicted accepted, from the host's one reading of the file.

use std::fs;
use std::path::{Path, PathBuf};

use mtp_panoramax::eligibility::missing_fields;
use mtp_sequence::{read_sequence, Overrides};
use plugin_api::serde_json::{self, Value};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/real")
}

#[test]
fn panoramax_acceptance_is_predicted_as_geopic_tag_reader_decides() {
    let golden: Value = serde_json::from_str(
        &fs::read_to_string(data_dir().join("golden_panoramax.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (name, g) in golden["files"].as_object().unwrap() {
        let tmp = tempfile::tempdir().unwrap();
        fs::copy(data_dir().join(name), tmp.path().join(name)).unwrap();
        let s = read_sequence(tmp.path(), &Overrides::default()).unwrap();
        let accepted_by_panoramax = g.get("refused").is_none();
        // Files without a position never reach an integration (mtp refuses them too).
        let Some(info) = s.images.get(0).unwrap().to_image_info() else {
            assert!(
                !accepted_by_panoramax,
                "{name}: Panoramax accepts what mtp cannot place"
            );
            continue;
        };
        checked += 1;
        let missing = missing_fields(&info);
        if missing.is_empty() != accepted_by_panoramax {
            wrong.push(format!(
                "{name}: predicted missing {missing:?}, geopic-tag-reader: {}",
                g.get("refused")
                    .map_or("accepted".to_string(), |r| r.to_string())
            ));
        }
    }
    assert!(checked >= 8, "only {checked} files compared");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
