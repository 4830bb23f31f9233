//! The value as people see it: without a migration envelope, one part of it (a JSON
//! Pointer), parsed from what they typed.

use serde_json::Value;

use crate::fail::{Fail, Outcome};

/// The keys of the envelope a program with migrations stores its value in.
const SCHEMA_KEY: &str = "enduro_schema";
const VALUE_KEY: &str = "value";

/// The schema of a stored value (`None`: no envelope, schema 0) and the value inside.
pub fn unwrap(stored: &Value) -> (Option<u64>, &Value) {
    if let Value::Object(map) = stored
        && map.len() == 2
        && let (Some(schema), Some(value)) = (map.get(SCHEMA_KEY), map.get(VALUE_KEY))
        && let Some(schema) = schema.as_u64()
    {
        return (Some(schema), value);
    }
    (None, stored)
}

/// `value` as the store keeps it, in the envelope of `schema` if there was one.
pub fn wrap(schema: Option<u64>, value: Value) -> Value {
    match schema {
        None => value,
        Some(schema) => {
            let mut map = serde_json::Map::new();
            map.insert(SCHEMA_KEY.into(), Value::from(schema));
            map.insert(VALUE_KEY.into(), value);
            Value::Object(map)
        }
    }
}

/// The part of `value` at the JSON Pointer `pointer` (RFC 6901: `/a/0/b`; `` for all).
pub fn at<'v>(value: &'v Value, pointer: &str) -> Outcome<&'v Value> {
    check_pointer(pointer)?;
    value
        .pointer(pointer)
        .ok_or_else(|| Fail::usage(format!("the value has nothing at `{pointer}`")))
}

/// Puts `new` at `pointer` in `value`: replaces what is there, adds a member to an
/// object, or appends to an array (index `-` or its length).
pub fn put(value: &mut Value, pointer: &str, new: Value) -> Outcome {
    check_pointer(pointer)?;
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        *value = new;
        return Ok(());
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    let nothing = || {
        Fail::usage(format!(
            "the value has nothing at `{parent}` to put `{key}` in"
        ))
    };
    match value.pointer_mut(parent).ok_or_else(nothing)? {
        Value::Object(map) => {
            map.insert(key, new);
            Ok(())
        }
        Value::Array(items) => {
            let len = items.len();
            let index = if key == "-" {
                len
            } else {
                key.parse::<usize>().map_err(|_| {
                    Fail::usage(format!(
                        "`{key}` in `{pointer}` is not an index of the array"
                    ))
                })?
            };
            match index {
                i if i < len => items[i] = new,
                i if i == len => items.push(new),
                _ => {
                    return Err(Fail::usage(format!(
                        "index {index} in `{pointer}` is past the end of the array ({len} items)"
                    )));
                }
            }
            Ok(())
        }
        _ => Err(Fail::usage(format!(
            "`{parent}` is neither an object nor an array, so `{pointer}` cannot be set"
        ))),
    }
}

/// Refuses what is not a JSON Pointer.
pub fn check_pointer(pointer: &str) -> Outcome {
    if pointer.is_empty() || pointer.starts_with('/') {
        return Ok(());
    }
    Err(Fail::usage(format!(
        "`{pointer}` is not a JSON Pointer: it starts with `/` (e.g. `/servers/0/port`)"
    )))
}

/// Parses what a person typed as JSON, saying where it is wrong.
pub fn parse(text: &str, what: &str) -> Outcome<Value> {
    serde_json::from_str(text).map_err(|e| {
        // A bare word is most often a string typed without its quotes.
        let bare = text.trim_start().starts_with(|c: char| c.is_alphabetic())
            && !["true", "false", "null"].contains(&text.trim());
        let hint = if bare {
            " (a string needs double quotes, inside the shell's: '\"text\"')"
        } else {
            ""
        };
        Fail::usage(format!("{what} is not JSON: {e}{hint}"))
    })
}

/// Pretty JSON, as `get` prints it.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

/// One line of JSON, as `watch` prints it.
pub fn line(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_are_taken_off_and_put_back() {
        let stored = json!({"enduro_schema": 2, "value": {"a": 1}});
        let (schema, inner) = unwrap(&stored);
        assert_eq!((schema, inner), (Some(2), &json!({"a": 1})));
        assert_eq!(wrap(schema, inner.clone()), stored);
        let plain = json!({"enduro_schema": 2, "value": 1, "other": 3});
        assert_eq!(unwrap(&plain), (None, &plain));
    }

    #[test]
    fn pointers_replace_add_and_append() -> Outcome {
        let mut v = json!({"a": [1, 2], "b/c": {}});
        put(&mut v, "/a/0", json!(9))?;
        put(&mut v, "/a/-", json!(3))?;
        put(&mut v, "/b~1c/d", json!(true))?;
        put(&mut v, "/new", json!("x"))?;
        assert_eq!(v, json!({"a": [9, 2, 3], "b/c": {"d": true}, "new": "x"}));
        assert!(put(&mut v, "/a/7", json!(0)).is_err());
        assert!(put(&mut v, "/missing/x", json!(0)).is_err());
        assert!(put(&mut v, "a", json!(0)).is_err());
        put(&mut v, "", json!(1))?;
        assert_eq!(v, json!(1));
        Ok(())
    }
}
