//! The atom's state machine, shared by the blocking and the async driver: the published
//! value and its version, the validator, the watches and their ordered delivery, and the
//! released flag. Drivers only add the calls to their store.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::codec::{Codec, Json, Typed, TypedCodec};
use crate::error::{Error, Result};
use crate::migrate::{Migrate, Migrator};
use crate::options::{Options, Replayer, Validator};
use crate::reentry;
use crate::store::{OpRecord, Replay, Snapshot, Step, Version};
use crate::value::Value;

/// A watch: called with `(old, new)` after each committed transition.
pub(crate) type Watch<T> = Arc<dyn Fn(&T, &T) + Send + Sync + 'static>;

/// Locks a mutex, ignoring poison: the state behind our locks is only ever replaced whole,
/// after a commit, so a panic elsewhere (in `f`, in a watch) cannot leave it half-done.
pub(crate) fn lock<G>(m: &Mutex<G>) -> MutexGuard<'_, G> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<G>(l: &RwLock<G>) -> RwLockReadGuard<'_, G> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<G>(l: &RwLock<G>) -> RwLockWriteGuard<'_, G> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

struct Current<T> {
    value: Arc<T>,
    version: Version,
    /// A digest of the stored bytes of `value`, when known (see [`digest`]).
    digest: Option<u64>,
}

/// A digest of stored bytes: an atom that finds the bytes it holds under a new version (a
/// file whose commit counter moved on before the new data was renamed in) takes the
/// version and shows no transition, since nothing changed.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Writes through to `out`, digesting what passes as it goes (the same [`digest`] as of
/// all the bytes at once; no copy is kept).
pub(crate) struct Digesting<'a> {
    out: &'a mut dyn Write,
    hasher: DefaultHasher,
}

impl<'a> Digesting<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> Self {
        Digesting {
            out,
            hasher: DefaultHasher::new(),
        }
    }

    /// The digest of what was written.
    pub(crate) fn digest(&self) -> u64 {
        self.hasher.finish()
    }
}

impl Write for Digesting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.write(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What the store holds at open: a value to adopt, or nothing, so `init` must be committed
/// over the given version.
pub(crate) enum Opening<T> {
    /// The value, its version, and the digest of its bytes (when it was read whole).
    Existing(T, Version, Option<u64>),
    /// The value migrated from an older schema (see [`Migrations`](crate::Migrations)) and
    /// the version it replaces: it must be committed over that version.
    Migrated(T, Version),
    Create(Version),
}

/// The outcome of one transaction: the values before and after.
pub(crate) struct Outcome<T> {
    pub(crate) old: Arc<T>,
    pub(crate) new: Arc<T>,
}

/// What a `try_swap` keeps of its update function's refusal: the one of the last run
/// (a run that succeeds after a refused one, on a value another writer changed,
/// forgets it), for the blocking and the async atom alike.
pub(crate) struct Refusal<E>(Option<E>);

impl<E> Refusal<E> {
    pub(crate) fn new() -> Self {
        Refusal(None)
    }

    /// The protocol's decision for one run of the update function: the new value, or
    /// none (nothing to commit) when it refused.
    pub(crate) fn decide<T>(&mut self, result: std::result::Result<T, E>) -> Option<Arc<T>> {
        match result {
            Ok(new) => {
                self.0 = None;
                Some(Arc::new(new))
            }
            Err(e) => {
                self.0 = Some(e);
                None
            }
        }
    }

    /// The transaction's result: the refusal, as it was, or `(old, new)`.
    pub(crate) fn into_result<T>(
        self,
        outcome: Outcome<T>,
    ) -> std::result::Result<(Arc<T>, Arc<T>), E> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok((outcome.old, outcome.new)),
        }
    }
}

pub(crate) struct Core<T> {
    resource: String,
    codec: Arc<dyn TypedCodec<T>>,
    current: RwLock<Current<T>>,
    validator: RwLock<Option<Validator<T>>>,
    watches: RwLock<Vec<(String, Watch<T>)>>,
    released: AtomicBool,
    /// Transitions committed but not yet shown to the watches, in commit order.
    events: Mutex<VecDeque<(Arc<T>, Arc<T>)>>,
    /// Held by the one thread delivering events, so that watches see them in order.
    delivering: Mutex<()>,
    /// The digest of the bytes of the commit under way, taken when it is published.
    committing: Mutex<Option<u64>>,
    /// The codec, for JSON data (ops), when it is not JSON.
    data: Option<Arc<dyn TypedCodec<serde_json::Value>>>,
    /// How to apply a stored op, when the atom was opened with `ops()`.
    ops: Option<Replayer<T>>,
    /// How to bring data of an older schema up to date, when the atom has migrations.
    migrations: Option<Migrator<T>>,
    /// A value that was current before the last op, kept to be brought up to date by that
    /// op instead of copying the current value (see `apply::next`).
    spare: Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>,
    /// The value for async code awaiting changes, updated as the watches are shown each
    /// transition.
    #[cfg(feature = "async")]
    changes: tokio::sync::watch::Sender<Arc<T>>,
}

