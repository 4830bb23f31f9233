//! Options every atom takes, whatever its backend: the codec and a validator.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::apply::Apply;
use crate::codec::{Checked, Choice, Chosen, Codec, Json, TypedCodec};
use crate::migrate::{Migrations, Migrator};
use crate::value::Value;

/// Decodes an op from its JSON data as the value's op type and applies it; `Err` says
/// why it could not be decoded.
type ApplyData<T> = dyn Fn(&mut T, serde_json::Value) -> Result<(), String> + Send + Sync;

/// Decodes an op from JSON bytes as the value's op type and applies it.
type ApplyJson<T> = dyn Fn(&mut T, &[u8]) -> Result<(), String> + Send + Sync;

/// How an atom opened with [`Options::ops`] applies stored ops.
pub(crate) struct Replayer<T> {
    /// Applies an op stored as JSON (the JSON codec).
    pub(crate) apply_json: Arc<ApplyJson<T>>,
    /// Applies an op given as JSON data (decoded by another codec).
    pub(crate) apply_data: Arc<ApplyData<T>>,
    /// Copies a value (`Clone`), for an op whose value before must be kept.
    pub(crate) copy: Arc<dyn Fn(&T) -> T + Send + Sync>,
}

impl<T> Clone for Replayer<T> {
    fn clone(&self) -> Self {
        Replayer {
            apply_json: Arc::clone(&self.apply_json),
            apply_data: Arc::clone(&self.apply_data),
            copy: Arc::clone(&self.copy),
        }
    }
}

/// When a change counts as done.
///
/// ```
/// use enduro::{CommitMode, Options};
///
/// let options = Options::<u64>::new().commit_mode(CommitMode::Background);
/// assert_eq!(options.mode(), CommitMode::Background);
/// assert_eq!(CommitMode::default(), CommitMode::Durable);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// The default: a change returns once it is durable; watches see it after that.
    #[default]
    Durable,
    /// A change returns once the new value is validated, known to encode and in memory;
    /// a background thread commits the latest value (many changes may share one write),
    /// and [`Atom::flush`](crate::Atom::flush) waits until everything acknowledged so far
    /// is durable. Dropping the last handle flushes. Trades durability for latency: a
    /// crash loses the changes not yet written, and watches run before the write.
    ///
    /// Meant for one writer: changes from other processes are not merged but overwritten
    /// (the last writer wins), as in duratom's asynchronous mode.
    Background,
}

/// A validator, as an atom keeps it: `Ok(())` accepts a value; `Err(reason)` refuses it
/// with [`Error::Invalid`](crate::Error::Invalid), whose message gives the reason if there
/// is one.
pub type Validator<T> = Arc<dyn Fn(&T) -> Result<(), Option<String>> + Send + Sync + 'static>;

/// What a validator function returns: a `bool` (`false` refuses the value), or a
/// `Result<(), E>` whose error says why the value is refused (it reaches the message of
/// [`Error::Invalid`](crate::Error::Invalid)).
///
/// ```
/// use enduro::Error;
///
/// let atom = enduro::mem_atom(5u32);
/// atom.set_validator(|n: &u32| *n <= 10)?;
/// assert!(matches!(atom.reset(11), Err(Error::Invalid { reason: None })));
///
/// atom.set_validator(|n: &u32| if *n <= 10 { Ok(()) } else { Err(format!("{n} is more than 10")) })?;
/// let err = atom.reset(11).unwrap_err();
/// assert!(err.to_string().contains("11 is more than 10"), "{err}");
/// # Ok::<(), enduro::Error>(())
/// ```
pub trait Validation {
    /// `Ok(())` to accept; `Err` to refuse, with the reason if there is one.
    fn into_result(self) -> Result<(), Option<String>>;
}

