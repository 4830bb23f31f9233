//! Schema evolution: [`Migrations`], the envelope that stores the schema with the data,
//! and the migrator that brings old data up to date when it is read.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{Json, Typed, TypedCodec};
use crate::error::{CodecError, Error, Result};
use crate::state::panic_message;

/// The key of the schema in the envelope.
pub(crate) const SCHEMA_KEY: &str = "enduro_schema";
/// The key of the data in the envelope.
pub(crate) const VALUE_KEY: &str = "value";

/// One migration step, as [`Migrations`] keeps it.
type Step = dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

/// How stored data evolves with the program's types: an ordered list of steps, where step
/// `k` turns data of schema `k` into data of schema `k + 1`. Data written before an atom
/// had any migrations is schema 0; an atom with `n` steps writes schema `n`.
///
/// Give it to a builder (`FileAtom::builder(path).migrations(m)`,
/// `PgAtom::builder(db, table).migrations(m)`, [`Options::migrations`] for a store of
/// your own). Opening then reads the stored data's schema, runs the missing steps in
/// order on its `serde_json::Value` form (whatever the codec: data of another
/// self-describing format is transcoded), decodes the result as the atom's type and
/// commits it at once, with the usual version check: several processes opening old data
/// at the same moment store the migrated value exactly once (the others see it stored and
/// take it). Later opens run no step.
///
/// # Where the schema is kept
///
/// An atom with migrations stores its value inside an envelope of its format, so that the
/// schema and the data change together in one commit (a crash leaves both old or both
/// new):
///
/// ```json
/// {"enduro_schema":2,"value":{"name":"Ada","email":"ada@example.com"}}
/// ```
///
/// The file stays a plain file of its format (`value` holds the data), readable and
/// editable by hand. Data without the envelope is schema 0: data whose top level is a map
/// with exactly the keys `enduro_schema` and `value` is taken for an envelope, so a
/// type of your own must not look like that. A program without migrations reading data
/// of schema 1 or more refuses it with [`Error::NewerSchema`] when it does not decode as
/// its type.
///
/// # Errors, and what is never done
///
/// - A step that returns `Err` or panics, or a result that does not decode as the atom's
///   type, is [`Error::Migration`] naming the step and the resource; nothing is written
///   and the stored data stays byte for byte as it was.
/// - Data of a newer schema than the atom's steps reach is [`Error::NewerSchema`]: an old
///   program never overwrites data it does not understand.
/// - Steps must be pure (deterministic, no side effects): each process that opens old
///   data runs them, and an atom that reads old data written by another process after it
///   opened (an old program still running) migrates that too, in memory.
/// - Codecs that do not describe themselves ([`Codec::is_self_describing`], e.g.
///   postcard) cannot be migrated: opening with migrations fails before it reads anything.
/// - Ops (see [`Options::ops`]) stored after a value of an older schema cannot be
///   migrated (they are ops of the old type): opening fails with [`Error::Migration`] and
///   changes nothing; open it once with the program that wrote them, and compact.
///
/// [`Codec::is_self_describing`]: crate::Codec::is_self_describing
/// [`Options::migrations`]: crate::Options::migrations
/// [`Options::ops`]: crate::Options::ops
///
/// ```
/// use std::sync::Arc;
/// use enduro::store::Store;
/// use enduro::{Atom, MemStore, Migrations, Options};
/// use serde_json::{Value, json};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { name: String, email: String, admin: bool }
///
/// let migrations = Migrations::new()
///     // Schema 0 to 1: the field `mail` is now `email`.
///     .step(|mut user: Value| {
///         let mail = user["mail"].take();
///         let user = user.as_object_mut().ok_or("a user is an object")?;
///         user.remove("mail");
///         user.insert("email".into(), mail);
///         Ok::<_, &str>(json!(user))
///     })
///     // Schema 1 to 2: a new field `admin`, false for users stored before.
///     .step(|mut user: Value| {
///         user["admin"] = json!(false);
///         Ok::<_, &str>(user)
///     });
///
/// // Data a program without migrations stored: schema 0.
/// let cell = Arc::new(MemStore::holding(br#"{"name":"Ada","mail":"ada@example.com"}"#.to_vec()));
/// let init = User { name: String::new(), email: String::new(), admin: true };
/// let user = Atom::open(Arc::clone(&cell), init, Options::new().migrations(migrations))?;
/// assert_eq!(user.deref().email, "ada@example.com");
/// assert!(!user.deref().admin);
/// // Stored at once, at schema 2.
/// let stored: Value = serde_json::from_slice(&cell.load()?.unwrap().bytes)?;
/// assert_eq!(stored["enduro_schema"], 2);
/// assert_eq!(stored["value"]["email"], "ada@example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Migrations {
    steps: Vec<Arc<Step>>,
}

