//! The errors of the adapter: what is refused, where, why, and what to do instead.

use std::fmt::Display;

use serde::ser::Error;

use super::path::{Node, render};
use super::{MAX_LEVELS, MAX_WRAPPERS};

/// A NaN or infinite float.
pub(super) fn non_finite<E: Error>(value: impl Display, path: Option<&Node<'_>>) -> E {
    E::custom(format_args!(
        "the float {value} at {} cannot be stored: JSON has no NaN or infinity (it would be written as null and not read back)",
        render(path)
    ))
}

/// A value that would open JSON level `levels`, more than serde_json reads back.
pub(super) fn too_deep<E: Error>(path: Option<&Node<'_>>, levels: u8) -> E {
    E::custom(format_args!(
        "the value at {} would nest {levels} levels of JSON arrays and objects deep, and serde_json reads back at most {MAX_LEVELS} (the next open would fail with \"recursion limit exceeded\"); \
         each array, tuple, map, struct and enum variant with data is a level, a tuple or struct variant two: store a flatter shape, e.g. a tree as a map from ids to nodes that name their children by id",
        render(path)
    ))
}

/// A value inside more `Some`s and newtype structs than enduro allows.
pub(super) fn too_wrapped<E: Error>(path: Option<&Node<'_>>) -> E {
    E::custom(format_args!(
        "the value at {} is inside {} `Some`s and newtype structs, and enduro allows at most {MAX_WRAPPERS} on the way to any value (JSON shows no level for them, so only this bound keeps encoding from overflowing the stack); \
         wrap it fewer times, or give the recursion a level JSON shows (a Vec, a struct, an enum variant with data)",
        render(path),
        u16::from(MAX_WRAPPERS) + 1
    ))
}

/// `Some(x)` where `x` is written as `null`.
pub(super) fn some_of_null<E: Error>(path: Option<&Node<'_>>) -> E {
    E::custom(format_args!(
        "the value at {} is `Some` of something JSON writes as null (None, (), a unit struct or Value::Null): it would be stored as null and read back as None; \
         use a type that tells the two apart (an enum instead of Option<Option<T>>, a bool instead of Option<()>)",
        render(path)
    ))
}
