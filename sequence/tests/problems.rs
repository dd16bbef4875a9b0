//! Every problem kind, how it is reported, and what `to_descriptor` does with it.

use std::fs;
use std::path::Path;

use mtp_sequence::generate::{
    destination, generate_sequence, write_image, Corruption, GenerateOptions, ImageSpec,
};
use mtp_sequence::{read_sequence, Overrides, ProblemKind, ScannedSequence, SequenceError};
use rand::{Rng, SeedableRng};

const T0: i64 = 1_600_000_000_000;

/// Images one second and 5 m apart heading north, `n` of them, named `img_00.jpg`...
fn good_specs(n: usize) -> Vec<ImageSpec> {
    (0..n)
        .map(|i| {
            let (lat, lon) = destination(47.0, 8.0, 0.0, 5.0 * i as f64);
            ImageSpec {
                latitude: Some(lat),
                longitude: Some(lon),
                captured_at_ms: Some(T0 + 1000 * i as i64),
                seed: i as u64,
                ..Default::default()
            }
        })
        .collect()
}

fn write_all(dir: &Path, specs: &[ImageSpec]) {
    for (i, s) in specs.iter().enumerate() {
        write_image(&dir.join(format!("img_{i:02}.jpg")), s).unwrap();
    }
}

fn scan(specs: &[ImageSpec]) -> (tempfile::TempDir, ScannedSequence) {
    let tmp = tempfile::tempdir().unwrap();
    write_all(tmp.path(), specs);
    let s = read_sequence(tmp.path(), &Overrides::default()).unwrap();
    (tmp, s)
}

fn kinds_of(s: &ScannedSequence, file: &str) -> Vec<ProblemKind> {
    s.problems
        .iter()
        .filter(|p| p.file.as_ref().is_some_and(|f| f.ends_with(file)))
        .map(|p| p.kind)
        .collect()
}

#[test]
fn a_clean_sequence_has_no_problems() {
    let (_t, s) = scan(&good_specs(5));
    assert!(s.is_valid(), "{:#?}", s.problems);
}

