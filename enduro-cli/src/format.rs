//! The stored formats the tool reads and writes, through their self-describing form.

use std::path::Path;

use enduro::{Codec, Options};
use serde_json::Value;

use crate::fail::{Fail, Outcome};

/// A stored format, as `--format` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON (the default).
    Json,
    /// TOML (`enduro::Toml`).
    Toml,
    /// RON (`enduro::Ron`).
    Ron,
    /// CBOR (`enduro::Cbor`).
    Cbor,
    /// MessagePack (`enduro::MessagePack`).
    Msgpack,
    /// postcard: refused, since it does not describe itself.
    Postcard,
}

impl Format {
    /// The format a file's extension suggests; JSON otherwise.
    pub fn guess(path: &Path) -> Format {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("toml") => Format::Toml,
            Some("ron") => Format::Ron,
            Some("cbor") => Format::Cbor,
            Some("msgpack" | "mpk" | "mp") => Format::Msgpack,
            Some("postcard") => Format::Postcard,
            _ => Format::Json,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
            Format::Ron => "RON",
            Format::Cbor => "CBOR",
            Format::Msgpack => "MessagePack",
            Format::Postcard => "postcard",
        }
    }

    /// Whether the stored bytes are text, fit for a terminal.
    pub fn is_text(self) -> bool {
        matches!(self, Format::Json | Format::Toml | Format::Ron)
    }

    /// Refuses formats the tool cannot read without the program's type.
    pub fn check(self) -> Outcome {
        if self == Format::Postcard {
            return Err(Fail::usage(
                "postcard does not describe itself (no field names, no lengths of maps), so \
                 its bytes cannot be read without the program's own type; use the program, \
                 or store the atom in JSON, TOML, RON, CBOR or MessagePack",
            ));
        }
        Ok(())
    }

    /// Refuses to write formats whose values do not survive a trip through JSON: RON
    /// keeps the names of structs and enum variants (`Slow(3)`), which JSON drops (`[3]`),
    /// so a value written back would no longer read as the program's type. Likewise a
    /// TOML value holding dates or times (`stored`), which JSON has no type for.
    pub fn check_writable(self, stored: &Value) -> Outcome {
        if self == Format::Ron {
            return Err(Fail::usage(
                "RON names structs and enum variants (`Mode::Slow(3)` is `Slow(3)`), and \
                 those names do not survive a trip through JSON (it reads as `[3]`), so a \
                 value written back would no longer read as the program's type; nothing was \
                 written. `enduro edit` changes the RON text itself; `enduro get --raw` \
                 shows it",
            ));
        }
        if self == Format::Toml && has_toml_datetime(stored) {
            return Err(Fail::usage(
                "the value holds TOML dates or times, which JSON has no type for: written \
                 back, they would be strings, and the program could no longer read them; \
                 nothing was written. `enduro edit` changes the TOML text itself",
            ));
        }
        Ok(())
    }

    /// The value as people read it: TOML dates and times as their text.
    pub fn for_people(self, value: &Value) -> Value {
        match self {
            Format::Toml => toml_datetimes_as_text(value),
            _ => value.clone(),
        }
    }

    /// Reads stored bytes as a JSON value.
    pub fn decode(self, bytes: &[u8]) -> Result<Value, String> {
        let decoded = match self {
            Format::Json => enduro::Json::default().decode(bytes),
            Format::Toml => enduro::Toml::default().decode(bytes),
            Format::Ron => enduro::Ron::default().decode(bytes),
            Format::Cbor => enduro::Cbor.decode(bytes),
            Format::Msgpack => enduro::MessagePack.decode(bytes),
            Format::Postcard => return Err("postcard cannot be read without its type".into()),
        };
        decoded.map_err(|e| e.to_string())
    }

    /// Whether `bytes` hold no value yet (an empty file, say).
    pub fn is_blank(self, bytes: &[u8]) -> bool {
        match self {
            Format::Json => enduro::Json::default().is_blank(bytes),
            Format::Toml => enduro::Toml::default().is_blank(bytes),
            Format::Ron => enduro::Ron::default().is_blank(bytes),
            Format::Cbor => enduro::Cbor.is_blank(bytes),
            Format::Msgpack => enduro::MessagePack.is_blank(bytes),
            Format::Postcard => bytes.is_empty(),
        }
    }

    /// Whether stored bytes are in the pretty (multi-line) form of a text format, so that
    /// the tool writes that form back.
    pub fn looks_pretty(self, bytes: &[u8]) -> bool {
        matches!(self, Format::Json | Format::Ron) && bytes.trim_ascii().contains(&b'\n')
    }

    /// Atom options writing this format (pretty as asked, where the format has a pretty
    /// form), checking that every value reads back before it is written.
    pub fn options(self, pretty: bool) -> Outcome<Options<Value>> {
        self.check()?;
        let options = match self {
            Format::Json => Options::new(),
            Format::Toml => Options::new().codec(enduro::Toml::default()),
            Format::Ron => Options::new().codec(enduro::Ron::default()),
            Format::Cbor => Options::new().codec(enduro::Cbor),
            Format::Msgpack => Options::new().codec(enduro::MessagePack),
            Format::Postcard => unreachable!("refused by check"),
        };
        let pretty = pretty && matches!(self, Format::Json | Format::Ron);
        Ok(options.pretty(pretty).round_trip_check(true))
    }
}

/// How the `toml` crate shows a date or time to other formats: a map of this one key.
const TOML_DATETIME: &str = "$__toml_private_datetime";

fn toml_datetime(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(TOML_DATETIME)?.as_str(),
        _ => None,
    }
}

fn has_toml_datetime(value: &Value) -> bool {
    if toml_datetime(value).is_some() {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(has_toml_datetime),
        Value::Object(map) => map.values().any(has_toml_datetime),
        _ => false,
    }
}

fn toml_datetimes_as_text(value: &Value) -> Value {
    if let Some(text) = toml_datetime(value) {
        return Value::String(text.to_owned());
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(toml_datetimes_as_text).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), toml_datetimes_as_text(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
