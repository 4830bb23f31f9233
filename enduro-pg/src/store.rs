//! [`PgStore`]: one row of one table, moved with optimistic versions.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::Pool;
use enduro_core::{
    AsyncStore, Blocking, BoxFuture, Committed, Error, Nudge, Observed, Result, Snapshot,
    Subscription, Version,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::conn::{self, Target};
use crate::failure::Failure;
use crate::ident::Table;
use crate::notify;
use crate::pools::{self, Settings};
use crate::query::{Params, Runner};
use crate::text;

/// The key of the row an atom uses when none is given.
///
/// ```
/// assert_eq!(enduro::DEFAULT_KEY, "default");
/// ```
pub const DEFAULT_KEY: &str = "default";

/// How many connections the pool of one connection string holds at most, unless
/// [`max_connections`](PgStoreBuilder::max_connections) says otherwise. Every atom of a
/// process opened with the same connection string shares that one pool.
///
/// ```
/// assert_eq!(enduro::DEFAULT_MAX_CONNECTIONS, 10);
/// ```
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;

/// How long opening one connection may take (per host: the TCP connect, the TLS
/// handshake, start-up and authentication) unless the connection string's
/// `connect_timeout` or [`connect_timeout`](PgStoreBuilder::connect_timeout) says
/// otherwise.
///
/// ```
/// assert_eq!(enduro::DEFAULT_CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pooled connection may sit unused before it is closed, unless
/// [`idle_timeout`](PgStoreBuilder::idle_timeout) says otherwise.
///
/// ```
/// assert_eq!(enduro::DEFAULT_IDLE_TIMEOUT, std::time::Duration::from_secs(300));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a statement may go without an answer unless
/// [`statement_timeout`](PgStoreBuilder::statement_timeout) says otherwise.
///
/// ```
/// assert_eq!(enduro::DEFAULT_STATEMENT_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The fingerprint of the versions of a row made before rows had an incarnation, so that
/// no row (not even one whose `version` column was set to 0 by hand) is mistaken for
/// [`Version::ABSENT`].
const ROW: u64 = 1;

/// The fingerprint of a row's versions: its incarnation (see [`PgStore`]), never 0.
pub(crate) fn fingerprint(incarnation: Option<i64>) -> u64 {
    match incarnation {
        None => ROW,
        // Mixed so that an incarnation of 0 or 1 (set by hand) cannot look like ABSENT
        // or a row without one.
        Some(i) => (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29)
            .max(ROW + 1),
    }
}

/// Which creation of the row a handle works on: a row deleted (released) and made again is
/// another incarnation, never this handle's to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Not yet seen a row.
    Nothing,
    /// The row's `incarnation` column (`None` for a row made before the column existed).
    Row(Option<i64>),
}

/// The PostgreSQL [`Store`](enduro_core::Store) for blocking code (`Atom`), in the manner of
/// the `postgres` crate over `tokio-postgres`: a [`PgStore`] whose queries run on a
/// process-wide runtime shared by every blocking PostgreSQL store (at most two threads,
/// named `enduro-pg`, however many atoms), through the core's [`Blocking`]
/// adapter. [`inner`](Blocking::inner) gives the [`PgStore`] (its key, table and pool).
///
/// It works from plain `main`, with no runtime of your own. Called from inside a tokio
/// runtime (where blocking on a future would panic), each call runs on a short-lived
/// helper thread instead, so it works there too; it blocks the calling task, though, so
/// async code should prefer `AsyncAtom` over [`PgStore`].
///
/// ```no_run
/// use enduro::{Atom, Options, PgStore};
///
/// let store = PgStore::builder("postgres://app@localhost/app", "atoms")
///     .key("settings")
///     .open_blocking()?;
/// assert_eq!(store.inner().key(), "settings");
/// let atom = Atom::open(store, vec!["dark-mode".to_string()], Options::new())?;
/// atom.swap(|v| [v.clone(), vec!["beta".into()]].concat())?;
/// # Ok::<(), enduro::Error>(())
/// ```
pub type BlockingPgStore = Blocking<PgStore>;

/// Where the connections come from.
enum Source {
    /// A connection string as given, and parsed (or why it does not parse, password
    /// redacted).
    Config(String, Box<std::result::Result<Target, String>>),
    /// A pool the caller made.
    Pool(Pool),
}

/// Builds a [`PgStore`] (async) or a [`BlockingPgStore`]: where to connect, which table,
/// which row, what `release` deletes, and the pool's size and timeouts.
///
/// ```
/// use enduro::PgStore;
///
/// let builder = PgStore::builder("postgres://app:hunter2@localhost/app", "app.state")
///     .key("hits")
///     .max_connections(4)
///     .drop_table_on_release(false);
/// // Debug output never shows the password.
/// assert!(!format!("{builder:?}").contains("hunter2"));
/// ```
pub struct PgStoreBuilder {
    source: Source,
    table: String,
    key: String,
    drop_table: bool,
    notify: bool,
    max_connections: usize,
    statement_timeout: Duration,
    /// The builder's, over the connection string's.
    connect_timeout: Option<Duration>,
    idle_timeout: Duration,
}