#[test]
fn each_per_image_problem_kind() {
    let mut specs = good_specs(12);
    specs[1].latitude = None; // no GPS
    specs[2].latitude = Some(0.0); // (0, 0)
    specs[2].longitude = Some(0.0);
    specs[3].captured_at_ms = None; // no time
    specs[4].corruption = Some(Corruption::TruncatedFile);
    specs[5].corruption = Some(Corruption::GarbageExif);
    specs[6].corruption = Some(Corruption::NotAJpeg);
    specs[7].corruption = Some(Corruption::TruncatedHeader);
    specs[8].captured_at_ms = specs[7].captured_at_ms.map(|_| T0 + 9000); // same time as img_09
    specs[8].latitude = specs[9].latitude; // and the same place and heading: a duplicate
    specs[8].longitude = specs[9].longitude;
    let (lat, lon) = destination(47.0, 8.0, 90.0, 50_000.0); // 50 km away one second later
    specs[10].latitude = Some(lat);
    specs[10].longitude = Some(lon);
    specs[11].corruption = Some(Corruption::TruncatedExif);
    let (_t, s) = scan(&specs);

    assert_eq!(kinds_of(&s, "img_00.jpg"), []);
    assert_eq!(kinds_of(&s, "img_01.jpg"), [ProblemKind::NoGps]);
    assert_eq!(kinds_of(&s, "img_02.jpg"), [ProblemKind::ZeroGps]);
    assert_eq!(kinds_of(&s, "img_03.jpg"), [ProblemKind::NoCaptureTime]);
    assert_eq!(kinds_of(&s, "img_04.jpg"), [ProblemKind::CorruptJpeg]);
    assert_eq!(kinds_of(&s, "img_05.jpg"), [ProblemKind::CorruptExif]);
    assert_eq!(kinds_of(&s, "img_06.jpg"), [ProblemKind::CorruptJpeg]);
    assert_eq!(kinds_of(&s, "img_07.jpg"), [ProblemKind::CorruptJpeg]);
    // img_08 and img_09 share a place; img_08 sorts first, so img_09 is the duplicate, left out.
    assert_eq!(kinds_of(&s, "img_08.jpg"), []);
    assert_eq!(kinds_of(&s, "img_09.jpg"), [ProblemKind::DuplicatePhoto]);
    assert_eq!(kinds_of(&s, "img_10.jpg"), [ProblemKind::ImpossibleSpeed]);
    let k11 = kinds_of(&s, "img_11.jpg");
    assert!(
        k11 == [ProblemKind::CorruptExif] || k11.contains(&ProblemKind::NoGps),
        "truncated EXIF must be reported: {k11:?}"
    );

    // Display names the file and the field.
    let shown: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|p| p.contains("img_01.jpg: GPSLatitude/GPSLongitude: no GPS position")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.contains("img_03.jpg: DateTimeOriginal: ")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.contains("img_04.jpg: JPEG: truncated")),
        "{shown:#?}"
    );
    assert!(shown.iter().any(|p| {
        p.contains(
        "img_09.jpg: GPSLatitude/GPSLongitude: within 0.1 m and 5° of the previous photo img_08.jpg"
    )
    }));
    assert!(shown
        .iter()
        .any(|p| p.contains("km/h") && p.contains("img_10.jpg")));

    // Without skip_invalid: one error listing the blocking problems, one line per kind, and how many
    // images skipping would leave (the duplicate is left out either way, so it is not among them).
    let err = s.to_descriptor(false).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, SequenceError::Invalid { ref problems, uploadable: 2 } if problems.len() == s.problems.len() - 1),
        "{err:?}"
    );
    for f in [
        "img_01", "img_02", "img_03", "img_04", "img_05", "img_06", "img_07", "img_10", "img_11",
    ] {
        assert!(text.contains(f), "{f} missing from {text}");
    }
    assert!(!text.contains("img_09"), "{text}");
    assert!(
        text.contains("corrupt_jpeg: 3 images (img_04.jpg, img_06.jpg, img_07.jpg); first: JPEG: "),
        "{text}"
    );

    // With skip_invalid: the valid ones remain and every skipped file is named.
    let (d, skipped) = s.to_descriptor(true).unwrap();
    let mut pages = Vec::new();
    let (mut taken_apart, skipped_too) = s
        .descriptor_pages(true, 1, |page| pages.push(page))
        .unwrap();
    taken_apart.images = pages.concat();
    assert_eq!((&taken_apart, skipped_too.len()), (&d, skipped.len()));
    let kept: Vec<&str> = d.images.iter().map(|i| i.file_name.as_str()).collect();
    assert_eq!(kept, ["img_00.jpg", "img_08.jpg"]);
    assert_eq!(skipped.len(), 10);
    assert!(skipped.iter().all(|s| !s.problems.is_empty()));
    assert!(s.summary().unwrap().valid_image_count == 2);
}

#[test]
fn gps_out_of_range_is_invalid() {
    let mut specs = good_specs(2);
    specs[1].latitude = Some(95.0);
    let desc = mtp_sequence::mtpdu::MtpImageDescription {
        latitude: Some(91.0),
        longitude: Some(8.0),
        ..Default::default()
    };
    specs[1].description = Some(desc);
    let (_t, s) = scan(&specs);
    assert_eq!(kinds_of(&s, "img_01.jpg"), [ProblemKind::InvalidGps]);
}

#[test]
fn speed_outlier_at_the_start_flags_only_that_image() {
    let mut specs = good_specs(5);
    specs[0].latitude = Some(48.0); // ~111 km from the rest
    let (_t, s) = scan(&specs);
    assert_eq!(kinds_of(&s, "img_00.jpg"), [ProblemKind::ImpossibleSpeed]);
    for i in 1..5 {
        assert_eq!(kinds_of(&s, &format!("img_{i:02}.jpg")), [], "img_{i:02}");
    }
}

