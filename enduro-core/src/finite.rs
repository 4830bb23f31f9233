//! A serializer adapter that refuses non-finite floats, naming where they are.
//!
//! JSON has no NaN or infinity; serde_json writes them as `null`, which then fails to read
//! back as a float (or reads back as something else). [`Finite`] wraps a value so that
//! serializing it through any serializer fails on such a float instead, with the path to
//! it (`.prices[3]`). It adds one branch per float and allocates nothing unless it fails.

use std::fmt::Display;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// One step of the path from the root value to the current one: a linked list on the stack.
#[derive(Clone, Copy)]
struct Node<'p> {
    parent: Option<&'p Node<'p>>,
    step: Step,
}

#[derive(Clone, Copy)]
enum Step {
    Field(&'static str),
    Index(usize),
    Entry(usize),
    Variant(&'static str),
}

fn render(path: Option<&Node<'_>>) -> String {
    let mut steps = Vec::new();
    let mut at = path;
    while let Some(node) = at {
        steps.push(node.step);
        at = node.parent;
    }
    if steps.is_empty() {
        return "the value itself".to_owned();
    }
    let mut out = String::new();
    for step in steps.iter().rev() {
        match step {
            Step::Field(name) => out.push_str(&format!(".{name}")),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Entry(i) => out.push_str(&format!("{{value of entry #{i}}}")),
            Step::Variant(name) => out.push_str(&format!("::{name}")),
        }
    }
    out
}

/// Wraps a value so that it serializes the same, but fails on NaN and infinite floats.
pub(crate) struct Finite<'a, 'p, T: ?Sized> {
    value: &'a T,
    path: Option<&'p Node<'p>>,
}

impl<'a, T: ?Sized> Finite<'a, 'static, T> {
    pub(crate) fn new(value: &'a T) -> Self {
        Finite { value, path: None }
    }
}

impl<T: Serialize + ?Sized> Serialize for Finite<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Guard {
            inner: serializer,
            path: self.path,
        })
    }
}

fn child<'a, 'p, T: ?Sized>(value: &'a T, path: &'p Node<'p>) -> Finite<'a, 'p, T> {
    Finite {
        value,
        path: Some(path),
    }
}

fn non_finite<E: ser::Error>(value: impl Display, path: Option<&Node<'_>>) -> E {
    E::custom(format_args!(
        "the float {value} at {} cannot be stored: JSON has no NaN or infinity (it would be written as null and not read back)",
        render(path)
    ))
}

struct Guard<'p, S> {
    inner: S,
    path: Option<&'p Node<'p>>,
}

/// The compound serializers: the inner one, the path so far and a running position.
struct Compound<'p, S> {
    inner: S,
    path: Option<&'p Node<'p>>,
    position: usize,
}

fn compound<'p, C>(path: Option<&'p Node<'p>>, inner: C) -> Compound<'p, C> {
    Compound {
        inner,
        path,
        position: 0,
    }
}

impl<'p, S: Serializer> Serializer for Guard<'p, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'p, S::SerializeSeq>;
    type SerializeTuple = Compound<'p, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'p, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'p, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'p, S::SerializeMap>;
    type SerializeStruct = Compound<'p, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'p, S::SerializeStructVariant>;

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.inner.serialize_f32(v)
        } else {
            Err(non_finite(v, self.path))
        }
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.inner.serialize_f64(v)
        } else {
            Err(non_finite(v, self.path))
        }
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.inner.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Finite {
            value,
            path: self.path,
        })
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(
            name,
            &Finite {
                value,
                path: self.path,
            },
        )
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let node = Node {
            parent: self.path,
            step: Step::Variant(variant),
        };
        self.inner
            .serialize_newtype_variant(name, index, variant, &child(value, &node))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let path = self.path;
        let inner = self.inner.serialize_seq(len)?;
        Ok(compound(path, inner))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let path = self.path;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(compound(path, inner))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let path = self.path;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(compound(path, inner))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let path = self.path;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(compound(path, inner))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let path = self.path;
        let inner = self.inner.serialize_map(len)?;
        Ok(compound(path, inner))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let path = self.path;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(compound(path, inner))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let path = self.path;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(compound(path, inner))
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<S> Compound<'_, S> {
    fn next(&mut self, step: fn(usize) -> Step) -> Step {
        let at = self.position;
        self.position += 1;
        step(at)
    }
}

/// Serializes one element of a sequence-like compound under an index step.
macro_rules! indexed {
    ($trait:ident, $method:ident) => {
        impl<S: $trait> $trait for Compound<'_, S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                let node = Node {
                    parent: self.path,
                    step: self.next(Step::Index),
                };
                self.inner.$method(&child(value, &node))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    };
}

indexed!(SerializeSeq, serialize_element);
indexed!(SerializeTuple, serialize_element);
indexed!(SerializeTupleStruct, serialize_field);
indexed!(SerializeTupleVariant, serialize_field);

/// Serializes one named field of a struct-like compound under a field step.
macro_rules! named {
    ($trait:ident) => {
        impl<S: $trait> $trait for Compound<'_, S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), S::Error> {
                let node = Node {
                    parent: self.path,
                    step: Step::Field(key),
                };
                self.inner.serialize_field(key, &child(value, &node))
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                self.inner.skip_field(key)
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    };
}

named!(SerializeStruct);
named!(SerializeStructVariant);

impl<S: SerializeMap> SerializeMap for Compound<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        let node = Node {
            parent: self.path,
            step: Step::Entry(self.position),
        };
        self.inner.serialize_key(&child(key, &node))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let node = Node {
            parent: self.path,
            step: self.next(Step::Entry),
        };
        self.inner.serialize_value(&child(value, &node))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        let node = Node {
            parent: self.path,
            step: self.next(Step::Entry),
        };
        self.inner
            .serialize_entry(&child(key, &node), &child(value, &node))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Price {
        name: String,
        values: Vec<f64>,
    }

    fn encode<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Finite::new(value))
    }

    #[test]
    fn finite_values_serialize_unchanged() {
        let mut map = BTreeMap::new();
        map.insert(3, Some(1.5f32));
        let value = (vec![1.0, -2.5], map, "x", Some(()), [1u8, 2]);
        assert_eq!(
            encode(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn nan_is_refused_with_its_path() {
        let value = vec![Price {
            name: "a".into(),
            values: vec![1.0, f64::NAN],
        }];
        let err = encode(&value).unwrap_err().to_string();
        assert!(err.contains("NaN at [0].values[1]"), "{err}");
    }

    #[test]
    fn infinity_in_map_and_option_is_refused() {
        let mut map = BTreeMap::new();
        map.insert("k", Some(f32::INFINITY));
        let err = encode(&map).unwrap_err().to_string();
        assert!(err.contains("inf at {value of entry #0}"), "{err}");
        let err = encode(&f64::NEG_INFINITY).unwrap_err().to_string();
        assert!(err.contains("the value itself"), "{err}");
    }
}
