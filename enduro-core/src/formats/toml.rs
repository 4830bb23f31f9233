//! TOML through the toml crate.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::said;
use crate::codec::Codec;
use crate::error::CodecError;
use crate::roundtrip::{Costs, Nulls, RoundTrip, Rules};

/// What toml 1.2 reads back, measured: its parser stops at the 82nd level of tables and
/// arrays, the document's own table included (the same with inline tables, headers and
/// dotted keys); an enum variant with data is a table (`{ V = … }`), a tuple or struct
/// variant a table and an array or table inside it. It has no null.
static RULES: Rules = Rules {
    containers: "TOML tables and arrays (the document's own table included)",
    reader: "the toml crate",
    beyond: "the next open would fail with \"recursion limit\"",
    counting: "the document, each table, array, struct, map, sequence, tuple and byte string is a level, an enum variant with data one, a tuple or struct variant two",
    max_levels: 81,
    costs: Costs {
        compound: 1,
        bytes: 1,
        unit_variant: 0,
        newtype_variant: 1,
        variant: 2,
        wide_int: 0,
        wrapper: 0,
    },
    nulls: Nulls::NONE,
    null_name: "nothing (it leaves the field out)",
    absent: Nulls::ALL,
    scalar_keys: true,
    table_at_top: true,
    i64_only: true,
    ..Rules::nesting("TOML", "toml", 81)
};

/// What an empty table is written as: TOML writes it as nothing, which would read back as
/// "no value yet".
const EMPTY_TABLE: &[u8] = b"# an empty table\n";

/// TOML through the toml crate: readable and editable by hand, for configuration-like
/// values whose top is a table (a struct or a map). Feature `toml`.
///
/// A blank (empty or whitespace-only) file counts as no value. TOML writes an empty table
/// as nothing, so enduro writes it as a comment (`# an empty table`), which reads back as
/// the empty table. [`Toml::pretty`] writes arrays one element a line.
///
/// # What it refuses to store, and why
///
/// It refuses, with the path to the culprit, every value that would not read back as
/// itself; the `swap`, `reset` or open fails with [`Error::Encode`](crate::Error::Encode)
/// and nothing is stored.
///
/// - **Anything but a table at the top**: a TOML document is a table. A number, a string,
///   a sequence, `None`, `()` or a unit variant as the value itself is refused; wrap it in a
///   struct with one field. (`Some` of a table, a newtype struct around one and an enum
///   variant with data are tables.)
/// - **`None` anywhere but as a struct field**, and **`()`, unit structs,
///   `serde_json::Value::Null`** anywhere: TOML has no null. A struct field that is `None`
///   is left out and reads back as `None`; in a sequence, a tuple or a map value it would be
///   lost. `Some(None)` as a field is refused too (it would read back as `None`).
/// - **Map keys that are not strings, numbers, chars, bools or unit variants** (a tuple,
///   an `Option`, a struct…): TOML keys are strings.
/// - **More than 81 levels of nesting**, the document's table included: the toml crate's
///   parser reads no deeper. Each table, array, struct, map, sequence, tuple and byte string
///   (an array of numbers) is a level, an enum variant with data one, a tuple or struct
///   variant two.
/// - **More than 128 `Some`s and newtype structs on the way to any value** (a bound on the
///   stack).
///
/// - **Integers beyond `i64`** (a `u64` above `i64::MAX`, a wider `i128` or `u128`): TOML's
///   integers are 64-bit signed. The toml crate writes larger ones and reads them back into
///   Rust integers, but its own `toml::Value` (and other TOML readers) refuse them.
///
/// NaN and infinities (`nan`, `inf`) read back as themselves. What the toml crate itself
/// refuses beyond these is wrapped as `toml: …`.
///
/// ```
/// use std::collections::BTreeMap;
/// use enduro::{Codec, Toml};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Config { name: String, ports: Vec<u16>, limit: Option<u32> }
///
/// let toml = Toml::default();
/// let config = Config { name: "web".into(), ports: vec![80, 443], limit: None };
/// let mut out = Vec::new();
/// toml.encode(&config, &mut out)?;
/// assert_eq!(String::from_utf8(out.clone())?, "name = \"web\"\nports = [80, 443]\n");
/// assert_eq!(toml.decode::<Config>(&out)?, config);
///
/// // TOML has no null: a None in a map would be left out, and lost.
/// let mut scores = BTreeMap::new();
/// scores.insert("ann", vec![Some(1), None]);
/// let err = toml.encode(&scores, &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("None at {value of entry #0}[1]"), "{err}");
///
/// // A document must be a table.
/// let err = toml.encode(&vec![1, 2], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("must be a table"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Toml {
    pretty: bool,
}

impl Toml {
    /// TOML as `toml::to_string` writes it (the default).
    pub fn compact() -> Self {
        Toml { pretty: false }
    }

    /// TOML as `toml::to_string_pretty` writes it: arrays one element a line.
    pub fn pretty() -> Self {
        Toml { pretty: true }
    }

    /// Whether this codec pretty-prints.
    ///
    /// ```
    /// assert!(enduro::Toml::pretty().is_pretty());
    /// ```
    pub fn is_pretty(&self) -> bool {
        self.pretty
    }
}

impl Codec for Toml {
    fn name(&self) -> &'static str {
        "TOML"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        let value = RoundTrip::with(value, &RULES);
        let text = if self.pretty {
            toml::to_string_pretty(&value)
        } else {
            toml::to_string(&value)
        }
        .map_err(|e| said("toml", e))?;
        if text.trim().is_empty() {
            out.write_all(EMPTY_TABLE)?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let text = std::str::from_utf8(bytes).map_err(|e| said("TOML is UTF-8, but", e))?;
        toml::from_str(text).map_err(|e| said("toml", e))
    }

    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(u8::is_ascii_whitespace)
    }

    fn styled(&self, pretty: bool) -> Option<Self> {
        Some(Toml { pretty })
    }
}
