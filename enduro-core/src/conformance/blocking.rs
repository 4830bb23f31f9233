//! The blocking cases: each is generic over a [`Backend`] and checks one promise of the
//! design (DESIGN.md) on [`Atom`], in memory and in storage. Run them all with
//! [`conformance!`](crate::conformance!), or one by hand:
//!
//! ```
//! # use std::sync::Arc;
//! # #[derive(Debug)]
//! # struct MemBackend;
//! # impl enduro::conformance::Backend for MemBackend {
//! #     type Resource = Arc<enduro::MemStore>;
//! #     fn fresh(&self) -> Self::Resource { Arc::new(enduro::MemStore::new()) }
//! #     fn store(&self, r: &Self::Resource) -> enduro::Result<Box<dyn enduro::store::Store>> {
//! #         Ok(Box::new(Arc::clone(r)))
//! #     }
//! # }
//! enduro::conformance::blocking::watches_see_each_transition_in_order(&MemBackend);
//! ```

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::testing::{FailPoint, FaultyStore};
use crate::{Atom, Error, Options, Store};

use super::{
    Backend, Tally, TallyOp, assert_rising_chain, blank, encoded, eventually, recorder,
    refused_or_reads_back, refused_or_reads_back_at_open, uses_json,
};

/// The stored bytes decoded as `T` with the codec the backend opens atoms with.
fn stored_as<B: Backend, T: crate::Value>(b: &B, r: &B::Resource) -> T {
    let bytes = b.stored(r).expect("the resource should exist");
    b.options(Options::new())
        .decode_stored(&bytes)
        .expect("the stored bytes should decode as the type")
}

/// Opening an empty resource validates and stores `init`.
pub fn initial_value_is_written<B: Backend>(b: &B) {
    let r = b.fresh();
    assert_eq!(b.stored(&r), None);
    let atom = b.open(&r, vec![1u32, 2]);
    assert_eq!(*atom.deref(), [1, 2]);
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r), [1, 2]);
}

/// Opening a resource that holds a value reads it; `init` is ignored.
pub fn stored_value_wins_over_init<B: Backend>(b: &B) {
    let r = b.fresh();
    b.open(&r, 5u64);
    let again = b.open(&r, 99u64);
    assert_eq!(*again.deref(), 5);
    assert_eq!(stored_as::<_, u64>(b, &r), 5);
}

/// A resource holding nothing but whitespace counts as empty: `init` is stored.
pub fn blank_resource_gets_init<B: Backend>(b: &B) {
    // Whitespace is no value for text formats (JSON, TOML, RON), and may be one for others.
    let blanks = [&b""[..], b"  \n\t "];
    for blank in blanks.into_iter().filter(|bytes| blank(b, bytes)) {
        let r = b.fresh();
        b.plant(&r, blank);
        let atom = b.open(&r, 7u64);
        assert_eq!(*atom.deref(), 7);
        assert_eq!(stored_as::<_, u64>(b, &r), 7);
    }
}

/// A committed value is what the next atom on the resource opens with.
pub fn value_persists_across_reopen<B: Backend>(b: &B) {
    let r = b.fresh();
    {
        let atom = b.open(&r, BTreeMap::<String, u32>::new());
        atom.swap(|m| {
            let mut m = m.clone();
            m.insert("a".into(), 1);
            m
        })
        .unwrap();
    }
    let atom = b.open(&r, BTreeMap::<String, u32>::new());
    assert_eq!(atom.deref().get("a"), Some(&1));
}

/// `swap`, `swap_vals`, `reset` and `reset_vals` return the new (and old) values and store the new one.
pub fn swap_and_friends_return_what_they_should<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1i64);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    let (old, new) = atom.swap_vals(|n| n * 10).unwrap();
    assert_eq!((*old, *new), (2, 20));
    assert_eq!(*atom.reset(-3).unwrap(), -3);
    let (old, new) = atom.reset_vals(4).unwrap();
    assert_eq!((*old, *new), (-3, 4));
    assert_eq!(*atom.deref(), 4);
    assert_eq!(stored_as::<_, i64>(b, &r), 4);
}

/// `compare_and_set` compares with the latest committed value, also one another writer stored.
pub fn compare_and_set_compares_values<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, "a".to_string());
    assert!(!atom.compare_and_set(&"b".to_string(), "c".into()).unwrap());
    assert_eq!(stored_as::<_, String>(b, &r), "a");
    assert!(atom.compare_and_set(&"a".to_string(), "c".into()).unwrap());
    assert_eq!(*atom.deref(), "c");
    assert_eq!(stored_as::<_, String>(b, &r), "c");
    // Another writer changed it: the comparison is against the latest committed value.
    let other = b.open(&r, String::new());
    other.reset("d".into()).unwrap();
    assert!(!atom.compare_and_set(&"c".to_string(), "e".into()).unwrap());
    assert!(atom.compare_and_set(&"d".to_string(), "e".into()).unwrap());
    assert_eq!(stored_as::<_, String>(b, &r), "e");
}

/// Clones share the value, the watches and the validator.
pub fn clones_share_everything<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u32);
    let clone = atom.clone();
    let seen = recorder(&atom);
    clone.swap(|n| n + 1).unwrap();
    assert_eq!(*atom.deref(), 1);
    clone.set_validator(|n| *n < 10).unwrap();
    assert!(matches!(atom.reset(10), Err(Error::Invalid { .. })));
    assert_eq!(*seen.lock().unwrap(), [(0, 1)]);
}

/// A validator refuses an invalid `init` (nothing is stored) and an invalid stored value (`InvalidStored`, naming the resource, bytes untouched).
pub fn validator_rejects_invalid_init<B: Backend>(b: &B) {
    let r = b.fresh();
    let err = b
        .open_with(&r, -1i32, Options::new().validator(|n| *n >= 0))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(b.stored(&r), None, "nothing may be written");
    // A stored value that fails the validator is refused too, and left alone; the error
    // names the resource (the caller changed nothing, so `Invalid` would mislead).
    b.open(&r, -5i32);
    let before = b.stored(&r);
    let err = b
        .open_with(&r, 1i32, Options::new().validator(|n| *n >= 0))
        .unwrap_err();
    let Error::InvalidStored { resource, .. } = &err else {
        panic!("expected InvalidStored, got {err:?}");
    };
    assert!(err.to_string().contains(resource.as_str()), "{err}");
    assert_eq!(
        b.stored(&r),
        before,
        "the stored value is left byte for byte"
    );
}

/// Validators guard what an atom stores; values other writers committed are the store's
/// truth, adopted as they are (refusing them would leave the atom unable to commit
/// anything). A change on top of such a value is validated as usual.
pub fn values_of_other_writers_are_adopted_whatever_the_validator<B: Backend>(b: &B) {
    let r = b.fresh();
    let strict = b
        .open_with(&r, 1i32, Options::new().validator(|n| *n < 10))
        .unwrap();
    let seen = recorder(&strict);
    b.open(&r, 0i32).reset(50).unwrap();
    assert_eq!(*strict.refresh().unwrap(), 50);
    assert_eq!(*seen.lock().unwrap(), [(1, 50)]);
    assert!(matches!(strict.swap(|n| n + 1), Err(Error::Invalid { .. })));
    assert_eq!(stored_as::<_, i32>(b, &r), 50);
    assert_eq!(*strict.reset(3).unwrap(), 3, "a valid change still works");
}

/// A validator that returns `Err(reason)` refuses the value, and the reason reaches the
/// message of `Error::Invalid` (and of `Error::InvalidStored`, at open).
pub fn a_validators_reason_reaches_the_error<B: Backend>(b: &B) {
    let r = b.fresh();
    let limit = |n: &i32| {
        if *n < 5 {
            Ok(())
        } else {
            Err(format!("{n} is over the limit of 4"))
        }
    };
    let atom = b
        .open_with(&r, 1i32, Options::new().validator(limit))
        .unwrap();
    let err = atom.reset(9).unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { reason: Some(reason) } if reason == "9 is over the limit of 4"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("9 is over the limit of 4"),
        "{err}"
    );
    assert_eq!(stored_as::<_, i32>(b, &r), 1);
    let err = atom.set_validator(|n: &i32| if *n > 3 { Ok(()) } else { Err("too small") });
    assert!(
        matches!(&err, Err(Error::Invalid { reason: Some(reason) }) if reason == "too small"),
        "{err:?}"
    );
    drop(atom);
    let err = b
        .open_with(
            &r,
            0i32,
            Options::new().validator(|n: &i32| if *n > 3 { Ok(()) } else { Err("too small") }),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidStored { .. }), "{err:?}");
    assert!(err.to_string().contains("too small"), "{err}");
}

/// The caller's own error, for the `try_swap` cases: neither `Display` nor `Clone`, so it
/// cannot have been rebuilt from text on the way.
#[derive(Debug)]
enum Refusal {
    Mine { seen: u64, token: Box<u64> },
    Atom(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Atom(e)
    }
}

