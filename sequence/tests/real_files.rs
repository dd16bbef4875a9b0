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

fn image(s: &ScannedSequence) -> &ScannedImage {
    assert_eq!(s.images.len(), 1);
    &s.images[0]
}

fn problem_kinds(s: &ScannedSequence) -> Vec<String> {
    let mut v: Vec<String> = s
        .problems
        .iter()
        .map(|p| serde_json::to_value(p.kind).unwrap().as_str().unwrap().to_string())
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
    v.map(|v| format!("{v:.prec$}")).unwrap_or_else(|| "-".into())
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
    let mut row = |field: &'static str, official: String, mtp: String, difference: String, ok: bool| {
        let note = allowed
            .get(field)
            .and_then(|a| a.get("why"))
            .and_then(Value::as_str)
            .map(|w| format!("deliberate: {w}"))
            .unwrap_or_default();
        rows.push(Row { file: name.to_string(), field, official, mtp, difference, ok, note });
    };

    if golden.get("error").is_some() {
        // The official client could not geotag the file: mtp must not find a position either.
        let official = golden["error"]["message"].as_str().unwrap_or("error").to_string();
        let mtp = match img.position() {
            Some((lat, lon)) => format!("{lat:.7}, {lon:.7}"),
            None => "no position".to_string(),
        };
        let ok = img.position().is_none() && !s.problems.is_empty();
        row("position", official, mtp, String::new(), ok);
    } else {
        let (glat, glon) = (golden["latitude"].as_f64().unwrap(), golden["longitude"].as_f64().unwrap());
        let official = format!("{glat:.7}, {glon:.7}");
        match allowed.get("position") {
            Some(a) => {
                let want = (a["mtp"][0].as_f64(), a["mtp"][1].as_f64());
                let ok = matches!((img.position(), want), (Some((la, lo)), (Some(wa), Some(wo)))
                    if haversine_m(la, lo, wa, wo) <= 1.0);
                row("position", official, format!("{:?}", img.position()), "deliberate".into(), ok);
            }
            None => match img.position() {
                Some((lat, lon)) => {
                    let d = haversine_m(lat, lon, glat, glon);
                    row("position", official, format!("{lat:.7}, {lon:.7}"), format!("{d:.2} m"), d <= 1.0);
                }
                None => row("position", official, "no position".into(), "missing".into(), false),
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
            diff_s.map(|d| format!("{d:+.3} s{}", if deliberate { " (deliberate)" } else { "" }))
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
            if deliberate { format!("{diff} (deliberate)") } else { diff },
            ok,
        );
    }

    // The problems mtp reports on the file are part of its reading: differences.json lists them.
    let want: Vec<String> = allowed
        .get("problems")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let got = problem_kinds(&s);
    let ok = got == want;
    rows.push(Row {
        file: name.to_string(),
        field: "problems",
        official: String::new(),
        mtp: got.join(", "),
        difference: if ok { String::new() } else { format!("expected [{}]", want.join(", ")) },
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
        assert!(files.contains_key(f), "{f} has no golden reading: run scripts/golden/record.py");
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
            if r.note.is_empty() { String::new() } else { format!(" {}", r.note) }
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} {}: official {} / mtp {} {}", r.file, r.field, r.official, r.mtp, r.difference))
        .collect();
    assert!(failed.is_empty(), "readings differ from the official client:\n{}", failed.join("\n"));
    // Every deliberate difference names a file that exists and says why.
    for (name, d) in differences["files"].as_object().unwrap() {
        assert!(files.contains_key(name), "differences.json: {name} is not in golden.json");
        for (field, v) in d.as_object().unwrap() {
            if field != "problems" {
                assert!(v.get("why").and_then(Value::as_str).is_some_and(|w| w.len() > 20), "{name} {field}: no why");
            }
        }
    }
}
