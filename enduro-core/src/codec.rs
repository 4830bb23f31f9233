//! How values become bytes: the [`Codec`] trait and the default [`Json`] codec.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;
use crate::migrate::{Envelope, EnvelopeRef, Peek, other_schema};
use crate::roundtrip::RoundTrip;

/// Turns values into bytes and back.
///
/// A codec writes straight into the store's writer (a buffered temp file for the file
/// backend), so a large value is never held twice in memory. It must refuse a value that
/// would not read back as itself, so that a commit never stores something the next open
/// cannot decode, and it must fail rather than overflow the stack on any value, however
/// deep: a stack overflow aborts the whole process. Decoding must likewise fail cleanly
/// on any bytes.
///
/// ```
/// use enduro::{Codec, Json};
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
    /// use enduro::{Codec, Json};
    /// assert!(Json::default().is_blank(b" \n\t"));
    /// assert!(!Json::default().is_blank(b"0"));
    /// ```
    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.is_empty()
    }

    /// This codec writing the pretty (`pretty == true`) or the compact form of its format,
    /// or `None` when the format has no such choice (the default). Backs
    /// [`Options::pretty`](crate::Options::pretty): an atom asked for a pretty form its
    /// codec does not have fails to open instead of writing another format.
    ///
    /// ```
    /// use enduro::{Codec, Json};
    /// assert_eq!(Json::compact().styled(true), Some(Json::pretty()));
    /// ```
    fn styled(&self, pretty: bool) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = pretty;
        None
    }

    /// Whether the format describes itself: whether any bytes it wrote read back as a
    /// `serde_json::Value` without knowing the type (field names, sequences, maps and
    /// their lengths are in the bytes). Schema migrations
    /// (`Options::migrations`) and stored ops
    /// ([`Options::ops`](crate::Options::ops)) with a codec other than JSON travel through
    /// `serde_json::Value`, so an atom asking for either refuses to open with a codec that
    /// says `false` here. The default is `true`.
    ///
    /// ```
    /// use enduro::{Codec, Json};
    /// assert!(Json::default().is_self_describing());
    /// ```
    fn is_self_describing(&self) -> bool {
        true
    }
}

/// JSON through serde_json: the default codec, readable and editable by hand.
///
/// A blank (empty or whitespace-only) file counts as no value.
///
/// # What it refuses to store, and why
///
/// It refuses every value that would not read back as itself or could crash the encoder,
/// with an error that names the path to the culprit (`[0].prices[3]`): the `swap`,
/// `reset` or open fails with [`Error::Encode`] and nothing is stored.
///
/// - **NaN and infinite floats.** JSON has no such numbers: serde_json would write `null`.
/// - **More than 127 levels of nesting.** serde_json reads back no deeper (its recursion
///   limit), so the next open would fail. Levels count as JSON shows them: each
///   sequence, tuple, map, struct and byte string is one, an enum variant with data one
///   (`{"V":…}`), a tuple or struct variant two (`{"V":[…]}`); `Some`, newtype structs
///   and unit variants add none.
/// - **`Some` of a value written as `null`**: `Some(None)`, `Some(())`, `Some` of a unit
///   struct or of `serde_json::Value::Null`, anywhere in the value. It would be stored as
///   `null` and read back as `None`.
/// - **More than 128 `Some`s and newtype structs on the way to any value.** JSON shows no
///   level for them, so only this bound keeps encoding from overflowing the stack.
/// - **Map keys that are not strings, numbers, chars, bools or unit variants** (serde_json's
///   own rule).
///
/// The checks ride along with the encoding: a few branches per value, and nothing is
/// allocated unless a value is refused. Reading is serde_json's own: data nested deeper
/// than 127 levels (written by hand, say) is a clean [`Error::Decode`], never a crash.
///
/// What no serializer sees cannot be bounded: a `#[serde(transparent)]` struct or an
/// untagged newtype variant serializes its content with the same serializer, without a
/// call of its own, so a recursive type made only of those can still overflow the stack
/// (as it does with plain serde_json).
///
/// [`Error::Encode`]: crate::Error::Encode
/// [`Error::Decode`]: crate::Error::Decode
///
/// ```
/// use enduro::{Atom, Codec, Error, Json, Options};
///
/// let json = Json::default();
/// let err = json.encode(&vec![1.0, f64::NAN], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("NaN at [1]"), "{err}");
///
/// // Some(None) would be written as null and read back as None.
/// let err = json.encode(&vec![Some(None::<u8>)], &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("at [0]"), "{err}");
///
/// // 127 nested arrays read back; 128 would not.
/// let nested = |levels| (0..levels).fold(serde_json::json!(0), |v, _| serde_json::json!([v]));
/// json.encode(&nested(127), &mut Vec::new())?;
/// let err = json.encode(&nested(128), &mut Vec::new()).unwrap_err();
/// assert!(err.to_string().contains("at most 127"), "{err}");
///
/// // Data nested deeper by hand is a clean error when opened, not a crash.
/// let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
/// let store = enduro::MemStore::holding(deep.into_bytes());
/// let err = Atom::open(store, serde_json::Value::Null, Options::new()).unwrap_err();
/// assert!(matches!(err, Error::Decode { .. }), "{err}");
/// assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
///
/// let mut out = Vec::new();
/// Json::pretty().encode(&[1], &mut out)?;
/// assert_eq!(String::from_utf8(out)?, "[\n  1\n]\n");
/// # Ok::<(), enduro::CodecError>(())
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
    /// assert!(enduro::Json::pretty().is_pretty());
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

    fn styled(&self, pretty: bool) -> Option<Self> {
        Some(Json { pretty })
    }
}

