//! Measures `read_sequence` + `summary` (what `inspect` does) on a generated sequence.
//!
//! ```text
//! cargo run --release -p mtp-sequence --example bench_inspect -- --count 10000 [--target-bytes 2000000]
//!     [--padding before|after] [--dir /tmp/bench] [--runs 3] [--read-only] [--cold]
//! ```
//! `--cold` drops the files from the page cache (`posix_fadvise(DONTNEED)`) before each run; `--read-only`
//! reuses an existing `--dir` without generating, so the peak RSS printed is the reader's alone.

use std::path::PathBuf;
use std::time::Instant;

use mtp_sequence::generate::{generate_sequence, GenerateOptions, Padding};
use mtp_sequence::{read_sequence, Overrides};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(unix)]
fn drop_cache(dir: &std::path::Path) {
    use std::os::unix::io::AsRawFd;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(f) = std::fs::File::open(e.path()) {
            // SAFETY: a valid open descriptor; the call only gives the kernel advice about cached pages.
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
}

#[cfg(not(unix))]
fn drop_cache(_: &std::path::Path) {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = arg(&args, "--count")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(10_000);
    let runs: usize = arg(&args, "--runs")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(3);
    let target: Option<u64> = arg(&args, "--target-bytes")
        .map(|v| v.parse())
        .transpose()?;
    let cold = args.iter().any(|a| a == "--cold");
    let _tmp;
    let dir = match arg(&args, "--dir") {
        Some(d) => PathBuf::from(d),
        None => {
            _tmp = tempfile::tempdir()?;
            _tmp.path().join("bench")
        }
    };
    if !args.iter().any(|a| a == "--read-only") {
        let t = Instant::now();
        let opts = GenerateOptions {
            count,
            target_bytes: target,
            padding: match arg(&args, "--padding").as_deref() {
                Some("before") => Padding::BeforeScan,
                _ => Padding::AfterScan,
            },
            ..GenerateOptions::default()
        };
        generate_sequence(&dir, &opts)?;
        eprintln!("generated {count} images in {:.2?}", t.elapsed());
    }
    for run in 1..=runs {
        if cold {
            drop_cache(&dir);
        }
        let t = Instant::now();
        let scanned = read_sequence(&dir, &Overrides::default())?;
        let summary = scanned.summary()?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "run {run}{}: {} images, {} problems, {:.1} MiB in {:.3} s = {:.0} images/s",
            if cold { " (cold)" } else { "" },
            summary.image_count,
            summary.problems.len(),
            summary.total_bytes as f64 / 1048576.0,
            secs,
            summary.image_count as f64 / secs
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}
