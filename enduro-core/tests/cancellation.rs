//! Cancellation of async swaps at every await point: a dropped call never makes another
//! call's change apply twice, never leaves the atom wedged, and never loses a change that
//! was acknowledged. The conformance kit's cancellation cases, run here on a memory store
//! that pauses at every call (so that tasks really interleave and timeouts cut swaps at
//! every await point of the driver), with swaps that check the store first and swaps that
//! go straight to the commit.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Pace, Paced};
use enduro_core::Result;
use enduro_core::conformance::{AsyncBackend, nonblocking};
use enduro_mem::MemStore;

/// Memory cells behind [`Paced`] stores that pause a little, at random, at every call.
struct PacedBackend {
    cheap_check: bool,
    seed: AtomicU64,
}

impl PacedBackend {
    fn new(cheap_check: bool) -> Self {
        PacedBackend {
            cheap_check,
            seed: AtomicU64::new(7),
        }
    }
}

impl AsyncBackend for PacedBackend {
    type Resource = Arc<MemStore>;
    type Store = Paced<Arc<MemStore>>;

    fn fresh(&self) -> Arc<MemStore> {
        Arc::new(MemStore::new())
    }

    async fn store(&self, cell: &Arc<MemStore>) -> Result<Paced<Arc<MemStore>>> {
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        Ok(Paced {
            inner: Arc::clone(cell),
            pace: Pace::Jitter(AtomicU64::new(seed)),
            cheap_check: self.cheap_check,
        })
    }
}

/// The adversarial review's finding, step by step: a leader's future is dropped while its
/// commit (carrying a follower's value) is in flight; the follower must come back with
/// that commit's outcome, not run its change a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_leader_never_makes_a_follower_apply_twice() {
    for cheap_check in [true, false] {
        let backend = PacedBackend::new(cheap_check);
        nonblocking::async_a_dropped_leader_never_makes_a_follower_apply_twice(&backend).await;
    }
}

/// If every caller of a batch went away while its commit was in flight, the next call
/// settles that commit first and builds on what it stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_commit_is_settled_by_the_next_call() {
    for cheap_check in [true, false] {
        let backend = PacedBackend::new(cheap_check);
        nonblocking::async_an_orphaned_commit_is_settled_by_the_next_call(&backend).await;
    }
}

/// Many tasks append their own ids; a third of the calls are cut off at random moments.
/// No id may appear twice, every acknowledged id must be there, and the watches see one
/// chain of transitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cancellation_never_applies_a_change_twice() {
    for cheap_check in [true, false] {
        let backend = PacedBackend::new(cheap_check);
        nonblocking::async_random_cancellation_never_applies_a_change_twice(&backend).await;
    }
}
