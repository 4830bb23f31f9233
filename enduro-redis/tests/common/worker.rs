//! The worker process of the Redis multi-process tests: each run is its own process with
//! its own connections, working on one shared key. A test binary runs itself again,
//! through [`command`], with the worker's arguments in [`ARGS_VAR`], and its
//! `#[test] fn worker()` then calls [`entry`], which acts as the worker and exits.
//!
//! ```text
//! worker URL KEY count N        N swaps of +1 on a u64; prints "acked N"
//! worker URL KEY append ID N    appends "ID-0".."ID-(N-1)" to a list of strings,
//!                               printing "ack ID-i" after each acknowledged swap; a
//!                               failed swap (the server down) is retried, printing
//!                               "retry" (an uncertain one "uncertain ID-i")
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
    let [url, key, task, rest @ ..] = args else {
        eprintln!("usage: worker URL KEY (count N | append ID N)");
        std::process::exit(2);
    };
    let mut out = std::io::stdout().lock();
    match (task.as_str(), rest) {
        ("count", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro_redis::RedisAtom::builder(url, key)
                .open(0u64)
                .unwrap();
            for _ in 0..n {
                atom.swap(|v| v + 1).unwrap();
            }
            writeln!(out, "acked {n}").unwrap();
        }
        ("append", [id, n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = loop {
                match enduro_redis::RedisAtom::builder(url, key).open(Vec::<String>::new()) {
                    Ok(atom) => break atom,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            };
            for i in 0..n {
                let item = format!("{id}-{i}");
                loop {
                    let result = atom.swap(|list| {
                        let mut list = list.clone();
                        if !list.contains(&item) {
                            list.push(item.clone());
                        }
                        list
                    });
                    match result {
                        Ok(_) => break,
                        Err(enduro_core::Error::Released) => {
                            // The key is gone (a server that lost its data): nothing to
                            // retry against.
                            writeln!(out, "released at {item}").unwrap();
                            out.flush().unwrap();
                            std::process::exit(1);
                        }
                        Err(e) if e.may_have_been_stored() => {
                            writeln!(out, "uncertain {item}").unwrap();
                        }
                        Err(_) => writeln!(out, "retry").unwrap(),
                    }
                    out.flush().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    // Catch up with what the server holds before trying again.
                    let _ = atom.refresh();
                }
                writeln!(out, "ack {item}").unwrap();
                out.flush().unwrap();
            }
        }
        _ => {
            eprintln!("unknown task {task:?} {rest:?}");
            std::process::exit(2);
        }
    }
}