impl Validation for bool {
    fn into_result(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<E: fmt::Display> Validation for Result<(), E> {
    fn into_result(self) -> Result<(), Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Keeps a validator function in the form an atom keeps.
pub(crate) fn validator<T, V: Validation>(
    validator: impl Fn(&T) -> V + Send + Sync + 'static,
) -> Validator<T> {
    Arc::new(move |value| validator(value).into_result())
}

/// The options an atom is opened with: its codec (JSON unless chosen otherwise) and an
/// optional validator that the initial value and every new value must pass.
///
/// Backend builders (`FileAtom::builder`, ...) wrap this; use it directly with
/// [`Atom::open`](crate::Atom::open) on a store of your own.
///
/// ```
/// use enduro::{Json, Options};
///
/// let options = Options::<u32>::new().codec(Json::pretty()).validator(|n| *n < 10);
/// assert_eq!(options.codec_name(), "JSON");
/// assert!(options.has_validator());
/// ```
pub struct Options<T> {
    /// The codec as the atom uses it (see [`resolved`](Options::resolved)).
    pub(crate) codec: Arc<dyn TypedCodec<T>>,
    /// The codec chosen, kept generic until the atom opens, when `pretty` and the
    /// migrations shape it.
    choice: Arc<dyn Choice<T>>,
    /// What `pretty` asked for, kept apart until the atom opens, so that `codec` and
    /// `pretty` may come in either order.
    pretty: Option<bool>,
    /// Set by [`Options::migrations`].
    pub(crate) migrations: Option<Migrator<T>>,
    /// Set by [`Options::round_trip_check`] (or by a store that asks for it).
    round_trip_check: bool,
    pub(crate) validator: Option<Validator<T>>,
    pub(crate) mode: CommitMode,
    pub(crate) live: bool,
    /// The codec again, for JSON data, when it is not JSON: ops travel through
    /// `serde_json::Value` to and from another codec. (Made only for another codec, so that
    /// a build that never uses one links no `serde_json::Value` code.)
    pub(crate) data: Option<Arc<dyn TypedCodec<serde_json::Value>>>,
    /// Set by [`Options::ops`]: the atom stores ops where its store can, and replays them.
    pub(crate) ops: Option<Replayer<T>>,
}

impl<T: Value> Options<T> {
    /// Compact JSON and no validator.
    pub fn new() -> Self {
        let choice = Chosen::new(Json::default());
        Options {
            codec: Choice::<T>::plain(&choice),
            choice: Arc::new(choice),
            pretty: None,
            migrations: None,
            round_trip_check: false,
            validator: None,
            mode: CommitMode::Durable,
            live: false,
            data: None,
            ops: None,
        }
    }

    /// Uses `codec` to turn values into bytes and back.
    pub fn codec<C: Codec>(mut self, codec: C) -> Self {
        let json = (&codec as &dyn Any).is::<Json>();
        let choice = Chosen::new(codec);
        self.data =
            (!json).then(|| Arc::clone(&choice.0) as Arc<dyn TypedCodec<serde_json::Value>>);
        self.codec = Choice::<T>::plain(&choice);
        self.choice = Arc::new(choice);
        self
    }

    /// Writes the pretty form of the codec's format (with `true`: indented JSON, TOML with
    /// its tables apart, indented RON) or its compact form (with `false`), whatever codec
    /// of that format was chosen and in whichever order `codec` and `pretty` are called.
    /// Without it, the codec decides (compact JSON by default). It never replaces the
    /// codec: `pretty(true)` with a format that has no pretty form (CBOR, MessagePack,
    /// postcard) makes opening the atom fail, before anything is read or written;
    /// `pretty(false)` leaves such a codec as it is.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use enduro::store::Store;
    /// use enduro::{Atom, Json, MemStore, Options};
    ///
    /// let cell = Arc::new(MemStore::new());
    /// let options = Options::new().pretty(true).codec(Json::compact());
    /// Atom::open(Arc::clone(&cell), [1], options)?;
    /// assert_eq!(cell.load()?.unwrap().bytes, b"[\n  1\n]\n");
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.pretty = Some(pretty);
        self
    }

    /// Migrates stored data of an older schema when the atom opens, and stores the
    /// schema with the data: see [`Migrations`]. Opening fails if the codec's format does
    /// not describe itself ([`Codec::is_self_describing`]).
    ///
    /// ```
    /// use enduro::{Atom, MemStore, Migrations, Options};
    ///
    /// // Schema 0 stored a bare count; schema 1 stores `{"count": n}`.
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Hits { count: u64 }
    ///
    /// let migrations = Migrations::new()
    ///     .step(|count| Ok::<_, String>(serde_json::json!({ "count": count })));
    /// let old = MemStore::holding(b"41".to_vec());
    /// let hits = Atom::open(old, Hits { count: 0 }, Options::new().migrations(migrations))?;
    /// assert_eq!(hits.swap(|h| Hits { count: h.count + 1 })?.count, 42);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = Some(crate::migrate::migrator(migrations));
        self
    }

    /// With `true`, every value is decoded again right after it is encoded, before
    /// anything is written: a value that encodes but would not read back as the atom's
    /// type (a `#[serde(skip_serializing)]` field without a default, a `Deserialize` that
    /// refuses what `Serialize` wrote) fails with [`Error::Encode`](crate::Error::Encode)
    /// and is not stored. Costs one decode and one in-memory copy of the encoded value per
    /// commit. Memory atoms always check (their store asks for it, see
    /// [`Store::checks_round_trip`](crate::Store::checks_round_trip)), so that tests catch
    /// what production could not read back; so do atoms whose codec does not describe
    /// itself ([`Codec::is_self_describing`], postcard), since nothing can be checked while
    /// such a format is written (a `serde_json::Value` or an untagged enum, which postcard
    /// writes but can never read, is refused this way).
    ///
    /// ```
    /// use enduro::{Atom, Error, MemStore, Options};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Session { user: String, #[serde(skip_serializing)] token: String }
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("session.json");
    /// let init = Session { user: "ada".into(), token: "secret".into() };
    /// let err = enduro::FileAtom::builder(&path).round_trip_check(true).open(init).unwrap_err();
    /// assert!(matches!(err, Error::Encode { .. }), "{err}");
    /// assert!(err.to_string().contains("missing field `token`"), "{err}");
    /// assert!(!path.exists());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn round_trip_check(mut self, check: bool) -> Self {
        self.round_trip_check = check;
        self
    }

