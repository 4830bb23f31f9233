//! A PostgreSQL restart while swaps run (on a private cluster only, never DATABASE_URL):
//! in-flight swaps fail (with `Error::Uncertain` when their answer was lost), later swaps
//! succeed on fresh connections, no acknowledged swap is lost, and no atom's cached value
//! runs ahead of the database.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

mod common;

use common::pg_cluster::private_cluster;
use enduro_pg::PgAtom;

const THREADS: usize = 4;
/// Swaps each thread gets acknowledged after the restart, before it stops.
const AFTER_RESTART: u64 = 25;
/// A bound on all attempts of one thread, whatever happens.
const MAX_ATTEMPTS: u64 = 5_000;

#[test]
fn restart_under_load_loses_no_acknowledged_swap() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let url = cluster.url();
    let atoms: Vec<_> = (0..THREADS)
        .map(|_| {
            PgAtom::builder(&url, "enduro_restart")
                .max_connections(2)
                .open(0u64)
                .unwrap()
        })
        .collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let acked_after = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = atoms
        .iter()
        .cloned()
        .map(|atom| {
            let acknowledged = Arc::clone(&acknowledged);
            let failures = Arc::clone(&failures);
            let restarted = Arc::clone(&restarted);
            let acked_after = Arc::clone(&acked_after);
            thread::spawn(move || {
                let mut after = 0;
                for _ in 0..MAX_ATTEMPTS {
                    let was_restarted = restarted.load(Ordering::SeqCst);
                    match atom.swap(|n| n + 1) {
                        Ok(n) => {
                            acknowledged.lock().unwrap().push(*n);
                            if was_restarted {
                                after += 1;
                                acked_after.fetch_add(1, Ordering::SeqCst);
                                if after == AFTER_RESTART {
                                    return after;
                                }
                            }
                        }
                        Err(e) => {
                            // A database error, never a panic or a wrong value: the
                            // commit failed, or (its answer lost in the crash) may have
                            // been stored.
                            assert!(
                                matches!(
                                    e,
                                    enduro_core::Error::Backend { .. }
                                        | enduro_core::Error::Uncertain { .. }
                                ),
                                "{e}"
                            );
                            failures.fetch_add(1, Ordering::SeqCst);
                            thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                after
            })
        })
        .collect();

    // Let some swaps through, then stop the server like a crash while they run.
    wait_until(|| acknowledged.lock().unwrap().len() >= 100);
    cluster.stop().unwrap();
    wait_until(|| failures.load(Ordering::SeqCst) >= THREADS as u64);
    restarted.store(true, Ordering::SeqCst);
    cluster.start_server().unwrap();

    for worker in workers {
        assert_eq!(worker.join().unwrap(), AFTER_RESTART, "later swaps succeed");
    }
    assert!(failures.load(Ordering::SeqCst) >= THREADS as u64);

    // Every acknowledged value is distinct and in the database.
    let acknowledged = acknowledged.lock().unwrap();
    let distinct: HashSet<u64> = acknowledged.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "two swaps acknowledged one value"
    );
    let fresh = PgAtom::builder(&url, "enduro_restart").open(0u64).unwrap();
    let stored = *fresh.deref();
    let highest = acknowledged.iter().copied().max().unwrap();
    assert!(
        stored >= highest,
        "stored {stored} < acknowledged {highest}"
    );
    // Swaps whose answer was lost in the crash may have committed, nothing else.
    assert!(stored <= acknowledged.len() as u64 + failures.load(Ordering::SeqCst));
    for atom in &atoms {
        assert!(*atom.deref() <= stored, "a cache ahead of the database");
        assert_eq!(*atom.refresh().unwrap(), stored);
    }
    fresh.release().unwrap();
}

/// Polls `done` until it holds; panics after two minutes so the test always stops.
fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..12_000 {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting after two minutes");
}
