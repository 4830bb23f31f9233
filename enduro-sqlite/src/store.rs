//! [`SqliteStore`]: one row of one table in a SQLite database file, moved with
//! optimistic versions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use enduro_core::{
    Committed, Encoder, Error, Nudge, Observed, Result, Snapshot, Store, Subscription, Version,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::failure::{self, Action};
use crate::ident::Table;
use crate::path;

/// The key of the row an atom uses when none is given.
///
/// ```
/// assert_eq!(enduro_sqlite::DEFAULT_KEY, "default");
/// ```
pub const DEFAULT_KEY: &str = "default";

/// How long a statement waits for a lock that another process (or connection) holds on the
/// database before it fails, unless [`busy_timeout`](SqliteStoreBuilder::busy_timeout)
/// says otherwise.
///
/// ```
/// assert_eq!(enduro_sqlite::DEFAULT_BUSY_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The fingerprint of a row whose `incarnation` was set to 0 by hand: any fingerprint but
/// 0, so that no row's version is ever [`Version::ABSENT`].
const ZERO_INCARNATION: u64 = 0x5153_4c49_5445_0001;

/// The fingerprint of a row's versions: its incarnation (`as`: a bijection of i64 and
/// u64), never 0.
fn fingerprint(incarnation: i64) -> u64 {
    match incarnation as u64 {
        0 => ZERO_INCARNATION,
        f => f,
    }
}

/// The version after `version`: one more, and `i64::MIN` after `i64::MAX` (as the
/// `UPDATE` writes it), rather than overflow.
fn next(version: i64) -> i64 {
    version.checked_add(1).unwrap_or(i64::MIN)
}

/// Which creation of the row a handle works on: a row deleted (released) and made again is
/// another incarnation, never this handle's to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Not yet seen a row.
    Nothing,
    /// The row's `incarnation` column.
    Row(i64),
}

/// Builds a [`SqliteStore`]: which database file, which table, which row, and how long to
/// wait for another process's lock.
///
/// ```
/// use std::time::Duration;
/// use enduro_sqlite::SqliteStore;
///
/// # let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder(dir.path().join("app.db"), "atoms")
///     .key("settings")
///     .busy_timeout(Duration::from_secs(5))
///     .open()?;
/// assert_eq!(store.key(), "settings");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    table: String,
    key: String,
    busy_timeout: Duration,
}

impl SqliteStoreBuilder {
    /// Names the store in errors raised before it is opened.
    pub(crate) fn resource(&self) -> String {
        describe(&self.table, &self.key, &self.path)
    }

    /// Uses the row with this key (default [`DEFAULT_KEY`]), so that many atoms can share
    /// one table. Any string is a key: it is always sent as a bound parameter.
    ///
    /// ```
    /// let b = enduro_sqlite::SqliteStore::builder("app.db", "atoms").key("a'; DROP TABLE atoms; --");
    /// assert!(format!("{b:?}").contains("DROP TABLE"));
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// How long a statement waits for a lock that another process (or another connection)
    /// holds on the database (default [`DEFAULT_BUSY_TIMEOUT`]); then it fails with an
    /// [`Error::Backend`](enduro_core::Error::Backend) saying so, and nothing is written.
    /// Longer than about 24 days counts as 24 days (SQLite's limit).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = enduro_sqlite::SqliteStore::builder("app.db", "t").busy_timeout(Duration::from_millis(250));
    /// assert!(format!("{b:?}").contains("250ms"));
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens the database (created if missing, with missing parent directories), switches
    /// it to WAL mode, creates the table if it is missing and checks its columns.
    ///
    /// Refused with a clear error, before anything is written: a table name that is empty,
    /// contains NUL or begins with `sqlite_`; a path that is a directory or a special file;
    /// a file that is not a SQLite database (left byte for byte as it was); a table that
    /// lacks a column the store needs; a database that cannot use WAL.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = enduro_sqlite::SqliteStore::builder(dir.path(), "t").open().unwrap_err();
    /// assert!(e.to_string().contains("directory"), "{e}");
    /// let e = enduro_sqlite::SqliteStore::builder(dir.path().join("a.db"), "sqlite_t").open().unwrap_err();
    /// assert!(e.to_string().contains("reserved"), "{e}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self) -> Result<SqliteStore> {
        let table = Table::parse(&self.table)
            .map_err(|message| Error::backend(self.resource(), message, None))?;
        let path = path::resolve(&self.path)?;
        let resource = describe(&table.name, &self.key, &path);
        let busy_timeout = self.busy_timeout;
        let fail = |action, e| failure::failed(&resource, action, e, busy_timeout);
        // No URI names: the path is a path, whatever it looks like.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| fail(Action::Open, e))?;
        // SQLite takes milliseconds as a C int (about 24 days).
        let millis = busy_timeout.as_millis().min(i32::MAX as u128) as u64;
        conn.busy_timeout(Duration::from_millis(millis))
            .map_err(|e| fail(Action::Open, e))?;
        // Switching a new database to WAL (or making the table) while other processes do
        // the same can fail with SQLITE_BUSY at once, without SQLite's busy handler ever
        // waiting (it does not wait where waiting could deadlock): try again, within the
        // busy timeout.
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let sql = loop {
            match set_up(&conn, &table, &resource) {
                Ok(sql) => break sql,
                Err(SetUp::Sqlite(_, e)) if is_busy(&e) && started.elapsed() < busy_timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(SetUp::Sqlite(action, e)) => return Err(fail(action, e)),
                Err(SetUp::Refused(e)) => return Err(e),
            }
        };
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sql,
            key: self.key,
            table,
            path,
            resource,
            busy_timeout,
            known: Mutex::new(Known::Nothing),
        })
    }
}

