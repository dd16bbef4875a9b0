//! Running a child process and measuring it: wall time, user and system CPU (from the `rusage` that
//! `wait4` returns for the child) and peak RSS, with a time limit and an optional kill at a chosen
//! moment. The measurements need Linux; elsewhere the child is still run and timed, and CPU and RSS are
//! reported as unavailable.
//!
//! Peak RSS is the child's `VmHWM` from `/proc/<pid>/status`, sampled every few milliseconds while it
//! runs (the last sample is at most that long before it exits). `rusage.ru_maxrss` is not used for it:
//! Linux carries the *parent's* high-water mark into a child across fork and exec, so every child of
//! the (large) bench process would report at least the bench's own peak.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// CPU and memory use of a finished child.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    /// User CPU time.
    #[serde(serialize_with = "secs", rename = "user_s")]
    pub user: Duration,
    /// System CPU time.
    #[serde(serialize_with = "secs", rename = "sys_s")]
    pub sys: Duration,
    /// Peak resident set size (sampled `VmHWM`), bytes; `None` when the child exited before the first
    /// sample.
    pub peak_rss_bytes: Option<u64>,
    /// `ru_maxrss` as reported, bytes (includes the parent's high-water mark; see the module docs).
    pub ru_maxrss_bytes: u64,
}

impl Usage {
    /// User + system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

/// Durations as seconds in JSON.
fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// How a measured child ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measured {
    /// From just before `spawn` to the child's exit.
    #[serde(serialize_with = "secs", rename = "wall_s")]
    pub wall: Duration,
    /// CPU and memory (Linux only).
    pub usage: Option<Usage>,
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Killed by us: at `kill_after`, or because it ran past its time limit.
    pub killed: bool,
    /// It ran past its time limit.
    pub timed_out: bool,
}

impl Measured {
    /// Exited normally with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Spawns `command` and waits for it, killing it (SIGKILL) after `kill_after` if given, and in any case
/// once `limit` has passed.
pub fn run_measured(
    command: &mut Command,
    limit: Duration,
    kill_after: Option<Duration>,
) -> Result<Measured> {
    let program = command.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    wait(child, start, limit, kill_after)
}

/// How often a running child's peak RSS is sampled.
#[cfg(target_os = "linux")]
const SAMPLE_EVERY: Duration = Duration::from_millis(3);

/// `VmHWM` (peak RSS) from a `/proc/<pid>/status`, bytes.
#[cfg(target_os = "linux")]
fn vm_hwm(status_path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(target_os = "linux")]
fn wait(
    child: std::process::Child,
    start: Instant,
    limit: Duration,
    kill_after: Option<Duration>,
) -> Result<Measured> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    // The watchdog samples the child's peak RSS and kills it at `kill_after` or `limit`. It only signals while `exited` is false
    // under the lock, and `exited` is set while the child is still unreaped (see below), so the pid it
    // signals can only be our child's.
    let exited = Arc::new(Mutex::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = {
        let (exited, timed_out, killed, peak) = (
            exited.clone(),
            timed_out.clone(),
            killed.clone(),
            peak.clone(),
        );
        std::thread::spawn(move || {
            let planned = kill_after.map(|k| k.min(limit));
            let deadline = start + planned.unwrap_or(limit);
            let status = format!("/proc/{pid}/status");
            loop {
                if let Some(hwm) = vm_hwm(&status) {
                    peak.fetch_max(hwm, Ordering::SeqCst);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match done_rx.recv_timeout(left.min(SAMPLE_EVERY)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            }
            let guard = exited.lock().unwrap_or_else(|e| e.into_inner());
            if !*guard {
                // SAFETY: plain syscall; `pid` is our unreaped child (see above).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed.store(true, Ordering::SeqCst);
                if planned.is_none_or(|p| p >= limit) {
                    timed_out.store(true, Ordering::SeqCst);
                }
            }
        })
    };
    // First wait without reaping (the pid stays ours), note the time, then reap with rusage.
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waitid on a child");
        }
    }
    let wall = start.elapsed();
    *exited.lock().unwrap_or_else(|e| e.into_inner()) = true;
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall on our own (exited) child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 on a child");
        }
    }
    // The child is reaped: `Child` must not wait or kill any more; dropping it only closes its pipes.
    drop(child);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Measured {
        wall,
        usage: Some(Usage {
            user: tv(usage.ru_utime),
            sys: tv(usage.ru_stime),
            peak_rss_bytes: Some(peak.load(Ordering::SeqCst)).filter(|&p| p > 0),
            // Linux reports kilobytes.
            ru_maxrss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
        }),
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        killed: killed.load(Ordering::SeqCst),
        timed_out: timed_out.load(Ordering::SeqCst),
    })
}

#[cfg(not(target_os = "linux"))]
fn wait(
    mut child: std::process::Child,
    start: Instant,
    limit: Duration,
    kill_after: Option<Duration>,
) -> Result<Measured> {
    let planned = kill_after.map(|k| k.min(limit));
    let mut killed = false;
    let mut timed_out = false;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            return Ok(Measured {
                wall: start.elapsed(),
                usage: None,
                code: status.code(),
                killed,
                timed_out,
            });
        }
        let elapsed = start.elapsed();
        if !killed && elapsed >= planned.unwrap_or(limit) {
            let _ = child.kill();
            killed = true;
            timed_out = planned.is_none_or(|p| p >= limit);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