impl<T: Value> Core<T> {
    /// Decides what to do with what the store holds at open.
    pub(crate) fn opening(
        resource: &str,
        options: &Options<T>,
        stored: Option<Replay>,
    ) -> Result<Opening<T>> {
        match stored {
            Some(replay)
                if !replay.ops.is_empty() || !options.codec.is_blank(&replay.base.bytes) =>
            {
                let (value, version, migrated) = rebuild(
                    resource,
                    &*options.codec,
                    options.data.as_deref(),
                    options.migrations.as_deref(),
                    options.ops.as_ref(),
                    &replay,
                )?;
                // The digest of the value's bytes, when it was read whole.
                let digest = replay.ops.is_empty().then(|| digest(&replay.base.bytes));
                // The stored value is not this handle's to change: an error that names
                // the resource, not the `Invalid` of a refused change.
                validate_with(options.validator.as_ref(), &value).map_err(|e| {
                    Error::InvalidStored {
                        resource: resource.to_owned(),
                        reason: match e {
                            Error::Invalid { reason } => reason,
                            _ => None,
                        },
                    }
                })?;
                if migrated {
                    return Ok(Opening::Migrated(value, version));
                }
                Ok(Opening::Existing(value, version, digest))
            }
            Some(blank) => Ok(Opening::Create(blank.base.version)),
            None => Ok(Opening::Create(Version::ABSENT)),
        }
    }

    pub(crate) fn new(
        resource: String,
        options: Options<T>,
        value: Arc<T>,
        version: Version,
        digest: Option<u64>,
    ) -> Self {
        Core {
            resource,
            codec: options.codec,
            data: options.data,
            ops: options.ops,
            migrations: options.migrations,
            spare: Mutex::new(None),
            #[cfg(feature = "async")]
            changes: tokio::sync::watch::Sender::new(Arc::clone(&value)),
            current: RwLock::new(Current {
                value,
                version,
                digest,
            }),
            validator: RwLock::new(options.validator),
            watches: RwLock::new(Vec::new()),
            released: AtomicBool::new(false),
            events: Mutex::new(VecDeque::new()),
            delivering: Mutex::new(()),
            committing: Mutex::new(None),
        }
    }

    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// Tells this atom apart from every other one alive (its address).
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Runs user code of this atom (an update function, a validator, an encoding), so that
    /// a call back into the atom from inside it fails fast instead of waiting for itself.
    pub(crate) fn user_code<R>(&self, code: impl FnOnce() -> R) -> R {
        reentry::running_user_code(self.id(), code)
    }

    /// Fails with [`Error::Reentrant`] when called from inside this atom's user code.
    pub(crate) fn refuse_reentry(&self, call: &'static str) -> Result<()> {
        reentry::refuse(self.id(), &self.resource, call)
    }

    pub(crate) fn value(&self) -> Arc<T> {
        Arc::clone(&read(&self.current).value)
    }

    pub(crate) fn current(&self) -> (Arc<T>, Version) {
        let current = read(&self.current);
        (Arc::clone(&current.value), current.version)
    }

