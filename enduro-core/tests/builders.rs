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

/// `pretty` and `codec` commute in `Options` itself (so in every builder): `pretty` styles
/// a JSON codec whichever comes first, and `pretty(true)` with another codec fails at open
/// naming both, writing nothing.
#[test]
fn pretty_and_codec_commute() {
    type Pair = (Options<Vec<u32>>, Options<Vec<u32>>, &'static [u8]);
    let pairs: [Pair; 2] = [
        (
            Options::new().pretty(true).codec(Json::compact()),
            Options::new().codec(Json::compact()).pretty(true),
            b"[\n  10\n]\n",
        ),
        (
            Options::new().pretty(false).codec(Json::pretty()),
            Options::new().codec(Json::pretty()).pretty(false),
            b"[10]",
        ),
    ];
    for (one, other, want) in pairs {
        let (a, b) = (behaviour(one).0, behaviour(other).0);
        assert_eq!(a, b);
        assert_eq!(a, want);
    }

    /// A codec that is not JSON.
    struct Other;
    impl enduro::Codec for Other {
        fn name(&self) -> &'static str {
            "Other"
        }
        fn encode<V: serde::Serialize + ?Sized>(
            &self,
            value: &V,
            out: &mut dyn std::io::Write,
        ) -> Result<(), enduro::CodecError> {
            Json::compact().encode(value, out)
        }
        fn decode<V: serde::de::DeserializeOwned>(
            &self,
            bytes: &[u8],
        ) -> Result<V, enduro::CodecError> {
            Json::compact().decode(bytes)
        }
    }
    for options in [
        Options::new().pretty(true).codec(Other),
        Options::new().codec(Other).pretty(true),
    ] {
        let store = std::sync::Arc::new(MemStore::new());
        let err = Atom::open(store.clone(), 1u8, options).unwrap_err();
        assert!(
            err.to_string().contains("pretty(true)") && err.to_string().contains("Other"),
            "{err}"
        );
        assert_eq!(store.load().unwrap(), None, "nothing was written");
    }
    let kept = Options::<u8>::new().pretty(false).codec(Other);
    assert_eq!(kept.resolved("a cell").unwrap().codec_name(), "Other");
}

/// A codec of another format that has a pretty form: `pretty` picks that form, in either
/// order, and never puts JSON (or anything else) in its place; migrations and ops refuse
/// a codec that does not describe itself, before anything is read or written.
#[test]
fn pretty_styles_any_format_that_has_a_pretty_form() {
    /// JSON with a tag in front, pretty or not: another format, as far as enduro knows.
    #[derive(Clone, Copy)]
    struct Tagged {
        pretty: bool,
        describes_itself: bool,
    }
    impl enduro::Codec for Tagged {
        fn name(&self) -> &'static str {
            "Tagged"
        }
        fn encode<V: serde::Serialize + ?Sized>(
            &self,
            value: &V,
            out: &mut dyn std::io::Write,
        ) -> Result<(), enduro::CodecError> {
            out.write_all(b"#")?;
            let json = if self.pretty {
                Json::pretty()
            } else {
                Json::compact()
            };
            json.encode(value, out)
        }
        fn decode<V: serde::de::DeserializeOwned>(
            &self,
            bytes: &[u8],
        ) -> Result<V, enduro::CodecError> {
            let json = bytes.strip_prefix(b"#").ok_or("no tag")?;
            Json::compact().decode(json)
        }
        fn styled(&self, pretty: bool) -> Option<Self> {
            Some(Tagged { pretty, ..*self })
        }
        fn is_self_describing(&self) -> bool {
            self.describes_itself
        }
    }
    let tagged = Tagged {
        pretty: false,
        describes_itself: true,
    };
    for options in [
        Options::new().pretty(true).codec(tagged),
        Options::new().codec(tagged).pretty(true),
    ] {
        assert_eq!(behaviour(options).0, b"#[\n  10\n]\n");
    }
    let pretty = Tagged {
        pretty: true,
        ..tagged
    };
    assert_eq!(
        behaviour(Options::new().codec(pretty).pretty(false)).0,
        b"#[10]"
    );

    let opaque = Tagged {
        pretty: false,
        describes_itself: false,
    };
    let migrations = || enduro::Migrations::new().step(Ok::<_, String>);
    for options in [
        Options::<u8>::new().codec(opaque).migrations(migrations()),
        Options::new().migrations(migrations()).codec(opaque),
    ] {
        let store = std::sync::Arc::new(MemStore::holding(b"#1".to_vec()));
        let err = Atom::open(store.clone(), 1u8, options).unwrap_err();
        assert!(
            err.to_string().contains("does not describe itself"),
            "{err}"
        );
        assert_eq!(store.load().unwrap().unwrap().bytes, b"#1");
    }
    // Without migrations or ops, such a codec is fine.
    let atom = Atom::open(MemStore::new(), 1u8, Options::new().codec(opaque)).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
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
