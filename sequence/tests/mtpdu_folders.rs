//! MTPDU sequence folders as they exist on users' disks: a `destination` block in the sequence log, the
//! transport names of MTPDU's 2020 releases, and whole-second capture times from time-lapses faster than
//! one frame per second.

use std::fs;
use std::path::{Path, PathBuf};

use mtp_sequence::generate::{
    destination, generate_sequence, write_image, GenerateOptions, GeneratedSequence, ImageSpec,
};
use mtp_sequence::mtpdu::{format_map_capture_time, MtpImageDescription};
use mtp_sequence::{read_sequence, Overrides, ProblemKind};
use plugin_api::transport::TransportType;

const T0: i64 = 1_600_000_000_000;

fn mtpdu_sequence(dir: &Path, count: usize) -> GeneratedSequence {
    let opts = GenerateOptions {
        count,
        mtpdu: true,
        name: "Harbour".into(),
        transport: Some(TransportType::parse("Earth/Walk").unwrap()),
        ..Default::default()
    };
    generate_sequence(&dir.join("harbour"), &opts).unwrap()
}

fn log_path(g: &GeneratedSequence) -> PathBuf {
    g.root.join(format!(
        "{}.json",
        g.root.file_name().unwrap().to_string_lossy()
    ))
}

/// Edits the sequence log's `sequence` object as MTPDU (or a user) would have left it.
fn edit_log(
    g: &GeneratedSequence,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = log_path(g);
    let mut log: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(log["sequence"].as_object_mut().unwrap());
    fs::write(&path, serde_json::to_string(&log).unwrap()).unwrap();
}

#[test]
fn a_destination_block_is_read_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let g = mtpdu_sequence(tmp.path(), 3);
    // What MTPDU's checkIntegrationStatus leaves once both are done, tokens included.
    edit_log(&g, |seq| {
        seq.insert(
            "destination".into(),
            serde_json::json!({"mapillary": true, "mapillary_user_token": "mly-secret",
                "mtp": "8a0f3f8e-2c55-4b8e-9a51-0d4c0a1b2c3d", "mtpw_user_token": "mtpw-secret"}),
        );
    });
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    let prior = s.prior_uploads();
    assert!(prior["mapillary"].published);
    assert!(!prior["mtpw"].published);
    assert_eq!(
        prior["mtpw"].id.as_deref(),
        Some("8a0f3f8e-2c55-4b8e-9a51-0d4c0a1b2c3d")
    );
    let text = s.summary().unwrap().render_text();
    assert!(
        text.contains("mtp upload skips mapillary for it unless you pass --force"),
        "{text}"
    );
    assert!(
        text.contains("reuses it instead of creating another"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");

    edit_log(&g, |seq| {
        seq.insert(
            "destination".into(),
            serde_json::json!({"mapillary": true, "mtp": true}),
        );
    });
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.prior_uploads()["mtpw"].published);
    // A failed attempt is no reason to skip.
    edit_log(&g, |seq| {
        seq.insert(
            "destination".into(),
            serde_json::json!({"mapillary": "Error: Network Error"}),
        );
    });
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.prior_uploads().is_empty());
}

#[test]
fn transport_names_of_2020_are_accepted_and_explained() {
    let tmp = tempfile::tempdir().unwrap();
    for (parent, child, today, air) in [
        ("Powered", "Drone", "Air/Drone", true),
        ("Powered", "Boat", "Water/Boat", false),
        (
            "Powered",
            "Electric Scooter",
            "Earth/Electric Scooter",
            false,
        ),
        ("Powered", "Snowmobile", "Snow/Snowmobile", false),
        ("Air", "Hanglide", "Air/Hang Glide", true),
    ] {
        let g = mtpdu_sequence(&tmp.path().join(child), 2);
        edit_log(&g, |seq| {
            seq.insert("uploader_transport_type".into(), parent.into());
            seq.insert("uploader_transport_method".into(), child.into());
        });
        let s = read_sequence(&g.root, &Overrides::default()).unwrap();
        assert!(s.is_valid(), "{parent}-{child}: {:#?}", s.problems);
        assert_eq!(s.transport.as_ref().unwrap().to_string(), today);
        let (descriptor, _) = s.to_descriptor(false).unwrap();
        assert_eq!(descriptor.transport.unwrap().to_string(), today);
        let notes = s.notes().unwrap();
        let note = notes
            .iter()
            .find(|n| n.contains("2020"))
            .expect("a mapping note");
        assert!(
            note.contains(&format!("{parent}-{child}")) && note.contains(today),
            "{note}"
        );
        assert_eq!(
            note.contains("Mapillary accepts no Air transport"),
            air,
            "{note}"
        );
    }
}

