//! Peak resident memory while swapping a value of about 100 MiB, against the memory the
//! value itself takes, through a file atom and (with the `pg` feature) a PostgreSQL atom.
//! Each measurement runs in a child process (this binary, started again with
//! `ENDURO_BENCH_CHILD` set), so nothing else counts.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use enduro_benches::memory::{MemoryReport, measure};
use enduro_benches::raw::RawFile;
use enduro_benches::report::{Measured, Row, Target, Unit};
use enduro_benches::{scratch_dir, values};

use crate::CHILD;

/// The directory a child works in.
pub const CHILD_DIR: &str = "ENDURO_BENCH_CHILD_DIR";
/// The database a PostgreSQL child works in (a connection string).
#[cfg(feature = "pg")]
const CHILD_DB: &str = "ENDURO_BENCH_CHILD_DB";
/// The table a PostgreSQL child works in.
#[cfg(feature = "pg")]
const CHILD_TABLE: &str = "ENDURO_BENCH_CHILD_TABLE";
/// The value's nominal size.
const VALUE_MIB: usize = 100;
/// Swaps each child does.
const SWAPS: usize = 3;

const ID: &str = "file_memory_100mib";
const SCENARIO: &str = "file, ~100 MiB Vec<String>: peak RSS above start while swapping";
const BASELINE: &str = "the value's own resident size";

/// The PostgreSQL row.
pub const PG_ID: &str = "pg_memory_100mib";
/// What the PostgreSQL row measures.
pub const PG_SCENARIO: &str = "pg, ~100 MiB Vec<String>: peak RSS above start while swapping";
/// The PostgreSQL row's target: at most three times the value.
pub const PG_TARGET: Target = Target::AtMost {
    times: 3.0,
    plus: 16.0,
};

/// The memory row.
pub fn row() -> Row {
    let target = Some(Target::AtMost {
        times: 2.0,
        plus: 16.0,
    });
    let measured = (|| -> Result<(MemoryReport, MemoryReport), String> {
        let dir = scratch_dir("memory").map_err(|e| e.to_string())?;
        let env = [(CHILD_DIR, dir.path().as_os_str())];
        Ok((spawn("enduro", &env)?, spawn("raw", &env)?))
    })();
    match measured {
        Ok((enduro, raw)) => peak_row(ID, SCENARIO, target, &enduro).with_note(format!(
            "Peak resident memory above the child's start (VmHWM − VmRSS before) over \
                 opening the atom and {} swaps that clone the value and change one string; the \
                 value itself took {:.0} MiB (VmRSS delta). The raw loop (clone, serde_json to a \
                 buffered temp file, fsync, rename, dir fsync) peaked at {:.0} MiB for a {:.0} \
                 MiB value.",
            enduro.swaps,
            mib(enduro.value_kib),
            mib(raw.peak_kib),
            mib(raw.value_kib),
        )),
        Err(reason) => Row::not_run(ID, SCENARIO, BASELINE, Unit::MiB, target, reason),
    }
}

/// KiB as MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A row of `enduro`'s peak against the value's own size (the note says the rest).
fn peak_row(id: &str, scenario: &str, target: Option<Target>, enduro: &MemoryReport) -> Row {
    Row::measured(
        id,
        scenario,
        BASELINE,
        Unit::MiB,
        Measured {
            enduro: mib(enduro.peak_kib),
            baseline: mib(enduro.value_kib),
        },
        target,
    )
}

/// The PostgreSQL row: the same swaps through a PostgreSQL atom on `db` (a connection
/// string, or why there is no database), in table `table`; the raw loop uses `raw_table`.
#[cfg(feature = "pg")]
pub fn pg_row(db: Result<&str, &str>, table: &str, raw_table: &str) -> Row {
    let measured = db.map_err(str::to_owned).and_then(|db| {
        let env = |table| [(CHILD_DB, OsStr::new(db)), (CHILD_TABLE, OsStr::new(table))];
        Ok((
            spawn("pg-enduro", &env(table))?,
            spawn("pg-raw", &env(raw_table))?,
        ))
    });
    let target = Some(PG_TARGET);
    match measured {
        Ok((enduro, raw)) => peak_row(PG_ID, PG_SCENARIO, target, &enduro).with_note(format!(
            "Peak resident memory above the child's start over opening a blocking \
                 PostgreSQL atom (which inserts the row) and {} swaps that clone the value and \
                 change one string; the value itself took {:.0} MiB. The raw loop (clone, \
                 serde_json::to_string, a prepared UPDATE … SET value = $1 on one \
                 tokio-postgres connection) peaked at {:.0} MiB for a {:.0} MiB value. \
                 tokio-postgres copies a parameter into its Bind message and that again into \
                 the connection's write buffer, so the raw swap holds the old and the new value \
                 and two copies of the text at its peak; enduro streams a value this large \
                 with COPY into a temporary table of the commit's transaction, and holds the \
                 two values and one copy of the text.",
            enduro.swaps,
            mib(enduro.value_kib),
            mib(raw.peak_kib),
            mib(raw.value_kib),
        )),
        Err(reason) => pg_not_run(&reason),
    }
}

