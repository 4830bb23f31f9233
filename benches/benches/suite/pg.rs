//! The PostgreSQL rows: an async atom swapping a counter, against the least code that
//! makes the same change durable — a prepared `UPDATE … SET n = n + 1 WHERE id = $1` in
//! autocommit. One task per-operation with Criterion; 16 concurrent tasks of one process
//! against 16 connections updating the same row, with the throughput driver.
//!
//! The database is `DATABASE_URL` when set, used as it is configured; otherwise a private
//! throwaway cluster (the tests' harness), restarted with `fsync = on` and
//! `full_page_writes = on` (the harness turns them off to speed tests up, which would
//! make every commit free here). The settings in force are noted under the table.

#[path = "../../../enduro-pg/tests/common/pg_cluster.rs"]
mod pg_cluster;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use enduro_benches::driver::Throughput;
use enduro_benches::report::{Measured, Row, Target, Unit};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, Statement};

use crate::Timing;
use crate::ops::Results;

/// The Criterion group of the one-task scenario.
pub const PG_1TASK: &str = "pg_small_1task";

const TASKS: usize = 16;
/// The row key of the 16-task atom.
const KEY: &str = "bench";
const ID_1TASK: &str = "pg_small_1task";
const ID_16TASKS: &str = "pg_small_16tasks";
const SCENARIO_1TASK: &str = "pg, u64 counter, 1 task: swap";
const SCENARIO_16TASKS: &str = "pg, u64 counter, 16 tasks in one process: swaps/s";
const BASELINE_1TASK: &str = "raw prepared UPDATE … SET n = n + 1 WHERE id = $1, 1 connection";
const BASELINE_16TASKS: &str = "the same raw UPDATE of the same row, 16 connections";

