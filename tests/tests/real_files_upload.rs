//! The rule of the real-file corpus (`tests/data/real/`, `SOURCES.md` there), through the real binary
//! against the fakes: every file that both official readers accept (mapillary_tools geotags it,
//! `golden.json`; geopic-tag-reader accepts it, `golden_panoramax.json`) `mtp upload` takes without a flag,
//! and it reaches Mapillary. Each file is its own sequence, as it would be in its own folder.

use std::path::Path;

use mtp_fakes::fake_mapillary::MapillaryConfig;
use mtp_fakes::fake_mtpw::MtpwConfig;
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/real")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn every_file_both_official_readers_accept_mtp_uploads_without_flags() {
    let mapillary = load("golden.json");
    let panoramax = load("golden_panoramax.json");
    let both: Vec<String> = panoramax["files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, g)| {
            g.get("refused").is_none()
                && mapillary["files"]
                    .get(name.as_str())
                    .is_some_and(|m| m.get("error").is_none())
        })
        .map(|(name, _)| name.clone())
        .collect();
    assert!(
        both.len() >= 10,
        "only {} files accepted by both",
        both.len()
    );

    let world = FakesWorld::start(MapillaryConfig::default(), MtpwConfig::default());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/real");
    let mut dirs = Vec::new();
    for name in &both {
        let dir = world.dir(&format!("seq_{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(data.join(name), dir.join(name)).unwrap();
        dirs.push(dir.to_string_lossy().into_owned());
    }
    world.authorise();
    let mut args = vec!["upload", "--transport", "Walk"];
    args.extend(dirs.iter().map(String::as_str));
    let out = world.run(&args);
    let all = text(&out);
    assert!(!all.contains("skip-invalid"), "no file needs a flag: {all}");
    assert!(!all.contains("blocking problem"), "{all}");
    let published = world.mapillary.stats().sequences;
    let images: usize = published.iter().map(|s| s.images.len()).sum();
    assert_eq!(
        images,
        both.len(),
        "every file reached Mapillary ({} sequences): {all}",
        published.len()
    );
}