impl Migrations {
    /// No steps: data stays at schema 0.
    pub fn new() -> Self {
        Migrations::default()
    }

    /// Adds the next step: `step` turns data of schema `k` into data of schema `k + 1`,
    /// where `k` is the number of steps before it. An `Err` (any type that displays) stops
    /// the migration with [`Error::Migration`]; nothing is written.
    ///
    /// ```
    /// let m = enduro::Migrations::new()
    ///     .step(|v| Ok::<_, String>(serde_json::json!({ "count": v })));
    /// assert_eq!(m.schema(), 1);
    /// ```
    pub fn step<E: fmt::Display>(
        mut self,
        step: impl Fn(serde_json::Value) -> Result<serde_json::Value, E> + Send + Sync + 'static,
    ) -> Self {
        self.steps.push(Arc::new(move |value| {
            step(value).map_err(|e| e.to_string())
        }));
        self
    }

    /// The schema this program writes: the number of steps.
    ///
    /// ```
    /// assert_eq!(enduro::Migrations::new().schema(), 0);
    /// ```
    pub fn schema(&self) -> u32 {
        u32::try_from(self.steps.len()).unwrap_or(u32::MAX)
    }
}

impl fmt::Debug for Migrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migrations")
            .field("schema", &self.schema())
            .finish()
    }
}

/// Data as an atom with migrations writes it: its schema and the value.
pub(crate) struct EnvelopeRef<'a, T: ?Sized> {
    pub(crate) schema: u32,
    pub(crate) value: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for EnvelopeRef<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut envelope = serializer.serialize_struct("Envelope", 2)?;
        envelope.serialize_field(SCHEMA_KEY, &self.schema)?;
        envelope.serialize_field(VALUE_KEY, self.value)?;
        envelope.end()
    }
}

/// Data as an atom with migrations reads it: a map with exactly the keys `enduro_schema`
/// and `value`, in either order.
pub(crate) struct Envelope<V> {
    pub(crate) schema: u64,
    pub(crate) value: V,
}

/// Just the schema of an envelope, the value skipped.
pub(crate) type Peek = Envelope<IgnoredAny>;

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Envelope<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(
            "Envelope",
            &[SCHEMA_KEY, VALUE_KEY],
            EnvelopeVisitor(PhantomData),
        )
    }
}

struct EnvelopeVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<V> {
    type Value = Envelope<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map of `{SCHEMA_KEY}` and `{VALUE_KEY}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut schema, mut value) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Schema if schema.is_none() => schema = Some(map.next_value()?),
                Key::Value if value.is_none() => value = Some(map.next_value()?),
                Key::Schema => return Err(de::Error::duplicate_field(SCHEMA_KEY)),
                Key::Value => return Err(de::Error::duplicate_field(VALUE_KEY)),
            }
        }
        Ok(Envelope {
            schema: schema.ok_or_else(|| de::Error::missing_field(SCHEMA_KEY))?,
            value: value.ok_or_else(|| de::Error::missing_field(VALUE_KEY))?,
        })
    }
}

/// A key of the envelope; any other key is an error (it is not an envelope).
enum Key {
    Schema,
    Value,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{SCHEMA_KEY}` or `{VALUE_KEY}`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        match key {
            SCHEMA_KEY => Ok(Key::Schema),
            VALUE_KEY => Ok(Key::Value),
            other => Err(de::Error::unknown_field(other, &[SCHEMA_KEY, VALUE_KEY])),
        }
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Key, E> {
        match std::str::from_utf8(key) {
            Ok(key) => self.visit_str(key),
            Err(_) => Err(de::Error::custom("a key that is not UTF-8")),
        }
    }
}

