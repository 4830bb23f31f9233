//! MessagePack through rmp-serde, structs as maps with their field names.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bounded::{Bounded, Depth};
use super::{said, trailing};
use crate::codec::Codec;
use crate::error::CodecError;
use crate::roundtrip::{Costs, Nulls, RoundTrip, Rules};

/// The most levels enduro writes and reads as MessagePack. rmp-serde 1.3 reads 1023
/// arrays and maps, but does not count enum variants (1,000 nested newtype variants read
/// back, as deep as the stack lets them): enduro bounds reading itself, at the level a
/// debug build's small thread stack still holds.
const MAX_LEVELS: u16 = 256;

/// `None` and `()` are both `nil`; a unit struct is an empty array.
static RULES: Rules = Rules {
    containers: "MessagePack arrays and maps",
    reader: "enduro's bound on reading MessagePack",
    beyond: "the next open would fail",
    counting: "each sequence, tuple, map and struct is a level, an enum variant with data one, a tuple or struct variant two",
    costs: Costs {
        compound: 1,
        bytes: 0,
        unit_variant: 0,
        newtype_variant: 1,
        variant: 2,
        wide_int: 0,
        wrapper: 0,
    },
    nulls: Nulls::NONE.and(Nulls::UNIT),
    null_name: "nil",
    ..Rules::nesting("MessagePack", "rmp-serde", MAX_LEVELS)
};

/// MessagePack through rmp-serde, structs written as maps with their field names (as
/// `rmp_serde::to_vec_named` does), so that the data describes itself: compact, binary, and
/// migrations and ops work with it. Feature `msgpack`.
///
/// An empty resource counts as no value (MessagePack never writes nothing). Enum variants
/// are written as their names (`"V"`, `{"V": …}`), 128-bit integers as 16-byte binaries.
///
/// # What it refuses to store, and why
///
/// It refuses, with the path to the culprit, every value that would not read back as
/// itself; the `swap`, `reset` or open fails with [`Error::Encode`](crate::Error::Encode)
/// and nothing is stored.
///
/// - **`Some` of a value written as `nil`**: `Some(None)`, `Some(())`, `Some` of
///   `serde_json::Value::Null`. It would read back as `None`. (A unit struct is an empty
///   array: `Some` of one reads back.)
/// - **More than 256 levels of nesting**: each sequence, tuple, map and struct is one, an
///   enum variant with data one, a tuple or struct variant two. rmp-serde reads 1023 arrays
///   and maps but does not count enum variants at all, so enduro bounds reading itself, at
///   256, and refuses to write deeper.
/// - **More than 128 `Some`s and newtype structs on the way to any value** (a bound on the
///   stack; the reader keeps the same bound).
///
/// NaN, infinities, 128-bit integers, byte strings, non-string map keys and every kind of
/// enum variant read back as themselves.
///
/// ```
/// use enduro::{Codec, MessagePack};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Point { x: u8 }
///
/// let msgpack = MessagePack::default();
/// let mut out = Vec::new();
/// msgpack.encode(&Point { x: 1 }, &mut out)?;
/// assert_eq!(out, [0x81, 0xa1, b'x', 0x01]); // a map of one: "x" => 1
/// assert_eq!(msgpack.decode::<Point>(&out)?, Point { x: 1 });
///
/// // Some(()) would be written as nil and read back as None.
/// let err = msgpack.encode(&vec![Some(())], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("at [0]"), "{err}");
/// # Ok::<(), enduro::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePack;

impl Codec for MessagePack {
    fn name(&self) -> &'static str {
        "MessagePack"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        let mut serializer = rmp_serde::Serializer::new(out).with_struct_map();
        RoundTrip::with(value, &RULES)
            .serialize(&mut serializer)
            .map_err(|e| said("rmp-serde", e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut rest = bytes;
        let mut deserializer = rmp_serde::Deserializer::new(&mut rest);
        let depth = Depth::new("MessagePack", RULES.max_levels, RULES.max_wrappers);
        let value = T::deserialize(Bounded {
            inner: &mut deserializer,
            depth: &depth,
        })
        .map_err(|e| said("rmp-serde", e))?;
        drop(deserializer);
        if !rest.is_empty() {
            return Err(trailing("MessagePack", rest.len()));
        }
        Ok(value)
    }
}