    /// The options as the atom uses them: [`pretty`](Options::pretty) applied to the
    /// codec, the [`migrations`](Options::migrations)' envelope and the
    /// [`round_trip_check`](Options::round_trip_check) added, or why they cannot be (the
    /// error names `resource`): `pretty(true)` with a format that has no pretty form,
    /// migrations or ops with a format that does not describe itself.
    /// [`Atom::open`](crate::Atom::open) does this; a builder calls it first to fail
    /// before it touches its store.
    ///
    /// ```
    /// let options = enduro::Options::<u8>::new().pretty(true).resolved("a cell")?;
    /// assert_eq!(options.codec_name(), "JSON");
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn resolved(mut self, resource: &str) -> crate::Result<Self> {
        let refused = |message: String| Err(crate::Error::backend(resource, message, None));
        if let Some(pretty) = self.pretty.take() {
            match self.choice.styled(pretty) {
                Some(styled) => self.choice = styled,
                None if pretty => {
                    return refused(format!(
                        "pretty(true) asks for the pretty form of the codec's format, and \
                         {} has none; nothing was opened: drop pretty(true), or choose a \
                         codec with a pretty form (JSON, TOML, RON)",
                        self.choice.name()
                    ));
                }
                None => {}
            }
        }
        if !self.choice.is_self_describing() {
            let what = match (&self.migrations, &self.ops) {
                (Some(_), _) => Some("migrations"),
                (None, Some(_)) => Some("ops()"),
                (None, None) => None,
            };
            if let Some(what) = what {
                return refused(format!(
                    "{what} need data that reads as `serde_json::Value`, and {} does not \
                     describe itself; nothing was opened: choose a self-describing codec \
                     (JSON, TOML, RON, CBOR, MessagePack)",
                    self.choice.name()
                ));
            }
        }
        self.codec = match &self.migrations {
            Some(migrator) if migrator.schema() > 0 => self.choice.enveloped(migrator.schema()),
            _ => self.choice.plain(),
        };
        // A format that does not describe itself cannot be checked while it is written
        // (nothing in the bytes says what they are), so every value is read back.
        if self.round_trip_check || !self.choice.is_self_describing() {
            self.codec = Arc::new(Checked(self.codec));
        }
        Ok(self)
    }

    /// Decodes stored bytes as these options' codec does (envelope included): for the
    /// conformance kit, which reads what a case stored with the codec the backend uses.
    #[cfg(feature = "conformance")]
    pub(crate) fn decode_stored(self, bytes: &[u8]) -> crate::Result<T> {
        let options = self.resolved("the stored bytes")?;
        options
            .codec
            .decode(bytes)
            .map_err(|source| crate::Error::Decode {
                resource: "the stored bytes".into(),
                type_name: std::any::type_name::<T>(),
                codec: options.codec.name(),
                source,
            })
    }

