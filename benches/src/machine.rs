//! What the numbers were measured on: cores, CPU model, memory, kernel, and the file
//! system the file scenarios ran on.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The machine, as far as a benchmark reader needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Cores available to this process (`nproc`).
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory, in MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
    /// The directory the file scenarios ran in.
    pub bench_dir: String,
    /// Its file system type and device, from /proc/self/mounts (`ext4 on /dev/vda`).
    pub file_system: String,
    /// The load averages (1, 5, 15 min) when the run started: other work on the machine
    /// skews the figures (the ratios less, as both sides are measured alike).
    pub load_at_start: String,
    /// The load averages when the run ended, filled in by [`Machine::finish`].
    pub load_at_end: String,
}

impl Machine {
    /// Describes this machine, with the file system holding `bench_dir`.
    pub fn describe(bench_dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = field(&meminfo, "MemTotal")
            .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_mib,
            kernel,
            bench_dir: bench_dir.display().to_string(),
            file_system: file_system(bench_dir).map_or_else(
                || "unknown".into(),
                |(fs, device)| format!("{fs} on {device}"),
            ),
            load_at_start: load_average(),
            load_at_end: String::new(),
        }
    }

    /// Notes the load at the end of the run.
    pub fn finish(&mut self) {
        self.load_at_end = load_average();
    }

    /// Whether the file scenarios ran on a file system kept in memory, where fsync is
    /// free and the file rows mean nothing.
    pub fn on_memory_fs(&self) -> bool {
        ["tmpfs", "ramfs"]
            .iter()
            .any(|fs| self.file_system.starts_with(&format!("{fs} ")))
    }

    /// One markdown paragraph.
    pub fn markdown(&self) -> String {
        let mut text = format!(
            "Machine: {} cores ({}), {} MiB memory, Linux {}; file scenarios in `{}` ({}); \
             load average {} at the start",
            self.nproc,
            self.cpu,
            self.memory_mib,
            self.kernel,
            self.bench_dir,
            self.file_system,
            self.load_at_start,
        );
        if !self.load_at_end.is_empty() {
            text.push_str(&format!(", {} at the end", self.load_at_end));
        }
        text.push('.');
        if self.on_memory_fs() {
            text.push_str(
                " **Warning: that is a memory file system, where fsync is free: the file rows \
                 mean nothing. Set ENDURO_BENCH_DIR to a directory on a disk.**",
            );
        }
        text
    }
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// The value of the first `key : value` line.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The type and device of the file system holding `path`: the longest mount point in
/// /proc/self/mounts that contains it.
pub fn file_system(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let device = parts.next()?;
            let mount_point = parts.next()?.replace("\\040", " ");
            let fs = parts.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), fs.to_owned(), device.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, fs, device)| (fs, device))
}
