//! The worker process of the PostgreSQL multi-process tests: each run is its own process
//! with its own connection pool, working on one shared row. It is no binary of its own (a
//! library crate should not install a test helper): a test binary runs itself again,
//! through [`command`], with the worker's arguments in [`ARGS_VAR`], and its
//! `#[test] fn worker()` then calls [`entry`], which acts as the worker and exits.
//!
//! ```text
//! worker URL TABLE KEY count N        N swaps of +1 on a u64; prints "acked N"
//! worker URL TABLE KEY append ID N    appends "ID-0".."ID-(N-1)" to a list of
//!                                     strings; prints "ack ID-i" after each
//! worker URL TABLE KEY follow N        opens a live atom on a u64, prints "ready",
//!                                     waits (60 s at most) until it shows N without
//!                                     refresh, prints "saw N TRANSITIONS"
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
    let [url, table, key, task, rest @ ..] = args else {
        eprintln!("usage: worker URL TABLE KEY (count N | append ID N | follow N)");
        std::process::exit(2);
    };
    let mut out = std::io::stdout().lock();
    match (task.as_str(), rest) {
        ("count", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro_pg::PgAtom::builder(url, table)
                .key(key.as_str())
                .max_connections(2)
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
            let atom = enduro_pg::PgAtom::builder(url, table)
                .key(key.as_str())
                .max_connections(2)
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
        ("follow", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro_pg::PgAtom::builder(url, table)
                .key(key.as_str())
                .max_connections(2)
                .live(true)
                .open(0u64)
                .unwrap();
            let transitions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counted = std::sync::Arc::clone(&transitions);
            atom.add_watch("count", move |_, _| {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            let start = std::time::Instant::now();
            while *atom.deref() != n {
                if start.elapsed() > std::time::Duration::from_secs(60) {
                    writeln!(out, "stuck at {}", atom.deref()).unwrap();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let transitions = transitions.load(std::sync::atomic::Ordering::Relaxed);
            writeln!(out, "saw {n} {transitions}").unwrap();
        }
        _ => {
            eprintln!("unknown task {task:?} {rest:?}");
            std::process::exit(2);
        }
    }
}
