//! A full disk loses nothing: the state directory on a small tmpfs mount, through the real `mtp` binary
//! against the fakes. When the run's record cannot be written nothing is sent; when the disk fills
//! mid-run the run stops naming the database and "disk full", and after space is freed `mtp status`
//! still knows what was acknowledged and the next run finishes the job. A full temporary directory
//! (where a long sequence's packed images go) stops the upload before anything is sent, naming it.
//!
//! Mounting needs root (CI runs as root); where mounting is impossible each test says why and skips.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mtp_fakes::fake_mapillary::MapillaryConfig;
use mtp_fakes::fake_mtpw::MtpwConfig;
use mtp_tests::world::{output_text as text, FakesWorld};

/// A tmpfs mounted on a directory for the life of the value, unmounted when it drops (a failed
/// assertion included).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = Command::new("mount")
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
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the mount with `filler` until `leave` bytes are free, returning the file to delete to free
    /// the space.
    fn fill(&self, leave: u64) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        // What did not fit in a whole block, byte by byte.
        while file.write_all(&[0]).is_ok() {}
        let len = file.metadata().expect("filler length").len();
        file.set_len(len.saturating_sub(leave))
            .expect("shorten the filler");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not keep the mount alive for ever.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The fakes' world with its state directory on a tmpfs of `size`; `None` (after saying why) when no
/// tmpfs can be mounted here.
fn world_on_tmpfs(size: &str) -> Option<(FakesWorld, Tmpfs)> {
    let world = FakesWorld::start(MapillaryConfig::default(), MtpwConfig::default());
    match Tmpfs::mount(&world.dir("state"), size) {
        Ok(mount) => Some((world, mount)),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

fn generate(world: &FakesWorld, name: &str, count: usize, bytes: u64) -> PathBuf {
    let out = world.run(&[
        "sequence",
        "generate",
        name,
        "--count",
        &count.to_string(),
        "--bytes-per-image",
        &bytes.to_string(),
        "--seed",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    world.dir(name)
}

fn image_posts(world: &FakesWorld) -> u64 {
    world.mapillary.stats().request_count("POST /upload/:key")
}

#[test]
fn when_the_record_of_a_run_cannot_be_written_nothing_is_sent() {
    let Some((world, mount)) = world_on_tmpfs("8m") else {
        return;
    };
    world.authorise();
    // As a user finds it: some space left, not enough for the record of a sequence of many images
    // (SQLite opens and reads the database, then cannot write).
    const IMAGES: usize = 800;
    let dir = generate(&world, "walk", IMAGES, 1_000);
    let filler = mount.fill(128 * 1024);

    let out = world.run(&["upload", dir.to_str().unwrap(), "--transport", "walk"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    let db = world.dir("state").join("state.db");
    assert!(
        all.contains(&format!("state database {}: disk full", db.display())),
        "the error names the database and the full disk: {all}"
    );
    assert_eq!(image_posts(&world), 0, "nothing may be sent: {all}");
    assert!(world.mapillary.stats().finish_upload_calls.is_empty());

    // Space freed: the same command does the whole job.
    std::fs::remove_file(filler).unwrap();
    let out = world.run(&["upload", dir.to_str().unwrap(), "--transport", "walk"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        world
            .mapillary
            .stats()
            .finish_upload_calls
            .values()
            .sum::<u32>(),
        1
    );
}

#[test]
fn a_disk_that_fills_mid_run_stops_it_and_what_was_acknowledged_is_still_known() {
    let Some((world, mount)) = world_on_tmpfs("1m") else {
        return;
    };
    world.authorise();
    const IMAGES: usize = 40;
    const BYTES: u64 = 40_000;
    let dir = generate(&world, "walk", IMAGES, BYTES);

    // Slowed down, so that the disk fills while images are still going out.
    let mut child = world
        .mtp()
        .args(["--json", "upload", dir.to_str().unwrap()])
        .args(["--transport", "walk", "--bwlimit", "80K", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mtp upload");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut filler = None;
    let mut acknowledged_before = 0;
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let acknowledged = line.contains(r#""event":"advance""#) && line.contains(r#""files":1"#);
        if acknowledged {
            acknowledged_before += 1;
        }
        if filler.is_none() && acknowledged {
            // Room left to open the database (its shared-memory index), not to write much.
            filler = Some(mount.fill(64 * 1024));
        }
        lines.push(line);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let all = format!("{}\n{stderr}", lines.join("\n"));
    let filler = filler.unwrap_or_else(|| panic!("no image was acknowledged: {all}"));

    assert_eq!(out.status.code(), Some(3), "{all}");
    let db = world.dir("state").join("state.db");
    assert!(
        stderr.contains(&format!("state database {}: disk full", db.display())),
        "the error names the database and the full disk: {all}"
    );
    let sent_before = image_posts(&world);
    assert!(
        sent_before < IMAGES as u64,
        "the run stopped at its next safe point, not after every image ({sent_before} sent): {all}"
    );
    assert!(world.mapillary.stats().finish_upload_calls.is_empty());

    // Space freed: the sequence is known...
    std::fs::remove_file(filler).unwrap();
    let status = world.run(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status_text.contains("uploading  ")
            && status_text.contains("run mtp upload again to resume"),
        "{}",
        text(&status)
    );

    // ...and what was acknowledged is not sent again: the next run sends only the rest (and at most
    // the one image in flight when the disk filled).
    let done = acknowledged_before;
    let out = world.run(&["upload", dir.to_str().unwrap(), "--transport", "walk"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        world
            .mapillary
            .stats()
            .finish_upload_calls
            .values()
            .sum::<u32>(),
        1
    );
    let again = text(&out);
    let to_send: usize = again
        .split_once("uploading ")
        .and_then(|(_, rest)| rest.split_once(&format!(" of {IMAGES} images")))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("the run says how many images it sends: {again}"));
    assert!(
        to_send <= IMAGES - done + 1,
        "{done} acknowledged before, {to_send} sent again: {again}"
    );
}

#[test]
fn a_full_temporary_directory_stops_a_long_sequence_before_anything_is_sent() {
    let world = FakesWorld::start(MapillaryConfig::default(), MtpwConfig::default());
    // Where the scan keeps the images it reads, and the packed images of a sequence of more than
    // 4,000 go (`TMPDIR`), full: the scan is the first to find it so.
    let tmp = world.dir("tmp");
    let mount = match Tmpfs::mount(&tmp, "2m") {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    world.authorise();
    const IMAGES: usize = 4_100;
    let dir = generate(&world, "long", IMAGES, 200);
    let filler = mount.fill(0);

    let upload = |world: &FakesWorld| {
        world
            .mtp()
            .env("TMPDIR", &tmp)
            .args(["upload", dir.to_str().unwrap(), "--transport", "walk"])
            .output()
            .expect("run mtp upload")
    };
    let out = upload(&world);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(
        all.contains(&format!(
            "cannot keep the images read in a scratch file in {}: disk full",
            tmp.display()
        )),
        "the error names the scratch file, where it is and the full disk: {all}"
    );
    assert_eq!(image_posts(&world), 0, "nothing may be sent: {all}");

    // Space freed: the same command does the whole job.
    std::fs::remove_file(filler).unwrap();
    let out = upload(&world);
    assert!(out.status.success(), "{}", text(&out));
    // One upload session per part of 1,000 images, each finished once.
    let finished = world.mapillary.stats().finish_upload_calls;
    assert_eq!(finished.len(), IMAGES.div_ceil(1_000), "{finished:?}");
    assert!(finished.values().all(|&calls| calls == 1), "{finished:?}");
}
