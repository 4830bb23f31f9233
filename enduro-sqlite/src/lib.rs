//! SQLite atoms for enduro: one atom is one row of a table in a SQLite database file,
//! shared safely by every thread and process on the machine that opens it.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let db = dir.path().join("app.db");
//! let hits = enduro_sqlite::sqlite_atom(0u64, &db, "hits")?;
//! hits.swap(|n| n + 1)?; // returns once SQLite has committed it to disk
//!
//! // Many atoms share one table, one row each.
//! let users = enduro_sqlite::SqliteAtom::builder(&db, "hits").key("users").open(vec!["ada".to_string()])?;
//! assert_eq!(users.deref().len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Schema
//!
//! The table (created if missing; its name used exactly as written and always quoted)
//! holds one row per atom:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "hits" (
//!     key TEXT PRIMARY KEY NOT NULL,   -- the atom's row key, "default" unless chosen
//!     value BLOB NOT NULL,             -- the encoded value (JSON unless another codec is chosen)
//!     version INTEGER NOT NULL,        -- 1 when the row is made, +1 on every commit
//!     incarnation INTEGER NOT NULL,    -- random, new each time the row is made
//!     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))  -- UTC
//! );
//! ```
//!
//! The value is a `BLOB`, so binary formats (CBOR, MessagePack, postcard) are stored as
//! they are; JSON, TOML and RON are stored as their UTF-8 bytes (`CAST(value AS TEXT)`
//! reads them). A table that exists already must have these columns, `key` its primary
//! key; otherwise opening fails, naming the table and the missing columns, and nothing is
//! changed. Table names may hold any character but NUL (spaces, quotes, `;`, non-ASCII):
//! they are always sent as quoted identifiers, and keys as bound parameters, so no name
//! and no key can change what a statement does. Names beginning with `sqlite_` are
//! SQLite's own and are refused. SQLite compares names without regard to ASCII case:
//! `Hits` and `hits` are one table.
//!
//! A swap reads the row (one local `SELECT`, to start from the latest value), then
//! commits with `UPDATE ... WHERE key = ? AND version = ? AND incarnation = ?`: when
//! another writer committed first, no row matches, and the atom reloads, re-runs the
//! function and tries again. The `incarnation` tells a row released (deleted) and made
//! again from the one a handle knew: a handle of the old row never writes over the new
//! one; its changes fail with [`Error::Released`](enduro_core::Error::Released).
//!
//! To change a value by hand, bump the version too, so that running atoms notice:
//!
//! ```sql
//! UPDATE "hits" SET value = '41', version = version + 1 WHERE key = 'default';
//! ```
//!
//! (A value written as text, as here, reads as its bytes.) Do not change `incarnation`:
//! running atoms would take the row for a new one and count themselves released.
//!
//! # Durability
//!
//! The database runs in WAL mode (`PRAGMA journal_mode=WAL`, checked when it opens; a
//! database that cannot use it is refused) with `PRAGMA synchronous=FULL`: every commit
//! is one transaction whose write-ahead log is synced to disk before the swap returns.
//! So a swap that returned `Ok` survives a crash of the process, of the machine and a
//! power loss, as far as SQLite and the disk keep their promises; a process killed in the
//! middle of a commit leaves the old value or the new one, and the next open recovers
//! the log. A commit that fails with an I/O error may have reached the log nonetheless:
//! it fails with [`Error::Uncertain`](enduro_core::Error::Uncertain), and the atom reads
//! the row back to learn what it holds. (After a failed `fsync` nobody can tell what
//! reached the disk: if the process or the machine stops before the next commit to the
//! database, the next open's log recovery may still find the change. That is why such a
//! commit is uncertain, and why its error says not to repeat the change blindly.) Every
//! other failure (a lock held too long, a full
//! disk, a read-only file) is an [`Error::Backend`](enduro_core::Error::Backend) naming
//! the table, the row and the file, and nothing was written.
//!
//! # Processes
//!
//! Any number of threads and processes may open atoms on the same file, table and row:
//! commits take turns on SQLite's write lock, and the versions keep every change (N
//! processes × M swaps of `+1` end at exactly N×M). Each store has a connection of its
//! own. A statement that finds the database locked waits up to the busy timeout,
//! [`DEFAULT_BUSY_TIMEOUT`] (30 s) unless [`SqliteAtom::busy_timeout`] says otherwise,
//! then fails saying the database is locked by another process and how long it waited;
//! nothing is written. Commits hold the lock only for one short statement, so only a
//! program of your own holding a long transaction on the file makes anyone wait that long.
//!
//! **Not on a network file system.** SQLite's locks (and the shared memory of WAL mode)
//! work only between processes of one machine on a local file system: on NFS, SMB and
//! their kind, locking is unreliable and WAL does not work across machines, so atoms
//! there could lose changes or damage the database. For atoms shared across machines, use
//! PostgreSQL (enduro's `pg` backend).
//!
//! # Paths
//!
//! The path is resolved once, when the atom opens: missing parent directories are
//! created (as file atoms do), and symlinks in its directories are resolved. A path that
//! is a directory or a special file is refused, and so is a file that is not a SQLite
//! database (it is left byte for byte untouched); an empty file is a new database. SQLite
//! keeps two files beside the database while it is open, `NAME-wal` and `NAME-shm`: they
//! belong to it (copy all three, or none, while atoms run).
//!
//! # Async
//!
//! With the feature `async`, [`SqliteAtom::open_async`] and [`sqlite_atom_async`] give an
//! [`AsyncAtom`](enduro_core::AsyncAtom) whose every statement (and the open) runs on
//! tokio's blocking thread pool, never on the runtime's own threads.
//!
//!
//! # Live atoms
//!
//! With [`SqliteAtom::live`], other writers' commits reach an atom without `refresh`: one
//! watcher thread per database file and process asks SQLite every 25 ms whether anyone
//! committed (`PRAGMA data_version`), and the file's live atoms then check their rows.
#![deny(missing_docs)]
// The links to the async items resolve only with the feature `async` (as docs.rs builds).
#![cfg_attr(feature = "async", deny(rustdoc::broken_intra_doc_links))]
#![cfg_attr(not(feature = "async"), allow(rustdoc::broken_intra_doc_links))]

