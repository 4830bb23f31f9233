//! The errors of the adapter: what is refused, where, why, and what to do instead.

use std::cell::RefCell;
use std::fmt::Display;

use serde::ser::Error;

use super::path::{Node, render};
use super::rules::{Nulls, Rules};

thread_local! {
    /// The last refusal's message on this thread, for serializers whose errors drop the
    /// message of a custom error (postcard's `SerdeSerCustom`).
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of the last refusal (or bound) on this thread, taken; call it before
/// encoding to forget an old one, and after a failed encoding to find what was refused.
#[cfg(feature = "postcard")]
pub(crate) fn take_last() -> Option<String> {
    LAST.with(|last| last.borrow_mut().take())
}

/// Keeps `message` as the last refusal on this thread.
pub(crate) fn keep(message: String) {
    LAST.with(|last| *last.borrow_mut() = Some(message));
}

/// Keeps `message` as the last refusal on this thread, and makes an error of it.
fn remember<E: Error>(message: std::fmt::Arguments<'_>) -> E {
    let message = message.to_string();
    let error = E::custom(&message);
    keep(message);
    error
}

/// A NaN or infinite float.
pub(super) fn non_finite<E: Error>(value: impl Display, path: Option<&Node<'_>>) -> E {
    remember(format_args!(
        "the float {value} at {} cannot be stored: JSON has no NaN or infinity (it would be written as null and not read back)",
        render(path)
    ))
}

/// A value that would open level `levels`, more than the format's reader reads back.
pub(super) fn too_deep<E: Error>(path: Option<&Node<'_>>, rules: &Rules, levels: u16) -> E {
    remember(format_args!(
        "the value at {} would nest {levels} levels of {} deep, and {} reads back at most {} ({}); \
         {}: store a flatter shape, e.g. a tree as a map from ids to nodes that name their children by id",
        render(path),
        rules.containers,
        rules.reader,
        rules.max_levels,
        rules.beyond,
        rules.counting,
    ))
}

/// A value inside more `Some`s and newtype structs than enduro allows.
pub(super) fn too_wrapped<E: Error>(path: Option<&Node<'_>>, rules: &Rules) -> E {
    remember(format_args!(
        "the value at {} is inside {} `Some`s and newtype structs, and enduro allows at most {} on the way to any value ({} shows no level for them, so only this bound keeps encoding from overflowing the stack); \
         wrap it fewer times, or give the recursion a level {} shows (a Vec, a struct, an enum variant with data)",
        render(path),
        rules.max_wrappers + 1,
        rules.max_wrappers,
        rules.format,
        rules.format,
    ))
}

/// `Some(x)` where `x` is written as null.
pub(super) fn some_of_null<E: Error>(path: Option<&Node<'_>>, rules: &Rules) -> E {
    let nulls = rules.nulls;
    let which = if nulls == Nulls::ALL {
        "None, (), a unit struct or Value::Null"
    } else if nulls == Nulls::NONE.and(Nulls::UNIT) {
        "None, () or Value::Null"
    } else {
        "None"
    };
    remember(format_args!(
        "the value at {} is `Some` of something {} writes as {} ({which}): it would be stored as {} and read back as None; \
         use a type that tells the two apart (an enum instead of Option<Option<T>>, a bool instead of Option<()>)",
        render(path),
        rules.format,
        rules.null_name,
        rules.null_name,
    ))
}

/// A value the format has no way to write where it is (TOML: `None` outside a struct
/// field, `()`, a unit struct).
pub(super) fn absent<E: Error>(path: Option<&Node<'_>>, rules: &Rules, what: &str) -> E {
    remember(format_args!(
        "{what} at {} cannot be stored: {} has no null, and leaves out only a struct field that is None (which reads back as None); \
         in a sequence, a tuple or a map value, use a type with a value (an enum, a bool, a default)",
        render(path),
        rules.format,
    ))
}

/// A document that is not a table (TOML).
pub(super) fn not_a_table<E: Error>(what: &str) -> E {
    remember(format_args!(
        "the value itself is {what}, and a TOML document must be a table (a struct, a map, or an enum variant with data): \
         wrap the value in a struct with one field, e.g. `struct Doc {{ value: T }}`"
    ))
}

/// A map key that is not a scalar, where the format wants scalar keys (TOML).
pub(super) fn key_not_scalar<E: Error>(path: Option<&Node<'_>>, rules: &Rules, what: &str) -> E {
    remember(format_args!(
        "the key at {} is {what}, and {} map keys must be strings, numbers, chars, bools or unit variants; \
         use a key of one of those types, or a sequence of (key, value) pairs",
        render(path),
        rules.format,
    ))
}

/// An `i128` or `u128` where the format has none (RON).
pub(super) fn wide_int<E: Error>(value: impl Display, path: Option<&Node<'_>>, rules: &Rules) -> E {
    remember(format_args!(
        "the 128-bit integer {value} at {} cannot be stored: {} ({}) has no 128-bit integers; store it as two u64s or as a string",
        render(path),
        rules.format,
        rules.reader,
    ))
}

/// An integer beyond 64 signed bits where the format has none (TOML).
pub(super) fn beyond_i64<E: Error>(
    value: impl Display,
    path: Option<&Node<'_>>,
    rules: &Rules,
) -> E {
    remember(format_args!(
        "the integer {value} at {} cannot be stored: {} integers are 64-bit signed (its spec); the toml crate writes larger ones, \
         but its own toml::Value and other TOML readers refuse them; store it as a string, or as two numbers",
        render(path),
        rules.format,
    ))
}

/// A struct field left out by `skip_serializing_if`, where the reader cannot know (postcard).
pub(super) fn skipped_field<E: Error>(path: Option<&Node<'_>>, key: &str, rules: &Rules) -> E {
    remember(format_args!(
        "the field `{key}` of the struct at {} is skipped (skip_serializing_if), and {} is not self-describing: \
         the reader would take the next field's data for it; remove skip_serializing_if from types stored as {}",
        render(path),
        rules.format,
        rules.format,
    ))
}
