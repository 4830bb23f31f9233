//! Each format: a representative value reads back as itself, the bytes are really that
//! format, each refusal names its path, the deepest accepted value reads back and one level
//! more is refused, and no bytes overflow the stack when read.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::formats::{Cbor, MessagePack, Postcard, Ron, Toml};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Unit,
    Newtype(u8),
    Tuple(i32, String),
    Struct { x: f64, y: Option<bool> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Inner {
    name: String,
    kinds: Vec<Kind>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Doc {
    title: String,
    count: u64,
    signed: i64,
    ratio: f64,
    small: f32,
    flag: bool,
    letter: char,
    missing: Option<u32>,
    present: Option<String>,
    inner: Inner,
    kind: Kind,
    unit: Kind,
    kinds: Vec<Kind>,
    scores: BTreeMap<String, Vec<u16>>,
    nested: Vec<Vec<i8>>,
    #[serde(with = "bytes")]
    blob: Vec<u8>,
}

/// A byte string (serialize_bytes), without the serde_bytes crate.
mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn doc() -> Doc {
    let kinds = vec![
        Kind::Unit,
        Kind::Newtype(7),
        Kind::Tuple(-3, "ü".into()),
        Kind::Struct {
            x: 0.1,
            y: Some(true),
        },
    ];
    Doc {
        title: "Grüße, 世界 🎉 \"quoted\"\n".into(),
        count: u64::MAX,
        signed: i64::MIN,
        ratio: -0.0,
        small: 1.5e-3,
        flag: true,
        letter: 'λ',
        missing: None,
        present: Some("here".into()),
        inner: Inner {
            name: "inner".into(),
            kinds: kinds.clone(),
        },
        kind: Kind::Tuple(1, "a".into()),
        unit: Kind::Unit,
        kinds,
        scores: BTreeMap::from([("ann".into(), vec![1, 2]), ("bob".into(), vec![])]),
        nested: vec![vec![1, -1], vec![]],
        blob: vec![0, 1, 254, 255],
    }
}

/// A map of one entry, with a `String` key (so that it deserializes as itself).
fn map<V>(key: &str, value: V) -> BTreeMap<String, V> {
    BTreeMap::from([(key.to_owned(), value)])
}

fn encode<C: Codec, T: Serialize + ?Sized>(codec: &C, value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    codec.encode(value, &mut out).unwrap();
    out
}

fn round_trip<C: Codec, T: Serialize + DeserializeOwned + PartialEq + Debug>(
    codec: &C,
    value: &T,
) -> Vec<u8> {
    let bytes = encode(codec, value);
    assert!(
        !codec.is_blank(&bytes),
        "{} wrote a blank value",
        codec.name()
    );
    let back: T = codec.decode(&bytes).unwrap();
    assert_eq!(&back, value, "{}", codec.name());
    bytes
}

/// The message of the refusal of `value`, which must mention `expected`.
fn refusal<C: Codec, T: Serialize + ?Sized>(codec: &C, value: &T, expected: &str) {
    let err = codec
        .encode(value, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains(expected), "{}: {err}", codec.name());
}

/// `depth` levels of `Vec`s.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Seqs(Vec<Seqs>);

fn seqs(depth: usize) -> Seqs {
    (1..depth).fold(Seqs(vec![]), |inner, _| Seqs(vec![inner]))
}

/// A chain of newtype variants.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Chain {
    End,
    Next(Box<Chain>),
}

fn chain(depth: usize) -> Chain {
    (0..depth).fold(Chain::End, |inner, _| Chain::Next(Box::new(inner)))
}

/// Runs `f` on a 512 KiB stack: a quarter of what Rust gives a spawned thread. (The
/// conformance kit's small-stack cases use 256 KiB, which JSON's bounds fit in a debug
/// build; measured, every other format's serializer overflows 256 KiB in a debug build
/// before reaching its bound, and none overflows 512 KiB.)
fn on_a_small_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

/// Values that do not read back in JSON but do in `codec`, with Some(None) and friends.
fn every_option_reads_back<C: Codec>(codec: &C) {
    round_trip(codec, &vec![Some(None::<u8>), Some(Some(1)), None]);
    round_trip(codec, &(Some(()), f64::NAN.is_nan(), f64::INFINITY));
    round_trip(
        codec,
        &BTreeMap::from([((1u8, 2u8), "tuple key".to_owned())]),
    );
    round_trip(codec, &(u128::MAX, i128::MIN));
}

// ---- TOML

#[test]
fn toml_round_trips_and_is_toml() {
    for codec in [Toml::compact(), Toml::pretty()] {
        let mut doc = doc();
        doc.count = i64::MAX as u64;
        let bytes = round_trip(&codec, &doc);
        let table: toml::Table = toml::from_str(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(table["title"].as_str(), Some("Grüße, 世界 🎉 \"quoted\"\n"));
        assert!(table["inner"].is_table());
        assert!(!table.contains_key("missing"), "None fields are left out");
        // NaN, infinities and 128-bit integers read back.
        round_trip(&codec, &map("nan", f64::INFINITY));
        round_trip(&codec, &map("a", (i128::from(i64::MIN), -f64::INFINITY)));
    }
    let mut out = Vec::new();
    Toml::pretty()
        .encode(&BTreeMap::from([("a", vec![1, 2])]), &mut out)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "a = [\n    1,\n    2,\n]\n"
    );
}

#[test]
fn toml_writes_an_empty_table_as_a_comment_not_as_a_blank() {
    let empty = BTreeMap::<String, u8>::new();
    let bytes = round_trip(&Toml::default(), &empty);
    assert_eq!(bytes, b"# an empty table\n");
    assert!(Toml::default().is_blank(b" \n\t"));
    assert!(!Toml::default().is_blank(b"# x"));
}

#[test]
fn toml_refusals_name_their_paths() {
    let toml = Toml::default();
    refusal(
        &toml,
        &map("n", u64::MAX),
        "the integer 18446744073709551615 at {value of entry #0}",
    );
    refusal(
        &toml,
        &map("n", (1, i128::MIN)),
        "at {value of entry #0}[1] cannot be stored: TOML integers",
    );
    refusal(
        &toml,
        &1u8,
        "the value itself is a number, and a TOML document must be a table",
    );
    refusal(&toml, &vec![1], "the value itself is a sequence");
    refusal(&toml, &Kind::Unit, "the value itself is a unit variant");
    refusal(&toml, &None::<Doc>, "the value itself is None");
    // None outside a struct field: in a map value, a sequence, a tuple.
    let nones = BTreeMap::from([("a", BTreeMap::from([("b", None::<u8>)]))]);
    refusal(
        &toml,
        &nones,
        "None at {value of entry #0}{value of entry #0} cannot be stored",
    );
    let seq = BTreeMap::from([("a", (1, vec![Some(1u8), None]))]);
    refusal(&toml, &seq, "None at {value of entry #0}[1][1]");
    // Some(None) as a field: left out, read back as None.
    #[derive(Serialize)]
    struct F {
        f: Option<Option<u8>>,
    }
    refusal(
        &toml,
        &F { f: Some(None) },
        "the value at .f is `Some` of something TOML writes as nothing",
    );
    // (), unit structs, Value::Null anywhere.
    refusal(
        &toml,
        &BTreeMap::from([("u", ())]),
        "() (or serde_json::Value::Null) at {value of entry #0}",
    );
    refusal(
        &toml,
        &serde_json::json!({"a": [1, null]}),
        "at {value of entry #0}[1]",
    );
    // Keys.
    let keys = BTreeMap::from([("t", BTreeMap::from([((1, 2), 3)]))]);
    refusal(
        &toml,
        &keys,
        "the key at {value of entry #0}{value of entry #0} is a tuple",
    );
    let keys = BTreeMap::from([(Some(1), 3)]);
    refusal(&toml, &keys, "the key at {value of entry #0} is an Option");
    // Scalar keys are fine.
    round_trip(&toml, &BTreeMap::from([(1u32, 'a')]));
    round_trip(&toml, &BTreeMap::from([(true, 1)]));
    // A None field is fine, also inside tables in arrays.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Row {
        a: Option<u8>,
    }
    round_trip(
        &toml,
        &map("rows", vec![Row { a: None }, Row { a: Some(1) }]),
    );
}

