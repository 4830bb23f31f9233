//! `try_swap`: an update that refuses writes nothing, fires no watch, and gives its own
//! error back untouched; a refusal only ever judges the latest stored value.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use common::Remote;
use enduro_core::{Atom, Error, Options, Store};
use enduro_mem::MemStore;

/// The caller's own error: neither `Display` nor `Clone`, so it cannot have been
/// rebuilt from text on the way.
#[derive(Debug)]
enum Refusal {
    TooLow { seen: u64, token: Box<u64> },
    Atom(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Atom(e)
    }
}

#[test]
fn a_refusal_writes_nothing_fires_no_watch_and_comes_back_as_it_was() {
    let store = Arc::new(MemStore::new());
    let atom = Atom::open(Arc::clone(&store), 10u64, Options::new()).unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&fired);
    atom.add_watch("count", move |_: &u64, _: &u64| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let before = store.load().unwrap().unwrap();
    let refused = atom.try_swap(|&n| {
        Err(Refusal::TooLow {
            seen: n,
            token: Box::new(7),
        })
    });
    match refused {
        Err(Refusal::TooLow { seen: 10, token }) => assert_eq!(*token, 7),
        other => panic!("expected the caller's own error, got {other:?}"),
    }
    assert_eq!(
        store.load().unwrap().unwrap(),
        before,
        "nothing was written"
    );
    assert_eq!(fired.load(Ordering::Relaxed), 0, "no watch fired");
    assert_eq!(*atom.deref(), 10);
    assert_eq!(*atom.try_swap(|n| Ok::<_, Refusal>(n + 1)).unwrap(), 11);
    assert_eq!(fired.load(Ordering::Relaxed), 1);
}

#[test]
fn the_atoms_own_errors_reach_the_caller_through_from() {
    let atom = Atom::open(MemStore::new(), 1u64, Options::new().validator(|n| *n < 5)).unwrap();
    match atom.try_swap(|n| Ok::<_, Refusal>(n + 10)) {
        Err(Refusal::Atom(Error::Invalid { .. })) => {}
        other => panic!("expected the validator's refusal, got {other:?}"),
    }
    assert_eq!(*atom.deref(), 1);
}

#[test]
fn a_refusal_of_a_stale_value_runs_again_on_the_stored_one() {
    let cell = Arc::new(MemStore::new());
    let mine = Atom::open(Remote(Arc::clone(&cell)), 0u64, Options::new()).unwrap();
    let other = Atom::open(Remote(Arc::clone(&cell)), 0u64, Options::new()).unwrap();
    other.reset(100).unwrap();
    // `mine` still shows 0 and does not check first: its refusal of 0 must be verified
    // against the store, which holds 100, so `f` runs again and succeeds.
    let seen = Mutex::new(Vec::new());
    let spent = mine.try_swap(|&balance| {
        seen.lock().unwrap().push(balance);
        balance.checked_sub(50).ok_or(Refusal::TooLow {
            seen: balance,
            token: Box::new(0),
        })
    });
    assert_eq!(*spent.unwrap(), 50);
    assert_eq!(*seen.lock().unwrap(), [0, 100]);
}

#[test]
fn refusals_in_a_crowd_leave_exact_counts() {
    let atom = Atom::open(MemStore::new(), 0u64, Options::new()).unwrap();
    let accepted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            let (atom, accepted) = (&atom, &accepted);
            scope.spawn(move || {
                for i in 0..200u64 {
                    let refuse = (thread + i) % 3 == 0;
                    let result = atom.try_swap(|n| {
                        if refuse {
                            Err(Refusal::TooLow {
                                seen: *n,
                                token: Box::new(i),
                            })
                        } else {
                            Ok(n + 1)
                        }
                    });
                    match result {
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Refusal::TooLow { token, .. }) => assert_eq!(*token, i),
                        Err(Refusal::Atom(e)) => panic!("{e}"),
                    }
                }
            });
        }
    });
    let accepted = accepted.load(Ordering::Relaxed) as u64;
    assert!(accepted > 0 && accepted < 1600);
    assert_eq!(*atom.deref(), accepted);
}

#[cfg(feature = "async")]
#[tokio::test]
async fn an_async_refusal_comes_back_as_it_was() {
    use enduro_core::testing::Inline;

    let atom = enduro_core::AsyncAtom::open(Inline(MemStore::new()), 3u64, Options::new())
        .await
        .unwrap();
    let before = atom.version();
    match atom
        .try_swap(|&n| {
            Err(Refusal::TooLow {
                seen: n,
                token: Box::new(1),
            })
        })
        .await
    {
        Err(Refusal::TooLow { seen: 3, .. }) => {}
        other => panic!("expected the caller's own error, got {other:?}"),
    }
    assert_eq!(atom.version(), before);
    let (old, new) = atom
        .try_swap_vals(|n| Ok::<_, Refusal>(n * 2))
        .await
        .unwrap();
    assert_eq!((*old, *new), (3, 6));
}
