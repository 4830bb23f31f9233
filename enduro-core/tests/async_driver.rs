//! The async driver: group commit, watches and cancellation, over an async adapter of the
//! memory store that yields at every store call (so tasks really interleave).
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Pace, Paced};
use enduro_core::testing::{FailPoint, FaultyStore};
use enduro_core::{AsyncAtom, Error, Options, Store};
use enduro_mem::MemStore;

/// An atom over `inner` whose store yields (or sleeps `pause`) at every call, going
/// straight to the commit as a database store does.
async fn open<S: Store>(inner: S, pause: Duration) -> AsyncAtom<u64> {
    AsyncAtom::open(paced(inner, pause), 0u64, Options::new())
        .await
        .unwrap()
}

fn paced<S: Store>(inner: S, pause: Duration) -> Paced<S> {
    let pace = if pause.is_zero() {
        Pace::Yield
    } else {
        Pace::Sleep(pause)
    };
    Paced {
        inner,
        pace,
        cheap_check: false,
    }
}

fn stored(store: &MemStore) -> u64 {
    serde_json::from_slice(&store.load().unwrap().unwrap().bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_times_fifty_are_exact_and_watched_in_order() {
    let store = Arc::new(MemStore::new());
    let atom = open(Arc::clone(&store), Duration::ZERO).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("log", move |old: &u64, new: &u64| {
        log.lock().unwrap().push((*old, *new))
    });
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let atom = atom.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    atom.swap(|n| n + 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*atom.deref(), 3200);
    assert_eq!(stored(&store), 3200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3200);
    for (i, (old, new)) in seen.iter().enumerate() {
        assert_eq!((*old, *new), (i as u64, i as u64 + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_atoms_on_one_store_stay_exact() {
    let store = Arc::new(MemStore::new());
    let a = open(Arc::clone(&store), Duration::ZERO).await;
    let b = open(Arc::clone(&store), Duration::ZERO).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let atom = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for _ in 0..25 {
                    atom.swap(|n| n + 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(stored(&store), 400);
    assert_eq!(*a.refresh().await.unwrap(), 400);
    assert_eq!(*b.refresh().await.unwrap(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_swaps_never_wedge_the_atom_or_lose_acknowledged_ones() {
    let store = Arc::new(MemStore::new());
    let atom = open(Arc::clone(&store), Duration::from_millis(2)).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (atom, acknowledged) = (atom.clone(), Arc::clone(&acknowledged));
            tokio::spawn(async move {
                for j in 0..20u64 {
                    // Every few swaps give up early: the future is dropped mid-way.
                    let limit = Duration::from_millis(if (i + j) % 3 == 0 { 1 } else { 10_000 });
                    if let Ok(result) = tokio::time::timeout(limit, atom.swap(|n| n + 1)).await {
                        result.unwrap();
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // A cancelled swap may or may not have been stored, but every acknowledged one is,
    // memory agrees with the store after a refresh, and the atom still works.
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    let now = *atom.refresh().await.unwrap();
    assert!(
        now >= acknowledged && now <= 320,
        "stored {now}, acknowledged {acknowledged}"
    );
    assert_eq!(stored(&store), now);
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), now + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_faults_fail_their_batch_only() {
    let store = Arc::new(FaultyStore::new(MemStore::new()));
    let faults = store.faults();
    let atom = AsyncAtom::open(
        paced(Arc::clone(&store), Duration::ZERO),
        0u64,
        Options::new(),
    )
    .await
    .unwrap();
    faults.fail_commit(5, FailPoint::BeforeWrite);
    faults.fail_commit(12, FailPoint::MidWrite);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (atom, acknowledged) = (atom.clone(), Arc::clone(&acknowledged));
            tokio::spawn(async move {
                for _ in 0..10 {
                    if atom.swap(|n| n + 1).await.is_ok() {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    assert!(acknowledged < 320);
    assert_eq!(*atom.deref(), acknowledged);
    let bytes = store.load().unwrap().unwrap().bytes;
    assert_eq!(serde_json::from_slice::<u64>(&bytes).unwrap(), acknowledged);
}

#[tokio::test]
async fn futures_are_send_and_the_api_matches_the_blocking_one() {
    fn is_send<F: std::future::Future + Send>(f: F) -> F {
        f
    }
    let atom = open(MemStore::new(), Duration::ZERO).await;
    assert_eq!(*is_send(atom.swap(|n| n + 1)).await.unwrap(), 1);
    let (old, new) = is_send(atom.swap_vals(|n| n * 5)).await.unwrap();
    assert_eq!((*old, *new), (1, 5));
    assert_eq!(*atom.reset(7).await.unwrap(), 7);
    assert!(!atom.compare_and_set(&1, 2).await.unwrap());
    assert!(atom.compare_and_set(&7, 8).await.unwrap());
    atom.set_validator(|n| *n < 100).unwrap();
    assert!(matches!(atom.reset(100).await, Err(Error::Invalid { .. })));
    atom.release().await.unwrap();
    assert!(atom.is_released());
    assert!(matches!(atom.swap(|n| n + 1).await, Err(Error::Released)));
    assert_eq!(*atom.deref(), 8);
}
