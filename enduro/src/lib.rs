//! Durable atoms: a Clojure-style atom whose value — any serde type — is persisted on
//! every change, to a file, to PostgreSQL, or kept in memory for tests.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let hits = enduro::file_atom(0u64, dir.path().join("hits.json"))?;
//! hits.swap(|n| n + 1)?;           // returns once the new value is on disk
//! assert_eq!(*hits.deref(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`file_atom`] (feature `file`, on by default): the value lives in one file, replaced
//!   durably on every change (write a pending file, fsync, rename, fsync the directory)
//!   and shared safely by every process that opens the same path.
//! - [`mem_atom`] (feature `mem`, on by default): nothing persists, but values are encoded
//!   and decoded as in the durable backends, so tests catch what would not round-trip.
//! - `postgresql_atom` and `postgresql_atom_async` (feature `pg`, opt-in): the value lives
//!   in one row of a PostgreSQL table, shared by every process and machine that opens it;
//!   `PgAtom::builder` takes a row key, an existing pool, a codec and a validator.
//!
//! Every atom has the same contract: [`Atom::deref`], [`Atom::swap`], [`Atom::swap_vals`],
//! [`Atom::reset`], [`Atom::reset_vals`], [`Atom::compare_and_set`], watches, validators,
//! [`Atom::refresh`] and [`Atom::release`]. See the README for the guarantees.
#![deny(missing_docs)]

#[cfg(feature = "pg")]
pub use enduro_core::{AsyncAtom, AsyncStore, BoxFuture};
pub use enduro_core::{
    Atom, Codec, CodecError, CommitMode, Error, Json, Options, Result, Validator, Value, Version,
};
#[cfg(feature = "file")]
pub use enduro_file::{FileAtom, FileStore, file_atom};
#[cfg(feature = "mem")]
pub use enduro_mem::{MemAtom, MemStore, mem_atom};
#[cfg(feature = "pg")]
pub use enduro_pg::{
    BlockingPgStore, PgAtom, PgStore, PgStoreBuilder, postgresql_atom, postgresql_atom_async,
};

/// For writing a backend of your own: the [`Store`](store::Store) trait and its types.
pub mod store {
    pub use enduro_core::{Committed, Encoder, Observed, Snapshot, Store};
}

#[cfg(all(feature = "conformance", feature = "pg"))]
pub use enduro_core::async_conformance;
#[cfg(feature = "conformance")]
pub use enduro_core::conformance;
pub use enduro_core::testing;
