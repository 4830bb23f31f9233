//! What a backend implements: moving bytes and versions, nothing more.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Which committed state of a resource a value came from.
///
/// Every commit names the version it replaces; a store refuses the commit with
/// [`Committed::Conflict`] when the resource is no longer at that version. Backends choose
/// what the two numbers mean: a counter bumped on every commit, and a fingerprint of
/// anything else that identifies the stored bytes (for files, the file's identity, so that
/// a file replaced by hand is noticed too).
///
/// ```
/// use enduro::Version;
///
/// assert_eq!(Version::ABSENT, Version::new(0, 0));
/// assert_ne!(Version::new(1, 7), Version::new(2, 7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// A counter the store bumps on each commit.
    pub generation: u64,
    /// Anything else that tells one stored state from another.
    pub fingerprint: u64,
}

impl Version {
    /// The version of a resource that does not exist (or holds nothing yet).
    pub const ABSENT: Version = Version {
        generation: 0,
        fingerprint: 0,
    };

    /// A version from its two parts.
    pub const fn new(generation: u64, fingerprint: u64) -> Self {
        Version {
            generation,
            fingerprint,
        }
    }
}

/// Stored bytes and the version they belong to.
///
/// ```
/// use enduro::Version;
/// use enduro::store::Snapshot;
///
/// let s = Snapshot { bytes: b"1".to_vec(), version: Version::new(1, 0) };
/// assert_eq!(s.bytes, b"1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The encoded value, exactly as stored.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
}

/// An op as a store keeps it (see [`Store::commit_ops`]): the encoded op, the version
/// the resource has once it is applied, and where the store keeps it (for errors).
///
/// ```
/// use enduro::Version;
/// use enduro::store::OpRecord;
///
/// let op = OpRecord { bytes: b"{\"Add\":1}".to_vec(), version: Version::new(3, 1), at: "record 3".into() };
/// assert_eq!(op.version.generation, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The op, encoded with the atom's codec, exactly as stored.
    pub bytes: Vec<u8>,
    /// The resource's version once this op is applied.
    pub version: Version,
    /// Where the store keeps it, for an error about it, e.g. ``the record at byte 8192 of
    /// the journal `/var/lib/app/.state.json.enduro-journal` ``.
    pub at: String,
}

/// What a store holds when it keeps ops: a whole value, then the ops committed after it,
/// oldest first. The atom decodes the value and applies each op (see
/// [`Apply`](crate::Apply)); the resource's version is the last op's (the value's when
/// there is none).
///
/// ```
/// use enduro::Version;
/// use enduro::store::{Replay, Snapshot};
///
/// let plain = Replay::from(Snapshot { bytes: b"1".to_vec(), version: Version::new(1, 1) });
/// assert!(plain.ops.is_empty());
/// assert_eq!(plain.version(), Version::new(1, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The last whole value stored.
    pub base: Snapshot,
    /// The ops committed after it, oldest first.
    pub ops: Vec<OpRecord>,
}

impl Replay {
    /// The resource's version: the last op's, or the value's.
    pub fn version(&self) -> Version {
        self.ops.last().map_or(self.base.version, |op| op.version)
    }
}

impl From<Snapshot> for Replay {
    fn from(base: Snapshot) -> Self {
        Replay {
            base,
            ops: Vec::new(),
        }
    }
}

/// One commit as a store kept it, for [`Observed::Steps`]: a whole value, or an op
/// applied to the state before it.
///
/// ```
/// use enduro::Version;
/// use enduro::store::{Snapshot, Step};
///
/// let step = Step::Value(Snapshot { bytes: b"2".to_vec(), version: Version::new(2, 1) });
/// assert_eq!(step.version(), Version::new(2, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A whole value.
    Value(Snapshot),
    /// An op, applied to the value of the step before (or the atom's value, for the
    /// first step).
    Op(OpRecord),
}

impl Step {
    /// The version the resource has after this step.
    pub fn version(&self) -> Version {
        match self {
            Step::Value(snapshot) => snapshot.version,
            Step::Op(op) => op.version,
        }
    }
}

impl From<Snapshot> for Step {
    fn from(snapshot: Snapshot) -> Self {
        Step::Value(snapshot)
    }
}

