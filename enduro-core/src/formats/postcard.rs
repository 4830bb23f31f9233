//! postcard: compact, binary, not self-describing.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bounded::{Bounded, Depth};
use super::{said, trailing};
use crate::codec::Codec;
use crate::error::CodecError;
use crate::roundtrip::{RoundTrip, Rules, take_last};

/// The most levels enduro writes and reads as postcard, whose reader has no limit of its
/// own: any bytes are read as deep as the type recurses, until the stack overflows.
const MAX_LEVELS: u16 = 256;

static RULES: Rules = Rules {
    reader: "enduro's bound on reading postcard",
    counting: "each sequence, tuple, map and struct is a level, an enum variant with data one, a tuple or struct variant two",
    costs: crate::roundtrip::Costs {
        compound: 1,
        bytes: 0,
        unit_variant: 0,
        newtype_variant: 1,
        variant: 2,
        wide_int: 0,
        wrapper: 0,
    },
    all_fields: true,
    ..Rules::nesting("postcard", "postcard", MAX_LEVELS)
};

/// postcard: the most compact of the formats, binary, and **not self-describing**: the
/// bytes hold no field names, no types, no lengths of structs, so they read back only as
/// the very type that wrote them. Feature `postcard`.
///
/// [`is_self_describing`](Codec::is_self_describing) is `false`: an atom with migrations
/// or ops refuses to open with it (both travel through `serde_json::Value`). Types that
/// deserialize through `deserialize_any` (`serde_json::Value`, untagged and internally
/// tagged enums, `#[serde(flatten)]`) cannot be read from postcard at all, and nothing in
/// the serializer's calls shows it: such a value is written, and the next open fails with
/// [`Error::Decode`](crate::Error::Decode) ("a feature that PostCard will never
/// implement"). Do not store them as postcard.
///
/// An empty resource counts as no value. postcard writes nothing only for a type with a
/// single value (`()`, a unit struct), so reading `init` instead is the same value.
///
/// # What it refuses to store, and why
///
/// It refuses, with the path to the culprit, every value it can tell would not read back
/// as itself; the `swap`, `reset` or open fails with [`Error::Encode`](crate::Error::Encode)
/// and nothing is stored.
///
/// - **A struct field skipped by `skip_serializing_if`**: the reader cannot know it is
///   missing and would take the next field's bytes for it.
/// - **More than 256 levels of nesting**: each sequence, tuple, map and struct is one, an
///   enum variant with data one, a tuple or struct variant two. postcard's reader has no
///   limit (bytes that nest a recursive type deep enough overflow the stack), so enduro
///   reads through a bound of 256 levels and 128 `Some`s and newtype structs, and refuses to
///   write deeper.
/// - **More than 128 `Some`s and newtype structs on the way to any value**.
/// - **A sequence or map of unknown length** (an iterator serialized with `collect_seq` of
///   unknown size, `#[serde(flatten)]`): postcard's own refusal.
///
/// `Some(None)`, `Some(())`, NaN, infinities, 128-bit integers and byte strings all read
/// back as themselves.
///
/// ```
/// use enduro::{Codec, Postcard};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Point { x: u8, label: Option<String> }
///
/// let postcard = Postcard::default();
/// let mut out = Vec::new();
/// postcard.encode(&Point { x: 1, label: None }, &mut out)?;
/// assert_eq!(out, [0x01, 0x00]); // x, then the tag of None: no names, no lengths
/// assert_eq!(postcard.decode::<Point>(&out)?, Point { x: 1, label: None });
/// assert!(!postcard.is_self_describing());
///
/// #[derive(serde::Serialize)]
/// struct Sparse { #[serde(skip_serializing_if = "Option::is_none")] note: Option<u8> }
/// let err = postcard.encode(&vec![Sparse { note: None }], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("`note` of the struct at [0]"), "{err}");
/// # Ok::<(), enduro::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postcard;

/// postcard's error, with the message of the refusal or bound it dropped, if one was
/// kept aside.
fn lost(error: postcard::Error) -> CodecError {
    match (&error, take_last()) {
        (postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom, Some(message)) => {
            said("postcard", message)
        }
        _ => said("postcard", error),
    }
}

impl Codec for Postcard {
    fn name(&self) -> &'static str {
        "postcard"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        // postcard's errors drop the message of a refusal: it is kept aside.
        take_last();
        postcard::to_io(&RoundTrip::with(value, &RULES), out)
            .map(drop)
            .map_err(lost)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        take_last();
        let depth = Depth::new("postcard", RULES.max_levels, RULES.max_wrappers);
        let value = T::deserialize(Bounded {
            inner: &mut deserializer,
            depth: &depth,
        })
        .map_err(lost)?;
        let rest = deserializer.finalize().map_err(|e| said("postcard", e))?;
        if !rest.is_empty() {
            return Err(trailing("postcard", rest.len()));
        }
        Ok(value)
    }

    fn is_self_describing(&self) -> bool {
        false
    }
}
