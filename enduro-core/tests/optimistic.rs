//! Stores whose check costs a round trip (a database) are not checked before every swap:
//! the commit's version check catches other writers. Decisions that keep the value — a
//! compare-and-set that does not match, a refresh — must still be made on the stored
//! value, not on a stale cache.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

mod common;

use common::Remote;
use enduro_core::{Atom, Options};
use enduro_mem::MemStore;

fn pair() -> (Atom<u32>, Atom<u32>) {
    let cell = Arc::new(MemStore::new());
    let a = Atom::open(Remote(Arc::clone(&cell)), 5, Options::new()).unwrap();
    let b = Atom::open(Remote(cell), 0, Options::new()).unwrap();
    (a, b)
}

#[test]
fn compare_and_set_compares_with_the_stored_value_not_the_cache() {
    let (a, b) = pair();
    b.reset(6).unwrap();
    assert_eq!(*a.deref(), 5, "a's cache is stale");
    assert!(a.compare_and_set(&6, 7).unwrap(), "6 is what is stored");
    assert_eq!(*b.refresh().unwrap(), 7);
    b.reset(8).unwrap();
    assert!(!a.compare_and_set(&7, 9).unwrap(), "7 is no longer stored");
    assert_eq!(
        *a.deref(),
        8,
        "and the failed comparison brought a up to date"
    );
}

#[test]
fn swaps_without_a_check_still_start_over_on_a_conflict() {
    let (a, b) = pair();
    b.reset(100).unwrap();
    let mut runs = Vec::new();
    assert_eq!(
        *a.swap(|n| {
            runs.push(*n);
            n + 1
        })
        .unwrap(),
        101
    );
    assert_eq!(
        runs,
        [5, 100],
        "f ran on the stale value, then on the stored one"
    );
}

#[test]
fn refresh_returns_the_stored_value() {
    let (a, b) = pair();
    b.reset(42).unwrap();
    assert_eq!(*a.refresh().unwrap(), 42);
}