    pub(crate) fn ensure_live(&self) -> Result<()> {
        if self.is_released() {
            Err(Error::Released)
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    pub(crate) fn mark_released(&self) -> Error {
        self.released.store(true, Ordering::Release);
        Error::Released
    }

    pub(crate) fn validate(&self, value: &T) -> Result<()> {
        let Some(validator) = read(&self.validator).clone() else {
            return Ok(());
        };
        self.user_code(|| validate_with(Some(&validator), value))
    }

    /// Encodes `value` into `out`, mapping a codec failure (or a panic in the value's
    /// `Serialize`) to [`Error::Encode`].
    pub(crate) fn encode(&self, value: &T, out: &mut dyn Write) -> Result<()> {
        self.user_code(|| encode_with(&self.resource, &*self.codec, value, out))
    }

    /// Encodes the value a commit stores, keeping the digest of its bytes for when the
    /// commit is published.
    pub(crate) fn encode_committed(&self, value: &T, out: &mut dyn Write) -> Result<()> {
        let mut digesting = Digesting::new(out);
        self.encode(value, &mut digesting)?;
        *lock(&self.committing) = Some(digesting.digest());
        Ok(())
    }

    /// Forgets the digest of an earlier commit's bytes, before a commit that may not
    /// encode the value at all (a store that keeps ops).
    pub(crate) fn forget_committing(&self) {
        *lock(&self.committing) = None;
    }

    /// Takes the spare value kept by the last op, if any.
    pub(crate) fn take_spare(&self) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        lock(&self.spare).take()
    }

    /// Keeps `spare` for the next op.
    pub(crate) fn keep_spare(&self, spare: Box<dyn std::any::Any + Send + Sync>) {
        *lock(&self.spare) = Some(spare);
    }

    /// Whether the atom stores ops where its store can (opened with `ops()`).
    pub(crate) fn keeps_ops(&self) -> bool {
        self.ops.is_some()
    }

    /// Encodes `op` as the store keeps it (with the codec; another codec than JSON encodes
    /// its JSON data) and decodes it back: the op an atom applies is the one a replay will
    /// apply, and an op that would not read back is refused here, before anything is
    /// written.
    pub(crate) fn encode_op<O: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        op: &O,
    ) -> Result<(Arc<[u8]>, O)> {
        let refused = |why: String| Error::Encode {
            resource: self.resource.clone(),
            codec: self.codec.name(),
            source: why.into(),
        };
        let panicked = |what: &str, panic: Box<dyn std::any::Any + Send>| {
            format!(
                "the op's {what} implementation panicked: {}",
                panic_message(&*panic)
            )
        };
        let mut bytes = Vec::new();
        let back = match &self.data {
            // JSON: the op itself, encoded and decoded as the codec does.
            None => {
                self.user_code(|| {
                    encode_with(&self.resource, &Typed(Json::default()), op, &mut bytes)
                })?;
                self.user_code(|| {
                    catch_unwind(AssertUnwindSafe(|| Json::default().decode::<O>(&bytes)))
                })
                .map_err(|panic| panicked("Deserialize", panic))
                .and_then(|back| back.map_err(|e| e.to_string()))
            }
            // Another codec: through the op's JSON data, refusing, as the JSON codec does,
            // what JSON would read back as something else (`Some(None)`, a NaN, nesting
            // deeper than it reads).
            Some(data) => {
                let guarded = crate::roundtrip::RoundTrip::new(op);
                let value = self
                    .user_code(|| catch_unwind(AssertUnwindSafe(|| serde_json::to_value(&guarded))))
                    .map_err(|panic| refused(panicked("Serialize", panic)))?
                    .map_err(|e| refused(format!("the op cannot be written as JSON data: {e}")))?;
                encode_with(&self.resource, &**data, &value, &mut bytes)?;
                data.decode(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|value| {
                        self.user_code(|| {
                            catch_unwind(AssertUnwindSafe(|| serde_json::from_value::<O>(value)))
                                .map_err(|panic| panicked("Deserialize", panic))?
                                .map_err(|e| e.to_string())
                        })
                    })
            }
        };
        let back = back.map_err(|why| {
            refused(format!(
                "the op would not read back as itself ({why}); nothing was written"
            ))
        })?;
        Ok((bytes.into(), back))
    }

    /// What writes `value` later, for an async store that may want it (see
    /// [`AsyncStore::commit_ops`](crate::AsyncStore::commit_ops)).
    #[cfg(feature = "async")]
    pub(crate) fn deferred(&self, value: Arc<T>) -> crate::async_atom::Deferred {
        let (resource, codec) = (self.resource.clone(), Arc::clone(&self.codec));
        Box::new(move |out| encode_with(&resource, &*codec, &value, out))
    }