/// `try_swap`: `Err(e)` from the update writes nothing, fires no watch and gives `e` back
/// as it was; a refusal of a value another writer replaced meanwhile is judged again on
/// the stored value, whether swaps check the store first or go straight to the commit;
/// `Ok` commits like `swap`.
pub fn try_swap_refusals_change_nothing_and_come_back_as_they_were<B: Backend>(b: &B) {
    for route in [Route::Check, Route::Commit] {
        let r = b.fresh();
        let atom = open_routed(b, &r, 10, route);
        let seen = recorder(&atom);
        let refused = atom.try_swap(|&n| {
            Err(Refusal::Mine {
                seen: n,
                token: Box::new(7),
            })
        });
        match refused {
            Err(Refusal::Mine { seen: 10, token }) => assert_eq!(*token, 7),
            Err(Refusal::Atom(e)) => panic!("{route:?}: the atom failed: {e}"),
            other => panic!("{route:?}: expected the caller's own error, got {other:?}"),
        }
        assert_eq!(stored_as::<_, u64>(b, &r), 10, "{route:?}");
        assert!(seen.lock().unwrap().is_empty(), "{route:?}: no watch fired");

        // Another writer moves the value; this atom still shows 10. Its refusal of 10
        // must not stand: `f` runs again on 100 and succeeds.
        b.open(&r, 0u64).reset(100).unwrap();
        let runs = Mutex::new(Vec::new());
        let spent = atom.try_swap(|&n| {
            runs.lock().unwrap().push(n);
            n.checked_sub(50).ok_or(Refusal::Mine {
                seen: n,
                token: Box::new(0),
            })
        });
        assert!(matches!(spent.as_deref(), Ok(50)), "{route:?}: {spent:?}");
        assert_eq!(runs.lock().unwrap().last(), Some(&100), "{route:?}");
        assert_eq!(stored_as::<_, u64>(b, &r), 50, "{route:?}");
        let (old, new) = atom.try_swap_vals(|n| Ok::<_, Refusal>(n + 1)).unwrap();
        assert_eq!((*old, *new), (50, 51), "{route:?}");
    }
}

/// A validator refuses invalid changes: nothing changes, no watch fires, the atom stays usable.
pub fn validator_rejects_invalid_swap<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b
        .open_with(&r, 1i32, Options::new().validator(|n| *n < 5))
        .unwrap();
    let seen = recorder(&atom);
    assert!(matches!(atom.swap(|n| n + 10), Err(Error::Invalid { .. })));
    assert!(matches!(atom.reset(9), Err(Error::Invalid { .. })));
    assert!(matches!(
        atom.compare_and_set(&1, 9),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(*atom.deref(), 1);
    assert_eq!(stored_as::<_, i32>(b, &r), 1);
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2, "the atom stays usable");
}

/// `set_validator` refuses (and does not install) a validator the current value fails.
pub fn set_validator_checks_current_value<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 3u8);
    assert!(matches!(
        atom.set_validator(|n| *n > 5),
        Err(Error::Invalid { .. })
    ));
    atom.reset(100).unwrap(); // the refused validator was not installed
    atom.set_validator(|n| *n > 5).unwrap();
    assert!(matches!(atom.reset(1), Err(Error::Invalid { .. })));
    atom.clear_validator();
    atom.reset(1).unwrap();
    assert_eq!(stored_as::<_, u8>(b, &r), 1);
}

/// Watches see each transition once, in commit order; removing and re-adding by key work.
pub fn watches_see_each_transition_in_order<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u32);
    let seen = recorder(&atom);
    let other = Arc::new(Mutex::new(0));
    let count = Arc::clone(&other);
    atom.add_watch("count", move |_: &u32, _: &u32| *count.lock().unwrap() += 1);
    atom.swap(|n| n + 1).unwrap();
    atom.reset(5).unwrap();
    atom.compare_and_set(&5, 6).unwrap();
    atom.compare_and_set(&5, 7).unwrap(); // no transition
    assert!(atom.remove_watch("count"));
    assert!(!atom.remove_watch("count"));
    atom.swap(|n| n * 2).unwrap();
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 5), (5, 6), (6, 12)]);
    assert_eq!(*other.lock().unwrap(), 3);
    // Re-adding a key replaces the watch instead of adding a second one.
    let again = recorder(&atom);
    atom.swap(|n| n + 1).unwrap();
    assert_eq!(again.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap().len(), 4);
}

/// A panicking watch undoes no commit and breaks neither the atom nor the other watches.
pub fn panicking_watch_breaks_nothing<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u32);
    atom.add_watch("a-bad-one", |_: &u32, _: &u32| {
        panic!("watch panics on purpose")
    });
    let seen = recorder(&atom);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 1);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    assert_eq!(stored_as::<_, u32>(b, &r), 2);
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 2)]);
}

/// A panic in `f` reaches the caller and changes nothing; the atom is not poisoned.
pub fn panic_in_swap_function_changes_nothing<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1u32);
    let seen = recorder(&atom);
    let before = b.stored(&r);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        atom.swap(|_| panic!("f panics on purpose")).ok();
    }));
    assert!(panicked.is_err(), "the panic reaches the caller");
    assert_eq!(*atom.deref(), 1);
    assert_eq!(b.stored(&r), before);
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2, "no poisoning");
    assert_eq!(*atom.clone().swap(|n| n + 1).unwrap(), 3);
}

/// A value the codec cannot encode fails with `Error::Encode`, saying why; nothing changes.
pub fn unencodable_values_are_refused<B: Backend>(b: &B) {
    let r = b.fresh();
    if !uses_json(b) {
        let bytes_key = BTreeMap::from([(vec![1u8, 2], 3u8)]);
        return refused_or_reads_back(b, &r, &bytes_key, &BTreeMap::new());
    }
    let atom = b.open(&r, BTreeMap::<Vec<u8>, u8>::new());
    let before = b.stored(&r);
    let err = atom
        .swap(|m| {
            let mut m = m.clone();
            m.insert(vec![1, 2], 3);
            m
        })
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(err.to_string().contains("key must be a string"), "{err}");
    assert!(atom.deref().is_empty());
    assert_eq!(b.stored(&r), before);
}

/// NaN and infinities, which JSON cannot hold, are refused (saying where), also as `init`.
pub fn non_finite_float_is_refused<B: Backend>(b: &B) {
    let r = b.fresh();
    if !uses_json(b) {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            refused_or_reads_back(b, &b.fresh(), &Floats(vec![0.5, bad]), &Floats(vec![0.5]));
        }
        return refused_or_reads_back_at_open(b, Floats(vec![f64::NAN]));
    }
    let atom = b.open(&r, vec![0.5f64]);
    let seen = recorder(&atom);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = atom.swap(|v| [v.as_slice(), &[bad]].concat()).unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(err.to_string().contains("[1]"), "names where: {err}");
    }
    assert_eq!(*atom.deref(), [0.5]);
    assert_eq!(stored_as::<_, Vec<f64>>(b, &r), [0.5]);
    assert!(seen.lock().unwrap().is_empty());
    // The initial value is checked too.
    let err = b
        .open_with(&b.fresh(), f32::NAN, Options::new())
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
}

/// Floats compared bit for bit, so that a NaN equals itself.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Floats(Vec<f64>);

impl PartialEq for Floats {
    fn eq(&self, other: &Floats) -> bool {
        self.0
            .iter()
            .map(|f| f.to_bits())
            .eq(other.0.iter().map(|f| f.to_bits()))
    }
}

/// Stored data that does not decode is an `Error::Decode` naming the resource, and is left byte for byte.
pub fn corrupt_data_is_an_error_and_left_untouched<B: Backend>(b: &B) {
    let r = b.fresh();
    let corrupt = b"{\"half\": [1, 2";
    b.plant(&r, corrupt);
    let err = b.open_with(&r, 0u32, Options::new()).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    let store = b.store(&r).unwrap();
    assert!(
        err.to_string().contains(&store.resource()),
        "names the resource: {err}"
    );
    assert_eq!(b.stored(&r).as_deref(), Some(&corrupt[..]));
}

/// Stored data of another type is an `Error::Decode` naming the type, and is left byte for byte.
pub fn wrong_type_is_an_error_and_left_untouched<B: Backend>(b: &B) {
    let r = b.fresh();
    b.plant(&r, b"{\"name\": \"not a number\"}");
    let err = b.open_with(&r, 0u32, Options::new()).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(err.to_string().contains("u32"), "names the type: {err}");
    assert_eq!(
        b.stored(&r).as_deref(),
        Some(&b"{\"name\": \"not a number\"}"[..])
    );
}

/// `release` deletes the resource; every clone and every other handle then gets `Error::Released`, and `deref` still works.
pub fn release_deletes_and_stops_every_clone<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1u32);
    let clone = atom.clone();
    let other = b.open(&r, 0u32);
    atom.release().unwrap();
    assert_eq!(b.stored(&r), None, "the resource is deleted");
    assert!(atom.is_released() && clone.is_released());
    assert!(matches!(clone.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(clone.reset(3), Err(Error::Released)));
    assert!(matches!(atom.compare_and_set(&1, 2), Err(Error::Released)));
    assert_eq!(*clone.deref(), 1, "deref still works");
    atom.release().unwrap();
    // Another handle on the same resource finds it gone.
    assert!(matches!(other.swap(|n| n + 1), Err(Error::Released)));
    assert!(other.is_released());
    assert_eq!(b.stored(&r), None, "and does not bring it back");
}

/// How the calls of a stale handle reach the store in the stale-handle cases: through the
/// check a cheap-check store runs before each swap, or straight to the commit (as a store
/// whose check is a round trip does), whose version check must then refuse them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    Check,
    Commit,
}

/// A store that says its check is not cheap, so that swaps go straight to the commit.
struct SkipCheck(Box<dyn Store>);

