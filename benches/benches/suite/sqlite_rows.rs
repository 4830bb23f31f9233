//! The SQLite rows: a blocking atom swapping a counter, against the least code that makes
//! the same change durable — a prepared `UPDATE t SET n = n + 1 WHERE id = ?` in
//! autocommit, on a database with the atom's pragmas (`journal_mode = WAL`,
//! `synchronous = FULL`). One thread per-operation with Criterion; 16 threads sharing one
//! atom against 16 threads with a connection each updating the same row, with the
//! throughput driver. Every database lives in a scratch dir under
//! [`bench_base_dir`](enduro_benches::bench_base_dir), beside the file rows' files.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use criterion::Criterion;
use enduro_benches::driver::{Throughput, compare, run_for};
use enduro_benches::report::{Measured, Row, Unit};
use enduro_benches::scratch_dir;
use rusqlite::Connection;

use crate::Timing;
use crate::ops::Results;

/// The Criterion group of the one-thread scenario.
pub const SQLITE_1T: &str = "sqlite_small_1t";

const THREADS: usize = 16;
/// The atoms' table, in their own database files.
const TABLE: &str = "atoms";
/// The raw connections' busy timeout: the atom's default.
const BUSY_TIMEOUT: Duration = enduro::DEFAULT_BUSY_TIMEOUT;
const ID_1T: &str = "sqlite_small_1t";
const ID_16T: &str = "sqlite_small_16t";
const SCENARIO_1T: &str = "sqlite, u64 counter, 1 thread: swap";
const SCENARIO_16T: &str = "sqlite, u64 counter, 16 threads sharing one atom: swaps/s";
const BASELINE_1T: &str = "raw prepared UPDATE t SET n = n + 1 WHERE id = ?, autocommit, \
                           1 connection";
const BASELINE_16T: &str = "the same raw UPDATE of the same row, 16 threads with a connection \
                            each (busy_timeout 30 s)";

/// A raw connection with the atom's pragmas, and the counter's table made.
fn raw_connection(db: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    assert!(mode.eq_ignore_ascii_case("wal"), "journal mode {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); \
         INSERT OR IGNORE INTO t VALUES (1, 0);",
    )?;
    Ok(conn)
}

/// The raw increment: the prepared (cached) UPDATE, in autocommit.
fn raw_increment(conn: &Connection) -> Result<(), String> {
    let changed = conn
        .prepare_cached("UPDATE t SET n = n + 1 WHERE id = ?")
        .and_then(|mut update| update.execute([1]))
        .map_err(|e| format!("raw UPDATE: {e}"))?;
    match changed {
        1 => Ok(()),
        n => Err(format!("raw UPDATE changed {n} rows")),
    }
}

fn raw_count(db: &Path) -> Result<u64, String> {
    raw_connection(db)
        .and_then(|conn| conn.query_row("SELECT n FROM t WHERE id = 1", [], |r| r.get::<_, i64>(0)))
        .map_err(|e| e.to_string())
        .and_then(|n| u64::try_from(n).map_err(|e| e.to_string()))
}

/// The one-thread group: enduro's swap and the raw UPDATE.
pub fn run_per_op(c: &mut Criterion, results: &mut Results, passes: usize) {
    let setup = || {
        let dir = scratch_dir(SQLITE_1T).map_err(|e| e.to_string())?;
        let atom = enduro::sqlite_atom(0u64, dir.path().join("enduro.db"), TABLE)
            .map_err(|e| e.to_string())?;
        let raw = raw_connection(&dir.path().join("raw.db")).map_err(|e| e.to_string())?;
        Ok::<_, String>((dir, atom, raw))
    };
    let (_dir, atom, raw) = match setup() {
        Ok(setup) => setup,
        Err(e) => return results.skip(SQLITE_1T, e),
    };
    let mut group = c.benchmark_group(SQLITE_1T);
    crate::ops::alternate(
        &mut group,
        passes,
        "raw",
        || atom.swap(|n| n + 1).expect("enduro sqlite swap"),
        || raw_increment(&raw).expect("raw UPDATE"),
    );
    group.finish();
}

