//! The serializer half of the adapter: passes every call through to the real serializer,
//! checking it first, and wraps what goes deeper so that it is checked in turn.
//!
//! Written to keep stack frames small in debug builds too (no `?` on the way down, the
//! position passed by reference): the frames here are on the recursion of every value.

use std::fmt::Display;

use serde::ser::{Serialize, Serializer};

use super::compound::{Compound, VariantCompound};
use super::path::{Node, Step};
use super::{At, Nulls, RoundTrip, refusal};

/// The serializer a value sees: the real one, and where the value is.
pub(super) struct Guard<'p, S> {
    pub(super) inner: S,
    pub(super) at: &'p At<'p>,
}

impl<'p, S: Serializer> Serializer for Guard<'p, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'p, S::SerializeSeq>;
    type SerializeTuple = Compound<'p, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'p, S::SerializeTupleStruct>;
    type SerializeTupleVariant = VariantCompound<'p, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'p, S::SerializeMap>;
    type SerializeStruct = Compound<'p, S::SerializeStruct>;
    type SerializeStructVariant = VariantCompound<'p, S::SerializeStructVariant>;

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a bool")?;
        self.inner.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        if self.at.rules.no_wide_ints {
            return Err(refusal::wide_int(v, self.at.path, self.at.rules));
        }
        if self.at.rules.i64_only && i64::try_from(v).is_err() {
            return Err(refusal::beyond_i64(v, self.at.path, self.at.rules));
        }
        if let Some(refused) = self.at.too_deep(self.at.rules.costs.wide_int) {
            return Err(refused);
        }
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        if self.at.rules.i64_only && i64::try_from(v).is_err() {
            return Err(refusal::beyond_i64(v, self.at.path, self.at.rules));
        }
        self.inner.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        if self.at.rules.no_wide_ints {
            return Err(refusal::wide_int(v, self.at.path, self.at.rules));
        }
        if self.at.rules.i64_only && i64::try_from(v).is_err() {
            return Err(refusal::beyond_i64(v, self.at.path, self.at.rules));
        }
        if let Some(refused) = self.at.too_deep(self.at.rules.costs.wide_int) {
            return Err(refused);
        }
        self.at.leaf::<S::Error>("a number")?;
        self.inner.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        if v.is_finite() || !self.at.rules.finite_floats {
            self.inner.serialize_f32(v)
        } else {
            Err(refusal::non_finite(v, self.at.path))
        }
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a number")?;
        if v.is_finite() || !self.at.rules.finite_floats {
            self.inner.serialize_f64(v)
        } else {
            Err(refusal::non_finite(v, self.at.path))
        }
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a char")?;
        self.inner.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a string")?;
        self.inner.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        // JSON writes bytes as an array of numbers: one level; most formats, none.
        match self
            .at
            .open(self.at.rules.costs.bytes, "a byte string", false)
        {
            Some(refused) => Err(refused),
            None => self.inner.serialize_bytes(v),
        }
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.at.null::<S::Error>(Nulls::NONE)?;
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        match self.at.wrap(true) {
            Ok(at) => self.inner.serialize_some(&RoundTrip { value, at }),
            Err(refused) => Err(refused),
        }
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.at.null::<S::Error>(Nulls::UNIT)?;
        self.inner.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.at.null::<S::Error>(Nulls::UNIT_STRUCT)?;
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        if let Some(refused) = self.at.too_deep(self.at.rules.costs.unit_variant) {
            return Err(refused);
        }
        self.at.leaf::<S::Error>("a unit variant")?;
        self.inner.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // Written as its content: inside a `Some`, its content must not be null either.
        match self.at.wrap(self.at.in_some) {
            Ok(at) => self
                .inner
                .serialize_newtype_struct(name, &RoundTrip { value, at }),
            Err(refused) => Err(refused),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let cost = self.at.rules.costs.newtype_variant;
        if let Some(refused) = self.at.open(cost, "an enum variant with data", true) {
            return Err(refused);
        }
        let node = Node {
            parent: self.at.path,
            step: Step::Variant(variant),
        };
        let at = self.at.inside(&node, cost);
        self.inner
            .serialize_newtype_variant(name, index, variant, &RoundTrip { value, at })
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        if let Some(refused) = self
            .at
            .open(self.at.rules.costs.compound, "a sequence", false)
        {
            return Err(refused);
        }
        let inner = self.inner.serialize_seq(len)?;
        Ok(Compound::new(inner, self.at))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        if let Some(refused) = self.at.open(self.at.rules.costs.compound, "a tuple", false) {
            return Err(refused);
        }
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Compound::new(inner, self.at))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        if let Some(refused) = self
            .at
            .open(self.at.rules.costs.compound, "a tuple struct", false)
        {
            return Err(refused);
        }
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound::new(inner, self.at))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        if let Some(refused) = self.at.open(
            self.at.rules.costs.variant,
            "an enum variant with data",
            true,
        ) {
            return Err(refused);
        }
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(VariantCompound::new(inner, self.at, variant))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        if let Some(refused) = self.at.open(self.at.rules.costs.compound, "a map", true) {
            return Err(refused);
        }
        let inner = self.inner.serialize_map(len)?;
        Ok(Compound::new(inner, self.at))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        if let Some(refused) = self.at.open(self.at.rules.costs.compound, "a struct", true) {
            return Err(refused);
        }
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Compound::new(inner, self.at))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        if let Some(refused) = self.at.open(
            self.at.rules.costs.variant,
            "an enum variant with data",
            true,
        ) {
            return Err(refused);
        }
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(VariantCompound::new(inner, self.at, variant))
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.at.leaf::<S::Error>("a string")?;
        self.inner.collect_str(value)
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}