/// What [`Store::check`] found.
///
/// ```
/// use enduro::Version;
/// use enduro::store::{Observed, Snapshot, Step};
///
/// assert!(matches!(Observed::Unchanged, Observed::Unchanged));
/// let step = |n: u64| Step::Value(Snapshot { bytes: n.to_string().into_bytes(), version: Version::new(n, 1) });
/// // Two commits by someone else, each kept: the watches see 1 -> 2, then 2 -> 3.
/// let seen = Observed::Steps(vec![step(2), step(3)]);
/// assert!(matches!(seen, Observed::Steps(steps) if steps.len() == 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The resource is still at the version the atom knows.
    Unchanged,
    /// Someone else committed: here is what the resource holds now.
    Changed(Snapshot),
    /// Someone else committed several times, and the store kept every value (a journal
    /// does): each state since the known version, oldest first, the last being what the
    /// resource holds now. The atom shows its watches one transition per step. A store
    /// that keeps only the latest value returns [`Changed`](Observed::Changed); an empty
    /// list counts as [`Unchanged`](Observed::Unchanged).
    Steps(Vec<Step>),
    /// Someone else committed, and the resource holds a value with ops after it (a store
    /// that keeps ops, see [`Store::commit_ops`]) that the store cannot tell apart from
    /// the states this atom knows: the atom applies them and shows its watches one
    /// transition, to the result.
    Replay(Replay),
    /// The resource is gone (released by another handle or process).
    Missing,
}

/// What [`Store::commit`] did.
///
/// ```
/// use enduro::Version;
/// use enduro::store::Committed;
/// assert_ne!(Committed::Done(Version::new(1, 0)), Committed::Conflict);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The new value is durable; this is its version.
    Done(Version),
    /// The resource was no longer at the expected version; nothing was written.
    Conflict,
}

/// Writes the encoded value into the store's writer (straight into a temp file, a buffer,
/// ...). It fails with [`Error::Encode`](crate::Error::Encode) when the value cannot be
/// encoded; the store then returns that error as it is and stores nothing.
pub type Encoder<'a> = &'a mut dyn FnMut(&mut dyn Write) -> Result<()>;

/// How a store tells a live atom that its resource may have changed: the store calls
/// [`changed`](Nudge::changed) (or [`changed_to`](Nudge::changed_to), when it knows the
/// new version) and the atom catches up soon after, off the caller's thread, as
/// [`refresh`](crate::Atom::refresh) would. Nudges are cheap, never block and may be
/// spurious; bursts of them are merged into one catch-up.
///
/// The atom makes its nudge and hands it to [`Store::follow`]; a store of your own only
/// keeps it and calls it. Tests may make one with [`Nudge::new`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use enduro::store::Nudge;
///
/// let seen = Arc::new(AtomicUsize::new(0));
/// let nudge = {
///     let seen = Arc::clone(&seen);
///     Nudge::new(move |_version| { seen.fetch_add(1, Ordering::Relaxed); })
/// };
/// nudge.changed();
/// nudge.changed_to(enduro::Version::new(3, 1));
/// assert_eq!(seen.load(Ordering::Relaxed), 2);
/// ```
#[derive(Clone)]
pub struct Nudge(Arc<dyn Fn(Option<Version>) + Send + Sync>);

impl Nudge {
    /// A nudge that calls `react` with the version the resource is known to be at now,
    /// when the store knows it.
    pub fn new(react: impl Fn(Option<Version>) + Send + Sync + 'static) -> Self {
        Nudge(Arc::new(react))
    }

    /// The resource may have changed: the atom checks it.
    pub fn changed(&self) {
        (self.0)(None);
    }

    /// The resource changed to `version`: an atom already at it does nothing.
    pub fn changed_to(&self, version: Version) {
        (self.0)(Some(version));
    }
}

impl fmt::Debug for Nudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nudge")
    }
}

