//! Durable atoms: a Clojure-style atom whose value — any serde type — is persisted on
//! every change, to a file, to PostgreSQL, or kept in memory for tests.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
//! let hits = enduro::file_atom(0u64, dir.join("hits.json"))?;
//! hits.swap(|n| n + 1)?;           // returns once the new value is on disk
//! assert_eq!(*hits.deref(), 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`file_atom`] (feature `file`, on by default): the value lives in one file, replaced
//!   durably on every change (write a pending file, fsync, rename, fsync the directory)
//!   and shared safely by every process that opens the same path. With `async`,
//!   `file_atom_async` and `FileAtom::builder(path).open_async(init)` give an `AsyncAtom`
//!   that never blocks the runtime; with `live`, `FileAtom::builder(path).live(true)`
//!   follows other processes' commits by itself.
//! - [`mem_atom`] (feature `mem`, on by default): nothing persists, but values are encoded
//!   and decoded as in the durable backends, so tests catch what would not round-trip.
//! - `postgresql_atom` and `postgresql_atom_async` (feature `pg`, opt-in): the value lives
//!   in one row of a PostgreSQL table, shared by every process and machine that opens it;
//!   `PgAtom::builder` takes a row key, an existing pool, a codec and a validator.
//! - `redis_atom` and `redis_atom_async` (feature `redis`, opt-in): the value lives in one
//!   hash of a Redis server; each swap is one compare-and-set script.
//! - `sqlite_atom` (feature `sqlite`, opt-in): the value lives in one row of a table of a
//!   SQLite database file, shared by the processes of one machine; many atoms per file.
//!
//! Every atom has the same contract: [`Atom::deref`], [`Atom::swap`], [`Atom::swap_vals`],
//! [`Atom::reset`], [`Atom::reset_vals`], [`Atom::compare_and_set`], watches, validators,
//! [`Atom::refresh`] and [`Atom::release`]. See the README for the guarantees.
//!
//! A value type that names its own changes ([`Apply`]: an op type and how to apply one)
//! also gets [`Atom::apply`]: a swap whose change is the op. A file atom in journal mode
//! opened with `ops()` stores the op instead of the whole value, so a one-key change to a
//! large map costs about what the key costs.
//!
//! # Features
//!
//! | feature   | default | what it adds                                                      |
//! |-----------|---------|-------------------------------------------------------------------|
//! | `file`    | yes     | [`file_atom`], `FileAtom`, `FileStore`; no async, no network      |
//! | `mem`     | yes     | [`mem_atom`], `MemAtom`, `MemStore`                               |
//! | `async`   | no      | `AsyncAtom`, `AsyncStore`, `OffThread`, `Blocking`; with `file`, `file_atom_async` and `FileAtom::open_async` (pulls tokio) |
//! | `live`    | no      | `FileAtom::live`: file atoms that follow other processes (pulls notify); PostgreSQL atoms are live without it |
//! | `pg`      | no      | `postgresql_atom`, `postgresql_atom_async`, `PgAtom`; implies `async` |
//! | `redis`   | no      | `redis_atom`, `redis_atom_async`, `RedisAtom`; implies `async`    |
//! | `sqlite`  | no      | `sqlite_atom`, `SqliteAtom` (SQLite compiled in); with `async`, `sqlite_atom_async` |
//! | `testing` | no      | `testing`: a fault-injecting store, for tests only                |
#![deny(missing_docs)]
// These docs link the default backends' items, which exist only with their features:
// every link must resolve in the default and the all-features build (the docs.rs one).
#![cfg_attr(
    all(feature = "file", feature = "mem"),
    deny(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "cbor")]
pub use enduro_core::Cbor;
#[cfg(feature = "msgpack")]
pub use enduro_core::MessagePack;
#[cfg(feature = "postcard")]
pub use enduro_core::Postcard;
#[cfg(feature = "ron")]
pub use enduro_core::Ron;
#[cfg(feature = "toml")]
pub use enduro_core::Toml;
pub use enduro_core::{
    Apply, Atom, Codec, CodecError, CommitMode, Error, Json, Migrations, Options, Result,
    Validation, Validator, Value, Version,
};
#[cfg(feature = "async")]
pub use enduro_core::{AsyncAtom, AsyncStore, Blocking, BoxFuture, OffThread};
#[cfg(all(feature = "file", feature = "async"))]
pub use enduro_file::file_atom_async;
#[cfg(feature = "file")]
pub use enduro_file::{
    FileAtom, FileReport, FileStore, FileStoreBuilder, JournalReport, LockState, file_atom,
};
#[cfg(feature = "mem")]
pub use enduro_mem::{MemAtom, MemStore, mem_atom};
#[cfg(feature = "pg")]
pub use enduro_pg::{
    BlockingPgStore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEY,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT, PgAtom, PgStore, PgStoreBuilder, Pool,
    deadpool_postgres, postgresql_atom, postgresql_atom_async, tokio_postgres,
};
#[cfg(feature = "redis")]
pub use enduro_redis::{RedisAtom, RedisStore, RedisStoreBuilder, redis_atom, redis_atom_async};
#[cfg(all(feature = "sqlite", feature = "async"))]
pub use enduro_sqlite::sqlite_atom_async;
#[cfg(feature = "sqlite")]
pub use enduro_sqlite::{
    DEFAULT_BUSY_TIMEOUT, SqliteAtom, SqliteStore, SqliteStoreBuilder, sqlite_atom,
};

/// For writing a backend of your own: the [`Store`](store::Store) trait (and, with the
/// `async` feature, `AsyncStore`) and the types their methods take
/// and return.
pub mod store {
    /// Gives a backend's builder the setters every atom takes (`codec`, `validator`,
    /// `commit_mode`); see [`Options`](crate::Options).
    pub use enduro_core::option_setters;
    #[cfg(feature = "async")]
    pub use enduro_core::{AsyncStore, Blocking, BoxFuture, Deferred, OffThread};
    pub use enduro_core::{
        Committed, Encoder, Nudge, Observed, OpRecord, Replay, Snapshot, Step, Store, Subscription,
        Version, new_incarnation,
    };
}

#[cfg(all(feature = "conformance", feature = "async"))]
pub use enduro_core::async_conformance;
#[cfg(feature = "conformance")]
pub use enduro_core::conformance;
/// Fault injection for tests (feature `testing`): a store wrapper that fails where you
/// tell it to. Keep it out of production builds.
#[cfg(feature = "testing")]
pub use enduro_core::testing;
