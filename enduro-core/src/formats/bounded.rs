//! A deserializer adapter that bounds how deep any bytes can make decoding recurse, for
//! readers with no limit of their own (postcard) or with holes in theirs (rmp-serde does not
//! count enum variants: a chain of newtype variants recursed until the stack overflowed).
//!
//! [`Bounded`] passes every call through to the real deserializer and counts, as the data
//! is read, the levels (each sequence, tuple, map and struct one, an enum variant with data
//! one more) and the `Some`s and newtype structs on the way down, failing cleanly beyond
//! the bounds the encoder keeps to (see [`Rules`](crate::roundtrip::Rules)): whatever enduro
//! wrote reads back, and no bytes can overflow the stack.

use std::cell::Cell;
use std::fmt;

use crate::roundtrip::keep;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// How deep decoding is, and how deep it may go.
pub(super) struct Depth {
    levels: Cell<u16>,
    wrappers: Cell<u16>,
    max_levels: u16,
    max_wrappers: u16,
    format: &'static str,
}

impl Depth {
    /// A bound of `max_levels` levels and `max_wrappers` `Some`s and newtype structs.
    pub(super) fn new(format: &'static str, max_levels: u16, max_wrappers: u16) -> Self {
        Depth {
            levels: Cell::new(0),
            wrappers: Cell::new(0),
            max_levels,
            max_wrappers,
            format,
        }
    }

    /// One level more, until the returned guard drops; or the error beyond the bound.
    fn level<E: de::Error>(&self) -> Result<Leave<'_>, E> {
        let levels = self.levels.get() + 1;
        if levels > self.max_levels {
            return Err(kept(format!(
                "the data nests deeper than {} levels (sequences, maps, structs, enum variants with data), more than enduro writes as {} and more than it reads, to keep decoding from overflowing the stack",
                self.max_levels, self.format
            )));
        }
        self.levels.set(levels);
        Ok(Leave {
            depth: self,
            wrapper: false,
        })
    }

    /// One `Some` or newtype struct more, until the returned guard drops.
    fn wrapper<E: de::Error>(&self) -> Result<Leave<'_>, E> {
        let wrappers = self.wrappers.get();
        if wrappers >= self.max_wrappers {
            return Err(kept(format!(
                "the data has more than {} `Some`s and newtype structs on the way to a value, more than enduro writes as {} and more than it reads, to keep decoding from overflowing the stack",
                self.max_wrappers, self.format
            )));
        }
        self.wrappers.set(wrappers + 1);
        Ok(Leave {
            depth: self,
            wrapper: true,
        })
    }
}

/// The error of `message`, kept aside for readers whose errors drop it (postcard).
fn kept<E: de::Error>(message: String) -> E {
    let error = E::custom(&message);
    keep(message);
    error
}

/// Leaves a level or a wrapper when dropped (also when decoding fails or unwinds).
struct Leave<'d> {
    depth: &'d Depth,
    wrapper: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if self.wrapper {
            self.depth.wrappers.set(self.depth.wrappers.get() - 1);
        } else {
            self.depth.levels.set(self.depth.levels.get() - 1);
        }
    }
}

/// The deserializer a type sees: the real one, and the depth so far.
pub(super) struct Bounded<'d, D> {
    pub(super) inner: D,
    pub(super) depth: &'d Depth,
}

/// The visitor the real deserializer sees: the type's, and the depth so far.
struct Guarded<'d, V> {
    inner: V,
    depth: &'d Depth,
}

/// A seed for one element, key, value or variant, deserialized through [`Bounded`].
struct Seed<'d, S> {
    inner: S,
    depth: &'d Depth,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Bounded {
            inner: deserializer,
            depth: self.depth,
        })
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Guarded { inner: visitor, depth: self.depth })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map(); deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guarded<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char); visit_str(&str);
        visit_borrowed_str(&'de str); visit_string(String); visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let _leave = self.depth.wrapper::<D::Error>()?;
        self.inner.visit_some(Bounded {
            inner: deserializer,
            depth: self.depth,
        })
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let _leave = self.depth.wrapper::<D::Error>()?;
        self.inner.visit_newtype_struct(Bounded {
            inner: deserializer,
            depth: self.depth,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let _leave = self.depth.level::<A::Error>()?;
        self.inner.visit_seq(Guarded {
            inner: seq,
            depth: self.depth,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let _leave = self.depth.level::<A::Error>()?;
        self.inner.visit_map(Guarded {
            inner: map,
            depth: self.depth,
        })
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Guarded {
            inner: data,
            depth: self.depth,
        })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'd, A: EnumAccess<'de>> EnumAccess<'de> for Guarded<'d, A> {
    type Error = A::Error;
    type Variant = Guarded<'d, A::Variant>;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let depth = self.depth;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, depth })?;
        Ok((
            value,
            Guarded {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Guarded<'_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let _leave = self.depth.level::<A::Error>()?;
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            depth: self.depth,
        })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let _leave = self.depth.level::<A::Error>()?;
        self.inner.tuple_variant(
            len,
            Guarded {
                inner: visitor,
                depth: self.depth,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let _leave = self.depth.level::<A::Error>()?;
        self.inner.struct_variant(
            fields,
            Guarded {
                inner: visitor,
                depth: self.depth,
            },
        )
    }
}
