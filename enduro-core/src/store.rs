//! What a backend implements: moving bytes and versions, nothing more.

use std::io::Write;

use crate::error::Result;

/// Which committed state of a resource a value came from.
///
/// Every commit names the version it replaces; a store refuses the commit with
/// [`Committed::Conflict`] when the resource is no longer at that version. Backends choose
/// what the two numbers mean: a counter bumped on every commit, and a fingerprint of
/// anything else that identifies the stored bytes (for files, the file's identity, so that
/// a file replaced by hand is noticed too).
///
/// ```
/// use enduro_core::Version;
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
/// use enduro_core::{Snapshot, Version};
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

/// What [`Store::check`] found.
///
/// ```
/// use enduro_core::Observed;
/// assert!(matches!(Observed::Unchanged, Observed::Unchanged));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The resource is still at the version the atom knows.
    Unchanged,
    /// Someone else committed: here is what the resource holds now.
    Changed(Snapshot),
    /// The resource is gone (released by another handle or process).
    Missing,
}

/// What [`Store::commit`] did.
///
/// ```
/// use enduro_core::{Committed, Version};
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
/// encoded; the store then discards whatever it wrote.
pub type Encoder<'a> = &'a mut dyn FnMut(&mut dyn Write) -> Result<()>;

/// A blocking backend: one resource (a file, a database row, a memory cell) holding one
/// encoded value and its [`Version`].
///
/// Backends only move bytes and versions; everything an atom promises (validators,
/// watches, retries, publishing) is done once, in [`Atom`](crate::Atom). A store is shared
/// by all clones of one atom and called from many threads, but the atom never runs two
/// commits of one store at the same time.
///
/// ```
/// use enduro_core::{Atom, Committed, Encoder, Observed, Result, Snapshot, Store, Version};
/// use std::sync::Mutex;
///
/// /// The smallest possible store: one cell in memory.
/// #[derive(Default)]
/// struct Cell(Mutex<Option<Snapshot>>);
///
/// impl Store for Cell {
///     fn resource(&self) -> String { "a memory cell".into() }
///     fn load(&self) -> Result<Option<Snapshot>> { Ok(self.0.lock().unwrap().clone()) }
///     fn check(&self, known: Version) -> Result<Observed> {
///         Ok(match &*self.0.lock().unwrap() {
///             Some(s) if s.version == known => Observed::Unchanged,
///             Some(s) => Observed::Changed(s.clone()),
///             None => Observed::Missing,
///         })
///     }
///     fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
///         let mut cell = self.0.lock().unwrap();
///         let current = cell.as_ref().map_or(Version::ABSENT, |s| s.version);
///         if current != expected {
///             return Ok(Committed::Conflict);
///         }
///         let mut bytes = Vec::new();
///         encode(&mut bytes)?;
///         let version = Version::new(current.generation + 1, 0);
///         *cell = Some(Snapshot { bytes, version });
///         Ok(Committed::Done(version))
///     }
///     fn release(&self) -> Result<()> { *self.0.lock().unwrap() = None; Ok(()) }
/// }
///
/// let atom = Atom::open(Cell::default(), 1u32, Default::default())?;
/// assert_eq!(*atom.swap(|n| n + 1)?, 2);
/// # Ok::<(), enduro_core::Error>(())
/// ```
pub trait Store: Send + Sync + 'static {
    /// Names the resource for error messages, e.g. ``file `/var/lib/app/state.json` ``.
    /// Never includes a password.
    fn resource(&self) -> String;

    /// Reads the stored bytes and their version; `None` when the resource does not exist.
    fn load(&self) -> Result<Option<Snapshot>>;

    /// Tells whether the resource is still at version `known`, cheaply when it is
    /// (a file store compares a counter and the file's identity, reading no data).
    fn check(&self, known: Version) -> Result<Observed>;

    /// Durably replaces the stored value with what `encode` writes, if and only if the
    /// resource is at version `expected` ([`Version::ABSENT`]: does not exist yet).
    /// Returns only once the new value would survive a crash. On any error nothing changes.
    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed>;

    /// Deletes the resource. Other handles then see it as [`Observed::Missing`].
    fn release(&self) -> Result<()>;

    /// Whether [`check`](Store::check) is cheap enough (a few local system calls) to run
    /// before every swap, so that `f` starts from the latest value. Stores for which it
    /// costs a round trip return `false`: their swaps go straight to the commit, whose
    /// version check catches other writers, and a conflict reloads. `refresh` always
    /// checks.
    fn cheap_check(&self) -> bool {
        true
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
            fn release(&self) -> Result<()> {
                (**self).release()
            }
            fn cheap_check(&self) -> bool {
                (**self).cheap_check()
            }
        }
    };
}

forward_store!(std::sync::Arc);
forward_store!(Box);