/// Keeps a store following its resource for one live atom (see [`Store::follow`]);
/// dropping it stops the nudges and frees what the following held (a watch, a
/// listener), once no other atom needs it.
///
/// ```
/// use enduro::store::Subscription;
///
/// struct Unwatch; // would remove a watch in its `Drop`
/// let subscription = Subscription::new(Unwatch);
/// drop(subscription);
/// ```
pub struct Subscription(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Subscription {
    /// A subscription that drops `guard` when it ends.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Subscription(Box::new(guard))
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

/// A new incarnation number for a resource being created: different in every process and
/// every call (it mixes the clock, the process id, a counter and the operating system's
/// randomness), and never 0. A store that keeps it beside its generation counter, as the
/// [`Version`]'s fingerprint, gives a resource released and made again versions that no
/// handle of the old one can match (see the [`Store`] contract's **Versions**).
///
/// ```
/// let a = enduro::store::new_incarnation();
/// let b = enduro::store::new_incarnation();
/// assert_ne!(a, b);
/// assert_ne!(a, 0);
/// ```
pub fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // RandomState is seeded from the operating system's randomness.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now);
    hasher.write_u32(std::process::id());
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}

/// The error of a store that cannot follow its resource: live atoms need
/// [`Store::follow`].
pub(crate) fn cannot_follow(resource: String) -> Error {
    Error::backend(
        resource,
        "this store cannot follow other writers' commits, so the atom cannot be live; \
         open it without `live(true)` and call `refresh()` to pick up other writers' commits",
        None,
    )
}

/// Commits `bytes`, encoded already, to a blocking store: what an async face of a
/// blocking store does ([`OffThread`](crate::OffThread), and the tests' `Inline`). A write
/// failure is the store's own (it reports its I/O errors itself).
#[cfg(feature = "async")]
pub(crate) fn commit_bytes<S: Store + ?Sized>(
    store: &S,
    expected: Version,
    bytes: &[u8],
) -> Result<Committed> {
    store.commit(expected, &mut |out| {
        out.write_all(bytes).map_err(|e| {
            let message = format!("cannot write the value: {e}");
            Error::backend(store.resource(), message, Some(Box::new(e)))
        })
    })
}

/// Commits `ops` to a blocking store, with the value written by `value` if the store asks
/// for it: what an async face of a blocking store does ([`OffThread`](crate::OffThread),
/// and the tests' `Inline`).
#[cfg(feature = "async")]
pub(crate) fn commit_ops_deferred<S: Store + ?Sized>(
    store: &S,
    expected: Version,
    ops: &[Arc<[u8]>],
    value: crate::Deferred,
) -> Result<Committed> {
    let ops: Vec<&[u8]> = ops.iter().map(|op| &op[..]).collect();
    let mut value = Some(value);
    store.commit_ops(expected, &ops, &mut |out| match value.take() {
        Some(value) => value(out),
        None => Err(Error::backend(
            store.resource(),
            "the store asked for the value twice",
            None,
        )),
    })
}

/// Encoded `bytes` as a [`Deferred`](crate::Deferred) value: writing them fails only if
/// the writer does, which is `resource`'s error.
#[cfg(feature = "async")]
pub(crate) fn deferred_bytes(resource: String, bytes: Vec<u8>) -> crate::Deferred {
    Box::new(move |out| {
        out.write_all(&bytes).map_err(|e| {
            let message = format!("cannot write the value: {e}");
            Error::backend(resource, message, Some(Box::new(e)))
        })
    })
}

/// A blocking backend: one resource (a file, a database row, a memory cell) holding one
/// encoded value and its [`Version`].
///
/// Backends only move bytes and versions; everything an atom promises (validators,
/// watches, retries, group commit, publishing) is done once, in
/// [`Atom`](crate::Atom). Check a store of your own against the contract below with the
/// conformance kit (enduro-core's `conformance` feature).
///
/// # Contract
///
/// **Versions.** Every commit gives the resource a [`Version`] it never had before — also
/// across [`release`](Store::release) and re-creation: a handle that knew the resource
/// before it was released must never find its old version again, or its next commit would
/// overwrite the new value. [`Version::ABSENT`] means "does not exist" and is never the
/// version of stored data. (A counter that survives release, a random incarnation, or a
/// timestamp at creation all do.)
///
/// **Compare-and-set.** [`commit`](Store::commit) stores the new bytes if and only if the
/// resource is at `expected`, atomically with respect to every other handle and process
/// using the resource; otherwise it returns [`Committed::Conflict`] and writes nothing.
/// `Done` is returned only once the new value would survive a crash (as far as the backend
/// can promise; say what it promises in its docs).
///
/// **Errors.** An error from any method means nothing changed, with two exceptions the
/// atom relies on:
/// - The encoder's error is the store's error: when `encode` fails (always with
///   [`Error::Encode`](crate::Error::Encode)), `commit` returns that error unchanged and
///   stores nothing. A store never reports its own failures as `Encode`: the atom treats
///   `Encode` as "this value cannot be stored" and fails only the swap that made it.
/// - A commit whose outcome the store cannot know (an answer lost with its connection, an
///   fsync that failed after the new data was put in place) returns
///   [`Error::Uncertain`](crate::Error::Uncertain), never a plain error (the atom would
///   take it for "nothing happened", and the change could be applied twice) and never
///   `Ok`. The atom then [`load`](Store::load)s to learn what the store holds.
///
/// **Release.** [`release`](Store::release) deletes the resource; releasing what is gone
/// is not an error. Afterwards `load` returns `None`, `check` returns
/// [`Observed::Missing`], and a commit over any version but `ABSENT` returns `Conflict`.
/// A commit over `ABSENT` creates the resource again, under versions that never repeat
/// old ones. A commit over a version of the released resource (re-created since or not)
/// may also fail with [`Error::Released`](crate::Error::Released) instead of `Conflict`:
/// then the atom counts as released, for every clone. A store that cannot tell its
/// handles apart (one memory cell shared by several atoms) knows only from the version
/// that the value it names is gone.
///
/// **Threads.** A store is shared by all clones of one atom and called from many threads.
/// The atom never runs two commits of one store value at the same time, but other atoms,
/// handles and processes on the same resource may: the compare-and-set is what keeps them
/// apart.
///
/// **Following** (for live atoms; optional). [`follow`](Store::follow) keeps `nudge` and
/// calls it whenever the resource may have changed — committed to or released by any
/// handle, in this process or another — until the returned [`Subscription`] drops. A
/// nudge may be spurious, and late, but a change must not go unnoticed: a store that
/// loses sight of its resource for a while (a lost connection) nudges once when it sees
/// it again. It never blocks nor calls the store from inside a nudge. The default
/// refuses: such a store's atoms cannot be live.
///
/// **Ops** (optional). A store may keep ops instead of whole values
/// ([`commit_ops`](Store::commit_ops)): then [`load_replay`](Store::load_replay) returns
/// the last whole value and the ops after it, [`check`](Store::check) returns them as
/// [`Observed::Steps`] (one per op, since the known version) or [`Observed::Replay`],
/// and [`load`](Store::load) may fail while ops follow the last value (it has no value to
/// give). Every op gets a version of its own, under the same rules as a commit's.
///
/// **Names.** [`resource`](Store::resource) names the resource for error messages and
/// never includes a password.
///
/// ```
/// use enduro::store::{Committed, Encoder, Observed, Snapshot, Store};
/// use enduro::{Atom, Result, Version};
/// use std::sync::Mutex;
///
/// /// The smallest possible store: one cell in memory.
/// #[derive(Default)]
/// struct Cell(Mutex<(Option<Snapshot>, u64)>); // the value, and the last generation used
///
/// impl Store for Cell {
///     fn resource(&self) -> String { "a memory cell".into() }
///     fn load(&self) -> Result<Option<Snapshot>> { Ok(self.0.lock().unwrap().0.clone()) }
///     fn check(&self, known: Version) -> Result<Observed> {
///         Ok(match &self.0.lock().unwrap().0 {
///             Some(s) if s.version == known => Observed::Unchanged,
///             Some(s) => Observed::Changed(s.clone()),
///             None => Observed::Missing,
///         })
///     }
///     fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
///         let mut cell = self.0.lock().unwrap();
///         let current = cell.0.as_ref().map_or(Version::ABSENT, |s| s.version);
///         if current != expected {
///             return Ok(Committed::Conflict);
///         }
///         let mut bytes = Vec::new();
///         encode(&mut bytes)?; // an encoding error goes back as it is
///         cell.1 += 1; // never reset, so versions never repeat, even after a release
///         let version = Version::new(cell.1, 0);
///         cell.0 = Some(Snapshot { bytes, version });
///         Ok(Committed::Done(version))
///     }
///     fn release(&self) -> Result<()> { self.0.lock().unwrap().0 = None; Ok(()) }
///     fn cheap_check(&self) -> bool { true } // a look at memory
/// }
///
/// let atom = Atom::open(Cell::default(), 1u32, Default::default())?;
/// assert_eq!(*atom.swap(|n| n + 1)?, 2);
/// # Ok::<(), enduro::Error>(())
/// ```
pub trait Store: Send + Sync + 'static {
    /// Names the resource for error messages, e.g. ``file `/var/lib/app/state.json` ``.
    /// Never includes a password.
    fn resource(&self) -> String;

    /// Reads the stored bytes and their version, exactly as stored; `None` when the
    /// resource does not exist. Changes nothing.
    fn load(&self) -> Result<Option<Snapshot>>;

    /// Tells whether the resource is still at version `known` ([`Observed::Unchanged`]),
    /// holds something else ([`Observed::Changed`], with what it holds now), or is gone
    /// ([`Observed::Missing`]). Cheap when nothing changed, where the backend allows (a
    /// file store compares a counter and the file's identity, reading no data). Changes
    /// nothing.
    fn check(&self, known: Version) -> Result<Observed>;

    /// Replaces the stored value with what `encode` writes, if and only if the resource is
    /// at version `expected` ([`Version::ABSENT`]: it does not exist yet), and returns its
    /// new version once it would survive a crash. See the contract above for conflicts,
    /// encoder errors and unknown outcomes.
    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed>;

    /// Like [`commit`](Store::commit), for a change made of ops (see
    /// [`Atom::apply`](crate::Atom::apply)): `ops` are the encoded ops, oldest first, that
    /// turn the value at `expected` into the value `encode` writes. A store that keeps ops
    /// stores them (one commit, one flush) and gives the resource one new version per op,
    /// so that other atoms see one transition per op; it may call `encode` too, to store
    /// the whole value instead (when it compacts). It must then return them from
    /// [`load_replay`](Store::load_replay) and [`check`](Store::check).
    ///
    /// The default stores the whole value: `commit(expected, encode)`, what every store
    /// that keeps only values does.
    fn commit_ops(
        &self,
        expected: Version,
        ops: &[&[u8]],
        encode: Encoder<'_>,
    ) -> Result<Committed> {
        let _ = ops;
        self.commit(expected, encode)
    }

    /// What [`load`](Store::load) reads, for a store that may hold ops after its last
    /// whole value (see [`commit_ops`](Store::commit_ops)): the value and those ops. The
    /// default is `load`'s snapshot with no ops.
    fn load_replay(&self) -> Result<Option<Replay>> {
        Ok(self.load()?.map(Replay::from))
    }

    /// Deletes the resource. Other handles then see it as [`Observed::Missing`]; releasing
    /// a resource that is gone succeeds.
    fn release(&self) -> Result<()>;

    /// Whether [`check`](Store::check) is cheap enough (a few local system calls, no
    /// round trip) to run before every swap, so that `f` starts from the latest value.
    ///
    /// The default, `false`, is right for any store behind a network: swaps go straight to
    /// the commit, whose version check catches other writers, and a conflict reloads — one
    /// round trip per swap when nobody else wrote. Local stores (memory, files) return
    /// `true`. `refresh` always checks.
    fn cheap_check(&self) -> bool {
        false
    }

    /// Whether atoms on this store must decode every value right after encoding it, and
    /// refuse one that would not read back, as
    /// [`Options::round_trip_check`](crate::Options::round_trip_check) asks. The default
    /// is `false`; the memory store says `true`, so that tests refuse at commit what a
    /// durable store could not read back at the next open.
    fn checks_round_trip(&self) -> bool {
        false
    }

    /// Starts calling `nudge` whenever the resource may have changed, until the returned
    /// [`Subscription`] drops; see the contract above. The default fails: this store's
    /// atoms cannot be live.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        let _ = nudge;
        Err(cannot_follow(self.resource()))
    }
}

