//! The archive integration in-process: copies, resumes a partial copy, never copies a file twice.

use std::collections::BTreeMap;

use mtp_archive::Archive;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;
use plugin_api::serde_json;

fn sequence(dir: &std::path::Path) -> SequenceDescriptor {
    let images: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            let path = dir.join(format!("img{i}.jpg"));
            std::fs::write(&path, vec![i as u8 + 1; 3_000_000]).unwrap();
            serde_json::json!({
                "path": path, "file_name": format!("img{i}.jpg"), "size_bytes": 3_000_000,
                "latitude": 52.0, "longitude": 6.0, "captured_at_ms": 1_600_000_000_000i64 + i * 1000,
                "projection": "flat"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schema": 1, "id": "abcdef123456", "root": dir, "name": "Canal walk", "description": "d",
        "tags": ["x"], "source": "folder", "images": images
    }))
    .unwrap()
}

#[tokio::test]
async fn copies_resumes_and_never_copies_twice() {
    let source = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let host = TestHost::new().with_env("ARCHIVE_DIR", archive.path().to_str().unwrap());
    let ctx = host.context();
    let seq = sequence(source.path());
    let dest = archive.path().join("Canal_walk-abcdef12");
    // An interrupted earlier run: img1 half copied.
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("img1.jpg.part"), vec![2u8; 1_000_000]).unwrap();

    let request = RunRequest {
        mode: RunMode::Upload,
        sequence: seq.clone(),
        dry_run: false,
        upstream: BTreeMap::new(),
        previous: None,
        options: Default::default(),
    };
    let outcome = Archive.run(&ctx, request.clone()).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
    for i in 0..3 {
        let copied = std::fs::read(dest.join(format!("img{i}.jpg"))).unwrap();
        assert_eq!(copied, vec![i as u8 + 1; 3_000_000]);
    }
    let manifest: SequenceDescriptor =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.name, "Canal walk");
    let copied_bytes: u64 = host
        .progress_events()
        .iter()
        .map(|e| match e {
            ProgressEvent::Advance { bytes, .. } => *bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(copied_bytes, 9_000_000, "the partial file counts, once");
    let first_events = host.progress_events();
    assert_eq!(
        first_events[0],
        ProgressEvent::Totals {
            files_total: 3,
            bytes_total: 9_000_000,
            files_done: 0,
            bytes_done: 0,
        },
        "the first run announces the totals, nothing done yet"
    );
    let files_advanced: u64 = first_events
        .iter()
        .map(|e| match e {
            ProgressEvent::Advance { files, .. } => *files,
            _ => 0,
        })
        .sum();
    assert_eq!(files_advanced, 3, "{first_events:?}");

    // A second run copies nothing.
    let before = host.progress_events().len();
    Archive.run(&ctx, request).await.unwrap();
    let again: Vec<_> = host.progress_events()[before..].to_vec();
    // Exactly one event: the totals, saying everything is already done (no advance, no byte copied;
    // an empty list would mean the run reported nothing at all).
    assert_eq!(
        again,
        [ProgressEvent::Totals {
            files_total: 3,
            bytes_total: 9_000_000,
            files_done: 3,
            bytes_done: 9_000_000,
        }],
        "{again:?}"
    );
}

/// A tmpfs mounted on a directory while the value lives, unmounted when it drops (a failed assertion
/// included). Mounting needs root (CI runs as root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (root is needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_leaves_no_partial_file_under_a_final_name() {
    let source = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let mount = match Tmpfs::mount(archive.path(), "4m") {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    const IMAGES: usize = 40;
    const SIZE: usize = 200 * 1024;
    let images: Vec<serde_json::Value> = (0..IMAGES)
        .map(|i| {
            let name = format!("img{i:02}.jpg");
            let path = source.path().join(&name);
            std::fs::write(&path, vec![i as u8 + 1; SIZE]).unwrap();
            serde_json::json!({
                "path": path, "file_name": name, "size_bytes": SIZE,
                "latitude": 52.0, "longitude": 6.0,
                "captured_at_ms": 1_600_000_000_000i64 + i as i64 * 1000, "projection": "flat"
            })
        })
        .collect();
    let seq: SequenceDescriptor = serde_json::from_value(serde_json::json!({
        "schema": 1, "id": "abcdef123456", "root": source.path(), "name": "Full", "description": "",
        "tags": [], "source": "folder", "images": images
    }))
    .unwrap();
    let host = TestHost::new().with_env("ARCHIVE_DIR", archive.path().to_str().unwrap());
    let ctx = host.context();
    let request = RunRequest {
        mode: RunMode::Upload,
        sequence: seq,
        dry_run: false,
        upstream: BTreeMap::new(),
        previous: None,
        options: Default::default(),
    };
    let dest = archive.path().join("Full-abcdef12");

    let err = Archive.run(&ctx, request.clone()).await.unwrap_err();
    // Every file under a final name is whole; the first one that did not fit is named, as a `.part`.
    let mut whole = 0;
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(&dest).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let len = entry.metadata().unwrap().len();
        if name.ends_with(".part") {
            parts.push(name);
        } else {
            assert_ne!(
                name, "manifest.json",
                "the manifest says the archive is complete"
            );
            assert_eq!(len, SIZE as u64, "{name} under its final name is partial");
            whole += 1;
        }
    }
    assert!(whole > 0 && whole < IMAGES, "{whole} whole files");
    let first_failed = format!("img{whole:02}.jpg.part");
    assert_eq!(parts, std::slice::from_ref(&first_failed), "{err}");
    assert!(
        err.message
            .contains(&format!("{}", dest.join(&first_failed).display())),
        "the error names the first file that failed: {err}"
    );

    // Space freed: the next run finishes, each file whole.
    mount.resize("16m");
    Archive.run(&ctx, request).await.unwrap();
    for i in 0..IMAGES {
        let copied = std::fs::read(dest.join(format!("img{i:02}.jpg"))).unwrap();
        assert_eq!(copied, vec![i as u8 + 1; SIZE], "img{i:02}.jpg");
    }
    assert!(dest.join("manifest.json").is_file());
    assert!(!std::fs::read_dir(&dest).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
}