    /// Encodes the value a commit stores into bytes (for an async store), keeping their
    /// digest for when the commit is published.
    #[cfg(feature = "async")]
    pub(crate) fn encode_to_vec(&self, value: &T) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.encode(value, &mut bytes)?;
        *lock(&self.committing) = Some(digest(&bytes));
        Ok(bytes)
    }

    /// Makes a committed value the current one and queues the transition for the watches.
    /// Called with the driver's commit lock held, so queue order is commit order.
    pub(crate) fn publish(&self, new: Arc<T>, version: Version, digest: Option<u64>) -> Arc<T> {
        let old = {
            let mut current = write(&self.current);
            current.version = version;
            current.digest = digest;
            std::mem::replace(&mut current.value, Arc::clone(&new))
        };
        lock(&self.events).push_back((Arc::clone(&old), new));
        old
    }

    /// Publishes a batch of transitions committed together: queues each for the watches,
    /// in order, and makes the last one current in one step, so `deref` never shows a
    /// value in between.
    pub(crate) fn publish_all<'a>(&self, values: impl Iterator<Item = &'a Arc<T>>, version: Version)
    where
        T: 'a,
    {
        let mut current = write(&self.current);
        let mut events = lock(&self.events);
        for value in values {
            let old = std::mem::replace(&mut current.value, Arc::clone(value));
            events.push_back((old, Arc::clone(value)));
        }
        current.version = version;
        current.digest = lock(&self.committing).take();
    }

    /// Whether `bytes` hold no value at all, as the codec sees them (an empty file).
    pub(crate) fn is_blank(&self, bytes: &[u8]) -> bool {
        self.codec.is_blank(bytes)
    }

    /// Records the version a background write produced (the value is already current).
    pub(crate) fn set_version(&self, version: Version) {
        let mut current = write(&self.current);
        current.version = version;
        current.digest = None;
    }

    /// Adopts what another writer committed: decodes it and publishes it. A resource
    /// emptied by hand (blank, as the codec sees it) counts as deleted, as at open: the
    /// atom is released (it has no value to go on from; the next open starts afresh).
    ///
    /// The validator is not run: it guards the values this atom stores, and the store is
    /// the truth about what others stored (refusing it would leave the atom unable to
    /// commit anything).
    pub(crate) fn adopt(&self, snapshot: Snapshot) -> Result<(Arc<T>, Version)> {
        if self.codec.is_blank(&snapshot.bytes) {
            return Err(self.mark_released());
        }
        let digest = digest(&snapshot.bytes);
        {
            let mut current = write(&self.current);
            if current.digest == Some(digest) {
                // The bytes this atom holds, under a new version: nothing to show.
                current.version = snapshot.version;
                return Ok((Arc::clone(&current.value), snapshot.version));
            }
        }
        let value = self.user_code(|| {
            decode(
                &self.resource,
                &*self.codec,
                self.data.as_deref(),
                self.migrations.as_deref(),
                &snapshot.bytes,
            )
        })?;
        let value = Arc::new(value.0);
        self.publish(Arc::clone(&value), snapshot.version, Some(digest));
        Ok((value, snapshot.version))
    }

    /// Adopts each of another writer's commits in turn (see
    /// [`Observed::Steps`](crate::store::Observed::Steps)), so that the watches see one
    /// transition per commit; the last step's value and version. No steps: the current
    /// value.
    pub(crate) fn adopt_steps(&self, steps: Vec<Step>) -> Result<(Arc<T>, Version)> {
        let mut last = self.current();
        for step in steps {
            last = match step {
                Step::Value(snapshot) => self.adopt(snapshot)?,
                Step::Op(op) => {
                    // The value before stays for the watches: the op goes on a copy.
                    let replayer = replayer(&self.resource, self.ops.as_ref(), &op)?;
                    let mut next = self
                        .user_code(|| catch_unwind(AssertUnwindSafe(|| (replayer.copy)(&last.0))))
                        .map_err(|panic| Error::Replay {
                            resource: self.resource.clone(),
                            at: op.at.clone(),
                            reason: format!(
                                "copying the value panicked: {}",
                                panic_message(&*panic)
                            ),
                        })?;
                    self.replay(&mut next, &op)?;
                    let value = Arc::new(next);
                    self.publish(Arc::clone(&value), op.version, None);
                    (value, op.version)
                }
            };
        }
        Ok(last)
    }

    /// Adopts what another writer left: a value with ops after it, applied here and shown
    /// to the watches as one transition (the store could not tell which of them this atom
    /// had seen). Without ops, as [`adopt`](Core::adopt).
    pub(crate) fn adopt_replay(&self, replay: Replay) -> Result<(Arc<T>, Version)> {
        if replay.ops.is_empty() {
            return self.adopt(replay.base);
        }
        let (value, version, _) = self.user_code(|| {
            rebuild(
                &self.resource,
                &*self.codec,
                self.data.as_deref(),
                self.migrations.as_deref(),
                self.ops.as_ref(),
                &replay,
            )
        })?;
        let value = Arc::new(value);
        self.publish(Arc::clone(&value), version, None);
        Ok((value, version))
    }

    /// `value` with the stored op `op` applied.
    fn replay(&self, value: &mut T, op: &OpRecord) -> Result<()> {
        let replayer = replayer(&self.resource, self.ops.as_ref(), op)?;
        self.user_code(|| replay(&self.resource, self.data.as_deref(), replayer, value, op))
    }

    /// Shows queued transitions to the watches, in order, on whichever thread gets here
    /// first; a thread that finds delivery under way leaves its events to that thread.
    /// A watch that panics is skipped (the panic hook has reported it); the commit stands.
    pub(crate) fn deliver(&self) {
        loop {
            let Ok(_delivering) = self.delivering.try_lock() else {
                return;
            };
            loop {
                let Some((old, new)) = lock(&self.events).pop_front() else {
                    break;
                };
                let watches: Vec<Watch<T>> = read(&self.watches)
                    .iter()
                    .map(|(_, w)| Arc::clone(w))
                    .collect();
                for watch in watches {
                    let _ = catch_unwind(AssertUnwindSafe(|| watch(&old, &new)));
                }
                #[cfg(feature = "async")]
                self.changes.send_replace(new);
            }
            drop(_delivering);
            if lock(&self.events).is_empty() {
                return;
            }
        }
    }

    /// A receiver of the value, marked changed after each transition is delivered.
    #[cfg(feature = "async")]
    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<Arc<T>> {
        self.changes.subscribe()
    }

    pub(crate) fn add_watch(&self, key: String, watch: Watch<T>) {
        let mut watches = write(&self.watches);
        match watches.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = watch,
            None => watches.push((key, watch)),
        }
    }

    pub(crate) fn remove_watch(&self, key: &str) -> bool {
        let mut watches = write(&self.watches);
        let before = watches.len();
        watches.retain(|(k, _)| k != key);
        watches.len() != before
    }

    pub(crate) fn set_validator(&self, validator: Validator<T>) -> Result<()> {
        let value = self.value();
        self.user_code(|| validate_with(Some(&validator), &value))?;
        *write(&self.validator) = Some(validator);
        Ok(())
    }

    pub(crate) fn clear_validator(&self) {
        *write(&self.validator) = None;
    }
}

