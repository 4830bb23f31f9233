//! Cancellation of async swaps at every await point: a dropped call never makes another
//! call's change apply twice, never leaves the atom wedged, and never loses a change that
//! was acknowledged.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Pace, Paced};
use enduro_core::{
    AsyncAtom, AsyncStore, BoxFuture, Committed, Error, Observed, Options, Result, Snapshot, Store,
    Version,
};
use enduro_mem::MemStore;
use tokio::sync::Semaphore;

/// A memory store whose commits, once started, wait for a permit of `gate`: the test
/// decides when a commit that is "on the server" lands.
struct Gated {
    inner: Arc<MemStore>,
    gate: Arc<Semaphore>,
    /// Commits that reached the store (started), so the test can wait for one.
    started: Arc<AtomicU64>,
}

impl AsyncStore for Gated {
    fn resource(&self) -> String {
        "gated memory".into()
    }
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        Box::pin(async move { self.inner.load() })
    }
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        Box::pin(async move { self.inner.check(known) })
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            // Like an UPDATE sent to a slow server: it lands when the gate opens, whether or
            // not anyone still waits for the answer.
            self.gate.acquire().await.unwrap().forget();
            self.inner.commit(expected, &mut |out| {
                out.write_all(&bytes).map_err(|e| {
                    Error::backend(self.inner.resource(), "cannot write", Some(Box::new(e)))
                })
            })
        })
    }
    fn release(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.inner.release() })
    }
    fn cheap_check(&self) -> bool {
        false
    }
}

async fn wait_until(what: impl Fn() -> bool) {
    for _ in 0..2000 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for the test's condition");
}

fn stored(store: &MemStore) -> u64 {
    serde_json::from_slice(&store.load().unwrap().unwrap().bytes).unwrap()
}

/// The adversarial review's finding, step by step: swap C commits; L then F join the next
/// batch and L leads; L's future is dropped while its commit (carrying F's value) is in
/// flight; the commit lands anyway. F must come back with that commit's outcome, not run
/// its change a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_leader_never_makes_a_follower_apply_twice() {
    let inner = Arc::new(MemStore::new());
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let store = Gated {
        inner: Arc::clone(&inner),
        gate: Arc::clone(&gate),
        started: Arc::clone(&started),
    };
    gate.add_permits(1); // the initial value
    let atom = AsyncAtom::open(store, 0u64, Options::new()).await.unwrap();

    // C: its commit is in flight until the gate opens.
    let c = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|n| n + 1).await }
    });
    wait_until(|| started.load(Ordering::SeqCst) == 2).await;
    // L and F join the next batch (L first, so L leads it); it waits for C's batch.
    let l = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|n| n + 1).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let f = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|n| n + 1).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.add_permits(1); // C lands
    assert_eq!(*c.await.unwrap().unwrap(), 1);
    // L's batch (L and F) is now on the "server": drop L, then let its commit land.
    wait_until(|| started.load(Ordering::SeqCst) == 3).await;
    l.abort();
    assert!(l.await.unwrap_err().is_cancelled());
    gate.add_permits(1);
    let f = tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("F must not hang when its leader is dropped")
        .unwrap()
        .unwrap();
    assert_eq!(
        *f, 3,
        "F's outcome is the batch's commit, which carried its value"
    );
    assert_eq!(
        stored(&inner),
        3,
        "three increments started; no more may land"
    );
    assert_eq!(*atom.deref(), 3);
    // And the atom goes on.
    gate.add_permits(1);
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 4);
}

/// If every caller of a batch went away while its commit was in flight, the next call
/// settles that commit first and builds on what it stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_commit_is_settled_by_the_next_call() {
    let inner = Arc::new(MemStore::new());
    let gate = Arc::new(Semaphore::new(1));
    let started = Arc::new(AtomicU64::new(0));
    let store = Gated {
        inner: Arc::clone(&inner),
        gate: Arc::clone(&gate),
        started: Arc::clone(&started),
    };
    let atom = AsyncAtom::open(store, 0u64, Options::new()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("log", move |old: &u64, new: &u64| {
        log.lock().unwrap().push((*old, *new))
    });
    let lost = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|n| n + 10).await }
    });
    wait_until(|| started.load(Ordering::SeqCst) == 2).await;
    lost.abort();
    let _ = lost.await;
    gate.add_permits(2);
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 11);
    assert_eq!(stored(&inner), 11);
    assert_eq!(*seen.lock().unwrap(), [(0, 10), (10, 11)]);
}

/// Many tasks append their own ids; a third of the calls are cut off at random moments.
/// No id may appear twice (a change applied twice), every acknowledged id must be there,
/// and the watches see one chain of transitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cancellation_never_applies_a_change_twice() {
    for cheap_check in [true, false] {
        random_cancellation(cheap_check).await;
    }
}

async fn random_cancellation(cheap_check: bool) {
    let inner = Arc::new(MemStore::new());
    let store = Paced {
        inner: Arc::clone(&inner),
        pace: Pace::Jitter(AtomicU64::new(7)),
        cheap_check,
    };
    let atom = AsyncAtom::open(store, Vec::<u32>::new(), Options::new())
        .await
        .unwrap();
    let chain = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let log = Arc::clone(&chain);
    atom.add_watch("chain", move |old: &Vec<u32>, new: &Vec<u32>| {
        log.lock().unwrap().push((old.len(), new.len()))
    });
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let tasks: Vec<_> = (0..12u32)
        .map(|t| {
            let atom = atom.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for i in 0..40u32 {
                    let id = t * 1000 + i;
                    let cut = (t + i) % 3 == 0;
                    let limit = Duration::from_micros(if cut {
                        50 + u64::from(i) * 37
                    } else {
                        60_000_000
                    });
                    let swap = atom.swap(move |v| [v.as_slice(), &[id]].concat());
                    if let Ok(result) = tokio::time::timeout(limit, swap).await {
                        result.unwrap();
                        acknowledged.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let last = atom.refresh().await.unwrap();
    let stored: Vec<u32> = serde_json::from_slice(&inner.load().unwrap().unwrap().bytes).unwrap();
    assert_eq!(*last, stored);
    let unique: BTreeSet<u32> = stored.iter().copied().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "a change was applied twice: {stored:?}"
    );
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.is_subset(&unique),
        "acknowledged changes are missing: {:?}",
        acknowledged.difference(&unique).collect::<Vec<_>>()
    );
    // The watches saw one unbroken chain of transitions, ending at the stored value.
    let chain = chain.lock().unwrap();
    for pair in chain.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "transitions out of order: {pair:?}");
    }
    assert_eq!(chain.last().map(|t| t.1), Some(stored.len()));
}