/// A codec with the value type fixed, so that atoms can hold any codec behind one pointer.
pub(crate) trait TypedCodec<T>: Send + Sync {
    fn name(&self) -> &'static str;
    fn encode(&self, value: &T, out: &mut dyn Write) -> Result<(), CodecError>;
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;
    fn is_blank(&self, bytes: &[u8]) -> bool;
    /// The schema of `bytes`, when they hold a schema envelope (see
    /// [`Migrations`](crate::Migrations)).
    fn schema_of(&self, bytes: &[u8]) -> Option<u64>;
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
    fn schema_of(&self, bytes: &[u8]) -> Option<u64> {
        let peek: Peek = self.0.decode(bytes).ok()?;
        Some(peek.schema)
    }
}

/// The codec of an atom with migrations: writes the value in an envelope with its schema,
/// and reads envelopes of that schema (anything else is for the migrator).
struct Enveloped<C> {
    codec: Arc<Typed<C>>,
    schema: u32,
}

impl<C: Codec, T: Serialize + DeserializeOwned> TypedCodec<T> for Enveloped<C> {
    fn name(&self) -> &'static str {
        self.codec.0.name()
    }
    fn encode(&self, value: &T, out: &mut dyn Write) -> Result<(), CodecError> {
        let schema = self.schema;
        self.codec.0.encode(&EnvelopeRef { schema, value }, out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let envelope: Envelope<T> = self.codec.0.decode(bytes)?;
        if envelope.schema != u64::from(self.schema) {
            return Err(other_schema(envelope.schema, self.schema));
        }
        Ok(envelope.value)
    }
    fn is_blank(&self, bytes: &[u8]) -> bool {
        self.codec.0.is_blank(bytes)
    }
    fn schema_of(&self, bytes: &[u8]) -> Option<u64> {
        TypedCodec::<T>::schema_of(&*self.codec, bytes)
    }
}

/// A codec that makes sure each value it writes reads back: it encodes into memory,
/// decodes that, and only then writes (see [`Options::round_trip_check`]).
///
/// [`Options::round_trip_check`]: crate::Options::round_trip_check
pub(crate) struct Checked<T>(pub(crate) Arc<dyn TypedCodec<T>>);

impl<T> TypedCodec<T> for Checked<T> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn encode(&self, value: &T, out: &mut dyn Write) -> Result<(), CodecError> {
        let mut bytes = Vec::new();
        self.0.encode(value, &mut bytes)?;
        if let Err(e) = self.0.decode(&bytes) {
            return Err(format!(
                "the value encodes, but would not read back: {e} (a field skipped when \
                 written but required when read, or a type the format cannot read)"
            )
            .into());
        }
        out.write_all(&bytes)?;
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        self.0.decode(bytes)
    }
    fn is_blank(&self, bytes: &[u8]) -> bool {
        self.0.is_blank(bytes)
    }
    fn schema_of(&self, bytes: &[u8]) -> Option<u64> {
        self.0.schema_of(bytes)
    }
}

/// The codec an atom was given, kept generic until the atom opens, when
/// [`pretty`](crate::Options::pretty) and [`migrations`](crate::Options::migrations)
/// shape it.
pub(crate) trait Choice<T>: Send + Sync {
    fn name(&self) -> &'static str;
    fn is_self_describing(&self) -> bool;
    /// The codec in its pretty or compact form, if its format has the choice.
    fn styled(&self, pretty: bool) -> Option<Arc<dyn Choice<T>>>;
    /// The codec writing plain values.
    fn plain(&self) -> Arc<dyn TypedCodec<T>>;
    /// The codec writing values in an envelope of schema `schema`.
    fn enveloped(&self, schema: u32) -> Arc<dyn TypedCodec<T>>;
}

pub(crate) struct Chosen<C>(pub(crate) Arc<Typed<C>>);

impl<C: Codec> Chosen<C> {
    pub(crate) fn new(codec: C) -> Self {
        Chosen(Arc::new(Typed(codec)))
    }
}

impl<C: Codec, T: Serialize + DeserializeOwned> Choice<T> for Chosen<C> {
    fn name(&self) -> &'static str {
        self.0.0.name()
    }
    fn is_self_describing(&self) -> bool {
        self.0.0.is_self_describing()
    }
    fn styled(&self, pretty: bool) -> Option<Arc<dyn Choice<T>>> {
        let styled = self.0.0.styled(pretty)?;
        Some(Arc::new(Chosen::new(styled)))
    }
    fn plain(&self) -> Arc<dyn TypedCodec<T>> {
        Arc::clone(&self.0) as Arc<dyn TypedCodec<T>>
    }
    fn enveloped(&self, schema: u32) -> Arc<dyn TypedCodec<T>> {
        Arc::new(Enveloped {
            codec: Arc::clone(&self.0),
            schema,
        })
    }
}
