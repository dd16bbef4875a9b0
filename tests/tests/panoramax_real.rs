//! End to end against a REAL Panoramax server (GeoVisio), started by `scripts/geovisio/start.sh`:
//! upload a generated sequence with `mtp`, `kill -9` it mid-way, resume, wait until the server says it is
//! ready, and check through the server's own API that one collection holds every picture exactly once at
//! the right position and time; a re-run adds nothing; a second, ordinary account is refused on the first
//! account's upload set. And: eight pictures stamped with one whole second, sent 4 at a time, are in the
//! collection in their capture order (mtp sends the times it spread within the second).
//!
//! Runs only when `MTP_PANORAMAX_REAL_URL`, `MTP_PANORAMAX_REAL_TOKEN_FILE` and
//! `MTP_PANORAMAX_REAL_SECOND_TOKEN_FILE` are set (start.sh prints them); otherwise it says it skipped.
//! Locally: `eval "$(scripts/geovisio/start.sh)" && cargo test -p mtp-tests --test panoramax_real`.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use mtp_sequence::generate::{generate_sequence, GenerateOptions};
use mtp_tests::harness::{bundled_plugin, mtp_command, plugins_dir_with};
use serde_json::Value;

struct Real {
    url: String,
    token: String,
    second_token: String,
}

fn real() -> Option<Real> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let read = |k: &str| {
        var(k).map(|path| {
            std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{k}={path}: {err}"))
                .trim()
                .to_string()
        })
    };
    Some(Real {
        url: var("MTP_PANORAMAX_REAL_URL")?
            .trim_end_matches('/')
            .to_string(),
        token: read("MTP_PANORAMAX_REAL_TOKEN_FILE")?,
        second_token: read("MTP_PANORAMAX_REAL_SECOND_TOKEN_FILE")?,
    })
}

/// A home whose `.env` names the real server, with the Panoramax plugin, logged in with its token.
fn logged_in_home(real: &Real) -> (tempfile::TempDir, std::path::PathBuf) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".env"),
        format!("PANORAMAX_URL={}\n", real.url),
    )
    .unwrap();
    let plugins = plugins_dir_with(home.path(), &[bundled_plugin("mtp_panoramax")]);
    let mut auth = mtp_command(home.path());
    auth.args(["auth", "panoramax", "--token", &real.token])
        .arg("--plugins-dir")
        .arg(&plugins);
    ok(&auth.output().unwrap(), "mtp auth panoramax");
    (home, plugins)
}

fn ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn get(real: &Real, token: &str, path: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", real.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

fn post_picture(real: &Real, token: &str, set_id: &str, picture: &Path) -> u16 {
    let bytes = std::fs::read(picture).unwrap();
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"intruder.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    body.extend(bytes);
    body.extend(b"\r\n--B--\r\n");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/upload_sets/{set_id}/files", real.url))
            .bearer_auth(token)
            .header("Content-Type", "multipart/form-data; boundary=B")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

/// The account's upload sets titled `title`, dispatched or not.
fn sets_titled(real: &Real, title: &str) -> Vec<Value> {
    let filter = "filter=dispatched%20IN%20(TRUE,FALSE)&limit=1000";
    let (status, body) = get(
        real,
        &real.token,
        &format!("/api/users/me/upload_sets?{filter}"),
    );
    assert_eq!(status, 200, "{body}");
    body["upload_sets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["title"] == title)
        .collect()
}

/// Polls `mtp status` until the Panoramax record says published (at most 5 minutes).
fn wait_published(mtp: &dyn Fn(&[&str]) -> std::process::Command) {
    let mut record = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let status: Value = serde_json::from_str(&ok(
            &mtp(&["status", "--json"]).output().unwrap(),
            "mtp status",
        ))
        .unwrap();
        record = status
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["integration"] == "panoramax"))
            .cloned()
            .or_else(|| status.pointer("/sequences/0/integrations/0").cloned())
            .unwrap_or(Value::Null);
        if record.to_string().contains("\"published\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        record.to_string().contains("\"published\""),
        "never published: {record}"
    );
}

