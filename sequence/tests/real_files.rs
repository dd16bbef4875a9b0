//! Real camera files (tests/data/real/, sources in SOURCES.md) read by mtp and compared with what the official
//! Mapillary client read from them (golden.json, recorded by scripts/golden/record.py): position within 1 m,
//! capture time within 1 s, heading within 1°. Where mtp reads a file differently on purpose, differences.json
//! gives mtp's expected value and why; that value is checked instead, so a deliberate difference can fail too.
//! Run with `--nocapture` to see the comparison table.

use std::fs;
use std::path::{Path, PathBuf};

use mtp_sequence::{format_utc, read_sequence, Overrides, ScannedImage, ScannedSequence};
use plugin_api::sequence::haversine_m;
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/real")
}

fn load(name: &str) -> Value {
    let path = data_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads one file alone (its own folder), so no sequence-level rule changes its values.
fn read_alone(file: &str, overrides: &Overrides) -> (ScannedSequence, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(data_dir().join(file), tmp.path().join(file)).unwrap();
    let s = read_sequence(tmp.path(), overrides).unwrap();
    (s, tmp)
}

fn image(s: &ScannedSequence) -> ScannedImage {
    assert_eq!(s.images.len(), 1);
    s.images.get(0).unwrap()
}

fn problem_kinds(s: &ScannedSequence) -> Vec<String> {
    let mut v: Vec<String> = s
        .problems
        .iter()
        .map(|p| {
            serde_json::to_value(p.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

fn show_ms(ms: Option<i64>) -> String {
    ms.map(format_utc).unwrap_or_else(|| "-".into())
}

fn show_f(v: Option<f64>, prec: usize) -> String {
    v.map(|v| format!("{v:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// One compared field of one file.
struct Row {
    file: String,
    field: &'static str,
    official: String,
    mtp: String,
    difference: String,
    ok: bool,
    note: String,
}

fn compare_file(name: &str, golden: &Value, allowed: &Value, rows: &mut Vec<Row>) {
    let (s, _tmp) = read_alone(name, &Overrides::default());
    let img = image(&s);
    let mut row =
        |field: &'static str, official: String, mtp: String, difference: String, ok: bool| {
            let note = allowed
                .get(field)
                .and_then(|a| a.get("why"))
                .and_then(Value::as_str)
                .map(|w| format!("deliberate: {w}"))
                .unwrap_or_default();
            rows.push(Row {
                file: name.to_string(),
                field,
                official,
                mtp,
                difference,
                ok,
                note,
            });
        };

    if golden.get("error").is_some() {
        // The official client could not geotag the file: mtp must not find a position either.
        let official = golden["error"]["message"]
            .as_str()
            .unwrap_or("error")
            .to_string();
        let mtp = match img.position() {
            Some((lat, lon)) => format!("{lat:.7}, {lon:.7}"),
            None => "no position".to_string(),
        };
        let ok = img.position().is_none() && !s.problems.is_empty();
        row("position", official, mtp, String::new(), ok);
    } else {
        let (glat, glon) = (
            golden["latitude"].as_f64().unwrap(),
            golden["longitude"].as_f64().unwrap(),
        );
        let official = format!("{glat:.7}, {glon:.7}");
        match allowed.get("position") {
            Some(a) => {
                let want = (a["mtp"][0].as_f64(), a["mtp"][1].as_f64());
                let ok = matches!((img.position(), want), (Some((la, lo)), (Some(wa), Some(wo)))
                    if haversine_m(la, lo, wa, wo) <= 1.0);
                row(
                    "position",
                    official,
                    format!("{:?}", img.position()),
                    "deliberate".into(),
                    ok,
                );
            }
            None => match img.position() {
                Some((lat, lon)) => {
                    let d = haversine_m(lat, lon, glat, glon);
                    row(
                        "position",
                        official,
                        format!("{lat:.7}, {lon:.7}"),
                        format!("{d:.2} m"),
                        d <= 1.0,
                    );
                }
                None => row(
                    "position",
                    official,
                    "no position".into(),
                    "missing".into(),
                    false,
                ),
            },
        }

        let gms = golden["captured_at_ms"].as_i64().unwrap();
        let got = img.captured_at_ms;
        let (want, deliberate) = match allowed.get("captured_at") {
            Some(a) => (a["mtp_ms"].as_i64(), true),
            None => (Some(gms), false),
        };
        let diff_s = got.map(|g| (g - gms) as f64 / 1000.0);
        let ok = matches!((got, want), (Some(g), Some(w)) if (g - w).abs() <= 1000);
        row(
            "captured_at",
            format_utc(gms),
            show_ms(got),
            diff_s
                .map(|d| format!("{d:+.3} s{}", if deliberate { " (deliberate)" } else { "" }))
                .unwrap_or_else(|| "missing".into()),
            ok,
        );

        let gh = golden["heading"].as_f64();
        let (want, deliberate) = match allowed.get("heading") {
            Some(a) => (a["mtp"].as_f64(), true),
            None => (gh, false),
        };
        let ok = match (img.heading, want) {
            (Some(h), Some(w)) => angle_diff(h, w) <= 1.0,
            (None, None) => true,
            _ => false,
        };
        let diff = match (img.heading, gh) {
            (Some(h), Some(g)) => format!("{:.2}°", angle_diff(h, g)),
            (None, None) => String::new(),
            _ => "one missing".into(),
        };
        row(
            "heading",
            show_f(gh, 2),
            show_f(img.heading, 2),
            if deliberate {
                format!("{diff} (deliberate)")
            } else {
                diff
            },
            ok,
        );
    }

    // The problems mtp reports on the file are part of its reading: differences.json lists them.
    let want: Vec<String> = allowed
        .get("problems")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let got = problem_kinds(&s);
    let ok = got == want;
    rows.push(Row {
        file: name.to_string(),
        field: "problems",
        official: String::new(),
        mtp: got.join(", "),
        difference: if ok {
            String::new()
        } else {
            format!("expected [{}]", want.join(", "))
        },
        ok,
        note: String::new(),
    });
}

#[test]
fn mtp_reads_real_files_as_the_official_client_does() {
    let golden = load("golden.json");
    let differences = load("differences.json");
    let files = golden["files"].as_object().unwrap();
    let on_disk: Vec<String> = fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.to_ascii_lowercase().ends_with(".jpg"))
        .collect();
    for f in &on_disk {
        assert!(
            files.contains_key(f),
            "{f} has no golden reading: run scripts/golden/record.py"
        );
    }
    assert!(files.len() >= 10, "golden.json lists {} files", files.len());
    let empty = Value::Object(Default::default());
    let mut rows = Vec::new();
    for (name, g) in files {
        let allowed = differences["files"].get(name).unwrap_or(&empty);
        compare_file(name, g, allowed, &mut rows);
    }
    println!("| file | field | official client | mtp | difference | |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {}{} |",
            r.file,
            r.field,
            r.official,
            r.mtp,
            r.difference,
            if r.ok { "ok" } else { "FAIL" },
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" {}", r.note)
            }
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{} {}: official {} / mtp {} {}",
                r.file, r.field, r.official, r.mtp, r.difference
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "readings differ from the official client:\n{}",
        failed.join("\n")
    );
    // Every deliberate difference names a file that exists and says why.
    for (name, d) in differences["files"].as_object().unwrap() {
        assert!(
            files.contains_key(name),
            "differences.json: {name} is not in golden.json"
        );
        for (field, v) in d.as_object().unwrap() {
            if field != "problems" {
                assert!(
                    v.get("why")
                        .and_then(Value::as_str)
                        .is_some_and(|w| w.len() > 20),
                    "{name} {field}: no why"
                );
            }
        }
    }
}

fn golden_ms(file: &str) -> i64 {
    load("golden.json")["files"][file]["captured_at_ms"]
        .as_i64()
        .unwrap()
}

fn offset(s: &str) -> Option<mtp_sequence::TimeOffset> {
    Some(s.parse().unwrap())
}

fn with_offset(o: &str) -> Overrides {
    Overrides {
        time_offset: offset(o),
        ..Default::default()
    }
}

/// An iPhone 6 writes local time without offset and a GPS time 2 h earlier (Madrid, summer time): the GPS
/// time is used, and the zone at the position (Europe/Madrid, +02:00 in April) explains the clock, so there
/// is nothing to say. A wrong offset given by the user is a note, never a refusal.
#[test]
fn a_clock_off_by_a_utc_offset_is_used_without_a_flag() {
    let file = "iphone_hdr_NO.jpg";
    let gps = golden_ms(file);
    let (s, _t) = read_alone(file, &Overrides::default());
    assert_eq!(image(&s).captured_at_ms, Some(gps), "the GPS time is used");
    assert!(s.problems.is_empty(), "{:#?}", s.problems);
    assert!(s.to_descriptor(false).is_ok());

    let (s, _t) = read_alone(file, &with_offset("+01:00"));
    assert_eq!(
        image(&s).captured_at_ms,
        Some(gps),
        "a wrong offset does not move a GPS time"
    );
    let p = s.problems[0].to_string();
    assert!(
        p.contains("given offset +01:00") && p.contains("--time-offset +02:00"),
        "{p}"
    );
    assert!(s.is_valid(), "a note, not a refusal");
    assert!(s.to_descriptor(false).is_ok());
}

/// The Samsung Gear 360 file has only an offset-less `DateTimeOriginal` and was taken in Kenya: read at the
/// zone there (Africa/Nairobi, +03:00), said in one line; `--time-offset` and `time_offset` still win.
#[test]
fn a_local_time_without_offset_or_gps_time_takes_the_zone_at_its_position() {
    let file = "adobe_coords.jpg";
    let as_utc = golden_ms(file);
    let three_h = 3 * 3_600_000;
    let (s, _t) = read_alone(file, &Overrides::default());
    assert_eq!(image(&s).captured_at_ms, Some(as_utc - three_h));
    assert!(s.is_valid() && s.problems.is_empty(), "{:#?}", s.problems);
    let notes = s.notes().unwrap();
    let zone: Vec<&String> = notes.iter().filter(|n| n.contains("UTC offset")).collect();
    assert_eq!(zone.len(), 1, "{notes:#?}");
    assert!(
        zone[0].starts_with(
            "capture times without UTC offset (DateTimeOriginal, 1 image, SAMSUNG SM-C200"
        ) && zone[0].contains(
            "read at UTC+03:00, the time zone Africa/Nairobi at their position on 2019-07-16"
        ),
        "{}",
        zone[0]
    );

    let (s, _t) = read_alone(file, &with_offset("+00:00"));
    assert!(s.is_valid(), "{:#?}", s.problems);
    assert_eq!(image(&s).captured_at_ms, Some(as_utc));
    assert!(!s.notes().unwrap().iter().any(|n| n.contains("UTC offset")));

    // The same from sequence.toml; the flag beats it.
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(data_dir().join(file), tmp.path().join(file)).unwrap();
    fs::write(
        tmp.path().join("sequence.toml"),
        "time_offset = \"+01:00\"\n",
    )
    .unwrap();
    let s = read_sequence(tmp.path(), &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    assert_eq!(image(&s).captured_at_ms, Some(as_utc - 3_600_000));
    let s = read_sequence(tmp.path(), &with_offset("-01:00")).unwrap();
    assert_eq!(image(&s).captured_at_ms, Some(as_utc + 3_600_000));

    fs::write(
        tmp.path().join("sequence.toml"),
        "time_offset = \"Africa/Nairobi\"\n",
    )
    .unwrap();
    let e = read_sequence(tmp.path(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sequence.toml: time_offset: \"Africa/Nairobi\" is not a UTC offset"),
        "{e}"
    );
}

/// The generator writes `DateTimeOriginal` (local, with or without `OffsetTimeOriginal`) and the GPS
/// date/time; the policy reads both to the same millisecond and reports nothing.
#[test]
fn generated_files_read_identically_under_the_capture_time_policy() {
    use mtp_sequence::generate::{write_image, ImageSpec};
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_589_093_103_123;
    let offsets = [
        None,
        Some(0),
        Some(120),
        Some(-330),
        Some(345),
        Some(840),
        Some(-720),
    ];
    for (i, o) in offsets.iter().enumerate() {
        let (lat, lon) = mtp_sequence::generate::destination(52.0, 6.0, 0.0, 5.0 * i as f64);
        let spec = ImageSpec {
            latitude: Some(lat),
            longitude: Some(lon),
            captured_at_ms: Some(t0 + 1_001 * i as i64),
            utc_offset_minutes: *o,
            seed: i as u64,
            ..Default::default()
        };
        write_image(&tmp.path().join(format!("img_{i}.jpg")), &spec).unwrap();
    }
    let s = read_sequence(tmp.path(), &Overrides::default()).unwrap();
    assert!(s.is_valid(), "{:#?}", s.problems);
    for img in &s.images.to_vec().unwrap() {
        let i: i64 = img.file_name()[4..5].parse().unwrap();
        assert_eq!(
            img.captured_at_ms,
            Some(t0 + 1_001 * i),
            "{}",
            img.file_name()
        );
    }
    // An offset given for such files changes nothing: their times are not offset-less.
    let s = read_sequence(tmp.path(), &with_offset("+05:00")).unwrap();
    let times: Vec<_> = s
        .images
        .to_vec()
        .unwrap()
        .iter()
        .map(|i| i.captured_at_ms)
        .collect();
    assert_eq!(
        times,
        (0..7).map(|i| Some(t0 + 1_001 * i)).collect::<Vec<_>>()
    );
    // ...except where the file has no offset: there a confirmation that disagrees with the GPS time is flagged.
    assert_eq!(s.problems.len(), 1, "{:#?}", s.problems);
    assert!(s.problems[0].to_string().contains("img_0.jpg"));
}

/// Panoramax's reader (`golden_panoramax.json`, recorded by `scripts/golden/record_panoramax.py` with
/// geopic-tag-reader 1.10.1): mtp reads every file it accepts at the same position (1 m) and time (1 s;
/// geopic-tag-reader also localises offset-less camera times by the zone at the position), unless
/// `differences.json` says why not (`panoramax_captured_at`). And the rule of the corpus: every file both
/// official readers accept, mtp accepts (no blocking problem).
#[test]
fn every_file_both_official_readers_accept_mtp_accepts_and_reads_as_panoramax() {
    let mapillary = load("golden.json");
    let panoramax = load("golden_panoramax.json");
    let differences = load("differences.json");
    let files = panoramax["files"].as_object().unwrap();
    let (mut both, mut by_panoramax, mut by_mapillary, mut by_mtp) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (name, g) in files {
        let mapillary_ok = mapillary["files"][name].get("error").is_none()
            && mapillary["files"].get(name).is_some();
        let panoramax_ok = g.get("refused").is_none();
        let (s, _t) = read_alone(name, &Overrides::default());
        let img = image(&s);
        by_mapillary += usize::from(mapillary_ok);
        by_panoramax += usize::from(panoramax_ok);
        by_mtp += usize::from(s.is_valid());
        if mapillary_ok && panoramax_ok {
            both += 1;
            if !s.is_valid() {
                failures.push(format!(
                    "{name}: both official readers accept it, mtp refuses: {:?}",
                    s.problems
                ));
            }
        }
        if !panoramax_ok {
            continue;
        }
        let (glat, glon) = (
            g["latitude"].as_f64().unwrap(),
            g["longitude"].as_f64().unwrap(),
        );
        match img.position() {
            Some((lat, lon)) if haversine_m(lat, lon, glat, glon) <= 1.0 => {}
            other => failures.push(format!(
                "{name}: position {other:?}, Panoramax {glat}, {glon}"
            )),
        }
        let want = differences["files"][name]["panoramax_captured_at"]["mtp_ms"]
            .as_i64()
            .or(g["captured_at_ms"].as_i64());
        match (img.captured_at_ms, want) {
            (Some(t), Some(w)) if (t - w).abs() <= 1000 => {}
            (t, w) => failures.push(format!(
                "{name}: captured {} , Panoramax {}",
                show_ms(t),
                show_ms(w)
            )),
        }
    }
    println!(
        "{} files: mapillary_tools accepts {by_mapillary}, geopic-tag-reader {by_panoramax}, both {both}, \
         mtp {by_mtp}",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every file in the folder has a Panoramax reading.
    for e in fs::read_dir(data_dir()).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        if n.to_ascii_lowercase().ends_with(".jpg") || n.to_ascii_lowercase().ends_with(".jpeg") {
            assert!(
                files.contains_key(&n),
                "{n} has no Panoramax reading: run scripts/golden/record_panoramax.py"
            );
        }
    }
}
