//! The reliability suite: crashes (`kill -9` at random moments and at each phase of a run, the phase
//! each kill hit read from the fakes' counters), every fake fault alone and combined (each proven to
//! have fired), bad input, and token hygiene — through the real `mtp` binary, checking at the end that
//! nothing was lost, duplicated or left behind.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mtp_fakes::fake_mapillary::{
    EntityKind, FinishFault, Flapping, MapillaryConfig, MapillaryFaults, MapillaryStats,
    RateLimitShape, ResetFault,
};
use mtp_fakes::fake_mtpw::{CreatedBy, MtpwApi, MtpwConfig, MtpwFaults, MtpwStats};
use mtp_tests::world::{output_text as text, FakesWorld};
use rand::{Rng, SeedableRng};
use serde_json::Value;

mtp_tests::suite_world!(World);

impl World {
    fn new(mapillary: MapillaryConfig, mtpw: MtpwConfig) -> World {
        World(FakesWorld::start(mapillary, mtpw))
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
            "--name",
            &format!("{name} walk"),
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
        self.upload_until_done_with(dir, publishes, &[])
    }

    /// [`Self::upload_until_done`] with `extra` arguments for `mtp upload`.
    fn upload_until_done_with(&self, dir: &Path, publishes: u32, extra: &[&str]) -> usize {
        for attempt in 1..=8 {
            let out = self
                .mtp()
                .args(self.upload_args(dir, publishes))
                .args(extra)
                .output()
                .unwrap();
            if out.status.success() && self.all_published() {
                return attempt;
            }
        }
        panic!("not published after 8 runs: {:?}", self.status_rows());
    }

    /// Whether a user would add `--republish` now: mtp says a publish's outcome is unknown, and the
    /// service it is unknown at has fewer than `publishes` (Mapillary: the fake's count of
    /// `finish_upload` calls; MTPW: the fake's sequences, one per published one); never while one of the
    /// unknown ones went through. (`mtp status` re-checks waiting sequences, which may sync MTPW, so it
    /// runs only when a fake says something is missing.)
    fn needs_republish(&self, publishes: u32) -> bool {
        let sent: u32 = self.mapillary.stats().finish_upload_calls.values().sum();
        let created = self.mtpw.stats().sequences.len() as u32;
        if sent >= publishes && created >= publishes {
            return false;
        }
        let rows = self.status_rows();
        let unknown = |id: &str| {
            rows.iter()
                .any(|r| r["integration"] == id && r["state"] == "unknown")
        };
        let (mly, mtpw) = (unknown("mapillary"), unknown("mtpw"));
        (mly || mtpw) && (!mly || sent < publishes) && (!mtpw || created < publishes)
    }

    /// `upload DIR`, with `--republish` when [`Self::needs_republish`].
    fn upload_args(&self, dir: &Path, publishes: u32) -> Vec<OsString> {
        let mut args = vec![OsString::from("upload"), dir.as_os_str().to_owned()];
        if self.needs_republish(publishes) {
            args.push("--republish".into());
        }
        args
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

/// The phases of a run a kill can hit, in pipeline order. README's Reliability section names
/// authorisation, upload, manifest, publish, lookup and MTPW sync; MTPW's newer API syncs in two
/// steps (create, then import into the created record), each killed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Phase {
    /// `mtp auth`: the consent page or the token exchange was reached.
    Authorisation,
    /// The look at Mapillary before anything is sent (`GET /images` while images of the sequence are
    /// still missing on the upload service and nothing was sent to it yet).
    Survey,
    /// Image bodies were being sent (not all images of the sequence complete yet).
    Upload,
    /// Every image complete, the manifest being built or sent, no `finish_upload` yet.
    Manifest,
    /// `finish_upload` was sent, no lookup yet.
    Publish,
    /// The published sequence was being looked up (`GET /images`).
    Lookup,
    /// MTPW's older API: `token/verify` and the import by key.
    MtpwSync,
    /// MTPW's newer API: `sequence/create/` sent, no import yet.
    MtpwCreate,
    /// MTPW's newer API: `PUT sequence/import/<unique_id>/` sent.
    MtpwImportInto,
}

/// Both fakes' counters at one moment.
#[derive(Clone)]
struct Counters {
    mly: MapillaryStats,
    mtpw: MtpwStats,
}

impl Counters {
    fn of(world: &World) -> Counters {
        Counters {
            mly: world.mapillary.stats(),
            mtpw: world.mtpw.stats(),
        }
    }

