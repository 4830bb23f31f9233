//! A serializer adapter that refuses what JSON would not read back as itself, naming where
//! it is.
//!
//! [`RoundTrip`] wraps a value so that it serializes exactly the same through any
//! serializer, but fails, with the path to the culprit (`.prices[3]`), on:
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
//! variant serializes its content with the same serializer, without a call of its own.) The checks ride along with the encoding: a few branches per value, and nothing
//! is allocated unless a value is refused.

use serde::Serialize;
use serde::ser::{Error, Serializer};

mod compound;
mod guard;
mod path;
mod refusal;
#[cfg(test)]
mod tests;

use guard::Guard;
use path::Node;

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
    /// How many JSON arrays and objects enclose the value.
    levels: u8,
    /// How many `Some`s and newtype structs are on the way to it.
    wrappers: u8,
    /// The value is inside a `Some` (perhaps through newtype structs), so it must not be
    /// written as `null`.
    in_some: bool,
}

impl<'p> At<'p> {
    const ROOT: At<'static> = At {
        path: None,
        levels: 0,
        wrappers: 0,
        in_some: false,
    };

    /// The refusal of a value here that would open `more` JSON levels (an array, an
    /// object, a variant), if that is deeper than serde_json reads back.
    fn too_deep<E: Error>(&self, more: u8) -> Option<E> {
        let levels = self.levels + more;
        (levels > MAX_LEVELS).then(|| refusal::too_deep(self.path, levels))
    }

    /// The content of a `Some` or newtype struct here, or the refusal if one more wrapper
    /// is more than enduro allows. Inside a `Some`, the content must not be `null`.
    fn wrap<E: Error>(&self, in_some: bool) -> Result<At<'p>, E> {
        if self.wrappers >= MAX_WRAPPERS {
            return Err(refusal::too_wrapped(self.path));
        }
        Ok(At {
            wrappers: self.wrappers + 1,
            in_some,
            ..*self
        })
    }

    /// A value at `node`, inside `more` JSON levels opened here.
    fn inside<'q>(&self, node: &'q Node<'q>, more: u8) -> At<'q>
    where
        'p: 'q,
    {
        At {
            path: Some(node),
            levels: self.levels + more,
            wrappers: self.wrappers,
            in_some: false,
        }
    }

    /// The refusal of a value here that is about to be written as `null`, if it is the
    /// content of a `Some`.
    fn null<E: Error>(&self) -> Result<(), E> {
        if self.in_some {
            return Err(refusal::some_of_null(self.path));
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
    pub(crate) fn new(value: &'a T) -> Self {
        RoundTrip {
            value,
            at: At::ROOT,
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
