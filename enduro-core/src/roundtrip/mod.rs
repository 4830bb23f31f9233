//! A serializer adapter that refuses what a format would not read back as itself, naming
//! where it is.
//!
//! [`RoundTrip`] wraps a value so that it serializes exactly the same through any
//! serializer, but fails, with the path to the culprit (`.prices[3]`), on what the format's
//! [`Rules`] refuse. For JSON ([`Rules::JSON`], which [`RoundTrip::new`] uses), that is:
//!
//! - **a NaN or infinite float**: JSON has no such numbers; serde_json writes `null`, which
//!   does not read back as the float;
//! - **nesting deeper than serde_json reads back**: its reader stops at the 128th level of
//!   arrays and objects ("recursion limit exceeded"), so [`MAX_LEVELS`] is 127. Levels are
//!   counted as serde_json writes them: a sequence, tuple, map, struct or byte string
//!   opens one, an enum variant with data one (`{"V":…}`), a tuple or struct variant two
//!   (`{"V":[…]}`); `Some`, newtype structs and unit variants open none;
//! - **`Some` of a value written as `null`** (`Some(None)`, `Some(())`, a unit struct,
//!   `serde_json::Value::Null`): it would read back as `None`;
//! - **more than [`MAX_WRAPPERS`] `Some`s and newtype structs on the way to a value**:
//!   JSON shows no level for them, so nothing else bounds how deep they recurse, and an
//!   unbounded chain would overflow the stack instead of failing.
//!
//! With both bounds, the serializer calls the adapter sees nest at most
//! `MAX_LEVELS + MAX_WRAPPERS` deep before serializing either finishes or fails. (What it
//! cannot see, it cannot bound: a `#[serde(transparent)]` struct or an untagged newtype
//! variant serializes its content with the same serializer, without a call of its own.)
//! The checks ride along with the encoding: a few branches per value, and nothing is
//! allocated unless a value is refused.
//!
//! Other formats (feature-gated codecs in `crate::formats`) bring their own [`Rules`]: their
//! reader's nesting limit and how it counts levels, what they write as null, and what they
//! cannot hold at all (TOML's table at the top, RON's 128-bit integers, …).

use serde::Serialize;
use serde::ser::{Error, Serializer};

mod compound;
mod guard;
mod path;
mod refusal;
mod rules;
#[cfg(test)]
mod tests;

use guard::Guard;
use path::Node;
#[cfg(any(feature = "msgpack", feature = "postcard"))]
pub(crate) use refusal::keep;
#[cfg(feature = "postcard")]
pub(crate) use refusal::take_last;
#[cfg(any(
    feature = "toml",
    feature = "ron",
    feature = "cbor",
    feature = "msgpack",
    feature = "postcard"
))]
pub(crate) use rules::Costs;
pub(crate) use rules::{Nulls, Rules};

/// The most levels of JSON arrays and objects that serde_json reads back: its reader
/// refuses the 128th (its recursion limit is 128, counted down before each level).
pub(crate) const MAX_LEVELS: u8 = 127;

/// The most `Some`s and newtype structs on the way from the root to any value. Only a
/// bound on the stack, not a JSON limit: a real value has a few; a linked list as deep as
/// JSON allows (`struct Node { next: Option<Box<Node>> }`, 127 levels) has 126.
pub(crate) const MAX_WRAPPERS: u8 = 128;

/// Where a value sits in the whole: the path to it and what encloses it.
#[derive(Clone, Copy)]
struct At<'p> {
    /// The steps from the root (`None` at the root).
    path: Option<&'p Node<'p>>,
    /// What the format refuses.
    rules: &'static Rules,
    /// How many levels (as the format's reader counts them) enclose the value.
    levels: u16,
    /// How many `Some`s and newtype structs are on the way to it.
    wrappers: u16,
    /// The value is inside a `Some` (perhaps through newtype structs), so it must not be
    /// written as null.
    in_some: bool,
    /// The value is a map key.
    in_key: bool,
    /// The value is a struct field's own value (not inside a `Some` or newtype struct).
    in_field: bool,
}

