//! A `set` while two processes swap loses none of their swaps: two worker processes (this
//! test binary run again, its `worker` test acting as the worker) increment `/count` of a
//! JSON file atom, and while they do, `enduro set` replaces the count (or only `/count`,
//! with `--at`) once. Every increment that saw the value set by the tool must be in the
//! final count, in plain and in journal mode.
//!
//! So that the `set` surely lands while the workers swap, and before some of their swaps:
//! the test runs it once the count has reached a few swaps, and only after it returned
//! does it let the workers stop; each worker then does a few swaps more before it ends.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use enduro::FileAtom;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

/// The environment variable that makes the `worker` test act as a worker: the data file.
const WORKER_PATH: &str = "ENDURO_CLI_TEST_WORKER_PATH";
/// Set (to anything) for a worker in journal mode.
const WORKER_JOURNAL: &str = "ENDURO_CLI_TEST_WORKER_JOURNAL";
/// The file whose existence tells the workers they may stop.
const WORKER_STOP: &str = "ENDURO_CLI_TEST_WORKER_STOP";
/// How many swaps each worker does at least.
const WORKER_SWAPS: &str = "ENDURO_CLI_TEST_WORKER_SWAPS";

/// Swaps at least, per worker.
const SWAPS: u64 = 300;
/// Swaps each worker does after it saw the stop file (so after the `set` returned).
const SWAPS_AFTER_STOP: u64 = 5;
/// The count the test waits for before it runs `enduro set`.
const SET_AFTER: u64 = 40;
const SET_TO: u64 = 1_000_000;
/// A bound on the whole run, so that a hang fails the test instead of stalling it.
const LIMIT: Duration = Duration::from_secs(300);

