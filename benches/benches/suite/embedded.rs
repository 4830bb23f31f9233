//! Embedded databases as baselines for the journal rows: a durable u64 counter kept in
//! redb and in SQLite, each commit durable when it returns. (Here, not in the library:
//! redb and rusqlite are dev-dependencies of the benches only.)

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition};
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

/// A counter in SQLite, in WAL mode with `synchronous = FULL` (so every commit syncs the
/// WAL): one row, updated by a prepared `UPDATE` in autocommit mode.
#[derive(Debug)]
pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Creates the database at `path`, with the counter's row at 0.
    pub fn create(path: &Path) -> Result<Sqlite, Box<dyn std::error::Error>> {
        let conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode (journal_mode = {mode})").into());
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
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
