//! `mtp sequence inspect` and `mtp sequence generate` as a user runs them, with the bundled plugins
//! deciding eligibility.

use std::path::Path;

use mtp_tests::harness::{bundled_plugin, mtp_command, plugins_dir_with, FULL_ENV};
use serde_json::Value;

fn inspect_json(home: &Path, plugins: &Path, args: &[&str]) -> Value {
    let output = mtp_command(home)
        .args(["sequence", "inspect", "--json", "--plugins-dir"])
        .arg(plugins)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn eligibility(summary: &Value, id: &str) -> (bool, Option<String>) {
    let entry = summary["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {summary}"));
    (
        entry["eligible"].as_bool().unwrap(),
        entry["reason"].as_str().map(str::to_string),
    )
}

#[test]
fn inspect_reports_metadata_and_each_integration_decides_eligibility() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), FULL_ENV).unwrap();
    let plugins = plugins_dir_with(
        home.path(),
        &[bundled_plugin("mtp_mapillary"), bundled_plugin("mtp_mtpw")],
    );
    let generated = mtp_command(home.path())
        .args([
            "sequence",
            "generate",
            "walk",
            "--count",
            "6",
            "--mtpdu",
            "--name",
            "Canal walk",
        ])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let summary = inspect_json(home.path(), &plugins, &["walk"]);
    assert_eq!(summary["name"], "Canal walk");
    assert_eq!(summary["image_count"], 6);
    assert_eq!(summary["transport"], "Earth/Walk");
    assert_eq!(summary["problems"], serde_json::json!([]));
    assert_eq!(eligibility(&summary, "mapillary"), (true, None));
    assert_eq!(eligibility(&summary, "mtpw"), (true, None));

    // Flags beat metadata, and an Air type is Mapillary's own refusal; MTPW, which needs Mapillary's
    // sequence key, is then skipped, as mtp upload will do.
    let summary = inspect_json(
        home.path(),
        &plugins,
        &[
            "walk",
            "--transport",
            "paraglide",
            "--name",
            "Flight",
            "--tag",
            "a",
            "--tag",
            "b",
        ],
    );
    assert_eq!(summary["name"], "Flight");
    assert_eq!(summary["transport"], "Air/Paraglide");
    assert_eq!(summary["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        eligibility(&summary, "mapillary"),
        (
            false,
            Some("transport type Air/Paraglide is not accepted by Mapillary".into())
        )
    );
    assert_eq!(
        eligibility(&summary, "mtpw"),
        (
            false,
            Some("needs mapillary, which skipped this sequence (not eligible: transport type Air/Paraglide is not accepted by Mapillary)".into())
        )
    );

    // An unknown transport type is an error listing the valid ones.
    let bad = mtp_command(home.path())
        .args([
            "sequence",
            "inspect",
            "walk",
            "--transport",
            "teleport",
            "--plugins-dir",
        ])
        .arg(&plugins)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("teleport") && err.contains("Walk"), "{err}");
}

#[test]
fn equirectangular_sequences_are_eligible_for_mapillary() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), FULL_ENV).unwrap();
    let plugins = plugins_dir_with(home.path(), &[bundled_plugin("mtp_mapillary")]);
    let generated = mtp_command(home.path())
        .args([
            "sequence",
            "generate",
            "pano",
            "--count",
            "3",
            "--equirectangular",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let summary = inspect_json(home.path(), &plugins, &["pano"]);
    assert_eq!(
        summary["projections"],
        serde_json::json!({"equirectangular": 3})
    );
    assert_eq!(eligibility(&summary, "mapillary"), (true, None));
}

#[test]
fn upload_refuses_a_sequence_with_problems_unless_skip_invalid_names_the_skipped_files() {
    let home = tempfile::tempdir().unwrap();
    let plugins = plugins_dir_with(home.path(), &[bundled_plugin("mtp_mapillary")]);
    let generated = mtp_command(home.path())
        .args(["sequence", "generate", "walk", "--count", "4"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let mut images: Vec<_> = std::fs::read_dir(home.path().join("walk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    images.sort();
    let broken = images[2].clone();
    std::fs::write(&broken, b"this is not a JPEG at all").unwrap();
    let before = std::fs::read(&images[0]).unwrap();

    let refused = mtp_command(home.path())
        .args(["upload", "walk", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    let name = broken.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "the error names the broken file: {err}");
    assert!(
        err.contains("--skip-invalid to upload the 3 without blocking problems"),
        "{err}"
    );

    let skipping = mtp_command(home.path())
        .args(["upload", "walk", "--skip-invalid", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&skipping.stderr);
    assert!(
        err.contains(&format!("left out: corrupt_jpeg: {name}: ")),
        "{err}"
    );
    // No integration is enabled without a .env, which is said plainly.
    assert!(err.contains("no integration is enabled"), "{err}");
    assert!(!skipping.status.success());
    // Reading never modifies the images.
    assert_eq!(std::fs::read(&images[0]).unwrap(), before);
}

/// A camera card's `DCIM/100GOPRO, 101GOPRO` tree: one sequence per folder with images, as mapillary_tools
/// groups a tree, said in one line; `--json` gives each folder's document and the grouping.
#[test]
fn a_camera_folder_tree_is_read_one_sequence_per_folder() {
    let home = tempfile::tempdir().unwrap();
    let plugins = plugins_dir_with(home.path(), &[]);
    for (dir, count) in [("DCIM/100GOPRO", "3"), ("DCIM/101GOPRO", "2")] {
        let out = mtp_command(home.path())
            .args(["sequence", "generate", dir, "--count", count])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = mtp_command(home.path())
        .args(["sequence", "inspect", "DCIM", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "holds no images itself: read as 2 sequences, one per folder with images, as \
             mapillary_tools groups a folder tree: 100GOPRO (3 images), 101GOPRO (2 images)"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.matches("Images      ").count(), 2, "{stdout}");
    let json = inspect_json(home.path(), &plugins, &["DCIM"]);
    let sequences = json["sequences"].as_array().unwrap();
    assert_eq!(sequences.len(), 2, "{json:#}");
    assert_eq!(sequences[1]["image_count"], 2);
}
