//! What one format refuses: its reader's nesting limit and how levels count, what it writes
//! as null, and what it cannot hold at all. One constant per format; JSON's is
//! [`Rules::JSON`].

use super::{MAX_LEVELS, MAX_WRAPPERS};

/// A set of the values written without data: `None`, `()` and unit structs (and whatever
/// serializes as them, such as `serde_json::Value::Null`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nulls(u8);

impl Nulls {
    pub(crate) const EMPTY: Nulls = Nulls(0);
    pub(crate) const NONE: Nulls = Nulls(1);
    pub(crate) const UNIT: Nulls = Nulls(2);
    pub(crate) const UNIT_STRUCT: Nulls = Nulls(4);
    pub(crate) const ALL: Nulls = Nulls(7);

    /// Both sets.
    pub(crate) const fn and(self, other: Nulls) -> Nulls {
        Nulls(self.0 | other.0)
    }

    pub(super) fn contains(self, one: Nulls) -> bool {
        self.0 & one.0 == one.0 && one.0 != 0
    }

    /// What one of them is, for an error message.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Nulls::NONE => "None",
            Nulls::UNIT => "() (or serde_json::Value::Null)",
            _ => "a unit struct",
        }
    }
}

/// How many levels of the format's reader each kind of value opens.
#[derive(Clone, Copy)]
pub(crate) struct Costs {
    /// A sequence, tuple, map or struct (and a tuple struct).
    pub(crate) compound: u8,
    /// A byte string.
    pub(crate) bytes: u8,
    /// A unit variant (a leaf: it opens nothing below it).
    pub(crate) unit_variant: u8,
    /// A newtype variant.
    pub(crate) newtype_variant: u8,
    /// A tuple or struct variant.
    pub(crate) variant: u8,
    /// An `i128` or `u128`.
    pub(crate) wide_int: u8,
    /// A `Some` or a newtype struct.
    pub(crate) wrapper: u8,
}

/// What a format refuses, and how its error messages name things.
pub(crate) struct Rules {
    /// The format's name in messages: "JSON".
    pub(crate) format: &'static str,
    /// What its levels are, in messages: "JSON arrays and objects".
    pub(crate) containers: &'static str,
    /// Its reader, in messages: "serde_json".
    pub(crate) reader: &'static str,
    /// What happens beyond the limit, in messages.
    pub(crate) beyond: &'static str,
    /// How levels count, in messages.
    pub(crate) counting: &'static str,
    /// The most levels its reader reads back.
    pub(crate) max_levels: u16,
    /// The most `Some`s and newtype structs on the way to any value (a bound on the stack).
    pub(crate) max_wrappers: u16,
    /// How many levels each kind of value opens.
    pub(crate) costs: Costs,
    /// NaN and infinities are refused (JSON has none).
    pub(crate) finite_floats: bool,
    /// What the format writes as null, so that `Some` of it reads back as `None`.
    pub(crate) nulls: Nulls,
    /// How the format writes them, in messages: "null".
    pub(crate) null_name: &'static str,
    /// What it cannot hold at all (TOML: anything null but a struct field's `None`, which
    /// it leaves out).
    pub(crate) absent: Nulls,
    /// Map keys must be scalars (strings, numbers, chars, bools, unit variants).
    pub(crate) scalar_keys: bool,
    /// The value itself must be written as a table (TOML).
    pub(crate) table_at_top: bool,
    /// `i128` and `u128` are refused (RON).
    pub(crate) no_wide_ints: bool,
    /// Integers beyond `i64` are refused (TOML's are 64-bit signed).
    pub(crate) i64_only: bool,
    /// A struct field left out (`skip_serializing_if`) is refused: the reader would not
    /// know it is missing (postcard).
    pub(crate) all_fields: bool,
}

impl Rules {
    /// JSON through serde_json: the rules the module's documentation lists.
    pub(crate) const JSON: Rules = Rules {
        format: "JSON",
        containers: "JSON arrays and objects",
        reader: "serde_json",
        beyond: "the next open would fail with \"recursion limit exceeded\"",
        counting: "each array, tuple, map, struct and enum variant with data is a level, a tuple or struct variant two",
        max_levels: MAX_LEVELS as u16,
        max_wrappers: MAX_WRAPPERS as u16,
        costs: Costs {
            compound: 1,
            bytes: 1,
            unit_variant: 0,
            newtype_variant: 1,
            variant: 2,
            wide_int: 0,
            wrapper: 0,
        },
        finite_floats: true,
        nulls: Nulls::ALL,
        null_name: "null",
        absent: Nulls::EMPTY,
        scalar_keys: false,
        table_at_top: false,
        no_wide_ints: false,
        i64_only: false,
        all_fields: false,
    };

    /// Rules that refuse nothing but nesting deeper than `max_levels` (each compound and
    /// variant with data one level) and more `Some`s and newtype structs on the way to a
    /// value than `max_levels` or 128, whichever is more (a type with a newtype at every
    /// level, `struct Tree(Vec<Tree>)`, nests as deep as the format allows): a base for the
    /// other formats' rules.
    #[cfg_attr(
        not(any(
            feature = "toml",
            feature = "ron",
            feature = "cbor",
            feature = "msgpack",
            feature = "postcard"
        )),
        allow(dead_code)
    )]
    pub(crate) const fn nesting(
        format: &'static str,
        reader: &'static str,
        max_levels: u16,
    ) -> Rules {
        Rules {
            format,
            containers: "nested values",
            reader,
            beyond: "the next open would fail",
            counting: "each sequence, tuple, map, struct and enum variant with data is a level",
            max_levels,
            max_wrappers: if max_levels > MAX_WRAPPERS as u16 {
                max_levels
            } else {
                MAX_WRAPPERS as u16
            },
            costs: Costs {
                compound: 1,
                bytes: 0,
                unit_variant: 0,
                newtype_variant: 1,
                variant: 1,
                wide_int: 0,
                wrapper: 0,
            },
            finite_floats: false,
            nulls: Nulls::EMPTY,
            null_name: "null",
            absent: Nulls::EMPTY,
            scalar_keys: false,
            table_at_top: false,
            no_wide_ints: false,
            i64_only: false,
            all_fields: false,
        }
    }
}
