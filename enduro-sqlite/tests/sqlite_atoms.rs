//! SQLite atoms in one process: release and re-creation, two stores on one row, many rows
//! in one table, threads, and async atoms shared by tokio tasks.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

mod common;

use common::{stored, stored_version};
use enduro_core::Error;
use enduro_sqlite::{SqliteAtom, sqlite_atom};

#[test]
fn release_stops_every_clone_and_a_re_created_row_is_never_overwritten_by_old_handles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("release.db");
    let atom = sqlite_atom(1u64, &db, "t").unwrap();
    let clone = atom.clone();
    let other = sqlite_atom(0u64, &db, "t").unwrap(); // another store, as another process
    for _ in 0..3 {
        atom.swap(|n| n + 1).unwrap();
    }
    let old_version = stored_version(&db, "t", "default").unwrap();
    atom.release().unwrap();
    assert_eq!(stored(&db, "t", "default"), None, "the row is deleted");
    assert!(matches!(clone.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(clone.reset(9), Err(Error::Released)));
    assert_eq!(*clone.deref(), 4, "deref keeps the last value");
    // A new atom on the row makes it again, from its init...
    let new = sqlite_atom(100u64, &db, "t").unwrap();
    assert_eq!(*new.deref(), 100);
    // ...through as many commits as the old row had, so its version number is the same...
    for _ in 0..(old_version - 1) {
        new.swap(|n| n + 1).unwrap();
    }
    assert_eq!(stored_version(&db, "t", "default"), Some(old_version));
    let expected = 100 + old_version as u64 - 1;
    // ...and still no handle of the old row can write over it: not `other`, which never
    // saw the release, nor the released ones.
    assert!(matches!(other.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(other.reset(0), Err(Error::Released)));
    assert!(matches!(clone.compare_and_set(&4, 5), Err(Error::Released)));
    assert!(other.is_released());
    // Releasing an old handle again deletes nothing of the new row.
    other.release().unwrap();
    assert_eq!(
        stored(&db, "t", "default"),
        Some(expected.to_string().into_bytes())
    );
    assert_eq!(*new.refresh().unwrap(), expected);
    assert_eq!(*new.swap(|n| n + 1).unwrap(), expected + 1);
}

#[test]
fn two_stores_in_one_process_on_one_row_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("two.db");
    let a = SqliteAtom::builder(&db, "t")
        .key("shared")
        .open(0u64)
        .unwrap();
    let b = SqliteAtom::builder(&db, "t")
        .key("shared")
        .open(0u64)
        .unwrap();
    let seen: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let atom = if i % 2 == 0 { a.clone() } else { b.clone() };
                s.spawn(move || {
                    (0..100)
                        .map(|_| *atom.swap(|n| n + 1).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: HashSet<u64> = seen.into_iter().flatten().collect();
    assert_eq!(all.len(), 800, "every swap returned a value of its own");
    assert_eq!(*a.refresh().unwrap(), 800);
    assert_eq!(*b.refresh().unwrap(), 800);
}

#[test]
fn many_rows_in_one_table_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("many.db");
    let atoms: Vec<_> = (0..50u64)
        .map(|i| {
            SqliteAtom::builder(&db, "counters")
                .key(format!("row-{i}"))
                .open(i * 1000)
                .unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for (i, atom) in atoms.iter().enumerate() {
            s.spawn(move || {
                for _ in 0..i {
                    atom.swap(|n| n + 1).unwrap();
                }
            });
        }
    });
    for (i, atom) in atoms.iter().enumerate() {
        let want = i as u64 * 1000 + i as u64;
        assert_eq!(*atom.refresh().unwrap(), want);
        let again = SqliteAtom::builder(&db, "counters")
            .key(format!("row-{i}"))
            .open(0u64)
            .unwrap();
        assert_eq!(*again.deref(), want);
    }
    // Releasing one leaves the others.
    atoms[7].release().unwrap();
    assert_eq!(stored(&db, "counters", "row-7"), None);
    assert_eq!(*atoms[8].swap(|n| n + 1).unwrap(), 8009);
}

#[cfg(feature = "async")]
#[test]
fn async_atoms_shared_by_tasks_reach_exact_counts() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("async.db");
    runtime.block_on(async {
        // Two handles (two stores), 16 tasks on them.
        let a = SqliteAtom::builder(&db, "t")
            .key("tasks")
            .open_async(0u64)
            .await
            .unwrap();
        let b = enduro_sqlite::SqliteAtom::builder(&db, "t")
            .key("tasks")
            .open_async(0u64)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let atom = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..50 {
                        seen.push(*atom.swap(|n| n + 1).await.unwrap());
                    }
                    seen
                })
            })
            .collect();
        let mut all = HashSet::new();
        for task in tasks {
            for n in task.await.unwrap() {
                assert!(all.insert(n), "two swaps returned {n}");
            }
        }
        assert_eq!(all.len(), 800);
        assert_eq!(*a.refresh().await.unwrap(), 800);
        assert_eq!(*b.refresh().await.unwrap(), 800);
        // The constructor, on the same row.
        let c = enduro_sqlite::sqlite_atom_async(0u64, &db, "t")
            .await
            .unwrap();
        assert_eq!(*c.deref(), 0, "row `default`, not `tasks`");
        c.release().await.unwrap();
    });
    assert_eq!(stored(&db, "t", "tasks").as_deref(), Some(&b"800"[..]));
}

#[cfg(feature = "async")]
#[test]
fn open_async_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    // A future polled by no tokio runtime: a tiny executor of our own.
    let future = SqliteAtom::builder(&db, "t").open_async(0u8);
    let result = poll_once(future);
    let e = result.expect("ready at once").unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
    assert!(!db.exists(), "nothing was made");
}

/// Polls `future` once, without a runtime.
#[cfg(feature = "async")]
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