/// What an atom with migrations knows to bring old data up to date. Behind a pointer, so
/// that a program without migrations links none of the `serde_json::Value` code it needs
/// (it is made only by [`Options::migrations`](crate::Options::migrations)).
pub(crate) type Migrator<T> = Arc<dyn Migrate<T>>;

/// Brings old data up to date: see [`Migrator`].
pub(crate) trait Migrate<T>: Send + Sync {
    /// The schema the atom writes.
    fn schema(&self) -> u32;

    /// Brings `bytes`, which the atom's codec could not decode as its current schema
    /// (`failed` is that error, returned when the bytes are of no older schema), up to date: reads their schema, runs the missing steps and
    /// decodes the result. `data` is the codec for the `serde_json::Value` form, when the
    /// atom's codec is not JSON.
    ///
    /// Returns the value and the schema the data had; errors are the atom's.
    fn migrate(
        &self,
        resource: &str,
        data: Option<&dyn TypedCodec<serde_json::Value>>,
        bytes: &[u8],
        failed: Error,
    ) -> Result<(T, u64)>;
}

/// The [`Migrate`] of a list of steps.
struct Steps<T> {
    migrations: Migrations,
    /// The codec for the data's `serde_json::Value` form, when the atom's codec is JSON
    /// (for another codec, the options carry it).
    json: Typed<Json>,
    _value: PhantomData<fn() -> T>,
}

/// The migrator of `migrations`, for values of type `T`.
pub(crate) fn migrator<T: DeserializeOwned + 'static>(migrations: Migrations) -> Migrator<T> {
    Arc::new(Steps::<T> {
        migrations,
        json: Typed(Json::default()),
        _value: PhantomData,
    })
}

impl<T: DeserializeOwned> Migrate<T> for Steps<T> {
    fn schema(&self) -> u32 {
        self.migrations.schema()
    }

    fn migrate(
        &self,
        resource: &str,
        data: Option<&dyn TypedCodec<serde_json::Value>>,
        bytes: &[u8],
        failed: Error,
    ) -> Result<(T, u64)> {
        let data = data.unwrap_or(&self.json);
        // Bytes that do not even read as data of the format: the codec's own error says it.
        let Ok(whole) = data.decode(bytes) else {
            return Err(failed);
        };
        let (stored, mut value) = split(whole);
        let known = self.schema();
        if stored > u64::from(known) {
            return Err(Error::NewerSchema {
                resource: resource.to_owned(),
                stored,
                known,
            });
        }
        if stored == u64::from(known) {
            // Data of the current schema that does not decode as the type.
            return Err(failed);
        }
        let from = u32::try_from(stored).unwrap_or(known);
        for step in from..known {
            let refused = |reason: String| Error::Migration {
                resource: resource.to_owned(),
                step,
                reason,
            };
            let run = &self.migrations.steps[step as usize];
            value = catch_unwind(AssertUnwindSafe(|| run(value)))
                .map_err(|panic| refused(format!("it panicked: {}", panic_message(&*panic))))?
                .map_err(refused)?;
        }
        let value = serde_json::from_value(value).map_err(|e| Error::Migration {
            resource: resource.to_owned(),
            step: known - 1,
            reason: format!(
                "the data it returned does not decode as `{}`: {e}",
                std::any::type_name::<T>()
            ),
        })?;
        Ok((value, stored))
    }
}

/// The schema of data in its `serde_json::Value` form and the data itself: the content of
/// an envelope, or schema 0 for anything else.
fn split(data: serde_json::Value) -> (u64, serde_json::Value) {
    if let serde_json::Value::Object(map) = &data
        && map.len() == 2
        && let Some(schema) = map.get(SCHEMA_KEY).and_then(serde_json::Value::as_u64)
        && map.contains_key(VALUE_KEY)
        && let serde_json::Value::Object(mut map) = data
    {
        let value = map.remove(VALUE_KEY).unwrap_or(serde_json::Value::Null);
        return (schema, value);
    }
    (0, data)
}

/// The codec error of data of another schema than the atom's codec reads.
pub(crate) fn other_schema(stored: u64, known: u32) -> CodecError {
    format!("the data is of schema {stored}, and this atom reads schema {known}").into()
}