/// Stores behind a pointer are stores: `Arc<S>` lets several atoms (in tests, say) open
/// one resource; `Box<dyn Store>` lets the backend be chosen at run time.
macro_rules! forward_store {
    ($($pointer:ident)::+) => {
        impl<S: Store + ?Sized> Store for $($pointer)::+<S> {
            fn resource(&self) -> String {
                (**self).resource()
            }
            fn load(&self) -> Result<Option<Snapshot>> {
                (**self).load()
            }
            fn check(&self, known: Version) -> Result<Observed> {
                (**self).check(known)
            }
            fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
                (**self).commit(expected, encode)
            }
            fn commit_ops(
                &self,
                expected: Version,
                ops: &[&[u8]],
                encode: Encoder<'_>,
            ) -> Result<Committed> {
                (**self).commit_ops(expected, ops, encode)
            }
            fn load_replay(&self) -> Result<Option<Replay>> {
                (**self).load_replay()
            }
            fn release(&self) -> Result<()> {
                (**self).release()
            }
            fn cheap_check(&self) -> bool {
                (**self).cheap_check()
            }
            fn checks_round_trip(&self) -> bool {
                (**self).checks_round_trip()
            }
            fn follow(&self, nudge: Nudge) -> Result<Subscription> {
                (**self).follow(nudge)
            }
        }
    };
}

forward_store!(std::sync::Arc);
forward_store!(Box);
