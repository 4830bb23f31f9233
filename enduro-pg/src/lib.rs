//! PostgreSQL atoms for enduro: one atom is one row of a table, shared safely by every
//! process and machine that opens it.
//!
//! ```no_run
//! // Blocking, from plain `main`:
//! let hits = enduro::postgresql_atom(0u64, "postgres://app@localhost/app", "hits")?;
//! hits.swap(|n| n + 1)?; // returns once PostgreSQL has committed it
//! # Ok::<(), enduro::Error>(())
//! ```
//!
//! ```no_run
//! // Async, for tokio services:
//! # async fn demo() -> enduro::Result<()> {
//! let hits = enduro::postgresql_atom_async(0u64, "postgres://app@localhost/app", "hits").await?;
//! hits.swap(|n| n + 1).await?;
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! The table (created if missing; `name` or `schema.name`, used exactly as written and
//! always quoted) holds one row per atom:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "hits" (
//!     key text PRIMARY KEY,        -- the atom's row key, "default" unless chosen
//!     value text NOT NULL,         -- the encoded value: JSON, readable with plain SQL
//!     version bigint NOT NULL,     -- bumped by one on every commit (i64::MAX wraps to i64::MIN)
//!     updated_at timestamptz NOT NULL DEFAULT now()
//! );
//! ```
//!
//! A name that means a temporary table (`pg_temp.name`, or a name that resolves to one on
//! the store's connection) is refused: each connection would see a table of its own.
//!
//! A swap is one `UPDATE ... WHERE key = $2 AND version = $3` round trip when nobody else
//! wrote; otherwise it reloads, re-runs the function and tries again. To change a value by
//! hand, bump the version too (`UPDATE hits SET value = '41', version = version + 1`), so
//! that running atoms notice (live atoms too, at once if you also send the table's
//! `NOTIFY`, see [`PgStore::notify_channel`], or at the latest after their listener's
//! next reconnect; see [`PgAtom::live`]).
//!
//! # Live atoms
//!
//! With [`PgAtom::live`], other writers' commits reach an atom without `refresh`: every
//! commit (and release) sends a `NOTIFY` in its own statement, and one `LISTEN` connection
//! per pool hands them to the pool's live atoms, which catch up by reading their row.
//!
//! ```no_run
//! let live = enduro::PgAtom::builder("postgres://app@localhost/app", "hits")
//!     .live(true)
//!     .open(0u64)?;
//! live.add_watch("log", |old, new| println!("{old} -> {new}")); // other processes' swaps too
//! # Ok::<(), enduro::Error>(())
//! ```
//!
//! # Failures and timeouts
//!
//! A commit that surely did not run (the server answered with an error, no connection
//! could be had, the statement could not even be prepared) fails with
//! [`Error::Backend`](enduro_core::Error::Backend), and nothing was written. A commit whose
//! answer was lost after it was sent (the connection closed, a FATAL error from the
//! server, which can come after the commit, or no answer within the statement timeout)
//! fails with [`Error::Uncertain`](enduro_core::Error::Uncertain): it may have been stored.
//!
//! Every statement waits at most [`DEFAULT_STATEMENT_TIMEOUT`] (30 s) for its answer,
//! or what [`PgAtom::statement_timeout`] says: then a cancel request is sent and the
//! connection dropped, so a server or network that stops answering fails a swap instead
//! of blocking it, and the swaps queued behind it, forever. Connections of a pool the
//! store makes itself also get PostgreSQL's own `statement_timeout` and `lock_timeout` a
//! little below it, so that a row locked by another session's open transaction ends
//! with a definite error that says so (SQL state 55P03; nothing written).
//!
//! A cached statement whose table an operator changed (`ALTER TABLE ... ALTER value TYPE
//! ...`) is refused by the server without running; it is prepared again and run once
//! more. So is a statement whose pooled connection the server had closed.
//!
//! Opening a connection (the TCP connect, the TLS handshake, start-up and authentication)
//! takes at most [`DEFAULT_CONNECT_TIMEOUT`] (10 s) per host, or the connection string's
//! `connect_timeout`, or [`PgAtom::connect_timeout`]: a server that accepts and never
//! answers fails the open with an error saying how far the attempt got. Waiting for a free
//! pooled connection is bounded by the statement timeout.
//!
//! Errors carry the server's own words (`password authentication failed for user "app"`,
//! `database "app" does not exist`, `no pg_hba.conf entry ... no encryption`) with what
//! to do about them. Passwords never appear in errors or `Debug` output.
//!
//! # TLS
//!
//! Through rustls (no OpenSSL), as libpq's parameters in the connection string say:
//! `sslmode` `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`;
//! `sslrootcert=/path/ca.pem` for a private CA (the platform's CA store otherwise, or with
//! `sslrootcert=system`); `sslcert` and `sslkey` for a client certificate.
//!
//! ```no_run
//! let db = "postgres://app:secret@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/db-ca.pem";
//! let hits = enduro::postgresql_atom(0u64, db, "hits")?;
//! # Ok::<(), enduro::Error>(())
//! ```
//!
//! # Connections
//!
//! Every atom of a process opened with the same connection string (and timeouts) shares
//! one pool of at most [`DEFAULT_MAX_CONNECTIONS`] connections ([`PgAtom::max_connections`];
//! the largest size asked for wins), so a thousand atoms of one table take no more
//! connections than one. Connections unused for [`DEFAULT_IDLE_TIMEOUT`] close. All are
//! driven by one process-wide runtime of at most two threads (`enduro-pg`), so they
//! outlive the runtime that first asked for them, and blocking atoms start no threads of
//! their own. They carry `application_name=enduro` unless the string sets one. A pool with
//! live atoms has one more connection, which `LISTEN`s (see [`PgAtom::live`]).
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod conn;
mod failure;
mod ident;
mod limits;
mod listen;
mod notify;
mod pools;
mod query;
mod runtime;
mod store;
mod text;
mod tls;

/// The connection pool crate, re-exported so that [`PgAtom::with_pool`] needs no
/// dependency of its own: `enduro::deadpool_postgres::{Manager, Pool}`.
pub use deadpool_postgres;
pub use deadpool_postgres::Pool;
pub use store::{
    BlockingPgStore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEY,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT, PgStore, PgStoreBuilder,
};
/// The PostgreSQL client crate, re-exported so that [`PgAtom::with_pool`] needs no
/// dependency of its own: `enduro::tokio_postgres::{Config, NoTls}`.
pub use tokio_postgres;

use std::fmt;

use enduro_core::{AsyncAtom, Atom, Codec, CommitMode, Options, Result, Validation, Value};

/// Opens a blocking atom on the row [`DEFAULT_KEY`] of `table` in the database `db` (a
/// connection string: `postgres://user:password@host:5432/dbname`, or
/// `host=... user=... dbname=...`), creating the table if it is missing. If the row
/// exists, its value is used and `init` is ignored; otherwise `init` is stored.
///
/// Works from plain `main`; inside a tokio runtime it works too (each call then runs on a
/// helper thread), but async code should use [`postgresql_atom_async`].
///
/// ```no_run
/// let atom = enduro::postgresql_atom(vec![1, 2], "host=localhost user=app", "lists")?;
/// assert_eq!(atom.deref().len(), 2);
/// # Ok::<(), enduro::Error>(())
/// ```
pub fn postgresql_atom<T: Value>(init: T, db: &str, table: &str) -> Result<Atom<T>> {
    PgAtom::builder(db, table).open(init)
}

/// Opens an async atom on the row [`DEFAULT_KEY`] of `table` in the database `db`; see
/// [`postgresql_atom`]. Never blocks the runtime.
///
/// ```no_run
/// # async fn demo() -> enduro::Result<()> {
/// let atom = enduro::postgresql_atom_async(0i64, "postgres://app@localhost/app", "counters").await?;
/// let shared = atom.clone();
/// tokio::spawn(async move { shared.swap(|n| n + 1).await }).await.ok();
/// # Ok(()) }
/// ```
pub async fn postgresql_atom_async<T: Value>(
    init: T,
    db: &str,
    table: &str,
) -> Result<AsyncAtom<T>> {
    PgAtom::builder(db, table).open_async(init).await
}

/// Builds PostgreSQL atoms with options: the row key, an existing pool, the codec, a
/// validator, whether `release` drops the table. Every order of the setters gives the
/// same atom.
///
/// ```no_run
/// use enduro::PgAtom;
///
/// let atom = PgAtom::builder("postgres://app:secret@localhost/app", "app.settings")
///     .key("limits")
///     .validator(|n: &u32| *n <= 100)
///     .open(10)?;
/// assert!(atom.reset(1000).is_err());
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct PgAtom<T> {
    store: PgStoreBuilder,
    options: Options<T>,
}

impl<T> fmt::Debug for PgAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAtom")
            .field("store", &self.store)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Value> PgAtom<T> {
    /// Starts a builder for an atom in `table` of the database `db` (a connection
    /// string), on row [`DEFAULT_KEY`], with JSON and no validator.
    ///
    /// ```
    /// let builder = enduro::PgAtom::<u64>::builder("postgres://app:hunter2@db/app", "hits");
    /// assert!(!format!("{builder:?}").contains("hunter2"));
    /// ```
    pub fn builder(db: &str, table: &str) -> Self {
        PgAtom {
            store: PgStore::builder(db, table),
            options: Options::new(),
        }
    }

    /// Starts a builder for an atom in `table` that takes connections from `pool`, a
    /// deadpool-postgres pool of your own (`enduro::deadpool_postgres` and
    /// `enduro::tokio_postgres` are re-exported for making one). The pool keeps its own
    /// size, TLS and timeouts; the statement timeout bounds each statement and the wait
    /// for a free connection too. For TLS, timeouts and a
    /// shared pool as enduro sets them up, give a connection string to
    /// [`builder`](PgAtom::builder) instead.
    ///
    /// ```no_run
    /// use enduro::deadpool_postgres::{Manager, Pool};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let config: enduro::tokio_postgres::Config = "host=localhost user=app".parse()?;
    /// let pool = Pool::builder(Manager::new(config, enduro::tokio_postgres::NoTls))
    ///     .max_size(4)
    ///     .build()?;
    /// let atom = enduro::PgAtom::with_pool(pool.clone(), "atoms").key("a").open_async(0).await?;
    /// // The same pool serves queries of your own.
    /// let client = pool.get().await?;
    /// client.execute("SELECT 1", &[]).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_pool(pool: Pool, table: &str) -> Self {
        PgAtom {
            store: PgStore::builder_with_pool(pool, table),
            options: Options::new(),
        }
    }

    /// Uses the row with this key, so that many atoms can share one table.
    ///
    /// ```
    /// let a = enduro::PgAtom::<u64>::builder("postgres://db/app", "atoms").key("a");
    /// assert!(format!("{a:?}").contains("\"a\""));
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.store = self.store.key(key);
        self
    }

    /// With `true`, `release` drops the whole table instead of deleting the atom's row.
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "scratch")
    ///     .drop_table_on_release(true);
    /// assert!(format!("{b:?}").contains("drop_table: true"));
    /// ```
    pub fn drop_table_on_release(mut self, drop: bool) -> Self {
        self.store = self.store.drop_table_on_release(drop);
        self
    }

    /// With `false`, this atom's commits send no `NOTIFY`: [live](PgAtom::live) atoms
    /// elsewhere see them only at their next check. On by default; see
    /// [`PgStoreBuilder::notify`] for what it costs and when to turn it off.
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "events").notify(false);
    /// assert!(format!("{b:?}").contains("notify: false"));
    /// ```
    pub fn notify(mut self, notify: bool) -> Self {
        self.store = self.store.notify(notify);
        self
    }

    /// The most connections the pool of this connection string opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`]); every atom of the process opened with the same
    /// connection string shares that one pool. See [`PgStoreBuilder::max_connections`].
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t").max_connections(2);
    /// assert!(format!("{b:?}").contains("max_connections: 2"));
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.store = self.store.max_connections(n);
        self
    }

    /// How long each statement may wait for its answer (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`]): a row locked by another session, or a server that
    /// stops answering, then fails the swap instead of blocking it forever. A swap whose
    /// commit got no answer in time fails with
    /// [`Error::Uncertain`](enduro_core::Error::Uncertain) (it may have been stored); see
    /// [`PgStoreBuilder::statement_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t")
    ///     .statement_timeout(Duration::from_secs(5));
    /// assert!(format!("{b:?}").contains("statement_timeout: 5s"));
    /// ```
    pub fn statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store = self.store.statement_timeout(timeout);
        self
    }

    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`], or
    /// `connect_timeout` from the connection string): TCP, TLS, start-up and
    /// authentication; see [`PgStoreBuilder::connect_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t")
    ///     .connect_timeout(Duration::from_secs(2));
    /// assert!(format!("{b:?}").contains("connect_timeout: 2s"));
    /// ```
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store = self.store.connect_timeout(timeout);
        self
    }

    /// How long a pooled connection may sit unused before it is closed (default
    /// [`DEFAULT_IDLE_TIMEOUT`]); see [`PgStoreBuilder::idle_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t")
    ///     .idle_timeout(Duration::from_secs(30));
    /// assert!(format!("{b:?}").contains("idle_timeout: 30s"));
    /// ```
    pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store = self.store.idle_timeout(timeout);
        self
    }

    /// Uses `codec` instead of JSON. Its output must be UTF-8 text without NUL bytes, as
    /// the `value` column is `text` (JSON, TOML, RON; a binary format such as CBOR fails at
    /// commit, saying so, with nothing written). Combined with [`pretty`](PgAtom::pretty)
    /// in either order: `pretty` picks the pretty form of the codec's format, and
    /// `pretty(true)` with a format that has none makes opening fail.
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t")
    ///     .codec(enduro::Json::pretty());
    /// assert!(format!("{b:?}").contains("JSON"));
    /// ```
    pub fn codec<C: Codec>(mut self, codec: C) -> Self {
        self.options = self.options.codec(codec);
        self
    }

    /// Writes the pretty form of the codec's format (with `true`: indented JSON, say) or
    /// its compact form (with `false`), whatever codec of that format was chosen and in
    /// whichever order. Without it, the codec decides (compact JSON by default). It never
    /// replaces the codec: `pretty(true)` with a format that has no pretty form is an
    /// error when opening, before any connection is tried; see
    /// [`Options::pretty`](enduro_core::Options::pretty).
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t").pretty(true);
    /// assert!(format!("{b:?}").contains("pretty: Some(true)"));
    /// ```
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.options = self.options.pretty(pretty);
        self
    }

    /// Migrates data of an older schema when the atom opens, and stores the schema with
    /// the data: the row's `value` holds `{"enduro_schema":N,"value":…}` (read it with
    /// `value::jsonb -> 'value'`), so that one `UPDATE` changes both. Processes and
    /// machines opening old data at the same moment store the migrated value once (the
    /// version check); a failing step or data of a newer schema is an error and leaves the
    /// row as it was. See [`Migrations`](enduro_core::Migrations).
    ///
    /// ```
    /// let m = enduro::Migrations::new().step(|v| Ok::<_, String>(serde_json::json!({ "hits": v })));
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t").migrations(m);
    /// assert!(format!("{b:?}").contains("schema: Some(1)"));
    /// ```
    pub fn migrations(mut self, migrations: enduro_core::Migrations) -> Self {
        self.options = self.options.migrations(migrations);
        self
    }

    /// With `true`, decodes every value again before it is sent and refuses (with
    /// [`Error::Encode`](enduro_core::Error::Encode)) one that would not read back; see
    /// [`Options::round_trip_check`](enduro_core::Options::round_trip_check).
    ///
    /// ```
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t").round_trip_check(true);
    /// assert!(format!("{b:?}").contains("round_trip_check: true"));
    /// ```
    pub fn round_trip_check(mut self, check: bool) -> Self {
        self.options = self.options.round_trip_check(check);
        self
    }

    /// Requires `init` (or the stored value) and every new value to pass `validator`.
    ///
    /// ```
    /// let b = enduro::PgAtom::builder("postgres://db/app", "t").validator(|n: &u64| *n < 10);
    /// assert!(format!("{b:?}").contains("validator: true"));
    /// ```
    pub fn validator<V: Validation>(
        mut self,
        validator: impl Fn(&T) -> V + Send + Sync + 'static,
    ) -> Self {
        self.options = self.options.validator(validator);
        self
    }

    /// Makes the atom follow other writers' commits by itself (with `true`): a commit by
    /// any process or machine on the atom's row reaches [`deref`](Atom::deref), the
    /// watches and (for async atoms) [`changes`](AsyncAtom::changes) soon after, without a
    /// call to [`refresh`](Atom::refresh); so does a release (the atom is then released).
    ///
    /// How, and what it costs:
    /// - **Every commit sends a `NOTIFY`**, live atom or not, in the commit's own statement
    ///   (`pg_notify` on a channel named after the table, `enduro_` and a hash, with the
    ///   row's new version and its key, or a hash of a key longer than 2 KiB), so a commit
    ///   that rolls back tells no one. PostgreSQL serializes the commits that notify:
    ///   one writer, or writers of one row, lose a few percent of their commits per
    ///   second; many connections committing to different rows at once lose most of
    ///   their group commit (see [`notify`](PgAtom::notify), which turns it off for a
    ///   table no live atom follows).
    /// - **One more connection per pool**, not per atom: the first live atom of a pool
    ///   (a connection string and its timeouts) opens one connection that `LISTEN`s on the
    ///   channels of its live atoms' tables; a thousand live atoms share it. It closes when
    ///   the last live atom of the pool is dropped.
    /// - **Merged transitions.** The atom catches up by reading the row, as `refresh` does:
    ///   commits in quick succession may reach the watches as one transition (`old` the
    ///   value before them, `new` the latest), never out of order. A notification that
    ///   names the version the atom already has costs nothing.
    /// - **After a lost connection** (a server restart, a network failure; a peer gone
    ///   silently is noticed through TCP keepalives within about a minute), the listener
    ///   opens a new one, waiting 50 ms and doubling up to 5 s between failed attempts,
    ///   listens again and makes every live atom of the pool check its row once, so a
    ///   commit made meanwhile is picked up then. Until then, live atoms show what they
    ///   had; their own swaps work (or fail) as they always do.
    ///
    /// Blocking atoms catch up on one follower thread per process, async atoms on the
    /// runtime that opened them. An atom on a pool of your own
    /// ([`with_pool`](PgAtom::with_pool)) cannot be live: opening it fails with an error
    /// that says so.
    ///
    /// ```no_run
    /// let db = "postgres://app:secret@localhost/app";
    /// let live = enduro::PgAtom::builder(db, "counters").key("hits").live(true).open(0u64)?;
    /// live.add_watch("log", |old, new| println!("hits: {old} -> {new}"));
    ///
    /// // Another process (here, another atom on the same row) commits...
    /// let other = enduro::PgAtom::builder(db, "counters").key("hits").open(0u64)?;
    /// other.swap(|n| n + 1)?;
    ///
    /// // ...and the live atom follows, without refresh().
    /// while *live.deref() == 0 {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    /// }
    /// # Ok::<(), enduro::Error>(())
    /// ```
    ///
    /// ```
    /// // A pool of your own cannot carry the notifications: refused when opening, before
    /// // any connection is tried.
    /// use enduro::deadpool_postgres::{Manager, Pool};
    ///
    /// let config: enduro::tokio_postgres::Config = "host=localhost user=app".parse().unwrap();
    /// let pool = Pool::builder(Manager::new(config, enduro::tokio_postgres::NoTls))
    ///     .build()
    ///     .unwrap();
    /// let e = enduro::PgAtom::with_pool(pool, "t").live(true).open(0u64).unwrap_err();
    /// assert!(e.to_string().contains("with_pool"), "{e}");
    /// ```
    pub fn live(mut self, live: bool) -> Self {
        self.options = self.options.live(live);
        self
    }

    /// Chooses when changes count as done (for [`open`](PgAtom::open) only): durably
    /// (the default: a swap returns once PostgreSQL committed it) or
    /// [`CommitMode::Background`]. Async atoms always
    /// commit durably; [`open_async`](PgAtom::open_async) refuses the background mode.
    ///
    /// ```
    /// use enduro::CommitMode;
    /// let b = enduro::PgAtom::<u64>::builder("postgres://db/app", "t")
    ///     .commit_mode(CommitMode::Durable);
    /// ```
    pub fn commit_mode(mut self, mode: CommitMode) -> Self {
        self.options = self.options.commit_mode(mode);
        self
    }

    /// Opens a blocking atom; see [`postgresql_atom`].
    ///
    /// ```
    /// // Bad input is an error before any connection is tried.
    /// let e = enduro::PgAtom::builder("postgres://u:hunter2@db:notaport/app", "t")
    ///     .open(0u64)
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("invalid PostgreSQL connection string"), "{e}");
    /// assert!(!e.to_string().contains("hunter2"));
    /// ```
    pub fn open(self, init: T) -> Result<Atom<T>> {
        let options = self.options()?;
        Atom::open(self.store.open_blocking()?, init, options)
    }

    /// Opens an async atom; see [`postgresql_atom_async`].
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let atom = enduro::PgAtom::builder("postgres://app@localhost/app", "atoms")
    ///     .key("queue")
    ///     .open_async(Vec::<String>::new())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_async(self, init: T) -> Result<AsyncAtom<T>> {
        let options = self.options()?;
        AsyncAtom::open(self.store.open().await?, init, options).await
    }

    /// The options with the JSON style applied, checked before any connection is tried.
    fn options(&self) -> Result<Options<T>> {
        if self.options.is_live() && self.store.uses_given_pool() {
            return Err(enduro_core::Error::backend(
                self.store.resource(),
                store::cannot_follow_with_pool(),
                None,
            ));
        }
        self.options.clone().resolved(&self.store.resource())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use enduro_core::{Codec, CodecError, Error, Json, Store};

    use super::*;

    /// A codec that is not JSON (it writes JSON all the same, for the test).
    struct Other;

    impl Codec for Other {
        fn name(&self) -> &'static str {
            "Other"
        }
        fn encode<V: serde::Serialize + ?Sized>(
            &self,
            value: &V,
            out: &mut dyn std::io::Write,
        ) -> std::result::Result<(), CodecError> {
            Json::compact().encode(value, out)
        }
        fn decode<V: serde::de::DeserializeOwned>(
            &self,
            bytes: &[u8],
        ) -> std::result::Result<V, CodecError> {
            Json::compact().decode(bytes)
        }
    }

    type Builder = PgAtom<Vec<u32>>;
    type Step = fn(Builder) -> Builder;

    fn builder() -> Builder {
        PgAtom::builder("postgres://app:hunter2@db/app", "t")
    }

    /// What an atom with the builder's options writes (into memory: no database needed),
    /// or the error that refuses them.
    fn written(builder: Builder) -> String {
        let options = match builder.options() {
            Ok(options) => options,
            Err(e) => return format!("error: {e}"),
        };
        let store = std::sync::Arc::new(enduro::MemStore::new());
        Atom::open(store.clone(), vec![1, 2], options).unwrap();
        String::from_utf8(store.load().unwrap().unwrap().bytes).unwrap()
    }

    #[test]
    fn codec_and_pretty_commute() {
        let cases: [(Step, Step, &str); 4] = [
            (
                |b| b.codec(Json::compact()).pretty(true),
                |b| b.pretty(true).codec(Json::compact()),
                "[\n  1,\n  2\n]\n",
            ),
            (
                |b| b.codec(Json::pretty()).pretty(false),
                |b| b.pretty(false).codec(Json::pretty()),
                "[1,2]",
            ),
            (
                |b| b.codec(Other).pretty(false),
                |b| b.pretty(false).codec(Other),
                "[1,2]",
            ),
            (
                |b| b.codec(Other).pretty(true),
                |b| b.pretty(true).codec(Other),
                "error: ",
            ),
        ];
        for (i, (one, other, want)) in cases.into_iter().enumerate() {
            let (a, b) = (written(one(builder())), written(other(builder())));
            assert_eq!(a, b, "case {i}");
            assert!(a.starts_with(want), "case {i}: {a}");
        }
        let refused = written(builder().pretty(true).codec(Other));
        assert!(
            refused.contains("pretty(true)") && refused.contains("Other"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn pretty_with_another_codec_fails_before_connecting() {
        // Nothing listens on port 1: the error must come before any connection attempt.
        let e = PgAtom::<u8>::builder("postgres://app@127.0.0.1:1/app", "t")
            .pretty(true)
            .codec(Other)
            .open(0)
            .unwrap_err();
        assert!(matches!(e, Error::Backend { .. }), "{e}");
        assert!(e.to_string().contains("pretty(true)"), "{e}");
    }

    #[test]
    fn every_other_setter_commutes() {
        let one = builder()
            .key("k")
            .drop_table_on_release(true)
            .max_connections(3)
            .statement_timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(2))
            .idle_timeout(Duration::from_secs(7))
            .validator(|v| v.len() < 5)
            .commit_mode(CommitMode::Durable)
            .live(true)
            .pretty(true);
        let other = builder()
            .pretty(true)
            .live(true)
            .commit_mode(CommitMode::Durable)
            .validator(|v| v.len() < 5)
            .idle_timeout(Duration::from_secs(7))
            .connect_timeout(Duration::from_secs(2))
            .statement_timeout(Duration::from_secs(4))
            .max_connections(3)
            .drop_table_on_release(true)
            .key("k");
        assert_eq!(format!("{one:?}"), format!("{other:?}"));
        assert!(format!("{one:?}").contains("live: true"), "{one:?}");

        let store = |b: PgStoreBuilder| {
            format!(
                "{:?}",
                b.key("k")
                    .max_connections(2)
                    .statement_timeout(Duration::from_secs(1))
                    .drop_table_on_release(true)
            )
        };
        let reversed = |b: PgStoreBuilder| {
            format!(
                "{:?}",
                b.drop_table_on_release(true)
                    .statement_timeout(Duration::from_secs(1))
                    .max_connections(2)
                    .key("k")
            )
        };
        assert_eq!(
            store(PgStore::builder("postgres://db/app", "t")),
            reversed(PgStore::builder("postgres://db/app", "t"))
        );
    }
}