/// A folder like MTPDU's `final_raw/` after a 4 frame/s time-lapse: whole-second times, 2 m apart.
fn time_lapse(dir: &Path, duplicate_last: bool) -> PathBuf {
    let g = mtpdu_sequence(dir, 1);
    fs::remove_dir_all(&g.image_dir).unwrap();
    fs::create_dir_all(&g.image_dir).unwrap();
    for i in 0..8 {
        let (mut lat, mut lon) = destination(47.0, 8.0, 0.0, 2.0 * i as f64);
        let whole = T0 + 1000 * (i as i64 / 4);
        if duplicate_last && i == 7 {
            (lat, lon) = destination(47.0, 8.0, 0.0, 2.0 * 6.0);
        }
        let description = MtpImageDescription {
            sequence_uuid: Some(g.sequence_uuid.clone()),
            latitude: Some(lat),
            longitude: Some(lon),
            capture_time: format_map_capture_time(whole),
            image_copy: Some("final_raw".into()),
            image_projection: Some("flat".into()),
            ..Default::default()
        };
        let spec = ImageSpec {
            latitude: Some(lat),
            longitude: Some(lon),
            captured_at_ms: Some(whole),
            description: Some(description),
            seed: i,
            ..Default::default()
        };
        write_image(&g.image_dir.join(format!("{i:03}.jpg")), &spec).unwrap();
    }
    g.root
}

#[test]
fn equal_whole_second_times_are_spread_within_the_second() {
    let tmp = tempfile::tempdir().unwrap();
    let root = time_lapse(tmp.path(), false);
    let s = read_sequence(&root, &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    let (descriptor, skipped) = s.to_descriptor(false).unwrap();
    assert!(skipped.is_empty());
    // Taken apart a page at a time, the scan gives the same descriptor.
    let mut pages = Vec::new();
    let (mut header, _) = s
        .descriptor_pages(false, 3, |page| pages.push(page))
        .unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    assert_eq!(header.images, []);
    header.images = pages.concat();
    assert_eq!(header, descriptor);
    let times: Vec<i64> = descriptor
        .images
        .iter()
        .map(|i| i.captured_at_ms - T0)
        .collect();
    assert_eq!(times, [0, 250, 500, 750, 1000, 1250, 1500, 1750]);
    // The file's own time is handed over where it was moved, and only there.
    let from_file: Vec<Option<i64>> = descriptor
        .images
        .iter()
        .map(|i| i.sources.as_ref().unwrap().spread_from_ms.map(|t| t - T0))
        .collect();
    assert_eq!(
        from_file,
        [
            None,
            Some(0),
            Some(0),
            Some(0),
            None,
            Some(1000),
            Some(1000),
            Some(1000)
        ]
    );
    let names: Vec<&str> = descriptor
        .images
        .iter()
        .map(|i| i.file_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["000.jpg", "001.jpg", "002.jpg", "003.jpg", "004.jpg", "005.jpg", "006.jpg", "007.jpg"]
    );
    let text = s.summary().unwrap().render_text();
    assert!(
        text.contains("8 images share whole-second capture times"),
        "{text}"
    );
    assert!(text.contains("as mapillary_tools does"), "{text}");
}

#[test]
fn a_duplicate_of_the_previous_photo_is_left_out_and_the_rest_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = time_lapse(tmp.path(), true);
    let s = read_sequence(&root, &Overrides::default()).unwrap();
    let dups: Vec<_> = s
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::DuplicatePhoto)
        .collect();
    assert_eq!(dups.len(), 1, "{:#?}", s.problems);
    assert!(dups[0].file.as_ref().unwrap().ends_with("007.jpg"));
    assert!(
        dups[0].message.contains("of the previous photo 006.jpg"),
        "{}",
        dups[0].message
    );
    // Not blocking: uploads without --skip-invalid, the duplicate left out and named.
    assert!(s.is_valid());
    let (descriptor, skipped) = s.to_descriptor(false).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(descriptor.images.len(), 7);
    let text = s.summary().unwrap().render_text();
    assert!(
        text.contains("[left out] duplicate_photo: 007.jpg: "),
        "{text}"
    );
}
