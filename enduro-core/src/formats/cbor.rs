//! CBOR (RFC 8949) through ciborium.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{said, trailing};
use crate::codec::Codec;
use crate::error::CodecError;
use crate::roundtrip::{Costs, Nulls, RoundTrip, Rules};

/// What ciborium 0.2 reads back, measured: 256 levels, each array and map one, and every
/// enum value one (it reads any enum, a unit variant too, one level down), a tuple or
/// struct variant two (`{"V": […]}`). A 128-bit integer beyond 64 bits is a tagged byte
/// string, counted as one level to be safe. `None`, `()` and unit structs are all `null`.
static RULES: Rules = Rules {
    containers: "CBOR arrays, maps and enum values",
    beyond: "the next open would fail with \"RecursionLimitExceeded\"",
    counting: "each sequence, tuple, map and struct is a level, every enum value one (a unit variant too), a tuple or struct variant two",
    costs: Costs {
        compound: 1,
        bytes: 0,
        unit_variant: 1,
        newtype_variant: 1,
        variant: 2,
        wide_int: 1,
        wrapper: 0,
    },
    nulls: Nulls::ALL,
    ..Rules::nesting("CBOR", "ciborium", 256)
};

/// CBOR (RFC 8949) through ciborium: compact, binary and self-describing (maps with field
/// names, so migrations and ops work with it). Feature `cbor`.
///
/// An empty resource counts as no value (CBOR never writes nothing). Reading is ciborium's
/// own, whose recursion limit (256) keeps any bytes from overflowing the stack: deeper data
/// is a clean [`Error::Decode`](crate::Error::Decode).
///
/// # What it refuses to store, and why
///
/// It refuses, with the path to the culprit, every value that would not read back as
/// itself; the `swap`, `reset` or open fails with [`Error::Encode`](crate::Error::Encode)
/// and nothing is stored.
///
/// - **`Some` of a value written as `null`**: `Some(None)`, `Some(())`, `Some` of a unit
///   struct or of `serde_json::Value::Null`. CBOR writes all of them as `null`, which reads
///   back as `None`.
/// - **More than 256 levels of nesting**, ciborium's recursion limit. Levels count as
///   ciborium reads them: each sequence, tuple, map and struct is one, every enum value one
///   (a unit variant too), a tuple or struct variant two; a 128-bit integer one.
/// - **More than 128 `Some`s and newtype structs on the way to any value**: CBOR shows no
///   level for them, so only this bound keeps encoding from overflowing the stack.
///
/// NaN, infinities, `-0.0`, 128-bit integers, byte strings, non-string map keys and every
/// kind of enum variant read back as themselves.
///
/// ```
/// use enduro::{Cbor, Codec};
///
/// let cbor = Cbor::default();
/// let mut out = Vec::new();
/// cbor.encode(&(1u8, "a"), &mut out)?;
/// assert_eq!(out, [0x82, 0x01, 0x61, b'a']); // an array of two: 1, "a"
/// let back: (u8, String) = cbor.decode(&out)?;
/// assert_eq!(back, (1, "a".to_owned()));
///
/// // Some(None) would be written as null and read back as None.
/// let err = cbor.encode(&vec![Some(Some(1)), Some(None::<u8>)], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("at [1]"), "{err}");
/// # Ok::<(), enduro::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

impl Codec for Cbor {
    fn name(&self) -> &'static str {
        "CBOR"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        ciborium::into_writer(&RoundTrip::with(value, &RULES), out).map_err(|e| said("ciborium", e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut rest = bytes;
        let value = ciborium::from_reader(&mut rest).map_err(|e| said("ciborium", e))?;
        if !rest.is_empty() {
            return Err(trailing("CBOR", rest.len()));
        }
        Ok(value)
    }
}
