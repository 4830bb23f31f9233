//! The journal commit mode's rows (`FileAtom::builder(path).journal(true)`): each swap
//! appends one record at a fresh 4 KiB boundary of a pre-zeroed journal beside the data
//! file and calls fdatasync once.
//!
//! - [`SMALL`]: a u64 counter on 1 thread against redb, SQLite (WAL, `synchronous =
//!   FULL`), the raw pre-zeroed append loop ([`RawJournal`]), the raw rename loop and
//!   rustbreak, all in one Criterion group, in alternating passes.
//! - [`eight_threads`]: 8 threads swapping one journal atom (group commit) against the
//!   raw rename loop on 1 thread and redb with 8 threads, with the throughput driver.
//! - [`LARGE`]: the 1 MiB map of [`crate::ops`]'s `file_1mib` against the raw rename loop.
//! - [`OPEN`]: opening a journal of many records (never compacted) against reading the
//!   same files' bytes.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use criterion::{Criterion, SamplingMode};
use enduro::FileAtom;
use enduro_benches::driver::{Throughput, compare, run_for};
use enduro_benches::raw::{RawCounter, RawJournal};
use enduro_benches::report::{Measured, Outcome, Row, Target, Unit};
use enduro_benches::scratch_dir;

use crate::Timing;
use crate::concurrent::no_lost_updates;
use crate::embedded::{RedbCounter, Sqlite};
use crate::ops::{Results, alternate_all};

/// The u64 counter on 1 thread, against every baseline.
pub const SMALL: &str = "file_small_journal";
/// The 1 MiB JSON map.
pub const LARGE: &str = "file_1mib_journal";
/// Opening a long journal.
pub const OPEN: &str = "file_journal_open";
/// Every Criterion group of this module.
pub const GROUPS: [&str; 3] = [SMALL, LARGE, OPEN];

/// The journal's default compaction bound, which the raw append loop's pre-zeroed region
/// matches (it wraps around where enduro would compact).
const DEFAULT_LIMIT: u64 = 4 << 20;
/// Records in the journal that [`OPEN`] opens; fewer in the quick mode.
const OPEN_RECORDS: u64 = 100_000;
const OPEN_RECORDS_QUICK: u64 = 2_000;
/// Overrides the record count of [`OPEN`].
const OPEN_RECORDS_ENV: &str = "ENDURO_BENCH_JOURNAL_RECORDS";

const SCENARIO_SMALL: &str = "file journal, u64 counter, 1 thread: swap";
const RAW_RENAME: &str = "raw write temp + fsync + rename + dir fsync";
const RAW_JOURNAL: &str = "raw pwrite of a 64-byte record at the next 4 KiB offset of a \
                           pre-zeroed file + fdatasync";
const RUSTBREAK: &str = "rustbreak 2 PathDatabase<u64, Bincode> write + save (no dir fsync)";
const REDB: &str = "redb 4: one write transaction per operation (Durability::Immediate): \
                    get + insert of one key, commit";

type Setup = Result<(), Box<dyn std::error::Error>>;

/// The sizes of the data file and the journal that [`OPEN`] opened, for its note.
static OPEN_SIZES: OnceLock<(u64, u64)> = OnceLock::new();

