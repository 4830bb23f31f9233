//! The row of the background commit mode (issue 5, item 4, "async commit mode"): swaps
//! return once the value is in memory and a background committer writes the latest
//! value. Measured as 8 threads swapping one atom for a round, then `flush()`, whose time
//! counts too, so the figure includes making everything durable; against the raw durable
//! loop on one thread (what a synchronous user would write), in alternating rounds.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enduro::{CommitMode, FileAtom};

use crate::driver::{Throughput, compare, run_for};
use crate::raw::RawCounter;
use crate::report::{Measured, Row, Unit};

/// The row's identifier in the report.
pub const ID: &str = "file_small_async_commit";
/// What the row measures.
pub const SCENARIO: &str = "file, u64 counter, async commit mode, 8 threads: swap + final flush";
/// What it is compared with.
pub const BASELINE: &str = "raw write temp + fsync + rename + dir fsync, 1 thread";

const THREADS: usize = 8;

/// Measures the background commit mode in a scratch directory (the `dir` argument is
/// where [`crate::scratch_dir`] puts it), against its baseline in `rounds` alternating
/// rounds of about `each` apiece ([`crate::driver::compare`]).
pub fn async_commit_row(dir: &Path, rounds: usize, each: Duration) -> Option<Row> {
    let _ = dir; // scratch_dir reads the same base directory
    Some(match measure(rounds, each) {
        Ok(([enduro, raw], commits)) => Row::measured(
            ID,
            SCENARIO,
            BASELINE,
            Unit::OpsPerSec,
            Measured {
                enduro: enduro.per_sec(),
                baseline: raw.per_sec(),
            },
            None,
        )
        .with_note(format!(
            "{} swaps, written in {commits} file commits by the background committer; each \
             round ends with flush(), included in the time. Not durable per swap: a crash \
             loses what the committer has not written yet (opt-in; the default stays durable).",
            enduro.ops
        )),
        Err(e) => Row::not_run(ID, SCENARIO, BASELINE, Unit::OpsPerSec, None, e),
    })
}

fn measure(rounds: usize, each: Duration) -> Result<([Throughput; 2], u64), String> {
    let scratch = crate::scratch_dir("async-commit").map_err(|e| e.to_string())?;
    let atom = FileAtom::builder(scratch.path().join("counter.json"))
        .commit_mode(CommitMode::Background)
        .open(0u64)
        .map_err(|e| e.to_string())?;
    let raw = Mutex::new(RawCounter::new(scratch.path(), "raw.json").map_err(|e| e.to_string())?);

    let mut background = |round: Duration| -> Result<Throughput, String> {
        let swapped = run_for(THREADS, round, |_| {
            let atom = atom.clone();
            move || atom.swap(|n| n + 1).map(|_| ()).map_err(|e| e.to_string())
        })?;
        let flushing = Instant::now();
        atom.flush().map_err(|e| e.to_string())?;
        Ok(Throughput {
            ops: swapped.ops,
            elapsed: swapped.elapsed + flushing.elapsed(),
        })
    };
    let mut durable = |round: Duration| -> Result<Throughput, String> {
        run_for(1, round, |_| {
            || {
                let mut raw = raw.lock().map_err(|e| e.to_string())?;
                raw.increment().map(|_| ()).map_err(|e| e.to_string())
            }
        })
    };
    let totals = compare(rounds, each, &mut [&mut background, &mut durable])?;
    let commits = enduro::FileStore::open(scratch.path().join("counter.json"))
        .and_then(|store| store.generation())
        .unwrap_or(0);
    Ok(([totals[0], totals[1]], commits))
}