impl Store for SkipCheck {
    fn resource(&self) -> String {
        self.0.resource()
    }
    fn load(&self) -> crate::Result<Option<crate::Snapshot>> {
        self.0.load()
    }
    fn check(&self, known: crate::Version) -> crate::Result<crate::Observed> {
        self.0.check(known)
    }
    fn commit(
        &self,
        expected: crate::Version,
        encode: crate::Encoder<'_>,
    ) -> crate::Result<crate::Committed> {
        self.0.commit(expected, encode)
    }
    fn release(&self) -> crate::Result<()> {
        self.0.release()
    }
    fn cheap_check(&self) -> bool {
        false
    }
}

/// Opens an atom whose swaps take `route` to the store.
fn open_routed<B: Backend>(b: &B, r: &B::Resource, init: u64, route: Route) -> Atom<u64> {
    match route {
        Route::Check => b.open(r, init),
        Route::Commit => Atom::open(
            SkipCheck(b.store(r).unwrap()),
            init,
            b.options(Options::new()),
        )
        .unwrap(),
    }
}

/// Versions never repeat for a resource, also across release and re-creation, so a handle
/// that knew the old resource can never write over the new one. Handles A1..A5 and B open
/// one resource; B releases it; C creates it again with a new `init`. Then each stale
/// handle's first call — `swap`, `reset`, `compare_and_set` against the old value and
/// against C's value, `refresh` — fails with `Error::Released`, and so does its next one:
/// none reports success, none adopts C's value as the continuation of its own, no watch
/// fires, and C's value survives. Checked with the stale handles' swaps going through the
/// store's check and straight to its commit.
pub fn a_stale_handle_never_writes_over_a_re_created_resource<B: Backend>(b: &B) {
    for route in [Route::Check, Route::Commit] {
        let r = b.fresh();
        let stale: Vec<Atom<u64>> = (0..5).map(|_| open_routed(b, &r, 1, route)).collect();
        let watched: Vec<_> = stale.iter().map(recorder).collect();
        let releaser = b.open(&r, 0u64);
        let clone = releaser.clone();
        releaser.release().unwrap();
        let c = b.open(&r, 5u64);
        assert_eq!(*c.deref(), 5, "C created the resource again, from its init");
        assert_eq!(stored_as::<_, u64>(b, &r), 5);

        let calls: [(&str, Result<String, Error>); 5] = [
            ("swap", stale[0].swap(|n| n + 1).map(|v| v.to_string())),
            ("reset", stale[1].reset(7).map(|v| v.to_string())),
            (
                "compare_and_set with the old value",
                stale[2].compare_and_set(&1, 7).map(|ok| ok.to_string()),
            ),
            (
                "compare_and_set with C's value",
                stale[3].compare_and_set(&5, 7).map(|ok| ok.to_string()),
            ),
            ("refresh", stale[4].refresh().map(|v| v.to_string())),
        ];
        for (call, result) in calls {
            assert!(
                matches!(result, Err(Error::Released)),
                "{route:?}: a stale handle's `{call}` must fail with Released, got {result:?}"
            );
            assert_eq!(
                stored_as::<_, u64>(b, &r),
                5,
                "{route:?}: after `{call}`: C's value survives"
            );
        }
        for (atom, seen) in stale.iter().zip(&watched) {
            let again = atom.swap(|n| n + 100);
            assert!(
                matches!(again, Err(Error::Released)),
                "{route:?}: a stale handle's next swap must fail with Released, got {again:?}"
            );
            assert!(
                atom.is_released(),
                "{route:?}: the stale handle counts as released"
            );
            assert_eq!(
                *atom.deref(),
                1,
                "{route:?}: deref keeps the last value it knew"
            );
            assert!(seen.lock().unwrap().is_empty(), "{route:?}: no watch fired");
        }
        assert_eq!(stored_as::<_, u64>(b, &r), 5, "{route:?}");
        // The handle that released stays released too.
        assert!(matches!(clone.swap(|n| n + 1), Err(Error::Released)));
        assert_eq!(stored_as::<_, u64>(b, &r), 5, "{route:?}");
        // C owns the resource and goes on.
        assert_eq!(*c.swap(|n| n + 1).unwrap(), 6, "{route:?}");
        assert_eq!(stored_as::<_, u64>(b, &r), 6, "{route:?}");
    }
}

/// The same promise when the new resource went through as many commits as the old one
/// (a store counting versions from scratch after a release would hand out the stale
/// handle's version again): for every count of commits by C up to four more than A's, A's
/// swap — through the check and straight to the commit — fails with `Error::Released` and
/// C's value survives.
pub fn versions_never_repeat_across_release_and_re_creation<B: Backend>(b: &B) {
    for route in [Route::Check, Route::Commit] {
        for commits_by_c in 0..6u64 {
            let r = b.fresh();
            let a = open_routed(b, &r, 0, route);
            a.swap(|n| n + 1).unwrap();
            a.swap(|n| n + 1).unwrap();
            b.open(&r, 0u64).release().unwrap();
            let c = b.open(&r, 100u64);
            for _ in 0..commits_by_c {
                c.swap(|n| n + 1).unwrap();
            }
            let expected = 100 + commits_by_c;
            let result = a.swap(|n| n + 1);
            assert!(
                matches!(result, Err(Error::Released)),
                "{route:?}, after {commits_by_c} commits by C: A's swap must fail with \
                 Released, got {result:?}"
            );
            assert_eq!(
                stored_as::<_, u64>(b, &r),
                expected,
                "{route:?}, after {commits_by_c} commits by C: C's value survives"
            );
            assert_eq!(*a.deref(), 2);
            assert_eq!(*c.refresh().unwrap(), expected);
        }
    }
}

/// A hundred threads swapping `+1` once each end at exactly 100.
pub fn hundred_concurrent_swaps<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u64);
    thread::scope(|s| {
        for _ in 0..100 {
            let atom = atom.clone();
            s.spawn(move || atom.swap(|n| n + 1).unwrap());
        }
    });
    assert_eq!(*atom.deref(), 100);
    assert_eq!(stored_as::<_, u64>(b, &r), 100);
}

/// 16 threads × 500 swaps of `+1` end at exactly 8000, and the watch sees every transition in order.
pub fn sixteen_threads_times_five_hundred<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u64);
    let seen = recorder(&atom);
    thread::scope(|s| {
        for _ in 0..16 {
            let atom = atom.clone();
            s.spawn(move || {
                for _ in 0..500 {
                    atom.swap(|n| n + 1).unwrap();
                }
            });
        }
    });
    assert_eq!(*atom.deref(), 8000);
    assert_eq!(stored_as::<_, u64>(b, &r), 8000);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8000);
    for (i, (old, new)) in seen.iter().enumerate() {
        assert_eq!(
            (*old, *new),
            (i as u64, i as u64 + 1),
            "transition {i} out of order"
        );
    }
}

/// Two atoms on one resource (as two processes would have) lose no swap of each other's.
pub fn two_atoms_on_one_resource_stay_exact<B: Backend>(b: &B) {
    let r = b.fresh();
    let first = b.open(&r, 0u64);
    let second = b.open(&r, 0u64);
    let seen = recorder(&first);
    thread::scope(|s| {
        for atom in [&first, &second] {
            for _ in 0..2 {
                let atom = atom.clone();
                s.spawn(move || {
                    for _ in 0..100 {
                        atom.swap(|n| n + 1).unwrap();
                    }
                });
            }
        }
    });
    assert_eq!(stored_as::<_, u64>(b, &r), 400);
    assert_eq!(*first.refresh().unwrap(), 400);
    assert_eq!(*second.refresh().unwrap(), 400);
    // The watch saw a chain: each old is the previous new, ending at 400.
    let seen = seen.lock().unwrap();
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0);
    }
    assert_eq!(seen.last().map(|t| t.1), Some(400));
}

/// `refresh` reads what another writer committed; a swap starts from the latest value.
pub fn refresh_picks_up_other_writers<B: Backend>(b: &B) {
    let r = b.fresh();
    let reader = b.open(&r, 0u32);
    let writer = b.open(&r, 0u32);
    writer.reset(42).unwrap();
    assert_eq!(*reader.deref(), 0, "deref never touches storage");
    assert_eq!(*reader.refresh().unwrap(), 42);
    assert_eq!(*reader.deref(), 42);
    writer.reset(43).unwrap();
    assert_eq!(
        *reader.swap(|n| n + 1).unwrap(),
        44,
        "a swap starts from the latest"
    );
}

/// A commit failing before or in the middle of writing changes nothing in memory or storage; the atom stays usable.
pub fn every_commit_fault_leaves_the_atom_unchanged<B: Backend>(b: &B) {
    for point in [FailPoint::BeforeWrite, FailPoint::MidWrite] {
        let r = b.fresh();
        let store = FaultyStore::new(b.store(&r).unwrap());
        let faults = store.faults();
        // More than one byte in every format, so that a write can be cut in the middle.
        let atom = Atom::open(store, 1000u32, b.options(Options::new())).unwrap();
        let seen = recorder(&atom);
        let before = b.stored(&r);
        faults.fail_commit(1, point);
        let err = atom.swap(|n| n + 1).unwrap_err();
        assert!(err.to_string().contains("injected"), "{point:?}: {err}");
        assert_eq!(*atom.deref(), 1000, "{point:?}");
        assert_eq!(b.stored(&r), before, "{point:?}: storage unchanged");
        assert!(seen.lock().unwrap().is_empty(), "{point:?}: no watch fired");
        assert_eq!(
            *atom.swap(|n| n + 1).unwrap(),
            1001,
            "{point:?}: still usable"
        );
        assert_eq!(stored_as::<_, u32>(b, &r), 1001);
        assert_eq!(*seen.lock().unwrap(), [(1000, 1001)]);
    }
}

