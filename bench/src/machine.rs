//! What the benchmark ran on.

/// The machine and build a benchmark ran on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// CPU model (Linux: `/proc/cpuinfo`).
    pub cpu_model: String,
    /// Installed memory, bytes (Linux: `/proc/meminfo`), if known.
    pub ram_bytes: Option<u64>,
    /// Operating system and kernel.
    pub os: String,
    /// Build profile of this binary (and so of the sibling `mtp`).
    pub profile: String,
    /// 1-minute load average when the benchmark started (Linux), to spot a busy machine.
    pub load_at_start: Option<f64>,
}

impl Machine {
    /// Reads the current machine.
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let ram_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb * 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!(" {}", s.trim()))
            .unwrap_or_default();
        Machine {
            cpus,
            cpu_model,
            ram_bytes,
            os: format!("{}{kernel}", std::env::consts::OS),
            profile: if cfg!(debug_assertions) {
                "debug".to_string()
            } else {
                "release".to_string()
            },
            load_at_start: load_average(),
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let ram = self
            .ram_bytes
            .map(|b| format!("{:.1} GiB RAM", b as f64 / (1u64 << 30) as f64))
            .unwrap_or_else(|| "RAM unknown".to_string());
        let load = self
            .load_at_start
            .map(|l| format!("; load average {l:.2} at start"))
            .unwrap_or_default();
        format!(
            "{} CPUs ({}), {ram}, {}; {} build{load}",
            self.cpus, self.cpu_model, self.os, self.profile
        )
    }
}

/// The current 1-minute load average (Linux).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
