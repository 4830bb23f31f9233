//! Peak resident memory, read from `/proc/self/status` (`VmRSS`, `VmHWM`), measured in a
//! child process so that nothing else the benchmarks allocated counts.

use std::io;

use serde::{Deserialize, Serialize};

/// Reads a `kB` field (`VmRSS`, `VmHWM`, ...) of `/proc/self/status`, in KiB.
pub fn status_kib(field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .ok_or_else(|| io::Error::other(format!("no `{field}` in /proc/self/status")))
}

/// What a memory child measured, in KiB.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Resident memory before the value was built.
    pub before_kib: u64,
    /// Resident memory the value added once built: the value's own size.
    pub value_kib: u64,
    /// The peak resident memory above `before_kib` at any point until the end.
    pub peak_kib: u64,
    /// Resident memory above `before_kib` at the end, while what the work returned is
    /// still held (see [`measure_held`]): what stays, as against a passing peak (memory
    /// freed but kept by the allocator counts too).
    #[serde(default)]
    pub end_kib: u64,
    /// Swaps done.
    pub swaps: u32,
}

/// In the child: builds the value with `build`, then runs `work` on it, and reports.
pub fn measure<T>(
    build: impl FnOnce() -> T,
    work: impl FnOnce(T) -> io::Result<u32>,
) -> io::Result<MemoryReport> {
    measure_held(build, |value| work(value).map(|swaps| (swaps, ())))
}

/// [`measure`], where `work` also returns what it wants kept (an atom holding the value):
/// the report's `end_kib` is read while that is still held, before it is dropped.
pub fn measure_held<T, H>(
    build: impl FnOnce() -> T,
    work: impl FnOnce(T) -> io::Result<(u32, H)>,
) -> io::Result<MemoryReport> {
    let before_kib = status_kib("VmRSS")?;
    let value = build();
    let value_kib = status_kib("VmRSS")?.saturating_sub(before_kib);
    let (swaps, held) = work(value)?;
    let end_kib = status_kib("VmRSS")?.saturating_sub(before_kib);
    let peak_kib = status_kib("VmHWM")?.saturating_sub(before_kib);
    drop(held);
    Ok(MemoryReport {
        before_kib,
        value_kib,
        peak_kib,
        end_kib,
        swaps,
    })
}