    fn mtpw_requests(&self, path_part: &str) -> u64 {
        self.mtpw
            .requests
            .iter()
            .filter(|(route, _)| route.contains(path_part))
            .map(|(_, n)| n)
            .sum()
    }

    fn mtpw_old_imports(&self) -> u64 {
        self.mtpw
            .requests
            .iter()
            .filter(|(route, _)| {
                route.ends_with("/sequence/import") || route.ends_with("/sequence/import/")
            })
            .map(|(_, n)| n)
            .sum()
    }

    fn upload_requests(&self) -> u64 {
        self.mly.request_count("GET /upload/:key") + self.mly.request_count("POST /upload/:key")
    }

    fn complete_images(&self) -> usize {
        self.mly
            .entities
            .values()
            .filter(|e| e.kind == EntityKind::Image && e.handle.is_some())
            .count()
    }

    /// The furthest phase a run reached between `self` (its start) and `now`, from what the fakes
    /// saw: `None` when it sent nothing yet (a start-up kill). `images_so_far` is the number of images
    /// of every sequence uploaded so far, this one included.
    fn phase_reached(&self, now: &Counters, images_so_far: usize) -> Option<Phase> {
        let grew = |f: &dyn Fn(&Counters) -> u64| f(now) > f(self);
        if grew(&|c| c.mtpw_requests("/sequence/import/:unique_id")) {
            return Some(Phase::MtpwImportInto);
        }
        if grew(&|c| c.mtpw_requests("/sequence/create")) {
            return Some(Phase::MtpwCreate);
        }
        if grew(&|c| c.mtpw_requests("/token/verify") + c.mtpw_old_imports()) {
            return Some(Phase::MtpwSync);
        }
        // A `finish_upload` received but not yet handled (the fake holds it `finish_latency_ms`): the run
        // is publishing, even if the pre-publish survey has looked Mapillary up already.
        let handled = |c: &Counters| {
            c.mly
                .finish_upload_calls
                .values()
                .map(|&n| u64::from(n))
                .sum::<u64>()
        };
        let publishes = |c: &Counters| c.mly.request_count("POST /finish_upload");
        if publishes(now) - publishes(self) > handled(now) - handled(self) {
            return Some(Phase::Publish);
        }
        // A search after publishing. The look before publishing searches before anything is sent, so
        // a search alone does not say the run got there: it did once a publish was handled, or when the
        // run sent nothing to the upload service and every image is there already (a run that only
        // looks its sequence up). With images still missing and nothing sent, it is that first look.
        if grew(&|c| c.mly.request_count("GET /images")) {
            if handled(now) > handled(self) {
                return Some(Phase::Lookup);
            }
            if !grew(&|c| c.upload_requests()) {
                return Some(if now.complete_images() >= images_so_far {
                    Phase::Lookup
                } else {
                    Phase::Survey
                });
            }
        }
        if grew(&|c| c.mly.request_count("POST /finish_upload")) {
            return Some(Phase::Publish);
        }
        if grew(&|c| c.upload_requests()) {
            return Some(if now.complete_images() >= images_so_far {
                Phase::Manifest
            } else {
                Phase::Upload
            });
        }
        if grew(&|c| {
            c.mly.request_count("GET /connect")
                + c.mly.request_count("POST /token")
                + c.mtpw_requests("/o/authorize")
        }) {
            return Some(Phase::Authorisation);
        }
        None
    }
}

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// After this long.
    After(Duration),
    /// As soon as the fakes show the run reached this phase (or a later one).
    Reached(Phase),
}

