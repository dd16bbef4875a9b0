//! A week in the life of an upload (issue 13), through the real binary: tokens that expire and are
//! refreshed, handles that age, rate limits in both of Mapillary's shapes, processing that takes longer
//! than the 72 h deadline, and a renamed account. Days pass in seconds: the fake Mapillary's clock is
//! moved (`advance_clock`) and `mtp` is told the same time through `MTP_TEST_NOW`.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtp_fakes::fake_mapillary::{
    AgingConfig, MapillaryConfig, MapillaryFaults, MapillaryStats, RateLimitShape,
};
use mtp_fakes::fake_mtpw::MtpwConfig;
use mtp_tests::world::{output_text as text, FakesWorld};
use serde_json::Value;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The fakes, and the time `mtp` is told (the fake's clock moves with it).
struct Week {
    world: FakesWorld,
    start_ms: u64,
    elapsed: Duration,
}

impl Week {
    fn start(mapillary: MapillaryConfig) -> Week {
        let world = FakesWorld::start(mapillary, MtpwConfig::default());
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        Week {
            world,
            start_ms,
            elapsed: Duration::ZERO,
        }
    }

    fn pass(&mut self, by: Duration) {
        self.world.mapillary.advance_clock(by);
        self.elapsed += by;
    }

    fn run(&self, args: &[&str]) -> Output {
        let now = self.start_ms + self.elapsed.as_millis() as u64;
        self.world
            .mtp()
            .env("MTP_TEST_NOW", now.to_string())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "mtp {args:?}: {}", text(&out));
        text(&out)
    }

    fn rows(&self) -> Vec<Value> {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn row(&self, integration: &str) -> Value {
        self.rows()
            .into_iter()
            .find(|r| r["integration"] == integration)
            .unwrap_or_else(|| panic!("no {integration} row: {:?}", self.rows()))
    }

    fn finish_calls(&self) -> u32 {
        self.world
            .mapillary
            .stats()
            .finish_upload_calls
            .values()
            .sum()
    }
}

fn fired(stats: &MapillaryStats, name: &str) -> u64 {
    stats.faults_fired.get(name).copied().unwrap_or(0)
}

fn generate(week: &Week, name: &str) -> std::path::PathBuf {
    week.ok(&[
        "sequence",
        "generate",
        name,
        "--count",
        "5",
        "--bytes-per-image",
        "40000",
        "--seed",
        "13",
        "--name",
        "A slow week",
    ]);
    week.world.dir(name)
}

fn upload(week: &Week, dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["upload", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    week.ok(&args)
}

/// Day 0: uploaded without publishing (`--no-publish`). Day 3: the token is a day from expiry and the
/// handles are older than two days: the token is refreshed (the old one stops working), the images
/// are asked again and re-sent where the service forgot them, through rate limits that say
/// `retriable: false`, and the sequence is published. Day 6: Mapillary has not shown it 80 h after
/// publishing: overdue, not failed; another `mtp upload` publishes nothing. Day 7: found under the
/// account's new name, and synced to MTPW, published exactly once.
#[test]
fn a_week_of_expiring_tokens_and_handles_rate_limits_and_slow_processing_publishes_once() {
    let mut week = Week::start(MapillaryConfig {
        aging: AgingConfig {
            token_ttl: Some(4 * DAY),
            handle_ttl: Some(2 * DAY),
        },
        publish_delay: 100 * HOUR,
        ..MapillaryConfig::default()
    });
    let dir = generate(&week, "slow-week");
    week.world.authorise();
    let status = week.ok(&["auth", "status"]);
    println!("day 0, mtp auth status:\n{status}");
    assert!(status.contains("expires"), "{status}");

    upload(&week, &dir, &["--no-publish"]);
    assert_eq!(week.finish_calls(), 0, "--no-publish publishes nothing");
    let sent_day0 = week.world.mapillary.stats().upload_bytes_received;

    // Day 3, with the upload service rate-limiting in its 400 shape (`retriable: false`).
    week.pass(3 * DAY);
    week.world.mapillary.set_faults(MapillaryFaults {
        rate_limit_ratio: 0.3,
        rate_limit_shape: RateLimitShape::Status400,
        retry_after_secs: 0,
        seed: Some(13),
        ..MapillaryFaults::default()
    });
    let day3 = upload(&week, &dir, &[]);
    let stats = week.world.mapillary.stats();
    assert!(fired(&stats, "rate_limited") > 0, "no rate limit fired");
    assert!(
        stats.upload_bytes_received > sent_day0,
        "forgotten images were sent again: {day3}"
    );
    assert_eq!(week.finish_calls(), 1, "{day3}");
    assert_eq!(week.row("mapillary")["state"], "unpublished", "{day3}");
    let auth = week.ok(&["auth", "status", "--json"]);
    assert!(auth.contains("expires"), "{auth}");

    // Day 6: 80 h after publishing, Mapillary still has not shown it; the user renamed their account.
    week.world.mapillary.set_faults(MapillaryFaults::default());
    week.pass(80 * HOUR);
    week.world.mapillary.rename_user("renamed_user");
    let status = week.ok(&["status"]);
    println!("day 6, mtp status:\n{status}");
    assert!(status.contains("overdue"), "{status}");
    let row = week.row("mapillary");
    assert_eq!(row["state"], "unpublished", "{row}");
    upload(&week, &dir, &[]);
    assert_eq!(
        week.finish_calls(),
        1,
        "an overdue sequence is not published again"
    );

    // Day 7: Mapillary shows it (100 h after publishing), under the new name.
    week.pass(DAY);
    week.ok(&["status"]);
    let rows = week.rows();
    assert!(rows.iter().all(|r| r["state"] == "published"), "{rows:?}");
    let stats = week.world.mapillary.stats();
    assert_eq!(stats.uploaded_sequences().len(), 1);
    assert_eq!(week.finish_calls(), 1);
    assert_eq!(week.world.mtpw.stats().sequences.len(), 1);
}

/// `--dry-run` sends nothing: no request reaches the fake, nothing is stored, and it says what it wrote
/// and what would be published.
#[test]
fn a_dry_run_contacts_no_service_and_says_what_would_be_published() {
    let week = Week::start(MapillaryConfig::default());
    let dir = generate(&week, "dry");
    let out_dir = week.world.dir("dry-out");
    let option = format!("mapillary.dry_run_dir={}", out_dir.display());
    let said = upload(&week, &dir, &["--dry-run", "--option", &option]);
    println!("mtp upload --dry-run:\n{said}");
    assert!(said.contains("would publish"), "{said}");
    assert!(
        week.world.mapillary.stats().requests.is_empty(),
        "the fake was contacted: {said}"
    );
    let written = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jpg")
        })
        .count();
    assert_eq!(written, 5, "{said}");
    let rows = week.rows();
    assert!(rows.iter().all(|r| r["state"] != "published"), "{rows:?}");
}
