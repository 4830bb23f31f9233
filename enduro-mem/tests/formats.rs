//! Memory atoms in every format: they encode and decode as the durable backends do, so a
//! value a format refuses fails in tests exactly as in production.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use enduro::{Cbor, Codec, Error, MemAtom, MessagePack, Postcard, Ron, Toml};

type Doc = BTreeMap<String, Vec<Option<u8>>>;

fn doc(values: Vec<Option<u8>>) -> Doc {
    BTreeMap::from([("values".to_owned(), values)])
}

/// Swaps a memory atom with `codec`; `None` in the sequence is refused with its path when
/// `refuses_none` (TOML has no null).
fn check<C: Codec>(codec: C, refuses_none: bool) {
    let name = codec.name();
    let atom = MemAtom::builder()
        .codec(codec)
        .open(doc(vec![Some(1)]))
        .unwrap();
    atom.swap(|d| {
        let mut d = d.clone();
        d.get_mut("values").unwrap().push(Some(2));
        d
    })
    .unwrap();
    assert_eq!(*atom.deref(), doc(vec![Some(1), Some(2)]), "{name}");
    let result = atom.reset(doc(vec![Some(1), None]));
    if refuses_none {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(
            err.to_string().contains("None at {value of entry #0}[1]"),
            "{err}"
        );
        assert_eq!(*atom.deref(), doc(vec![Some(1), Some(2)]), "{name}");
    } else {
        result.unwrap();
        assert_eq!(*atom.deref(), doc(vec![Some(1), None]), "{name}");
    }
}

#[test]
fn every_format_on_memory_atoms() {
    check(Toml::default(), true);
    check(Toml::pretty(), true);
    check(Ron::default(), false);
    check(Ron::pretty(), false);
    check(Cbor, false);
    check(MessagePack, false);
    check(Postcard, false);
}

#[test]
fn a_format_refuses_at_open_too() {
    let err = MemAtom::builder()
        .codec(Toml::default())
        .open(7u8)
        .unwrap_err();
    assert!(err.to_string().contains("must be a table"), "{err}");
    let err = MemAtom::builder()
        .codec(Cbor)
        .open(vec![Some(None::<u8>)])
        .unwrap_err();
    assert!(err.to_string().contains("at [0]"), "{err}");
}