/// What a kill hit.
struct Kill {
    /// The run had exited by itself before the kill.
    exited: bool,
    /// The phase the fakes' counters show at the moment of the kill (`None`: the run had sent
    /// nothing yet, or had already exited).
    phase: Option<Phase>,
    /// Upload entities complete (acknowledged by the server) at the moment of the kill, with the
    /// body bytes each had received then.
    acknowledged: BTreeMap<String, u64>,
}

/// Whether a run seen at phase `p` has got to `target`. A run looks Mapillary up before it publishes
/// (the pre-publish survey), so a kill aimed at the publish waits for the publish itself.
fn arrived(p: Phase, target: Phase) -> bool {
    if target == Phase::Publish {
        p == Phase::Publish
    } else {
        p >= target
    }
}

/// Spawns `mtp args`, kills it (SIGKILL) at `at`, and says what the kill hit.
fn kill_run<S: AsRef<OsStr>>(world: &World, args: &[S], at: KillAt, images_so_far: usize) -> Kill {
    let start = Counters::of(world);
    let mut child = world
        .mtp()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut now = start.clone();
    match at {
        KillAt::After(delay) => {
            std::thread::sleep(delay);
            now = Counters::of(world);
        }
        KillAt::Reached(target) => {
            // Polls the fakes until the run gets there; a run that ends first is not killed.
            let give_up = Instant::now() + Duration::from_secs(60);
            while Instant::now() < give_up && child.try_wait().unwrap().is_none() {
                now = Counters::of(world);
                if start
                    .phase_reached(&now, images_so_far)
                    .is_some_and(|p| arrived(p, target))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok(); // SIGKILL
    let output = child.wait_with_output().unwrap();
    if !running && !output.status.success() {
        eprintln!(
            "a run ended by itself with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let phase = if running {
        start.phase_reached(&now, images_so_far)
    } else {
        None
    };
    Kill {
        exited: !running,
        phase,
        acknowledged: now
            .mly
            .entities
            .iter()
            .filter(|(_, e)| e.handle.is_some())
            .map(|(k, e)| (k.clone(), e.bytes_received_total))
            .collect(),
    }
}

/// Nothing lost, nothing duplicated, nothing left behind, on both fakes:
/// - Mapillary (the fake's own check, shared with the benchmarks): `sequences` sequences published
///   from uploads, each manifest given to `finish_upload` once, each published sequence holding each of
///   its images exactly once and `images` images in all, no partial or unpublished entity left;
/// - no upload entity received a body byte after it was complete (an acknowledged image is never sent
///   again; the empty `POST` at its end by which a run that died before storing the handle fetches it
///   again sends no byte), and each image's md5 matched its content-addressed key (the fake checks);
/// - MTPW: one record per published Mapillary sequence, found by its key, with the name it was
///   uploaded under, imported, made by `flow`; no other record (no orphan of a create whose answer was
///   lost).
fn assert_exactly_once(
    world: &World,
    images: usize,
    names: &[String],
    flow: CreatedBy,
) -> MapillaryStats {
    let stats = world.mapillary.stats();
    if let Err(err) = stats.check_published_exactly_once(images, names.len()) {
        panic!("{err}: {:#?}", stats.received());
    }
    for (key, entity) in &stats.entities {
        assert_eq!(
            entity.bytes_after_complete, 0,
            "{key} was sent again after the server had it complete: {entity:?}"
        );
    }
    eprintln!(
        "{images} images stored once; {} bytes re-sent in all (in flight at a crash or a fault), {} \
         handles fetched again by an empty POST",
        stats.bytes_resent,
        stats.received().images_refinished
    );
    let mtpw = world.mtpw.stats();
    let rows = world.status_rows();
    for sequence in stats.uploaded_sequences() {
        let records: Vec<_> = mtpw
            .sequences
            .iter()
            .filter(|s| s.sequence_key.as_deref() == Some(sequence.key.as_str()))
            .collect();
        assert_eq!(
            records.len(),
            1,
            "MTPW records for {}: {records:?}",
            sequence.key
        );
        let record = records[0];
        // The name it was uploaded under, as the Mapillary row of the same sequence says.
        let row = rows
            .iter()
            .find(|r| r["keys"]["sequence_key"] == sequence.key.as_str())
            .unwrap_or_else(|| panic!("no status row for {}: {rows:?}", sequence.key));
        assert_eq!(record.name, row["name"], "{record:?} vs {row}");
        assert!(names.contains(&record.name), "{record:?} not in {names:?}");
        assert!(record.is_published && record.imports >= 1, "{record:?}");
        assert_eq!(record.created_by, flow, "{record:?}");
    }
    let mut recorded: Vec<&str> = mtpw.sequences.iter().map(|s| s.name.as_str()).collect();
    recorded.sort_unstable();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(recorded, expected, "MTPW records: {:#?}", mtpw.sequences);
    stats
}

/// One kill campaign on a fresh world whose MTPW speaks `api`. `mtp auth` of each integration is killed
/// twice in its first 40 ms and once as soon as the fakes see the consent page or token exchange. Then
/// two sequences: the first is killed once at each phase in turn (upload, manifest, publish, lookup,
/// each MTPW step `api` has) as soon as the fakes show the run reached it; the second at random
/// moments until eight kills landed in a running upload, 20 tries, or a run finished by itself. Each
/// is then uploaded to completion. Checks everything once at the end, and that no entity acknowledged
/// before a kill received a byte after it. Returns the phase each kill hit.
fn kill_campaign(api: MtpwApi, seed: u64, first_sequence: u64) -> Vec<Option<Phase>> {
    let world = World::new(
        MapillaryConfig {
            faults: MapillaryFaults {
                throttle_bytes_per_sec: Some(4_000_000),
                latency_ms: 15,
                // Wide enough for a kill aimed at the publish to land while `finish_upload` is in flight.
                finish_latency_ms: 400,
                ..MapillaryFaults::default()
            },
            ..MapillaryConfig::default()
        },
        MtpwConfig {
            api,
            faults: MtpwFaults {
                latency_ms: 60,
                ..MtpwFaults::default()
            },
            ..MtpwConfig::default()
        },
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut phases = Vec::new();
    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    let mut record = |kill: Kill, phases: &mut Vec<Option<Phase>>| {
        phases.push(kill.phase);
        for (key, bytes) in kill.acknowledged {
            acknowledged.entry(key).or_insert(bytes);
        }
    };
    for id in ["mapillary", "mtpw"] {
        let args = [OsStr::new("auth"), OsStr::new(id)];
        for _ in 0..2 {
            let delay = Duration::from_millis(rng.gen_range(0..40));
            record(
                kill_run(&world, &args, KillAt::After(delay), 0),
                &mut phases,
            );
        }
        let at = KillAt::Reached(Phase::Authorisation);
        record(kill_run(&world, &args, at, 0), &mut phases);
    }
    world.authorise();
    let mut total_images = 0;
    let mut names = Vec::new();
    for seq in first_sequence..first_sequence + 2 {
        let count = 8 + seq as usize;
        total_images += count;
        let name = format!("walk{seq}");
        let dir = world.generate(&name, count, 120_000, 10 + seq);
        names.push(format!("{name} walk"));
        if seq % 2 == 0 {
            // Once at each phase, as soon as the fakes show the run reached it; the next run resumes
            // and is killed at the next phase.
            let mtpw_steps: &[Phase] = match api {
                MtpwApi::New => &[Phase::MtpwCreate, Phase::MtpwImportInto],
                _ => &[Phase::MtpwSync],
            };
            let steps = [
                Phase::Upload,
                Phase::Manifest,
                Phase::Publish,
                Phase::Lookup,
            ];
            for &phase in steps.iter().chain(mtpw_steps) {
                // A run that ends before it gets there (e.g. a publish killed in flight leaves its
                // outcome unknown, and that run only looks it up) is followed by another.
                for _ in 0..3 {
                    let at = KillAt::Reached(phase);
                    let args = world.upload_args(&dir, names.len() as u32);
                    let kill = kill_run(&world, &args, at, total_images);
                    let exited = kill.exited;
                    record(kill, &mut phases);
                    if !exited {
                        break;
                    }
                }
            }
        } else {
            // At random moments in [earliest, latest) until eight kills landed in a running upload,
            // 20 tries, or a run finished by itself: a kill before the run sent anything (start-up)
            // makes the next come later, one that landed makes the next come sooner.
            let (mut landed, mut attempts) = (0, 0);
            let (mut earliest, mut latest) = (0u64, 400u64);
            while landed < 8 && attempts < 20 {
                attempts += 1;
                let ms = rng.gen_range(earliest..latest.max(earliest + 1));
                let at = KillAt::After(Duration::from_millis(ms));
                let args = world.upload_args(&dir, names.len() as u32);
                let kill = kill_run(&world, &args, at, total_images);
                let exited = kill.exited;
                match kill.phase {
                    Some(_) => {
                        landed += 1;
                        latest = latest.saturating_sub(latest / 4).max(earliest + 20);
                    }
                    None => earliest = ms,
                }
                record(kill, &mut phases);
                if exited {
                    break;
                }
            }
        }
        world.upload_until_done(&dir, names.len() as u32);
    }
    let flow = match api {
        MtpwApi::New => CreatedBy::Create,
        _ => CreatedBy::OldImport,
    };
    let stats = assert_exactly_once(&world, total_images, &names, flow);
    for (key, bytes) in &acknowledged {
        let now = stats.entities[key].bytes_received_total;
        assert_eq!(
            now,
            *bytes,
            "{key} was complete at a kill with {bytes} bytes received, and received {} more after",
            now - bytes
        );
    }
    phases
}

#[test]
fn kill_9_at_random_moments_across_every_phase_loses_and_duplicates_nothing() {
    // MTPW's older API (token/verify + import by key), then its newer one (create, then import).
    let mut phases = kill_campaign(MtpwApi::Both, 20261125, 0);
    phases.extend(kill_campaign(MtpwApi::New, 20261201, 2));
    let mut hit: BTreeMap<Phase, usize> = BTreeMap::new();
    for phase in phases.iter().flatten() {
        *hit.entry(*phase).or_default() += 1;
    }
    let landed: usize = hit.values().sum();
    let startup = phases.iter().filter(|p| p.is_none()).count();
    eprintln!(
        "{} kills: {landed} landed in a running mtp, {startup} at start-up or after it had exited; \
         by phase: {hit:?}\nin order: {phases:?}",
        phases.len()
    );
    for phase in [
        Phase::Authorisation,
        Phase::Upload,
        Phase::Manifest,
        Phase::Publish,
        Phase::Lookup,
        Phase::MtpwSync,
        Phase::MtpwCreate,
        Phase::MtpwImportInto,
    ] {
        assert!(
            hit.get(&phase).is_some_and(|&n| n >= 1),
            "no kill hit {phase:?}: {hit:?}"
        );
    }
    assert!(landed >= 24, "only {landed} kills landed mid-run: {hit:?}");
}

/// A counter of the fakes that proves a fault fired, with its name.
type FiredCounter = (&'static str, fn(&MapillaryStats, &MtpwStats) -> u64);

/// A fault case: what it sets on each fake, and the counters that prove it fired.
struct FaultCase {
    name: &'static str,
    mapillary: MapillaryFaults,
    mtpw: MtpwFaults,
    fired: Vec<FiredCounter>,
    /// The MTPW API generation the fake speaks: `Both` takes the older token-verify and import path;
    /// `New` makes every sequence go through `create`.
    mtpw_api: MtpwApi,
}

fn mly_fault(stats: &MapillaryStats, name: &str) -> u64 {
    stats.faults_fired.get(name).copied().unwrap_or(0)
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
    let upload_5xx: FiredCounter = ("upload 5xx", |m, _| mly_fault(m, "upload_5xx"));
    let graph_5xx: FiredCounter = ("graph 5xx", |m, _| mly_fault(m, "graph_5xx"));
    let rate_limited: FiredCounter = ("429", |m, _| mly_fault(m, "rate_limited"));
    let resets: FiredCounter = ("resets", |m, _| m.connections_reset);
    let mismatches: FiredCounter = ("offset mismatches", |m, _| mly_fault(m, "offset_mismatch"));
    let mtpw_5xx: FiredCounter = ("MTPW 5xx", |_, w| w.server_errors_injected);
    let mtpw_drops: FiredCounter = ("MTPW drops", |_, w| w.connections_dropped);
    let cases = vec![
        FaultCase {
            name: "upload 5xx",
            mapillary: MapillaryFaults {
                upload_5xx_ratio: 0.3,
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![upload_5xx],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "graph 5xx",
            mapillary: MapillaryFaults {
                graph_5xx_ratio: 0.3,
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![graph_5xx],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "429 with Retry-After",
            mapillary: MapillaryFaults {
                rate_limit_ratio: 0.3,
                retry_after_secs: 1,
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![rate_limited],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "reset mid-body",
            mapillary: MapillaryFaults {
                reset: reset(2),
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![resets],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "offset mismatch",
            mapillary: MapillaryFaults {
                offset_mismatch_ratio: 0.3,
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![mismatches],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "flapping server",
            mapillary: MapillaryFaults {
                // Failing three quarters of the time; the fake starts its windows at the first
                // request, failing first, so every run meets at least one failing window.
                flapping: Some(Flapping {
                    healthy_ms: 50,
                    failing_ms: 150,
                }),
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![("flapping 503s", |m, _| mly_fault(m, "flapping"))],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "finish_upload 500 but published",
            mapillary: MapillaryFaults {
                finish: FinishFault::Fail500ButPublished,
                finish_fault_calls: Some(1),
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![("finish_upload 500", |m, _| mly_fault(m, "finish"))],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "MTPW 5xx and dropped connections",
            mapillary: MapillaryFaults::default(),
            // MTPW sees few calls (token/verify, import), so the first is dropped for certain and
            // the rest meet the ratios.
            mtpw: MtpwFaults {
                error_5xx_ratio: 0.5,
                drop_connection_ratio: 0.2,
                drop_next: 1,
                ..Default::default()
            },
            fired: vec![mtpw_5xx, mtpw_drops],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "MTPW error-as-200",
            mapillary: MapillaryFaults::default(),
            mtpw: MtpwFaults {
                error_as_200_next: 1,
                ..Default::default()
            },
            fired: vec![("MTPW error-as-200", |_, w| w.errors_as_200)],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "combined",
            mapillary: MapillaryFaults {
                upload_5xx_ratio: 0.15,
                rate_limit_ratio: 0.1,
                retry_after_secs: 1,
                reset: reset(3),
                offset_mismatch_ratio: 0.1,
                // Few graph reads (/me, /images) in a run: half of them fail.
                graph_5xx_ratio: 0.5,
                ..Default::default()
            },
            mtpw: MtpwFaults {
                error_5xx_ratio: 0.3,
                drop_connection_ratio: 0.1,
                drop_next: 1,
                ..Default::default()
            },
            fired: vec![
                upload_5xx,
                graph_5xx,
                rate_limited,
                resets,
                mismatches,
                mtpw_5xx,
                mtpw_drops,
            ],
            mtpw_api: MtpwApi::Both,
        },
        // Last, so the cases above keep the seeds they had.
        FaultCase {
            name: "400 RequestRateLimitedError, retriable: false",
            mapillary: MapillaryFaults {
                rate_limit_ratio: 0.3,
                rate_limit_shape: RateLimitShape::Status400,
                retry_after_secs: 1,
                ..Default::default()
            },
            mtpw: MtpwFaults::default(),
            fired: vec![rate_limited],
            mtpw_api: MtpwApi::Both,
        },
        FaultCase {
            name: "MTPW 5xx and dropped connections on create (later API)",
            mapillary: MapillaryFaults::default(),
            mtpw: MtpwFaults {
                fail_create_next: 2,
                error_5xx_ratio: 0.2,
                drop_connection_ratio: 0.1,
                ..Default::default()
            },
            fired: vec![("MTPW faults on create", |_, w| {
                w.faults_by_route
                    .get("POST /api/v1/sequence/create/")
                    .copied()
                    .unwrap_or(0)
            })],
            mtpw_api: MtpwApi::New,
        },
    ];
    let (mut report, mut never_fired) = (Vec::new(), Vec::new());
    for (i, case) in cases.into_iter().enumerate() {
        let world = World::new(
            MapillaryConfig {
                faults: MapillaryFaults {
                    seed: Some(i as u64 + 1),
                    ..case.mapillary
                },
                ..MapillaryConfig::default()
            },
            MtpwConfig {
                faults: MtpwFaults {
                    seed: Some(i as u64 + 1),
                    ..case.mtpw
                },
                api: case.mtpw_api,
                ..MtpwConfig::default()
            },
        );
        world.authorise();
        let dir = world.generate("walk", 6, 100_000, 3);
        // One request at a time: with a seeded fake, the faults then hit the same requests on every
        // run (the fake's random draws happen in a fixed order), so whether each fires does not
        // depend on thread scheduling.
        let runs = world.upload_until_done_with(&dir, 1, &["--jobs", "1"]);
        let created_by = match case.mtpw_api {
            MtpwApi::New => CreatedBy::Create,
            _ => CreatedBy::OldImport,
        };
        let stats = assert_exactly_once(&world, 6, &["walk walk".to_string()], created_by);
        let mtpw = world.mtpw.stats();
        let counts: Vec<String> = case
            .fired
            .iter()
            .map(|(what, count)| {
                let n = count(&stats, &mtpw);
                if n == 0 {
                    never_fired.push(format!("{}: {what}", case.name));
                }
                format!("{n} {what}")
            })
            .collect();
        report.push(format!(
            "{}: {runs} run(s), fired: {}",
            case.name,
            counts.join(", ")
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        never_fired.is_empty(),
        "faults that never fired (the case proved nothing): {never_fired:?}"
    );
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
            problems.iter().any(|p| p["files"]
                .as_array()
                .is_some_and(|files| files.iter().any(|f| f == name))),
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
fn a_state_database_from_a_newer_mtp_is_refused_and_left_byte_for_byte() {
    let world = World::new(MapillaryConfig::default(), MtpwConfig::default());
    let dir = world.generate("walk", 3, 20_000, 4);
    world.authorise();
    let db = world.home.path().join("state/state.db");
    assert!(db.is_file(), "mtp created its state database");
    // What a newer mtp would leave: a higher schema version.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    let state_files = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let files_before = state_files(db.parent().unwrap());
    for args in [vec!["status"], vec!["upload", dir.to_str().unwrap()]] {
        let out = world.run(&args);
        assert!(!out.status.success(), "{args:?} refused: {}", text(&out));
        assert!(
            text(&out).contains("schema version 99"),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "{args:?} changed the newer database"
        );
    }
    assert_eq!(state_files(db.parent().unwrap()), files_before);
    assert!(
        world.mapillary.stats().entities.is_empty(),
        "nothing was uploaded"
    );
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
        vec!["-vvv", "auth", "status"],
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
    // The run completed: both integrations' rows say exactly "published" (a substring check would
    // also accept "unpublished").
    let rows = world.status_rows();
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["integration"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("mapillary", "published"), ("mtpw", "published")],
        "the run completed: {all}"
    );
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
}