#[test]
fn toml_nesting_stops_where_its_parser_does() {
    for codec in [Toml::compact(), Toml::pretty()] {
        // The document's table plus 80 levels of arrays: 81 levels.
        let ok = map("v", seqs(80));
        round_trip(&codec, &ok);
        refusal(&codec, &BTreeMap::from([("v", seqs(81))]), "82 levels");
        let ok = map("v", chain(80));
        round_trip(&codec, &ok);
        refusal(&codec, &BTreeMap::from([("v", chain(81))]), "at most 81");
    }
    // Deeper by hand: a clean error.
    let deep = format!("v = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = Toml::default()
        .decode::<toml::Table>(deep.as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("recursion"), "{err}");
}

// ---- RON

#[test]
fn ron_round_trips_and_is_ron() {
    for codec in [Ron::compact(), Ron::pretty()] {
        let bytes = round_trip(&codec, &doc());
        let value: ron::Value = ron::de::from_bytes(&bytes).unwrap();
        assert!(matches!(value, ron::Value::Map(_)), "{value:?}");
        round_trip(&codec, &vec![Some(None::<u8>), Some(Some(1)), None]);
        round_trip(&codec, &(Some(()), f64::NAN.is_nan(), f64::INFINITY, ()));
        round_trip(
            &codec,
            &BTreeMap::from([((1u8, 2u8), "tuple key".to_owned())]),
        );
    }
    let text = String::from_utf8(encode(&Ron::default(), &doc().inner)).unwrap();
    assert!(
        text.starts_with("(name:\"inner\",kinds:[Unit,Newtype(7)"),
        "{text}"
    );
    assert!(Ron::default().is_blank(b"\n "));
}

#[test]
fn ron_refusals_name_their_paths() {
    refusal(
        &Ron::default(),
        &vec![(0u8, 1u128)],
        "the 128-bit integer 1 at [0][1]",
    );
    refusal(
        &Ron::default(),
        &(i128::MIN,),
        "at [0] cannot be stored: RON",
    );
}

#[test]
fn ron_nesting_stops_where_its_reader_does() {
    for codec in [Ron::compact(), Ron::pretty()] {
        round_trip(&codec, &seqs(42));
        refusal(&codec, &seqs(43), "at most 128");
        round_trip(&codec, &chain(63));
        refusal(&codec, &chain(64), "at most 128");
        // Plain Vecs: two levels each.
        let vecs = (1..64).fold(serde_json::json!([]), |v, _| serde_json::json!([v]));
        round_trip(&codec, &vecs);
        refusal(&codec, &serde_json::json!([vecs]), "at most 128");
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = Ron::default()
        .decode::<serde_json::Value>(deep.as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");
}

// ---- CBOR

#[test]
fn cbor_round_trips_and_is_cbor() {
    let bytes = round_trip(&Cbor, &doc());
    let value: ciborium::Value = ciborium::from_reader(&bytes[..]).unwrap();
    let map = value.as_map().unwrap();
    assert_eq!(map[0].0.as_text(), Some("title"));
    assert_eq!(bytes[0] >> 5, 5, "a map (major type 5)");
    let blob = map
        .iter()
        .find(|(k, _)| k.as_text() == Some("blob"))
        .unwrap();
    assert!(blob.1.is_bytes(), "a byte string stays a byte string");
    round_trip(
        &Cbor,
        &(f64::NAN.is_nan(), f64::INFINITY, (u128::MAX, i128::MIN)),
    );
    round_trip(
        &Cbor,
        &BTreeMap::from([((1u8, 2u8), "tuple key".to_owned())]),
    );
    round_trip(&Cbor, &vec![Some(Some(1u8)), None]);
    round_trip(&Cbor, &serde_json::json!({"a": [1, null, {"b": 2.5}]}));
    assert!(Cbor.is_blank(b""));
    assert!(!Cbor.is_blank(b" "));
    let err = Cbor.decode::<u8>(&[0x01, 0x02]).unwrap_err();
    assert!(err.to_string().contains("1 bytes follow"), "{err}");
}

#[test]
fn cbor_refusals_name_their_paths() {
    refusal(
        &Cbor,
        &vec![Some(Some(1u8)), Some(None)],
        "the value at [1] is `Some` of something CBOR writes as null",
    );
    refusal(&Cbor, &(1, Some(())), "at [1]");
    #[derive(Serialize)]
    struct Unit;
    refusal(
        &Cbor,
        &BTreeMap::from([("k", Some(Unit))]),
        "at {value of entry #0}",
    );
    refusal(
        &Cbor,
        &Some(serde_json::Value::Null),
        "the value itself is `Some`",
    );
}

#[test]
fn cbor_nesting_stops_where_ciborium_does() {
    round_trip(&Cbor, &seqs(256));
    refusal(&Cbor, &seqs(257), "at most 256");
    // Every enum value is a level to ciborium, the unit variant at the end too.
    round_trip(&Cbor, &chain(255));
    refusal(&Cbor, &chain(256), "257 levels");
    let mut deep = vec![0x81u8; 100_000];
    deep.push(0x80);
    let err = Cbor.decode::<serde_json::Value>(&deep).unwrap_err();
    assert!(err.to_string().contains("RecursionLimitExceeded"), "{err}");
}

// ---- MessagePack

#[test]
fn msgpack_round_trips_and_is_msgpack_with_field_names() {
    let bytes = round_trip(&MessagePack, &doc());
    assert_eq!(bytes[..3], [0xde, 0, 16], "a map of 16 fields");
    assert_eq!(
        &bytes[3..9],
        b"\xa5title",
        "the first key is the field's name"
    );
    // Self-describing: it reads back as JSON data (which has no byte strings).
    let bytes = encode(&MessagePack, &doc().inner);
    let value: serde_json::Value = MessagePack.decode(&bytes).unwrap();
    assert_eq!(value["kinds"][2]["Tuple"][1], "ü");
    round_trip(
        &MessagePack,
        &(f64::NAN.is_nan(), f64::INFINITY, (u128::MAX, i128::MIN)),
    );
    round_trip(
        &MessagePack,
        &BTreeMap::from([((1u8, 2u8), "tuple key".to_owned())]),
    );
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Unit;
    round_trip(&MessagePack, &Some(Unit));
    assert!(MessagePack.is_blank(b""));
}

#[test]
fn msgpack_refusals_name_their_paths() {
    refusal(
        &MessagePack,
        &vec![Some(None::<u8>)],
        "the value at [0] is `Some` of something MessagePack writes as nil",
    );
    refusal(
        &MessagePack,
        &BTreeMap::from([(1, Some(()))]),
        "at {value of entry #0}",
    );
}

#[test]
fn msgpack_nesting_is_bounded_both_ways() {
    round_trip(&MessagePack, &seqs(256));
    refusal(&MessagePack, &seqs(257), "at most 256");
    round_trip(&MessagePack, &chain(256));
    refusal(&MessagePack, &chain(257), "at most 256");
    // rmp-serde alone does not count newtype variants: 100,000 of them, by hand.
    let mut deep = b"\x81\xa4Next".repeat(100_000);
    deep.extend_from_slice(b"\xa3End");
    let err = MessagePack.decode::<Chain>(&deep).unwrap_err();
    assert!(err.to_string().contains("deeper than 256 levels"), "{err}");
}

// ---- postcard

#[test]
fn postcard_round_trips_and_is_postcard() {
    let bytes = round_trip(&Postcard, &doc());
    let expected = postcard::to_stdvec(&doc()).unwrap();
    assert_eq!(bytes, expected, "the bytes postcard itself writes");
    assert_eq!(
        encode(&Postcard, &(1u8, Some(300u16))),
        [0x01, 0x01, 0xac, 0x02]
    );
    every_option_reads_back(&Postcard);
    assert!(!Postcard.is_self_describing());
    assert!(Postcard.is_blank(b""));
    let err = Postcard.decode::<u8>(&[0x01, 0x02]).unwrap_err();
    assert!(err.to_string().contains("1 bytes follow"), "{err}");
}

#[test]
fn postcard_refusals_name_their_paths() {
    #[derive(Serialize)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<u8>,
    }
    refusal(
        &Postcard,
        &BTreeMap::from([(1, Sparse { note: None })]),
        "`note` of the struct at {value of entry #0}",
    );
    refusal(
        &Postcard,
        &vec![(1u8, Some(Sparse { note: None }))],
        "`note` of the struct at [0][1]",
    );
}

#[test]
fn postcard_nesting_is_bounded_both_ways() {
    round_trip(&Postcard, &seqs(256));
    refusal(&Postcard, &seqs(257), "at most 256");
    round_trip(&Postcard, &chain(256));
    refusal(&Postcard, &chain(257), "at most 256");
    // postcard alone reads as deep as the bytes say: 100,000 levels, by hand.
    let deep = vec![0x01u8; 100_000];
    let err = Postcard.decode::<Seqs>(&deep).unwrap_err();
    assert!(
        err.to_string()
            .contains("more than 256 `Some`s and newtype structs"),
        "{err}"
    );
    let deep = vec![0x01u8; 100_000];
    let err = Postcard.decode::<Chain>(&deep).unwrap_err();
    assert!(err.to_string().contains("deeper than 256 levels"), "{err}");
    // Somes are bounded too.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Link(Option<Box<Link>>);
    let err = Postcard.decode::<Link>(&deep).unwrap_err();
    assert!(err.to_string().contains("256 `Some`s"), "{err}");
}

#[test]
fn names_and_styles() {
    assert_eq!(Toml::default().name(), "TOML");
    assert_eq!(Ron::default().name(), "RON");
    assert_eq!(Cbor.name(), "CBOR");
    assert_eq!(MessagePack.name(), "MessagePack");
    assert_eq!(Postcard.name(), "postcard");
    assert_eq!(Toml::compact().styled(true), Some(Toml::pretty()));
    assert_eq!(Ron::pretty().styled(false), Some(Ron::compact()));
    assert_eq!(Cbor.styled(true), None);
    assert_eq!(MessagePack.styled(false), None);
    assert_eq!(Postcard.styled(true), None);
    assert!(Cbor.is_self_describing() && MessagePack.is_self_describing());
}

#[test]
fn nan_reads_back_in_every_format_but_json() {
    fn nan<C: Codec>(codec: &C) {
        let bytes = encode(codec, &BTreeMap::from([("x".to_owned(), f64::NAN)]));
        let back: BTreeMap<String, f64> = codec.decode(&bytes).unwrap();
        assert!(back["x"].is_nan(), "{}", codec.name());
    }
    nan(&Toml::default());
    nan(&Ron::default());
    nan(&Cbor);
    nan(&MessagePack);
    nan(&Postcard);
}

#[test]
fn a_hundred_thousand_levels_are_refused_on_a_small_stack() {
    use crate::lazy_deep::{Maps, MixedSome, Newtypes, Seqs, Somes, Variants};
    fn refused<C: Codec + Send + Sync>(codec: &C) {
        let n = 100_000;
        let errors = on_a_small_stack(|| {
            [
                codec.encode(&map("v", Variants(n)), &mut Vec::new()),
                codec.encode(&map("v", Seqs(n)), &mut Vec::new()),
                codec.encode(&map("v", Maps(n)), &mut Vec::new()),
                codec.encode(&map("v", Newtypes(n)), &mut Vec::new()),
                codec.encode(&map("v", Somes(n)), &mut Vec::new()),
                codec.encode(&map("v", MixedSome(n)), &mut Vec::new()),
            ]
            .map(|result| result.map_err(|e| e.to_string()))
        });
        for err in errors {
            let err = err.unwrap_err();
            assert!(err.contains("at most"), "{}: {err}", codec.name());
        }
    }
    refused(&Toml::default());
    refused(&Toml::pretty());
    refused(&Ron::default());
    refused(&Ron::pretty());
    refused(&Cbor);
    refused(&MessagePack);
    refused(&Postcard);
}