/// Both SQLite rows.
pub fn rows(results: &Results, timing: Timing) -> Vec<Row> {
    let one = results
        .row(SQLITE_1T, "raw", ID_1T, SCENARIO_1T, BASELINE_1T, None)
        .with_note(
            "SQLite (bundled, rusqlite) with journal_mode = WAL and synchronous = FULL for \
             enduro and the raw loops alike; enduro's atom and the raw counter in separate \
             database files of one scratch dir on the bench disk.",
        );
    let sixteen = match many_threads(timing) {
        Ok((measured, swaps, commits)) => {
            let row = Row::measured(
                ID_16T,
                SCENARIO_16T,
                BASELINE_16T,
                Unit::OpsPerSec,
                measured,
                None,
            );
            match commits.filter(|c| *c > 0) {
                Some(commits) => row.with_note(format!(
                    "{swaps} swaps in {commits} UPDATEs: {:.1} swaps per commit on average \
                     (group commit), from the row's version column. The raw connections \
                     wait for the write lock in SQLite's busy handler, which sleeps (1 ms, \
                     then longer) between tries.",
                    swaps as f64 / commits as f64
                )),
                None => row,
            }
        }
        Err(reason) => Row::not_run(
            ID_16T,
            SCENARIO_16T,
            BASELINE_16T,
            Unit::OpsPerSec,
            None,
            reason,
        ),
    };
    vec![one, sixteen]
}

/// 16 threads sharing one atom against 16 connections updating one row, in alternating
/// rounds. Also returns enduro's swap count and how many UPDATEs they took.
fn many_threads(timing: Timing) -> Result<(Measured, u64, Option<u64>), String> {
    let dir = scratch_dir("sqlite_small_16t").map_err(|e| e.to_string())?;
    let (atom_db, raw_db) = (dir.path().join("enduro.db"), dir.path().join("raw.db"));
    let atom = enduro::sqlite_atom(0u64, &atom_db, TABLE).map_err(|e| e.to_string())?;
    drop(raw_connection(&raw_db).map_err(|e| e.to_string())?);
    // The atom's row counts its commits in the `version` column.
    let version = || {
        Connection::open(&atom_db)
            .and_then(|conn| {
                conn.query_row(
                    &format!("SELECT version FROM \"{TABLE}\" WHERE key = 'default'"),
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .ok()
            .and_then(|v| u64::try_from(v).ok())
    };
    let version_before = version();

    let mut enduro = |each| {
        run_for(THREADS, each, |_| {
            let atom = atom.clone();
            move || atom.swap(|n| n + 1).map(drop).map_err(|e| e.to_string())
        })
    };
    let mut raw = |each| -> Result<Throughput, String> {
        // Connected before the start signal, one per thread.
        let conns: Vec<Mutex<Option<Connection>>> = (0..THREADS)
            .map(|_| raw_connection(&raw_db).map(|c| Mutex::new(Some(c))))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        run_for(THREADS, each, |t| {
            let conn = conns[t]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("one connection per thread");
            move || raw_increment(&conn)
        })
    };
    let totals = compare(timing.rounds, timing.each, &mut [&mut enduro, &mut raw])?;
    let (enduro_total, raw_total) = (totals[0], totals[1]);
    crate::concurrent::no_lost_updates(*atom.deref(), enduro_total.ops)?;
    let raw_held = raw_count(&raw_db)?;
    if raw_held != raw_total.ops {
        return Err(format!(
            "raw lost updates: {} UPDATEs returned Ok but the row holds {raw_held}",
            raw_total.ops
        ));
    }
    eprintln!(
        "enduro-benches: {SCENARIO_16T}: enduro {:.0}/s, raw 16 connections {:.0}/s",
        enduro_total.per_sec(),
        raw_total.per_sec()
    );
    let commits = version()
        .zip(version_before)
        .map(|(after, before)| after.saturating_sub(before));
    let measured = Measured {
        enduro: enduro_total.per_sec(),
        baseline: raw_total.per_sec(),
    };
    Ok((measured, enduro_total.ops, commits))
}
