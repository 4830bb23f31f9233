//! The compound half of the adapter: sequences, tuples, maps, structs and variants, whose
//! elements, fields and entries are serialized one step further down the path.

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};

use super::path::{Node, Step};
use super::{At, RoundTrip, refusal};

/// A sequence, tuple, map or struct (one JSON level) being serialized.
pub(super) struct Compound<'p, S> {
    inner: S,
    /// Where the compound itself is; its contents are one level deeper.
    at: &'p At<'p>,
    position: usize,
}

impl<'p, S> Compound<'p, S> {
    pub(super) fn new(inner: S, at: &'p At<'p>) -> Self {
        Compound {
            inner,
            at,
            position: 0,
        }
    }
}

/// A tuple or struct variant (two JSON levels: `{"V":[…]}`) being serialized.
pub(super) struct VariantCompound<'p, S> {
    inner: S,
    /// Where the variant itself is; its contents are two levels deeper.
    at: &'p At<'p>,
    variant: &'static str,
    position: usize,
}

impl<'p, S> VariantCompound<'p, S> {
    pub(super) fn new(inner: S, at: &'p At<'p>, variant: &'static str) -> Self {
        VariantCompound {
            inner,
            at,
            variant,
            position: 0,
        }
    }
}

/// Binds `$at` to where a content of the compound at `$step` is, for `$serialize`. The
/// path nodes live on the caller's stack frame for as long as the content needs them.
macro_rules! inside {
    (Compound, $self:ident, $step:expr, |$at:ident| $serialize:expr) => {{
        let node = Node {
            parent: $self.at.path,
            step: $step,
        };
        let $at = $self.at.inside(&node, $self.at.rules.costs.compound);
        $serialize
    }};
    (VariantCompound, $self:ident, $step:expr, |$at:ident| $serialize:expr) => {{
        let variant = Node {
            parent: $self.at.path,
            step: Step::Variant($self.variant),
        };
        let node = Node {
            parent: Some(&variant),
            step: $step,
        };
        let $at = $self.at.inside(&node, $self.at.rules.costs.variant);
        $serialize
    }};
}

/// Serializes one element of a sequence-like compound under an index step.
macro_rules! indexed {
    ($type:ident, $trait:ident, $method:ident) => {
        impl<S: $trait> $trait for $type<'_, S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.position += 1;
                let step = Step::Index(self.position - 1);
                inside!($type, self, step, |at| self
                    .inner
                    .$method(&RoundTrip { value, at }))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    };
}

indexed!(Compound, SerializeSeq, serialize_element);
indexed!(Compound, SerializeTuple, serialize_element);
indexed!(Compound, SerializeTupleStruct, serialize_field);
indexed!(VariantCompound, SerializeTupleVariant, serialize_field);

/// Serializes one named field of a struct-like compound under a field step.
macro_rules! named {
    ($type:ident, $trait:ident) => {
        impl<S: $trait> $trait for $type<'_, S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), S::Error> {
                inside!($type, self, Step::Field(key), |at| {
                    let at = At {
                        in_field: true,
                        ..at
                    };
                    self.inner.serialize_field(key, &RoundTrip { value, at })
                })
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                if self.at.rules.all_fields {
                    return Err(refusal::skipped_field(self.at.path, key, self.at.rules));
                }
                self.inner.skip_field(key)
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    };
}

named!(Compound, SerializeStruct);
named!(VariantCompound, SerializeStructVariant);

impl<S: SerializeMap> SerializeMap for Compound<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        let step = Step::Entry(self.position);
        inside!(Compound, self, step, |at| {
            let at = At { in_key: true, ..at };
            self.inner.serialize_key(&RoundTrip { value: key, at })
        })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.position += 1;
        let step = Step::Entry(self.position - 1);
        inside!(Compound, self, step, |at| self
            .inner
            .serialize_value(&RoundTrip { value, at }))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.position += 1;
        let step = Step::Entry(self.position - 1);
        inside!(Compound, self, step, |at| {
            let key_at = At { in_key: true, ..at };
            self.inner.serialize_entry(
                &RoundTrip {
                    value: key,
                    at: key_at,
                },
                &RoundTrip { value, at },
            )
        })
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}