/// A commit whose answer is lost says the change may have been stored, and the atom settles from what the store holds.
pub fn lost_acknowledgement_is_picked_up_not_overwritten<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    let atom = Atom::open(store, vec![0u32], b.options(Options::new())).unwrap();
    let seen = recorder(&atom);
    faults.fail_commit(1, FailPoint::AfterWrite);
    // The outcome is unknown: the error says the change may have been stored...
    let err = atom.swap(|v| [v.as_slice(), &[1]].concat()).unwrap_err();
    assert!(err.may_have_been_stored(), "{err}");
    assert!(
        err.to_string().contains("may or may not have been stored"),
        "{err}"
    );
    // ...and the atom settled from what the store holds: it did take it, so deref and the
    // watches show it, and the next swap builds on it instead of losing or repeating it.
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r), [0, 1]);
    assert_eq!(*atom.deref(), [0, 1]);
    assert_eq!(*seen.lock().unwrap(), [(vec![0], vec![0, 1])]);
    atom.swap(|v| [v.as_slice(), &[2]].concat()).unwrap();
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r), [0, 1, 2]);
    assert_eq!(
        *seen.lock().unwrap(),
        [(vec![0], vec![0, 1]), (vec![0, 1], vec![0, 1, 2])]
    );
}

/// A failed check changes nothing; the next one picks up another writer's value.
pub fn failed_check_changes_nothing<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    // A store whose check is a round trip (a database) skips it before swaps.
    let checks_before_swaps = crate::Store::cheap_check(&store);
    let atom = Atom::open(store, 1u32, b.options(Options::new())).unwrap();
    if checks_before_swaps {
        faults.fail_checks(1);
        assert!(atom.swap(|n| n + 1).is_err());
        assert_eq!(*atom.deref(), 1);
        assert_eq!(stored_as::<_, u32>(b, &r), 1);
    }
    // Another writer commits; a refresh that cannot check keeps the old value...
    b.open(&r, 0u32).reset(5).unwrap();
    faults.fail_checks(1);
    assert!(atom.refresh().is_err());
    assert_eq!(*atom.deref(), 1);
    // ...and the next one picks it up.
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 6);
    assert_eq!(stored_as::<_, u32>(b, &r), 6);
}

/// Runs `threads` threads, each calling `work(thread, i)` for `i` in `0..per_thread`,
/// and returns how many calls returned `true`.
fn hammer(threads: usize, per_thread: usize, work: impl Fn(usize, usize) -> bool + Sync) -> u64 {
    let ok = std::sync::atomic::AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..threads {
            let (ok, work) = (&ok, &work);
            s.spawn(move || {
                for i in 0..per_thread {
                    if work(t, i) {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    ok.into_inner()
}

/// Checks a watch log is one unbroken chain of `+1` steps from `from` to `to`.
fn assert_chain(seen: &[(u64, u64)], from: u64, to: u64) {
    let mut at = from;
    for (old, new) in seen {
        assert_eq!((*old, *new), (at, at + 1), "the watch chain breaks at {at}");
        at = *new;
    }
    assert_eq!(at, to, "the watch chain ends at {at}, not {to}");
}

/// Among concurrent swaps, one whose value cannot be encoded fails alone.
pub fn a_bad_value_in_a_crowd_fails_only_its_own_swap<B: Backend>(b: &B) {
    let r = b.fresh();
    // The bad value: nested deeper than any codec writes (JSON's NaN is stored by others).
    let leaf = Deep {
        depth: 0,
        shape: Lazy::Seqs,
    };
    let deep = Deep {
        depth: 100_000,
        shape: Lazy::Mixed,
    };
    let atom = b.open(&r, (0u64, leaf));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("log", move |old: &(u64, Deep), new: &(u64, Deep)| {
        log.lock().unwrap().push((old.0, new.0));
    });
    let ok = hammer(8, 60, |t, i| {
        let poison = t == 0 && i % 4 == 0;
        match atom.swap(|(n, _)| (n + 1, if poison { deep } else { leaf })) {
            Ok(_) => true,
            Err(Error::Encode { .. }) if poison => false,
            Err(e) => panic!("an innocent swap failed: {e}"),
        }
    });
    assert_eq!(ok, 8 * 60 - 15);
    assert_eq!(atom.deref().0, ok);
    assert_eq!(stored_as::<_, (u64, Deep)>(b, &r).0, ok);
    assert_chain(&seen.lock().unwrap(), 0, ok);
}

/// Among concurrent swaps, one the validator refuses fails alone.
pub fn a_refused_value_in_a_crowd_fails_only_its_own_swap<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b
        .open_with(&r, (0u64, false), Options::new().validator(|(_, bad)| !bad))
        .unwrap();
    let ok = hammer(8, 60, |t, i| {
        let bad = t == 1 && i % 3 == 0;
        match atom.swap(|(n, _)| (n + 1, bad)) {
            Ok(_) => true,
            Err(Error::Invalid { .. }) if bad => false,
            Err(e) => panic!("an innocent swap failed: {e}"),
        }
    });
    assert_eq!(ok, 8 * 60 - 20);
    assert_eq!(stored_as::<_, (u64, bool)>(b, &r).0, ok);
    assert_eq!(atom.deref().0, ok);
}

/// Among concurrent swaps, one whose `f` panics fails alone.
pub fn a_panic_in_a_crowd_fails_only_its_own_swap<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u64);
    let ok = hammer(8, 60, |t, i| {
        let boom = t == 2 && i % 3 == 0;
        let swapped = catch_unwind(AssertUnwindSafe(|| {
            atom.swap(|n| {
                if boom {
                    panic!("f panics on purpose")
                } else {
                    n + 1
                }
            })
        }));
        match swapped {
            Ok(result) => {
                result.unwrap();
                true
            }
            Err(_) => {
                assert!(boom, "only the panicking swap may panic");
                false
            }
        }
    });
    assert_eq!(ok, 8 * 60 - 20);
    assert_eq!(stored_as::<_, u64>(b, &r), ok);
    assert_eq!(*atom.deref(), ok);
}

/// Injected commit faults among concurrent swaps: storage, memory and watches hold exactly the acknowledged swaps.
pub fn commit_faults_in_a_crowd_lose_nothing_acknowledged<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    let atom = Atom::open(store, 0u64, b.options(Options::new())).unwrap();
    let seen = recorder(&atom);
    for (n, point) in [
        (3, FailPoint::BeforeWrite),
        (9, FailPoint::MidWrite),
        (20, FailPoint::BeforeWrite),
    ] {
        faults.fail_commit(n, point);
    }
    let ok = hammer(8, 50, |_, _| atom.swap(|n| n + 1).is_ok());
    assert!(ok < 8 * 50, "some swaps met the injected faults");
    // Exactly the acknowledged swaps are in storage and in memory, and the watches saw
    // exactly them, in order.
    assert_eq!(stored_as::<_, u64>(b, &r), ok);
    assert_eq!(*atom.deref(), ok);
    assert_chain(&seen.lock().unwrap(), 0, ok);
}

/// Lost answers among concurrent swaps: what was stored is never overwritten nor applied twice.
pub fn lost_acknowledgements_in_a_crowd_are_never_overwritten<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    let atom = Atom::open(store, 0u64, b.options(Options::new())).unwrap();
    let seen = recorder(&atom);
    faults.fail_commit(4, FailPoint::AfterWrite);
    faults.fail_commit(15, FailPoint::AfterWrite);
    let uncertain = std::sync::atomic::AtomicU64::new(0);
    let ok = hammer(8, 50, |_, _| match atom.swap(|n| n + 1) {
        Ok(_) => true,
        Err(e) => {
            assert!(e.may_have_been_stored(), "only lost answers fail here: {e}");
            uncertain.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
    });
    // The swaps whose answer was lost were stored (this fault stores, then loses the
    // answer) and none was run again: exactly the acknowledged ones plus those. Memory
    // agrees with storage, and the watch chain has no gap.
    let stored = stored_as::<_, u64>(b, &r);
    let uncertain = uncertain.into_inner();
    assert!(uncertain >= 2, "both faults hit a swap");
    assert_eq!(
        stored,
        ok + uncertain,
        "stored {stored}, acknowledged {ok}, uncertain {uncertain}"
    );
    assert_eq!(*atom.refresh().unwrap(), stored);
    let seen = seen.lock().unwrap();
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0);
    }
    assert_eq!(seen.last().map(|t| t.1), Some(stored));
}

/// `compare_and_set` loops on two atoms of one resource from 8 threads are exact.
pub fn compare_and_set_loops_across_threads_are_exact<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u64);
    let other = b.open(&r, 0u64);
    hammer(8, 40, |t, _| {
        let atom = if t % 2 == 0 { &atom } else { &other };
        loop {
            let current = *atom.refresh().unwrap();
            if atom.compare_and_set(&current, current + 1).unwrap() {
                return true;
            }
        }
    });
    assert_eq!(stored_as::<_, u64>(b, &r), 320);
    assert_eq!(*atom.refresh().unwrap(), 320);
}

fn background<T: crate::Value>() -> Options<T> {
    Options::new().commit_mode(crate::CommitMode::Background)
}

/// Background mode: after `flush`, every acknowledged swap is stored.
pub fn background_mode_flush_makes_every_acknowledged_swap_durable<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open_with(&r, 0u64, background()).unwrap();
    let seen = recorder(&atom);
    let ok = hammer(8, 100, |_, _| atom.swap(|n| n + 1).is_ok());
    assert_eq!(ok, 800);
    assert_eq!(*atom.deref(), 800, "memory has every change at once");
    atom.flush().unwrap();
    assert_eq!(stored_as::<_, u64>(b, &r), 800);
    assert_chain(&seen.lock().unwrap(), 0, 800);
}

