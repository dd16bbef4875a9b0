//! The documented exit codes (README, "Exit codes"), each produced through the real binary: usage,
//! configuration, not logged in, invalid input, refused by the service, unavailable, cancelled, and
//! "done, but still waiting on the service" (with its `--json` summary line).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use mtp_fakes::fake_mapillary::{FakeMapillary, MapillaryConfig, MapillaryFaults};
use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwConfig};
use mtp_tests::harness::{build_workspace, mtp_command};
use mtp_tests::world::fakes_env;
use serde_json::Value;

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mtp(home: &Path, args: &[&str]) -> Output {
    mtp_command(home).args(args).output().expect("run mtp")
}

/// A `.env` enabling Mapillary against `fake` (retries short), and MTPW against `mtpw` when given.
fn write_env(home: &Path, fake: &FakeMapillary, mtpw: Option<&FakeMtpw>) {
    let env = fakes_env(fake, mtpw, "http://127.0.0.1:9/cb", 1);
    std::fs::write(home.join(".env"), env).unwrap();
}

fn generate(home: &Path, name: &str, count: usize, bytes: usize) -> String {
    let out = mtp(
        home,
        &[
            "sequence",
            "generate",
            name,
            "--count",
            &count.to_string(),
            "--bytes-per-image",
            &bytes.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    home.join(name).display().to_string()
}

fn log_in(home: &Path, fake: &FakeMapillary) {
    let out = mtp(
        home,
        &["auth", "mapillary", "--token", &fake.config().user_token],
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn fake(config: MapillaryConfig) -> FakeMapillary {
    build_workspace();
    FakeMapillary::spawn_blocking_thread(config).expect("fake Mapillary")
}

#[test]
fn usage_errors_exit_2() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    let out = mtp(home.path(), &["upload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = mtp(home.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn configuration_errors_exit_3() {
    build_workspace();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "A=1\nnot an assignment\n").unwrap();
    let out = mtp(home.path(), &["integrations", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".env:2: malformed line"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(home.path().join(".env")).unwrap();
    // A plugins directory given explicitly must exist.
    let missing = home.path().join("no-plugins-here");
    let out = mtp_command(home.path())
        .arg("--plugins-dir")
        .arg(&missing)
        .args(["integrations", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        text(&out)
    );
    // A state directory that is a file.
    let file = home.path().join("state-file");
    std::fs::write(&file, "").unwrap();
    let out = mtp_command(home.path())
        .env("MTP_STATE_DIR", &file)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a file"),
        "{}",
        text(&out)
    );
    // No integration enabled: nothing can be uploaded.
    let dir = generate(home.path(), "walk", 2, 20_000);
    let out = mtp(home.path(), &["upload", &dir]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn invalid_input_exits_5() {
    let fake = fake(MapillaryConfig::default());
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, None);
    log_in(home.path(), &fake);
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = mtp(home.path(), &["upload", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no JPEG images"),
        "{}",
        text(&out)
    );
    let out = mtp(
        home.path(),
        &["sequence", "inspect", empty.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(fake.stats().finish_upload_calls.len(), 0);
}

#[test]
fn not_logged_in_or_a_refused_token_exits_4() {
    let fake = fake(MapillaryConfig::default());
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, None);
    let dir = generate(home.path(), "walk", 2, 20_000);
    let out = mtp(home.path(), &["upload", &dir]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not logged in"),
        "{}",
        text(&out)
    );
    let out = mtp(
        home.path(),
        &["auth", "mapillary", "--token", "MLY|1|wrong"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn a_refusal_by_the_service_exits_6() {
    let fake = fake(MapillaryConfig::default());
    let mtpw = FakeMtpw::spawn_blocking_thread(MtpwConfig {
        mapillary: Some(fake.link()),
        ..MtpwConfig::default()
    })
    .expect("fake MTPW");
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, Some(&mtpw));
    log_in(home.path(), &fake);
    let out = mtp(home.path(), &["auth", "mtpw", "--token", &mtpw.token()]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = generate(home.path(), "walk", 2, 20_000);
    // MTP_WEB_URL now names a server path with no MTPW API under it: every call answers 404, which
    // the MTPW integration reports as a refusal ("MTPW has no ... endpoint (is MTP_WEB_URL right?)").
    let env = std::fs::read_to_string(home.path().join(".env"))
        .unwrap()
        .replace(
            &format!("MTP_WEB_URL={}", mtpw.base_url()),
            &format!(
                "MTP_WEB_URL={}/no-mtpw-here",
                mtpw.base_url().trim_end_matches('/')
            ),
        );
    std::fs::write(home.path().join(".env"), env).unwrap();
    let out = mtp(home.path(), &["upload", "--json", &dir]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["exit_code"], 6, "{summary}");
    assert_eq!(summary["exit"], "refused", "{summary}");
}

#[test]
fn an_unreachable_service_exits_7_after_the_retries() {
    let fake = fake(MapillaryConfig::default());
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, None);
    log_in(home.path(), &fake);
    let dir = generate(home.path(), "walk", 2, 20_000);
    // Now every Mapillary URL points at a port nothing listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let env = std::fs::read_to_string(home.path().join(".env")).unwrap();
    let env: String = env
        .lines()
        .map(|line| match line.split_once('=') {
            Some((key, _)) if key.ends_with("_URL") => {
                format!("{key}=http://127.0.0.1:{dead}/\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(home.path().join(".env"), env).unwrap();
    let out = mtp(home.path(), &["upload", &dir]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
}

#[test]
fn sequences_still_processing_say_waiting_and_exit_8_when_asked() {
    let fake = fake(MapillaryConfig {
        // Mapillary does not show the sequence yet (processing takes minutes to days).
        publish_after_lookups: 1_000,
        ..MapillaryConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, None);
    log_in(home.path(), &fake);
    let dir = generate(home.path(), "walk", 2, 20_000);
    // By default "waiting" ends with 0 (the upload did all it could) and the summary says "waiting".
    let out = mtp(home.path(), &["upload", "--json", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let last: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a summary line");
    assert_eq!(last["exit"], "waiting", "{last}");
    assert_eq!(last["exit_code"], 0, "{last}");
    // --waiting-exit-code asks for its own code.
    let out = mtp(
        home.path(),
        &["upload", "--json", "--waiting-exit-code", &dir],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let result = lines
        .iter()
        .find(|l| l["type"] == "result" && l["integration"] == "mapillary")
        .expect("a result line");
    assert_eq!(result["waiting"], true, "{result}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["exit_code"], 8, "{summary}");
    assert_eq!(summary["exit"], "waiting", "{summary}");
    assert_eq!(
        summary["waiting"][0]["integration"], "mapillary",
        "{summary}"
    );
    // Without --json the user is told what to do.
    let out = mtp(home.path(), &["upload", "--waiting-exit-code", &dir]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still waiting on the service"),
        "{}",
        text(&out)
    );
}

#[test]
fn ctrl_c_during_an_upload_exits_130() {
    let fake = fake(MapillaryConfig {
        faults: MapillaryFaults {
            // Slow enough that the signal lands in the middle of the upload.
            throttle_bytes_per_sec: Some(400_000),
            ..MapillaryFaults::default()
        },
        ..MapillaryConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    write_env(home.path(), &fake, None);
    log_in(home.path(), &fake);
    let dir = generate(home.path(), "walk", 12, 400_000);
    let requests = |f: &FakeMapillary| f.stats().requests.values().sum::<u64>();
    let before = requests(&fake);
    let child = mtp_command(home.path())
        .args(["upload", &dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the run talks to Mapillary its handlers are in place.
    for _ in 0..1_000 {
        if fake.stats().upload_bytes_received > 0 || requests(&fake) > before + 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
}
