//! Live atoms: how soon another process's commit reaches a live atom's `deref`.
//!
//! The writer is this binary started again (`ENDURO_BENCH_CHILD=live-file` or `live-pg`),
//! holding a plain (not live) atom on the same file or row. For each round the parent
//! sends the writer a line; the writer swaps `+1` and prints the new value. The parent
//! times, from the moment it sent the line, (a) when the writer's acknowledgement arrives
//! — the baseline: the commit as its own process sees it, plus a pipe — and (b) when its
//! live atom's `deref` shows the value, polling every 100 µs. The row reports the 99th
//! percentile of each; the target is (b) ≤ (a) + 50 ms.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use enduro_benches::report::{Measured, Row, Target, Unit};

use crate::{CHILD, Timing};

/// Where the file writer's atom lives (its path).
const PATH_VAR: &str = "ENDURO_BENCH_LIVE_PATH";
/// Where the PostgreSQL writer's atom lives: the database and the table.
#[cfg(feature = "pg")]
const DB_VAR: &str = "ENDURO_BENCH_LIVE_DB";
#[cfg(feature = "pg")]
const TABLE_VAR: &str = "ENDURO_BENCH_LIVE_TABLE";

/// The target: visible in the live atom within 50 ms of the writer's acknowledgement.
const TARGET: Target = Target::AtMost {
    times: 1.0,
    plus: 50.0,
};

const BASELINE: &str =
    "p99: the writer's own acknowledgement of the commit, reaching this process through a pipe";

/// Runs a writer child (`which`: `live-file`); returns its exit code.
pub fn child(which: &str) -> i32 {
    let result = match which {
        "live-file" => file_writer(),
        #[cfg(feature = "pg")]
        "live-pg" => pg_writer(),
        other => Err(format!("unknown live child `{other}`")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("the {which} writer failed: {e}");
            1
        }
    }
}

fn file_writer() -> Result<(), String> {
    let path = std::env::var_os(PATH_VAR).ok_or(format!("{PATH_VAR} is not set"))?;
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
    serve(&atom)
}

#[cfg(feature = "pg")]
fn pg_writer() -> Result<(), String> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let atom = enduro::postgresql_atom(0u64, &var(DB_VAR)?, &var(TABLE_VAR)?)
        .map_err(|e| e.to_string())?;
    serve(&atom)
}

/// Says "ready", then swaps `atom` `+1` once per line read, printing the new value.
fn serve(atom: &enduro::Atom<u64>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        line.map_err(|e| e.to_string())?;
        let value = *atom.swap(|n| n + 1).map_err(|e| e.to_string())?;
        writeln!(out, "{value}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A writer child and the lines it prints, each with the moment it arrived.
struct Writer {
    child: Child,
    lines: Receiver<(String, Instant)>,
}

impl Writer {
    fn spawn(which: &str, env: &[(&str, &std::ffi::OsStr)]) -> Result<Writer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut child = Command::new(exe)
            .env(CHILD, which)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the writer: {e}"))?;
        let stdout = child.stdout.take().ok_or("the writer has no stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send((line, Instant::now())).is_err() {
                    return;
                }
            }
        });
        let writer = Writer { child, lines };
        match writer.next() {
            Some((line, _)) if line == "ready" => Ok(writer),
            other => Err(format!("the writer did not start: {other:?}")),
        }
    }

    fn next(&self) -> Option<(String, Instant)> {
        self.lines.recv_timeout(Duration::from_secs(60)).ok()
    }

    /// Asks for one swap.
    fn go(&mut self) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("the writer has no stdin")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot reach the writer: {e}"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rounds` commits by `writer`, each timed to its acknowledgement and to `live`'s
/// `deref` reaching the writer's value; returns the 99th percentiles in ms, (deref, ack).
fn measure(
    mut writer: Writer,
    live: &enduro::Atom<u64>,
    rounds: usize,
) -> Result<Measured, String> {
    let (mut visible, mut acked) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        writer.go()?;
        let (line, at) = writer.next().ok_or("the writer stopped answering")?;
        let value: u64 = line
            .parse()
            .map_err(|_| format!("the writer said {line:?}"))?;
        acked.push(at - start);
        loop {
            if *live.deref() >= value {
                visible.push(start.elapsed());
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("the live atom did not show {value} within 60 s"));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(Measured {
        enduro: p99_ms(&mut visible),
        baseline: p99_ms(&mut acked),
    })
}

fn p99_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    let at = (samples.len() * 99).div_ceil(100).saturating_sub(1);
    samples.get(at).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// How many commits a row times.
fn rounds(timing: Timing) -> usize {
    if timing.rounds > 1 { 300 } else { 60 }
}

/// The live file atom's row.
pub fn file_row(timing: Timing) -> Row {
    const ID: &str = "live_file_visible_p99";
    const SCENARIO: &str = "live file atom: another process's commit visible in deref, p99";
    let measured = (|| {
        let dir = enduro_benches::scratch_dir("live").map_err(|e| e.to_string())?;
        let path = dir.path().join("live.json");
        let live = enduro::FileAtom::builder(&path)
            .live(true)
            .open(0u64)
            .map_err(|e| e.to_string())?;
        let writer = Writer::spawn("live-file", &[(PATH_VAR, path.as_os_str())])?;
        measure(writer, &live, rounds(timing))
    })();
    row(ID, SCENARIO, measured)
}

/// The live PostgreSQL atom's row, on the database `db` (or why there is none), in
/// `table`.
#[cfg(feature = "pg")]
pub fn pg_row(db: Result<&str, &str>, table: &str, timing: Timing) -> Row {
    const ID: &str = "live_pg_visible_p99";
    const SCENARIO: &str = "live pg atom: another process's commit visible in deref, p99";
    let measured = db.map_err(str::to_owned).and_then(|db| {
        let live = enduro::PgAtom::builder(db, table)
            .live(true)
            .open(0u64)
            .map_err(|e| e.to_string())?;
        let writer = Writer::spawn(
            "live-pg",
            &[(DB_VAR, db.as_ref()), (TABLE_VAR, table.as_ref())],
        )?;
        measure(writer, &live, rounds(timing))
    });
    row(ID, SCENARIO, measured)
}

/// A row of this module: measured, or not run and why.
fn row(id: &str, scenario: &str, measured: Result<Measured, String>) -> Row {
    match measured {
        Ok(m) => Row::measured(id, scenario, BASELINE, Unit::Millis, m, Some(TARGET)),
        Err(e) => Row::not_run(id, scenario, BASELINE, Unit::Millis, Some(TARGET), e),
    }
}