impl fmt::Debug for PgStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Config(_, target) => match &**target {
                Ok(target) => format!(
                    "{} (sslmode={})",
                    conn::describe(&target.config),
                    target.tls.mode.name()
                ),
                Err(e) => e.clone(),
            },
            Source::Pool(_) => "an existing pool".to_owned(),
        };
        f.debug_struct("PgStoreBuilder")
            .field("db", &source)
            .field("table", &self.table)
            .field("key", &self.key)
            .field("drop_table", &self.drop_table)
            .field("notify", &self.notify)
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.effective_connect_timeout())
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl PgStoreBuilder {
    fn new(source: Source, table: &str) -> Self {
        PgStoreBuilder {
            source,
            table: table.to_owned(),
            key: DEFAULT_KEY.to_owned(),
            drop_table: false,
            notify: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            connect_timeout: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// The connect timeout in force: the builder's, the connection string's, or the
    /// default.
    fn effective_connect_timeout(&self) -> Duration {
        let from_string = match &self.source {
            Source::Config(_, target) => target
                .as_ref()
                .as_ref()
                .ok()
                .and_then(|t| t.connect_timeout),
            Source::Pool(_) => None,
        };
        self.connect_timeout
            .or(from_string)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// Whether the connections come from a pool the caller gave.
    pub(crate) fn uses_given_pool(&self) -> bool {
        matches!(self.source, Source::Pool(_))
    }

    /// Names the store in errors raised before it is opened.
    pub(crate) fn resource(&self) -> String {
        format!("PostgreSQL table {:?} row {:?}", self.table, self.key)
    }

    /// Uses the row with this key (default [`DEFAULT_KEY`]), so that many atoms can share
    /// one table.
    ///
    /// ```
    /// let b = enduro::PgStore::builder("postgres://db/app", "atoms").key("a");
    /// assert!(format!("{b:?}").contains(r#"key: "a""#));
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// With `true`, `release` drops the whole table instead of deleting only the atom's
    /// row. Off by default.
    ///
    /// ```
    /// let b = enduro::PgStore::builder("postgres://db/app", "scratch").drop_table_on_release(true);
    /// assert!(format!("{b:?}").contains("drop_table: true"));
    /// ```
    pub fn drop_table_on_release(mut self, drop: bool) -> Self {
        self.drop_table = drop;
        self
    }

    /// With `false`, this store's commits and releases send no `NOTIFY`, so
    /// [live](crate::PgAtom::live) atoms elsewhere see them only at their next check
    /// (`refresh`, or a conflict). On by default. PostgreSQL serializes the commits of
    /// every transaction that notifies, so many connections committing to different rows
    /// at once lose most of their group commit to it (measured: 16 connections on 16 rows,
    /// `fsync` on, about a quarter of the commits per second); one writer, or writers of
    /// one row, lose a few percent. Turn it off for a write-heavy table that no live atom
    /// follows.
    ///
    /// ```
    /// let b = enduro::PgStore::builder("postgres://db/app", "events").notify(false);
    /// assert!(format!("{b:?}").contains("notify: false"));
    /// ```
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// The most connections the pool of this connection string opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`], at least 1). Every store of the process opened with
    /// the same connection string (and the same timeouts) shares one pool: it holds the
    /// largest number any of them asked for. Ignored for a pool given with
    /// [`PgStore::builder_with_pool`].
    ///
    /// ```
    /// let b = enduro::PgStore::builder("postgres://db/app", "t").max_connections(2);
    /// assert!(format!("{b:?}").contains("max_connections: 2"));
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long each statement may wait for its answer (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`], at least one millisecond), so that a row locked by
    /// another session, or a server or network that stops answering, fails a swap instead
    /// of blocking it, and every swap queued behind it, forever.
    ///
    /// When it expires, a cancel request is sent for the statement and its connection is
    /// dropped (never handed out again); a commit then fails with
    /// [`Error::Uncertain`], as it may have been stored.
    /// Connections of a pool the store makes itself also get the server-side
    /// `statement_timeout` and `lock_timeout` a little below it, so that the usual case,
    /// a row locked by another session's open transaction, ends with a definite error
    /// instead (nothing written). A pool given with [`PgStore::builder_with_pool`] keeps
    /// its own server settings; the client-side timeout applies all the same.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgStore::builder("postgres://db/app", "t")
    ///     .statement_timeout(Duration::from_secs(5));
    /// assert!(format!("{b:?}").contains("statement_timeout: 5s"));
    /// ```
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`], or
    /// the connection string's `connect_timeout`; at least one millisecond): the TCP
    /// connect, the TLS handshake, start-up and authentication, per host. A server that
    /// accepts the connection and never answers then fails the open (or the swap that
    /// needed a new connection) with an error that says it timed out, where, and in which
    /// phase. Ignored for a pool given with [`PgStore::builder_with_pool`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgStore::builder("postgres://db/app?connect_timeout=3", "t");
    /// assert!(format!("{b:?}").contains("connect_timeout: 3s"));
    /// let b = b.connect_timeout(Duration::from_millis(1500));
    /// assert!(format!("{b:?}").contains("connect_timeout: 1.5s"));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// How long a pooled connection may sit unused before it is closed (default
    /// [`DEFAULT_IDLE_TIMEOUT`], at least a quarter of a second), so that a process that
    /// stopped writing gives its connections back to the server. Ignored for a pool given
    /// with [`PgStore::builder_with_pool`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro::PgStore::builder("postgres://db/app", "t").idle_timeout(Duration::from_secs(60));
    /// assert!(format!("{b:?}").contains("idle_timeout: 60s"));
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(250));
        self
    }

    /// Connects, creates the table if it is missing, and returns the async store.
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let store = enduro::PgStore::builder("postgres://app@localhost/app", "atoms")
    ///     .open()
    ///     .await?;
    /// assert_eq!(store.key(), enduro::DEFAULT_KEY);
    /// # Ok(()) }
    /// ```
    pub async fn open(self) -> Result<PgStore> {
        let store = self.prepare()?;
        store.ensure_table().await?;
        Ok(store)
    }

    /// Like [`open`](PgStoreBuilder::open), for blocking code: the store runs its queries
    /// on a private runtime. Works from plain `main` and inside a tokio runtime.
    ///
    /// ```no_run
    /// let store = enduro::PgStore::builder("host=localhost user=app", "atoms")
    ///     .key("jobs")
    ///     .open_blocking()?;
    /// let jobs = enduro::Atom::open(store, Vec::<String>::new(), Default::default())?;
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn open_blocking(self) -> Result<BlockingPgStore> {
        let store = self.prepare()?;
        let runtime = crate::runtime::handle().map_err(|e| store.error(e, None))?;
        let store = Blocking::on(store, runtime);
        store.run(store.inner().ensure_table())?;
        Ok(store)
    }

    /// Everything but the table check: parse and validate, build the pool.
    fn prepare(self) -> Result<PgStore> {
        let connect_timeout = self.effective_connect_timeout();
        let table = Table::parse(&self.table).map_err(|m| backend("PostgreSQL", m))?;
        let key = self.key;
        if key.contains('\0') {
            return Err(backend(
                "PostgreSQL",
                format!("invalid row key {key:?}: PostgreSQL text cannot contain NUL"),
            ));
        }
        let (runner, location, password) = match self.source {
            Source::Pool(pool) => (Runner::new(pool, self.statement_timeout), None, None),
            Source::Config(db, target) => {
                let target = (*target).map_err(|message| backend("PostgreSQL", message))?;
                let location = conn::describe(&target.config);
                let password = target.config.get_password().map(<[u8]>::to_vec);
                let settings = Settings {
                    max_connections: self.max_connections,
                    connect_timeout,
                    statement_timeout: self.statement_timeout,
                    idle_timeout: self.idle_timeout,
                };
                let shared = pools::shared(&db, &target, &settings).map_err(|e| {
                    backend(
                        format!("PostgreSQL at {location}"),
                        conn::scrub(&e, password.as_deref()),
                    )
                })?;
                (
                    Runner::shared(shared, self.statement_timeout),
                    Some(location),
                    password,
                )
            }
        };
        let mut resource = format!("PostgreSQL table {} row {key:?}", table.quoted);
        if let Some(location) = location {
            resource.push_str(" at ");
            resource.push_str(&location);
        }
        let channel = notify::channel(table.schema.as_deref().unwrap_or("public"), &table.name);
        Ok(PgStore {
            sql: Sql::new(&table, self.notify),
            runner,
            channel: Mutex::new(channel),
            tag: notify::tag(&key),
            key,
            resource,
            password,
            drop_table: self.drop_table,
            known: Mutex::new(Known::Nothing),
            no_staging: AtomicBool::new(false),
        })
    }
}

/// The value as staged statements read it: from the temporary table the transaction
/// streamed it into (see [`Runner::query_opt_staged`]).
const STAGED: &str = "(SELECT u.value FROM pg_temp.enduro_upload AS u)";

/// The statements, with the quoted table name pasted in once.
struct Sql {
    table: String,
    create: String,
    add_incarnation: String,
    load: String,
    check: String,
    insert: String,
    update: String,
    /// `insert` and `update` reading the value from the transaction's temporary table
    /// (large values, see [`Runner::query_opt_staged`]); their parameters are the others
    /// of `insert` and `update`, in order.
    insert_staged: String,
    update_staged: String,
    delete: String,
    drop: String,
    /// Whether commits and releases send `NOTIFY` (see [`PgStoreBuilder::notify`]).
    notifies: bool,
}

impl Sql {
    /// The statements on `table`; with `notify` false, commits and releases send no
    /// notification (the channel and tag parameters are read but not used).
    fn new(table: &Table, notifies: bool) -> Self {
        let t = &table.quoted;
        // Every commit tells live atoms, in its own statement (so only if it commits):
        // `pg_notify(channel, "VERSION INCARNATION TAG")` for the row it returns (see
        // `crate::notify`). The channel and the tag are the parameters `$first` and
        // `$first + 1`.
        let notify = |first: usize| {
            if notifies {
                format!(
                    "SELECT c.version, c.incarnation, pg_notify(${first}::text, \
                     c.version::text || ' ' || coalesce(c.incarnation::text, '-') || ' ' || ${}::text) \
                     FROM c",
                    first + 1
                )
            } else {
                format!(
                    "SELECT c.version, c.incarnation, ${first}::text, ${}::text FROM c",
                    first + 1
                )
            }
        };
        // A new row's version starts at the time in microseconds, and so does its
        // incarnation: a row deleted and made again is told apart from the old one by
        // every handle that knew the old one. `$1` is the key; `value` the value's
        // expression; then the channel and the tag.
        let insert = |value: &str, first: usize| {
            format!(
                "WITH c AS (INSERT INTO {t} (key, value, version, incarnation, updated_at) \
                 SELECT $1, {value}, now_us, now_us, now() \
                 FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) AS t \
                 ON CONFLICT (key) DO NOTHING RETURNING version, incarnation) {}",
                notify(first)
            )
        };
        // At i64::MAX the version wraps to i64::MIN instead of failing every commit with
        // "bigint out of range": versions start at the insert time in microseconds, so
        // counting up from i64::MIN cannot reach one in use. The key, the expected version
        // and incarnation, the channel and the tag are the parameters from `$first` on.
        let update = |value: &str, first: usize| {
            format!(
                "WITH c AS (UPDATE {t} SET value = {value}, \
                 version = CASE WHEN version = {max} THEN '{min}'::bigint ELSE version + 1 END, \
                 updated_at = now() \
                 WHERE key = ${first} AND version = ${} AND incarnation IS NOT DISTINCT FROM ${} \
                 RETURNING version, incarnation) {}",
                first + 1,
                first + 2,
                notify(first + 3),
                max = i64::MAX,
                min = i64::MIN,
            )
        };
        Sql {
            table: t.clone(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 key text PRIMARY KEY, \
                 value text NOT NULL, \
                 version bigint NOT NULL, \
                 incarnation bigint, \
                 updated_at timestamptz NOT NULL DEFAULT now())"
            ),
            // Tables made by enduro 0.1 have no `incarnation` column.
            add_incarnation: format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS incarnation bigint"),
            load: format!("SELECT value, version, incarnation FROM {t} WHERE key = $1"),
            // `$2` is NULL for a version no row can have, which matches nothing.
            check: format!(
                "SELECT version, incarnation, \
                 CASE WHEN version = $2 AND incarnation IS NOT DISTINCT FROM $3 THEN NULL \
                 ELSE value END \
                 FROM {t} WHERE key = $1"
            ),
            insert: insert("$2", 3),
            insert_staged: insert(STAGED, 2),
            update: update("$1", 2),
            update_staged: update(STAGED, 1),
            // `$2` the channel, `$3` the tag; a row that was not there tells no one.
            delete: if notifies {
                format!(
                    "WITH d AS (DELETE FROM {t} WHERE key = $1 RETURNING 1) \
                     SELECT pg_notify($2::text, '{gone}' || $3::text) FROM d LIMIT 1",
                    gone = notify::GONE
                )
            } else {
                format!(
                    "WITH d AS (DELETE FROM {t} WHERE key = $1 RETURNING 1) \
                     SELECT $2::text, $3::text FROM d LIMIT 1"
                )
            },
            notifies,
            drop: format!("DROP TABLE IF EXISTS {t}"),
        }
    }
}

/// The PostgreSQL [`AsyncStore`]: one row (`key`, `value`, `version`, `incarnation`,
/// `updated_at`) of one table.
///
/// - load: `SELECT value, version, incarnation ... WHERE key = $1`
/// - check: the same, with the value only when the version moved
/// - commit: `UPDATE ... SET value = $1, version = version + 1, updated_at = now()
///   WHERE key = $2 AND version = $3 AND incarnation IS NOT DISTINCT FROM $4 RETURNING
///   ...` (the version wraps from i64::MAX to i64::MIN rather than overflow) — one round
///   trip, and no row means someone else committed first ([`Committed::Conflict`]); a new
///   row is `INSERT ... ON CONFLICT (key) DO NOTHING`, so two processes opening at once
///   agree
/// - a value of 8 MiB or more is streamed with `COPY ... FROM STDIN (FORMAT binary)` into a
///   temporary table of the commit's transaction, from which the same `UPDATE` (or
///   `INSERT`) reads it, so the driver never buffers it whole; a role that may not make
///   temporary tables sends it as a parameter
/// - release: `DELETE ... WHERE key = $1` (or `DROP TABLE`, if the builder says so)
/// - each commit and release also sends `pg_notify(channel, payload)` in the same statement
///   (for `DROP TABLE`, the same transaction): the table's channel, and the row's key and
///   new version, for [live](crate::PgAtom::live) atoms anywhere; a commit that does not
///   happen (a conflict, a rollback) sends nothing
///
/// A new row's `version` and `incarnation` both start at the time of its insert, in
/// microseconds. The incarnation tells a row deleted and made again (a release, then a new
/// open) from the one a handle knew: to a handle of the old row the new one is not its
/// row, so its changes fail with `Error::Released` instead of building on a value it never
/// knew. A table made by enduro 0.1, without the column, gets it when first opened
/// (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS incarnation bigint`, once).
///
/// The value column is `text`: JSON is stored as readable text. A codec whose output is
/// not UTF-8, or contains a NUL byte (which PostgreSQL text cannot hold), is refused with
/// an error that says so and nothing is written; JSON never produces either (it writes NUL
/// characters of strings as `\u0000`).
///
/// ```no_run
/// use enduro::{AsyncAtom, Options, PgStore};
///
/// # async fn demo() -> enduro::Result<()> {
/// let store = PgStore::builder("postgres://app@localhost/app", "atoms")
///     .key("visitors")
///     .open()
///     .await?;
/// let atom = AsyncAtom::open(store, 0u64, Options::new()).await?;
/// atom.swap(|n| n + 1).await?;
/// # Ok(()) }
/// ```
pub struct PgStore {
    runner: Runner,
    sql: Sql,
    /// The table's channel for live atoms (see [`crate::notify`]), from its name as the
    /// server resolved it when the store checked the table.
    channel: Mutex<String>,
    /// What names the row in notifications.
    tag: String,
    key: String,
    resource: String,
    /// Scrubbed from every message, in case a server or driver ever echoes it.
    password: Option<Vec<u8>>,
    drop_table: bool,
    /// The row's incarnation this handle works on.
    known: Mutex<Known>,
    /// Large values go as parameters instead of through a temporary table: the role may
    /// not make one.
    no_staging: AtomicBool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("resource", &self.resource)
            .field("drop_table", &self.drop_table)
            .finish_non_exhaustive()
    }
}

fn backend(resource: impl Into<String>, message: String) -> Error {
    Error::Backend {
        resource: resource.into(),
        message,
        source: None,
    }
}

fn is_undefined_table(failure: &Failure) -> bool {
    failure.code() == Some(&SqlState::UNDEFINED_TABLE)
}

/// What [`PgStore::describe_table`] found out about the table.
#[derive(Debug, Default)]
struct Described {
    /// `relpersistence`: `p` permanent, `u` unlogged, `t` temporary.
    persistence: String,
    /// Whether it has the column `incarnation` (tables made by enduro 0.1 do not).
    has_incarnation: bool,
    /// Its channel for live atoms, from its schema and name as the server resolved them.
    channel: Option<String>,
}

/// What a statement was for, which decides what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    LookUp,
    Create,
    Load,
    Check,
    Insert,
    Update,
    Delete,
    Drop,
    Upgrade,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::LookUp => "look the table up",
            Action::Create => "create the table",
            Action::Load => "read the row",
            Action::Check => "check the row",
            Action::Insert => "insert the row",
            Action::Update => "update the row",
            Action::Delete => "delete the row",
            Action::Drop => "drop the table",
            Action::Upgrade => "add the column `incarnation` to the table",
        }
    }

    /// Whether this is a commit, whose unknown outcome is [`Error::Uncertain`].
    fn commits(self) -> bool {
        matches!(self, Action::Insert | Action::Update)
    }

    /// What a failure that surely did not run it leaves unchanged.
    fn untouched(self) -> Option<&'static str> {
        match self {
            Action::Insert | Action::Update => Some("nothing was written"),
            Action::Delete => Some("nothing was deleted"),
            Action::Drop => Some("nothing was dropped"),
            Action::Create => Some("nothing was created"),
            Action::Upgrade => Some("the table was left as it was"),
            Action::LookUp | Action::Load | Action::Check => None,
        }
    }
}