/// Why setting up a connection failed: SQLite's error in one step, or a refusal.
enum SetUp {
    Sqlite(Action, rusqlite::Error),
    Refused(Error),
}

/// Sets up a new connection: WAL (checked), `synchronous = FULL`, the table (made if
/// missing, checked otherwise). Every step can be run again.
fn set_up(conn: &Connection, table: &Table, resource: &str) -> std::result::Result<Sql, SetUp> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| SetUp::Sqlite(Action::Open, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SetUp::Refused(Error::backend(
            resource,
            format!(
                "cannot switch the database to WAL mode (SQLite kept journal mode \
                 `{mode}`): enduro needs WAL for durable commits that readers do not \
                 block; nothing was changed (a database on a file system without shared \
                 memory, or opened by a program that holds it in another mode, cannot \
                 use it)"
            ),
            None,
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| SetUp::Sqlite(Action::Open, e))?;
    let sql = Sql::new(table);
    conn.execute_batch(&sql.create)
        .map_err(|e| SetUp::Sqlite(Action::Create, e))?;
    check_table(conn, table)
        .map_err(|problem| SetUp::Refused(Error::backend(resource, problem, None)))?;
    Ok(sql)
}

/// Whether `e` is SQLite's "the database is locked" (by another connection).
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The columns the store reads and writes.
const COLUMNS: [&str; 5] = ["key", "value", "version", "incarnation", "updated_at"];

/// Checks that `table` is a table with the columns the store needs, `key` its primary
/// key; says what is wrong otherwise.
fn check_table(conn: &Connection, table: &Table) -> std::result::Result<(), String> {
    let name = &table.name;
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE \
             AND type IN ('table', 'view') LIMIT 1",
            [name],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| format!("cannot look the table `{name}` up: {e}"))?;
    if kind.as_deref() == Some("view") {
        return Err(format!(
            "`{name}` is a view, not a table: enduro keeps its rows in a table; choose \
             another name; nothing was changed"
        ));
    }
    let mut statement = conn
        .prepare("SELECT name, pk FROM pragma_table_info(?1)")
        .map_err(|e| format!("cannot read the columns of the table `{name}`: {e}"))?;
    let columns: Vec<(String, i64)> = statement
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("cannot read the columns of the table `{name}`: {e}"))?;
    let has = |column: &str| columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(column));
    let missing: Vec<&str> = COLUMNS.into_iter().filter(|c| !has(c)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the existing table `{name}` lacks the column{} {} that enduro needs (it has {}); \
             it was made for something else: choose another table name, or make the table \
             with `{}`; nothing was changed",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if columns.is_empty() {
                "none".to_owned()
            } else {
                columns
                    .iter()
                    .map(|(c, _)| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            Sql::new(table).create
        ));
    }
    let keys: Vec<&str> = columns
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(c, _)| c.as_str())
        .collect();
    if keys.len() != 1 || !keys[0].eq_ignore_ascii_case("key") {
        return Err(format!(
            "the existing table `{name}` has the primary key ({}), not (`key`), so rows \
             cannot be told apart by their key; choose another table name; nothing was \
             changed",
            keys.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// ``table `hits` (row `default`) of the SQLite database `/var/lib/app/state.db` ``.
fn describe(table: &str, key: &str, path: &Path) -> String {
    format!(
        "table `{table}` (row `{key}`) of the SQLite database `{}`",
        path.display()
    )
}

/// The time of a commit, as the `updated_at` column keeps it: UTC, ISO 8601, milliseconds.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The statements, with the quoted table name pasted in once.
#[derive(Debug)]
struct Sql {
    create: String,
    load: String,
    check: String,
    insert: String,
    update: String,
    delete: String,
}

impl Sql {
    fn new(table: &Table) -> Self {
        let t = &table.quoted;
        // The value as bytes, whatever its type: a value written by hand as text (or as
        // a number) reads as its text.
        let value = "CAST(value AS BLOB)";
        let same = "IFNULL(version = ?2 AND incarnation = ?3, 0)";
        Sql {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n    \
                 key TEXT PRIMARY KEY NOT NULL,\n    \
                 value BLOB NOT NULL,\n    \
                 version INTEGER NOT NULL,\n    \
                 incarnation INTEGER NOT NULL,\n    \
                 updated_at TEXT NOT NULL DEFAULT ({NOW})\n)"
            ),
            load: format!("SELECT {value}, version, incarnation FROM {t} WHERE key = ?1"),
            // `?2` and `?3` are NULL for a version no row can have: that matches nothing.
            check: format!(
                "SELECT version, incarnation, {same}, CASE WHEN {same} THEN NULL ELSE {value} END \
                 FROM {t} WHERE key = ?1"
            ),
            insert: format!(
                "INSERT INTO {t} (key, value, version, incarnation, updated_at) \
                 VALUES (?1, ?2, 1, ?3, {NOW}) ON CONFLICT (key) DO NOTHING"
            ),
            // At i64::MAX the version wraps to i64::MIN (SQLite would turn it into a float).
            update: format!(
                "UPDATE {t} SET value = ?1, \
                 version = CASE WHEN version = {max} THEN -{max} - 1 ELSE version + 1 END, \
                 updated_at = {NOW} \
                 WHERE key = ?2 AND version = ?3 AND incarnation = ?4",
                max = i64::MAX
            ),
            // `?2`: the incarnation this handle knows (NULL: any), so that a handle of a
            // row released and made again never deletes the new one.
            delete: format!("DELETE FROM {t} WHERE key = ?1 AND (?2 IS NULL OR incarnation = ?2)"),
        }
    }
}

/// The SQLite [`Store`]: one row (`key`, `value`, `version`, `incarnation`,
/// `updated_at`) of one table in a database file, through a connection of its own.
///
/// - load: `SELECT value, version, incarnation ... WHERE key = ?1`
/// - check: the same, in one statement, with the value only when the version moved
/// - commit: `UPDATE ... SET value = ?1, version = version + 1, updated_at = ...
///   WHERE key = ?2 AND version = ?3 AND incarnation = ?4`: one row changed is done, none
///   is a conflict (someone else committed first); a new row is `INSERT ... ON CONFLICT
///   (key) DO NOTHING`, with version 1 and a new random incarnation
/// - release: `DELETE ... WHERE key = ?1` (of the incarnation this handle knows)
///
/// Each statement is its own transaction, synced to disk before it returns (WAL,
/// `synchronous=FULL`). The version an atom sees is the row's `version` with its
/// `incarnation` as fingerprint: a row released and made again has another incarnation,
/// so no handle of the old row can ever match the new one's versions (its changes fail
/// with [`Error::Released`](enduro_core::Error::Released)).
///
/// ```
/// use enduro_core::{Atom, Options};
/// use enduro_sqlite::SqliteStore;
///
/// # let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder(dir.path().join("app.db"), "atoms").key("visitors").open()?;
/// let atom = Atom::open(store, 0u64, Options::new())?;
/// atom.swap(|n| n + 1)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteStore {
    conn: Mutex<Connection>,
    sql: Sql,
    key: String,
    table: Table,
    path: PathBuf,
    resource: String,
    busy_timeout: Duration,
    /// The row's incarnation this handle works on.
    known: Mutex<Known>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("table", &self.table.name)
            .field("key", &self.key)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// A builder for a store on `table` of the SQLite database at `db_path`, on the row
    /// [`DEFAULT_KEY`]. The table name is used exactly as written (a dot is part of the
    /// name) and always quoted, so any name works except an empty one, one with NUL and
    /// one beginning with `sqlite_`. SQLite compares names without regard to ASCII case:
    /// `Hits` and `hits` are one table.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = enduro_sqlite::SqliteStore::builder(dir.path().join("app.db"), "hits; DROP TABLE x").open()?;
    /// assert_eq!(store.table(), "hits; DROP TABLE x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(db_path: impl AsRef<Path>, table: &str) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: db_path.as_ref().to_path_buf(),
            table: table.to_owned(),
            key: DEFAULT_KEY.to_owned(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// The row key this store uses.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = enduro_sqlite::SqliteStore::builder(dir.path().join("a.db"), "t").key("k").open()?;
    /// assert_eq!(store.key(), "k");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The table name, as given.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = enduro_sqlite::SqliteStore::builder(dir.path().join("a.db"), "Hits").open()?;
    /// assert_eq!(store.table(), "Hits");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The database file, as resolved when the store was opened (absolute, with the
    /// symlinks of its directories resolved).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = enduro_sqlite::SqliteStore::builder(dir.path().join("a.db"), "t").open()?;
    /// assert!(store.path().is_absolute());
    /// assert!(store.path().ends_with("a.db"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held happened between statements (no user code runs
        // under it): the connection is as usable as before.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, action: Action, e: rusqlite::Error) -> Error {
        failure::failed(&self.resource, action, e, self.busy_timeout)
    }

    fn error(&self, message: String) -> Error {
        Error::backend(self.resource.clone(), message, None)
    }

    /// Whether a row of `incarnation` is the one this handle works on (a handle that has
    /// seen no row yet takes it as its own).
    fn is_mine(&self, incarnation: i64) -> bool {
        let mut known = self.known();
        match *known {
            Known::Nothing => {
                *known = Known::Row(incarnation);
                true
            }
            Known::Row(mine) => mine == incarnation,
        }
    }

    /// `version` as the database writes it (version, incarnation), or `None` for a version
    /// no row of this handle's incarnation can have.
    fn to_db(&self, version: Version) -> Option<(i64, i64)> {
        match *self.known() {
            Known::Row(incarnation) if version.fingerprint == fingerprint(incarnation) => {
                Some((version.generation as i64, incarnation))
            }
            _ => None,
        }
    }

    /// The bytes of the value column `column` of `row`.
    fn bytes(&self, row: &Row<'_>, column: usize) -> Result<Option<Vec<u8>>> {
        match row.get_ref(column) {
            Ok(ValueRef::Blob(b) | ValueRef::Text(b)) => Ok(Some(b.to_vec())),
            Ok(ValueRef::Null) => Ok(None),
            Ok(other) => Err(self.error(format!(
                "the value column holds a {:?}, not bytes",
                other.data_type()
            ))),
            Err(e) => Err(self.error(format!("cannot read the value column: {e}"))),
        }
    }

    /// The version and incarnation in columns `column` and `column + 1` of `row`.
    fn version_of(&self, row: &Row<'_>, column: usize) -> Result<(Version, i64)> {
        let read = |i: usize, name: &str| {
            row.get::<_, i64>(i).map_err(|e| {
                self.error(format!(
                    "cannot read the `{name}` column as an integer: {e}; nothing was changed"
                ))
            })
        };
        let version = read(column, "version")?;
        let incarnation = read(column + 1, "incarnation")?;
        Ok((
            Version::new(version as u64, fingerprint(incarnation)),
            incarnation,
        ))
    }

    fn insert(&self, bytes: &[u8]) -> Result<Committed> {
        let incarnation = enduro_core::new_incarnation() as i64;
        let conn = self.conn();
        let inserted = conn
            .prepare_cached(&self.sql.insert)
            .and_then(|mut s| s.execute(params![self.key, bytes, incarnation]));
        let inserted = match inserted {
            Err(e) if is_no_such_table(&e) => {
                // Dropped by hand since the store was opened: made again, and tried again.
                conn.execute_batch(&self.sql.create)
                    .map_err(|e| self.failed(Action::Create, e))?;
                conn.prepare_cached(&self.sql.insert)
                    .and_then(|mut s| s.execute(params![self.key, bytes, incarnation]))
            }
            other => other,
        };
        match inserted.map_err(|e| self.failed(Action::Insert, e))? {
            0 => Ok(Committed::Conflict),
            _ => {
                *self.known() = Known::Row(incarnation);
                Ok(Committed::Done(Version::new(1, fingerprint(incarnation))))
            }
        }
    }

    fn update(&self, expected: Version, bytes: &[u8]) -> Result<Committed> {
        let Some((version, incarnation)) = self.to_db(expected) else {
            return Ok(Committed::Conflict);
        };
        let updated = self
            .conn()
            .prepare_cached(&self.sql.update)
            .and_then(|mut s| s.execute(params![bytes, self.key, version, incarnation]));
        match updated {
            Ok(0) => Ok(Committed::Conflict),
            Ok(_) => Ok(Committed::Done(Version::new(
                next(version) as u64,
                fingerprint(incarnation),
            ))),
            Err(e) if is_no_such_table(&e) => Ok(Committed::Conflict),
            Err(e) => Err(self.failed(Action::Update, e)),
        }
    }
}

