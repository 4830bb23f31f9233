//! RON (Rusty Object Notation) through the ron crate.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::said;
use crate::codec::Codec;
use crate::error::CodecError;
use crate::roundtrip::{Costs, RoundTrip, Rules};

/// What ron 0.12 reads back, measured: its reader's recursion limit is 128, counted once
/// for every compound it enters and again for every element, field, key and value it reads
/// inside one, once for a `Some` and a newtype struct, and once for every enum value.
static RULES: Rules = Rules {
    containers: "RON recursion (ron's count)",
    reader: "ron",
    beyond: "the next open would fail with \"Exceeded recursion limit\"",
    counting: "each sequence, tuple, map and struct counts two (itself and its element), a `Some` and a newtype struct one, an enum value one, a newtype variant two, a tuple or struct variant three",
    costs: Costs {
        compound: 2,
        bytes: 0,
        unit_variant: 1,
        newtype_variant: 2,
        variant: 3,
        wide_int: 0,
        wrapper: 1,
    },
    no_wide_ints: true,
    ..Rules::nesting("RON", "ron", 128)
};

/// RON (Rusty Object Notation) through the ron crate: readable, with Rust's own shapes
/// (`Some(1)`, `Point(x: 1)`, `Variant(…)`), so that what JSON and TOML cannot say (an
/// `Option<Option<T>>`, a unit, a map with tuple keys) reads back as itself. Feature `ron`.
///
/// A blank (empty or whitespace-only) file counts as no value. [`Ron::pretty`] writes
/// with ron's default `PrettyConfig` (one item a line, four spaces).
///
/// # What it refuses to store, and why
///
/// It refuses, with the path to the culprit, every value that would not read back as
/// itself; the `swap`, `reset` or open fails with [`Error::Encode`](crate::Error::Encode)
/// and nothing is stored.
///
/// - **`i128` and `u128`**: ron 0.12 (built without its 128-bit support) has none.
/// - **Nesting deeper than ron's recursion limit (128)**, counted as ron counts: each
///   sequence, tuple, map and struct two (itself, and the element, field or value read in
///   it), a `Some` and a newtype struct one, every enum value one, a newtype variant two, a
///   tuple or struct variant three. A `Vec<Vec<…>>` reads back 64 deep, a linked list of
///   `struct Node { next: Option<Box<Node>> }` 42.
/// - **More than 128 `Some`s and newtype structs on the way to any value** (a bound on the
///   stack).
///
/// `Some(None)`, `Some(())`, NaN, infinities, byte strings (`b"…"`), non-string map keys and
/// every kind of enum variant read back as themselves.
///
/// ```
/// use enduro::{Codec, Ron};
///
/// let ron = Ron::default();
/// let mut out = Vec::new();
/// ron.encode(&(Some(None::<u8>), vec![()]), &mut out)?;
/// assert_eq!(String::from_utf8(out.clone())?, "(Some(None),[()])");
/// let back: (Option<Option<u8>>, Vec<()>) = ron.decode(&out)?;
/// assert_eq!(back, (Some(None), vec![()]));
///
/// let err = ron.encode(&vec![(0, 1u128 << 100)], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("at [0][1]"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ron {
    pretty: bool,
}

impl Ron {
    /// RON on one line (the default).
    pub fn compact() -> Self {
        Ron { pretty: false }
    }

    /// RON as ron's default `PrettyConfig` writes it, with a trailing newline.
    pub fn pretty() -> Self {
        Ron { pretty: true }
    }

    /// Whether this codec pretty-prints.
    ///
    /// ```
    /// assert!(enduro::Ron::pretty().is_pretty());
    /// ```
    pub fn is_pretty(&self) -> bool {
        self.pretty
    }
}

impl Codec for Ron {
    fn name(&self) -> &'static str {
        "RON"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        let value = RoundTrip::with(value, &RULES);
        let options = ron::Options::default();
        if self.pretty {
            let text = options
                .to_string_pretty(&value, ron::ser::PrettyConfig::default())
                .map_err(|e| said("ron", e))?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
        } else {
            let text = options.to_string(&value).map_err(|e| said("ron", e))?;
            out.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        ron::Options::default()
            .from_bytes(bytes)
            .map_err(|e| said("ron", e))
    }

    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(u8::is_ascii_whitespace)
    }

    fn styled(&self, pretty: bool) -> Option<Self> {
        Some(Ron { pretty })
    }
}
