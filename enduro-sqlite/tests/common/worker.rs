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

#[path = "../../../test-support/worker_harness.rs"]
mod harness;

#[allow(unused_imports)] // each test binary uses its own part
pub use harness::{ARGS_VAR, HARNESS_ARGS, command, is_harness_line, lines};

/// Runs the worker when this test binary was started as one (see [`command`]), then exits
/// the process; returns at once in a normal test run.
pub fn entry() {
    harness::entry(run);
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
