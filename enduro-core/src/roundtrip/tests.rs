//! The adapter's refusals, one kind at a time, with the paths their messages name.

use super::*;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::lazy_deep::{Maps, MixedSome, Newtypes, Seqs, Somes, Variants};

fn adapter<T: Serialize + ?Sized>(value: &T) -> RoundTrip<'_, 'static, T> {
    RoundTrip::new(value)
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(&adapter(value))
}

fn encode_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&adapter(value))
}

/// The message of the refusal of `value`, checked to be the same compact and pretty.
fn refusal<T: Serialize + ?Sized>(value: &T) -> String {
    match (encode(value), encode_pretty(value)) {
        (Err(err), Err(pretty)) => {
            assert_eq!(err.to_string(), pretty.to_string());
            err.to_string()
        }
        (compact, pretty) => panic!(
            "refused compact: {}, pretty: {}",
            compact.is_err(),
            pretty.is_err()
        ),
    }
}

/// Encodes `value` through the adapter, checks it is exactly what serde_json writes, and
/// that it reads back as itself.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = encode(value).unwrap();
    assert_eq!(text, serde_json::to_string(value).unwrap());
    assert_eq!(
        encode_pretty(value).unwrap(),
        serde_json::to_string_pretty(value).unwrap()
    );
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value);
}

