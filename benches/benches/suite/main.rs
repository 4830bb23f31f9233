//! `cargo bench -p enduro-benches` (run it through `cargo xtask bench`): every scenario of
//! issue 5 against its raw baseline, in one run, then one markdown table of ratios written
//! to `target/bench/results.md` with a JSON copy in `target/bench/results.json`.
//!
//! Per-operation costs are measured with Criterion ([`ops`]); the concurrent scenarios with
//! the plain throughput driver ([`concurrent`]); peak memory in child processes
//! ([`memory`]), which are this same binary started again with `ENDURO_BENCH_CHILD` set.
//!
//! Environment: `ENDURO_BENCH_DIR` (where the file scenarios run; default the system temp
//! dir, which must be on a disk), `ENDURO_BENCH_OUT` (where the results go; default
//! `target/bench`), `CRITERION_HOME` (Criterion's own output; default `target/criterion`),
//! `ENDURO_BENCH_QUICK=1` (shorter runs, for trying the harness out; the journal-open row
//! then opens a journal of 2,000 records instead of 100,000),
//! `ENDURO_BENCH_JOURNAL_RECORDS` (that row's record count, whatever the mode),
//! `ENDURO_BENCH_ONLY` (a comma-separated list of the sections to run, of [`SECTIONS`];
//! all when unset: e.g. `ENDURO_BENCH_ONLY=apply` runs the ops rows alone and writes a table
//! of them), `DATABASE_URL` (the pg rows' database; default a private cluster),
//! `REDIS_URL` (the Redis rows' server; default a private `redis-server`).

mod apply;
mod concurrent;
mod embedded;
mod formats;
mod journal;
mod live;
mod memory;
mod ops;
#[cfg(feature = "pg")]
mod pg;
mod redis_rows;
mod sqlite_rows;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use enduro_benches::machine::Machine;
use enduro_benches::report::{Report, Row};
use enduro_benches::{async_commit, bench_base_dir};

/// The environment variable that turns this binary into a child: a memory child, or a
/// live atom's writer (`live-…`).
pub const CHILD: &str = "ENDURO_BENCH_CHILD";

/// Selects sections with `ENDURO_BENCH_ONLY`.
const ONLY: &str = "ENDURO_BENCH_ONLY";

/// The sections `ENDURO_BENCH_ONLY` can name: `ops` (the small and 1 MiB file rows, rustbreak,
/// memory atoms), `concurrent` (8 threads, plain mode), `journal`, `apply` (ops: delta
/// commits), `memory` (the 100 MiB file row), `pg` (every PostgreSQL row), `async`, `live`,
/// `formats` (the 1 MiB map in every format against JSON), `redis` (1 and 16 threads on a
/// Redis atom; `REDIS_URL` or a private `redis-server`; built with the `redis` feature),
/// `sqlite` (1 and 16 threads on a SQLite atom).
pub const SECTIONS: [&str; 11] = [
    "ops",
    "concurrent",
    "journal",
    "apply",
    "memory",
    "pg",
    "async",
    "live",
    "formats",
    "redis",
    "sqlite",
];

/// Which sections run: all, or those `ENDURO_BENCH_ONLY` names.
#[derive(Debug)]
struct Only(Option<Vec<String>>);

impl Only {
    /// Reads `ENDURO_BENCH_ONLY`; exits on a name that is not a section.
    fn from_env() -> Only {
        let Some(list) = std::env::var(ONLY).ok().filter(|v| !v.trim().is_empty()) else {
            return Only(None);
        };
        let names: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = names.iter().find(|n| !SECTIONS.contains(&n.as_str())) {
            eprintln!(
                "enduro-benches: {ONLY}: unknown section `{bad}` (sections: {})",
                SECTIONS.join(", ")
            );
            std::process::exit(2);
        }
        Only(Some(names))
    }

    /// Whether `section` runs.
    fn runs(&self, section: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == section))
    }
}

/// How long the measurements run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Criterion's warm-up per benchmark.
    pub warm_up: Duration,
    /// Criterion's measurement per benchmark.
    pub measurement: Duration,
    /// Alternating passes of each Criterion group (enduro, baseline, enduro, ...).
    pub passes: usize,
    /// Alternating rounds of the throughput driver.
    pub rounds: usize,
    /// Time per contender per round.
    pub each: Duration,
    /// `ENDURO_BENCH_QUICK` is set: smaller setups where they take long (the journal of
    /// the journal-open row).
    pub quick: bool,
}