#[test]
fn speed_outlier_in_the_middle_flags_only_that_image() {
    let mut specs = good_specs(5);
    specs[2].latitude = Some(47.5);
    let (_t, s) = scan(&specs);
    let flagged: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        kinds_of(&s, "img_02.jpg"),
        [ProblemKind::ImpossibleSpeed],
        "{flagged:#?}"
    );
    assert_eq!(s.problems.len(), 1, "{flagged:#?}");
    let (d, skipped) = s.to_descriptor(true).unwrap();
    assert_eq!(d.images.len(), 4);
    assert_eq!(skipped.len(), 1);
}

#[test]
fn gps_jitter_at_high_frame_rate_is_not_impossible() {
    // 10 m of jitter 0.1 s apart is 360 km/h... and 20 m is 720 km/h, but within GPS noise.
    let mut specs = good_specs(4);
    for (i, s) in specs.iter_mut().enumerate() {
        s.captured_at_ms = Some(T0 + 100 * i as i64);
    }
    let (_t, s) = scan(&specs);
    assert!(s.is_valid(), "{:#?}", s.problems);
}

#[test]
fn mixed_projections_keep_the_majority_when_skipping() {
    let mut specs = good_specs(5);
    for s in specs.iter_mut().take(3) {
        s.xmp_projection = Some("equirectangular".into());
        s.width = 64;
        s.height = 32;
    }
    let (_t, s) = scan(&specs);
    let seq_level: Vec<_> = s
        .problems
        .iter()
        .filter(|p| p.kind.is_sequence_level())
        .collect();
    assert_eq!(seq_level.len(), 1);
    assert_eq!(seq_level[0].kind, ProblemKind::MixedProjections);
    assert!(seq_level[0].file.is_none());
    assert!(
        seq_level[0]
            .to_string()
            .contains("3 equirectangular, 2 flat"),
        "{}",
        seq_level[0]
    );
    assert!(s.to_descriptor(false).is_err());
    let (d, skipped) = s.to_descriptor(true).unwrap();
    assert_eq!(d.images.len(), 3);
    assert_eq!(d.projections().len(), 1);
    let names: Vec<String> = skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["img_03.jpg", "img_04.jpg"]);
    assert_eq!(skipped[0].problems[0].kind, ProblemKind::MixedProjections);
}

#[test]
fn unknown_transport_in_metadata_is_a_problem_that_skipping_cannot_fix() {
    let tmp = tempfile::tempdir().unwrap();
    write_all(tmp.path(), &good_specs(2));
    fs::write(
        tmp.path().join("sequence.toml"),
        "transport = \"Hovercraft\"\n",
    )
    .unwrap();
    let s = read_sequence(tmp.path(), &Overrides::default()).unwrap();
    assert_eq!(s.transport, None);
    assert_eq!(s.problems.len(), 1);
    let p = &s.problems[0];
    assert_eq!(p.kind, ProblemKind::UnknownTransport);
    assert!(p.file.as_ref().unwrap().ends_with("sequence.toml"));
    let shown = p.to_string();
    assert!(
        shown.contains("sequence.toml: transport: unknown transport type \"Hovercraft\""),
        "{shown}"
    );
    assert!(shown.contains("Paraglide"), "lists valid values: {shown}");
    assert!(s.to_descriptor(true).is_err());

    // A flag fixes it.
    let o = Overrides {
        transport: Some("Water/Boat".into()),
        ..Default::default()
    };
    let s = read_sequence(tmp.path(), &o).unwrap();
    assert!(s.is_valid());

    // An unknown flag is an error listing the valid values.
    let o = Overrides {
        transport: Some("jetpack".into()),
        ..Default::default()
    };
    let e = read_sequence(tmp.path(), &o).unwrap_err().to_string();
    assert!(
        e.contains("\"jetpack\"") && e.contains("Earth (Bicycle, Walk"),
        "{e}"
    );
}