    /// Encodes `value` as these options' codec does: for the conformance kit, which plants
    /// bytes in the codec's format.
    #[cfg(feature = "conformance")]
    pub(crate) fn encode_value(self, value: &T) -> crate::Result<Vec<u8>> {
        let options = self.resolved("the planted bytes")?;
        let mut bytes = Vec::new();
        crate::state::encode("the planted bytes", &options, value, &mut bytes)?;
        Ok(bytes)
    }

    /// Whether these options' codec takes `bytes` for no value at all.
    #[cfg(feature = "conformance")]
    pub(crate) fn takes_as_blank(&self, bytes: &[u8]) -> bool {
        self.codec.is_blank(bytes)
    }

    /// The options for a store that asks every value to be checked (see
    /// [`Store::checks_round_trip`](crate::Store::checks_round_trip)).
    pub(crate) fn checked_if(mut self, check: bool) -> Self {
        self.round_trip_check |= check;
        self
    }

    /// Requires every value, the initial one included, to pass `validator`, which returns
    /// a `bool` or a `Result<(), E>` whose error says why (see [`Validation`]).
    pub fn validator<V: Validation>(
        mut self,
        validator: impl Fn(&T) -> V + Send + Sync + 'static,
    ) -> Self {
        self.validator = Some(self::validator(validator));
        self
    }

    /// When changes count as done: [`CommitMode::Durable`] (the default) or the opt-in
    /// [`CommitMode::Background`]. Only [`Atom`](crate::Atom) offers background mode.
    pub fn commit_mode(mut self, mode: CommitMode) -> Self {
        self.mode = mode;
        self
    }

    /// With `true`, the atom follows other writers' commits by itself: its store nudges
    /// it when the resource changes (see [`Store::follow`](crate::Store::follow)) and it
    /// refreshes soon after, so [`deref`](crate::Atom::deref) and the watches see them
    /// without a call to `refresh`. Opening fails if the store cannot follow.
    ///
    /// Other writers' commits reach the watches one catch-up at a time: commits in quick
    /// succession may arrive as one merged transition. Blocking atoms catch up on one
    /// follower thread per process (keep their watches short: they run there); async
    /// atoms as tasks on the runtime that opened them, for as long as it runs.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use enduro::{Atom, MemStore, Options};
    ///
    /// let cell = Arc::new(MemStore::new());
    /// let live = Atom::open(Arc::clone(&cell), 0, Options::new().live(true))?;
    /// let other = Atom::open(Arc::clone(&cell), 0, Options::new())?;
    /// other.swap(|n| n + 1)?;
    /// # let start = std::time::Instant::now();
    /// while *live.deref() != 1 {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// #   assert!(start.elapsed().as_secs() < 60);
    /// }
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }
}

impl<T> Options<T> {
    /// The chosen codec's name.
    pub fn codec_name(&self) -> &'static str {
        self.codec.name()
    }

    /// The commit mode.
    pub fn mode(&self) -> CommitMode {
        self.mode
    }

    /// Whether the atom follows other writers' commits by itself; see
    /// [`live`](Options::live).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the atom stores ops where its store can; see [`ops`](Options::ops).
    pub fn has_ops(&self) -> bool {
        self.ops.is_some()
    }

    /// Whether a validator is set.
    pub fn has_validator(&self) -> bool {
        self.validator.is_some()
    }
}

impl<T: Value + Apply> Options<T> {
    /// Stores ops, not whole values, where the store can: a file atom in journal mode
    /// appends each [`apply`](crate::Atom::apply)'s op to its journal (encoded with the
    /// codec) instead of the whole value, and compaction writes the value now and then.
    /// Every other store commits the value `apply` computes, as a swap does. An atom
    /// needs this to open a journal that holds ops (it replays them); one without it
    /// fails there with [`Error::Replay`](crate::Error::Replay).
    ///
    /// ```
    /// use enduro::{Apply, Atom, MemStore, Options};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Total(u64);
    /// impl Apply for Total {
    ///     type Op = u64;
    ///     fn apply(&mut self, add: &u64) { self.0 += add; }
    /// }
    ///
    /// let total = Atom::open(MemStore::new(), Total(0), Options::new().ops())?;
    /// assert_eq!(total.apply(5)?.0, 5);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn ops(mut self) -> Self {
        self.ops = Some(Replayer {
            apply_json: Arc::new(|value: &mut T, bytes| {
                let op: T::Op = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                value.apply(&op);
                Ok(())
            }),
            apply_data: Arc::new(|value: &mut T, data| {
                let op: T::Op = serde_json::from_value(data).map_err(|e| e.to_string())?;
                value.apply(&op);
                Ok(())
            }),
            copy: Arc::new(T::clone),
        });
        self
    }
}

