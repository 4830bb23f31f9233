//! A worker process for the PostgreSQL multi-process tests: each run is its own process
//! with its own connection pool, working on one shared row.
//!
//! ```text
//! enduro-pg-worker URL TABLE KEY count N        N swaps of +1 on a u64; prints "acked N"
//! enduro-pg-worker URL TABLE KEY append ID N    appends "ID-0".."ID-(N-1)" to a list of
//!                                               strings; prints "ack ID-i" after each
//! ```
#![allow(clippy::unwrap_used)] // a test helper: a failed unwrap fails the test that runs it

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, table, key, task, rest @ ..] = args.as_slice() else {
        eprintln!("usage: enduro-pg-worker URL TABLE KEY (count N | append ID N)");
        std::process::exit(2);
    };
    let mut out = std::io::stdout().lock();
    match (task.as_str(), rest) {
        ("count", [n]) => {
            let n: u64 = n.parse().unwrap();
            let atom = enduro::PgAtom::builder(url, table)
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
            let atom = enduro::PgAtom::builder(url, table)
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
        _ => {
            eprintln!("unknown task {task:?} {rest:?}");
            std::process::exit(2);
        }
    }
}
