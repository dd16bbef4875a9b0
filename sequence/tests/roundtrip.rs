//! Generated sequences read back with the metadata that was written.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use mtp_sequence::generate::{generate_sequence, write_image, GenerateOptions, ImageSpec, Padding};
use mtp_sequence::{read_sequence, Overrides};
use plugin_api::sequence::{Projection, SequenceSource};
use plugin_api::transport::TransportType;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = fs::metadata(&p).unwrap();
                out.push((
                    p.display().to_string(),
                    fs::read(&p).unwrap(),
                    m.modified().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mtpdu_layout_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 12,
        mtpdu: true,
        name: "My first sequence".into(),
        description: "Just a short sequence whilst snowboarding".into(),
        transport: Some(TransportType::parse("Snow/Snowboard").unwrap()),
        tags: vec!["backflip".into(), "Switzerland".into()],
        utc_offset_minutes: 120,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("my_first_sequence"), &opts).unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    assert_eq!(s.source, SequenceSource::Mtpdu);
    assert_eq!(s.id, g.sequence_uuid);
    assert_eq!(s.name, "My first sequence");
    assert_eq!(s.description, opts.description);
    assert_eq!(s.transport.as_ref().unwrap().to_string(), "Snow/Snowboard");
    assert_eq!(s.tags, ["backflip", "Switzerland"]);
    assert!(s.image_dir.ends_with("final_raw"));
    assert_eq!(s.metadata_files.len(), 1);

    let (d, skipped) = s.to_descriptor(false).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(d.images.len(), 12);
    for (got, want) in d.images.iter().zip(&g.images) {
        assert_eq!(got.file_name, want.file_name);
        // From ImageDescription's JSON numbers: equal up to float parsing (serde_json may be 1 ulp off).
        assert!((got.latitude - want.latitude).abs() < 1e-12);
        assert!((got.longitude - want.longitude).abs() < 1e-12);
        assert!((got.altitude.unwrap() - want.altitude).abs() < 1e-9);
        assert_eq!(got.captured_at_ms, want.captured_at_ms);
        assert!((got.heading.unwrap() - want.heading).abs() < 1e-6);
        assert_eq!(got.projection, Projection::Flat);
        assert_eq!((got.width, got.height), (Some(64), Some(32)));
        assert_eq!(got.photo_uuid, want.photo_uuid);
        assert_eq!(got.size_bytes, want.size_bytes);
        assert!(Path::new(&got.path).is_absolute());
    }
    assert_eq!(d.first_capture_ms(), Some(opts.start_time_ms));
    assert_eq!(d.duration_ms(), Some(11_000));
    assert!((d.length_m() - 22.0).abs() < 0.01, "{}", d.length_m());

    let sum = s.summary().unwrap();
    assert_eq!(sum.image_count, 12);
    assert_eq!(
        sum.first_capture.as_deref(),
        Some("2020-05-10T06:45:03.000Z")
    );
    assert_eq!(sum.duration_s, Some(11.0));
    assert!((sum.length_km - 0.022).abs() < 1e-5);
    let text = sum.render_text();
    assert!(
        text.contains("Snow/Snowboard") && text.contains("12 (12 valid)"),
        "{text}"
    );
    let json = serde_json::to_value(&sum).unwrap();
    assert_eq!(json["transport"], "Snow/Snowboard");
    assert_eq!(json["projections"]["flat"], 12);
}

#[test]
fn final_nadir_is_preferred_unless_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 3,
        mtpdu: true,
        mtpdu_nadir: true,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("seq"), &opts).unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.image_dir.ends_with("final_nadir"));
    assert_eq!(
        s.images
            .get(0)
            .unwrap()
            .description
            .as_ref()
            .unwrap()
            .image_copy
            .as_deref(),
        Some("final_nadir")
    );
    // An empty final_nadir (interrupted nadir step) does not hide final_raw.
    for e in fs::read_dir(g.root.join("final_nadir")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.image_dir.ends_with("final_raw"));
    assert_eq!(s.images.len(), 3);
}

#[test]
fn plain_folder_with_sequence_toml_and_exif_only() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 8,
        image_description: false,
        sequence_toml: true,
        name: "Canal walk".into(),
        transport: Some(TransportType::parse("rock climbing").unwrap()),
        tags: vec!["a".into(), "b".into()],
        start: (-33.8688, 151.2093),
        utc_offset_minutes: -300,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("walk"), &opts).unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    assert_eq!(s.source, SequenceSource::Folder);
    assert_eq!(s.name, "Canal walk");
    assert_eq!(
        s.transport.as_ref().unwrap().mtpdu_string(),
        "Earth-Rock Climbing"
    );
    assert_eq!(s.tags, ["a", "b"]);
    assert_eq!(s.id.len(), 36, "path-derived id");
    let again = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert_eq!(again.id, s.id, "stable id");
    for (got, want) in s.images.to_vec().unwrap().iter().zip(&g.images) {
        // From EXIF rationals (micro-second-of-arc precision) and local time + OffsetTimeOriginal.
        assert!((got.latitude.unwrap() - want.latitude).abs() < 1e-8);
        assert!((got.longitude.unwrap() - want.longitude).abs() < 1e-8);
        assert!((got.altitude.unwrap() - want.altitude).abs() < 1e-3);
        assert_eq!(got.captured_at_ms, Some(want.captured_at_ms));
        assert!(got.photo_uuid.is_none());
    }
}