/// The deepest nesting of brackets in `json` (it holds no strings with brackets).
fn brackets(json: &str) -> usize {
    let (mut depth, mut deepest) = (0, 0);
    for c in json.bytes() {
        match c {
            b'[' | b'{' => {
                depth += 1;
                deepest = usize::max(deepest, depth);
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    deepest
}

#[derive(Serialize)]
struct Price {
    name: String,
    values: Vec<f64>,
}

#[test]
fn accepted_values_serialize_exactly_as_serde_json_does() {
    let mut map = BTreeMap::new();
    map.insert(3, Some(1.5f32));
    let value = (vec![1.0, -2.5], map, "x", Some(7u8), [1u8, 2], vec![()]);
    assert_eq!(
        encode(&value).unwrap(),
        serde_json::to_string(&value).unwrap()
    );
    round_trip(&Shape::Tuple(
        Box::new(Shape::Struct {
            inner: Box::new(Shape::Leaf),
        }),
        5,
    ));
    round_trip(&Some(Some(1u8)));
    round_trip(&Some(vec![()]));
    round_trip(&json!({"a": [1, null, {"b": []}], "c": {}}));
}

#[test]
fn nan_is_refused_with_its_path() {
    let value = vec![Price {
        name: "a".into(),
        values: vec![1.0, f64::NAN],
    }];
    let err = refusal(&value);
    assert!(err.contains("NaN at [0].values[1]"), "{err}");
}

#[test]
fn infinity_in_map_and_option_is_refused() {
    let mut map = BTreeMap::new();
    map.insert("k", Some(f32::INFINITY));
    let err = refusal(&map);
    assert!(err.contains("inf at {value of entry #0}"), "{err}");
    let err = refusal(&f64::NEG_INFINITY);
    assert!(err.contains("the value itself"), "{err}");
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Leaf,
    Newtype(Box<Shape>),
    Tuple(Box<Shape>, u8),
    Struct { inner: Box<Shape> },
}

#[test]
fn paths_name_the_variants_of_tuple_and_struct_variants() {
    #[derive(Serialize)]
    enum Reading {
        Pair(f64, f64),
        Named { at: u8, value: f64 },
    }
    let err = refusal(&vec![Reading::Pair(1.0, f64::NAN)]);
    assert!(err.contains("NaN at [0]::Pair[1]"), "{err}");
    let err = refusal(&vec![Reading::Named {
        at: 1,
        value: f64::NAN,
    }]);
    assert!(err.contains("NaN at [0]::Named.value"), "{err}");
}

/// `levels` levels of one shape of nesting around `leaf`, and the JSON levels they make.
fn nest(levels: usize, shape: &str) -> (Value, usize) {
    let mut value = json!(1);
    for _ in 0..levels {
        value = match shape {
            "array" => json!([value]),
            "object" => json!({ "k": value }),
            _ => unreachable!(),
        };
    }
    let brackets = brackets(&serde_json::to_string(&value).unwrap());
    (value, brackets)
}

fn shape(levels: usize, wrap: fn(Shape) -> Shape) -> Shape {
    (0..levels).fold(Shape::Leaf, |inner, _| wrap(inner))
}

/// The deepest value of each kind that serde_json reads back is accepted (and does read
/// back as itself); one level more is refused, and plain serde_json output of it would
/// indeed not read back.
#[test]
fn nesting_is_refused_exactly_where_serde_json_stops_reading_back() {
    for kind in ["array", "object"] {
        let (deepest, levels) = nest(127, kind);
        assert_eq!(levels, 127);
        round_trip(&deepest);
        let (deeper, levels) = nest(128, kind);
        assert_eq!(levels, 128);
        let plain = serde_json::to_string(&deeper).unwrap();
        assert!(serde_json::from_str::<Value>(&plain).is_err());
        let err = refusal(&deeper);
        assert!(err.contains("128 levels"), "{err}");
        assert!(err.contains("at most 127"), "{err}");
    }
    // An empty array or object is a level too.
    let (mut deepest, _) = nest(126, "array");
    *deepest.pointer_mut(&"/0".repeat(126)).unwrap() = json!([]);
    round_trip(&deepest);
    let (mut deeper, _) = nest(127, "array");
    *deeper.pointer_mut(&"/0".repeat(127)).unwrap() = json!({});
    assert!(refusal(&deeper).contains("128 levels"));

    type Wrap = fn(Shape) -> Shape;
    let kinds: [(Wrap, usize); 3] = [
        (|s| Shape::Newtype(Box::new(s)), 1),
        (|s| Shape::Tuple(Box::new(s), 0), 2),
        (|s| Shape::Struct { inner: Box::new(s) }, 2),
    ];
    for (wrap, per_variant) in kinds {
        let fits = 127 / per_variant;
        let deepest = shape(fits, wrap);
        assert_eq!(
            brackets(&serde_json::to_string(&deepest).unwrap()),
            fits * per_variant
        );
        round_trip(&deepest);
        let text = encode(&deepest).unwrap();
        serde_json::from_str::<Value>(&text).unwrap();
        let deeper = shape(fits + 1, wrap);
        let plain = serde_json::to_string(&deeper).unwrap();
        assert!(serde_json::from_str::<Shape>(&plain).is_err());
        assert!(serde_json::from_str::<Value>(&plain).is_err());
        let err = refusal(&deeper);
        assert!(err.contains("at most 127"), "{err}");
    }
}

#[test]
fn maps_and_structs_count_one_level_each() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Node {
        next: Option<Box<Node>>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Map(BTreeMap<String, Map>);
    let list = |n| {
        (0..n).fold(Node { next: None }, |n, _| Node {
            next: Some(Box::new(n)),
        })
    };
    let maps = |n| {
        (0..n).fold(Map(BTreeMap::new()), |m, _| {
            Map(BTreeMap::from([("k".to_string(), m)]))
        })
    };
    round_trip(&list(126)); // 127 objects
    round_trip(&maps(126));
    let err = refusal(&list(127));
    assert!(err.contains(".next.next"), "{err}");
    assert!(err.contains("128 levels"), "{err}");
    let err = refusal(&maps(127));
    assert!(err.contains("{value of entry #0}"), "{err}");
}

#[test]
fn a_byte_string_is_a_level_too() {
    /// Bytes (written as an array of numbers) inside `self.0` arrays.
    struct BytesIn(usize);
    impl Serialize for BytesIn {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let Some(depth) = self.0.checked_sub(1) else {
                return s.serialize_bytes(&[1, 2]);
            };
            let mut seq = s.serialize_seq(Some(1))?;
            seq.serialize_element(&BytesIn(depth))?;
            seq.end()
        }
    }
    let deepest = encode(&BytesIn(126)).unwrap();
    assert_eq!(brackets(&deepest), 127);
    serde_json::from_str::<Value>(&deepest).unwrap();
    let err = refusal(&BytesIn(127));
    assert!(err.contains("128 levels"), "{err}");
}

#[test]
fn the_path_to_a_too_deep_value_names_where_it_starts() {
    #[derive(Serialize)]
    struct Holder {
        deep: Shape,
    }
    let holder = Holder {
        deep: shape(200, |s| Shape::Newtype(Box::new(s))),
    };
    let err = refusal(&(1, holder));
    assert!(err.contains("at [1].deep::Newtype::Newtype"), "{err}");
    assert!(err.len() < 1000, "the path is abbreviated: {err}");
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Wrapper<T>(T);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Record {
    id: u8,
    note: Option<Option<String>>,
}

#[derive(Serialize)]
struct Doc {
    x: Vec<Option<Value>>,
}

#[test]
fn some_of_what_json_writes_as_null_is_refused_with_its_path() {
    let cases: Vec<(String, &str)> = vec![
        (refusal(&Some(None::<u8>)), "the value itself"),
        (refusal(&Some(())), "the value itself"),
        (refusal(&Some(Unit)), "the value itself"),
        (refusal(&Some(Value::Null)), "the value itself"),
        (refusal(&Some(Wrapper(()))), "the value itself"),
        (refusal(&Some(Some(None::<u8>))), "the value itself"),
        (refusal(&vec![None, Some(())]), "at [1]"),
        (
            refusal(&vec![Record {
                id: 1,
                note: Some(None),
            }]),
            "at [0].note",
        ),
        (
            refusal(&BTreeMap::from([("a", None), ("b", Some(None::<u8>))])),
            "at {value of entry #1}",
        ),
        (
            refusal(&Doc {
                x: vec![Some(json!(1)), Some(Value::Null)],
            }),
            "at .x[1]",
        ),
        (refusal(&Wrapper(Some(()))), "the value itself"),
    ];
    for (err, path) in cases {
        assert!(err.contains(path), "names {path}: {err}");
        assert!(err.contains("read back as None"), "{err}");
    }
}

#[test]
fn some_of_what_json_writes_as_something_else_is_accepted() {
    round_trip(&Some(Some(3u8)));
    round_trip(&Some(vec![()]));
    round_trip(&Some(Shape::Leaf));
    round_trip(&vec![None, Some(Some(2u8))]);
    round_trip(&Some(Wrapper(Some(1u8))));
    round_trip(&Some(json!([null])));
    round_trip(&Record {
        id: 2,
        note: Some(Some("n".into())),
    });
    round_trip(&Record { id: 2, note: None });
    round_trip(&Some(BTreeMap::from([("k".to_string(), ())])));
}

#[test]
fn chains_of_some_and_newtypes_are_bounded() {
    assert_eq!(encode(&Somes(128)).unwrap(), "0");
    assert_eq!(encode(&Newtypes(128)).unwrap(), "0");
    for err in [refusal(&Somes(129)), refusal(&Newtypes(129))] {
        assert!(
            err.contains("inside 129 `Some`s and newtype structs"),
            "{err}"
        );
        assert!(err.contains("at most 128"), "{err}");
    }
    // They count along the whole path, not only in a row.
    assert_eq!(encode(&Some(vec![Somes(127)])).unwrap(), "[0]");
    let err = refusal(&Some(vec![Somes(128)]));
    assert!(err.contains("the value at [0] is inside 129"), "{err}");
}

#[test]
fn a_hundred_thousand_levels_are_refused_on_a_small_stack() {
    fn refused<T: Serialize>(value: T) -> bool {
        encode(&value).is_err() && encode_pretty(&value).is_err()
    }
    let levels = 100_000;
    let refusals = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            [
                refused(Variants(levels)),
                refused(Seqs(levels)),
                refused(Maps(levels)),
                refused(Newtypes(levels)),
                refused(Somes(levels)),
                refused(MixedSome(levels)),
            ]
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(refusals, [true; 6]);
}
