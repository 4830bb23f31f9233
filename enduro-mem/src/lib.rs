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

use std::sync::{Arc, Mutex, MutexGuard};

use enduro_core::{
    Atom, Committed, Encoder, Error, Nudge, Observed, Options, Result, Snapshot, Store,
    Subscription, Value, Version,
};

/// A store that keeps the encoded value in memory.
///
/// Versions never repeat, also across [`release`](Store::release) and re-creation: the
/// generation counts every commit the cell ever took, and the fingerprint names the
/// incarnation (each creation after the cell was empty starts a new one). A handle that
/// knew a released value finds it missing, even once the cell holds a new one, and so can
/// never write over it.
///
/// ```
/// use enduro::{Atom, MemStore, Options};
/// let atom = Atom::open(MemStore::new(), 1, Options::new())?;
/// assert_eq!(atom.resource(), "memory cell");
/// # Ok::<(), enduro::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemStore {
    cell: Mutex<Cell>,
    /// The nudges of the live atoms on this cell, by subscription number.
    followers: Arc<Mutex<Followers>>,
}

#[derive(Debug, Default)]
struct Followers {
    next: u64,
    nudges: Vec<(u64, Nudge)>,
}

/// Removes a live atom's nudge from its cell when the atom goes away.
struct Unfollow(std::sync::Weak<Mutex<Followers>>, u64);

impl Drop for Unfollow {
    fn drop(&mut self) {
        if let Some(followers) = self.0.upgrade() {
            lock(&followers).nudges.retain(|(id, _)| *id != self.1);
        }
    }
}

fn lock<G>(m: &Mutex<G>) -> MutexGuard<'_, G> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The value and the counters that keep versions unique.
#[derive(Debug, Default)]
struct Cell {
    snapshot: Option<Snapshot>,
    /// The last generation handed out; never reset, not even by a release.
    generation: u64,
    /// The last incarnation handed out; a new one for each creation of the value.
    incarnation: u64,
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
            cell: Mutex::new(Cell {
                snapshot: Some(Snapshot {
                    bytes,
                    version: Version::new(1, 1),
                }),
                generation: 1,
                incarnation: 1,
            }),
            followers: Arc::default(),
        }
    }

    fn cell(&self) -> MutexGuard<'_, Cell> {
        lock(&self.cell)
    }

    /// Tells the live atoms on this cell that it changed, to `version` if it is known.
    fn changed(&self, version: Option<Version>) {
        let nudges: Vec<Nudge> = lock(&self.followers)
            .nudges
            .iter()
            .map(|(_, nudge)| nudge.clone())
            .collect();
        for nudge in nudges {
            match version {
                Some(version) => nudge.changed_to(version),
                None => nudge.changed(),
            }
        }
    }
}

/// Whether `known` names an earlier incarnation than `current`: the value it knew was
/// released, and this one was created afterwards.
fn another_incarnation(known: Version, current: Version) -> bool {
    known != Version::ABSENT && known.fingerprint != current.fingerprint
}

impl Store for MemStore {
    fn resource(&self) -> String {
        "memory cell".to_owned()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        Ok(self.cell().snapshot.clone())
    }

    fn check(&self, known: Version) -> Result<Observed> {
        Ok(match &self.cell().snapshot {
            Some(snapshot) if snapshot.version == known => Observed::Unchanged,
            // The value this handle knew is gone, whatever holds its place now.
            Some(snapshot) if another_incarnation(known, snapshot.version) => Observed::Missing,
            Some(snapshot) => Observed::Changed(snapshot.clone()),
            None => Observed::Missing,
        })
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        let mut cell = self.cell();
        let current = cell
            .snapshot
            .as_ref()
            .map_or(Version::ABSENT, |s| s.version);
        if current != expected {
            if current != Version::ABSENT && another_incarnation(expected, current) {
                // Released and created again since this handle's value: not its any more
                // (a conflict would make it adopt the new value as a continuation).
                return Err(Error::Released);
            }
            return Ok(Committed::Conflict);
        }
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        let incarnation = if current == Version::ABSENT {
            cell.incarnation += 1;
            cell.incarnation
        } else {
            current.fingerprint
        };
        cell.generation += 1;
        let version = Version::new(cell.generation, incarnation);
        cell.snapshot = Some(Snapshot { bytes, version });
        drop(cell);
        self.changed(Some(version));
        Ok(Committed::Done(version))
    }

    fn release(&self) -> Result<()> {
        self.cell().snapshot = None;
        self.changed(None);
        Ok(())
    }

    fn cheap_check(&self) -> bool {
        true
    }

    /// Yes: a memory atom refuses at commit what a durable store could not read back.
    fn checks_round_trip(&self) -> bool {
        true
    }

    /// Every atom on the cell (shared through an `Arc`) can be live: each commit and
    /// release nudges them.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        let mut followers = lock(&self.followers);
        followers.next += 1;
        let id = followers.next;
        followers.nudges.push((id, nudge));
        Ok(Subscription::new(Unfollow(
            Arc::downgrade(&self.followers),
            id,
        )))
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
