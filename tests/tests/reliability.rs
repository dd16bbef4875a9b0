//! The reliability suite: crashes (`kill -9` at random moments across every phase), every fake fault
//! alone and combined, bad input, and token hygiene — through the real `mtp` binary, checking at the end
//! that nothing was lost and nothing duplicated.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mtp_fakes::fake_mapillary::{
    EntityKind, FakeMapillary, FinishFault, Flapping, MapillaryConfig, MapillaryFaults,
    MapillaryStats, ResetFault,
};
use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwConfig, MtpwFaults};
use mtp_tests::harness::{build_workspace, mtp_command};
use rand::{Rng, SeedableRng};
use serde_json::Value;

struct World {
    home: tempfile::TempDir,
    mapillary: FakeMapillary,
    mtpw: FakeMtpw,
}

impl World {
    fn new(mapillary: MapillaryConfig, mtpw: MtpwConfig) -> World {
        build_workspace();
        let home = tempfile::tempdir().unwrap();
        let mapillary = FakeMapillary::spawn_blocking_thread(mapillary).unwrap();
        let mtpw = FakeMtpw::spawn_blocking_thread(MtpwConfig {
            mapillary: Some(mapillary.link()),
            ..mtpw
        })
        .unwrap();
        let c = mapillary.config();
        std::fs::write(
            home.path().join(".env"),
            format!(
                "MAPILLARY_APP_ID={}\nMAPILLARY_SECRET={}\nMAPILLARY_REDIRECT_URI=http://127.0.0.1:9/cb\n\
                 MAPILLARY_GRAPH_URL={}\nMAPILLARY_UPLOAD_URL={}\nMAPILLARY_AUTHORIZE_URL={}\n\
                 MAPILLARY_RETRY_BASE_MS=20\n\
                 MTP_WEB_URL={}\nMTP_WEB_AUTH_URL={}\nMTP_WEB_APP_ID=app\nMTP_WEB_APP_SECRET=secret\n\
                 MTP_WEB_RETRY_BASE_MS=20\n",
                c.client_id,
                c.client_secret,
                mapillary.graph_url(),
                mapillary.upload_url(),
                mapillary.authorize_url(),
                mtpw.base_url(),
                mtpw.auth_url(),
            ),
        )
        .unwrap();
        World {
            home,
            mapillary,
            mtpw,
        }
    }

    fn mtp(&self) -> Command {
        let mut command = mtp_command(self.home.path());
        command.env("MTP_AUTH_BROWSER", "fetch");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.mtp().args(args).output().unwrap()
    }

    fn authorise(&self) {
        for id in ["mapillary", "mtpw"] {
            let out = self.run(&["auth", id]);
            assert!(out.status.success(), "auth {id}: {}", text(&out));
        }
    }