/// How many records the journal of [`OPEN`] holds.
pub fn open_records(timing: Timing) -> u64 {
    std::env::var(OPEN_RECORDS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(if timing.quick {
            OPEN_RECORDS_QUICK
        } else {
            OPEN_RECORDS
        })
}

/// Runs the journal's Criterion groups, each in `timing.passes` alternating passes.
pub fn run(c: &mut Criterion, results: &mut Results, timing: Timing) {
    if let Err(e) = small(c, timing.passes) {
        results.skip(SMALL, e);
    }
    if let Err(e) = large(c, timing.passes) {
        results.skip(LARGE, e);
    }
    if let Err(e) = open(c, timing) {
        results.skip(OPEN, e);
    }
}

fn small(c: &mut Criterion, passes: usize) -> Setup {
    let dir = scratch_dir(SMALL)?;
    let atom = FileAtom::builder(dir.path().join("counter.json"))
        .journal(true)
        .open(0u64)?;
    let redb = RedbCounter::create(&dir.path().join("counter.redb"))?;
    let sqlite = Sqlite::create(&dir.path().join("counter.sqlite"))?;
    let mut update = sqlite.increment()?;
    let mut raw_journal = RawJournal::new(dir.path(), "raw.journal", DEFAULT_LIMIT)?;
    let mut raw = RawCounter::new(dir.path(), "raw-counter.json")?;
    let rustbreak = crate::ops::rustbreak_db(dir.path())?;
    let mut n = 0u64;
    let mut group = c.benchmark_group(SMALL);
    alternate_all(
        &mut group,
        passes,
        &mut [
            ("enduro", &mut || {
                atom.swap(|n| n + 1).expect("enduro journal swap");
            }),
            ("redb", &mut || {
                redb.increment().expect("redb write transaction");
            }),
            ("sqlite", &mut || update.run().expect("SQLite UPDATE")),
            ("raw_journal", &mut || {
                n += 1;
                raw_journal.append(n).expect("raw journal append");
            }),
            ("raw", &mut || {
                raw.increment().expect("raw durable replace");
            }),
            ("rustbreak", &mut || {
                crate::ops::rustbreak_increment(&rustbreak)
            }),
        ],
    );
    group.finish();
    Ok(())
}

/// The rows of [`SMALL`], one per baseline.
pub fn small_rows(results: &Results) -> Vec<Row> {
    let sqlite = format!(
        "SQLite {} (bundled), WAL, synchronous = FULL: prepared UPDATE of one row, autocommit",
        rusqlite::version()
    );
    let mut vs_raw_journal = results.row(
        SMALL,
        "raw_journal",
        "file_small_journal_vs_raw_journal",
        SCENARIO_SMALL,
        RAW_JOURNAL,
        Some(Target::RatioAtLeast(0.85)),
    );
    if let Outcome::Measured(_) = vs_raw_journal.outcome {
        vs_raw_journal = vs_raw_journal.with_note(format!(
            "The raw loop writes 64 bytes of binary at each 4 KiB boundary of a {} MiB \
             pre-zeroed file and wraps around at its end; enduro's record is a 48-byte \
             header and the JSON value, and its journal compacts (writes the value with the \
             rename protocol and starts over) at its default limit of {} MiB, which the \
             figure includes.",
            DEFAULT_LIMIT >> 20,
            DEFAULT_LIMIT >> 20
        ));
    }
    let mut vs_rustbreak = results.row(
        SMALL,
        "rustbreak",
        "file_small_journal_vs_rustbreak",
        SCENARIO_SMALL,
        RUSTBREAK,
        Some(Target::RatioAtLeast(1.5)),
    );
    if let Outcome::Measured(_) = vs_rustbreak.outcome {
        vs_rustbreak = vs_rustbreak.with_note(
            "rustbreak fsyncs its temp file but not the directory, so its rename is not yet \
             durable when `save` returns; enduro's journal swap is.",
        );
    }
    vec![
        results.row(
            SMALL,
            "redb",
            "file_small_journal_vs_redb",
            SCENARIO_SMALL,
            REDB,
            Some(Target::RatioAtLeast(1.1)),
        ),
        results.row(
            SMALL,
            "sqlite",
            "file_small_journal_vs_sqlite",
            SCENARIO_SMALL,
            &sqlite,
            Some(Target::RatioAtLeast(1.3)),
        ),
        vs_raw_journal,
        results.row(
            SMALL,
            "raw",
            "file_small_journal_vs_raw_rename",
            SCENARIO_SMALL,
            RAW_RENAME,
            None,
        ),
        vs_rustbreak,
    ]
}

const THREADS: usize = 8;
const SCENARIO_8T: &str = "file journal, u64 counter, 8 threads: swaps/s";
const VS_RAW_1T: (&str, &str) = (
    "file_small_journal_8t_vs_raw_1t",
    "raw write temp + fsync + rename + dir fsync, 1 thread",
);
const VS_REDB_8T: (&str, &str) = (
    "file_small_journal_8t_vs_redb_8t",
    "redb 4, 8 threads, each its own write transactions (Durability::Immediate) on one \
     shared Database",
);

/// The two rows of 8 threads swapping one journal atom.
pub fn eight_threads(timing: Timing) -> Vec<Row> {
    let targets = [Target::RatioAtLeast(8.0), Target::RatioAtLeast(3.0)];
    match measure_8_threads(timing) {
        Ok([enduro, raw, redb]) => {
            eprintln!(
                "enduro-benches: {SCENARIO_8T}: enduro {:.0}/s, raw 1 thread {:.0}/s, \
                 redb 8 threads {:.0}/s",
                enduro.per_sec(),
                raw.per_sec(),
                redb.per_sec()
            );
            let pair = |baseline: Throughput| Measured {
                enduro: enduro.per_sec(),
                baseline: baseline.per_sec(),
            };
            vec![
                Row::measured(
                    VS_RAW_1T.0,
                    SCENARIO_8T,
                    VS_RAW_1T.1,
                    Unit::OpsPerSec,
                    pair(raw),
                    Some(targets[0]),
                ),
                Row::measured(
                    VS_REDB_8T.0,
                    SCENARIO_8T,
                    VS_REDB_8T.1,
                    Unit::OpsPerSec,
                    pair(redb),
                    Some(targets[1]),
                ),
            ]
        }
        Err(reason) => vec![
            Row::not_run(
                VS_RAW_1T.0,
                SCENARIO_8T,
                VS_RAW_1T.1,
                Unit::OpsPerSec,
                Some(targets[0]),
                &reason,
            ),
            Row::not_run(
                VS_REDB_8T.0,
                SCENARIO_8T,
                VS_REDB_8T.1,
                Unit::OpsPerSec,
                Some(targets[1]),
                reason,
            ),
        ],
    }
}

/// enduro's, the raw loop's and redb's throughput, in alternating rounds.
fn measure_8_threads(timing: Timing) -> Result<[Throughput; 3], String> {
    let dir = scratch_dir("file-journal-8t").map_err(|e| e.to_string())?;
    let atom = FileAtom::builder(dir.path().join("counter.json"))
        .journal(true)
        .open(0u64)
        .map_err(|e| e.to_string())?;
    let raw = Mutex::new(RawCounter::new(dir.path(), "raw.json").map_err(|e| e.to_string())?);
    let redb = RedbCounter::create(&dir.path().join("counter.redb")).map_err(|e| e.to_string())?;

    let mut enduro = |each| {
        run_for(THREADS, each, |_| {
            let atom = atom.clone();
            move || atom.swap(|n| n + 1).map(drop).map_err(|e| e.to_string())
        })
    };
    let mut raw_one = |each| {
        run_for(1, each, |_| {
            || {
                let mut raw = raw.lock().unwrap_or_else(|e| e.into_inner());
                raw.increment().map(drop).map_err(|e| e.to_string())
            }
        })
    };
    let mut redb_8 = |each| {
        run_for(THREADS, each, |_| {
            || redb.increment().map(drop).map_err(|e| e.to_string())
        })
    };
    let totals = compare(
        timing.rounds,
        timing.each,
        &mut [&mut enduro, &mut raw_one, &mut redb_8],
    )?;
    no_lost_updates(*atom.deref(), totals[0].ops)?;
    Ok([totals[0], totals[1], totals[2]])
}

fn large(c: &mut Criterion, passes: usize) -> Setup {
    crate::ops::one_mib(c, passes, LARGE, true)
}

/// The row of [`LARGE`].
pub fn large_rows(results: &Results) -> Vec<Row> {
    let mut row = results.row(
        LARGE,
        "raw",
        "file_1mib_journal_1t",
        "file journal, 1 MiB JSON map of strings, 1 thread: swap (clones the map)",
        "raw serde_json → buffered temp file + fsync + rename + dir fsync (in place)",
        Some(Target::RatioAtLeast(1.0)),
    );
    if let (Ok(m), Ok(clone)) = (
        results.pair(LARGE, "raw"),
        results.ops_per_sec(LARGE, "raw_clone"),
    ) {
        row = row.with_note(format!(
            "Per operation (same run): enduro's journal swap {:.2} ms; the raw rename loop \
             changing the map in place {:.2} ms, or cloning it first as enduro's pure update \
             function does {:.2} ms. At the default limit (4 MiB, or 8× the value if larger) the journal \
             compacts every eighth swap of a 1 MiB value; the figure includes it.",
            1e3 / m.enduro,
            1e3 / m.baseline,
            1e3 / clone,
        ));
    }
    vec![row]
}

/// The journal beside `data`: `.NAME.enduro-journal`.
pub fn journal_path(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    data.with_file_name(format!(".{name}.enduro-journal"))
}

fn open_atom(data: &Path) -> enduro::Result<enduro::Atom<u64>> {
    FileAtom::builder(data)
        .journal(true)
        .journal_limit(u64::MAX)
        .open(0u64)
}

fn open(c: &mut Criterion, timing: Timing) -> Setup {
    let records = open_records(timing);
    let dir = scratch_dir(OPEN)?;
    let data = dir.path().join("counter.json");
    let journal = journal_path(&data);
    {
        eprintln!("enduro-benches: {OPEN}: writing a journal of {records} records (untimed)");
        let started = Instant::now();
        let atom = open_atom(&data)?;
        for _ in 0..records {
            atom.swap(|n| n + 1)?;
        }
        eprintln!(
            "enduro-benches: {OPEN}: {records} swaps in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    if !journal.exists() {
        return Err(format!("journal mode left no journal at {}", journal.display()).into());
    }
    // The atom opened on the journal must see every record; opening should not change
    // the journal (the limit is u64::MAX, so it never compacts).
    let journal_len = std::fs::metadata(&journal)?.len();
    let opened = *open_atom(&data)?.deref();
    if opened != records {
        return Err(format!("the reopened atom holds {opened}, not {records}").into());
    }
    let reopened_len = std::fs::metadata(&journal)?.len();
    if reopened_len != journal_len {
        eprintln!(
            "enduro-benches: {OPEN}: opening the journal changed its size \
             ({journal_len} → {reopened_len} bytes)"
        );
    }
    let _ = OPEN_SIZES.set((std::fs::metadata(&data)?.len(), reopened_len));
    let mut group = c.benchmark_group(OPEN);
    group.sampling_mode(SamplingMode::Flat);
    alternate_all(
        &mut group,
        timing.passes,
        &mut [
            ("enduro", &mut || {
                black_box(open_atom(&data).expect("open the journal atom"));
            }),
            ("raw", &mut || {
                let snapshot = std::fs::read(&data).expect("read the data file");
                let log = std::fs::read(&journal).expect("read the journal");
                black_box((snapshot, log));
            }),
        ],
    );
    group.finish();
    Ok(())
}

/// The row of [`OPEN`]: the open time, in ms, against reading the bytes.
pub fn open_rows(results: &Results, timing: Timing) -> Vec<Row> {
    let records = open_records(timing);
    let scenario = format!(
        "file journal: open an atom whose journal holds {records} u64 records (never \
         compacted)"
    );
    let baseline = "std::fs::read of the data file and of the journal file";
    let id = "file_journal_open";
    let row = match results.pair(OPEN, "raw") {
        Ok(m) => Row::measured(
            id,
            &scenario,
            baseline,
            Unit::Millis,
            Measured {
                enduro: 1e3 / m.enduro,
                baseline: 1e3 / m.baseline,
            },
            None,
        ),
        Err(reason) => Row::not_run(id, &scenario, baseline, Unit::Millis, None, reason),
    };
    let quick = if timing.quick && std::env::var_os(OPEN_RECORDS_ENV).is_none() {
        format!(" (quick mode; a full run uses {OPEN_RECORDS})")
    } else {
        String::new()
    };
    let sizes = OPEN_SIZES
        .get()
        .map_or_else(String::new, |(data, journal)| {
            format!(
                " (data file {data} bytes, journal {:.1} MiB)",
                *journal as f64 / f64::from(1 << 20)
            )
        });
    vec![row.with_note(format!(
        "Time per open, in ms (lower is better; the ratio is how many times the raw read's \
         time the open takes). The journal was written once, untimed, by {records} swaps{quick}; \
         every record sits at its own 4 KiB boundary{sizes}. Both read through the page \
         cache. `{OPEN_RECORDS_ENV}` sets the count."
    ))]
}