/// The worker: swaps `count += 1` until it did [`SWAPS`] and saw the stop file, then
/// [`SWAPS_AFTER_STOP`] more; prints `WORKER swaps N after M errors E` (M: swaps whose
/// old value was >= [`SET_TO`]) and each error, then exits. A normal test run (no
/// [`WORKER_PATH`]) returns at once.
#[test]
fn worker() {
    let Ok(path) = std::env::var(WORKER_PATH) else {
        return;
    };
    let journal = std::env::var_os(WORKER_JOURNAL).is_some();
    let stop = PathBuf::from(std::env::var(WORKER_STOP).expect("the stop file"));
    let least: u64 = std::env::var(WORKER_SWAPS)
        .expect("the number of swaps")
        .parse()
        .expect("a number of swaps");
    let atom = FileAtom::builder(&path)
        .journal(journal)
        .open(json!({"count": 0}))
        .expect("the worker opens the atom");
    let (mut swaps, mut after, mut errors) = (0u64, 0u64, Vec::new());
    let mut stop_seen_at: Option<u64> = None;
    let started = Instant::now();
    loop {
        if stop_seen_at.is_none() && stop.exists() {
            stop_seen_at = Some(swaps);
        }
        if let Some(seen) = stop_seen_at
            && swaps >= least
            && swaps >= seen + SWAPS_AFTER_STOP
        {
            break;
        }
        if started.elapsed() > LIMIT {
            errors.push(format!("no stop file after {LIMIT:?}"));
            break;
        }
        match atom.swap_vals(|v| json!({"count": v["count"].as_u64().unwrap_or(0) + 1})) {
            Ok((old, _)) => {
                swaps += 1;
                if old["count"].as_u64().is_some_and(|n| n >= SET_TO) {
                    after += 1;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        if errors.len() > 20 {
            break;
        }
    }
    for e in &errors {
        println!("WORKER error {e}");
    }
    println!("WORKER swaps {swaps} after {after} errors {}", errors.len());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// A worker process, killed if the test ends before it did.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a worker reported.
#[derive(Debug)]
struct Report {
    swaps: u64,
    after: u64,
    errors: Vec<String>,
}

fn start_worker(path: &Path, stop: &Path, journal: bool) -> Worker {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
        .env(WORKER_PATH, path)
        .env(WORKER_STOP, stop)
        .env(WORKER_SWAPS, SWAPS.to_string())
        .env_remove(WORKER_JOURNAL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if journal {
        command.env(WORKER_JOURNAL, "1");
    }
    Worker(command.spawn().expect("start a worker"))
}

/// Waits (within [`LIMIT`]) for a worker to end and reads its report.
fn finish(mut worker: Worker, started: Instant) -> Report {
    let mut stdout = worker.0.stdout.take().expect("the worker's stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < LIMIT,
            "a worker did not end within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = reader.join().unwrap();
    assert!(status.success(), "a worker failed ({status}):\n{text}");
    let errors: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("WORKER error ").map(|(_, e)| e.to_owned()))
        .collect();
    let summary = text
        .lines()
        .find_map(|l| {
            l.split_once("WORKER swaps ")
                .map(|(_, rest)| rest.to_owned())
        })
        .unwrap_or_else(|| panic!("no report from a worker:\n{text}"));
    let words: Vec<&str> = summary.split_whitespace().collect();
    let number = |i: usize| -> u64 {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("a bad report: {summary}"))
    };
    // "N after M errors E"
    let report = Report {
        swaps: number(0),
        after: number(2),
        errors,
    };
    assert_eq!(report.errors.len() as u64, number(4), "{text}");
    report
}

/// Runs `enduro ARGS`, killed if it has not ended within [`LIMIT`].
fn enduro(args: &[&str]) -> Output {
    common::output_within(Command::new(BIN).args(args), None, LIMIT)
        .expect("start enduro")
        .unwrap_or_else(|| panic!("enduro {args:?} did not end within {LIMIT:?}"))
}

/// Two workers swap; `enduro set` with `set_args` (after the path) runs once meanwhile.
fn a_set_while_two_processes_swap(journal: bool, set_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.json");
    let stop = dir.path().join("stop");
    let atom = FileAtom::builder(&path)
        .journal(journal)
        .open(json!({"count": 0}))
        .unwrap();
    let started = Instant::now();
    let workers = [
        start_worker(&path, &stop, journal),
        start_worker(&path, &stop, journal),
    ];
    // Once some swaps landed, the tool sets the count, once.
    loop {
        let count = atom.refresh().unwrap()["count"].as_u64().unwrap();
        if count >= SET_AFTER {
            break;
        }
        assert!(started.elapsed() < LIMIT, "the workers do not swap");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut args = vec!["set", path.to_str().unwrap()];
    args.extend(set_args);
    let out = enduro(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "enduro {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stop, b"").unwrap();

    let reports: Vec<Report> = workers.into_iter().map(|w| finish(w, started)).collect();
    for report in &reports {
        assert!(
            report.errors.is_empty(),
            "a worker's swaps failed: {:?}",
            report.errors
        );
        assert!(report.swaps >= SWAPS, "{report:?}");
        // The last swaps came after the set returned, so they saw its value.
        assert!(report.after >= SWAPS_AFTER_STOP, "{report:?}");
    }
    let swaps: u64 = reports.iter().map(|r| r.swaps).sum();
    let after: u64 = reports.iter().map(|r| r.after).sum();
    assert!(
        after < swaps,
        "the set landed after some swaps: {reports:?}"
    );
    let value: Value = (*atom.refresh().unwrap()).clone();
    assert_eq!(
        value,
        json!({"count": SET_TO + after}),
        "journal {journal}, enduro {args:?}: every increment after the set counted ({reports:?})"
    );
    // Seen the same by a program started now, and by the tool.
    drop(atom);
    let reopened = FileAtom::builder(&path)
        .journal(journal)
        .open(json!(null))
        .unwrap();
    assert_eq!(*reopened.deref(), value);
    let shown = enduro(&["get", path.to_str().unwrap(), "--compact"]);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        format!("{{\"count\":{}}}\n", SET_TO + after)
    );
}

#[test]
fn a_set_while_two_plain_processes_swap_loses_none_of_their_swaps() {
    a_set_while_two_processes_swap(false, &["{\"count\": 1000000}"]);
}

#[test]
fn a_set_while_two_journal_processes_swap_loses_none_of_their_swaps() {
    a_set_while_two_processes_swap(true, &["{\"count\": 1000000}"]);
}

#[test]
fn a_set_at_a_pointer_while_two_plain_processes_swap_loses_none_of_their_swaps() {
    a_set_while_two_processes_swap(false, &["--at", "/count", "1000000"]);
}

#[test]
fn a_set_at_a_pointer_while_two_journal_processes_swap_loses_none_of_their_swaps() {
    a_set_while_two_processes_swap(true, &["--at", "/count", "1000000"]);
}