/// Background mode: dropping the last handle writes what is pending.
pub fn background_mode_drop_flushes<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open_with(&r, Vec::<u32>::new(), background()).unwrap();
    let clone = atom.clone();
    for i in 0..50 {
        clone.swap(|v| [v.as_slice(), &[i]].concat()).unwrap();
    }
    drop(atom);
    drop(clone);
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r), (0..50).collect::<Vec<_>>());
}

/// Background mode: unencodable and invalid values are refused by the call itself.
pub fn background_mode_refuses_bad_values_at_once<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b
        .open_with(
            &r,
            1.0f64,
            background().validator(|x: &f64| x.is_nan() || *x < 100.0),
        )
        .unwrap();
    if uses_json(b) {
        assert!(matches!(atom.reset(f64::NAN), Err(Error::Encode { .. })));
    } else {
        // Refused, or stored, as the codec's rules say.
        assert!(matches!(
            atom.reset(f64::NAN),
            Ok(_) | Err(Error::Encode { .. })
        ));
    }
    assert!(matches!(atom.reset(500.0), Err(Error::Invalid { .. })));
    assert_eq!(*atom.reset(2.0).unwrap(), 2.0);
    atom.flush().unwrap();
    assert_eq!(stored_as::<_, f64>(b, &r), 2.0);
}

/// Background mode: `flush` reports failed writes, and the committer recovers.
pub fn background_mode_reports_failed_writes_and_recovers<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    let atom = Atom::open(store, 0u64, b.options(background())).unwrap();
    faults.fail_every_commit(true);
    atom.swap(|n| n + 1).unwrap();
    let err = atom.flush().unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(stored_as::<_, u64>(b, &r), 0, "nothing was written");
    faults.fail_every_commit(false);
    flush_until_written(&atom);
    assert_eq!(stored_as::<_, u64>(b, &r), 1);
}

/// Flushes a background-mode atom until the committer's retries succeed (5 s at most).
fn flush_until_written<T: crate::Value>(atom: &Atom<T>) {
    let mut tries = 0;
    while let Err(e) = atom.flush() {
        tries += 1;
        assert!(tries < 500, "the committer never wrote the value: {e}");
        thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Background mode: `refresh` and `release` write what is pending first.
pub fn background_mode_refresh_and_release_flush_first<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open_with(&r, 0u64, background()).unwrap();
    for _ in 0..10 {
        atom.swap(|n| n + 1).unwrap();
    }
    assert_eq!(*atom.refresh().unwrap(), 10);
    assert_eq!(stored_as::<_, u64>(b, &r), 10);
    // Another writer's value is picked up by refresh; the next write goes over it.
    b.open(&r, 0u64).reset(100).unwrap();
    assert_eq!(*atom.refresh().unwrap(), 100);
    atom.swap(|n| n + 1).unwrap();
    atom.flush().unwrap();
    assert_eq!(stored_as::<_, u64>(b, &r), 101);
    atom.release().unwrap();
    assert_eq!(b.stored(&r), None);
    assert!(matches!(atom.swap(|n| n + 1), Err(Error::Released)));
}

/// Runs `work` on its own thread and fails the test if it does not finish within 20 s
/// (a deadlock), instead of hanging the whole suite.
fn within_time_limit(what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match finished.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(()) => worker.join().unwrap(),
        // The worker panicked (its assertion failed): show that panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked"),
    }
}

/// Calls every operation that waits for the atom, from inside the atom's own update
/// function, and collects what each returned.
fn call_everything_inside(atom: &Atom<u32>) -> Vec<(&'static str, Result<(), Error>)> {
    vec![
        ("swap", atom.swap(|n| n + 1).map(drop)),
        ("swap_vals", atom.swap_vals(|n| n + 1).map(drop)),
        ("reset", atom.reset(7).map(drop)),
        ("compare_and_set", atom.compare_and_set(&0, 7).map(drop)),
        (
            "try_swap",
            atom.try_swap(|n| Ok::<_, Error>(n + 1)).map(drop),
        ),
        ("refresh", atom.refresh().map(drop)),
        ("release", atom.release()),
    ]
}

fn assert_all_reentrant(results: &[(&'static str, Result<(), Error>)], mode: &str) {
    for (call, result) in results {
        match result {
            Err(e @ Error::Reentrant { .. }) => {
                assert!(e.to_string().contains("inside this atom's own"), "{e}")
            }
            other => panic!("{mode}: `{call}` from inside: expected Reentrant, got {other:?}"),
        }
    }
}

/// A call back into the atom from inside its own update function or validator, on the
/// atom or a clone, in either commit mode, fails at once with `Error::Reentrant` (it would
/// wait for itself), leaves the atom as it was, and the outer call goes on.
pub fn reentrant_calls_fail_fast_instead_of_deadlocking<B: Backend>(b: &B) {
    for options in [Options::new(), background()] {
        let mode = format!("{:?}", options.mode());
        let r = b.fresh();
        let atom = b.open_with(&r, 0u32, options).unwrap();
        let what = mode.clone();
        within_time_limit(&what, move || {
            // From inside f, on a clone.
            let inner = atom.clone();
            let mut results = Vec::new();
            let new = atom
                .swap(|n| {
                    if results.is_empty() {
                        results = call_everything_inside(&inner);
                    }
                    n + 1
                })
                .unwrap();
            assert_eq!(*new, 1);
            assert_all_reentrant(&results, &mode);
            // From inside a validator: when it is set (it checks the current value) and
            // when a swap's result is validated.
            let inner = atom.clone();
            let from_validator = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&from_validator);
            atom.set_validator(move |_| {
                let mut log = log.lock().unwrap();
                if log.is_empty() {
                    *log = call_everything_inside(&inner);
                }
                true
            })
            .unwrap();
            assert_all_reentrant(&from_validator.lock().unwrap(), &mode);
            from_validator.lock().unwrap().clear();
            assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
            assert_all_reentrant(&from_validator.lock().unwrap(), &mode);
            atom.clear_validator();
            // A watch runs after the commit, with nothing held: it may change the atom.
            let inner = atom.clone();
            atom.add_watch("again", move |_, new| {
                if *new == 3 {
                    inner.swap(|n| n + 1).unwrap();
                }
            });
            atom.swap(|n| n + 1).unwrap();
            atom.flush().unwrap();
            assert_eq!(*atom.deref(), 4);
            assert!(!atom.is_released());
        });
        assert_eq!(stored_as::<_, u32>(b, &r), 4, "{what}");
    }
}

/// A value whose `Serialize` panics.
#[derive(Debug, Clone, PartialEq)]
struct Touchy {
    n: u32,
    /// Panic when serialized on the background committer's thread only.
    only_in_background: bool,
}

impl serde::Serialize for Touchy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let committer = thread::current().name() == Some("enduro-committer");
        if self.n == 13 && (committer || !self.only_in_background) {
            panic!("Touchy cannot serialize 13");
        }
        serializer.serialize_u32(self.n)
    }
}

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = <u32 as serde::Deserialize>::deserialize(deserializer)?;
        Ok(Touchy {
            n,
            only_in_background: false,
        })
    }
}

/// A `Serialize` that panics fails its own swap with `Error::Encode` (saying so), changes
/// nothing, and leaves the atom usable; in background mode, a panic on the committer
/// thread is reported by `flush` instead of hanging it, and later changes are written.
pub fn a_panicking_serialize_fails_its_swap_and_never_hangs<B: Backend>(b: &B) {
    let quiet = |n| Touchy {
        n,
        only_in_background: false,
    };
    let r = b.fresh();
    let atom = b.open(&r, quiet(1));
    let seen = recorder(&atom);
    let err = atom.reset(quiet(13)).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err:?}");
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(atom.deref().n, 1);
    assert_eq!(stored_as::<_, u32>(b, &r), 1);
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(atom.reset(quiet(2)).unwrap().n, 2);

    let r = b.fresh();
    let atom = b.open_with(&r, quiet(1), background()).unwrap();
    within_time_limit("background flush after a panicking Serialize", move || {
        atom.reset(Touchy {
            n: 13,
            only_in_background: true,
        })
        .unwrap();
        let err = atom.flush().unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        // A later value replaces it, and is written.
        atom.reset(quiet(14)).unwrap();
        flush_until_written(&atom);
    });
    assert_eq!(stored_as::<_, u32>(b, &r), 14);
}

/// Emptying the resource by hand while atoms run counts as deleting it, like removing it:
/// running atoms report `Released` (they have no value to go on from), and the next open
/// starts afresh from `init`, as it does for an empty resource.
pub fn a_resource_emptied_by_hand_counts_as_released<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 5u32);
    b.plant(&r, b"");
    assert!(matches!(atom.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(atom.refresh(), Err(Error::Released)));
    assert_eq!(*atom.deref(), 5, "deref keeps the last value");
    let again = b.open(&r, 9u32);
    assert_eq!(*again.deref(), 9);
    assert_eq!(stored_as::<_, u32>(b, &r), 9);
}

// Values that would not read back as themselves (DESIGN.md: "nothing is stored that would
// not read back as itself, and nothing a user stores can abort the process or make a
// later open fail"). The JSON codec refuses them, and nothing is stored.

/// An enum tree: each `Node` is one level of JSON nesting (`{"Node":…}`), each `Pair`
/// two (`{"Pair":[…,0]}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
    Pair(Box<Tree>, u8),
}

