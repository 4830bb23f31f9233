//! Every order of a builder's setters gives the same atom: `Options` here, the backends'
//! builders beside their code.
#![allow(clippy::unwrap_used)]

use enduro::store::Store;
use enduro::{Atom, CommitMode, Error, Json, MemAtom, MemStore, Options};

/// What an atom opened with `options` on a fresh memory store writes, and whether its
/// validator refuses 10.
fn behaviour(options: Options<Vec<u32>>) -> (Vec<u8>, bool) {
    let store = std::sync::Arc::new(MemStore::new());
    let atom = Atom::open(store.clone(), vec![1, 2], options).unwrap();
    let refused = matches!(atom.reset(vec![10]), Err(Error::Invalid { .. }));
    atom.flush().unwrap();
    (store.load().unwrap().unwrap().bytes, refused)
}

#[test]
fn options_setters_commute() {
    let small = |v: &Vec<u32>| v.iter().all(|n| *n < 10);
    let one = Options::new()
        .codec(Json::pretty())
        .validator(small)
        .commit_mode(CommitMode::Durable);
    let other = Options::new()
        .commit_mode(CommitMode::Durable)
        .validator(small)
        .codec(Json::pretty());
    assert_eq!(format!("{one:?}"), format!("{other:?}"));
    let (bytes, refused) = behaviour(one);
    assert_eq!((bytes.clone(), refused), behaviour(other));
    assert_eq!(bytes, b"[\n  1,\n  2\n]\n");
    assert!(refused);
}

#[test]
fn mem_atom_setters_commute() {
    let small = |n: &u32| *n < 10;
    let one = MemAtom::builder()
        .codec(Json::pretty())
        .validator(small)
        .commit_mode(CommitMode::Durable);
    let other = MemAtom::builder()
        .commit_mode(CommitMode::Durable)
        .validator(small)
        .codec(Json::pretty());
    assert_eq!(format!("{one:?}"), format!("{other:?}"));
    for builder in [one, other] {
        let atom = builder.open(1).unwrap();
        assert!(matches!(atom.reset(10), Err(Error::Invalid { .. })));
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    }
}

/// A backend's builder made with the facade's `option_setters!` (as the `Options` docs
/// show it), with only `enduro` in scope.
#[test]
fn option_setters_through_the_facade() {
    struct MyBuilder<T> {
        options: Options<T>,
    }

    impl<T: enduro::Value> MyBuilder<T> {
        enduro::store::option_setters!();
    }

    let b = MyBuilder {
        options: Options::<u8>::new(),
    }
    .validator(|n| *n < 9)
    .codec(Json::pretty());
    assert!(b.options.has_validator());
}