#[test]
fn metadata_file_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_all(tmp.path(), &good_specs(1));
    fs::write(tmp.path().join("sequence.toml"), "nmae = \"typo\"\n").unwrap();
    let e = read_sequence(tmp.path(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sequence.toml") && e.contains("nmae"), "{e}");

    let g = generate_sequence(
        &tmp.path().join("seq"),
        &GenerateOptions {
            count: 1,
            mtpdu: true,
            ..Default::default()
        },
    )
    .unwrap();
    fs::write(g.root.join("seq.json"), "{\"sequence\": [").unwrap();
    let e = read_sequence(&g.root, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("seq.json") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn directory_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = read_sequence(tmp.path(), &Overrides::default()).unwrap_err();
    assert!(matches!(e, SequenceError::NoImages { .. }), "{e}");
    let e = read_sequence(&tmp.path().join("missing"), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let f = tmp.path().join("file.jpg");
    write_image(&f, &ImageSpec::default()).unwrap();
    let e = read_sequence(&f, &Overrides::default()).unwrap_err();
    assert!(matches!(e, SequenceError::NotADirectory { .. }), "{e}");
}

#[test]
fn all_invalid_with_skip_is_an_error_naming_the_files() {
    let mut specs = good_specs(2);
    specs[0].latitude = None;
    specs[1].latitude = None;
    let (_t, s) = scan(&specs);
    match s.to_descriptor(true) {
        Err(SequenceError::NoValidImages { skipped }) => assert_eq!(skipped.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_never_panics() {
    // Random damage to a valid file's header: every result must be a problem or a clean read, never a panic.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.jpg");
    let desc = mtp_sequence::mtpdu::MtpImageDescription {
        sequence_name: Some("x".into()),
        ..Default::default()
    };
    write_image(
        &src,
        &ImageSpec {
            description: Some(desc),
            xmp_projection: Some("equirectangular".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let original = fs::read(&src).unwrap();
    let header_len = original.len().min(1200);
    let dir = tmp.path().join("fuzz");
    fs::create_dir(&dir).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for i in 0..300 {
        let mut data = original.clone();
        for _ in 0..rng.gen_range(1..8) {
            let at = rng.gen_range(2..header_len);
            data[at] = rng.gen();
        }
        if i % 10 == 0 {
            data.truncate(rng.gen_range(0..data.len()));
        }
        fs::write(dir.join(format!("f{i:03}.jpg")), &data).unwrap();
    }
    let s = read_sequence(&dir, &Overrides::default()).unwrap();
    assert_eq!(s.images.len(), 300);
    let _ = s.summary().unwrap().render_text();
    let _ = s.to_descriptor(true);
}

/// mapillary_tools' `duplication_check` (`process_sequence_properties.py`): an image within 0.1 m and 5° of
/// the previous kept one is dropped whatever the times; a turn of more than 5° on the spot is kept.
#[test]
fn duplicates_follow_the_official_client_whatever_the_times() {
    let mut specs = good_specs(5);
    for s in &mut specs {
        s.heading = Some(0.0);
    }
    // img_01 and img_02: a minute later, standing still at img_00's place.
    for i in [1, 2] {
        specs[i].latitude = specs[0].latitude;
        specs[i].longitude = specs[0].longitude;
        specs[i].captured_at_ms = Some(T0 + 60_000 * i as i64);
    }
    // img_02 turned 90°: a different view, kept.
    specs[2].heading = Some(90.0);
    for (k, s) in specs.iter_mut().enumerate().skip(3) {
        s.captured_at_ms = Some(T0 + 200_000 + 1000 * k as i64);
    }
    let (_t, s) = scan(&specs);
    assert_eq!(kinds_of(&s, "img_01.jpg"), [ProblemKind::DuplicatePhoto]);
    assert_eq!(kinds_of(&s, "img_02.jpg"), []);
    let (d, skipped) = s.to_descriptor(false).unwrap();
    assert_eq!(d.images.len(), 4);
    assert_eq!(skipped.len(), 1);
    let lines = mtp_sequence::describe_skipped(&skipped);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("left out: duplicate_photo: img_01.jpg: "),
        "{lines:?}"
    );
}