/// The PostgreSQL row when it cannot run, and why.
pub fn pg_not_run(reason: &str) -> Row {
    Row::not_run(
        PG_ID,
        PG_SCENARIO,
        BASELINE,
        Unit::MiB,
        Some(PG_TARGET),
        reason,
    )
}

/// Runs the child `which` with `env` and reads its report (the last line it prints).
pub fn spawn(which: &str, env: &[(&str, &OsStr)]) -> Result<MemoryReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let output = Command::new(exe)
        .env(CHILD, which)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot start the memory child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the {which} memory child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .map_err(|e| format!("bad report from the memory child ({e}): {last}"))
}

/// In the child: measures `which` and prints the report as one JSON line. The exit code.
pub fn child(which: &str) -> i32 {
    let report = match which {
        "enduro" | "raw" => file_child(which),
        ops if ops.starts_with("apply-") => crate::apply::memory_child(ops),
        #[cfg(feature = "pg")]
        "pg-enduro" | "pg-raw" => pg_child(which),
        other => Err(format!("unknown memory child `{other}`")),
    };
    match report {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("the {which} memory child failed: {e}");
            1
        }
    }
}

/// The value the children swap.
fn build() -> Vec<String> {
    values::big_strings(VALUE_MIB)
}

/// The file children.
fn file_child(which: &str) -> Result<MemoryReport, String> {
    let dir = std::env::var_os(CHILD_DIR).ok_or(format!("{CHILD_DIR} is not set"))?;
    let dir = Path::new(&dir);
    let report = if which == "enduro" {
        measure(build, |value| {
            let atom =
                enduro::file_atom(value, dir.join("big.json")).map_err(std::io::Error::other)?;
            swaps(&atom)
        })
    } else {
        measure(build, |mut value| {
            let raw = RawFile::new(dir, "raw-big.json")?;
            raw.replace_json(&value)?;
            for i in 0..SWAPS {
                let mut next = value.clone();
                next[i] = format!("changed {i}");
                raw.replace_json(&next)?;
                value = next;
            }
            Ok(SWAPS as u32)
        })
    };
    report.map_err(|e| e.to_string())
}

/// The swaps every enduro child does: clone the value, change one string.
fn swaps(atom: &enduro::Atom<Vec<String>>) -> std::io::Result<u32> {
    for i in 0..SWAPS {
        atom.swap(|v| {
            let mut v = v.clone();
            v[i] = format!("changed {i}");
            v
        })
        .map_err(std::io::Error::other)?;
    }
    Ok(SWAPS as u32)
}

/// The PostgreSQL children: a blocking atom as users open it, or the raw loop.
#[cfg(feature = "pg")]
fn pg_child(which: &str) -> Result<MemoryReport, String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let (db, table) = (var(CHILD_DB)?, var(CHILD_TABLE)?);
    let report = if which == "pg-enduro" {
        measure(build, |value| {
            let atom =
                enduro::postgresql_atom(value, &db, &table).map_err(std::io::Error::other)?;
            swaps(&atom)
        })
    } else {
        measure(build, |value| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(raw_pg(value, &db, &table))
                .map_err(std::io::Error::other)
        })
    };
    report.map_err(|e| e.to_string())
}

/// The raw PostgreSQL loop: the value as JSON text in one row, replaced by a prepared
/// `UPDATE` on one connection.
#[cfg(feature = "pg")]
async fn raw_pg(mut value: Vec<String>, db: &str, table: &str) -> Result<u32, String> {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let json = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (id int PRIMARY KEY, value text NOT NULL)"
        ))
        .await
        .map_err(|e| e.to_string())?;
    client
        .execute(&format!("INSERT INTO \"{table}\" VALUES (1, $1)"), &[&json])
        .await
        .map_err(|e| e.to_string())?;
    drop(json);
    let update = client
        .prepare(&format!("UPDATE \"{table}\" SET value = $1 WHERE id = 1"))
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..SWAPS {
        let mut next = value.clone();
        next[i] = format!("changed {i}");
        let json = serde_json::to_string(&next).map_err(|e| e.to_string())?;
        client
            .execute(&update, &[&json])
            .await
            .map_err(|e| e.to_string())?;
        value = next;
    }
    Ok(SWAPS as u32)
}