mod failure;
mod follow;
mod ident;
mod path;
mod store;

pub use store::{DEFAULT_BUSY_TIMEOUT, DEFAULT_KEY, SqliteStore, SqliteStoreBuilder};

use std::fmt;
use std::path::Path;
use std::time::Duration;

use enduro_core::{Apply, Atom, Options, Result, Value};

/// Opens a blocking atom on the row [`DEFAULT_KEY`] of `table` in the SQLite database at
/// `db_path`, creating the database (and its missing parent directories) and the table if
/// they are missing. If the row exists, its value is used and `init` is ignored;
/// otherwise `init` is stored.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = dir.path().join("state/app.db");
/// let atom = enduro_sqlite::sqlite_atom(vec![1, 2], &db, "lists")?;
/// atom.swap(|v| [v.clone(), vec![3]].concat())?;
/// drop(atom);
/// let again = enduro_sqlite::sqlite_atom(Vec::<i32>::new(), &db, "lists")?;
/// assert_eq!(*again.deref(), [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sqlite_atom<T: Value>(init: T, db_path: impl AsRef<Path>, table: &str) -> Result<Atom<T>> {
    SqliteAtom::builder(db_path, table).open(init)
}

/// Opens an async atom on the row [`DEFAULT_KEY`] of `table` in the SQLite database at
/// `db_path`; see [`sqlite_atom`]. Every statement runs on tokio's blocking thread pool;
/// call it inside a tokio runtime. Feature `async`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir()?;
/// let hits = enduro_sqlite::sqlite_atom_async(0u64, dir.path().join("app.db"), "hits").await?;
/// let shared = hits.clone();
/// tokio::spawn(async move { shared.swap(|n| n + 1).await }).await??;
/// assert_eq!(*hits.deref(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "async")]
pub async fn sqlite_atom_async<T: Value>(
    init: T,
    db_path: impl AsRef<Path>,
    table: &str,
) -> Result<enduro_core::AsyncAtom<T>> {
    SqliteAtom::builder(db_path, table).open_async(init).await
}

/// Builds SQLite atoms with options: the row key, the busy timeout, the codec, a
/// validator, migrations, the commit mode. Every order of the setters gives the same atom.
///
/// ```
/// use std::time::Duration;
/// use enduro_sqlite::SqliteAtom;
///
/// # let dir = tempfile::tempdir()?;
/// let atom = SqliteAtom::builder(dir.path().join("app.db"), "settings")
///     .key("limits")
///     .busy_timeout(Duration::from_secs(5))
///     .validator(|n: &u32| *n <= 100)
///     .open(10)?;
/// assert!(atom.reset(1000).is_err());
/// assert_eq!(*atom.deref(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteAtom<T> {
    store: SqliteStoreBuilder,
    options: Options<T>,
}

impl<T> fmt::Debug for SqliteAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteAtom")
            .field("store", &self.store)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Value + Apply> SqliteAtom<T> {
    /// Accepts ops ([`Atom::apply`]): each op is applied to the value, and the new value
    /// is committed as a swap's is (this backend stores whole values). See
    /// [`Options::ops`](enduro_core::Options::ops).
    ///
    /// ```
    /// use enduro_core::Apply;
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Total(u64);
    /// impl Apply for Total {
    ///     type Op = u64;
    ///     fn apply(&mut self, op: &u64) { self.0 += op; }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let atom = enduro_sqlite::SqliteAtom::builder(dir.path().join("a.db"), "t").ops().open(Total(1))?;
    /// assert_eq!(atom.apply(2)?.0, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ops(mut self) -> Self {
        self.options = self.options.ops();
        self
    }
}