/// The file names of a collection's pictures, in the collection's order.
fn collection_order(real: &Real, title: &str) -> Vec<String> {
    let sets = sets_titled(real, title);
    assert_eq!(sets.len(), 1, "one upload set: {sets:?}");
    let id = sets[0]["id"].as_str().unwrap();
    let (_, set) = get(real, &real.token, &format!("/api/upload_sets/{id}"));
    let collection = set["associated_collections"][0]["id"].as_str().unwrap();
    let (_, items) = get(
        real,
        &real.token,
        &format!("/api/collections/{collection}/items?limit=1000"),
    );
    items["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["properties"]["original_file:name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn same_second_pictures_keep_their_capture_order_on_a_real_panoramax() {
    let Some(real) = real() else {
        eprintln!(
            "panoramax_real: skipped (see upload_kill_resume_and_rerun_against_a_real_panoramax)"
        );
        return;
    };
    let (home, plugins) = logged_in_home(&real);
    let mtp = |args: &[&str]| {
        let mut command = mtp_command(home.path());
        command.args(args).arg("--plugins-dir").arg(&plugins);
        command
    };
    // Eight pictures stamped with one whole second (a time-lapse faster than 1 frame/s, as MTPDU writes it).
    let seed: u64 = rand::random::<u32>() as u64 + 2_000_000_000;
    let title = format!("mtp real order {seed}");
    let generated = generate_sequence(
        &home.path().join("lapse"),
        &GenerateOptions {
            count: 8,
            seed,
            interval_ms: 0,
            name: title.clone(),
            width: 320,
            height: 160,
            ..GenerateOptions::default()
        },
    )
    .unwrap();
    ok(
        &mtp(&["upload", "lapse", "--jobs", "4"]).output().unwrap(),
        "mtp upload --jobs 4",
    );
    wait_published(&mtp);
    let names: Vec<String> = generated
        .images
        .iter()
        .map(|i| i.file_name.clone())
        .collect();
    assert_eq!(collection_order(&real, &title), names, "the capture order");
}

#[test]
fn upload_kill_resume_and_rerun_against_a_real_panoramax() {
    let Some(real) = real() else {
        eprintln!(
            "panoramax_real: skipped (set MTP_PANORAMAX_REAL_URL, MTP_PANORAMAX_REAL_TOKEN_FILE and \
             MTP_PANORAMAX_REAL_SECOND_TOKEN_FILE, e.g. with eval \"$(scripts/geovisio/start.sh)\")"
        );
        return;
    };
    let started = Instant::now();
    let (home, plugins) = logged_in_home(&real);
    let mtp = |args: &[&str]| {
        let mut command = mtp_command(home.path());
        command.args(args).arg("--plugins-dir").arg(&plugins);
        command
    };

    // The server refuses the same bytes twice instance-wide: every run needs pictures of its own.
    let seed: u64 = rand::random::<u32>() as u64 + 10;
    let title = format!("mtp real test {seed}");
    let count = 40;
    let generated = generate_sequence(
        &home.path().join("walk"),
        &GenerateOptions {
            count,
            seed,
            name: title.clone(),
            width: 320,
            height: 160,
            ..GenerateOptions::default()
        },
    )
    .unwrap();

    // kill -9 once the server holds a few pictures.
    let mut child = mtp(&["upload", "walk", "--jobs", "1"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut landed = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if let Some(set) = sets_titled(&real, &title).first() {
            let id = set["id"].as_str().unwrap().to_string();
            let (_, files) = get(&real, &real.token, &format!("/api/upload_sets/{id}/files"));
            if files["files"].as_array().map_or(0, Vec::len) >= 5 {
                landed = child.try_wait().unwrap().is_none();
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    assert!(landed, "the kill -9 did not land mid-upload");

    // Resume, then wait for the server to finish processing (polling `mtp status`).
    ok(
        &mtp(&["upload", "walk"]).output().unwrap(),
        "resumed mtp upload",
    );
    wait_published(&mtp);

    // Through the server's API: one upload set, one collection, every picture once, right place and time.
    let sets = sets_titled(&real, &title);
    assert_eq!(sets.len(), 1, "one upload set for the sequence: {sets:?}");
    let set_id = sets[0]["id"].as_str().unwrap().to_string();
    let (_, set) = get(&real, &real.token, &format!("/api/upload_sets/{set_id}"));
    assert_eq!(set["ready"], true, "{set}");
    let collections = set["associated_collections"].as_array().unwrap();
    assert_eq!(collections.len(), 1, "{set}");
    let collection = collections[0]["id"].as_str().unwrap();
    let (_, items) = get(
        &real,
        &real.token,
        &format!("/api/collections/{collection}/items?limit=1000"),
    );
    let features = items["features"].as_array().unwrap();
    assert_eq!(features.len(), count, "every picture exactly once");
    for image in &generated.images {
        let matching: Vec<&Value> = features
            .iter()
            .filter(|f| f["properties"]["original_file:name"] == image.file_name.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{} once", image.file_name);
        let f = matching[0];
        assert_eq!(f["properties"]["geovisio:status"], "ready");
        let lon = f["geometry"]["coordinates"][0].as_f64().unwrap();
        let lat = f["geometry"]["coordinates"][1].as_f64().unwrap();
        assert!(
            (lat - image.latitude).abs() < 1e-6 && (lon - image.longitude).abs() < 1e-6,
            "{}: at {lat},{lon}, taken at {},{}",
            image.file_name,
            image.latitude,
            image.longitude
        );
        let datetime = f["properties"]["datetime"].as_str().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(datetime)
            .unwrap()
            .timestamp_millis();
        assert!(
            (at - image.captured_at_ms).abs() < 1000,
            "{}: {datetime} vs {} ms",
            image.file_name,
            image.captured_at_ms
        );
    }

    // A re-run adds nothing on the server.
    let (_, files_before) = get(
        &real,
        &real.token,
        &format!("/api/upload_sets/{set_id}/files"),
    );
    ok(
        &mtp(&["upload", "walk"]).output().unwrap(),
        "re-run mtp upload",
    );
    let (_, files_after) = get(
        &real,
        &real.token,
        &format!("/api/upload_sets/{set_id}/files"),
    );
    assert_eq!(files_before["files"], files_after["files"]);
    assert_eq!(sets_titled(&real, &title).len(), 1);

    // A second, ordinary account may not add to this upload set.
    let extra = home.path().join("extra");
    let intruder = generate_sequence(
        &extra,
        &GenerateOptions {
            count: 1,
            seed: seed + 1_000_000,
            ..GenerateOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        post_picture(&real, &real.second_token, &set_id, &intruder.images[0].path),
        403
    );
    eprintln!(
        "panoramax_real: {count} pictures, kill -9 and resume, re-run: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
