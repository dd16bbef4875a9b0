//! The whole product as a user runs it: `mtp demo` (asserting its final status), and `kill -9` in the
//! middle of a multi-file upload followed by a restart, against the fake Mapillary.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mtp_fakes::fake_mapillary::{EntityKind, FakeMapillary, MapillaryConfig, MapillaryFaults};
use mtp_tests::harness::{build_workspace, mtp_command};
use serde_json::Value;

#[test]
fn the_demo_runs_the_whole_pipeline_and_ends_published_everywhere() {
    let home = tempfile::tempdir().unwrap();
    let output = mtp_command(home.path())
        .args([
            "demo",
            "--images",
            "8",
            "--bytes-per-image",
            "150000",
            "--processing-secs",
            "1",
            "--dir",
        ])
        .arg(home.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("demo complete"), "{stdout}");
    // The final status, read back as data from the demo's own state.
    let status = mtp_command(home.path())
        .arg("--env-file")
        .arg(home.path().join("demo/.env"))
        .arg("--state-dir")
        .arg(home.path().join("demo/state"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    let state_of = |id: &str| {
        rows.iter()
            .find(|r| r["integration"] == id)
            .unwrap()
            .clone()
    };
    let mapillary = state_of("mapillary");
    assert_eq!(mapillary["state"], "published", "{rows:?}");
    assert!(!mapillary["keys"]["sequence_key"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(mapillary["progress"]["files_done"], 8);
    let mtpw = state_of("mtpw");
    assert_eq!(mtpw["state"], "published", "{rows:?}");
    assert!(!mtpw["keys"]["unique_id"].as_str().unwrap().is_empty());
    // No token in anything the demo printed or the status shows.
    let all = format!(
        "{stdout}{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&status.stdout)
    );
    assert!(!all.contains("fake0user0token"), "a Mapillary token leaked");
    assert!(
        !all.contains("mtpw-fake-user-token"),
        "an MTPW token leaked"
    );
}

fn write_env(home: &Path, fake: &FakeMapillary) {
    std::fs::write(
        home.join(".env"),
        format!(
            "MAPILLARY_APP_ID={}\nMAPILLARY_SECRET={}\nMAPILLARY_REDIRECT_URI=http://127.0.0.1:9/cb\n\
             MAPILLARY_GRAPH_URL={}\nMAPILLARY_UPLOAD_URL={}\nMAPILLARY_AUTHORIZE_URL={}\nMAPILLARY_RETRY_BASE_MS=50\n",
            fake.config().client_id,
            fake.config().client_secret,
            fake.graph_url(),
            fake.upload_url(),
            fake.authorize_url()
        ),
    )
    .unwrap();
}

#[test]
fn kill_9_in_the_middle_of_an_upload_then_restart_sends_each_image_once_and_publishes_once() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let fake = FakeMapillary::spawn_blocking_thread(MapillaryConfig {
        faults: MapillaryFaults {
            // Slow enough that the kill lands in the middle of the upload.
            throttle_bytes_per_sec: Some(1_500_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    })
    .unwrap();
    write_env(home.path(), &fake);
    let generated = mtp_command(home.path())
        .args([
            "sequence",
            "generate",
            "walk",
            "--count",
            "16",
            "--bytes-per-image",
            "400000",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let auth = mtp_command(home.path())
        .args(["auth", "mapillary", "--token", &fake.config().user_token])
        .output()
        .unwrap();
    assert!(
        auth.status.success(),
        "{}",
        String::from_utf8_lossy(&auth.stderr)
    );

    let mut upload = mtp_command(home.path())
        .args(["upload", "walk", "--jobs", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some images are done but not all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = fake
            .stats()
            .entities
            .values()
            .filter(|e| e.kind == EntityKind::Image && e.completions > 0)
            .count();
        if done >= 3 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    upload.kill().unwrap(); // SIGKILL
    upload.wait().unwrap();
    let before = fake.stats();
    let done_before = before
        .entities
        .values()
        .filter(|e| e.kind == EntityKind::Image && e.completions > 0)
        .count();
    assert!(
        (1..16).contains(&done_before),
        "the kill landed mid-upload: {done_before} done"
    );
    assert!(before.finish_upload_calls.is_empty());

    fake.set_faults(MapillaryFaults::default());
    let again = mtp_command(home.path())
        .args(["upload", "walk", "--json"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let after = fake.stats();
    // Each image published once, in one sequence, nothing left behind, one finish_upload.
    if let Err(err) = after.check_published_exactly_once(16, 1) {
        panic!("{err}: {:?}", after.received());
    }
    // Each image sent once: no body byte reached an entity after it was complete, and an image
    // complete at the kill received nothing more. A second completion is allowed only as the empty
    // POST at the end of a complete entity by which the restart fetches a handle the killed run had
    // not stored yet (counted in `refinishes`; it sends no byte).
    for (key, e) in after
        .entities
        .iter()
        .filter(|(_, e)| e.kind == EntityKind::Image)
    {
        assert_eq!(e.bytes_after_complete, 0, "{key} sent again: {e:?}");
        assert_eq!(
            e.completions - e.refinishes,
            1,
            "{key} completed twice: {e:?}"
        );
        if let Some(was) = before.entities.get(key).filter(|b| b.handle.is_some()) {
            assert_eq!(
                e.bytes_received_total, was.bytes_received_total,
                "{key} was complete at the kill and received more bytes after: {e:?}"
            );
        }
    }
    // Bytes sent again: at most what was in flight (4 jobs x one 400 kB file).
    assert!(
        after.bytes_resent <= 4 * 420_000,
        "re-sent {} bytes",
        after.bytes_resent
    );
    eprintln!(
        "kill -9 after {done_before} of 16 images; bytes re-sent after restart: {}; handles fetched \
         again by an empty POST: {}",
        after.bytes_resent,
        after.received().images_refinished
    );
    // The state store opens cleanly and shows the sequence.
    let status = mtp_command(home.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["integration"], "mapillary");
    // The fake publishes at once (no processing delay), so the run's own lookup finds the sequence.
    assert_eq!(rows[0]["state"], "published", "{rows:?}");
}