/// The value `stored` holds, and its version: its last whole value decoded, then its ops
/// applied in place, in order.
fn rebuild<T: Value>(
    resource: &str,
    codec: &dyn TypedCodec<T>,
    data: Option<&dyn TypedCodec<serde_json::Value>>,
    migrations: Option<&dyn Migrate<T>>,
    replayer: Option<&Replayer<T>>,
    stored: &Replay,
) -> Result<(T, Version, bool)> {
    let (mut value, schema) = decode(resource, codec, data, migrations, &stored.base.bytes)?;
    let migrated = schema.is_some();
    if let (Some(schema), Some(op), Some(migrator)) = (schema, stored.ops.first(), migrations) {
        return Err(Error::Migration {
            resource: resource.to_owned(),
            step: u32::try_from(schema).unwrap_or(migrator.schema()),
            reason: format!(
                "{} holds ops stored after the value of schema {schema}: ops are not \
                 migrated (they are ops of the old type); open it once with the program \
                 that stored them and let it compact, then open it with this one",
                op.at
            ),
        });
    }
    for op in &stored.ops {
        replay(
            resource,
            data,
            self::replayer(resource, replayer, op)?,
            &mut value,
            op,
        )?;
    }
    Ok((value, stored.version(), migrated))
}

/// The atom's replayer, for the stored op `op`: [`Error::Replay`] when the atom was
/// opened without `ops()`.
fn replayer<'a, T>(
    resource: &str,
    replayer: Option<&'a Replayer<T>>,
    op: &OpRecord,
) -> Result<&'a Replayer<T>> {
    replayer.ok_or_else(|| Error::Replay {
        resource: resource.to_owned(),
        at: op.at.clone(),
        reason: format!(
            "the value is stored as ops, and this atom of `{}` was opened without `ops()`, \
             so it cannot apply them: open it with `ops()` (its type implements \
             `enduro::Apply`)",
            std::any::type_name::<T>()
        ),
    })
}