fn nodes(count: usize) -> Tree {
    (0..count).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
}

fn pairs(count: usize) -> Tree {
    (0..count).fold(Tree::Leaf, |t, _| Tree::Pair(Box::new(t), 0))
}

fn arrays(count: usize) -> serde_json::Value {
    (0..count).fold(serde_json::json!(7), |v, _| serde_json::json!([v]))
}

/// Checks that `swap` and `reset` to `bad` fail with `Error::Encode` saying each of
/// `says`, that the atom, its watches and the stored bytes are unchanged, and that the
/// atom still stores `good` (which then reads back as itself).
fn assert_refused<B: Backend, T>(b: &B, r: &B::Resource, bad: &T, good: &T, says: &[&str])
where
    T: crate::Value + Clone + PartialEq + std::fmt::Debug,
{
    if !uses_json(b) {
        return refused_or_reads_back(b, r, bad, good);
    }
    let atom = b.open(r, good.clone());
    let before = atom.deref();
    let stored = b.stored(r);
    let seen = recorder(&atom);
    let by_swap = atom.swap(|_| bad.clone()).unwrap_err();
    let by_reset = atom.reset(bad.clone()).unwrap_err();
    for err in [by_swap, by_reset] {
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        for said in says {
            assert!(err.to_string().contains(said), "says {said:?}: {err}");
        }
    }
    assert_eq!(atom.deref(), before);
    assert_eq!(b.stored(r), stored, "nothing was written");
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(
        *atom.swap(|v| v.clone()).unwrap(),
        *good,
        "the atom stays usable"
    );
    assert_eq!(*b.open(r, bad.clone()).deref(), *good, "and reads back");
}

/// Values nested deeper than the decoder reads back are refused, also as `init`.
pub fn values_nested_deeper_than_json_reads_back_are_refused<B: Backend>(b: &B) {
    let too_deep = ["128 levels", "at most 127"];
    assert_refused(b, &b.fresh(), &nodes(128), &nodes(1), &too_deep);
    assert_refused(b, &b.fresh(), &pairs(64), &pairs(1), &too_deep);
    assert_refused(b, &b.fresh(), &arrays(128), &arrays(1), &too_deep);
    // A too deep initial value is refused before anything is stored.
    if !uses_json(b) {
        return refused_or_reads_back_at_open(b, arrays(200));
    }
    let r = b.fresh();
    let err = b.open_with(&r, arrays(200), Options::new()).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(b.stored(&r), None);
}

/// The deepest values accepted read back as themselves after reopening.
pub fn the_deepest_accepted_values_read_back_after_reopening<B: Backend>(b: &B) {
    /// Stores `deepest` over `other`, then checks a new atom reads it back.
    fn check<B: Backend, T>(b: &B, deepest: T, other: T)
    where
        T: crate::Value + Clone + PartialEq + std::fmt::Debug,
    {
        let r = b.fresh();
        if !uses_json(b) {
            // The deepest JSON accepts may be too deep for another format.
            return refused_or_reads_back(b, &r, &deepest, &other);
        }
        b.open(&r, other.clone()).reset(deepest.clone()).unwrap();
        assert_eq!(*b.open(&r, other).deref(), deepest);
        assert_eq!(stored_as::<_, T>(b, &r), deepest);
    }
    check(b, nodes(127), nodes(0));
    check(b, pairs(63), pairs(0));
    check(b, arrays(127), arrays(0));
    check(b, Some(Some(3u8)), None);
    check(b, vec![None, Some(vec![()])], vec![]);
}

/// `Some(None)`-like values, which would read back as `None`, are refused.
pub fn some_of_null_is_refused<B: Backend>(b: &B) {
    let reads_as_none = ["read back as None"];
    assert_refused(
        b,
        &b.fresh(),
        &Some(None::<u8>),
        &Some(Some(1)),
        &reads_as_none,
    );
    assert_refused(b, &b.fresh(), &Some(()), &None, &reads_as_none);
    assert_refused(
        b,
        &b.fresh(),
        &vec![None, Some(())],
        &vec![None],
        &["at [1]"],
    );
    assert_refused(
        b,
        &b.fresh(),
        &Some(serde_json::Value::Null),
        &Some(serde_json::json!([null])),
        &reads_as_none,
    );
    let map = |v| BTreeMap::from([("a".to_string(), None), ("b".to_string(), v)]);
    assert_refused(
        b,
        &b.fresh(),
        &map(Some(None::<u8>)),
        &map(None),
        &["at {value of entry #1}"],
    );
    // An initial value too.
    if !uses_json(b) {
        return refused_or_reads_back_at_open(b, Some(None::<u8>));
    }
    let r = b.fresh();
    let err = b
        .open_with(&r, Some(None::<u8>), Options::new())
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(b.stored(&r), None);
}

use crate::lazy_deep::{Maps, MixedSome, Newtypes, Seqs, Somes, Variants};

/// An atom's value for the deep tests: `depth` levels of `shape`, generated lazily.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Deep {
    depth: usize,
    shape: Lazy,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lazy {
    Variants,
    Seqs,
    Maps,
    Newtypes,
    Somes,
    Mixed,
}

impl serde::Serialize for Deep {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.shape {
            Lazy::Variants => Variants(self.depth).serialize(serializer),
            Lazy::Seqs => Seqs(self.depth).serialize(serializer),
            Lazy::Newtypes => Newtypes(self.depth).serialize(serializer),
            Lazy::Somes => Somes(self.depth).serialize(serializer),
            Lazy::Maps => Maps(self.depth).serialize(serializer),
            Lazy::Mixed => MixedSome(self.depth).serialize(serializer),
        }
    }
}

/// Reads back only the leaf, `0`: the atoms in the test store nothing deeper.
impl<'de> serde::Deserialize<'de> for Deep {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any shape reads back (as the leaf): a memory store checks that what it is
        // given reads back.
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(deserializer).map(|_| Deep {
            depth: 0,
            shape: Lazy::Seqs,
        })
    }
}

