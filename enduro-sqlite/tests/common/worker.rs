//! The worker process of the SQLite multi-process tests: each run is its own process with
//! its own connection, working on one shared row. It is no binary of its own (a library
//! crate should not install a test helper): a test binary runs itself again, through
//! [`command`], with the worker's arguments in [`ARGS_VAR`], and its `#[test] fn worker()`
//! then calls [`entry`], which acts as the worker and exits.
//!
//! ```text
//! worker DB TABLE KEY count N        N swaps of +1 on a u64; prints "acked N"
//! worker DB TABLE KEY append ID N    appends "ID-0".."ID-(N-1)" to a list of strings;
//!                                    prints "ack ID-i" after each (flushed)
//! worker DB TABLE KEY faults N       N swaps of +1 on a u64, going on after failures;
//!                                    prints "ack V" for each done (V the new value),
//!                                    "uncertain V MESSAGE" for an Error::Uncertain (V
//!                                    what the atom shows after it), "error MESSAGE" for
//!                                    any other error, "open-error MESSAGE" if it cannot
//!                                    open
//! ```

use std::io::Write;
use std::process::Command;

/// The environment variable that makes the `worker` test of a test binary act as the
/// worker; it holds the worker's arguments, one per line.
pub const ARGS_VAR: &str = "ENDURO_SQLITE_WORKER_ARGS";

/// The arguments that make the test harness run only the `worker` test, without
/// capturing its output (it prints one blank line and `running 1 test` first, which
/// [`lines`] leaves out).
const HARNESS_ARGS: [&str; 5] = [
    "worker",
    "--exact",
    "--nocapture",
    "--quiet",
    "--test-threads=1",
];

/// A command that runs the worker with `args` (this test binary, run again).
pub fn command(args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let mut command = Command::new(exe);
    command.args(HARNESS_ARGS).env(ARGS_VAR, args.join("\n"));
    command
}

/// The worker's own lines in its captured stdout (without the test harness's).
pub fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !is_harness_line(l))
        .map(str::to_owned)
        .collect()
}

/// Whether `line` is one the test harness printed before the worker started.
pub fn is_harness_line(line: &str) -> bool {
    line.is_empty() || line == "running 1 test"
}

/// Runs the worker when this test binary was started as one (see [`command`]), then exits
/// the process; returns at once in a normal test run.
pub fn entry() {
    let Ok(args) = std::env::var(ARGS_VAR) else {
        return;
    };
    let args: Vec<String> = args.lines().map(str::to_owned).collect();
    run(&args);
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

fn run(args: &[String]) {
    let [db, table, key, task, rest @ ..] = args else {
        eprintln!("usage: worker DB TABLE KEY (count N | append ID N)");
        std::process::exit(2);
    };
    let mut out = std::io::stdout().lock();
    match (task.as_str(), rest) {
        ("count", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro_sqlite::SqliteAtom::builder(db, table)
                .key(key.as_str())
                .open(0u64)
                .unwrap();
            let mut acked = 0;
            for _ in 0..n {
                atom.swap(|v| v + 1).unwrap();
                acked += 1;
            }
            writeln!(out, "acked {acked}").unwrap();
        }
        ("append", [id, n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro_sqlite::SqliteAtom::builder(db, table)
                .key(key.as_str())
                .open(Vec::<String>::new())
                .unwrap();
            for i in 0..n {
                let item = format!("{id}-{i}");
                atom.swap(|list| {
                    let mut list = list.clone();
                    list.push(item.clone());
                    list
                })
                .unwrap();
                writeln!(out, "ack {item}").unwrap();
                out.flush().unwrap();
            }
        }
        ("faults", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = match enduro_sqlite::SqliteAtom::builder(db, table)
                .key(key.as_str())
                .open(0u64)
            {
                Ok(atom) => atom,
                Err(e) => {
                    writeln!(out, "open-error {e}").unwrap();
                    return;
                }
            };
            for _ in 0..n {
                match atom.swap(|v| v + 1) {
                    Ok(v) => writeln!(out, "ack {v}").unwrap(),
                    Err(e @ enduro_core::Error::Uncertain { .. }) => {
                        writeln!(out, "uncertain {} {e}", atom.deref()).unwrap()
                    }
                    Err(e) => writeln!(out, "error {e}").unwrap(),
                }
            }
        }
        _ => {
            eprintln!("unknown task {task:?} {rest:?}");
            std::process::exit(2);
        }
    }
}