#[test]
fn plain_folder_defaults_to_directory_name() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 2,
        image_description: false,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("Holiday 2024"), &opts).unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert_eq!(s.name, "Holiday 2024");
    assert_eq!(s.description, "");
    assert_eq!(s.transport, None);
    assert!(s.tags.is_empty());
}

#[test]
fn image_description_consensus_when_pointed_at_final_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 3,
        mtpdu: true,
        transport: Some(TransportType::parse("Air-Paraglide").unwrap()),
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("seq"), &opts).unwrap();
    let s = read_sequence(&g.root.join("final_raw"), &Overrides::default()).unwrap();
    assert_eq!(s.source, SequenceSource::Folder);
    assert_eq!(s.name, opts.name);
    assert_eq!(s.id, g.sequence_uuid);
    assert!(s.transport.as_ref().unwrap().is_air());
}

#[test]
fn overrides_beat_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 3,
        mtpdu: true,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("seq"), &opts).unwrap();
    let o = Overrides {
        name: Some("Flag name".into()),
        description: Some("Flag description".into()),
        transport: Some("air-paraglide".into()),
        tags: vec!["x".into(), " y ".into(), "x".into()],
        ..Default::default()
    };
    let s = read_sequence(&g.root, &o).unwrap();
    assert_eq!(s.name, "Flag name");
    assert_eq!(s.description, "Flag description");
    assert_eq!(s.transport.unwrap().to_string(), "Air/Paraglide");
    assert_eq!(s.tags, ["x", "y"]);

    // sequence.toml beats the MTPDU log; flags beat sequence.toml.
    fs::write(
        g.root.join("sequence.toml"),
        "name = \"Toml name\"\ntransport = \"Bicycle\"\ntags = \"t1, t2\"\n",
    )
    .unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert_eq!(s.name, "Toml name");
    assert_eq!(
        s.description, opts.description,
        "not in the toml: from the log"
    );
    assert_eq!(s.transport.unwrap().to_string(), "Earth/Bicycle");
    assert_eq!(s.tags, ["t1", "t2"]);
    let s = read_sequence(
        &g.root,
        &Overrides {
            name: Some("Flag".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.name, "Flag");
}

#[test]
fn transport_spellings_in_metadata_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate_sequence(
        &tmp.path().join("seq"),
        &GenerateOptions {
            count: 2,
            image_description: false,
            ..Default::default()
        },
    )
    .unwrap();
    for (spelling, want) in [
        ("Walk", "Earth/Walk"),
        ("walk", "Earth/Walk"),
        ("paraglide", "Air/Paraglide"),
        ("rock climbing", "Earth/Rock Climbing"),
        ("Air", "Air"),
        ("Earth/Walk", "Earth/Walk"),
        ("Air-Paraglide", "Air/Paraglide"),
        ("water-plane", "Air/Plane"),
        // MTPDU 2020 names map onto today's tree (issue 14, point 9).
        ("Powered-Electric Car", "Earth/Electric Car"),
        ("Powered-Drone", "Air/Drone"),
        ("Hanglide", "Air/Hang Glide"),
    ] {
        fs::write(
            g.root.join("sequence.toml"),
            format!("transport = {spelling:?}\n"),
        )
        .unwrap();
        let s = read_sequence(&g.root, &Overrides::default()).unwrap();
        assert_eq!(s.transport.unwrap().to_string(), want, "toml {spelling}");
        let s = read_sequence(
            &g.root,
            &Overrides {
                transport: Some(spelling.into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.transport.unwrap().to_string(), want, "flag {spelling}");
    }
}

#[test]
fn mtpdu_log_with_real_field_names_written_by_hand() {
    // A log as MTPDU writes it (field names from its source), images without ImageDescription.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("my_first_sequence");
    let g = generate_sequence(
        &root,
        &GenerateOptions {
            count: 2,
            mtpdu: true,
            image_description: false,
            ..Default::default()
        },
    )
    .unwrap();
    fs::write(
        root.join("my_first_sequence.json"),
        r#"{"sequence":{"id":"67dda928-e948-4079-ac03-89288980130e","distance_km":0.005251140031753352,
        "earliest_time":"2020-05-10T06:45:03","latest_time":"2020-05-10T06:45:38","durationsec":35,
        "average_speed_kmh":1.1172604089162,"uploader_sequence_name":"My first sequence",
        "uploader_sequence_description":"Just a short sequence whilst snowboarding",
        "uploader_transport_type":"Snow","uploader_transport_method":"Snowboard",
        "uploader_tags":["backflip","Switzerland"],"created":"2021-06-10T20:41:09",
        "uploader_camera":"GoPro MAX","destination":{"mapillary":"Error: x"}},
        "photo":{"c0f604c3-55b7-479d-9831-344cd3d26026":{"original":{"filename":"_1.jpg"},"modified":{},"connections":{}}}}"#,
    )
    .unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert_eq!(s.id, "67dda928-e948-4079-ac03-89288980130e");
    assert_eq!(s.name, "My first sequence");
    assert_eq!(s.description, "Just a short sequence whilst snowboarding");
    assert_eq!(s.transport.unwrap().mtpdu_string(), "Snow-Snowboard");
    assert_eq!(s.tags, ["backflip", "Switzerland"]);

    // A renamed directory still finds its only log.
    let renamed = tmp.path().join("renamed");
    fs::rename(&root, &renamed).unwrap();
    let s = read_sequence(&renamed, &Overrides::default()).unwrap();
    assert_eq!(s.name, "My first sequence");
}

