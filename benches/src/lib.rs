//! enduro's benchmarks, run by `cargo xtask bench`: every scenario of issue 5 against the
//! bare minimum code that gives the same guarantee (the *raw baseline*), written here and
//! measured in the same run, reported as one markdown table of ratios.
//!
//! - [`raw`]: the raw baselines (durable replace by hand, a pre-zeroed append log,
//!   encode + mutex).
//! - [`values`]: the values the scenarios swap.
//! - [`driver`]: a plain throughput driver (threads, fixed duration, ops/s), for the
//!   concurrent scenarios; per-operation costs are measured with Criterion in the bench
//!   target `benches/suite`.
//! - [`memory`]: peak resident memory, measured in a child process.
//! - [`async_commit`]: the async commit mode's row (filled in with that mode).
//! - [`report`]: rows, targets, the markdown table and its JSON copy.
//! - [`machine`]: what the numbers were measured on.
#![deny(missing_docs)]

pub mod async_commit;
pub mod driver;
pub mod machine;
pub mod memory;
pub mod raw;
pub mod report;
pub mod values;

use std::path::PathBuf;

/// The directory the file scenarios run in: `ENDURO_BENCH_DIR`, or the system temp dir.
/// It must be on a real disk: fsync on tmpfs costs nothing, and the ratios mean nothing.
pub fn bench_base_dir() -> PathBuf {
    std::env::var_os("ENDURO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A fresh scratch directory under [`bench_base_dir`], removed on drop.
pub fn scratch_dir(name: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("enduro-bench-{name}-"))
        .tempdir_in(bench_base_dir())
}