impl<T: Value> Default for Options<T> {
    fn default() -> Self {
        Options::new()
    }
}

impl<T> Clone for Options<T> {
    fn clone(&self) -> Self {
        Options {
            codec: Arc::clone(&self.codec),
            choice: Arc::clone(&self.choice),
            pretty: self.pretty,
            migrations: self.migrations.clone(),
            round_trip_check: self.round_trip_check,
            validator: self.validator.clone(),
            mode: self.mode,
            live: self.live,
            data: self.data.clone(),
            ops: self.ops.clone(),
        }
    }
}

impl<T> fmt::Debug for Options<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("codec", &self.codec.name())
            .field("pretty", &self.pretty)
            .field("schema", &self.migrations.as_ref().map(|m| m.schema()))
            .field("round_trip_check", &self.round_trip_check)
            .field("validator", &self.validator.is_some())
            .field("mode", &self.mode)
            .field("live", &self.live)
            .field("ops", &self.ops.is_some())
            .finish()
    }
}

/// Gives a backend's builder the setters every atom takes — `codec`, `pretty`,
/// `migrations`, `round_trip_check`, `validator` and `commit_mode` — as inherent methods. The builder needs a field `options: Options<T>`
/// and `T: Value` in scope.
///
/// ```
/// use enduro::{Options, Value};
///
/// struct MyBuilder<T> {
///     options: Options<T>,
/// }
///
/// impl<T: Value> MyBuilder<T> {
///     enduro::store::option_setters!();
/// }
///
/// let b = MyBuilder { options: Options::<u8>::new() }.validator(|n| *n < 9);
/// assert!(b.options.has_validator());
/// ```
#[macro_export]
macro_rules! option_setters {
    () => {
        /// Uses `codec` instead of JSON.
        pub fn codec<C: $crate::Codec>(mut self, codec: C) -> Self {
            self.options = self.options.codec(codec);
            self
        }

        /// Writes indented JSON (with `true`) or compact JSON (with `false`), in whichever
        /// order it and `codec` are called; see [`Options::pretty`]($crate::Options::pretty).
        pub fn pretty(mut self, pretty: bool) -> Self {
            self.options = self.options.pretty(pretty);
            self
        }

        /// Migrates stored data of an older schema at open, and stores the schema with the
        /// data; see [`Migrations`]($crate::Migrations).
        pub fn migrations(mut self, migrations: $crate::Migrations) -> Self {
            self.options = self.options.migrations(migrations);
            self
        }

        /// Decodes every value again before it is written, refusing one that would not
        /// read back; see [`Options::round_trip_check`]($crate::Options::round_trip_check).
        pub fn round_trip_check(mut self, check: bool) -> Self {
            self.options = self.options.round_trip_check(check);
            self
        }

        /// Requires `init` (or the stored value) and every new value to pass `validator`;
        /// a value it refuses fails with [`Error::Invalid`]($crate::Error::Invalid).
        pub fn validator<V: $crate::Validation>(
            mut self,
            validator: impl Fn(&T) -> V + Send + Sync + 'static,
        ) -> Self {
            self.options = self.options.validator(validator);
            self
        }

        /// Chooses when changes count as done: [`CommitMode::Durable`]($crate::CommitMode)
        /// (the default) or the opt-in [`CommitMode::Background`]($crate::CommitMode),
        /// where swaps return at once and a background thread writes the latest value
        /// (see [`Atom::flush`]($crate::Atom::flush)).
        pub fn commit_mode(mut self, mode: $crate::CommitMode) -> Self {
            self.options = self.options.commit_mode(mode);
            self
        }
    };
}