#[test]
fn equirectangular_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 3,
        equirectangular: true,
        width: 128,
        image_description: false,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("pano"), &opts).unwrap();
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    for i in &s.images.to_vec().unwrap() {
        assert_eq!(i.projection, Projection::Equirectangular);
        assert_eq!((i.width, i.height), (Some(128), Some(64)));
    }
    // XMP beats MTPImageProjection: a flat image whose ImageDescription claims equirectangular is flat.
    let img = tmp.path().join("liar.jpg");
    let desc = mtp_sequence::mtpdu::MtpImageDescription {
        image_projection: Some("equirectangular".into()),
        ..Default::default()
    };
    write_image(
        &img,
        &ImageSpec {
            description: Some(desc.clone()),
            xmp_projection: Some("flat".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let only = tempfile::tempdir().unwrap();
    fs::copy(&img, only.path().join("a.jpg")).unwrap();
    let s = read_sequence(only.path(), &Overrides::default()).unwrap();
    assert_eq!(s.images.get(0).unwrap().projection, Projection::Flat);
    // Without XMP the MTPDU field is used.
    write_image(
        &only.path().join("a.jpg"),
        &ImageSpec {
            description: Some(desc),
            ..Default::default()
        },
    )
    .unwrap();
    let s = read_sequence(only.path(), &Overrides::default()).unwrap();
    assert_eq!(
        s.images.get(0).unwrap().projection,
        Projection::Equirectangular
    );
}

#[test]
fn ordered_by_capture_time_then_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = 1_600_000_000_000;
    let spec = |t: i64, lon: f64| ImageSpec {
        captured_at_ms: Some(t),
        longitude: Some(6.0 + lon),
        ..Default::default()
    };
    // Names in the opposite order of times; c and b share a time (b first by name).
    write_image(&d.join("a.jpg"), &spec(base + 3000, 0.00003)).unwrap();
    write_image(&d.join("c.JPG"), &spec(base + 2000, 0.00002)).unwrap();
    write_image(&d.join("b.jpeg"), &spec(base + 2000, 0.00001)).unwrap();
    write_image(&d.join("z.jpg"), &spec(base + 1000, 0.0)).unwrap();
    fs::write(d.join("notes.txt"), "not an image").unwrap();
    fs::write(d.join("._z.jpg"), "resource fork").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    write_image(&d.join("sub").join("deep.jpg"), &spec(base, 0.0)).unwrap();
    let s = read_sequence(d, &Overrides::default()).unwrap();
    let names: Vec<_> = s
        .images
        .to_vec()
        .unwrap()
        .iter()
        .map(|i| i.file_name().into_owned())
        .collect();
    assert_eq!(names, ["z.jpg", "b.jpeg", "c.JPG", "a.jpg"]);
}

#[test]
fn reading_never_modifies_files() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate_sequence(
        &tmp.path().join("seq"),
        &GenerateOptions {
            count: 4,
            mtpdu: true,
            mtpdu_nadir: true,
            ..Default::default()
        },
    )
    .unwrap();
    fs::write(g.root.join("sequence.toml"), "name = \"x\"\n").unwrap();
    let before = snapshot(&g.root);
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    let _ = s.to_descriptor(true).unwrap();
    let _ = s.summary().unwrap().render_text();
    assert_eq!(snapshot(&g.root), before);
}

#[test]
fn generated_jpegs_decode_and_padding_reaches_the_target() {
    for padding in [Padding::AfterScan, Padding::BeforeScan] {
        check_padded(padding);
    }
}

fn check_padded(padding: Padding) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        count: 2,
        equirectangular: true,
        width: 96,
        target_bytes: Some(300_000),
        padding,
        ..Default::default()
    };
    let g = generate_sequence(&tmp.path().join("big"), &opts).unwrap();
    for img in &g.images {
        let len = fs::metadata(&img.path).unwrap().len();
        assert_eq!(len, img.size_bytes);
        assert!((299_980..=300_000).contains(&len), "{len}");
        let mut dec = jpeg_decoder::Decoder::new(fs::File::open(&img.path).unwrap());
        let pixels = dec.decode().unwrap();
        let info = dec.info().unwrap();
        assert_eq!((info.width, info.height), (96, 48));
        assert_eq!(pixels.len(), 96 * 48 * 3);
    }
    let s = read_sequence(&g.root, &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    assert_eq!(
        s.summary().unwrap().total_bytes,
        g.images.iter().map(|i| i.size_bytes).sum::<u64>()
    );
}
