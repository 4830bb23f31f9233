//! Embedded databases as baselines for the journal rows: a durable u64 counter kept in
//! redb and in SQLite, and the ops rows' map of strings kept as a table in each, each
//! commit durable when it returns. (Here, not in the library:
//! redb and rusqlite are dev-dependencies of the benches only.)

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, Statement};

const TABLE: TableDefinition<&str, u64> = TableDefinition::new("counter");
const KEY: &str = "n";

/// A counter in redb: one table, one key; each increment is one write transaction with
/// [`Durability::Immediate`] (read, insert, commit). redb serializes write transactions,
/// so several threads may share one.
#[derive(Debug)]
pub struct RedbCounter {
    db: Database,
}

impl RedbCounter {
    /// Creates the database at `path` with the counter at 0.
    pub fn create(path: &Path) -> Result<RedbCounter, redb::Error> {
        let counter = RedbCounter {
            db: Database::create(path)?,
        };
        let txn = counter.db.begin_write()?;
        txn.open_table(TABLE)?.insert(KEY, 0)?;
        txn.commit()?;
        Ok(counter)
    }

    /// Adds one and returns the new value once it is durable.
    pub fn increment(&self) -> Result<u64, redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let next = {
            let mut table = txn.open_table(TABLE)?;
            let next = table.get(KEY)?.map_or(0, |v| v.value()) + 1;
            table.insert(KEY, next)?;
            next
        };
        txn.commit()?;
        Ok(next)
    }
}

/// Opens (creates) the SQLite database at `path` in WAL mode with `synchronous = FULL`, so
/// that every commit syncs the WAL.
fn open_sqlite(path: &Path) -> Result<Connection, Box<dyn std::error::Error>> {
    let conn = Connection::open(path)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite refused WAL mode (journal_mode = {mode})").into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// A counter in SQLite, in WAL mode with `synchronous = FULL` (so every commit syncs the
/// WAL): one row, updated by a prepared `UPDATE` in autocommit mode.
#[derive(Debug)]
pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Creates the database at `path`, with the counter's row at 0.
    pub fn create(path: &Path) -> Result<Sqlite, Box<dyn std::error::Error>> {
        let conn = open_sqlite(path)?;
        conn.execute_batch(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
             INSERT INTO counter (id, n) VALUES (1, 0);",
        )?;
        Ok(Sqlite { conn })
    }

    /// The prepared increment; [`SqliteIncrement::run`] is one autocommit transaction.
    pub fn increment(&self) -> rusqlite::Result<SqliteIncrement<'_>> {
        Ok(SqliteIncrement(
            self.conn
                .prepare("UPDATE counter SET n = n + 1 WHERE id = 1")?,
        ))
    }
}

/// A prepared `UPDATE` of the counter's row.
#[derive(Debug)]
pub struct SqliteIncrement<'conn>(Statement<'conn>);

impl SqliteIncrement<'_> {
    /// Adds one; returns once the commit is durable.
    pub fn run(&mut self) -> rusqlite::Result<()> {
        match self.0.execute([])? {
            1 => Ok(()),
            n => Err(rusqlite::Error::StatementChangedRows(n)),
        }
    }
}

const MAP_TABLE: TableDefinition<&str, &str> = TableDefinition::new("map");

/// A map of strings in redb: one table; each [`set`](RedbMap::set) is one write
/// transaction with [`Durability::Immediate`] (insert, commit).
#[derive(Debug)]
pub struct RedbMap {
    db: Database,
}

impl RedbMap {
    /// Creates the database at `path` holding `entries` (in one transaction).
    pub fn create<'a>(
        path: &Path,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RedbMap, redb::Error> {
        let map = RedbMap {
            db: Database::create(path)?,
        };
        let txn = map.db.begin_write()?;
        {
            let mut table = txn.open_table(MAP_TABLE)?;
            for (key, value) in entries {
                table.insert(key, value)?;
            }
        }
        txn.commit()?;
        Ok(map)
    }

    /// Sets `key` to `value`; returns once the commit is durable.
    pub fn set(&self, key: &str, value: &str) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.open_table(MAP_TABLE)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MAP_TABLE)?;
        Ok(table.get(key)?.map(|v| v.value().to_owned()))
    }
}

/// A map of strings in SQLite (WAL, `synchronous = FULL`): table `map (key TEXT PRIMARY
/// KEY, value TEXT NOT NULL)`, one row per entry.
#[derive(Debug)]
pub struct SqliteMap {
    conn: Connection,
}

impl SqliteMap {
    /// Creates the database at `path` holding `entries` (inserted in one transaction).
    pub fn create<'a>(
        path: &Path,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SqliteMap, Box<dyn std::error::Error>> {
        let mut conn = open_sqlite(path)?;
        conn.execute_batch("CREATE TABLE map (key TEXT PRIMARY KEY, value TEXT NOT NULL);")?;
        let txn = conn.transaction()?;
        {
            let mut insert = txn.prepare("INSERT INTO map (key, value) VALUES (?1, ?2)")?;
            for (key, value) in entries {
                insert.execute((key, value))?;
            }
        }
        txn.commit()?;
        Ok(SqliteMap { conn })
    }

    /// The prepared update of one entry; [`SqliteSet::run`] is one autocommit transaction.
    pub fn setter(&self) -> rusqlite::Result<SqliteSet<'_>> {
        Ok(SqliteSet(
            self.conn
                .prepare("UPDATE map SET value = ?2 WHERE key = ?1")?,
        ))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM map WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
    }
}

/// A prepared `UPDATE` of one row of [`SqliteMap`].
#[derive(Debug)]
pub struct SqliteSet<'conn>(Statement<'conn>);

impl SqliteSet<'_> {
    /// Sets `key` (which must exist) to `value`; returns once the commit is durable.
    pub fn run(&mut self, key: &str, value: &str) -> rusqlite::Result<()> {
        match self.0.execute((key, value))? {
            1 => Ok(()),
            n => Err(rusqlite::Error::StatementChangedRows(n)),
        }
    }
}