impl<'p> At<'p> {
    const fn root(rules: &'static Rules) -> At<'static> {
        At {
            path: None,
            rules,
            levels: 0,
            wrappers: 0,
            in_some: false,
            in_key: false,
            in_field: false,
        }
    }

    /// The refusal of a value here that would open `more` levels (an array, an object, a
    /// variant), if that is deeper than the format's reader reads back.
    fn too_deep<E: Error>(&self, more: u8) -> Option<E> {
        let levels = self.levels + u16::from(more);
        (levels > self.rules.max_levels).then(|| refusal::too_deep(self.path, self.rules, levels))
    }

    /// The refusal of a compound (`what`: "a sequence", "a map", …) here that opens `more`
    /// levels: too deep, a map key where the format wants scalar keys, or anything but a
    /// table (`table`: it is written as one) at the top of a TOML document.
    fn open<E: Error>(&self, more: u8, what: &str, table: bool) -> Option<E> {
        if let Some(refused) = self.too_deep(more) {
            return Some(refused);
        }
        if !table && let Err(refused) = self.leaf(what) {
            return Some(refused);
        }
        (self.rules.scalar_keys && self.in_key)
            .then(|| refusal::key_not_scalar(self.path, self.rules, what))
    }

    /// The refusal of a scalar (`what`) here that the format cannot hold: anything but a
    /// table at the top of a TOML document.
    fn leaf<E: Error>(&self, what: &str) -> Result<(), E> {
        if self.rules.table_at_top && self.path.is_none() {
            return Err(refusal::not_a_table(what));
        }
        Ok(())
    }

    /// The content of a `Some` or newtype struct here, or the refusal if one more wrapper
    /// is more than enduro allows. Inside a `Some`, the content must not be null.
    fn wrap<E: Error>(&self, in_some: bool) -> Result<At<'p>, E> {
        if self.wrappers >= self.rules.max_wrappers {
            return Err(refusal::too_wrapped(self.path, self.rules));
        }
        if self.in_key && self.rules.scalar_keys && in_some {
            return Err(refusal::key_not_scalar(self.path, self.rules, "an Option"));
        }
        let cost = self.rules.costs.wrapper;
        if let Some(refused) = self.too_deep(cost) {
            return Err(refused);
        }
        Ok(At {
            levels: self.levels + u16::from(cost),
            wrappers: self.wrappers + 1,
            in_some,
            in_field: false,
            ..*self
        })
    }

    /// A value at `node`, inside `more` levels opened here.
    fn inside<'q>(&self, node: &'q Node<'q>, more: u8) -> At<'q>
    where
        'p: 'q,
    {
        At {
            path: Some(node),
            rules: self.rules,
            levels: self.levels + u16::from(more),
            wrappers: self.wrappers,
            in_some: false,
            in_key: false,
            in_field: false,
        }
    }

    /// The refusal of a value here that is about to be written as `what` (`None`, `()`, a
    /// unit struct), if the format writes it as null inside a `Some`, cannot hold it here,
    /// or it is the content of a `Some`.
    fn null<E: Error>(&self, what: Nulls) -> Result<(), E> {
        let rules = self.rules;
        if rules.table_at_top && self.path.is_none() {
            return Err(refusal::not_a_table(what.describe()));
        }
        if self.in_some && rules.nulls.contains(what) {
            return Err(refusal::some_of_null(self.path, rules));
        }
        if rules.scalar_keys && self.in_key {
            return Err(refusal::key_not_scalar(self.path, rules, what.describe()));
        }
        if rules.absent.contains(what) && !(what == Nulls::NONE && self.in_field) {
            return Err(refusal::absent(self.path, rules, what.describe()));
        }
        Ok(())
    }
}

/// Wraps a value so that it serializes the same, but fails on what would not read back.
pub(crate) struct RoundTrip<'a, 'p, T: ?Sized> {
    value: &'a T,
    at: At<'p>,
}

impl<'a, T: ?Sized> RoundTrip<'a, 'static, T> {
    /// `value`, guarded by JSON's rules.
    pub(crate) fn new(value: &'a T) -> Self {
        RoundTrip::with(value, &Rules::JSON)
    }

    /// `value`, guarded by `rules`.
    pub(crate) fn with(value: &'a T, rules: &'static Rules) -> Self {
        RoundTrip {
            value,
            at: At::root(rules),
        }
    }
}

impl<T: Serialize + ?Sized> Serialize for RoundTrip<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Guard {
            inner: serializer,
            at: &self.at,
        })
    }
}
