//! What enduro-sqlite's integration tests share: the conformance kit's backend (rows of
//! one table in a database file of a temp dir), the worker process (this very test
//! binary, run again; see [`worker`]), and reading and writing rows around enduro.
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use enduro_core::conformance::Backend;
use enduro_core::{Result, Store};
use enduro_sqlite::SqliteStore;
use rusqlite::{Connection, OptionalExtension, params};

/// The table the conformance kit's rows live in.
pub const TABLE: &str = "enduro_conformance";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key no other resource of this process uses.
pub fn unique_key(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Rows of [`TABLE`] in one database file of a temp dir (removed when the backend
/// drops); each fresh resource is a new key.
#[derive(Debug)]
pub struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    pub fn new() -> Self {
        SqliteBackend {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("conformance.db")
    }
}

impl Backend for SqliteBackend {
    type Resource = String;

    fn fresh(&self) -> String {
        unique_key("conformance")
    }

    fn store(&self, key: &String) -> Result<Box<dyn Store>> {
        let store = SqliteStore::builder(self.db(), TABLE)
            .key(key.as_str())
            .open()?;
        Ok(Box::new(store))
    }

    fn stored(&self, key: &String) -> Option<Vec<u8>> {
        stored(&self.db(), TABLE, key)
    }

    fn plant(&self, key: &String, bytes: &[u8]) {
        // Opening a store makes the table, as the kit's default would.
        drop(self.store(key).unwrap());
        plant(&self.db(), TABLE, key, bytes);
    }
}

/// A plain connection to `db`, as a person with the `sqlite3` shell would have.
pub fn connect(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn
}

/// `"name"`, as the tests quote a table name for their own SQL.
pub fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// Whether `table` exists in `db` (which must exist).
pub fn table_exists(db: &Path, table: &str) -> bool {
    connect(db)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
        == 1
}

/// The value column of row `key` in `table`, read with plain SQL; `None` when there is
/// no such row (or table, or database).
pub fn stored(db: &Path, table: &str, key: &str) -> Option<Vec<u8>> {
    if !db.exists() || !table_exists(db, table) {
        return None;
    }
    connect(db)
        .query_row(
            &format!(
                "SELECT CAST(value AS BLOB) FROM {} WHERE key = ?1",
                quoted(table)
            ),
            [key],
            |row| row.get(0),
        )
        .optional()
        .unwrap()
}

/// The version column of row `key` in `table`.
pub fn stored_version(db: &Path, table: &str, key: &str) -> Option<i64> {
    connect(db)
        .query_row(
            &format!("SELECT version FROM {} WHERE key = ?1", quoted(table)),
            [key],
            |row| row.get(0),
        )
        .optional()
        .unwrap()
}

/// Writes `bytes` into row `key` of `table` by hand, as the docs say to (bumping the
/// version; a new row gets a new incarnation).
pub fn plant(db: &Path, table: &str, key: &str, bytes: &[u8]) {
    let incarnation = enduro_core::new_incarnation() as i64;
    connect(db)
        .execute(
            &format!(
                "INSERT INTO {} (key, value, version, incarnation) VALUES (?1, ?2, 1, ?3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = version + 1",
                quoted(table)
            ),
            params![key, bytes, incarnation],
        )
        .unwrap();
}