/// Runs `f` on a thread with a small stack (Rust's spawned threads get 2 MiB): 256 KiB
/// with JSON; 512 KiB with another codec, since the other formats' writers and readers,
/// allowed to nest deeper than JSON (CBOR 256 levels), take more than 256 KiB at their
/// limits in a debug build (measured).
fn on_a_small_stack<B: Backend, R: Send>(b: &B, f: impl FnOnce() -> R + Send) -> R {
    let kib = if super::uses_json(b) { 256 } else { 512 };
    thread::scope(|s| {
        thread::Builder::new()
            .stack_size(kib * 1024)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

/// 100,000 levels of nesting are refused on a 256 KiB stack, without overflowing it.
pub fn a_hundred_thousand_levels_are_refused_on_a_small_stack<B: Backend>(b: &B) {
    let r = b.fresh();
    let leaf = Deep {
        depth: 0,
        shape: Lazy::Seqs,
    };
    let atom = b.open(&r, leaf);
    let seen = recorder(&atom);
    let stored = b.stored(&r);
    let shapes = [
        Lazy::Variants,
        Lazy::Seqs,
        Lazy::Newtypes,
        Lazy::Somes,
        Lazy::Maps,
        Lazy::Mixed,
    ];
    for shape in shapes {
        let deep = Deep {
            depth: 100_000,
            shape,
        };
        let errors = on_a_small_stack(b, || [atom.swap(|_| deep), atom.reset(deep)]);
        for err in errors {
            let err = err.unwrap_err();
            assert!(matches!(err, Error::Encode { .. }), "{shape:?}: {err}");
        }
        assert_eq!(*atom.deref(), leaf);
        assert_eq!(b.stored(&r), stored, "nothing was written");
    }
    assert!(seen.lock().unwrap().is_empty());
    let shallow = Deep {
        depth: 4,
        shape: Lazy::Mixed,
    };
    assert_eq!(
        *atom.reset(shallow).unwrap(),
        shallow,
        "the atom stays usable"
    );
    if uses_json(b) {
        assert_eq!(b.stored(&r).unwrap(), b"{\"V\":[0]}");
    }
    // A too deep initial value is refused too.
    let deep = Deep {
        depth: 100_000,
        shape: Lazy::Mixed,
    };
    let r = b.fresh();
    let err = on_a_small_stack(b, || b.open_with(&r, deep, Options::new()).map(drop)).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(b.stored(&r), None);
}

/// Deeply nested stored data is a clean decode error, left untouched.
pub fn a_deep_hand_written_value_is_a_decode_error<B: Backend>(b: &B) {
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let variants = format!(
        "{}\"Leaf\"{}",
        "{\"Node\":".repeat(depth),
        "}".repeat(depth)
    );
    refused_at_open(b, &arrays, serde_json::json!(null));
    refused_at_open(b, &variants, nodes(0));
}

/// Plants `text` and checks that opening it as `T` is a clean `Error::Decode` from the
/// decoder's recursion limit, leaving the bytes untouched.
fn refused_at_open<B: Backend, T: crate::Value>(b: &B, text: &str, init: T) {
    let r = b.fresh();
    b.plant(&r, text.as_bytes());
    let err = b.open_with(&r, init, Options::new()).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(
        !uses_json(b) || err.to_string().contains("recursion limit exceeded"),
        "{err}"
    );
    assert_eq!(
        b.stored(&r).as_deref(),
        Some(text.as_bytes()),
        "left untouched"
    );
}

/// A live atom follows another writer's commits with no `refresh`: its `deref` and its
/// watches see them (bursts may be merged into one transition), and a release by the
/// other writer releases it.
pub fn a_live_atom_follows_other_writers_without_refresh<B: Backend>(b: &B) {
    let r = b.fresh();
    let live = b
        .open_with(&r, 0u64, Options::new().live(true))
        .expect("a live atom opens");
    let seen = recorder(&live);
    let writer = b.open(&r, 0u64);
    writer.swap(|n| n + 1).unwrap();
    eventually("the live atom shows the first commit", || {
        *live.deref() == 1
    });
    for _ in 0..20 {
        writer.swap(|n| n + 1).unwrap();
    }
    eventually("the live atom shows the last commit", || {
        *live.deref() == 21
    });
    eventually("the watches saw the last commit", || {
        seen.lock().unwrap().last().map(|t| t.1) == Some(21)
    });
    assert_rising_chain(&seen.lock().unwrap(), 0, 21);
    writer.release().unwrap();
    eventually("the live atom is released", || live.is_released());
    assert!(matches!(live.swap(|n| n + 1), Err(Error::Released)));
}

/// A live atom that swaps too, against another writer: both stay exact, and the live
/// atom's watches see one unbroken chain of its own and the other's commits.
pub fn a_live_atom_that_writes_too_stays_exact<B: Backend>(b: &B) {
    let r = b.fresh();
    let live = b
        .open_with(&r, 0u64, Options::new().live(true))
        .expect("a live atom opens");
    let seen = recorder(&live);
    let writer = b.open(&r, 0u64);
    thread::scope(|s| {
        for atom in [&live, &writer] {
            let atom = atom.clone();
            s.spawn(move || {
                for _ in 0..100 {
                    atom.swap(|n| n + 1).unwrap();
                }
            });
        }
    });
    // The last of them may be the live atom's own: one more by the other writer shows
    // that it follows.
    writer.swap(|n| n + 1).unwrap();
    eventually("the live atom shows every commit", || *live.deref() == 201);
    eventually("the watches saw the last commit", || {
        seen.lock().unwrap().last().map(|t| t.1) == Some(201)
    });
    assert_rising_chain(&seen.lock().unwrap(), 0, 201);
    assert_eq!(stored_as::<_, u64>(b, &r), 201);
}

/// Many live atoms on many resources: each follows its own resource and only it, and
/// dropping them all leaves the writers working.
pub fn many_live_atoms_each_follow_their_own_resource<B: Backend>(b: &B) {
    let resources: Vec<_> = (0..50).map(|_| b.fresh()).collect();
    let live: Vec<Atom<u64>> = resources
        .iter()
        .map(|r| b.open_with(r, 0u64, Options::new().live(true)).unwrap())
        .collect();
    let writers: Vec<Atom<u64>> = resources.iter().map(|r| b.open(r, 0u64)).collect();
    for (i, writer) in writers.iter().enumerate() {
        writer.reset(i as u64 + 1).unwrap();
    }
    for (i, atom) in live.iter().enumerate() {
        eventually("every live atom shows its own writer's value", || {
            *atom.deref() == i as u64 + 1
        });
    }
    drop(live);
    for writer in &writers {
        writer.swap(|n| n + 100).unwrap();
    }
}

/// A live atom's catch-up takes a value that looks blank for a rewrite in place caught
/// half-way (a truncated file), not for a release: it keeps its value until the
/// rewrite ends. A swap or a refresh still counts a blank resource as released.
pub fn a_live_atom_takes_a_blank_value_for_a_rewrite_in_progress<B: Backend>(b: &B) {
    let r = b.fresh();
    let live = b
        .open_with(&r, 1u64, Options::new().live(true))
        .expect("a live atom opens");
    let seen = recorder(&live);
    b.plant(&r, b"");
    // The catch-up has nothing to show; a later value reaches the atom as usual.
    b.plant(&r, &encoded(b, &5u64));
    eventually(
        "the live atom shows the value written after the blank",
        || *live.deref() == 5,
    );
    assert!(
        !live.is_released(),
        "a blank value met by a catch-up is no release"
    );
    eventually("the watches saw it", || !seen.lock().unwrap().is_empty());
    assert_eq!(*seen.lock().unwrap(), [(1, 5)]);
    b.plant(&r, b"");
    assert!(matches!(live.refresh(), Err(Error::Released)));
}

/// Another writer storing the very bytes the atom holds (a file's commit counter that
/// moved on before the new data arrived looks the same) is no transition: the atom takes
/// the new version, and the watches see nothing.
pub fn the_same_bytes_under_a_new_version_are_no_transition<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 5u64);
    let seen = recorder(&atom);
    let before = atom.version();
    b.plant(&r, &encoded(b, &5u64));
    assert_eq!(*atom.refresh().unwrap(), 5);
    assert_ne!(atom.version(), before, "the new version is taken");
    b.plant(&r, &encoded(b, &6u64));
    assert_eq!(*atom.refresh().unwrap(), 6);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 7);
    b.plant(&r, &encoded(b, &7u64));
    assert_eq!(
        *atom.swap(|n| n + 1).unwrap(),
        8,
        "builds on the new version"
    );
    assert_eq!(*seen.lock().unwrap(), [(5, 6), (6, 7), (7, 8)]);
}

/// A live atom whose catch-up fails (a check that errs: a lost connection, a file caught
/// mid-change) tries again a little later, so one failure never leaves it behind until
/// the next commit.
pub fn a_live_atom_tries_a_failed_catch_up_again<B: Backend>(b: &B) {
    let r = b.fresh();
    let store = FaultyStore::new(b.store(&r).unwrap());
    let faults = store.faults();
    let live =
        Atom::open(store, 0u64, b.options(Options::new().live(true))).expect("a live atom opens");
    faults.fail_checks(3);
    b.open(&r, 0u64).reset(7).unwrap();
    eventually(
        "the live atom shows the commit once its checks work again",
        || *live.deref() == 7,
    );
}

fn tally<B: Backend>(b: &B, r: &B::Resource) -> Atom<Tally> {
    b.open_with(r, Tally::default(), Options::new().ops())
        .unwrap()
}

/// `apply` is a swap whose change is the op: it returns the new value once durable, the
/// watches see the transition, a validator refuses what it refuses, and a reopened atom
/// (which replays what the store keeps) reads the same value; an atom opened without
/// `ops()` applies ops too.
pub fn apply_is_a_swap_whose_change_is_the_op<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = tally(b, &r);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("log", move |old: &Tally, new: &Tally| {
        log.lock().unwrap().push((old.total, new.total));
    });
    assert_eq!(atom.apply(TallyOp::Add(2)).unwrap().total, 2);
    let noted = atom.apply(TallyOp::Note("hello".into())).unwrap();
    assert_eq!((noted.total, noted.note.as_deref()), (2, Some("hello")));
    assert_eq!(atom.apply(TallyOp::Scale(1.5)).unwrap().total, 3);
    assert_eq!(*seen.lock().unwrap(), [(0, 2), (2, 2), (2, 3)]);
    atom.set_validator(|t: &Tally| t.total < 10).unwrap();
    let err = atom.apply(TallyOp::Add(100)).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(atom.deref().total, 3, "a refused op changes nothing");
    // Swaps and ops mix.
    atom.swap(|t| Tally {
        total: t.total + 1,
        ..t.clone()
    })
    .unwrap();
    assert_eq!(atom.apply(TallyOp::Add(1)).unwrap().total, 5);
    let again = tally(b, &r);
    assert_eq!(
        *again.deref(),
        *atom.deref(),
        "reopening replays to the same value"
    );
    // Without `ops()`, `apply` commits the value it makes.
    let plain = b.fresh();
    let whole = b
        .open_with(&plain, Tally::default(), Options::new())
        .unwrap();
    assert_eq!(whole.apply(TallyOp::Add(7)).unwrap().total, 7);
    let reopened = b
        .open_with(&plain, Tally::default(), Options::new())
        .unwrap();
    assert_eq!(reopened.deref().total, 7);
}

/// Ops from several threads of two atoms on one resource lose none and apply none twice;
/// a fresh atom replays to the same total.
pub fn ops_from_threads_and_two_atoms_are_exact_and_replay_to_the_same_value<B: Backend>(b: &B) {
    let r = b.fresh();
    let first = tally(b, &r);
    let second = tally(b, &r);
    thread::scope(|s| {
        for atom in [&first, &second] {
            for _ in 0..2 {
                let atom = atom.clone();
                s.spawn(move || {
                    for _ in 0..100 {
                        atom.apply(TallyOp::Add(1)).unwrap();
                    }
                });
            }
        }
    });
    assert_eq!(first.refresh().unwrap().total, 400);
    assert_eq!(second.refresh().unwrap().total, 400);
    assert_eq!(tally(b, &r).deref().total, 400);
}

/// An op whose `apply` panics fails its own call (the panic reaches the caller) and
/// changes nothing; an op that would not read back as itself (a NaN, which JSON cannot
/// hold) is refused with `Error::Encode` before anything is written. The atom goes on.
pub fn an_op_that_panics_or_would_not_read_back_changes_nothing<B: Backend>(b: &B) {
    let r = b.fresh();
    let atom = tally(b, &r);
    atom.apply(TallyOp::Add(1)).unwrap();
    let version = atom.version();
    let panicked = catch_unwind(AssertUnwindSafe(|| atom.apply(TallyOp::Panic)));
    assert!(panicked.is_err(), "the panic reaches the caller");
    let err = atom.apply(TallyOp::Scale(f64::NAN)).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(err.to_string().contains("read back"), "{err}");
    assert_eq!((atom.deref().total, atom.version()), (1, version));
    assert_eq!(atom.refresh().unwrap().total, 1);
    assert_eq!(tally(b, &r).deref().total, 1, "nothing was stored");
    assert_eq!(atom.apply(TallyOp::Add(1)).unwrap().total, 2);
}

