//! How values become bytes: the [`Codec`] trait and the default [`Json`] codec.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;
use crate::roundtrip::RoundTrip;

/// Turns values into bytes and back.
///
/// A codec writes straight into the store's writer (a buffered temp file for the file
/// backend), so a large value is never held twice in memory. It must refuse a value that
/// would not read back as itself, so that a commit never stores something the next open
/// cannot decode.
///
/// ```
/// use enduro_core::{Codec, Json};
///
/// let mut out = Vec::new();
/// Json::default().encode(&vec![1, 2, 3], &mut out).unwrap();
/// assert_eq!(out, b"[1,2,3]");
/// let back: Vec<u32> = Json::default().decode(&out).unwrap();
/// assert_eq!(back, [1, 2, 3]);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// A short name used in error messages, e.g. `"JSON"`.
    fn name(&self) -> &'static str;

    /// Writes `value` to `out`.
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError>;

    /// Reads a value from `bytes`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// Whether `bytes` count as "no value yet", so that the atom's `init` is used.
    /// The default is "no bytes at all".
    ///
    /// ```
    /// use enduro_core::{Codec, Json};
    /// assert!(Json::default().is_blank(b" \n\t"));
    /// assert!(!Json::default().is_blank(b"0"));
    /// ```
    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.is_empty()
    }
}

/// JSON through serde_json: the default codec, readable and editable by hand.
///
/// It refuses to store NaN and infinite floats (JSON has no such numbers: serde_json
/// would silently write `null` and the value would not read back) and maps with keys that
/// are not strings or numbers. The check rides along with the encoding, so it costs
/// nothing like a decode. A blank (empty or whitespace-only) file counts as no value.
///
/// ```
/// use enduro_core::{Codec, Json};
///
/// let mut out = Vec::new();
/// let err = Json::default().encode(&vec![1.0, f64::NAN], &mut out).unwrap_err();
/// assert!(err.to_string().contains("NaN"), "{err}");
///
/// let mut out = Vec::new();
/// Json::pretty().encode(&[1], &mut out).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), "[\n  1\n]\n");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json {
    pretty: bool,
}

impl Json {
    /// Compact JSON on one line (the default).
    pub fn compact() -> Self {
        Json { pretty: false }
    }

    /// Indented JSON with a trailing newline, nicer to read and diff.
    pub fn pretty() -> Self {
        Json { pretty: true }
    }

    /// Whether this codec pretty-prints.
    ///
    /// ```
    /// assert!(enduro_core::Json::pretty().is_pretty());
    /// ```
    pub fn is_pretty(&self) -> bool {
        self.pretty
    }
}

impl Codec for Json {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        let value = RoundTrip::new(value);
        if self.pretty {
            let mut ser = serde_json::Serializer::pretty(&mut *out);
            value.serialize(&mut ser)?;
            out.write_all(b"\n")?;
        } else {
            value.serialize(&mut serde_json::Serializer::new(out))?;
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(u8::is_ascii_whitespace)
    }
}

/// A codec with the value type fixed, so that atoms can hold any codec behind one pointer.
pub(crate) trait TypedCodec<T>: Send + Sync {
    fn name(&self) -> &'static str;
    fn encode(&self, value: &T, out: &mut dyn Write) -> Result<(), CodecError>;
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
    fn is_blank(&self, bytes: &[u8]) -> bool;
}

pub(crate) struct Typed<C>(pub(crate) C);

impl<C: Codec, T: Serialize + DeserializeOwned> TypedCodec<T> for Typed<C> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn encode(&self, value: &T, out: &mut dyn Write) -> Result<(), CodecError> {
        self.0.encode(value, out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.0.decode(bytes)
    }
    fn is_blank(&self, bytes: &[u8]) -> bool {
        self.0.is_blank(bytes)
    }
}
