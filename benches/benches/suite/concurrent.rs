//! The concurrent file scenario, measured with the throughput driver in alternating
//! rounds: 8 threads swapping one atom, against the raw loop on 1 thread and the raw loop
//! on 8 threads under one mutex.

use std::path::Path;
use std::sync::Mutex;

use enduro_benches::driver::{Throughput, compare, run_for};
use enduro_benches::raw::RawCounter;
use enduro_benches::report::{Measured, Row, Target, Unit};
use enduro_benches::scratch_dir;

use crate::Timing;

const THREADS: usize = 8;
const SCENARIO: &str = "file, u64 counter, 8 threads: swaps/s";
const VS_ONE: (&str, &str) = (
    "file_small_8t_vs_raw_1t",
    "raw write temp + fsync + rename + dir fsync, 1 thread",
);
const VS_MUTEX: (&str, &str) = (
    "file_small_8t_vs_raw_8t_mutex",
    "the same raw loop, 8 threads under one mutex",
);

/// The two rows of the 8-thread scenario.
pub fn file_small_8_threads(timing: Timing) -> Vec<Row> {
    match measure(timing) {
        Ok(([enduro, raw_one, raw_mutex], commits)) => {
            eprintln!(
                "enduro-benches: {SCENARIO}: enduro {:.0}/s, raw 1 thread {:.0}/s, \
                 raw 8 threads + mutex {:.0}/s",
                enduro.per_sec(),
                raw_one.per_sec(),
                raw_mutex.per_sec()
            );
            let pair = |baseline: Throughput| Measured {
                enduro: enduro.per_sec(),
                baseline: baseline.per_sec(),
            };
            let mut vs_one = Row::measured(
                VS_ONE.0,
                SCENARIO,
                VS_ONE.1,
                Unit::OpsPerSec,
                pair(raw_one),
                Some(Target::RatioAtLeast(4.0)),
            );
            if let Some(commits) = commits.filter(|c| *c > 0) {
                vs_one = vs_one.with_note(format!(
                    "{} swaps in {} file commits: {:.1} swaps per commit on average (group \
                     commit), read from the commit counter in the atom's lock file.",
                    enduro.ops,
                    commits,
                    enduro.ops as f64 / commits as f64
                ));
            }
            vec![
                vs_one,
                Row::measured(
                    VS_MUTEX.0,
                    SCENARIO,
                    VS_MUTEX.1,
                    Unit::OpsPerSec,
                    pair(raw_mutex),
                    None,
                ),
            ]
        }
        Err(reason) => vec![
            Row::not_run(
                VS_ONE.0,
                SCENARIO,
                VS_ONE.1,
                Unit::OpsPerSec,
                Some(Target::RatioAtLeast(4.0)),
                &reason,
            ),
            Row::not_run(
                VS_MUTEX.0,
                SCENARIO,
                VS_MUTEX.1,
                Unit::OpsPerSec,
                None,
                reason,
            ),
        ],
    }
}

/// The three contenders' throughput, and how many file commits enduro's swaps took.
fn measure(timing: Timing) -> Result<([Throughput; 3], Option<u64>), String> {
    let dir = scratch_dir("file-8t").map_err(|e| e.to_string())?;
    let atom =
        enduro::file_atom(0u64, dir.path().join("counter.json")).map_err(|e| e.to_string())?;
    let one = Mutex::new(RawCounter::new(dir.path(), "raw-1.json").map_err(|e| e.to_string())?);
    let shared = Mutex::new(RawCounter::new(dir.path(), "raw-8.json").map_err(|e| e.to_string())?);

    let mut enduro = |each| {
        run_for(THREADS, each, |_| {
            let atom = atom.clone();
            move || atom.swap(|n| n + 1).map(drop).map_err(|e| e.to_string())
        })
    };
    let mut raw_one = |each| run_for(1, each, |_| || increment(&one));
    let mut raw_mutex = |each| run_for(THREADS, each, |_| || increment(&shared));
    // The file backend counts its commits in the lock file.
    let data_file = dir.path().join("counter.json");
    let commits_before = commit_count(&data_file);
    let totals = compare(
        timing.rounds,
        timing.each,
        &mut [&mut enduro, &mut raw_one, &mut raw_mutex],
    )?;
    no_lost_updates(*atom.deref(), totals[0].ops)?;
    let commits = commit_count(&data_file)
        .zip(commits_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(([totals[0], totals[1], totals[2]], commits))
}

/// The commit counter of a file atom (the generation in its lock file), if it can be read.
/// Fails when the counter `held` is not the `swaps` that returned `Ok` (each adds one).
pub fn no_lost_updates(held: u64, swaps: u64) -> Result<(), String> {
    if held == swaps {
        return Ok(());
    }
    Err(format!(
        "lost updates: {swaps} swaps returned Ok but the atom holds {held}"
    ))
}

fn commit_count(data_file: &Path) -> Option<u64> {
    enduro::FileStore::open(data_file)
        .and_then(|store| store.generation())
        .ok()
}

fn increment(counter: &Mutex<RawCounter>) -> Result<(), String> {
    let mut counter = counter.lock().unwrap_or_else(|e| e.into_inner());
    counter.increment().map(drop).map_err(|e| e.to_string())
}