impl Timing {
    fn from_env() -> Timing {
        if std::env::var_os("ENDURO_BENCH_QUICK").is_some_and(|v| v != "0") {
            Timing {
                warm_up: Duration::from_millis(300),
                measurement: Duration::from_millis(700),
                passes: 1,
                rounds: 1,
                each: Duration::from_millis(500),
                quick: true,
            }
        } else {
            Timing {
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(1),
                passes: 3,
                rounds: 3,
                each: Duration::from_millis(1500),
                quick: false,
            }
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var(CHILD) {
        std::process::exit(if which.starts_with("live-") {
            live::child(&which)
        } else {
            memory::child(&which)
        });
    }
    let only = Only::from_env();
    if let Some(names) = &only.0 {
        eprintln!("enduro-benches: running only {}", names.join(", "));
    }
    let out = out_dir();
    let base = bench_base_dir();
    let machine = Machine::describe(&base);
    eprintln!("enduro-benches: {}", machine.markdown());
    let timing = Timing::from_env();

    let criterion_home = criterion_home();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .without_plots()
        .configure_from_args();
    let mut per_op = ops::Results::new(&criterion_home);
    if only.runs("ops") {
        ops::run(&mut c, &mut per_op, timing.passes);
    }
    if only.runs("journal") {
        journal::run(&mut c, &mut per_op, timing);
    }
    if only.runs("apply") {
        apply::run(&mut c, &mut per_op, timing);
    }
    #[cfg(feature = "pg")]
    let pg = only.runs("pg").then(pg::Cluster::start);
    #[cfg(feature = "pg")]
    if let Some(pg) = &pg {
        pg::run_per_op(&mut c, &mut per_op, pg, timing.passes);
    }
    #[cfg(feature = "redis")]
    let redis = only.runs("redis").then(redis_rows::Server::start);
    #[cfg(feature = "redis")]
    if let Some(redis) = &redis {
        redis_rows::run_per_op(&mut c, &mut per_op, redis, timing.passes);
    }
    if only.runs("sqlite") {
        sqlite_rows::run_per_op(&mut c, &mut per_op, timing.passes);
    }
    c.final_summary();

    let mut rows: Vec<Row> = Vec::new();
    if only.runs("ops") {
        rows.extend(per_op.file_rows());
    }
    if only.runs("concurrent") {
        rows.extend(concurrent::file_small_8_threads(timing));
    }
    if only.runs("ops") {
        rows.extend(per_op.other_file_rows());
    }
    if only.runs("journal") {
        rows.extend(journal::small_rows(&per_op));
        rows.extend(journal::eight_threads(timing));
        rows.extend(journal::large_rows(&per_op));
        rows.extend(journal::open_rows(&per_op, timing));
    }
    if only.runs("apply") {
        rows.extend(apply::rows(&per_op, timing));
        rows.extend(apply::memory_rows(timing));
    }
    if only.runs("memory") {
        rows.push(memory::row());
    }
    #[cfg(feature = "pg")]
    if let Some(pg) = &pg {
        rows.push(pg::memory_row(pg));
    }
    #[cfg(not(feature = "pg"))]
    if only.runs("pg") {
        rows.push(memory::pg_not_run("built without the `pg` feature"));
    }
    if only.runs("ops") {
        rows.extend(per_op.mem_rows());
    }
    #[cfg(feature = "pg")]
    if let Some(pg) = &pg {
        rows.extend(pg::rows(&per_op, pg, timing));
    }
    #[cfg(not(feature = "pg"))]
    if only.runs("pg") {
        rows.extend(no_pg_rows("built without the `pg` feature"));
    }
    if only.runs("async") {
        rows.push(
            async_commit::async_commit_row(&base, timing.rounds, timing.each).unwrap_or_else(
                || {
                    Row::not_run(
                        async_commit::ID,
                        async_commit::SCENARIO,
                        async_commit::BASELINE,
                        enduro_benches::report::Unit::OpsPerSec,
                        None,
                        "its row is not written yet (benches/src/async_commit.rs)",
                    )
                },
            ),
        );
    }

    if only.runs("live") {
        rows.push(live::file_row(timing));
    }
    if only.runs("formats") {
        rows.extend(formats::rows(timing));
    }
    #[cfg(feature = "pg")]
    if let Some(pg) = &pg {
        rows.push(pg::live_row(pg, timing));
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = &redis {
        rows.extend(redis_rows::rows(&per_op, redis, timing));
    }
    #[cfg(not(feature = "redis"))]
    if only.runs("redis") {
        rows.extend(redis_rows::not_run_rows(
            "built without the `redis` feature",
        ));
    }
    if only.runs("sqlite") {
        rows.extend(sqlite_rows::rows(&per_op, timing));
    }

    let mut machine = machine;
    machine.finish();
    let report = Report { machine, rows };
    let markdown = report.markdown();
    if let Err(e) = write_results(&out, &markdown, &report.json()) {
        eprintln!(
            "enduro-benches: cannot write the results to {}: {e}",
            out.display()
        );
        std::process::exit(1);
    }
    println!("\n{markdown}");
    println!("(written to {})", out.join("results.md").display());
}

/// The pg rows when they cannot run, with the reason.
pub fn no_pg_rows(reason: &str) -> Vec<Row> {
    use enduro_benches::report::{Target, Unit};
    vec![
        Row::not_run(
            "pg_small_1task",
            "pg, u64 counter, 1 task: swap",
            "raw prepared UPDATE … WHERE id = $1, 1 connection",
            Unit::OpsPerSec,
            Some(Target::RatioAtLeast(0.9)),
            reason,
        ),
        Row::not_run(
            "pg_small_16tasks",
            "pg, u64 counter, 16 tasks in one process: swap",
            "raw UPDATE of the same row, 16 connections",
            Unit::OpsPerSec,
            Some(Target::RatioAtLeast(5.0)),
            reason,
        ),
    ]
}

fn write_results(out: &Path, markdown: &str, json: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("results.md"), markdown)?;
    std::fs::write(out.join("results.json"), json)
}

/// The cargo target dir this binary was built in: `<target>/release/deps/suite-HASH`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.ancestors().nth(3)?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn out_dir() -> PathBuf {
    std::env::var_os("ENDURO_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("bench"))
}

/// Where Criterion writes its estimates: `CRITERION_HOME`, or `criterion` in the target
/// dir (Criterion's own default).
fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("criterion"))
}