impl PgStore {
    /// A builder for a store on `table` (`name` or `schema.name`, used exactly as written
    /// and always quoted) of the database `db`, a connection string: a URL such as
    /// `postgres://user:password@host:5432/dbname` or `key=value` pairs such as
    /// `host=localhost user=app dbname=app`.
    ///
    /// ```
    /// let bad = enduro::PgStore::builder("postgres://localhost/app", "a.b.c").open_blocking();
    /// assert!(bad.unwrap_err().to_string().contains("invalid table name"));
    /// ```
    pub fn builder(db: &str, table: &str) -> PgStoreBuilder {
        PgStoreBuilder::new(
            Source::Config(db.to_owned(), Box::new(conn::parse(db))),
            table,
        )
    }

    /// A builder for a store on `table` that takes its connections from `pool`.
    ///
    /// Each connection is driven by a task on the runtime that opened it. For a blocking
    /// store, give a pool whose connections are opened by the store itself (a fresh pool)
    /// or driven by a multi-thread runtime: connections that a current-thread runtime
    /// opened make progress only while that runtime runs.
    ///
    /// ```no_run
    /// use deadpool_postgres::{Manager, Pool};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let config: tokio_postgres::Config = "host=localhost user=app".parse()?;
    /// let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls)).build()?;
    /// let store = enduro::PgStore::builder_with_pool(pool, "atoms").key("a").open().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder_with_pool(pool: Pool, table: &str) -> PgStoreBuilder {
        PgStoreBuilder::new(Source::Pool(pool), table)
    }

    /// The row key this store uses.
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let store = enduro::PgStore::builder("postgres://localhost/app", "t").key("k").open().await?;
    /// assert_eq!(store.key(), "k");
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The quoted table name, as it appears in the statements.
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let store = enduro::PgStore::builder("postgres://localhost/app", "app.Hits").open().await?;
    /// assert_eq!(store.table(), r#""app"."Hits""#);
    /// # Ok(()) }
    /// ```
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// The channel on which commits to this store's table send `NOTIFY` for
    /// [live](crate::PgAtom::live) atoms: `enduro_` and a hash of the table's name as the
    /// server resolved it. A change made by hand (an `UPDATE` in `psql`) reaches live
    /// atoms at once when followed by `SELECT pg_notify('CHANNEL', '')`, which makes every
    /// live atom of the table check its row.
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let store = enduro::PgStore::builder("postgres://localhost/app", "hits").open().await?;
    /// assert!(store.notify_channel().starts_with("enduro_"));
    /// # Ok(()) }
    /// ```
    pub fn notify_channel(&self) -> String {
        self.channel()
    }

    /// The connection pool, for queries of your own next to the atom's.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = enduro::PgStore::builder("postgres://localhost/app", "hits").open().await?;
    /// let client = store.pool().get().await?;
    /// let rows = client.query("SELECT key, value FROM hits", &[]).await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &Pool {
        self.runner.pool()
    }

    pub(crate) fn error(
        &self,
        message: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Backend {
            resource: self.resource.clone(),
            message: conn::scrub(&message, self.password.as_deref()),
            source,
        }
    }

    /// A statement's failure as the error to return: [`Error::Uncertain`] for a commit
    /// that may have run, [`Error::Backend`] for everything else.
    fn failed(&self, action: Action, failure: Failure) -> Error {
        let mut message = match failure {
            // Says "cannot connect" itself: whatever the action was, it never started.
            Failure::NoConnection(..) => failure.describe(),
            _ => format!("cannot {}: {}", action.verb(), failure.describe()),
        };
        if failure.may_have_run() {
            if action.commits() {
                return Error::Uncertain {
                    resource: self.resource.clone(),
                    message: conn::scrub(&message, self.password.as_deref()),
                    source: failure.into_source(),
                };
            }
            if action.untouched().is_some() {
                message.push_str("; it may or may not have been done");
            }
        } else if let Some(untouched) = action.untouched() {
            message.push_str("; ");
            message.push_str(untouched);
        }
        self.error(message, failure.into_source())
    }

    /// Creates the table unless it exists (checked first, so that a role without the
    /// right to create tables can use one made for it), and refuses a temporary one.
    pub(crate) async fn ensure_table(&self) -> Result<()> {
        let Described {
            persistence,
            has_incarnation,
            channel,
        } = match self.describe_table().await? {
            Some(found) => found,
            None => {
                self.create_table().await?;
                self.describe_table().await?.unwrap_or_default()
            }
        };
        if let Some(channel) = channel {
            *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = channel;
        }
        if persistence == "t" {
            return Err(self.error(
                format!(
                    "cannot use the table {}: the name resolves to a temporary table (one \
                     of this connection's own, which shadows a regular table of that name, \
                     or one created there because search_path puts pg_temp first); each \
                     connection sees its own temporary table, so atoms would neither be \
                     shared nor outlive their connection: name a regular table with its \
                     schema (such as `public.table`), or drop the temporary table",
                    self.sql.table
                ),
                None,
            ));
        }
        if !has_incarnation {
            // A table made by enduro 0.1: add the column (once, taking turns with other
            // openers; it holds NULL for the rows already there).
            self.runner
                .locked_batch(
                    &format!("enduro create {}", self.sql.table),
                    &self.sql.add_incarnation,
                )
                .await
                .map_err(|e| {
                    let mut error = self.failed(Action::Upgrade, e);
                    if let Error::Backend { message, .. } = &mut error {
                        message.push_str(&format!(
                            " (the table was made by an older enduro; its owner can add the \
                             column once with `{}`)",
                            self.sql.add_incarnation
                        ));
                    }
                    error
                })?;
        }
        Ok(())
    }

    /// What the table is (see [`Described`]), or `None` when no table of that name is
    /// visible.
    async fn describe_table(&self) -> Result<Option<Described>> {
        let row = self
            .runner
            .query_opt(
                "SELECT c.relpersistence::text, EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attname = 'incarnation' AND NOT a.attisdropped), \
                 n.nspname::text, c.relname::text \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = pg_catalog.to_regclass($1)",
                &[&self.sql.table],
            )
            .await
            .map_err(|e| self.failed(Action::LookUp, e))?;
        row.map(|row| {
            Ok(Described {
                persistence: row.try_get(0)?,
                has_incarnation: row.try_get(1)?,
                channel: Some(notify::channel(
                    row.try_get::<_, &str>(2)?,
                    row.try_get::<_, &str>(3)?,
                )),
            })
        })
        .transpose()
        .map_err(|e: tokio_postgres::Error| {
            self.error(format!("cannot look the table up: {e}"), None)
        })
    }

    /// `CREATE TABLE IF NOT EXISTS`, taking turns with other openers.
    async fn create_table(&self) -> Result<()> {
        // Openers of a new table take turns on a transaction-scoped advisory lock named
        // after it, so each one's `IF NOT EXISTS` sees the table the one before committed.
        // Without it, two concurrent `CREATE TABLE IF NOT EXISTS` can both miss the table,
        // and one fails on the catalog's unique index (SQL state 42710 or 23505).
        self.runner
            .locked_batch(
                &format!("enduro create {}", self.sql.table),
                &self.sql.create,
            )
            .await
            .map_err(|e| self.failed(Action::Create, e))
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The row's version and incarnation, from the columns `version` and `version + 1`.
    fn version_of(&self, row: &Row, column: usize) -> Result<(Version, Option<i64>)> {
        let version: i64 = row
            .try_get(column)
            .map_err(|e| self.error(format!("cannot read the version column: {e}"), None))?;
        let incarnation: Option<i64> = row
            .try_get(column + 1)
            .map_err(|e| self.error(format!("cannot read the incarnation column: {e}"), None))?;
        // `as` is a bijection between i64 and u64, and `to_db` undoes it.
        Ok((
            Version::new(version as u64, fingerprint(incarnation)),
            incarnation,
        ))
    }

    /// Whether a row of `incarnation` is the one this handle works on (a handle that has
    /// seen no row yet takes it as its own).
    fn is_mine(&self, incarnation: Option<i64>) -> bool {
        let mut known = self.known();
        match *known {
            Known::Nothing => {
                *known = Known::Row(incarnation);
                true
            }
            Known::Row(mine) => mine == incarnation,
        }
    }

    /// The stored version as the database writes it, with this handle's incarnation, or
    /// `None` for a version no row of that incarnation can have (so cannot match).
    fn to_db(&self, version: Version) -> Option<(i64, Option<i64>)> {
        match *self.known() {
            Known::Row(incarnation) if version.fingerprint == fingerprint(incarnation) => {
                Some((version.generation as i64, incarnation))
            }
            _ => None,
        }
    }

    /// The encoded value as text for the `value` column, or a clear error.
    fn text(&self, bytes: Vec<u8>) -> Result<String> {
        // PostgreSQL's largest field, and so its largest text value.
        const MAX: usize = (1 << 30) - 1;
        if bytes.len() > MAX {
            return Err(self.error(
                format!(
                    "cannot store the value: its encoding is {} bytes, more than the 1 GiB a \
                     PostgreSQL text value can hold; nothing was written",
                    bytes.len()
                ),
                None,
            ));
        }
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return Err(self.error(
                format!(
                    "cannot store the value: its encoding has a NUL byte at offset {at}, which \
                     the PostgreSQL text column `value` cannot hold (JSON writes NUL as \\u0000 \
                     and never hits this; use a codec that writes text); nothing was written"
                ),
                None,
            ));
        }
        String::from_utf8(bytes).map_err(|e| {
            self.error(
                format!(
                    "cannot store the value: its encoding is not UTF-8 text ({e}), which the \
                     PostgreSQL text column `value` requires (use a codec that writes text, \
                     such as JSON); nothing was written"
                ),
                None,
            )
        })
    }

    async fn load_row(&self) -> Result<Option<Snapshot>> {
        let large = |row: Option<&Row>| text::answer_is_large(row, 0);
        let row = match self
            .runner
            .query_opt_closing(&self.sql.load, &[&self.key], &large)
            .await
        {
            Ok(row) => row,
            Err(e) if is_undefined_table(&e) => None,
            Err(e) => return Err(self.failed(Action::Load, e)),
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let (version, incarnation) = self.version_of(&row, 1)?;
        if !self.is_mine(incarnation) {
            // Released and made again since this handle knew it: not this handle's row.
            return Ok(None);
        }
        // Borrowed from the row, and copied once, into the snapshot.
        let value: &str = row
            .try_get(0)
            .map_err(|e| self.error(format!("cannot read the value column: {e}"), None))?;
        Ok(Some(Snapshot {
            bytes: value.as_bytes().to_vec(),
            version,
        }))
    }

    async fn check_row(&self, known: Version) -> Result<Observed> {
        // Every i64 is a version a row can hold (i64::MIN after a wrap): a version that
        // cannot be stored is sent as NULL, not as a stand-in number.
        let (known_db, mine) = match self.to_db(known) {
            Some((version, incarnation)) => (Some(version), incarnation),
            None => (None, None),
        };
        let large = |row: Option<&Row>| text::answer_is_large(row, 2);
        let row = match self
            .runner
            .query_opt_closing(&self.sql.check, &[&self.key, &known_db, &mine], &large)
            .await
        {
            Ok(row) => row,
            Err(e) if is_undefined_table(&e) => None,
            Err(e) => return Err(self.failed(Action::Check, e)),
        };
        let Some(row) = row else {
            return Ok(Observed::Missing);
        };
        let (version, incarnation) = self.version_of(&row, 0)?;
        if !self.is_mine(incarnation) {
            return Ok(Observed::Missing);
        }
        let value: Option<&str> = row
            .try_get(2)
            .map_err(|e| self.error(format!("cannot read the value column: {e}"), None))?;
        Ok(match value {
            None if version == known => Observed::Unchanged,
            Some(value) => Observed::Changed(Snapshot {
                bytes: value.as_bytes().to_vec(),
                version,
            }),
            // The version matched in SQL but not here: cannot happen, but a reload is
            // always safe.
            None => match self.load_row().await? {
                Some(snapshot) => Observed::Changed(snapshot),
                None => Observed::Missing,
            },
        })
    }

    async fn commit_text(&self, expected: Version, text: String) -> Result<Committed> {
        let tag = &self.tag;
        if expected == Version::ABSENT {
            for attempt in 0..2 {
                // Read again after a re-creation of the table, which may resolve anew.
                let channel = self.channel();
                let inserted = self
                    .write(
                        &text,
                        (&self.sql.insert_staged, &[&self.key, &channel, tag]),
                        (&self.sql.insert, &[&self.key, &text, &channel, tag]),
                    )
                    .await;
                match inserted {
                    Ok(Some(row)) => return self.committed(&row, true),
                    Ok(None) => return Ok(Committed::Conflict),
                    // The table was dropped (a release with `drop_table_on_release`).
                    Err(e) if attempt == 0 && is_undefined_table(&e) => {
                        self.ensure_table().await?;
                    }
                    Err(e) => return Err(self.failed(Action::Insert, e)),
                }
            }
            return Err(self.error(
                "cannot insert the row: the table keeps vanishing".into(),
                None,
            ));
        }
        let Some((expected, incarnation)) = self.to_db(expected) else {
            return Ok(Committed::Conflict);
        };
        let channel = self.channel();
        let updated = self
            .write(
                &text,
                (
                    &self.sql.update_staged,
                    &[&self.key, &expected, &incarnation, &channel, tag],
                ),
                (
                    &self.sql.update,
                    &[&text, &self.key, &expected, &incarnation, &channel, tag],
                ),
            )
            .await;
        match updated {
            Ok(Some(row)) => self.committed(&row, false),
            Ok(None) => Ok(Committed::Conflict),
            Err(e) if is_undefined_table(&e) => Ok(Committed::Conflict),
            Err(e) => Err(self.failed(Action::Update, e)),
        }
    }

    /// Runs a commit's statement: `staged` (reading the value from the transaction's
    /// temporary table, see [`Runner::query_opt_staged`]) for a large value, `plain` (the
    /// value as a parameter) otherwise. A role that may not make temporary tables (SQL
    /// state 42501 before the commit) turns staging off for this store, and the value
    /// goes as a parameter.
    async fn write(
        &self,
        text: &str,
        staged: (&str, Params<'_>),
        plain: (&str, Params<'_>),
    ) -> std::result::Result<Option<Row>, Failure> {
        let large = text.len() >= text::LARGE;
        if large && !self.no_staging.load(Ordering::Relaxed) {
            match self
                .runner
                .query_opt_staged(text.as_bytes(), staged.0, staged.1)
                .await
            {
                Err(Failure::Uncommitted(inner))
                    if inner.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
                {
                    self.no_staging.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.runner
            .query_opt_closing(plain.0, plain.1, &|_| large)
            .await
    }

    /// The new version a commit returned (`created`: by an insert, which makes the new
    /// row this handle's). The row is written by then, so a version that cannot be read
    /// leaves the outcome unknown to the atom.
    fn committed(&self, row: &Row, created: bool) -> Result<Committed> {
        match self.version_of(row, 0) {
            Ok((version, incarnation)) => {
                if created {
                    *self.known() = Known::Row(incarnation);
                }
                Ok(Committed::Done(version))
            }
            Err(e) => Err(Error::Uncertain {
                resource: self.resource.clone(),
                message: conn::scrub(
                    &format!("the row was written, but its new version is unreadable: {e}"),
                    self.password.as_deref(),
                ),
                source: Some(Box::new(e)),
            }),
        }
    }

    /// Validates and commits encoded bytes.
    pub(crate) async fn commit_bytes(
        &self,
        expected: Version,
        bytes: Vec<u8>,
    ) -> Result<Committed> {
        let text = self.text(bytes)?;
        self.commit_text(expected, text).await
    }

    async fn release_row(&self) -> Result<()> {
        let channel = self.channel();
        let (action, done) = if self.drop_table && !self.sql.notifies {
            (Action::Drop, self.runner.batch(&self.sql.drop).await)
        } else if self.drop_table {
            // One simple query: one transaction, so the notification goes out only if
            // the table was dropped (IF EXISTS: a table already gone tells its channel
            // once more, which costs a spurious check at most).
            let sql = format!(
                "SELECT pg_notify('{channel}', '{gone}{all}'); {drop}",
                gone = notify::GONE,
                all = notify::WHOLE_TABLE,
                drop = self.sql.drop
            );
            (Action::Drop, self.runner.batch(&sql).await)
        } else {
            let params: Params<'_> = &[&self.key, &channel, &self.tag];
            let deleted = self.runner.execute(&self.sql.delete, params).await;
            (Action::Delete, deleted.map(|_| ()))
        };
        match done {
            Ok(()) => Ok(()),
            Err(e) if is_undefined_table(&e) => Ok(()),
            Err(e) => Err(self.failed(action, e)),
        }
    }

    /// The table's channel for live atoms.
    fn channel(&self) -> String {
        self.channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AsyncStore for PgStore {
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        Box::pin(self.load_row())
    }

    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        Box::pin(self.check_row(known))
    }

    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(self.commit_bytes(expected, bytes))
    }

    fn release(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.release_row())
    }

    /// A check is a round trip: swaps go straight to the versioned `UPDATE`, which
    /// catches other writers by itself, so a swap is one round trip when nobody else wrote.
    fn cheap_check(&self) -> bool {
        false
    }

    /// Follows the row through the pool's one `LISTEN` connection (see
    /// [`PgAtom::live`](crate::PgAtom::live)); never blocks. A store on a pool given with
    /// [`PgStore::builder_with_pool`] cannot follow: its connections' notifications go to
    /// tasks of the pool's own, which drop them.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        let Some(shared) = self.runner.own_pool() else {
            return Err(self.error(cannot_follow_with_pool().to_owned(), None));
        };
        Ok(shared
            .listener
            .follow(self.channel(), self.tag.clone(), nudge))
    }
}

/// Why an atom on a pool of the caller's cannot be live.
pub(crate) fn cannot_follow_with_pool() -> &'static str {
    "cannot make the atom live: it uses a connection pool given with `PgAtom::with_pool` \
     (or `PgStore::builder_with_pool`), whose connections hand PostgreSQL's notifications \
     to nobody, and a live atom needs them; open it with a connection string \
     (`PgAtom::builder(db, table)`) to make it live, or leave `live` off and call \
     `refresh()` to pick up other writers' commits"
}