impl<T: Value> SqliteAtom<T> {
    /// Starts a builder for an atom in `table` of the SQLite database at `db_path`, on row
    /// [`DEFAULT_KEY`], with JSON, no validator and the [`DEFAULT_BUSY_TIMEOUT`]. See
    /// [`SqliteStore::builder`] for which table names work.
    ///
    /// ```
    /// let builder = enduro_sqlite::SqliteAtom::<u64>::builder("/var/lib/app/state.db", "hits");
    /// assert!(format!("{builder:?}").contains("hits"));
    /// ```
    pub fn builder(db_path: impl AsRef<Path>, table: &str) -> Self {
        SqliteAtom {
            store: SqliteStore::builder(db_path, table),
            options: Options::new(),
        }
    }

    /// Uses the row with this key (default [`DEFAULT_KEY`]), so that many atoms can share
    /// one table. Any string is a key.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = dir.path().join("app.db");
    /// let a = enduro_sqlite::SqliteAtom::builder(&db, "atoms").key("a").open(1u8)?;
    /// let b = enduro_sqlite::SqliteAtom::builder(&db, "atoms").key("b").open(2u8)?;
    /// a.swap(|n| n + 10)?;
    /// assert_eq!((*a.deref(), *b.refresh()?), (11, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.store = self.store.key(key);
        self
    }

    /// How long a statement waits for a lock another process holds on the database
    /// (default [`DEFAULT_BUSY_TIMEOUT`]); see [`SqliteStoreBuilder::busy_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = enduro_sqlite::SqliteAtom::<u8>::builder("app.db", "t").busy_timeout(Duration::from_secs(2));
    /// assert!(format!("{b:?}").contains("busy_timeout: 2s"));
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.busy_timeout(timeout);
        self
    }

    /// Makes the atom follow other writers' commits by itself (with `true`): a commit by
    /// any thread or process on the atom's row reaches [`deref`](Atom::deref), the watches
    /// and (for async atoms) `changes` soon after, without a call to
    /// [`refresh`](Atom::refresh); so does a release (the atom is then released).
    ///
    /// How, and what it costs: one watcher thread per database file and process, with a
    /// connection of its own, runs `PRAGMA data_version` every 25 ms (a read of SQLite's
    /// shared memory, no disk I/O); when it changed, every live atom of the file reads
    /// its row once, as `refresh` does. So a commit reaches live atoms within about 25 ms,
    /// and a commit to one row costs the live atoms of other rows of that file one read
    /// each. Commits in quick succession may reach the watches as one transition (`old`
    /// the value before them, `new` the latest), never out of order. The thread ends with
    /// the file's last live atom.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = dir.path().join("app.db");
    /// let live = enduro_sqlite::SqliteAtom::builder(&db, "hits").live(true).open(0u64)?;
    /// let other = enduro_sqlite::sqlite_atom(0u64, &db, "hits")?; // another process, say
    /// other.swap(|n| n + 1)?;
    /// while *live.deref() == 0 {
    ///     std::thread::sleep(std::time::Duration::from_millis(5)); // no refresh()
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn live(mut self, live: bool) -> Self {
        self.options = self.options.live(live);
        self
    }

    enduro_core::option_setters!();

    /// Opens a blocking atom; see [`sqlite_atom`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "not a database")?;
    /// let e = enduro_sqlite::SqliteAtom::builder(&path, "t").open(0u8).unwrap_err();
    /// assert!(e.to_string().contains("not a SQLite database"), "{e}");
    /// assert_eq!(std::fs::read(&path)?, b"not a database"); // untouched
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self, init: T) -> Result<Atom<T>> {
        let options = self.options.resolved(&self.store.resource())?;
        Atom::open(self.store.open()?, init, options)
    }

    /// Opens an async atom: the open and every statement run on the blocking thread pool
    /// of the current tokio runtime (through
    /// [`OffThread`](enduro_core::OffThread)), so waiting for the disk or for another
    /// process's lock never holds up the runtime's own threads. A swap whose future is
    /// dropped leaves no half commit: its statement runs to its end on its pool thread.
    /// Call it inside a tokio runtime. [`CommitMode::Background`](enduro_core::CommitMode)
    /// is refused. Feature `async`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir()?;
    /// let atom = enduro_sqlite::SqliteAtom::builder(dir.path().join("app.db"), "counters")
    ///     .key("jobs")
    ///     .validator(|n: &u32| *n < 10)
    ///     .open_async(1)
    ///     .await?;
    /// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
    /// assert!(atom.reset(10).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "async")]
    pub async fn open_async(self, init: T) -> Result<enduro_core::AsyncAtom<T>> {
        let resource = self.store.resource();
        let options = self.options.resolved(&resource)?;
        let builder = self.store;
        // Opening creates files and directories and may wait for another process's lock.
        let store = enduro_core::OffThread::open(resource, move || builder.open()).await?;
        enduro_core::AsyncAtom::open(store, init, options).await
    }
}
