//! Memory atoms for enduro: nothing persists, but values are encoded and decoded exactly
//! as the durable backends do, so a value that cannot round-trip fails in tests just as it
//! would in production.
//!
//! ```
//! let atom = enduro::mem_atom(vec!["a".to_string()]);
//! atom.swap(|v| [v.clone(), vec!["b".into()]].concat())?;
//! assert_eq!(*atom.deref(), ["a", "b"]);
//! # Ok::<(), enduro::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

use std::sync::{Mutex, MutexGuard};

use enduro_core::{
    Atom, Committed, Encoder, Observed, Options, Result, Snapshot, Store, Value, Version,
};

/// A store that keeps the encoded value in memory.
///
/// ```
/// use enduro::{Atom, MemStore, Options};
/// let atom = Atom::open(MemStore::new(), 1, Options::new())?;
/// assert_eq!(atom.resource(), "memory cell");
/// # Ok::<(), enduro::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemStore {
    cell: Mutex<Option<Snapshot>>,
}

impl MemStore {
    /// An empty cell.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cell that already holds `bytes`, as if a previous run had stored them.
    ///
    /// ```
    /// use enduro::{Atom, MemStore, Options};
    /// let atom = Atom::open(MemStore::holding(b"41".to_vec()), 0, Options::new())?;
    /// assert_eq!(*atom.deref(), 41);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn holding(bytes: Vec<u8>) -> Self {
        MemStore {
            cell: Mutex::new(Some(Snapshot {
                bytes,
                version: Version::new(1, 0),
            })),
        }
    }

    fn cell(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.cell.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemStore {
    fn resource(&self) -> String {
        "memory cell".to_owned()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        Ok(self.cell().clone())
    }

    fn check(&self, known: Version) -> Result<Observed> {
        Ok(match &*self.cell() {
            Some(snapshot) if snapshot.version == known => Observed::Unchanged,
            Some(snapshot) => Observed::Changed(snapshot.clone()),
            None => Observed::Missing,
        })
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        let mut cell = self.cell();
        let current = cell.as_ref().map_or(Version::ABSENT, |s| s.version);
        if current != expected {
            return Ok(Committed::Conflict);
        }
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        let version = Version::new(current.generation + 1, 0);
        *cell = Some(Snapshot { bytes, version });
        Ok(Committed::Done(version))
    }

    fn release(&self) -> Result<()> {
        *self.cell() = None;
        Ok(())
    }

    fn cheap_check(&self) -> bool {
        true
    }
}

/// Opens a memory atom holding `init`.
///
/// # Panics
///
/// If `init` cannot be encoded (say, a float that is NaN, which JSON cannot hold): the
/// signature is fixed by the contract. Use [`MemAtom::builder`] to get that as an error.
///
/// ```
/// let atom = enduro::mem_atom(0);
/// assert_eq!(*atom.swap(|n| n + 1)?, 1);
/// # Ok::<(), enduro::Error>(())
/// ```
pub fn mem_atom<T: Value>(init: T) -> Atom<T> {
    match MemAtom::builder().open(init) {
        Ok(atom) => atom,
        Err(e) => panic!("mem_atom: the initial value cannot be stored: {e}"),
    }
}

/// Builds memory atoms with options: a codec, a validator.
///
/// ```
/// use enduro::MemAtom;
///
/// let atom = MemAtom::builder().validator(|n: &i32| *n >= 0).open(3)?;
/// assert!(atom.reset(-1).is_err());
/// assert!(MemAtom::builder().open(f64::NAN).is_err());
/// # Ok::<(), enduro::Error>(())
/// ```
#[derive(Debug)]
pub struct MemAtom<T> {
    options: Options<T>,
}

impl<T: Value> MemAtom<T> {
    /// Starts a builder with JSON and no validator.
    pub fn builder() -> Self {
        MemAtom {
            options: Options::new(),
        }
    }

    enduro_core::option_setters!();

    /// Opens the atom.
    pub fn open(self, init: T) -> Result<Atom<T>> {
        Atom::open(MemStore::new(), init, self.options)
    }
}