    fn generate(&self, name: &str, count: usize, bytes: u64, seed: u64) -> PathBuf {
        let out = self.run(&[
            "sequence",
            "generate",
            name,
            "--count",
            &count.to_string(),
            "--bytes-per-image",
            &bytes.to_string(),
            "--seed",
            &seed.to_string(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        self.home.path().join(name)
    }

    /// `mtp upload` until it succeeds and both integrations are published (a flaky world may need a
    /// few runs, as a user would do); returns how many runs it took. When mtp says a publish's outcome is
    /// unknown, do what a user would: check Mapillary (here, the fake's count of `finish_upload` calls
    /// against the `publishes` expected so far) and MTPW (the fake's sequences against the same count:
    /// one MTPW sequence per published one), and add `--republish` only if none of the unknown ones went
    /// through.
    fn upload_until_done(&self, dir: &Path, publishes: u32) -> usize {
        let mut republish = false;
        for attempt in 1..=8 {
            let mut command = self.mtp();
            command.arg("upload").arg(dir);
            if republish {
                command.arg("--republish");
            }
            let out = command.output().unwrap();
            if out.status.success() && self.all_published() {
                return attempt;
            }
            let rows = self.status_rows();
            let unknown = |id: &str| {
                rows.iter()
                    .any(|r| r["integration"] == id && r["state"] == "unknown")
            };
            let sent: u32 = self.mapillary.stats().finish_upload_calls.values().sum();
            let created = self.mtpw.stats().sequences.len() as u32;
            let (mly, mtpw) = (unknown("mapillary"), unknown("mtpw"));
            republish =
                (mly || mtpw) && (!mly || sent < publishes) && (!mtpw || created < publishes);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("not published after 8 runs: {:?}", self.status_rows());
    }

    fn status_rows(&self) -> Vec<Value> {
        let out = self.run(&["status", "--json"]);
        assert!(
            out.status.success(),
            "the state store opens cleanly: {}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn all_published(&self) -> bool {
        let rows = self.status_rows();
        !rows.is_empty() && rows.iter().all(|r| r["state"] == "published")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Nothing lost, nothing duplicated: `images` image entities on the fake, each complete with one handle
/// (the fake checks each one's md5 against its content-addressed key, so the stored bytes are exactly
/// right), bytes sent again bounded by what was in flight when a run died (at most the entity's size);
/// one publish per manifest; one MTPW sequence per published Mapillary sequence. Fetching a completed
/// entity's handle again with an empty `POST` at its end — how a run that died before storing the
/// handle resumes — sends no byte.
fn assert_exactly_once(stats: &MapillaryStats, mtpw: &FakeMtpw, images: usize, sequences: usize) {
    let done: Vec<_> = stats
        .entities
        .values()
        .filter(|e| e.kind == EntityKind::Image)
        .collect();
    assert_eq!(done.len(), images, "every image is on the fake");
    for entity in &done {
        assert!(entity.handle.is_some() && entity.completions >= 1);
        assert!(
            entity.bytes_resent <= entity.offset,
            "more than the in-flight remainder was sent again: {entity:?}"
        );
    }
    assert!(
        stats.finish_upload_calls.values().all(|&n| n == 1),
        "a manifest was published twice: {:?}",
        stats.finish_upload_calls
    );
    assert_eq!(stats.uploaded_sequences().len(), sequences);
    eprintln!(
        "{} images stored once; {} bytes re-sent in all (in flight at a crash or a fault)",
        done.len(),
        stats.bytes_resent
    );
    let mtpw_stats = mtpw.stats();
    assert_eq!(
        mtpw_stats.sequences.len(),
        sequences,
        "{:?}",
        mtpw_stats.sequences
    );
}

#[test]
fn kill_9_at_random_moments_across_every_phase_loses_and_duplicates_nothing() {
    let world = World::new(
        MapillaryConfig {
            faults: MapillaryFaults {
                throttle_bytes_per_sec: Some(4_000_000),
                latency_ms: 15,
                ..MapillaryFaults::default()
            },
            ..MapillaryConfig::default()
        },
        MtpwConfig {
            faults: MtpwFaults {
                latency_ms: 60,
                ..MtpwFaults::default()
            },
            ..MtpwConfig::default()
        },
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261125);
    let mut landed = 0;
    // Authorisation, killed mid-flight, then done.
    for id in ["mapillary", "mtpw"] {
        for _ in 0..2 {
            let mut child = world
                .mtp()
                .args(["auth", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
            if child.try_wait().unwrap().is_none() {
                landed += 1;
            }
            child.kill().ok();
            child.wait().unwrap();
        }
    }
    world.authorise();
    // Four sequences, five kills each at random moments of a run (upload, manifest, publish, lookup,
    // MTPW sync), then a run to completion.
    let mut total_images = 0;
    for seq in 0..4u64 {
        let count = 8 + seq as usize;
        total_images += count;
        let dir = world.generate(&format!("walk{seq}"), count, 120_000, 10 + seq);
        // Five kills that land in a running upload; when a run finishes before its kill, the next
        // kill comes sooner (the work left shrinks as the runs resume).
        let (mut landed_here, mut attempts, mut max_delay) = (0, 0, 400u64);
        while landed_here < 5 && attempts < 15 {
            attempts += 1;
            let mut child = world
                .mtp()
                .arg("upload")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..max_delay)));
            if child.try_wait().unwrap().is_none() {
                landed_here += 1;
            } else {
                max_delay = (max_delay / 2).max(20);
            }
            child.kill().ok(); // SIGKILL
            child.wait().unwrap();
        }
        landed += landed_here;
        world.upload_until_done(&dir, seq as u32 + 1);
    }
    eprintln!("kill -9 landed in a running mtp {landed} times");
    assert!(landed >= 20, "only {landed} kills landed mid-run");
    assert_exactly_once(&world.mapillary.stats(), &world.mtpw, total_images, 4);
}

#[test]
fn every_fault_alone_and_combined_loses_and_duplicates_nothing() {
    let reset = |n| {
        Some(ResetFault {
            after_bytes: 40_000,
            every_nth_post: n,
            ratio: 0.0,
        })
    };
    let cases: Vec<(&str, MapillaryFaults, MtpwFaults)> = vec![
        (
            "upload 5xx",
            MapillaryFaults {
                upload_5xx_ratio: 0.3,
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "graph 5xx",
            MapillaryFaults {
                graph_5xx_ratio: 0.3,
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "429 with Retry-After",
            MapillaryFaults {
                rate_limit_ratio: 0.3,
                retry_after_secs: 1,
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "reset mid-body",
            MapillaryFaults {
                reset: reset(2),
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "offset mismatch",
            MapillaryFaults {
                offset_mismatch_ratio: 0.3,
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "flapping server",
            MapillaryFaults {
                flapping: Some(Flapping {
                    healthy_ms: 250,
                    failing_ms: 150,
                }),
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "finish_upload 500 but published",
            MapillaryFaults {
                finish: FinishFault::Fail500ButPublished,
                finish_fault_calls: Some(1),
                ..Default::default()
            },
            MtpwFaults::default(),
        ),
        (
            "MTPW 5xx and dropped connections",
            MapillaryFaults::default(),
            MtpwFaults {
                error_5xx_ratio: 0.3,
                drop_connection_ratio: 0.2,
                ..Default::default()
            },
        ),
        (
            "MTPW error-as-200",
            MapillaryFaults::default(),
            MtpwFaults {
                error_as_200_next: 1,
                ..Default::default()
            },
        ),
        (
            "combined",
            MapillaryFaults {
                upload_5xx_ratio: 0.15,
                rate_limit_ratio: 0.1,
                retry_after_secs: 1,
                reset: reset(3),
                offset_mismatch_ratio: 0.1,
                graph_5xx_ratio: 0.2,
                ..Default::default()
            },
            MtpwFaults {
                error_5xx_ratio: 0.2,
                drop_connection_ratio: 0.1,
                ..Default::default()
            },
        ),
    ];
    let mut report = Vec::new();
    for (i, (name, mly_faults, mtpw_faults)) in cases.into_iter().enumerate() {
        let world = World::new(
            MapillaryConfig {
                faults: MapillaryFaults {
                    seed: Some(i as u64 + 1),
                    ..mly_faults
                },
                ..MapillaryConfig::default()
            },
            MtpwConfig {
                faults: MtpwFaults {
                    seed: Some(i as u64 + 1),
                    ..mtpw_faults
                },
                ..MtpwConfig::default()
            },
        );
        world.authorise();
        let dir = world.generate("walk", 6, 100_000, 3);
        let runs = world.upload_until_done(&dir, 1);
        let stats = world.mapillary.stats();
        assert_exactly_once(&stats, &world.mtpw, 6, 1);
        report.push(format!(
            "{name}: {runs} run(s), {} resets, {} offset mismatches",
            stats.connections_reset, stats.offset_mismatches
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn bad_input_gets_clear_errors_naming_the_culprit_and_loses_nothing() {
    let world = World::new(MapillaryConfig::default(), MtpwConfig::default());
    let home = world.home.path();
    // Corrupt images: each named, never a crash.
    let dir = world.generate("walk", 6, 20_000, 5);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 3]).unwrap(); // truncated
    let mut garbage = bytes.clone();
    for b in garbage.iter_mut().skip(30).take(200) {
        *b ^= 0x5A; // scrambled EXIF
    }
    std::fs::write(&files[1], &garbage).unwrap();
    std::fs::write(&files[2], b"GIF89a not a jpeg").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg"));
        std::fs::rename(&files[3], &odd).unwrap();
    }
    let inspect = world.run(&["sequence", "inspect", "--json", dir.to_str().unwrap()]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let summary: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let problems = summary["problems"].as_array().unwrap();
    for name in ["IMG_000001.jpg", "IMG_000002.jpg", "IMG_000003.jpg"] {
        assert!(
            problems
                .iter()
                .any(|p| p["file"].as_str().unwrap_or("").ends_with(name)),
            "{name} named: {problems:#?}"
        );
    }
    assert!(
        problems.iter().any(|p| p["kind"] == "non_utf8_path"),
        "{problems:#?}"
    );
    let refused = world.run(&["upload", dir.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        world.mapillary.stats().entities.is_empty(),
        "nothing was sent for an invalid sequence"
    );

    // A damaged state database: a clear error, the file untouched, a copy kept; never reset.
    let state = home.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("state.db"), b"not sqlite at all".repeat(64)).unwrap();
    let out = world.run(&["status"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("state.db is damaged"), "{}", text(&out));
    assert_eq!(
        std::fs::read(state.join("state.db")).unwrap(),
        b"not sqlite at all".repeat(64)
    );
    assert!(std::fs::read_dir(&state).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("state.db.damaged-")));
    std::fs::remove_dir_all(&state).unwrap();

    // A state directory that cannot be created.
    std::fs::write(home.join("a-file"), b"x").unwrap();
    let out = world
        .mtp()
        .args(["status"])
        .env("MTP_STATE_DIR", home.join("a-file/state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("a-file/state"), "{}", text(&out));

    // Disk full on the state directory (a file-size limit makes every write past 4 KiB fail).
    #[cfg(target_os = "linux")]
    {
        let mtp = mtp_tests::harness::mtp_binary();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -f 4; exec {:?} --state-dir {:?} status",
                mtp,
                home.join("full")
            ))
            .env_remove("MTP_STATE_DIR")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(text(&out).contains("full/state.db"), "{}", text(&out));
    }
}

#[test]
fn tokens_never_reach_logs_or_json_and_state_is_private() {
    let world = World::new(MapillaryConfig::default(), MtpwConfig::default());
    let mut all = String::new();
    for id in ["mapillary", "mtpw"] {
        let out = world
            .mtp()
            .args(["-vvv", "auth", id])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        all.push_str(&text(&out));
    }
    let dir = world.generate("walk", 4, 30_000, 9);
    for args in [
        vec!["-vvv", "upload", "--json", dir.to_str().unwrap()],
        vec!["-vvv", "status", "--json"],
        vec!["-vvv", "auth", "status", "--json"],
        vec!["-vvv", "status"],
    ] {
        let out = world
            .mtp()
            .args(&args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        all.push_str(&text(&out));
    }
    assert!(all.contains("published"), "the run completed: {all}");
    let mapillary_token = world.mapillary.config().user_token;
    let mtpw_token = world.mtpw.token();
    assert!(
        !all.contains(&mapillary_token),
        "the Mapillary token leaked into the output"
    );
    assert!(
        !all.contains(&mtpw_token),
        "the MTPW token leaked into the output"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let state = world.home.path().join("state");
        let dir_mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o077, 0, "state dir {dir_mode:o}");
        for entry in std::fs::read_dir(&state).unwrap() {
            let mode = entry
                .as_ref()
                .unwrap()
                .metadata()
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{:?} is {mode:o}", entry.unwrap().path());
        }
    }
    let _ = Instant::now();
}