/// Another atom picks up applied ops with `refresh` and its watches see a chain of
/// transitions (one per op where the store keeps ops, one in all where it keeps values),
/// ending at the writer's value.
pub fn other_atoms_see_applied_ops_as_a_chain_of_transitions<B: Backend>(b: &B) {
    let r = b.fresh();
    let writer = tally(b, &r);
    let reader = tally(b, &r);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    reader.add_watch("log", move |old: &Tally, new: &Tally| {
        log.lock().unwrap().push((old.total, new.total));
    });
    for n in 1..=3 {
        writer.apply(TallyOp::Add(n)).unwrap();
    }
    assert_eq!(reader.refresh().unwrap().total, 6);
    writer.apply(TallyOp::Add(4)).unwrap();
    assert_eq!(reader.refresh().unwrap().total, 10);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.first().map(|t| t.0), Some(0));
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "a chain: {seen:?}");
    }
    assert_eq!(seen.last().map(|t| t.1), Some(10));
}

/// A user as a program of schema 0 stored it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct UserV0 {
    name: String,
    mail: String,
}

/// The same user at schema 2: `mail` renamed `email` (step 0), `admin` added (step 1),
/// and who migrated it (for the cases that check it is done once).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct UserV2 {
    name: String,
    pub(crate) email: String,
    admin: bool,
    #[serde(default)]
    pub(crate) by: u32,
}

/// The two steps from [`UserV0`] to [`UserV2`]; `runs` counts each step's runs, and `by`
/// is written into the migrated value.
pub(crate) fn user_migrations(
    runs: &Arc<[std::sync::atomic::AtomicUsize; 2]>,
    by: u32,
) -> crate::Migrations {
    use std::sync::atomic::Ordering::SeqCst;
    let (first, second) = (Arc::clone(runs), Arc::clone(runs));
    crate::Migrations::new()
        .step(move |mut user: serde_json::Value| {
            first[0].fetch_add(1, SeqCst);
            let user = user.as_object_mut().ok_or("a user is an object")?;
            let mail = user.remove("mail").ok_or("no field `mail` to rename")?;
            user.insert("email".into(), mail);
            Ok::<_, &str>(serde_json::Value::Object(std::mem::take(user)))
        })
        .step(move |mut user: serde_json::Value| {
            second[1].fetch_add(1, SeqCst);
            user["admin"] = false.into();
            user["by"] = by.into();
            Ok::<_, &str>(user)
        })
}

pub(crate) fn ada() -> UserV0 {
    UserV0 {
        name: "Ada".into(),
        mail: "ada@example.com".into(),
    }
}

pub(crate) fn nobody() -> UserV2 {
    UserV2 {
        name: String::new(),
        email: String::new(),
        admin: true,
        by: 0,
    }
}

/// Opening data of an older schema runs the missing steps once, in order, stores the
/// result with its schema, and later opens run none; other programs refuse the data of a
/// schema they do not know (one that knows fewer steps, one without migrations) and leave
/// it as it is.
pub fn migrations_run_once_and_store_the_schema_with_the_data<B: Backend>(b: &B) {
    use std::sync::atomic::Ordering::SeqCst;
    let r = b.fresh();
    let old = b.open(&r, ada());
    let runs = Arc::new([0.into(), 0.into()]);
    let migrate = || Options::new().migrations(user_migrations(&runs, 7));
    let user = b.open_with(&r, nobody(), migrate()).unwrap();
    let expected = UserV2 {
        name: "Ada".into(),
        email: "ada@example.com".into(),
        admin: false,
        by: 7,
    };
    assert_eq!(*user.deref(), expected);
    assert_eq!([runs[0].load(SeqCst), runs[1].load(SeqCst)], [1, 1]);
    let stored: serde_json::Value = stored_as(b, &r);
    assert_eq!(stored["enduro_schema"], 2, "{stored}");
    assert_eq!(stored["value"]["email"], "ada@example.com", "{stored}");

    // Later opens run no step, and the atom works as any other.
    let again = b.open_with(&r, nobody(), migrate()).unwrap();
    assert_eq!(*again.deref(), expected);
    assert_eq!([runs[0].load(SeqCst), runs[1].load(SeqCst)], [1, 1]);
    again
        .swap(|u| UserV2 {
            admin: true,
            ..u.clone()
        })
        .unwrap();
    assert!(user.refresh().unwrap().admin);

    // The old program refuses the newer data, and so does one that knows one step only.
    let bytes = b.stored(&r);
    let err = old.refresh().unwrap_err();
    assert!(
        matches!(
            err,
            Error::NewerSchema {
                stored: 2,
                known: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(old.swap(|u| u.clone()).is_err());
    let one_step = crate::Migrations::new().step(Ok::<_, String>);
    let err = b
        .open_with(&r, ada(), Options::new().migrations(one_step))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NewerSchema {
                stored: 2,
                known: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("schema 2"), "{err}");
    assert!(b.open_with(&r, ada(), Options::new()).is_err());
    assert_eq!(b.stored(&r), bytes, "refused data is left as it was");
}

/// A migration step that fails or panics, data it leaves that does not decode, and a
/// migrated value the validator refuses are errors naming the step (or the value) and the
/// resource; the stored data is left byte for byte as it was, and a later open with
/// working steps migrates it.
pub fn a_failing_migration_changes_nothing<B: Backend>(b: &B) {
    let r = b.fresh();
    b.open(&r, ada());
    let before = b.stored(&r);
    let resource = b.store(&r).unwrap().resource();
    let first = || crate::Migrations::new().step(Ok::<_, String>);
    let attempts = [
        (
            first().step(|_| Err("the disk is full of cats")),
            "the disk is full of cats",
        ),
        (
            first().step(|_| -> Result<serde_json::Value, String> { panic!("a step panics") }),
            "panicked: a step panics",
        ),
        (first().step(Ok::<_, String>), "does not decode as"),
    ];
    for (migrations, reason) in attempts {
        let err = b
            .open_with(&r, nobody(), Options::new().migrations(migrations))
            .unwrap_err();
        assert!(matches!(err, Error::Migration { step: 1, .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("step 1 (schema 1 to 2)"), "{message}");
        assert!(message.contains(reason), "{message}");
        assert!(message.contains(&resource), "{message}");
        assert_eq!(b.stored(&r), before, "after: {message}");
    }
    let runs = Arc::new([0.into(), 0.into()]);
    let options = Options::new()
        .migrations(user_migrations(&runs, 1))
        .validator(|u: &UserV2| u.admin);
    let err = b.open_with(&r, nobody(), options).unwrap_err();
    assert!(matches!(err, Error::InvalidStored { .. }), "{err}");
    assert_eq!(b.stored(&r), before);

    let user = b
        .open_with(
            &r,
            nobody(),
            Options::new().migrations(user_migrations(&runs, 1)),
        )
        .unwrap();
    assert_eq!(user.deref().email, "ada@example.com");
}

/// Atoms opening old data at the same moment store the migrated value once: every one
/// of them ends with the value the one commit stored (each step writes its own id).
pub fn concurrent_opens_migrate_once<B: Backend>(b: &B) {
    let r = b.fresh();
    b.open(&r, ada());
    let openers: Vec<_> = (1..=4u32)
        .map(|id| {
            let store = b.store(&r).unwrap();
            let runs = Arc::new([0.into(), 0.into()]);
            let options = b.options(Options::new().migrations(user_migrations(&runs, id)));
            thread::spawn(move || Atom::open(store, nobody(), options).unwrap().deref().by)
        })
        .collect();
    let seen: Vec<u32> = openers.into_iter().map(|t| t.join().unwrap()).collect();
    let stored: serde_json::Value = stored_as(b, &r);
    let by = stored["value"]["by"].as_u64().unwrap();
    assert!(
        seen.iter().all(|&id| u64::from(id) == by),
        "every atom has the one stored migration ({by}), not its own: {seen:?}"
    );
}

/// A value with a field written only sometimes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sometimes {
    a: u32,
    /// Not written when zero, yet required when read: zero does not read back.
    #[serde(skip_serializing_if = "is_zero")]
    b: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// With `round_trip_check(true)`, a value that encodes but would not decode back is
/// refused with [`Error::Encode`] at open and at a swap; nothing is stored.
pub fn values_that_would_not_read_back_are_refused_when_checked<B: Backend>(b: &B) {
    let r = b.fresh();
    let checked = || Options::new().round_trip_check(true);
    let err = b
        .open_with(&r, Sometimes { a: 1, b: 0 }, checked())
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    // What it says is the codec's (postcard refuses the skipped field itself).
    assert!(
        !uses_json(b)
            || err
                .to_string()
                .contains("would not read back: missing field `b`"),
        "{err}"
    );
    assert_eq!(b.stored(&r), None);
    let atom = b
        .open_with(&r, Sometimes { a: 1, b: 1 }, checked())
        .unwrap();
    let before = b.stored(&r);
    let err = atom.swap(|s| Sometimes { b: 0, ..*s }).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(*atom.deref(), Sometimes { a: 1, b: 1 });
    assert_eq!(b.stored(&r), before);
    assert_eq!(atom.swap(|s| Sometimes { b: 2, ..*s }).unwrap().b, 2);
}