/// Whether `e` says the table does not exist (dropped by hand since the store opened).
fn is_no_such_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("no such table"))
}

impl Store for SqliteStore {
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let conn = self.conn();
        let mut statement = match conn.prepare_cached(&self.sql.load) {
            Ok(statement) => statement,
            Err(e) if is_no_such_table(&e) => return Ok(None),
            Err(e) => return Err(self.failed(Action::Load, e)),
        };
        let mut rows = statement
            .query([&self.key])
            .map_err(|e| self.failed(Action::Load, e))?;
        let Some(row) = rows.next().map_err(|e| self.failed(Action::Load, e))? else {
            return Ok(None);
        };
        let (version, incarnation) = self.version_of(row, 1)?;
        if !self.is_mine(incarnation) {
            // Released and made again since this handle knew it: not this handle's row.
            return Ok(None);
        }
        let bytes = self.bytes(row, 0)?.unwrap_or_default();
        Ok(Some(Snapshot { bytes, version }))
    }

    fn check(&self, known: Version) -> Result<Observed> {
        let (known_version, known_incarnation) = match self.to_db(known) {
            Some((version, incarnation)) => (Some(version), Some(incarnation)),
            None => (None, None),
        };
        let conn = self.conn();
        let mut statement = match conn.prepare_cached(&self.sql.check) {
            Ok(statement) => statement,
            Err(e) if is_no_such_table(&e) => return Ok(Observed::Missing),
            Err(e) => return Err(self.failed(Action::Check, e)),
        };
        let mut rows = statement
            .query(params![self.key, known_version, known_incarnation])
            .map_err(|e| self.failed(Action::Check, e))?;
        let Some(row) = rows.next().map_err(|e| self.failed(Action::Check, e))? else {
            return Ok(Observed::Missing);
        };
        let (version, incarnation) = self.version_of(row, 0)?;
        if !self.is_mine(incarnation) {
            return Ok(Observed::Missing);
        }
        let same: bool = row
            .get(2)
            .map_err(|e| self.error(format!("cannot read the row: {e}")))?;
        if same && version == known {
            return Ok(Observed::Unchanged);
        }
        let bytes = self.bytes(row, 3)?.unwrap_or_default();
        Ok(Observed::Changed(Snapshot { bytes, version }))
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        // Encoded before the connection is locked: a `Serialize` that panics, or takes its
        // time, holds up no other handle.
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        if expected == Version::ABSENT {
            self.insert(&bytes)
        } else {
            self.update(expected, &bytes)
        }
    }

    fn release(&self) -> Result<()> {
        let incarnation = match *self.known() {
            Known::Row(incarnation) => Some(incarnation),
            Known::Nothing => None,
        };
        let deleted = self
            .conn()
            .prepare_cached(&self.sql.delete)
            .and_then(|mut s| s.execute(params![self.key, incarnation]));
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_table(&e) => Ok(()),
            Err(e) => Err(self.failed(Action::Delete, e)),
        }
    }

    /// A check is one local read: swaps check first, so that `f` starts from the latest
    /// value.
    fn cheap_check(&self) -> bool {
        true
    }

    /// Live atoms: see [`SqliteAtom::live`](crate::SqliteAtom::live).
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        crate::follow::follow(&self.path, nudge).map_err(|e| {
            self.error(format!(
                "cannot start the thread that watches the database for live atoms: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_wrap_and_fingerprints_are_never_zero() {
        assert_eq!(next(i64::MAX), i64::MIN);
        assert_eq!(next(-1), 0);
        assert_eq!(next(1), 2);
        assert_ne!(fingerprint(0), 0);
        assert_eq!(fingerprint(-1), u64::MAX);
        assert_eq!(fingerprint(7), 7);
    }
}
