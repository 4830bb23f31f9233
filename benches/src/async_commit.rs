//! The row of the async commit mode (issue 5, item 4): swaps return once the value is in
//! memory and a background committer writes the latest value.
//!
//! This is the one place to fill in when that mode lands in enduro-core: build the atom in
//! that mode, measure its swaps/s with [`crate::driver`] (ending with `flush()`, so the
//! figure includes making everything durable), and the raw baseline in the same run
//! (suggested: [`crate::raw::RawCounter`] on one thread, the loop a synchronous user
//! would write), then return the row. Until then it returns `None` and the table prints
//! the row as not run.

use std::path::Path;
use std::time::Duration;

use crate::report::Row;

/// The row's identifier in the report.
pub const ID: &str = "file_small_async_commit";
/// What the row measures.
pub const SCENARIO: &str = "file, u64 counter, async commit mode, 8 threads: swap + final flush";
/// What it is compared with.
pub const BASELINE: &str = "raw write temp + fsync + rename + dir fsync, 1 thread";

/// Measures the async commit mode in a scratch directory under `dir` (see
/// [`crate::scratch_dir`]), against its baseline in `rounds` alternating rounds of about
/// `each` apiece ([`crate::driver::compare`]); `None` while the row is not written.
pub fn async_commit_row(dir: &Path, rounds: usize, each: Duration) -> Option<Row> {
    let _ = (dir, rounds, each);
    None
}