/// The database the pg rows run against, a runtime, and the tables to drop at the end.
pub struct Cluster {
    rt: Runtime,
    /// The URL, or why there is no database.
    url: Result<String, String>,
    /// How commits are made durable there (`fsync`, `synchronous_commit`).
    settings: String,
    /// Kept running until the end of the run (dropping it stops it).
    _private: Option<pg_cluster::PgCluster>,
    table_prefix: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Finds `DATABASE_URL` or starts a private cluster. Failures are kept as the reason
    /// the pg rows are not run.
    pub fn start() -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut cluster = Cluster {
            rt,
            url: Err(String::new()),
            settings: String::new(),
            _private: None,
            table_prefix: format!("enduro_bench_{}", std::process::id()),
        };
        cluster.url = cluster.connect_or_start();
        if let Err(e) = &cluster.url {
            eprintln!("enduro-benches: no pg rows: {e}");
        }
        cluster
    }

    fn connect_or_start(&mut self) -> Result<String, String> {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            self.settings = self.rt.block_on(settings(&url))?;
            return Ok(url);
        }
        let private = pg_cluster::PgCluster::start()
            .map_err(|e| format!("cannot start a private PostgreSQL cluster: {e}"))?;
        let url = private.url();
        let restarted = restart_durable(&private);
        self._private = Some(private);
        restarted?;
        self.settings = self.rt.block_on(settings(&url))?;
        Ok(url)
    }

    fn table(&self, name: &str) -> String {
        format!("{}_{name}", self.table_prefix)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Leave nothing behind in a database that is not ours to throw away.
        if let Ok(url) = &self.url {
            let prefix = self.table_prefix.clone();
            let _ = self.rt.block_on(async {
                let client = connect(url).await?;
                for name in [
                    "enduro_1",
                    "enduro_16",
                    "raw",
                    "memory",
                    "memory_raw",
                    "live",
                ] {
                    client
                        .batch_execute(&format!("DROP TABLE IF EXISTS \"{prefix}_{name}\""))
                        .await
                        .map_err(|e| db_error(&e))?;
                }
                Ok::<(), String>(())
            });
        }
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The server's own message, which `Display` of a tokio-postgres error leaves out.
fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

async fn show(client: &Client, setting: &str) -> Result<String, String> {
    let row = client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .map_err(|e| db_error(&e))?;
    Ok(row.get(0))
}

async fn settings(url: &str) -> Result<String, String> {
    let client = connect(url).await?;
    Ok(format!(
        "fsync = {}, synchronous_commit = {}",
        show(&client, "fsync").await?,
        show(&client, "synchronous_commit").await?
    ))
}

/// Restarts a private cluster with `fsync` and `full_page_writes` on: the harness turns
/// them off on the server's command line (which no `ALTER SYSTEM` can override), to speed
/// tests up, and that would make every commit free here. Same data dir, port and user as
/// the harness (its layout: `data/` beside `server.log`), so its watchdog still stops the
/// server and removes the files when this process exits.
fn restart_durable(cluster: &pg_cluster::PgCluster) -> Result<(), String> {
    let why = |e: &dyn std::fmt::Display| {
        format!("cannot restart the private cluster with fsync on: {e}")
    };
    let log = cluster.log_path();
    let base = log.parent().ok_or_else(|| why(&"no cluster dir"))?;
    let data = base.join("data");
    let bin = pg_cluster::server_bin_dir().ok_or_else(|| why(&"no server binaries"))?;
    cluster.stop().map_err(|e| why(&e))?;
    let options = format!(
        "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
         -c fsync=on -c full_page_writes=on -c max_connections=300 -c shared_buffers=32MB",
        cluster.port(),
        base.display()
    );
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let mut cmd = if root {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
        cmd
    } else {
        std::process::Command::new(bin.join("pg_ctl"))
    };
    let out = cmd
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-o", &options, "-w", "-t", "60", "start"])
        .current_dir(base)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| why(&e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(why(&format!(
            "pg_ctl start failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The raw table with its one row, and the prepared update, on `client`.
async fn raw_update(client: &Client, table: &str) -> Result<Statement, String> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (id int PRIMARY KEY, n bigint NOT NULL); \
             INSERT INTO \"{table}\" VALUES (1, 0) ON CONFLICT (id) DO NOTHING;"
        ))
        .await
        .map_err(|e| db_error(&e))?;
    client
        .prepare(&format!("UPDATE \"{table}\" SET n = n + 1 WHERE id = $1"))
        .await
        .map_err(|e| db_error(&e))
}

/// The one-task group: enduro's async swap and the raw update, each awaited in turn.
pub fn run_per_op(c: &mut Criterion, results: &mut Results, pg: &Cluster, passes: usize) {
    let url = match &pg.url {
        Ok(url) => url.clone(),
        Err(e) => return results.skip(PG_1TASK, e),
    };
    let rt = &pg.rt;
    let setup = rt.block_on(async {
        let atom = enduro::postgresql_atom_async(0u64, &url, &pg.table("enduro_1"))
            .await
            .map_err(|e| e.to_string())?;
        let client = connect(&url).await?;
        let update = raw_update(&client, &pg.table("raw")).await?;
        Ok::<_, String>((atom, client, update))
    });
    let (atom, client, update) = match setup {
        Ok(setup) => setup,
        Err(e) => return results.skip(PG_1TASK, e),
    };
    let mut group = c.benchmark_group(PG_1TASK);
    crate::ops::alternate(
        &mut group,
        passes,
        "raw",
        || rt.block_on(atom.swap(|n| n + 1)).expect("enduro pg swap"),
        || {
            rt.block_on(client.execute(&update, &[&1i32]))
                .expect("raw update")
        },
    );
    group.finish();
}

/// The live row: another process's commit reaching a live atom's `deref` (see
/// [`crate::live::pg_row`]).
pub fn live_row(pg: &Cluster, timing: Timing) -> Row {
    crate::live::pg_row(
        pg.url.as_deref().map_err(String::as_str),
        &pg.table("live"),
        timing,
    )
}

/// The memory row: peak memory while swapping a large value through a PostgreSQL atom,
/// measured in child processes (see [`crate::memory::pg_row`]).
pub fn memory_row(pg: &Cluster) -> Row {
    crate::memory::pg_row(
        pg.url.as_deref().map_err(String::as_str),
        &pg.table("memory"),
        &pg.table("memory_raw"),
    )
}

/// Both pg rows.
pub fn rows(results: &Results, pg: &Cluster, timing: Timing) -> Vec<Row> {
    let note = |row: Row| match &pg.url {
        Ok(_) => row.with_note(format!("PostgreSQL with {}.", pg.settings)),
        Err(_) => row,
    };
    let one = results.row(
        PG_1TASK,
        "raw",
        ID_1TASK,
        SCENARIO_1TASK,
        BASELINE_1TASK,
        Some(Target::RatioAtLeast(0.9)),
    );
    let target = Some(Target::RatioAtLeast(5.0));
    let sixteen = match many_tasks(pg, timing) {
        Ok((measured, swaps, commits)) => {
            let row = Row::measured(
                ID_16TASKS,
                SCENARIO_16TASKS,
                BASELINE_16TASKS,
                Unit::OpsPerSec,
                measured,
                target,
            );
            match commits.filter(|c| *c > 0) {
                Some(commits) => row.with_note(format!(
                    "{swaps} swaps in {commits} UPDATEs: {:.1} swaps per commit on average \
                     (group commit), from the row's version column.",
                    swaps as f64 / commits as f64
                )),
                None => row,
            }
        }
        Err(reason) => Row::not_run(
            ID_16TASKS,
            SCENARIO_16TASKS,
            BASELINE_16TASKS,
            Unit::OpsPerSec,
            target,
            reason,
        ),
    };
    vec![note(one), sixteen]
}

/// 16 tasks sharing one async atom against 16 connections updating one row, in
/// alternating rounds. Also returns enduro's swap count and how many UPDATEs they took.
fn many_tasks(pg: &Cluster, timing: Timing) -> Result<(Measured, u64, Option<u64>), String> {
    let url = pg.url.clone()?;
    let rt = &pg.rt;
    let (atom, raw) = rt.block_on(async {
        let atom = enduro::PgAtom::builder(&url, &pg.table("enduro_16"))
            .key(KEY)
            .open_async(0u64)
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        for _ in 0..TASKS {
            let client = Arc::new(connect(&url).await?);
            let update = raw_update(&client, &pg.table("raw")).await?;
            raw.push((client, update));
        }
        Ok::<_, String>((atom, raw))
    })?;
    // The atom's row counts its commits in the `version` column.
    let version = |client: &Client| {
        let query = format!(
            "SELECT version FROM \"{}\" WHERE key = $1",
            pg.table("enduro_16")
        );
        rt.block_on(client.query_one(&query, &[&KEY]))
            .ok()
            .and_then(|row| row.try_get::<_, i64>(0).ok())
    };
    let version_before = version(&raw[0].0);
    let (mut enduro_total, mut raw_total) = (Throughput::default(), Throughput::default());
    for _ in 0..timing.rounds {
        let ops = (0..TASKS).map(|_| {
            let atom = atom.clone();
            move || {
                let atom = atom.clone();
                async move {
                    atom.swap(|n| n + 1)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            }
        });
        enduro_total = enduro_total.plus(run_tasks(rt, timing.each, ops)?);
        let ops = raw.iter().map(|(client, update)| {
            let (client, update) = (Arc::clone(client), update.clone());
            move || {
                let (client, update) = (Arc::clone(&client), update.clone());
                async move {
                    client
                        .execute(&update, &[&1i32])
                        .await
                        .map(drop)
                        .map_err(|e| db_error(&e))
                }
            }
        });
        raw_total = raw_total.plus(run_tasks(rt, timing.each, ops)?);
    }
    if *atom.deref() != enduro_total.ops {
        return Err(format!(
            "lost updates: {} swaps returned Ok but the atom holds {}",
            enduro_total.ops,
            atom.deref()
        ));
    }
    eprintln!(
        "enduro-benches: {SCENARIO_16TASKS}: enduro {:.0}/s, raw 16 connections {:.0}/s",
        enduro_total.per_sec(),
        raw_total.per_sec()
    );
    let commits = version(&raw[0].0)
        .zip(version_before)
        .and_then(|(after, before)| u64::try_from(after - before).ok());
    let measured = Measured {
        enduro: enduro_total.per_sec(),
        baseline: raw_total.per_sec(),
    };
    Ok((measured, enduro_total.ops, commits))
}

/// Runs one task per operation on `rt` for about `each`; completed operations per second.
fn run_tasks<Op, Fut>(
    rt: &Runtime,
    each: Duration,
    ops: impl Iterator<Item = Op>,
) -> Result<Throughput, String>
where
    Op: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = ops
        .map(|mut op| {
            let stop = Arc::clone(&stop);
            rt.spawn(async move {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op().await?;
                    done += 1;
                }
                Ok::<u64, String>(done)
            })
        })
        .collect();
    std::thread::sleep(each);
    stop.store(true, Ordering::Relaxed);
    let done = rt.block_on(async {
        let mut total = 0;
        for task in tasks {
            total += task.await.map_err(|e| e.to_string())??;
        }
        Ok::<u64, String>(total)
    })?;
    Ok(Throughput {
        ops: done,
        elapsed: started.elapsed(),
    })
}
