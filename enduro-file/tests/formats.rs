//! File atoms in every format: the file on disk is that format and reopens as the value,
//! in plain and journal mode, and a value the format refuses leaves the file untouched.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use enduro::{Cbor, Codec, Error, FileAtom, Json, MessagePack, Postcard, Ron, Toml};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Paper,
    Signed(String),
    Pages(u32, u32),
    Box { width: f32 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Book {
    title: String,
    price: f64,
    note: Option<String>,
    kinds: Vec<Kind>,
    stock: BTreeMap<String, Vec<u32>>,
}

fn book(n: u32) -> Book {
    Book {
        title: format!("Ærø, book n° {n} 📚"),
        price: 12.5 + f64::from(n),
        note: n.is_multiple_of(2).then(|| "even".to_owned()),
        kinds: vec![
            Kind::Paper,
            Kind::Signed("ann".into()),
            Kind::Pages(n, 300),
            Kind::Box { width: 0.25 },
        ],
        stock: BTreeMap::from([("lyon".to_owned(), vec![n, 2]), ("oslo".to_owned(), vec![])]),
    }
}

/// A value every format but JSON and TOML stores, and which both of those refuse: a `None`
/// in a map value.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Sparse {
    by_id: BTreeMap<String, Option<Option<u8>>>,
}

/// Opens, swaps and reopens a file atom with `codec` in plain and journal mode, checking
/// that the data file holds what `codec` writes and that `is_format` recognizes it.
fn check<C: Codec + Clone>(codec: C, is_format: fn(&[u8]) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    for journal in [false, true] {
        let path = dir.path().join(format!("book-{journal}"));
        let open = |init: Book| {
            FileAtom::builder(&path)
                .codec(codec.clone())
                .journal(journal)
                .open(init)
                .unwrap()
        };
        let atom = open(book(1));
        let mut expected = Vec::new();
        codec.encode(&book(1), &mut expected).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected, "{}", codec.name());
        assert!(
            is_format(&expected),
            "{} wrote something else",
            codec.name()
        );
        for n in 2..=5 {
            atom.swap(|_| book(n)).unwrap();
        }
        drop(atom);
        let reopened = open(book(0));
        assert_eq!(
            *reopened.deref(),
            book(5),
            "{} journal={journal}",
            codec.name()
        );
        reopened
            .swap(|b| Book {
                price: 1.0,
                ..b.clone()
            })
            .unwrap();
        let again = open(book(0));
        assert_eq!(again.deref().price, 1.0);
        if !journal {
            let bytes = std::fs::read(&path).unwrap();
            assert!(is_format(&bytes), "{} rewrote something else", codec.name());
            let back: Book = codec.decode(&bytes).unwrap();
            assert_eq!(back, *again.deref());
        }
        // Opening it with JSON fails cleanly and leaves the file untouched (unless it is JSON).
        if codec.name() != "JSON" && !journal {
            let before = std::fs::read(&path).unwrap();
            let err = FileAtom::builder(&path).open(book(0)).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), before);
        }
    }
}

/// A refused value fails the swap with `Error::Encode`, names its path, and changes nothing.
fn refuses<C: Codec + Clone, T>(codec: C, init: T, bad: T, path_in_message: &str)
where
    T: Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + Clone
        + PartialEq
        + std::fmt::Debug
        + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    for journal in [false, true] {
        let path = dir.path().join(format!("atom-{journal}"));
        let atom = FileAtom::builder(&path)
            .codec(codec.clone())
            .journal(journal)
            .open(init.clone())
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = atom.reset(bad.clone()).unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(
            err.to_string().contains(path_in_message),
            "{}: {err}",
            codec.name()
        );
        assert_eq!(*atom.deref(), init);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn json_files() {
    check(Json::default(), |b| {
        serde_json::from_slice::<serde_json::Value>(b).is_ok()
    });
}

#[test]
fn toml_files() {
    let is_toml =
        |b: &[u8]| toml::from_str::<toml::Table>(utf8(b)).is_ok() && b.starts_with(b"title = ");
    check(Toml::default(), is_toml);
    check(Toml::pretty(), is_toml);
    let sparse = Sparse {
        by_id: BTreeMap::from([("a".to_owned(), Some(Some(1)))]),
    };
    let bad = Sparse {
        by_id: BTreeMap::from([("a".to_owned(), None)]),
    };
    refuses(
        Toml::default(),
        sparse,
        bad,
        "None at .by_id{value of entry #0}",
    );
}

#[test]
fn toml_empty_table_is_not_taken_for_a_blank_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.toml");
    let empty = BTreeMap::<String, u8>::new();
    FileAtom::builder(&path)
        .codec(Toml::default())
        .open(empty.clone())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# an empty table\n"
    );
    let full = BTreeMap::from([("x".to_owned(), 1u8)]);
    let reopened = FileAtom::builder(&path)
        .codec(Toml::default())
        .open(full)
        .unwrap();
    assert_eq!(
        *reopened.deref(),
        empty,
        "the stored empty table wins over init"
    );
}

#[test]
fn ron_files() {
    let is_ron = |b: &[u8]| ron::from_str::<ron::Value>(utf8(b)).is_ok() && b.starts_with(b"(");
    check(Ron::default(), is_ron);
    check(Ron::pretty(), is_ron);
    refuses(
        Ron::default(),
        Vec::<u128>::new(),
        vec![1, u128::MAX],
        "at [0]",
    );
}

#[test]
fn cbor_files() {
    check(Cbor, |b| {
        ciborium::from_reader::<ciborium::Value, _>(b).is_ok() && b[0] >> 5 == 5
    });
    let ok = Sparse {
        by_id: BTreeMap::new(),
    };
    let bad = Sparse {
        by_id: BTreeMap::from([("k".to_owned(), Some(None))]),
    };
    refuses(Cbor, ok, bad, "at .by_id{value of entry #0}");
}

#[test]
fn msgpack_files() {
    // A map of five fields whose first key is "title".
    check(MessagePack, |b| b.starts_with(b"\x85\xa5title"));
    let ok = Sparse {
        by_id: BTreeMap::new(),
    };
    let bad = Sparse {
        by_id: BTreeMap::from([("k".to_owned(), Some(None))]),
    };
    refuses(MessagePack, ok, bad, "at .by_id{value of entry #0}");
}

#[test]
fn postcard_files() {
    check(Postcard, |b| {
        postcard::from_bytes::<Book>(b).is_ok() && b[0] as usize == "Ærø, book n° 1 📚".len()
    });
    // What the others refuse reads back in postcard.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let sparse = Sparse {
        by_id: BTreeMap::from([("a".to_owned(), Some(None)), ("b".to_owned(), None)]),
    };
    FileAtom::builder(&path)
        .codec(Postcard)
        .open(sparse.clone())
        .unwrap();
    let back = FileAtom::builder(&path)
        .codec(Postcard)
        .open(Sparse {
            by_id: BTreeMap::new(),
        })
        .unwrap();
    assert_eq!(*back.deref(), sparse);
}
