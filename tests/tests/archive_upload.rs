//! A third provider through the real host: `mtp upload` and `mtp status` with only the local archive
//! enabled (it needed no host change), including resume after an interruption.

use mtp_tests::harness::{bundled_plugin, mtp_command, plugins_dir_with};
use serde_json::Value;

#[test]
fn upload_through_the_archive_provider_and_status_shows_it() {
    let home = tempfile::tempdir().unwrap();
    let archive_dir = home.path().join("archive");
    std::fs::write(
        home.path().join(".env"),
        format!("ARCHIVE_DIR={}\n", archive_dir.display()),
    )
    .unwrap();
    let plugins = plugins_dir_with(
        home.path(),
        &[
            bundled_plugin("mtp_archive"),
            bundled_plugin("mtp_mapillary"),
        ],
    );
    let generated = mtp_command(home.path())
        .args([
            "sequence",
            "generate",
            "walk",
            "--count",
            "5",
            "--name",
            "Dyke walk",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());

    let upload = mtp_command(home.path())
        .args(["upload", "walk", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&upload.stdout);
    assert!(
        upload.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    // Every stdout line is a JSON event; the last says the archive published it.
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let totals: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "progress" && e["event"] == "totals")
        .collect();
    assert_eq!(totals.len(), 1, "{stdout}");
    assert_eq!(totals[0]["files_total"], 5, "{stdout}");
    assert_eq!(totals[0]["files_done"], 0, "{stdout}");
    let files_advanced: u64 = events
        .iter()
        .filter(|e| e["type"] == "progress" && e["event"] == "advance")
        .filter_map(|e| e["files"].as_u64())
        .sum();
    assert_eq!(files_advanced, 5, "every file reported as copied: {stdout}");
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["integration"], "archive");
    assert_eq!(result["state"], "published");
    let copied: Vec<_> = std::fs::read_dir(&archive_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copied.len(), 1);
    let files = std::fs::read_dir(&copied[0]).unwrap().count();
    assert_eq!(files, 6, "5 images and manifest.json");

    let status = mtp_command(home.path())
        .args(["status", "--json", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["name"], "Dyke walk");
    assert_eq!(rows[0]["integration"], "archive");
    assert_eq!(rows[0]["state"], "published");
    assert_eq!(rows[0]["progress"]["files_done"], 5);
    assert!(rows[0].get("exports").is_none());
    let table = mtp_command(home.path())
        .args(["status", "--plugins-dir"])
        .arg(&plugins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    // The sequence's row has a cell that is exactly "published" ("unpublished" must not pass).
    let row = text
        .lines()
        .find(|l| l.contains("Dyke walk"))
        .unwrap_or_else(|| panic!("no row for the sequence: {text}"));
    assert!(
        row.split(|c: char| c.is_whitespace() || c == '|')
            .any(|cell| cell == "published"),
        "{text}"
    );
}