/// Applies the stored op `op` to `value` in place with `replayer`: an op that does not
/// decode, or an apply that panics (leaving `value` half-changed: the caller drops it),
/// is [`Error::Replay`], naming where the op is.
fn replay<T: Value>(
    resource: &str,
    data: Option<&dyn TypedCodec<serde_json::Value>>,
    replayer: &Replayer<T>,
    value: &mut T,
    op: &OpRecord,
) -> Result<()> {
    let failed = |reason: String| Error::Replay {
        resource: resource.to_owned(),
        at: op.at.clone(),
        reason,
    };
    let applied = match data {
        None => catch_unwind(AssertUnwindSafe(|| (replayer.apply_json)(value, &op.bytes))),
        Some(data) => {
            let decoded = data.decode(&op.bytes).map_err(|e| {
                failed(format!(
                    "the op does not decode as {} data: {e}",
                    data.name()
                ))
            })?;
            catch_unwind(AssertUnwindSafe(|| (replayer.apply_data)(value, decoded)))
        }
    };
    match applied {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(failed(format!(
            "the op does not decode as an op of `{}`: {why}",
            std::any::type_name::<T>()
        ))),
        Err(panic) => Err(failed(format!(
            "applying it panicked: {}",
            panic_message(&*panic)
        ))),
    }
}

/// Decodes stored bytes as the atom's value, migrating data of an older schema when the
/// atom has migrations: the value, and the schema it was migrated from (`None` when the
/// bytes were of the atom's schema).
fn decode<T: Value>(
    resource: &str,
    codec: &dyn TypedCodec<T>,
    data: Option<&dyn TypedCodec<serde_json::Value>>,
    migrations: Option<&dyn Migrate<T>>,
    bytes: &[u8],
) -> Result<(T, Option<u64>)> {
    let source = match codec.decode(bytes) {
        Ok(value) => return Ok((value, None)),
        Err(source) => source,
    };
    let failed = Error::Decode {
        resource: resource.to_owned(),
        type_name: std::any::type_name::<T>(),
        codec: codec.name(),
        source,
    };
    match migrations {
        Some(migrator) => migrator
            .migrate(resource, data, bytes, failed)
            .map(|(value, schema)| (value, Some(schema))),
        // Data in a schema envelope, which an atom without migrations cannot read.
        None => match codec.schema_of(bytes) {
            Some(stored) if stored > 0 => Err(Error::NewerSchema {
                resource: resource.to_owned(),
                stored,
                known: 0,
            }),
            _ => Err(failed),
        },
    }
}

/// Encodes `value` into `out` with the options' codec, mapping a failure to [`Error::Encode`].
pub(crate) fn encode<T: Value>(
    resource: &str,
    options: &Options<T>,
    value: &T,
    out: &mut dyn Write,
) -> Result<()> {
    encode_with(resource, &*options.codec, value, out)
}

/// Encodes with `codec`. A `Serialize` implementation that panics is an encoding failure
/// like any other: it must not take down a committer thread, nor leave a half-written
/// value behind (the store discards what was written on error).
fn encode_with<T>(
    resource: &str,
    codec: &dyn TypedCodec<T>,
    value: &T,
    out: &mut dyn Write,
) -> Result<()> {
    let source = match catch_unwind(AssertUnwindSafe(|| codec.encode(value, out))) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(source)) => source,
        Err(panic) => format!(
            "the value's Serialize implementation panicked: {}",
            panic_message(&*panic)
        )
        .into(),
    };
    Err(Error::Encode {
        resource: resource.to_owned(),
        codec: codec.name(),
        source,
    })
}

/// The message a panic was raised with, when it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs `validator` (if any) on `value`: [`Error::Invalid`] if it refuses.
pub(crate) fn validate_with<T>(validator: Option<&Validator<T>>, value: &T) -> Result<()> {
    match validator.map(|valid| valid(value)) {
        Some(Err(reason)) => Err(Error::Invalid { reason }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_taken_while_writing_is_the_digest_of_the_whole() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for chunk in [1, 3, 7, 8, 64, 1000, 10_000] {
            let mut out = Vec::new();
            let mut digesting = Digesting::new(&mut out);
            for piece in bytes.chunks(chunk) {
                digesting.write_all(piece).unwrap();
            }
            assert_eq!(digesting.digest(), digest(&bytes), "in pieces of {chunk}");
            assert_eq!(out, bytes);
        }
        assert_ne!(digest(b"16"), digest(b"17"));
    }
}
